/**
 * `Range: bytes=…` for one stored clip (RFC 9110 §14): a single range, `start-end`, `start-` or
 * `-suffix`. Several ranges, another unit or bad syntax are ignored (the whole clip is sent, as
 * the RFC allows); a syntactically valid range that starts past the end is unsatisfiable (416).
 *
 * @example
 * ```ts
 * import { parseByteRange } from "./byte_range.ts";
 * parseByteRange("bytes=0-99", 1000); // { start: 0, end: 99 }
 * parseByteRange("bytes=-100", 1000); // { start: 900, end: 999 }
 * parseByteRange("bytes=2000-", 1000); // "unsatisfiable"
 * ```
 *
 * @module
 */

/** An inclusive byte range within the resource. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * The range `header` asks for in a resource of `size` bytes: a range, `"unsatisfiable"`, or
 * undefined for "send everything".
 */
export function parseByteRange(
  header: string | undefined,
  size: number,
): ByteRange | "unsatisfiable" | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  const [first, last] = [match[1], match[2]];
  if (first === "") { // suffix: the last N bytes
    const length = Number(last);
    if (length === 0) return "unsatisfiable";
    return size === 0 ? "unsatisfiable" : { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return undefined; // invalid: ignored
  if (start >= size) return "unsatisfiable";
  return { start, end: last === "" ? size - 1 : Math.min(Number(last), size - 1) };
}
