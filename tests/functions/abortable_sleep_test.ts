/** The back-off pause shared by the worker loop and the Redis event reader. */

import assert from "node:assert/strict";
import { abortableSleep } from "../../functions/jobs/_abortable_sleep.ts";

Deno.test({
  name: "abortableSleep() waits its time when nothing aborts",
  permissions: "none",
  async fn() {
    const started = performance.now();
    await abortableSleep(60, new AbortController().signal);
    assert.ok(performance.now() - started >= 55, "returned before its time");
  },
});

Deno.test({
  name: "abortableSleep() returns as soon as its signal aborts, without throwing",
  permissions: "none",
  async fn() {
    const stop = new AbortController();
    setTimeout(() => stop.abort(new Error("shutting down")), 20);
    const started = performance.now();
    await abortableSleep(60_000, stop.signal);
    assert.ok(performance.now() - started < 5_000, "kept waiting after the abort");
  },
});

Deno.test({
  name: "abortableSleep() returns at once when its signal has already aborted",
  permissions: "none",
  async fn() {
    const stop = new AbortController();
    stop.abort();
    const started = performance.now();
    await abortableSleep(60_000, stop.signal);
    assert.ok(performance.now() - started < 5_000, "waited although the signal had aborted");
  },
});
