/**
 * `main.ts` as deployed, in a subprocess (`deno run … main.ts`) with the given environment, its
 * stdout parsed as JSON log lines; for the multi-process tests and the scale-out benchmark.
 *
 * @module
 */

import { waitFor } from "./_service.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-ffi",
  "--allow-env",
  "--allow-net",
  "--allow-run",
];

/** What a test needs to run {@linkcode MainProcess} and talk to it on loopback. */
export const MAIN_PROCESS_TEST_PERMISSIONS: Deno.PermissionOptions = {
  read: true,
  write: true,
  net: ["127.0.0.1"],
  env: true,
  run: true,
  sys: ["homedir", "osRelease", "uid", "gid"],
};

/** `main.ts` in a subprocess on a free loopback port (PORT=0), CPU provider unless overridden. */
export class MainProcess implements AsyncDisposable {
  readonly process: Deno.ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  readonly #reading: Promise<void>;
  readonly #stderr: Promise<string>;

  constructor(env: Record<string, string>) {
    const process = new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMISSIONS, "main.ts"],
      cwd: ROOT,
      env: { PORT: "0", HOST: "127.0.0.1", NO_COLOR: "1", ORT_PROVIDER: "cpu", ...env },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.process = process;
    this.#reading = (async () => {
      for await (const line of textLines(process.stdout)) {
        try {
          this.lines.push(JSON.parse(line));
        } catch {
          this.lines.push({ raw: line });
        }
      }
    })();
    this.#stderr = new Response(process.stderr).text();
  }

  /** The prefix of the worker names its worker loop uses (`worker-<pid>-`). */
  get workerPrefix(): string {
    return `worker-${this.process.pid}-`;
  }

  /** The first log line with `event`, waiting at most `timeoutMs` for it. */
  line(event: string, timeoutMs = 90_000): Promise<Record<string, unknown>> {
    return waitFor(() => this.lines.find((l) => l.event === event), `log "${event}"`, timeoutMs);
  }

  /** `http://127.0.0.1:<port>` once it listens. */
  async url(): Promise<string> {
    return `http://127.0.0.1:${(await this.line("start")).port}`;
  }

  /** Exit status and stderr, once the process has ended. */
  async ended(): Promise<{ status: Deno.CommandStatus; stderr: string }> {
    const status = await this.process.status;
    await this.#reading;
    return { status, stderr: await this.#stderr };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.process.kill("SIGKILL");
    } catch { /* already ended */ }
    await this.ended();
  }
}

/** The lines of a byte stream, as they arrive. */
async function* textLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
    }
  }
  if (buffer) yield buffer;
}
