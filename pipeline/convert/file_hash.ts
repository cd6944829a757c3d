/**
 * Streaming sha256 of a file.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Hex sha256 of the file at `path`, read in 8 MiB pieces. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(8 * 1024 * 1024);
  while (true) {
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}
