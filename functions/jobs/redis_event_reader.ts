/**
 * One reader for all the live event streams of a {@linkcode RedisJobQueue} instance: every
 * `events()` subscription waiting for its job's next event waits here, and the reader waits on
 * Redis with one `XREAD BLOCK` over all their streams, on one connection, then hands each
 * subscription what arrived for its stream. 100 open SSE streams share one connection instead of
 * holding one each.
 *
 * - A subscription asks for the entries after the last id it has seen (`next(after)`) and gets
 *   them from the reader's batch; or `"behind"` when the reader knows of entries after that id
 *   that it did not fetch for this subscription (it then reads them itself with XRANGE); or
 *   undefined after `timeoutMs` or an abort (its caller checks that the job still exists).
 * - A stream is part of the read while it has an open subscription. A new one that the read in
 *   flight does not cover wakes the reader at once, so that it need not wait up to `blockMs`: the
 *   read also covers a small wake stream of the reader's own (`<prefix>:reader:<instance>`,
 *   MAXLEN 1, expiring), and a subscriber XADDs to it. `CLIENT UNBLOCK` would do the same, but it
 *   is an admin command that managed Redis services and restricted ACLs often refuse.
 * - When the read fails (Redis unreachable), every waiting subscription gets the error
 *   ({@linkcode StoreUnavailableError}); the reader tries again after a pause (at most 1 s) while
 *   subscriptions remain.
 *
 * Memory: a batch holds at most `count` entries per stream, shared by that stream's waiting
 * subscriptions. A subscription that is not waiting (its client reads slowly) is handed nothing;
 * it reads what it missed from the stream when it asks again.
 *
 * @module
 */

import { StoreUnavailableError } from "./job_queue.ts";
import { compareStreamIds, type StreamEntry, type StreamReply } from "./redis_codec.ts";
import { ABORTED, type RedisConnection } from "./redis_connection.ts";
import { abortableSleep } from "./_abortable_sleep.ts";

/** Options of {@linkcode RedisEventReader}. */
export interface RedisEventReaderOptions {
  readonly connection: RedisConnection;
  /** The reader's own wake stream (`RedisLayout.reader`). */
  readonly wakeKey: string;
  /** Longest single XREAD BLOCK, in milliseconds. */
  readonly blockMs: number;
  /** Entries fetched per stream per read (default 32). */
  readonly count?: number;
  /** Expiry of the wake stream after the last wake, in milliseconds (default 1 h). */
  readonly wakeTtlMs?: number;
}

/**
 * What {@linkcode StreamSubscription.next} resolves with: the entries after the id asked for (in
 * order, none skipped), `"behind"` (read them from the stream yourself), or undefined (nothing
 * within the time, or aborted).
 */
export type NextEntries = readonly StreamEntry[] | "behind" | undefined;

/** One stream's subscription; see the module doc. */
export interface StreamSubscription {
  /**
   * Waits for entries after `after` (an entry id the caller has seen, or `0-0`).
   * @throws {StoreUnavailableError} when the shared read fails.
   */
  next(after: string, timeoutMs: number, signal: AbortSignal): Promise<NextEntries>;
  /** Leaves the read (once nobody else reads this stream). */
  close(): void;
}

interface Waiter {
  readonly after: string;
  readonly settle: (value: NextEntries) => void;
  readonly fail: (error: unknown) => void;
}

interface Watched {
  /** The newest entry id the reader knows of in this stream (or where its first subscriber was). */
  cursor: string;
  subscriptions: number;
  readonly waiters: Set<Waiter>;
}

/** Longest pause between failed reads. */
const MAX_RETRY_MS = 1000;

/** The shared reader of one queue instance; see the module doc. */
export class RedisEventReader {
  readonly #connection: RedisConnection;
  readonly #wakeKey: string;
  readonly #blockMs: number;
  readonly #count: number;
  readonly #wakeTtlMs: number;
  readonly #watched = new Map<string, Watched>();
  readonly #closing = new AbortController();
  /** Streams the read in flight covers; undefined between reads. */
  #reading?: ReadonlySet<string>;
  #wakeCursor = "0-0";
  /** A wake was sent for the read in flight. */
  #woken = false;
  #running = false;
  /** Resolves the idle reader's wait for a first subscription. */
  #resume?: () => void;

  constructor(options: RedisEventReaderOptions) {
    this.#connection = options.connection;
    this.#wakeKey = options.wakeKey;
    this.#blockMs = options.blockMs;
    this.#count = options.count ?? 32;
    this.#wakeTtlMs = options.wakeTtlMs ?? 3_600_000;
  }

