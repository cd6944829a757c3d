/**
 * The service's log: one line per event (a request, a job's transition, start, ready, shutdown),
 * with a level, a human message and structured fields, written by LogTape
 * (`@logtape/logtape`: zero dependencies, written for Deno, synchronous console sink — no worker
 * threads, nothing lost on `Deno.exit`).
 *
 * - `LOG_LEVEL`: `debug`, `info` (default), `warning` (or `warn`), `error`. Probes (`/healthz`,
 *   `/readyz`, `/metrics`) are logged at `debug`, so a kubelet's polling stays out of the way.
 * - `LOG_FORMAT`: `json` — JSON lines (`@timestamp`, `level`, `message`, `logger`, then every field
 *   flattened: `event`, `generation`, `status`, …), the default when stdout is not a terminal
 *   (containers, pipes); `text` — `12:00:01.123 INF svd·http: POST /v1/generations 202 …`, coloured
 *   unless `NO_COLOR` is set, the default on a terminal.
 *
 * Everything goes to stdout, in order. Every line has an `event` field, a stable name to filter
 * on (`request`, `job_started`, `job_done`, …); the message says the same for a person.
 *
 * @example
 * ```ts
 * import { configureLogging, getLog, readLogConfig } from "./functions/logging.ts";
 * configureLogging(readLogConfig((name) => Deno.env.get(name), Deno.stdout.isTerminal()));
 * getLog("job").info("job 3f2a done in 12.3 s", { event: "job_done", generation: "3f2a…" });
 * ```
 *
 * @module
 */

import {
  configureSync,
  getAnsiColorFormatter,
  getConsoleSink,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type LogLevel,
} from "@logtape/logtape";

/** The `LOG_LEVEL` values, least severe first. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;

/** One value of `LOG_LEVEL`. */
export type ServiceLogLevel = typeof LOG_LEVELS[number];

/** The `LOG_FORMAT` values. */
export const LOG_FORMATS = ["json", "text"] as const;

/** One value of `LOG_FORMAT`. */
export type LogFormat = typeof LOG_FORMATS[number];

/** How the service logs. */
export interface LogConfig {
  readonly level: ServiceLogLevel;
  readonly format: LogFormat;
  /** ANSI colours in the text format. */
  readonly colors: boolean;
}

/** A line's fields: `event` names it; the rest are flattened into the JSON line. */
export type LogFields = { readonly event: string } & Readonly<Record<string, unknown>>;

/** A component's log: one line per call, a plain message (no placeholders) and its fields. */
export interface Log {
  debug(message: string, fields: LogFields): void;
  info(message: string, fields: LogFields): void;
  warning(message: string, fields: LogFields): void;
  error(message: string, fields: LogFields): void;
}

/**
 * Reads `LOG_LEVEL` and `LOG_FORMAT` (case and surrounding spaces ignored; unset or empty: `info`,
 * and `json` unless stdout is a terminal) and `NO_COLOR`.
 *
 * @throws {RangeError} naming the variable, the value and the allowed ones.
 */
export function readLogConfig(
  env: (name: string) => string | undefined,
  stdoutIsTerminal: boolean,
): LogConfig {
  const problems: string[] = [];
  const read = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = env(name);
    let value = (raw ?? "").trim().toLowerCase();
    if (value === "") return fallback;
    if (name === "LOG_LEVEL" && value === "warn") value = "warning";
    const found = allowed.find((a) => a === value);
    if (found !== undefined) return found;
    problems.push(`${name} = "${raw}" is not supported: allowed ${allowed.join(" | ")}`);
    return fallback;
  };
  const level = read("LOG_LEVEL", LOG_LEVELS, "info");
  const format = read("LOG_FORMAT", LOG_FORMATS, stdoutIsTerminal ? "text" : "json");
  if (problems.length > 0) throw new RangeError(problems.join("; "));
  return { level, format, colors: format === "text" && !env("NO_COLOR") };
}

/**
 * Sends the `svd` loggers to stdout at `config.level` and above, in `config.format`. Until it is
 * called (in tests, say) the loggers write nothing. Calling it again replaces the configuration.
 */
export function configureLogging(config: LogConfig): void {
  const textOptions = { timestamp: "time", value: "bare" } as const;
  const formatter = config.format === "json"
    ? getJsonLinesFormatter({ properties: "flatten" })
    : config.colors
    ? getAnsiColorFormatter(textOptions)
    : getTextFormatter(textOptions);
  // Every level to stdout: one stream keeps the lines in order.
  const toStdout = Object.fromEntries(
    (["trace", "debug", "info", "warning", "error", "fatal"] as const).map((l) => [l, "log"]),
  ) as Record<LogLevel, "log">;
  configureSync({
    reset: true,
    sinks: { stdout: getConsoleSink({ formatter, levelMap: toStdout }) },
    loggers: [
      { category: ["svd"], lowestLevel: config.level, sinks: ["stdout"] },
      // LogTape's own warnings (a sink that throws) go to the same place.
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stdout"] },
    ],
  });
}

/** The log of one component (`http`, `job`, `service`, …): logger category `svd.<component>`. */
export function getLog(component: string): Log {
  const logger = getLogger(["svd", component]);
  // The message is plain text: braces are escaped so that LogTape does not read placeholders in
  // it (a path or an error message may hold some); the values travel as fields.
  const line =
    (level: "debug" | "info" | "warning" | "error") => (message: string, fields: LogFields) =>
      logger[level](message.replaceAll("{", "{{").replaceAll("}", "}}"), { ...fields });
  return {
    debug: line("debug"),
    info: line("info"),
    warning: line("warning"),
    error: line("error"),
  };
}

/** Milliseconds as a short duration for messages: `840 ms`, `12.3 s`, `4 min 05 s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, "0")} s`;
}

/** The message text of an error (its `message`, else its string form). */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
