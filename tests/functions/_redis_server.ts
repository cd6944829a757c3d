/**
 * A throwaway `redis-server` for the Redis tests: a free loopback port, started and stopped by the
 * test (never a system service). It can be stopped and started again on the same port, as a Redis
 * outage looks to its clients: empty again (no persistence, the default), or, with `persistent`,
 * with its data (an append-only file fsynced at every write, in a temp folder removed on dispose),
 * as a production Redis with AOF comes back.
 *
 * @example
 * ```ts
 * import { RedisServer, redisTest } from "./_redis_server.ts";
 * redisTest("…", async () => {
 *   await using server = await RedisServer.start();
 *   // server.url === "redis://127.0.0.1:<port>"
 * });
 * ```
 *
 * @module
 */

/** Why the Redis tests are skipped, or undefined when `redis-server` can run. */
export const redisServerMissing: string | undefined = probe();

if (redisServerMissing) console.warn(`Skipping the Redis tests: ${redisServerMissing}`);

/**
 * A test that needs `redis-server`, skipped without it: loopback only; it runs redis-server (and
 * deno for a worker), which keeps its data in a temp folder when persistent. `permissions` adds to
 * those.
 */
export function redisTest(
  name: string,
  fn: () => Promise<void>,
  permissions: Deno.PermissionOptionsObject = {},
): void {
  Deno.test({
    name,
    ignore: redisServerMissing !== undefined,
    permissions: { net: ["127.0.0.1"], run: true, read: true, write: true, ...permissions },
    fn,
  });
}

/** Options of {@linkcode RedisServer.start}. */
export interface RedisServerOptions {
  /** Keep the data across `stop()` and `restart()` (needs write access for a temp folder). */
  readonly persistent?: boolean;
}

/** A `redis-server` child process on 127.0.0.1. */
export class RedisServer {
  readonly port: number;
  /** Where a persistent server keeps its append-only file. */
  readonly #dataDir?: string;
  #child?: Deno.ChildProcess;

  private constructor(port: number, dataDir?: string) {
    this.port = port;
    this.#dataDir = dataDir;
  }

  /** Starts a server on a free port and waits until it answers PING (at most 10 s). */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    // redis-server has no "port 0": take a free port from the OS and hand it over.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    const dataDir = options.persistent ? await Deno.makeTempDir({ prefix: "redis_" }) : undefined;
    const server = new RedisServer(port, dataDir);
    await server.restart();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts the server again on the same port (empty: nothing is persisted). */
  async restart(): Promise<void> {
    if (this.#child) throw new Error(`redis-server on port ${this.port} is already running`);
    const persistence = this.#dataDir
      ? ["--appendonly", "yes", "--appendfsync", "always", "--dir", this.#dataDir]
      : ["--appendonly", "no"];
    // deno-fmt-ignore
    this.#child = new Deno.Command("redis-server", {
      args: [
        "--port", String(this.port), "--bind", "127.0.0.1", "--save", "", ...persistence,
        "--protected-mode", "no", "--loglevel", "warning",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 10_000;
    while (!(await ping(this.port))) {
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`redis-server on port ${this.port} did not answer PING within 10 s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL after 3 s) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const killer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 3000);
    await child.status;
    clearTimeout(killer);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    if (this.#dataDir) await Deno.remove(this.#dataDir, { recursive: true }).catch(() => {});
  }
}

/** True when a server on `port` answers `+PONG` within 1 s. */
async function ping(port: number): Promise<boolean> {
  let connection: Deno.Conn | undefined;
  const timer = setTimeout(() => connection?.close(), 1000);
  try {
    connection = await Deno.connect({ hostname: "127.0.0.1", port });
    await connection.write(new TextEncoder().encode("PING\r\n"));
    const buffer = new Uint8Array(64);
    const n = await connection.read(buffer);
    return n !== null && new TextDecoder().decode(buffer.subarray(0, n)).startsWith("+PONG");
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    try {
      connection?.close();
    } catch { /* closed by the timer */ }
  }
}

function probe(): string | undefined {
  try {
    const { success } = new Deno.Command("redis-server", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return success ? undefined : "`redis-server --version` failed";
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? "redis-server is not installed (apt-get install redis-server; .ci/setup installs it)"
      : `cannot run redis-server: ${error instanceof Error ? error.message : error}`;
  }
}

/**
 * A TCP proxy in front of a server that can let its current connections die silently: they stay
 * open but no byte passes any more, as after a failover or a dropped NAT entry, while new
 * connections go through.
 */
export class SilentFailureProxy {
  readonly #listener: Deno.TcpListener;
  readonly #targetPort: number;
  readonly #links = new Set<{ frozen: boolean; close(): void; done: Promise<void> }>();
  readonly #accepting: Promise<void>;

  constructor(targetPort: number) {
    this.#targetPort = targetPort;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  get url(): string {
    return `redis://127.0.0.1:${this.#listener.addr.port}`;
  }

  /** From now on the connections open now pass nothing, and never close. */
  freezeConnections(): void {
    for (const link of this.#links) link.frozen = true;
  }

  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const link of this.#links) link.close();
    await Promise.all([...this.#links].map((link) => link.done));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // closed
      }
      let server: Deno.Conn;
      try {
        server = await Deno.connect({ hostname: "127.0.0.1", port: this.#targetPort });
      } catch {
        client.close();
        continue;
      }
      const closeBoth = () => {
        for (const conn of [client, server]) {
          try {
            conn.close();
          } catch { /* closed already */ }
        }
      };
      const link = { frozen: false, close: closeBoth, done: Promise.resolve() };
      const pump = async (from: Deno.Conn, to: Deno.Conn) => {
        const buffer = new Uint8Array(64 * 1024);
        try {
          for (;;) {
            const n = await from.read(buffer);
            if (n === null) break;
            for (let sent = 0; sent < n && !link.frozen;) {
              sent += await to.write(buffer.subarray(sent, n));
            }
          }
        } catch { /* closed */ }
        if (!link.frozen) closeBoth();
      };
      link.done = Promise.all([pump(client, server), pump(server, client)]).then(() => {
        this.#links.delete(link);
      });
      this.#links.add(link);
    }
  }
}
