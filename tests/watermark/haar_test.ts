import assert from "node:assert/strict";
import fc from "fast-check";
import { haarApproximation } from "../../pipeline/watermark/haar.ts";

Deno.test("haarApproximation sums each 2×2 block as pywt.dwt2(x, 'haar')[0] does, to the last bit", () => {
  // pywt 1.1.1 gives 50.00000000000001 for [[10, 20], [30, 40]]: s·s is 0.5000000000000001 in
  // float64, so its sums are not exact halves; the rows-then-columns order decides the last bit.
  const s = Math.SQRT1_2;
  assert.deepEqual([...haarApproximation(new Uint8Array([10, 20, 30, 40]), 2, 2)], [
    50.00000000000001,
  ]);
  assert.equal(s * (s * 10 + s * 30) + s * (s * 20 + s * 40), 50.00000000000001);
  // Values from pywt where summing columns first would differ in the last place (x is
  // [[a, b], [c, d]]; pywt pairs a with c first).
  const cases: [number[], number][] = [
    [[69, 211, 65, 104], 224.50000000000003], // columns first: 224.50000000000006
    [[164, 140, 21, 7], 166], // columns first: 166.00000000000003
    [[5, 192, 15, 71], 141.50000000000003], // columns first: 141.5
  ];
  for (const [x, expected] of cases) {
    assert.equal(haarApproximation(new Uint8Array(x), 2, 2)[0], expected, `x = ${x}`);
  }
  // 4 × 2 plane → 2 × 1 band: the second coefficient sums rows 2–3.
  assert.deepEqual(
    [...haarApproximation(new Uint8Array([0, 0, 0, 0, 1, 2, 3, 4]), 4, 2)],
    [0, s * (s * 1 + s * 3) + s * (s * 2 + s * 4)],
  );
});

Deno.test("haarApproximation is half the 2×2 sum within float rounding", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (plane) => {
      const band = haarApproximation(plane, 4, 4);
      for (let i = 0; i < 2; i++) {
        for (let j = 0; j < 2; j++) {
          const sum = plane[8 * i + 2 * j] + plane[8 * i + 2 * j + 1] + plane[8 * i + 4 + 2 * j] +
            plane[8 * i + 4 + 2 * j + 1];
          assert.ok(Math.abs(band[2 * i + j] - sum / 2) < 1e-12);
        }
      }
    }),
  );
});

Deno.test("haarApproximation refuses odd sizes and wrong lengths", () => {
  assert.throws(() => haarApproximation(new Uint8Array(6), 3, 2), /even-sized.*3 × 2/);
  assert.throws(() => haarApproximation(new Uint8Array(5), 2, 2), /5 samples/);
});
