/**
 * `LOG_LEVEL` and `LOG_FORMAT`: JSON lines with flat fields where stdout is not a terminal,
 * readable one-line text on a terminal, lines below the level dropped, bad values named.
 *
 * Run: deno test tests/functions/logging_test.ts
 */

import assert from "node:assert/strict";
import { resetSync } from "@logtape/logtape";
import {
  configureLogging,
  formatDuration,
  getLog,
  type LogConfig,
  readLogConfig,
} from "../../functions/logging.ts";

/** What the `svd` loggers write to stdout (console.log) under `config` while `fn` runs. */
function written(config: LogConfig, fn: () => void): string[] {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    configureLogging(config);
    fn();
  } finally {
    resetSync();
    console.log = original;
  }
  return lines;
}

const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("readLogConfig() defaults to info, JSON off a terminal and coloured text on one", () => {
  assert.deepEqual(readLogConfig(env({}), false), { level: "info", format: "json", colors: false });
  assert.deepEqual(readLogConfig(env({}), true), { level: "info", format: "text", colors: true });
  assert.deepEqual(readLogConfig(env({ NO_COLOR: "1" }), true), {
    level: "info",
    format: "text",
    colors: false,
  });
  assert.deepEqual(readLogConfig(env({ LOG_LEVEL: " Warn ", LOG_FORMAT: "JSON" }), true), {
    level: "warning",
    format: "json",
    colors: false,
  });
});

Deno.test("readLogConfig() names each bad variable, its value and the allowed ones", () => {
  assert.throws(
    () => readLogConfig(env({ LOG_LEVEL: "loud", LOG_FORMAT: "xml" }), false),
    (error: Error) =>
      error instanceof RangeError &&
      error.message.includes('LOG_LEVEL = "loud" is not supported: allowed debug | info') &&
      error.message.includes('LOG_FORMAT = "xml" is not supported: allowed json | text'),
  );
});

Deno.test("the JSON format writes one line per call, with the fields flat beside the message", () => {
  const lines = written({ level: "info", format: "json", colors: false }, () => {
    getLog("http").info("GET /x/{id} 200 1.5 ms", { event: "request", status: 200, route: "/x" });
  });
  assert.equal(lines.length, 1);
  const line = JSON.parse(lines[0]);
  assert.equal(line.level, "INFO");
  assert.equal(line.logger, "svd.http");
  assert.equal(line.message, "GET /x/{id} 200 1.5 ms", "braces in a message are kept as they are");
  assert.equal(line.event, "request");
  assert.equal(line.status, 200);
  assert.ok(!Number.isNaN(Date.parse(line["@timestamp"])));
});

Deno.test("the text format is one readable line: time, level, component, message", () => {
  const lines = written({ level: "info", format: "text", colors: false }, () => {
    getLog("job").warning("job abc handed back", { event: "job_released", generation: "abc" });
  });
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^\d\d:\d\d:\d\d\.\d{3} \[WRN\] svd·job: job abc handed back$/);
});

Deno.test("lines below LOG_LEVEL are dropped", () => {
  const lines = written({ level: "warning", format: "json", colors: false }, () => {
    const log = getLog("http");
    log.debug("probe", { event: "request" });
    log.info("request", { event: "request" });
    log.warning("slow", { event: "request" });
    log.error("broken", { event: "request" });
  });
  assert.deepEqual(lines.map((l) => JSON.parse(l).message), ["slow", "broken"]);
});

Deno.test("nothing is written before logging is configured (tests stay quiet)", () => {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    getLog("http").error("unseen", { event: "request" });
  } finally {
    console.log = original;
  }
  assert.deepEqual(lines, []);
});

Deno.test("formatDuration() reads like a person would say it", () => {
  assert.equal(formatDuration(840.4), "840 ms");
  assert.equal(formatDuration(12_345), "12.3 s");
  assert.equal(formatDuration(245_000), "4 min 05 s");
});
