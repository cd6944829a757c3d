/** `Range: bytes=…` parsing for the video route. */

import assert from "node:assert/strict";
import { parseByteRange } from "../../functions/byte_range.ts";

Deno.test({
  name: "parseByteRange() reads start-end, start- and -suffix, clamped to the size",
  permissions: "none",
  fn() {
    assert.deepEqual(parseByteRange("bytes=0-99", 1000), { start: 0, end: 99 });
    assert.deepEqual(parseByteRange("bytes=500-", 1000), { start: 500, end: 999 });
    assert.deepEqual(parseByteRange("bytes=-100", 1000), { start: 900, end: 999 });
    assert.deepEqual(parseByteRange("bytes=-5000", 1000), { start: 0, end: 999 });
    assert.deepEqual(parseByteRange("bytes=990-2000", 1000), { start: 990, end: 999 });
  },
});

Deno.test({
  name: "parseByteRange() calls a range past the end unsatisfiable and ignores what it cannot use",
  permissions: "none",
  fn() {
    assert.equal(parseByteRange("bytes=1000-", 1000), "unsatisfiable");
    assert.equal(parseByteRange("bytes=1000-1001", 1000), "unsatisfiable");
    assert.equal(parseByteRange("bytes=-0", 1000), "unsatisfiable");
    assert.equal(parseByteRange(undefined, 1000), undefined);
    assert.equal(parseByteRange("bytes=5-1", 1000), undefined);
    assert.equal(parseByteRange("bytes=0-1,5-6", 1000), undefined);
    assert.equal(parseByteRange("items=0-1", 1000), undefined);
    assert.equal(parseByteRange("bytes=-", 1000), undefined);
  },
});
