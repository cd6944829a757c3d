import assert from "node:assert/strict";
import fc from "fast-check";
import { checkFields } from "../../pipeline/request/mod.ts";
import {
  MAX_SIDE,
  planResize,
  type ResizePlan,
  SIZE_POLICIES,
} from "../../pipeline/image/size_policy.ts";

Deno.test({
  name: "planResize() cover: 1920×1080 scales to 1024×576 whole, a square loses top and bottom",
  permissions: "none",
  fn() {
    assert.deepEqual(planResize({ width: 1920, height: 1080 }), {
      crop: { x: 0, y: 0, width: 1920, height: 1080 },
      width: 1024,
      height: 576,
    });
    // 1000 × 576/1024 = 562.5 -> 563 rows, centred: (1000 - 563) / 2 = 218.5 -> 218
    assert.deepEqual(planResize({ width: 1000, height: 1000 }, { policy: "cover" }), {
      crop: { x: 0, y: 218, width: 1000, height: 563 },
      width: 1024,
      height: 576,
    });
    // a small image is scaled up
    assert.deepEqual(planResize({ width: 64, height: 36 }), {
      crop: { x: 0, y: 0, width: 64, height: 36 },
      width: 1024,
      height: 576,
    });
  },
});

Deno.test({
  name: "planResize() cover/contain: orientation follows the input, stretch keeps the target",
  permissions: "none",
  fn() {
    // portrait 1080×1920 with the landscape default target -> 576×1024
    const portrait = { width: 1080, height: 1920 };
    assert.deepEqual(planResize(portrait), {
      crop: { x: 0, y: 0, width: 1080, height: 1920 },
      width: 576,
      height: 1024,
    });
    assert.deepEqual(planResize(portrait, { policy: "contain" }), planResize(portrait));
    // landscape with a portrait target -> landscape
    const landscape = planResize({ width: 2000, height: 1000 }, {
      targetWidth: 576,
      targetHeight: 1024,
    });
    assert.deepEqual([landscape.width, landscape.height], [1024, 576]);
    // stretch does what diffusers does: exactly the target, aspect ignored
    assert.deepEqual(planResize(portrait, { policy: "stretch" }), {
      crop: { x: 0, y: 0, width: 1080, height: 1920 },
      width: 1024,
      height: 576,
    });
  },
});

Deno.test({
  name: "planResize() contain: fits inside, rounds sides down to 64, centre-crops the rest",
  permissions: "none",
  fn() {
    // 1000×700 in 1024×576: height limits, 1000 × 576/700 = 822.9 -> 768 wide; the source is
    // cropped to 768:576 = 4:3 -> 933×700
    assert.deepEqual(planResize({ width: 1000, height: 700 }, { policy: "contain" }), {
      crop: { x: 33, y: 0, width: 933, height: 700 },
      width: 768,
      height: 576,
    });
    // a 10:1 panorama: 1024 × 102.4 -> 64 rows; its central 16:1 band, 2000×125
    assert.deepEqual(planResize({ width: 2000, height: 200 }, { policy: "contain" }), {
      crop: { x: 0, y: 37, width: 2000, height: 125 },
      width: 1024,
      height: 64,
    });
    // a 100:1 strip: 1024 × 10.24 is lifted to 64 rows; the width is cut to 16:1 instead
    assert.deepEqual(planResize({ width: 10000, height: 100 }, { policy: "contain" }), {
      crop: { x: 4200, y: 0, width: 1600, height: 100 },
      width: 1024,
      height: 64,
    });
  },
});

Deno.test({
  name: "planResize() native: sgm's script, each side rounded down to a multiple of 64",
  permissions: "none",
  fn() {
    assert.deepEqual(planResize({ width: 600, height: 800 }, { policy: "native" }), {
      crop: { x: 0, y: 0, width: 600, height: 800 },
      width: 576,
      height: 768,
    });
    // the fixture's size is already a multiple of 64: no resize
    const fixture = planResize({ width: 128, height: 64 }, { policy: "native" });
    assert.deepEqual(fixture, {
      crop: { x: 0, y: 0, width: 128, height: 64 },
      width: 128,
      height: 64,
    });
    // below 64: lifted to 64 (and the long side within the 2048 limit)
    const tiny = planResize({ width: 10, height: 3000 }, { policy: "native" });
    assert.deepEqual([tiny.width, tiny.height], [64, 2048]);
  },
});

