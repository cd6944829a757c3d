/**
 * A wait that ends early, without throwing, when its signal aborts: the worker loop's and the Redis
 * event reader's back-off pauses, which must not hold a shutdown for their whole length.
 *
 * @module
 */

/**
 * Resolves after `ms`, or as soon as `signal` aborts (at once if it already has); never rejects.
 *
 * @example
 * ```ts
 * import { abortableSleep } from "./_abortable_sleep.ts";
 * const stop = new AbortController();
 * setTimeout(() => stop.abort(), 10);
 * await abortableSleep(60_000, stop.signal); // returns after ~10 ms
 * ```
 */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
