/**
 * A one-line terminal progress bar on stderr: bytes, percent, rate and ETA.
 *
 * On a terminal the line is redrawn in place (at most every 100 ms), cut to the terminal's width
 * so it never wraps (a wrapped line would leave one line per redraw); otherwise (CI logs, a pipe)
 * it prints a plain line at most every 10 s, and always one final line from `done()`.
 *
 * @example
 * ```ts
 * import { ProgressBar } from "./progress_bar.ts";
 * const bar = new ProgressBar({ label: "svd_xt.safetensors" });
 * bar.update(4_020_000_000, 9_559_625_980);
 * // svd_xt.safetensors [########............] 42.1%  4.02 GB / 9.56 GB  85.3 MB/s  ETA 1m05s
 * bar.done();
 * ```
 *
 * @module
 */

/** Options of {@linkcode ProgressBar}. Everything but `label` is for tests and special sinks. */
export interface ProgressBarOptions {
  /** Shown first on the line (a file or task name). */
  readonly label: string;
  /** Where text goes; default: synchronously to stderr. */
  readonly write?: (text: string) => void;
  /** Redraw in place; default: whether stderr is a terminal. */
  readonly isTerminal?: boolean;
  /** Clock in milliseconds; default `performance.now`. */
  readonly now?: () => number;
  /** Minimum time between two lines; default 100 ms on a terminal, 10 s otherwise. */
  readonly minIntervalMs?: number;
  /** Width of the `[####....]` part in characters; default 20. */
  readonly barWidth?: number;
  /** What is counted: bytes (default: `4.02 GB / 9.56 GB  85 MB/s`) or items (`3 / 25  1.2/s`). */
  readonly unit?: "bytes" | "items";
  /** The terminal's width in characters; default: stderr's, read at every redraw. */
  readonly columns?: () => number;
}

const encoder = new TextEncoder();

function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stderr.writeSync(bytes.subarray(offset));
}

function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 80;
  }
}

function stderrIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/** A progress line for byte counts. `update` is bound, so it can be passed as a callback. */
export class ProgressBar {
  readonly label: string;
  readonly #write: (text: string) => void;
  readonly #terminal: boolean;
  readonly #now: () => number;
  readonly #minInterval: number;
  readonly #barWidth: number;
  readonly #unit: "bytes" | "items";
  readonly #columns: () => number;
  /** First `done` seen and when: the rate counts only bytes moved in this run, not resumed ones. */
  #start: { done: number; at: number } | undefined;
  #lastDrawAt = -Infinity;
  #last: { done: number; total: number | undefined; detail: string | undefined } | undefined;
  #finished = false;

  constructor(options: ProgressBarOptions) {
    this.label = options.label;
    this.#write = options.write ?? writeStderr;
    this.#terminal = options.isTerminal ?? stderrIsTerminal();
    this.#now = options.now ?? (() => performance.now());
    this.#minInterval = options.minIntervalMs ?? (this.#terminal ? 100 : 10_000);
    this.#barWidth = options.barWidth ?? 20;
    this.#unit = options.unit ?? "bytes";
    this.#columns = options.columns ?? terminalColumns;
  }

  /**
   * Records progress: `done` of `total` bytes (`total` undefined when unknown); `detail` is shown
   * after the label (e.g. the part being written).
   */
  update = (done: number, total?: number, detail?: string): void => {
    if (this.#finished) return;
    const now = this.#now();
    this.#start ??= { done, at: now };
    this.#last = { done, total, detail };
    if (now - this.#lastDrawAt < this.#minInterval) return;
    this.#lastDrawAt = now;
    this.#draw(now);
  };

  /** Draws the last state once more and ends the line. Further updates are ignored. */
  done(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#last) this.#draw(this.#now());
    if (this.#terminal && this.#last) this.#write("\n");
  }

  /**
   * Ends the line where it stands (Ctrl-C, a failure), so what is printed next starts on a line
   * of its own. Further updates are ignored.
   */
  stop(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#terminal && this.#lastDrawAt > -Infinity) this.#write("\n");
  }

  #draw(now: number): void {
    const { done, total, detail } = this.#last!;
    const elapsedMs = now - this.#start!.at;
    const line = formatProgress({
      label: detail ? `${this.label} ${detail}` : this.label,
      done,
      total,
      movedBytes: done - this.#start!.done,
      elapsedMs,
      barWidth: this.#barWidth,
      unit: this.#unit,
      // Three columns short of the edge: a line that fills the last column wraps on some
      // terminals, and the terminal echoes Ctrl-C as "^C" where the cursor stands.
      maxWidth: this.#terminal ? this.#columns() - 3 : undefined,
    });
    // "\r\x1b[2K": back to column 0 and clear the line, so a shorter line leaves no tail.
    this.#write(this.#terminal ? `\r\x1b[2K${line}` : `${line}\n`);
  }
}

/** What {@linkcode formatProgress} shows. */
export interface ProgressState {
  readonly label: string;
  readonly done: number;
  readonly total: number | undefined;
  /** Bytes moved during `elapsedMs` (excludes bytes resumed from an earlier run). */
  readonly movedBytes: number;
  readonly elapsedMs: number;
  readonly barWidth?: number;
  /** Default "bytes". */
  readonly unit?: "bytes" | "items";
  /** Longest line: the bar narrows first, then the end is cut with `…`. Default: no limit. */
  readonly maxWidth?: number;
}

/**
 * One progress line: `label [####....] 42.1%  4.02 GB / 9.56 GB  85.3 MB/s  ETA 1m05s`. Without a
 * total the bar, percent and ETA are left out. Over `maxWidth`, the bar narrows (down to none),
 * then the line is cut.
 */
export function formatProgress(state: ProgressState): string {
  const width = state.barWidth ?? 20;
  const max = state.maxWidth ?? Infinity;
  const line = progressLine(state, width);
  if (line.length <= max) return line;
  const narrower = progressLine(state, Math.max(0, width - (line.length - max)));
  return narrower.length <= max ? narrower : `${narrower.slice(0, Math.max(0, max - 1))}…`;
}

function progressLine(state: ProgressState, width: number): string {
  const { label, done, total, movedBytes, elapsedMs } = state;
  const parts: string[] = [];
  const rate = elapsedMs > 0 ? (movedBytes * 1000) / elapsedMs : 0;
  const amount = state.unit === "items" ? (n: number) => String(Math.round(n)) : formatBytes;
  const perSecond = state.unit === "items" ? `${rate.toFixed(2)}/s` : `${formatBytes(rate)}/s`;
  if (total !== undefined && total > 0) {
    const fraction = Math.min(Math.max(done / total, 0), 1);
    const filled = Math.round(fraction * width);
    parts.push(width > 0 ? `${label} [${"#".repeat(filled)}${".".repeat(width - filled)}]` : label);
    parts.push(`${(fraction * 100).toFixed(1).padStart(5)}%`);
    parts.push(`${amount(done)} / ${amount(total)}`);
  } else {
    parts.push(label, amount(done));
  }
  if (rate > 0) parts.push(perSecond);
  if (total !== undefined && total > done && rate > 0) {
    parts.push(`ETA ${formatDuration(((total - done) / rate) * 1000)}`);
  }
  return parts.join("  ");
}

/** Decimal units, as Hugging Face lists file sizes: `9.56 GB`, `391 MB`, `512 B`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/** `59s`, `1m05s`, `2h03m`. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}
