/**
 * A job's events as a `text/event-stream` response: `retry:` once, then every event with its
 * `id:` (the queue's monotonic event id), `event:` and one `data:` line of JSON, a comment
 * heartbeat every `heartbeatMs` while nothing else is sent, and the end of the stream after a
 * terminal event. `afterId` (from `Last-Event-ID`) resumes after that event: stored events are
 * replayed, then live ones follow.
 *
 * The stream reads events only as fast as the client takes them. When the client goes away, the
 * stream is cancelled, the queue subscription is closed and `onClientGone` runs (a streaming POST
 * uses it to cancel its job). When the store fails for a moment (a Redis command timing out), the
 * stream subscribes again after the last event it sent instead of ending early; only a store that
 * stays unavailable for `storeRetries` tries ends it with an error.
 *
 * {@linkcode resumeSseResponse} answers a reconnection: `204 No Content` once the job has ended and
 * nothing follows the client's `Last-Event-ID` (an id beyond the newest event included), which
 * tells an `EventSource` to stop instead of reconnecting every `retry` ms (the SSE spec's way to end
 * a stream for good). A running job's stream resumed beyond its newest event goes on from its end
 * (the queue's `events` takes such an id as the end).
 *
 * @example
 * ```ts
 * import { sseResponse } from "./sse.ts";
 * return sseResponse(queue, id, { afterId: c.req.header("Last-Event-ID"), heartbeatMs: 15_000 });
 * ```
 *
 * @module
 */

import {
  isTerminal,
  type JobEvent,
  type JobQueue,
  type JobRecord,
  StoreUnavailableError,
} from "./jobs/job_queue.ts";

/** Options of {@linkcode sseResponse}. */
export interface SseOptions {
  /** Resume after this event id (exclusive). */
  readonly afterId?: string;
  /** Interval of the comment heartbeat, in milliseconds. */
  readonly heartbeatMs: number;
  /** Reconnection delay suggested to EventSource clients, in milliseconds (default 2000). */
  readonly retryMs?: number;
  /** Called once if the client leaves before the stream ended. */
  readonly onClientGone?: () => void;
  /**
   * The request's signal: its abort (the connection closed; Deno aborts it only on disconnect
   * with the `no-legacy-abort` unstable flag) counts as the client leaving, in case the body
   * stream is not cancelled, e.g. when the client leaves before the response started.
   */
  readonly clientSignal?: AbortSignal;
  /** Extra response headers. */
  readonly headers?: Record<string, string>;
  /** Response status (default 200). */
  readonly status?: number;
  /** Subscriptions retried after `StoreUnavailableError` before giving up (default 30). */
  readonly storeRetries?: number;
  /** Wait before a retried subscription, in milliseconds (default 1000). */
  readonly storeRetryMs?: number;
}

/** Headers of every event stream. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache, no-transform",
  // Tells nginx-style proxies not to buffer the stream.
  "X-Accel-Buffering": "no",
};

/** The SSE wire form of one event. */
export function formatSseEvent(event: JobEvent): string {
  // JSON.stringify never emits a raw newline, so one data line is always enough.
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

/** The event stream of job `id` as a Response; see the module doc. */
export function sseResponse(queue: JobQueue, id: string, options: SseOptions): Response {
  const encoder = new TextEncoder();
  const subscription = new AbortController();
  const subscribe = (afterId: string | undefined) =>
    queue.events(id, afterId, subscription.signal)[Symbol.asyncIterator]();
  let lastId = options.afterId;
  let events = subscribe(lastId);
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let ended = false;
  const end = () => {
    ended = true;
    clearInterval(heartbeat);
    subscription.abort();
    options.clientSignal?.removeEventListener("abort", clientLeft);
  };
  const clientLeft = () => {
    if (ended) return;
    end();
    options.onClientGone?.();
  };
  if (options.clientSignal?.aborted) queueMicrotask(clientLeft);
  else options.clientSignal?.addEventListener("abort", clientLeft, { once: true });

  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(`retry: ${options.retryMs ?? 2000}\n\n`));
      heartbeat = setInterval(() => {
        try {
          controller.enqueue(encoder.encode(": heartbeat\n\n"));
        } catch {
          end(); // the stream is already closed
        }
      }, options.heartbeatMs);
    },
    async pull(controller) {
      let next: IteratorResult<JobEvent>;
      for (let attempt = 1;; attempt++) {
        try {
          next = await events.next();
          break;
        } catch (error) {
          if (ended) return;
          if (!(error instanceof StoreUnavailableError) || attempt > (options.storeRetries ?? 30)) {
            end();
            controller.error(error);
            return;
          }
          // A store hiccup: the heartbeat keeps the connection open; resume after the last event.
          await new Promise((resolve) => setTimeout(resolve, options.storeRetryMs ?? 1000));
          if (ended) return;
          events = subscribe(lastId);
        }
      }
      if (ended) return;
      if (next.done) {
        end();
        controller.close();
        return;
      }
      lastId = next.value.id;
      controller.enqueue(encoder.encode(formatSseEvent(next.value)));
    },
    async cancel() {
      clientLeft();
      await events.return?.();
    },
  }, { highWaterMark: 0 });

  return new Response(body, {
    status: options.status ?? 200,
    headers: { ...SSE_HEADERS, ...options.headers },
  });
}

/** How long {@linkcode resumeSseResponse} waits for a finished job's next stored event. */
const PEEK_MS = 2000;

/**
 * The events of `record` after `options.afterId`, for a client that (re)connects: `204 No
 * Content` when the job has ended and no event follows `afterId` (an `EventSource` that received
 * the terminal event and reconnects, or any client asking after the end), so that the client
 * stops; otherwise {@linkcode sseResponse}: missed events are replayed (from the first one when
 * `afterId` is undefined), then live ones follow.
 */
export async function resumeSseResponse(
  queue: JobQueue,
  record: JobRecord,
  options: SseOptions,
): Promise<Response> {
  if (isTerminal(record.status) && !await hasEventsAfter(queue, record.id, options.afterId)) {
    return new Response(null, { status: 204, headers: { "Cache-Control": "no-store" } });
  }
  return sseResponse(queue, record.id, options);
}

/**
 * Whether an event follows `afterId` in a finished job's stream. Its events are all stored, so the
 * answer comes at once; should it not (a terminal event still being published), assume one does.
 */
async function hasEventsAfter(
  queue: JobQueue,
  id: string,
  afterId: string | undefined,
): Promise<boolean> {
  const peek = new AbortController();
  const timer = setTimeout(() => peek.abort(), PEEK_MS);
  const events = queue.events(id, afterId, peek.signal)[Symbol.asyncIterator]();
  try {
    const next = await events.next();
    return !next.done || peek.signal.aborted;
  } finally {
    clearTimeout(timer);
    peek.abort();
    await events.return?.();
  }
}