  /**
   * Subscribes to stream `key`, whose entries up to `after` the caller has seen.
   * @throws {StoreUnavailableError} once the reader is closed.
   */
  subscribe(key: string, after: string): StreamSubscription {
    if (this.#closing.signal.aborted) {
      throw new StoreUnavailableError("The Redis job queue is closed");
    }
    let watched = this.#watched.get(key);
    if (watched) {
      advance(watched, after);
    } else {
      watched = { cursor: after, subscriptions: 0, waiters: new Set() };
      this.#watched.set(key, watched);
    }
    watched.subscriptions++;
    const current = watched;
    this.#start();
    this.#wakeFor(key);
    let open = true;
    return {
      next: (after, timeoutMs, signal) => this.#next(key, current, after, timeoutMs, signal),
      close: () => {
        if (!open) return;
        open = false;
        current.subscriptions--;
        if (current.subscriptions === 0 && this.#watched.get(key) === current) {
          this.#watched.delete(key);
        }
      },
    };
  }

  /** How many streams the reader covers now (for tests and metrics). */
  get streams(): number {
    return this.#watched.size;
  }

  /** Stops reading; waiting subscriptions get undefined, later ones an error. */
  close(): void {
    this.#closing.abort(new Error("the Redis job queue is closing"));
    for (const watched of this.#watched.values()) {
      for (const waiter of [...watched.waiters]) waiter.settle(undefined);
    }
    this.#watched.clear();
    this.#resume?.();
  }

  #next(
    key: string,
    watched: Watched,
    after: string,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<NextEntries> {
    if (signal.aborted || this.#closing.signal.aborted) return Promise.resolve(undefined);
    advance(watched, after);
    if (compareStreamIds(watched.cursor, after) > 0) return Promise.resolve("behind");
    this.#wakeFor(key);
    return new Promise<NextEntries>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        watched.waiters.delete(waiter);
      };
      const waiter: Waiter = {
        after,
        settle: (value) => {
          done();
          resolve(value);
        },
        fail: (error) => {
          done();
          reject(error);
        },
      };
      const onAbort = () => waiter.settle(undefined);
      const timer = setTimeout(onAbort, timeoutMs);
      signal.addEventListener("abort", onAbort, { once: true });
      watched.waiters.add(waiter);
    });
  }

  #start(): void {
    if (this.#resume) this.#resume();
    if (this.#running) return;
    this.#running = true;
    void this.#loop().finally(() => this.#running = false);
  }

  /** Makes the read in flight return when it does not cover `key`. */
  #wakeFor(key: string): void {
    if (!this.#reading || this.#reading.has(key) || this.#woken) return;
    this.#woken = true;
    const key_ = this.#wakeKey;
    this.#connection.send(["XADD", key_, "MAXLEN", "1", "*", "w", "1"])
      .then(() => this.#connection.send(["PEXPIRE", key_, String(this.#wakeTtlMs)]))
      .catch(() => {}); // Redis unreachable: the read fails too, and is made again
  }

  async #loop(): Promise<void> {
    const stop = this.#closing.signal;
    let failures = 0;
    while (!stop.aborted) {
      if (this.#watched.size === 0) {
        await new Promise<void>((resolve) => this.#resume = resolve);
        this.#resume = undefined;
        continue;
      }
      const issued = new Map([...this.#watched].map(([key, w]) => [key, w.cursor]));
      this.#reading = new Set(issued.keys());
      this.#woken = false;
      let reply: unknown;
      try {
        // deno-fmt-ignore
        reply = await this.#connection.blocking([
          "XREAD", "COUNT", String(this.#count), "BLOCK", String(this.#blockMs),
          "STREAMS", ...issued.keys(), this.#wakeKey, ...issued.values(), this.#wakeCursor,
        ], stop);
        failures = 0;
      } catch (error) {
        this.#reading = undefined;
        for (const watched of this.#watched.values()) {
          for (const waiter of [...watched.waiters]) waiter.fail(error);
        }
        failures++;
        await abortableSleep(Math.min(50 * 2 ** failures, MAX_RETRY_MS), stop);
        continue;
      }
      this.#reading = undefined;
      if (reply === ABORTED) break;
      for (const [key, entries] of (reply as StreamReply | null) ?? []) {
        if (entries.length === 0) continue;
        if (key === this.#wakeKey) this.#wakeCursor = entries[entries.length - 1][0];
        else this.#deliver(key, issued.get(key) ?? "0-0", entries);
      }
    }
  }

  /** Hands `entries` (those after `issued` in stream `key`) to its waiting subscriptions. */
  #deliver(key: string, issued: string, entries: StreamEntry[]): void {
    const watched = this.#watched.get(key);
    if (!watched) return;
    for (const waiter of [...watched.waiters]) {
      // Asked from before the read's start: what lies between was not fetched for it.
      if (compareStreamIds(waiter.after, issued) < 0) {
        waiter.settle("behind");
        continue;
      }
      const fresh = entries.filter(([id]) => compareStreamIds(id, waiter.after) > 0);
      if (fresh.length > 0) waiter.settle(fresh);
    }
    advance(watched, entries[entries.length - 1][0]);
  }
}

/**
 * Moves a stream's cursor to `id` when that is newer: waiting subscriptions from before it are
 * behind.
 */
function advance(watched: Watched, id: string): void {
  if (compareStreamIds(id, watched.cursor) <= 0) return;
  watched.cursor = id;
  for (const waiter of [...watched.waiters]) {
    if (compareStreamIds(waiter.after, id) < 0) waiter.settle("behind");
  }
}
