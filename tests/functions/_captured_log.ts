/**
 * A {@linkcode Log} that keeps its lines, for tests that check what a component logs.
 *
 * @module
 */

import type { Log, LogFields } from "../../functions/logging.ts";

/** One kept line: its level, message and fields. */
export type CapturedLine = LogFields & { readonly level: string; readonly message: string };

/** A log that keeps every line in `lines`. */
export function capturedLog(): Log & { readonly lines: CapturedLine[] } {
  const lines: CapturedLine[] = [];
  const keep = (level: string) => (message: string, fields: LogFields) =>
    void lines.push({ ...fields, level, message });
  return {
    lines,
    debug: keep("debug"),
    info: keep("info"),
    warning: keep("warning"),
    error: keep("error"),
  };
}
