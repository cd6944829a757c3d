/**
 * The Redis connections of {@linkcode RedisJobQueue} and how they fail (node-redis v5): one
 * connection for commands, and one per blocking read (XREAD / XREADGROUP BLOCK) while it waits,
 * up to {@linkcode MAX_IDLE_BLOCKING} idle ones kept for the next read.
 *
 * - Commands fail fast while Redis is unreachable (no offline queue) and each gets an answer
 *   within `commandTimeoutMs`: node-redis's own timeout stops counting once a command is written,
 *   so a connection that went silent (a failover, a dropped NAT entry) would hang. The first
 *   command without an answer replaces the command connection.
 * - Failures become {@linkcode StoreUnavailableError} (the HTTP layer answers 503), except error
 *   replies that mean a wrong command, which are thrown as node-redis's `ErrorReply`.
 * - A blocking read runs on a connection of its own, so aborting its signal closes that
 *   connection and the read ends at once.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createClient, ErrorReply, RESP_TYPES } from "redis";
import { StoreUnavailableError } from "./job_queue.ts";
import type { LuaScript } from "./redis_scripts.ts";

/** Idle blocking connections kept for the next blocking read. */
export const MAX_IDLE_BLOCKING = 8;

/** Bulk strings as Buffers, for image and clip bytes. */
export const AS_BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer };

/** Options of one command. */
export interface CommandOptions {
  readonly typeMapping?: typeof AS_BUFFERS;
}

/** What {@linkcode RedisConnection.blocking} returns when its signal aborted the read. */
export const ABORTED = Symbol("aborted");

/**
 * Redis errors that mean "not now" rather than "wrong command"; OOM: a full Redis (noeviction)
 * refuses writes until jobs expire.
 */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|OOM)\b/;

/** Where and how long to wait. */
export interface RedisConnectionOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://…`. */
  readonly url: string;
  /** Longest wait for one command, in ms. */
  readonly commandTimeoutMs: number;
  /** Longest single blocking read, in ms (a read is given this plus `commandTimeoutMs`). */
  readonly blockMs: number;
  /** Longest wait for a connection to open, in ms. */
  readonly connectTimeoutMs: number;
}

/** The few client calls this module makes. */
interface Connection {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  destroy(): void;
  sendCommand(args: ReadonlyArray<string | Buffer>, options?: CommandOptions): Promise<unknown>;
  on(event: "error", listener: (error: Error) => void): unknown;
}

/** A command or connection got no answer in time. */
class NoAnswerError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = "NoAnswerError";
  }
}

/** The command connection and the blocking ones to one Redis; see the module doc. */
export class RedisConnection {
  /** `host:port` for messages (never the password). */
  readonly where: string;
  readonly #options: RedisConnectionOptions;
  /** Commands; replaced when it stops answering (a connection that died silently). */
  #client: Connection;
  #replacing = false;
  readonly #idle: Connection[] = [];
  #lastError?: Error;
  #closed = false;

  constructor(options: RedisConnectionOptions) {
    this.#options = options;
    const url = new URL(options.url);
    this.where = `${url.hostname}:${url.port || "6379"}`;
    this.#client = this.#connection(true);
  }

  /** Whether the command connection is up now. */
  get isReady(): boolean {
    return this.#client.isReady;
  }

