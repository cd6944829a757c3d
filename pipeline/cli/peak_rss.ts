/**
 * Peak resident memory of this process.
 *
 * @module
 */

import process from "node:process";

/** Peak RSS in bytes (getrusage's ru_maxrss, reported in KiB on Linux). */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}
