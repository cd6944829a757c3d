import assert from "node:assert/strict";
import fc from "fast-check";
import {
  carrierOf,
  clipToLevel,
  markBlock,
  markLevels,
  readBit,
  readBlock,
  writeBit,
} from "../../pipeline/watermark/block_code.ts";

const block = (...head: number[]) => [...head, ...new Array(16 - head.length).fill(0)];

Deno.test("carrierOf takes the first largest magnitude past position 0, as numpy's argmax", () => {
  assert.equal(carrierOf(block(99, 1, -7, 7)), 2, "|−7| first; position 0 is never the carrier");
  assert.equal(carrierOf(block(0, 5, 5, 5)), 1);
  assert.equal(carrierOf(new Array(16).fill(0)), 1);
  assert.equal(carrierOf([...new Array(15).fill(3), 4]), 15);
});

Deno.test("writeBit puts |v| at 9 or 27 within its step of 36, keeping the sign", () => {
  assert.deepEqual([writeBit(100, 0), writeBit(100, 1), writeBit(-100, 1)], [81, 99, -99]);
  assert.deepEqual([writeBit(0, 0), writeBit(0, 1), writeBit(35.9, 1), writeBit(36, 0)], [
    9,
    27,
    27,
    45,
  ]);
});

Deno.test("readBit reads 1 only above 18 within the step, on the magnitude", () => {
  assert.deepEqual([81, 99, -99, 90, 90.000001, 36, 54, 71.9].map(readBit), [
    0,
    1,
    1,
    0, // 90 mod 36 = 18 is not above 18
    1,
    0,
    0,
    1,
  ]);
});

Deno.test("markLevels costs the reference's level and its two neighbours, cheapest first", () => {
  // Smooth block, carrier 275: 261 (bit 0, the reference's) would have to clip the 274s and the
  // twelve 270s: 14² + 2·13² + 12·9² = 1506; 297 costs 22² = 484; 225 costs 50² + 2·49² + 12·45².
  const smooth = [270, 275, 274, 274, ...new Array(12).fill(270)];
  assert.deepEqual(markLevels(smooth, 0), [297, 261, 225]);
  // Textured block, carrier 100: the reference's 99 costs 1; 135 costs 35², 63 costs 37² + 0.
  assert.deepEqual(markLevels(block(0, 100, 10), 1), [99, 135, 63]);
  // Level 9 (bit 0 at carrier 20) has no level below it.
  assert.deepEqual(markLevels(block(0, 20), 0), [9, 45]);
  // A tie goes to the reference's level: carrier 27, bit 0 → 9 or 45, both at cost 18².
  assert.deepEqual(markLevels(block(0, 27), 0), [9, 45]);
});

Deno.test("clipToLevel moves the carrier and clips only what stands above the level", () => {
  const b = block(5, 50, -40, 30, 20);
  assert.deepEqual([...clipToLevel(b, 45)], block(5, 45, -40, 30, 20));
  assert.deepEqual([...clipToLevel(b, 27)], block(5, 27, -27, 27, 20));
  assert.deepEqual([...clipToLevel(block(500, 1), 9)], block(500, 9), "position 0 never changes");
});

Deno.test("markBlock writes the smooth block at 297 and the textured one at 99", () => {
  const smooth = [270, 275, 274, 274, ...new Array(12).fill(270)];
  assert.deepEqual([...markBlock(smooth, 0)], [270, 297, 274, 274, ...new Array(12).fill(270)]);
  assert.deepEqual([...markBlock(block(0, 100, 10), 1)], block(0, 99, 10));
});

Deno.test("a marked block reads its bit even after every coefficient moves by up to ±8.99", () => {
  // The carrier sits at q ≡ 9 or 27 (mod 36) and nothing stands above q, so after any moves below
  // 9 the largest value lies within ±9 of q, where every value reads as q does.
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: 0, max: 510, noNaN: true }), { minLength: 16, maxLength: 16 }),
      fc.constantFrom<0 | 1>(0, 1),
      fc.array(fc.double({ min: -8.99, max: 8.99, noNaN: true }), { minLength: 16, maxLength: 16 }),
      (values, bit, noise) => {
        const marked = markBlock(values, bit);
        assert.equal(readBlock(marked), bit);
        assert.equal(readBlock(marked.map((v, p) => v + noise[p])), bit);
      },
    ),
  );
});