  /** True once {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Opens the command connection, waiting at most `connectTimeoutMs`; throws what it meets. */
  async connect(): Promise<void> {
    await deadline(this.#client.connect(), this.#options.connectTimeoutMs);
  }

  /**
   * One command on the command connection, answered within `timeoutMs`.
   *
   * @throws {StoreUnavailableError} when Redis does not answer, is unreachable or not ready.
   * @throws {ErrorReply} for a command Redis refuses.
   */
  async send(
    args: ReadonlyArray<string | Buffer>,
    options: CommandOptions = {},
    timeoutMs = this.#options.commandTimeoutMs,
  ): Promise<unknown> {
    if (this.#closed) throw new StoreUnavailableError("The Redis job queue is closed");
    try {
      return await deadline(this.#client.sendCommand(args, options), timeoutMs);
    } catch (error) {
      if (error instanceof NoAnswerError) this.#replaceClient();
      throw this.#storeError(error);
    }
  }

  /** Runs `script` by SHA, loading it again after a Redis restart (NOSCRIPT); throws as `send`. */
  async evalScript(script: LuaScript, args: ReadonlyArray<string | Buffer>): Promise<unknown> {
    try {
      return await this.send(["EVALSHA", script.sha, ...args]);
    } catch (error) {
      if (!(error instanceof ErrorReply && error.message.startsWith("NOSCRIPT"))) throw error;
      return await this.send(["EVAL", script.source, ...args]);
    }
  }

  /**
   * One blocking read on a connection of its own; an abort of `signal` closes that connection,
   * so the read ends at once, and {@linkcode ABORTED} is returned.
   *
   * @throws {StoreUnavailableError} as `send`; an `ErrorReply` (NOGROUP, …) as it comes.
   */
  async blocking(args: readonly string[], signal: AbortSignal): Promise<unknown> {
    if (signal.aborted) return ABORTED;
    let connection = this.#idle.pop();
    while (connection && !connection.isReady) {
      discard(connection);
      connection = this.#idle.pop();
    }
    let aborted = false;
    let healthy = false;
    const fresh = connection ?? this.#connection(false);
    const onAbort = () => {
      aborted = true;
      discard(fresh);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (!connection) {
        await deadline(fresh.connect(), this.#options.connectTimeoutMs);
      }
      const reply = await deadline(
        fresh.sendCommand(args),
        this.#options.blockMs + this.#options.commandTimeoutMs,
      );
      healthy = true;
      return reply;
    } catch (error) {
      if (aborted) return ABORTED;
      // An error reply is an answer: the connection itself is fine.
      if (error instanceof ErrorReply) healthy = true;
      throw this.#storeError(error);
    } finally {
      signal.removeEventListener("abort", onAbort);
      if (healthy && !aborted && !this.#closed && this.#idle.length < MAX_IDLE_BLOCKING) {
        this.#idle.push(fresh);
      } else if (!aborted) {
        discard(fresh);
      }
    }
  }

  /** Sends `args` if the command connection is up, waiting at most `ms`; ignores any failure. */
  async tryToSend(args: ReadonlyArray<string>, ms: number): Promise<void> {
    if (!this.#client.isReady) return;
    await deadline(this.#client.sendCommand(args), ms).catch(() => {});
  }

  /** Closes every connection; later commands throw {@linkcode StoreUnavailableError}. */
  close(): void {
    this.#closed = true;
    for (const connection of this.#idle.splice(0)) discard(connection);
    discard(this.#client);
  }

  #connection(reconnect: boolean): Connection {
    const connection: Connection = createClient({
      url: this.#options.url,
      // Fail at once while disconnected instead of queueing commands until Redis returns.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: this.#options.connectTimeoutMs,
        // The command connection comes back by itself; a blocking one is simply replaced.
        reconnectStrategy: reconnect
          ? (retries: number) => Math.min(100 * 2 ** retries, 1000)
          : false,
      },
    });
    connection.on("error", (error) => this.#lastError = error);
    return connection;
  }

  /**
   * A command got no answer in time: the connection may be dead without the socket knowing, and
   * TCP keepalive takes minutes to notice. Commands go to a new connection from now on; until it
   * is up they fail fast, as during any outage.
   */
  #replaceClient(): void {
    if (this.#replacing || this.#closed) return;
    this.#replacing = true;
    const old = this.#client;
    this.#client = this.#connection(true);
    discard(old);
    this.#client.connect().catch(() => {}).finally(() => this.#replacing = false);
  }

  #storeError(error: unknown): Error {
    if (error instanceof StoreUnavailableError) return error;
    if (error instanceof ErrorReply && !TRANSIENT_REPLY.test(error.message)) return error;
    const cause = messageOf(error);
    const last = this.#lastError && this.#lastError.message !== cause
      ? ` (last connection error: ${this.#lastError.message})`
      : "";
    return new StoreUnavailableError(
      `Redis at ${this.where} is unavailable: ${cause}${last}`,
      { cause: error },
    );
  }
}

/** `promise`, or a {@linkcode NoAnswerError} after `ms` (a late outcome is dropped). */
async function deadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  promise.catch(() => {}); // a rejection after the deadline is nobody's business
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NoAnswerError(ms)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Closes a connection now; one that is closed already is fine. */
function discard(connection: Connection): void {
  try {
    connection.destroy();
  } catch { /* ClientClosedError: closed already */ }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
