import assert from "node:assert/strict";
import { philox4x32, randomNormal } from "../pipeline/random.ts";

const hex = (words: Uint32Array) => Array.from(words, (w) => w.toString(16).padStart(8, "0"));

Deno.test({
  name: "philox4x32() matches Random123's known-answer vectors for Philox4x32-10",
  permissions: "none",
  fn() {
    const out = new Uint32Array(4);
    assert.deepEqual(hex(philox4x32(0, 0, 0, 0, 0, 0, out)), [
      "6627e8d5",
      "e169c58d",
      "bc57ac4c",
      "9b00dbd8",
    ]);
    const ones = 0xffffffff;
    assert.deepEqual(hex(philox4x32(ones, ones, ones, ones, ones, ones, out)), [
      "408f276d",
      "41c83b0e",
      "a20bc7c6",
      "6d5451fd",
    ]);
    assert.deepEqual(
      hex(philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out)),
      ["d16cfe09", "94fdcceb", "5001e420", "24126ea1"],
    );
  },
});

Deno.test({
  name: "randomNormal() gives the same values for the same seed, whatever the shape",
  permissions: "none",
  fn() {
    const a = randomNormal(23, [2, 3, 5]);
    assert.deepEqual(a.dims, [2, 3, 5]);
    assert.deepEqual(Array.from(randomNormal(23, [2, 3, 5]).data), Array.from(a.data));
    // element i depends only on (seed, stream, i): a shorter request is a prefix
    assert.deepEqual(Array.from(randomNormal(23, [7]).data), Array.from(a.data.subarray(0, 7)));
    assert.notDeepEqual(Array.from(randomNormal(24, [30]).data), Array.from(a.data));
    assert.notDeepEqual(Array.from(randomNormal(23, [30], { stream: 1 }).data), Array.from(a.data));
    assert.notDeepEqual(
      Array.from(randomNormal(2 ** 32, [30]).data),
      Array.from(randomNormal(0, [30]).data),
    );
  },
});

Deno.test({
  name: "randomNormal(23) starts with the pinned values of Philox4x32-10 + Box-Muller",
  permissions: "none",
  fn() {
    // Block 0 under key [23, 0], counter [0, 0, 0, 0]; z = sqrt(-2 ln((w0 + 0.5) / 2^32)) * cos(2 pi w1 / 2^32)
    assert.deepEqual(Array.from(randomNormal(23, [6]).data), [
      1.2573177814483643,
      1.0736407041549683,
      -1.3640632629394531,
      -0.08351545035839081,
      0.5770832896232605,
      -1.2515279054641724,
    ]);
    const words = philox4x32(0, 0, 0, 0, 23, 0, new Uint32Array(4));
    const z0 = Math.sqrt(-2 * Math.log((words[0] + 0.5) / 2 ** 32)) *
      Math.cos(2 * Math.PI * words[1] / 2 ** 32);
    assert.equal(randomNormal(23, [1]).data[0], Math.fround(z0));
  },
});

Deno.test({
  name: "randomNormal() has mean 0 and variance 1 over 1e5 draws",
  permissions: "none",
  fn() {
    const { data } = randomNormal(7, [100_000]);
    let sum = 0;
    let squares = 0;
    for (const v of data) {
      sum += v;
      squares += v * v;
    }
    const mean = sum / data.length;
    const variance = squares / data.length - mean * mean;
    // standard errors: mean 1/sqrt(n) = 0.0032, variance sqrt(2/n) = 0.0045; bounds are ~6 of them
    assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
    assert.ok(Math.abs(variance - 1) < 0.03, `variance ${variance}`);
    assert.ok(data.every(Number.isFinite));
  },
});

Deno.test({
  name: "randomNormal() rejects seeds and streams outside their ranges",
  permissions: "none",
  fn() {
    for (const seed of [-1, 1.5, 2 ** 53, NaN]) {
      assert.throws(() => randomNormal(seed, [1]), RangeError);
    }
    for (const stream of [-1, 2 ** 32, 0.5]) {
      assert.throws(() => randomNormal(0, [1], { stream }), RangeError);
    }
  },
});
