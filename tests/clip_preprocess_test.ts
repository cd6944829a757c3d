/**
 * sgm's CLIP preprocessing: maths on hand-computed numbers, properties, and the reference fixture
 * (`clip.safetensors`).
 *
 * Run: deno test --allow-read --allow-env tests/clip_preprocess_test.ts
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  antialiasBlur,
  antialiasedResize,
  clipPreprocess,
  gaussianBlur2d,
  gaussianKernel1d,
  reflectIndex,
  resizeBicubicAlignCorners,
} from "../pipeline/image/clip_preprocess.ts";
import { SafetensorsFile } from "../pipeline/safetensors/reader.ts";
import { type Tensor, tensor } from "../pipeline/tensor.ts";
import { assertClose, fixturePath, readFixture } from "./_fixtures.ts";

/** The fixture README's acceptance bound for `clip:preprocessed`. */
const FIXTURE_TOLERANCE = 1e-4;

function assertValues(actual: Tensor, expected: readonly number[], tolerance: number): void {
  assert.equal(actual.data.length, expected.length);
  actual.data.forEach((v, i) => {
    assert.ok(
      Math.abs(v - expected[i]) <= tolerance,
      `value ${i}: got ${v}, expected ${expected[i]}`,
    );
  });
}

// --- golden: the reference fixture -------------------------------------------------------------

Deno.test("clipPreprocess() reproduces sgm's preprocessed image (64×128, only upsampled)", async () => {
  const f = await readFixture("clip.safetensors", ["x", "preprocessed"]);
  assertClose(clipPreprocess(f.x), f.preprocessed, FIXTURE_TOLERANCE, "clip:preprocessed");
});

Deno.test("antialiasBlur() for 120×680 → 224×224 gives the fixture's kernel sizes and sigmas", async () => {
  using st = await SafetensorsFile.open(fixturePath("clip.safetensors"));
  const blur = antialiasBlur(120, 680, 224, 224);
  assert.deepEqual(blur, {
    kernelSize: JSON.parse(st.metadata.large_blur_kernel_size),
    sigma: JSON.parse(st.metadata.large_blur_sigma),
  });
});

Deno.test("gaussianBlur2d() reproduces kornia's blur of the large image", async () => {
  const f = await readFixture("clip.safetensors", ["large.x", "large.blurred"]);
  const blurred = gaussianBlur2d(f["large.x"], [3, 5], [0.001, 1.0178571428571428]);
  assertClose(blurred, f["large.blurred"], FIXTURE_TOLERANCE, "clip:large.blurred");
});

Deno.test("clipPreprocess() reproduces sgm's preprocessed large image (blurred, then downsampled)", async () => {
  const f = await readFixture("clip.safetensors", ["large.x", "large.preprocessed"]);
  assertClose(
    clipPreprocess(f["large.x"]),
    f["large.preprocessed"],
    FIXTURE_TOLERANCE,
    "clip:large.preprocessed",
  );
});

// --- maths: hand-computed numbers ---------------------------------------------------------------

Deno.test("antialiasBlur() for SVD's 576×1024 input gives sigma (0.79, 1.79) and kernels (3, 7)", () => {
  const blur = antialiasBlur(576, 1024, 224, 224)!;
  assert.deepEqual(blur.kernelSize, [3, 7]);
  assert.ok(Math.abs(blur.sigma[0] - (576 / 224 - 1) / 2) < 1e-15);
  assert.ok(Math.abs(blur.sigma[1] - (1024 / 224 - 1) / 2) < 1e-15);
  assert.equal(antialiasBlur(64, 128, 224, 224), undefined, "no blur when only upsampling");
  assert.deepEqual(
    antialiasBlur(224, 300, 224, 224)!.sigma[0],
    0.001,
    "sigma floor of an unscaled axis",
  );
});

Deno.test("gaussianKernel1d(3, 1) is [e^-½, 1, e^-½] normalised", () => {
  const e = Math.exp(-0.5);
  const expected = [e, 1, e].map((v) => v / (1 + 2 * e)); // [0.274069, 0.451863, 0.274069]
  const kernel = gaussianKernel1d(3, 1);
  kernel.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-15));
  assert.throws(() => gaussianKernel1d(4, 1), RangeError);
});

Deno.test("gaussianBlur2d() pads by reflection: [0, 1, 0] with a 3-wide kernel, sigma 1", () => {
  // Reflect padding gives the row 1 | 0 1 0 | 1, so both ends see two ones.
  const e = Math.exp(-0.5);
  const side = e / (1 + 2 * e);
  const centre = 1 / (1 + 2 * e);
  const out = gaussianBlur2d(tensor([1, 1, 1, 3], new Float32Array([0, 1, 0])), [1, 3], [1, 1]);
  assertValues(out, [2 * side, centre, 2 * side], 1e-7); // [0.548137, 0.451863, 0.548137]
});

Deno.test("reflectIndex() mirrors about the edge without repeating it", () => {
  assert.deepEqual([-2, -1, 0, 4, 5, 6].map((i) => reflectIndex(i, 5)), [2, 1, 0, 4, 3, 2]);
  assert.equal(reflectIndex(-3, 1), 0);
});

