/**
 * A raw TCP client on loopback, for what `fetch` cannot do: send a request's head and part of its
 * body, then stall, and see what the server answers and whether it closes the connection.
 *
 * @module
 */

/** What came back on a connection. */
export interface RawReply {
  /** Everything the server sent. */
  readonly text: string;
  /** The status code of the first response line, or 0 when nothing came. */
  readonly status: number;
  /** The JSON body of the first response, when it has one. */
  readonly json?: { error?: { code?: string; message?: string } };
  /** True when the server closed the connection (EOF or a reset) within the wait. */
  readonly closed: boolean;
  /** Milliseconds from `reply()` until the server closed, or the wait ended. */
  readonly ms: number;
}

/** One connection to `127.0.0.1:port`. */
export class RawClient {
  readonly #conn: Deno.TcpConn;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Writes `data` (text as UTF-8). */
  async send(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    while (bytes.length > 0) bytes = bytes.subarray(await this.#conn.write(bytes));
  }

  /** Reads until the server closes the connection, or `waitMs` passes. */
  async reply(waitMs: number): Promise<RawReply> {
    const started = performance.now();
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(64 * 1024);
    let closed = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), waitMs);
    });
    try {
      while (true) {
        const read = this.#conn.read(buffer);
        const n = await Promise.race([read, timeout]).catch(() => null);
        if (n === "timeout") {
          read.catch(() => {});
          break;
        }
        if (n === null) {
          closed = true;
          break;
        }
        chunks.push(buffer.slice(0, n));
      }
    } finally {
      clearTimeout(timer);
    }
    const text = new TextDecoder().decode(
      chunks.reduce((all, c) => {
        const out = new Uint8Array(all.length + c.length);
        out.set(all);
        out.set(c, all.length);
        return out;
      }, new Uint8Array(0)),
    );
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    const body = text.slice(text.indexOf("\r\n\r\n") + 4);
    let json: RawReply["json"];
    try {
      json = JSON.parse(body);
    } catch { /* not JSON */ }
    return { text, status, json, closed, ms: performance.now() - started };
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* closed already */ }
  }
}

/** The head of a `POST /v1/generations` announcing a multipart body of `length` bytes. */
export function uploadHead(length: number, headers: Record<string, string> = {}): string {
  return "POST /v1/generations HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
    "Content-Type: multipart/form-data; boundary=b0undary\r\n" +
    `Content-Length: ${length}\r\n` +
    Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("") +
    "\r\n";
}

/** The start of a multipart body: the image part's head and a few bytes of a PNG. */
export const BODY_START = '--b0undary\r\nContent-Disposition: form-data; name="image"; ' +
  'filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n';