Deno.test({
  name:
    "planResize() native keeps the generation within the side limit and the pixel limit (issue 13: 4000² became 3968²)",
  permissions: "none",
  fn() {
    // The request's width and height allow exactly up to MAX_SIDE.
    for (const key of ["width", "height"]) {
      checkFields({ [key]: MAX_SIDE }, "http");
      assert.throws(() => checkFields({ [key]: MAX_SIDE + 64 }, "http"), RangeError);
    }
    // The upload: scaled down to 2048², not generated at 3968².
    assert.deepEqual(planResize({ width: 4000, height: 4000 }, { policy: "native" }), {
      crop: { x: 0, y: 0, width: 4000, height: 4000 },
      width: 2048,
      height: 2048,
    });
    // Aspect kept: 6000×1000 → 2048×341 → 2048×320.
    const wide = planResize({ width: 6000, height: 1000 }, { policy: "native" });
    assert.deepEqual([wide.width, wide.height], [2048, 320]);
    // A pixel limit below maxSide²: 4000×3000 within 1 Mpx → 1154.7×866 → 1152×832.
    const limited = planResize({ width: 4000, height: 3000 }, { policy: "native", maxPixels: 1e6 });
    assert.deepEqual([limited.width, limited.height], [1152, 832]);
    // Within the limits nothing changes.
    const fits = planResize({ width: 2048, height: 1152 }, { policy: "native" });
    assert.deepEqual([fits.width, fits.height], [2048, 1152]);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20_000 }),
        fc.integer({ min: 1, max: 20_000 }),
        fc.integer({ min: 4096, max: 8e6 }),
        (width, height, maxPixels) => {
          const plan = planResize({ width, height }, { policy: "native", maxPixels });
          assert.ok(plan.width >= 64 && plan.width <= MAX_SIDE && plan.width % 64 === 0);
          assert.ok(plan.height >= 64 && plan.height <= MAX_SIDE && plan.height % 64 === 0);
          assert.ok(plan.width * plan.height <= maxPixels, `${plan.width}×${plan.height}`);
        },
      ),
      { numRuns: 500 },
    );
  },
});

Deno.test({
  name: "planResize() rejects bad sizes, targets and policies, quoting the value",
  permissions: "none",
  fn() {
    assert.throws(() => planResize({ width: 0, height: 10 }), RangeError, "got 0×10");
    assert.throws(() => planResize({ width: 1.5, height: 10 }), RangeError, "1.5×10");
    assert.throws(
      () => planResize({ width: 10, height: 10 }, { targetWidth: 1000 }),
      RangeError,
      "targetWidth must be a positive multiple of 64, got 1000",
    );
    assert.throws(
      // @ts-expect-error: an unknown policy from untyped input
      () => planResize({ width: 10, height: 10 }, { policy: "fill" }),
      RangeError,
      'Unknown size policy "fill"',
    );
  },
});

const sizes = fc.record({
  width: fc.integer({ min: 1, max: 20000 }),
  height: fc.integer({ min: 1, max: 20000 }),
});
const targets = fc.record({
  targetWidth: fc.integer({ min: 1, max: 40 }).map((k) => 64 * k),
  targetHeight: fc.integer({ min: 1, max: 40 }).map((k) => 64 * k),
  policy: fc.constantFrom(...SIZE_POLICIES),
});

/** The crop's aspect equals the output's to within one source pixel on one of the axes. */
function aspectKept(plan: ResizePlan): boolean {
  const { crop, width, height } = plan;
  return Math.abs((crop.height * width) / height - crop.width) <= 1 ||
    Math.abs((crop.width * height) / width - crop.height) <= 1;
}

Deno.test({
  name: "planResize() always gives sides that are multiples of 64, ≥ 64, and a crop inside",
  permissions: "none",
  fn() {
    fc.assert(
      fc.property(sizes, targets, (source, options) => {
        const { crop, width, height } = planResize(source, options);
        return width % 64 === 0 && height % 64 === 0 && width >= 64 && height >= 64 &&
          [crop.x, crop.y, crop.width, crop.height].every(Number.isInteger) &&
          crop.x >= 0 && crop.y >= 0 && crop.width >= 1 && crop.height >= 1 &&
          crop.x + crop.width <= source.width && crop.y + crop.height <= source.height;
      }),
      { numRuns: 5000 },
    );
  },
});

Deno.test({
  name: "planResize() cover and contain keep the aspect ratio within rounding, centred",
  permissions: "none",
  fn() {
    fc.assert(
      fc.property(
        sizes,
        targets,
        fc.constantFrom("cover", "contain"),
        (source, options, policy) => {
          const plan = planResize(source, { ...options, policy });
          const { crop } = plan;
          // centred: equal margins, or one more pixel after
          const marginsX = source.width - crop.width - 2 * crop.x;
          const marginsY = source.height - crop.height - 2 * crop.y;
          // one axis is whole
          const whole = crop.width === source.width || crop.height === source.height;
          return aspectKept(plan) && (marginsX === 0 || marginsX === 1) &&
            (marginsY === 0 || marginsY === 1) && whole;
        },
      ),
      { numRuns: 5000 },
    );
  },
});

Deno.test({
  name: "planResize() cover is exactly the (orientation-matched) target; contain fits inside it",
  permissions: "none",
  fn() {
    fc.assert(
      fc.property(sizes, targets, (source, options) => {
        const long = Math.max(options.targetWidth, options.targetHeight);
        const short = Math.min(options.targetWidth, options.targetHeight);
        const cover = planResize(source, { ...options, policy: "cover" });
        const contain = planResize(source, { ...options, policy: "contain" });
        const sameShape = (p: ResizePlan) =>
          [p.width, p.height].sort((a, b) => a - b).join() === [short, long].join();
        const fitsInside = contain.width <= cover.width && contain.height <= cover.height;
        // contain loses less than 64 on the limiting axis (the source, scaled, reaches the edge)
        const scale = Math.min(cover.width / source.width, cover.height / source.height);
        const fills = contain.width > source.width * scale - 64 ||
          contain.height > source.height * scale - 64;
        return sameShape(cover) && fitsInside && fills;
      }),
      { numRuns: 5000 },
    );
  },
});
