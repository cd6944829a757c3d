/**
 * One webhook attempt: an HTTP/1.1 POST of the signed body to an address the guard has just
 * checked. The host is resolved and checked (`resolveTarget`), then the socket connects to one
 * of exactly those addresses (`Deno.connect`), and for https the TLS session is made over it for
 * the URL's host name (`Deno.startTls`: SNI and certificate checked against the name, with Deno's
 * root store; `DENO_CERT` adds CAs). A name that passed the request's check and resolves to
 * loopback now (DNS rebinding) is refused here.
 *
 * Why not a library: `fetch` resolves names itself (the address checked would not be the one
 * connected to), and node:http(s)'s `lookup` hook would do, but Deno's node:https needs the
 * whole `--allow-sys` for its CA store. What is left is small: one request with
 * `Connection: close`, and the status line and `Retry-After` of the answer; nothing else of the
 * response is read (at most its first 64 KiB, to find the end of its head).
 *
 * Redirects are not followed (a 3xx is a failed attempt, as the Standard Webhooks spec advises),
 * every attempt opens its own connection, and an attempt that has not been answered within
 * `timeoutMs` (15 s, the low end of the spec's 15–30 s) fails.
 *
 * @module
 */

import { type AddressPolicy, resolveTarget } from "./address_guard.ts";

/** What one attempt sends. */
export interface WebhookPost {
  readonly url: string;
  /** The Standard Webhooks headers (the sender adds Host, Content-Type, Content-Length, …). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Options of {@linkcode postWebhook}. */
export interface PostOptions {
  readonly policy: AddressPolicy;
  /** Longest wait for the whole attempt, in ms. */
  readonly timeoutMs: number;
  /** Extra CA certificates (PEM) to trust, for tests with a local https receiver. */
  readonly caCerts?: readonly string[];
}

/** How an attempt went: the receiver's status (and its `Retry-After`), or why there was none. */
export type PostResult =
  | { readonly status: number; readonly retryAfterMs?: number }
  | { readonly error: string };

/** The most of a response read to find the end of its head. */
const MAX_HEAD_BYTES = 64 * 1024;

/** Sends one attempt; never throws (a failure is a {@linkcode PostResult} with `error`). */
export async function postWebhook(post: WebhookPost, options: PostOptions): Promise<PostResult> {
  let conn: Deno.Conn | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn?.close(); // ends a read or write in progress
  }, options.timeoutMs);
  try {
    const url = new URL(post.url);
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const secure = url.protocol === "https:";
    const port = url.port === "" ? (secure ? 443 : 80) : Number(url.port);
    const addresses = await resolveTarget(host, options.policy);
    const tcp = await connectToOne(addresses, port, () => timedOut);
    conn = tcp;
    if (timedOut) throw new Error("timed out");
    if (secure) {
      conn = await Deno.startTls(tcp, {
        hostname: host,
        ...(options.caCerts ? { caCerts: [...options.caCerts] } : {}),
      });
    }
    await writeAll(conn, requestBytes(url, post));
    const head = await readHead(conn);
    return parseHead(head);
  } catch (error) {
    if (timedOut) return { error: `no answer within ${options.timeoutMs / 1000} s` };
    return { error: messageOf(error) };
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed already */ }
  }
}

/** Connects to the first of `addresses` that answers (in the resolver's order). */
async function connectToOne(
  addresses: readonly string[],
  port: number,
  gaveUp: () => boolean,
): Promise<Deno.TcpConn> {
  let last: unknown;
  for (const hostname of addresses) {
    if (gaveUp()) break;
    try {
      return await Deno.connect({ hostname, port });
    } catch (error) {
      last = error;
    }
  }
  throw last ?? new Error("no address to connect to");
}

function requestBytes(url: URL, post: WebhookPost): Uint8Array {
  const body = new TextEncoder().encode(post.body);
  const headers: Record<string, string> = {
    host: url.host,
    "user-agent": "svd-stream-webhooks/1",
    "content-type": "application/json",
    ...post.headers,
    "content-length": String(body.length),
    connection: "close",
  };
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) {
      throw new TypeError(`Header ${JSON.stringify(name)} holds a line break`);
    }
  }
  const lines = [
    `POST ${url.pathname}${url.search} HTTP/1.1`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  const head = new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`);
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(head);
  bytes.set(body, head.length);
  return bytes;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

/** The response's head (status line and headers), as text. */
async function readHead(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(MAX_HEAD_BYTES);
  let filled = 0;
  const decoder = new TextDecoder("latin1");
  while (filled < buffer.length) {
    const n = await conn.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
    const text = decoder.decode(buffer.subarray(0, filled));
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) return text.slice(0, end);
  }
  const text = decoder.decode(buffer.subarray(0, filled));
  if (/^HTTP\/1\.[01] \d{3}/.test(text)) return text; // a head cut short still has its status
  throw new Error(filled === 0 ? "the connection closed without an answer" : "not an HTTP answer");
}

function parseHead(head: string): PostResult {
  const [statusLine, ...headerLines] = head.split("\r\n");
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!match) return { error: `not an HTTP answer: ${JSON.stringify(statusLine.slice(0, 60))}` };
  const status = Number(match[1]);
  const retryAfter = headerLines
    .map((line) => /^retry-after:\s*(.*)$/i.exec(line)?.[1])
    .find((value) => value !== undefined);
  const retryAfterMs = parseRetryAfter(retryAfter);
  return retryAfterMs === undefined ? { status } : { status, retryAfterMs };
}

/** `Retry-After` (seconds, or an HTTP date) in ms from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && !error.message.includes(code)
    ? `${error.message} (${code})`
    : error.message;
}
