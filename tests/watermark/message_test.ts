import assert from "node:assert/strict";
import {
  FOUND_MATCHING_BITS,
  matchingBits,
  SGM_WATERMARK_BITS,
  sgmVerdict,
} from "../../pipeline/watermark/message.ts";

Deno.test("sgm's message is 0xB3EC907BB19E as 48 bits, most significant first", () => {
  // sgm: WATERMARK_MESSAGE = 0b101100111110110010010000011110111011000110011110
  assert.equal(
    SGM_WATERMARK_BITS.join(""),
    "101100111110110010010000011110111011000110011110",
  );
  assert.equal(SGM_WATERMARK_BITS.length, 48);
});

Deno.test("sgmVerdict draws detect.py's lines at 27, 33 and 35 matching bits", () => {
  assert.deepEqual(
    [0, 27, 28, 33, 34, 35, 36, 48].map(sgmVerdict),
    ["none", "none", "partial", "partial", "likely", "likely", "very likely", "very likely"],
  );
  assert.equal(FOUND_MATCHING_BITS, 36);
});

Deno.test("matchingBits counts equal positions and refuses a different length", () => {
  assert.equal(matchingBits(SGM_WATERMARK_BITS), 48);
  assert.equal(matchingBits(SGM_WATERMARK_BITS.map((b) => 1 - b)), 0);
  assert.equal(matchingBits(new Array(48).fill(0)), 21, "the message has 21 zeros");
  assert.throws(() => matchingBits([1, 0]), /Expected 48 bits to compare, got 2/);
});