Deno.test("resizeBicubicAlignCorners() uses A = -0.75: [0, 0, 1, 0] → 7 samples", () => {
  // Source positions 0, 0.5, …, 3; the 1 sits at position 2. At t = 0.5 the inner weight is
  // ((A+2)/2 − (A+3))/4 + 1 = 0.59375 and the outer one ((1.5A − 5A)·1.5 + 8A)·1.5 − 4A = −0.09375
  // (PIL's A = −0.5 would give 0.5625 and −0.0625). Position 0.5 reaches the 1 as its outer tap;
  // position 2.5 clamps its last tap to index 3.
  const out = resizeBicubicAlignCorners(tensor([1, 1, 1, 4], new Float32Array([0, 0, 1, 0])), 1, 7);
  assertValues(out, [0, -0.09375, 0, 0.59375, 1, 0.59375, 0], 1e-7);
});

Deno.test("a constant image stays constant through the blur and the resize", () => {
  const image = tensor([1, 3, 9, 13], new Float32Array(3 * 9 * 13).fill(0.3125));
  for (
    const out of [
      gaussianBlur2d(image, [5, 7], [1.3, 2.1]),
      resizeBicubicAlignCorners(image, 224, 224),
      antialiasedResize(image, 4, 5),
      resizeBicubicAlignCorners(image, 1, 1),
    ]
  ) {
    assert.ok(out.data.every((v) => Math.abs(v - 0.3125) < 1e-7));
  }
});

Deno.test("resizing to the same size is the identity", () => {
  const image = tensor([2, 3, 5, 6], Float32Array.from({ length: 180 }, (_, i) => Math.sin(i)));
  assert.deepEqual(resizeBicubicAlignCorners(image, 5, 6).data, image.data);
  assert.equal(antialiasedResize(image, 5, 6), image, "kornia returns the input unchanged");
});

Deno.test("clipPreprocess() maps -1 and 1 to (0 − mean)/std and (1 − mean)/std per channel", () => {
  const image = tensor([1, 3, 2, 2], new Float32Array([-1, -1, -1, -1, 1, 1, 1, 1, 0, 0, 0, 0]));
  const out = clipPreprocess(image, 2);
  const expected = [
    ...new Array(4).fill(-0.48145466 / 0.26862954),
    ...new Array(4).fill((1 - 0.4578275) / 0.26130258),
    ...new Array(4).fill((0.5 - 0.40821073) / 0.27577711),
  ];
  assertValues(out, expected, 1e-6);
  assert.throws(() => clipPreprocess(tensor([1, 4, 2, 2])), RangeError);
});

// --- properties ---------------------------------------------------------------------------------

/** A random [1, 1, h, w] image with values in [-1, 1], plus odd kernel sizes and sigmas. */
const blurCase = fc.record({
  h: fc.integer({ min: 1, max: 12 }),
  w: fc.integer({ min: 1, max: 12 }),
  kernel: fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 })),
  sigma: fc.tuple(
    fc.double({ min: 0.001, max: 4, noNaN: true }),
    fc.double({ min: 0.001, max: 4, noNaN: true }),
  ),
  seed: fc.integer(),
}).map(({ h, w, kernel, sigma, seed }) => {
  let state = seed;
  const data = Float32Array.from({ length: h * w }, () => {
    state = (Math.imul(state, 1103515245) + 12345) | 0;
    return ((state >>> 8) / 2 ** 23) * 2 - 1;
  });
  const kernelSize: [number, number] = [2 * kernel[0] + 1, 2 * kernel[1] + 1];
  return { image: tensor([1, 1, h, w], data), kernelSize, sigma };
});

Deno.test("gaussianBlur2d() is a convex combination: output within the input's [min, max]", () => {
  // Weights are positive and sum to 1, and reflect padding only repeats input values.
  fc.assert(fc.property(blurCase, ({ image, kernelSize, sigma }) => {
    const out = gaussianBlur2d(image, kernelSize, sigma);
    const lo = Math.min(...image.data);
    const hi = Math.max(...image.data);
    return out.data.every((v) => v >= lo - 1e-6 && v <= hi + 1e-6);
  }));
});

Deno.test("gaussianBlur2d() commutes with a horizontal flip", () => {
  // The kernel and reflect padding are both symmetric, so mirroring before or after agrees.
  const flip = (t: Tensor): Tensor => {
    const [, , h, w] = t.dims;
    const out = new Float32Array(t.data.length);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) out[y * w + x] = t.data[y * w + w - 1 - x];
    }
    return tensor(t.dims, out);
  };
  fc.assert(fc.property(blurCase, ({ image, kernelSize, sigma }) => {
    const a = gaussianBlur2d(flip(image), kernelSize, sigma);
    const b = flip(gaussianBlur2d(image, kernelSize, sigma));
    return a.data.every((v, i) => Math.abs(v - b.data[i]) <= 1e-6);
  }));
});

Deno.test("an image that varies only down the height keeps constant rows through blur and resize", () => {
  // The horizontal weights of both the Gaussian and the cubic kernel sum to 1.
  fc.assert(fc.property(
    blurCase,
    fc.integer({ min: 1, max: 20 }),
    fc.integer({ min: 1, max: 20 }),
    ({ image, kernelSize, sigma }, height, width) => {
      const w = image.dims[3];
      const rows = tensor(
        image.dims,
        Float32Array.from(image.data, (_, i) => image.data[Math.floor(i / w) * w]),
      );
      const constantRows = (t: Tensor) => {
        const rw = t.dims[3];
        return t.data.every((v, i) => Math.abs(v - t.data[Math.floor(i / rw) * rw]) <= 1e-6);
      };
      return constantRows(gaussianBlur2d(rows, kernelSize, sigma)) &&
        constantRows(resizeBicubicAlignCorners(rows, height, width)) &&
        constantRows(antialiasedResize(rows, height, width));
    },
  ));
});
