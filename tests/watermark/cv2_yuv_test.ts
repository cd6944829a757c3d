import assert from "node:assert/strict";
import fc from "fast-check";
import { uOfPixel, uPlane, yuvOfPixel } from "../../pipeline/watermark/cv2_yuv.ts";

Deno.test("yuvOfPixel gives what cv2.cvtColor(COLOR_BGR2YUV) gives for 8-bit pixels", () => {
  // Computed by OpenCV 4.6.0 (sgm's pin) for these BGR pixels. By hand for BGR (10, 200, 30):
  // Y = (1868·10 + 9617·200 + 4899·30 + 8192) >> 14 = 2097242 >> 14 = 128,
  // U = ((10 − 128)·8061 + 128·16384 + 8192) >> 14 = 1154146 >> 14 = 70,
  // V = ((30 − 128)·14369 + 128·16384 + 8192) >> 14 = 697182 >> 14 = 42.
  const cases: [bgr: [number, number, number], yuv: [number, number, number]][] = [
    [[0, 0, 0], [0, 128, 128]],
    [[255, 255, 255], [255, 128, 128]],
    [[10, 200, 30], [128, 70, 42]],
    [[255, 0, 128], [67, 220, 181]],
    [[0, 0, 255], [76, 91, 255]], // V clamps at 255
    [[255, 255, 0], [179, 165, 0]], // V clamps at 0
    [[1, 2, 3], [2, 128, 129]],
    [[128, 128, 128], [128, 128, 128]],
    [[37, 91, 250], [132, 81, 231]],
    [[250, 91, 37], [93, 205, 79]],
  ];
  for (const [[b, g, r], yuv] of cases) {
    assert.deepEqual(yuvOfPixel(r, g, b), yuv, `BGR ${[b, g, r]}`);
  }
});

Deno.test("uPlane and uOfPixel agree with yuvOfPixel's U on any pixels, cropped to rows × cols", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 6 }),
      fc.uint8Array({ minLength: 108, maxLength: 108 }), // 6 × 6 × 3
      (rows, cols, rgb) => {
        const plane = uPlane(rgb, 6, rows, cols);
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) {
            const p = (r * 6 + c) * 3;
            const u = yuvOfPixel(rgb[p], rgb[p + 1], rgb[p + 2])[1];
            assert.equal(plane[r * cols + c], u);
            assert.equal(uOfPixel(rgb[p], rgb[p + 1], rgb[p + 2]), u);
          }
        }
      },
    ),
  );
});
