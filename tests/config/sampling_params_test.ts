/**
 * resolveSamplingParams: in-range overrides are taken as given, out-of-range ones are refused
 * with the snake_case field and the allowed range.
 *
 * Run: deno test tests/config/sampling_params_test.ts
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ParameterError,
  parseSamplingOverrides,
  resolveSamplingParams,
  SAMPLING_LIMITS,
  type SamplingDefaults,
  type SamplingParams,
} from "../../pipeline/config/mod.ts";

const DEFAULTS: SamplingDefaults = {
  numFrames: 14,
  numSteps: 25,
  minGuidance: 1.0,
  maxGuidance: 2.5,
  guider: "linear",
  fps: 7,
  motionBucketId: 127,
  condAug: 0.02,
  decodingT: 14,
  width: 1024,
  height: 576,
  sigmaMin: 0.002,
  sigmaMax: 700,
  rho: 7,
  seed: null,
};

function assertParameterError(
  fn: () => unknown,
  field: string,
  allowed: string,
  message: RegExp,
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ParameterError, `expected a ParameterError, got ${e}`);
    assert.ok(e instanceof RangeError);
    assert.equal(e.field, field);
    assert.equal(e.allowed, allowed);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test({
  name: "resolveSamplingParams() fills the defaults and keeps a configured seed",
  permissions: "none",
  fn() {
    const params = resolveSamplingParams({}, { ...DEFAULTS, seed: 23 });
    const { sigmaMin: _1, sigmaMax: _2, rho: _3, ...runtime } = { ...DEFAULTS, seed: 23 };
    assert.deepEqual(params, runtime);
  },
});

Deno.test({
  name: "resolveSamplingParams() draws a seed when neither override nor default has one",
  permissions: "none",
  fn() {
    assert.equal(resolveSamplingParams({}, DEFAULTS, () => 4242).seed, 4242);
    const seed = resolveSamplingParams({}, DEFAULTS).seed;
    assert.ok(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32, String(seed));
  },
});

Deno.test({
  name: "resolveSamplingParams() names the field, value and range of a bad override",
  permissions: "none",
  fn() {
    assertParameterError(
      () => resolveSamplingParams({ numSteps: 0 }, DEFAULTS),
      "steps",
      "1..200",
      /^steps = 0 is out of range: allowed 1\.\.200$/,
    );
    assertParameterError(
      () => resolveSamplingParams({ width: 1000 }, DEFAULTS),
      "width",
      "64..2048, a multiple of 64",
      /^width = 1000 is not a multiple of 64: allowed 64\.\.2048, a multiple of 64$/,
    );
    assertParameterError(
      () => resolveSamplingParams({ motionBucketId: 12.5 }, DEFAULTS),
      "motion_bucket_id",
      "0..1023",
      /^motion_bucket_id = 12\.5 is not an integer/,
    );
    assertParameterError(
      () => resolveSamplingParams({ condAug: Number.NaN }, DEFAULTS),
      "cond_aug",
      "0..1",
      /^cond_aug = NaN is not a number/,
    );
    assertParameterError(
      () => resolveSamplingParams({ guider: "cosine" as "linear" }, DEFAULTS),
      "guider",
      "linear | triangle",
      /^guider = "cosine" is not an allowed value: allowed linear \| triangle$/,
    );
    assertParameterError(
      () => resolveSamplingParams({ seed: 2 ** 32 }, DEFAULTS),
      "seed",
      "0..4294967295",
      /^seed = 4294967296 is out of range/,
    );
    assertParameterError(
      () => resolveSamplingParams({ numFrames: "14" as unknown as number }, DEFAULTS),
      "num_frames",
      "1..64",
      /^num_frames = "14" is not a number/,
    );
  },
});

Deno.test({
  name: "resolveSamplingParams() refuses min_guidance above max_guidance, blaming the override",
  permissions: "none",
  fn() {
    assertParameterError(
      () => resolveSamplingParams({ minGuidance: 3 }, DEFAULTS),
      "min_guidance",
      "0..2.5",
      /^min_guidance = 3 is above max_guidance \(2\.5\)/,
    );
    assertParameterError(
      () => resolveSamplingParams({ maxGuidance: 0.5 }, DEFAULTS),
      "max_guidance",
      "1..30",
      /^max_guidance = 0\.5 is below min_guidance \(1\)/,
    );
  },
});

Deno.test({
  name: "resolveSamplingParams() refuses an unknown field",
  permissions: "none",
  fn() {
    assert.throws(
      () => resolveSamplingParams({ steps: 3 } as Partial<SamplingParams>, DEFAULTS),
      (e: unknown) => e instanceof ParameterError && e.field === "steps",
    );
  },
});

/** Every in-range override set, with min_guidance ≤ max_guidance after merging with DEFAULTS. */
const inRangeOverrides = fc
  .record(
    {
      numFrames: fc.integer({ min: 1, max: 64 }),
      numSteps: fc.integer({ min: 1, max: 200 }),
      minGuidance: fc.double({ min: 0, max: 30, noNaN: true }),
      maxGuidance: fc.double({ min: 0, max: 30, noNaN: true }),
      guider: fc.constantFrom("linear" as const, "triangle" as const),
      fps: fc.integer({ min: 1, max: 60 }),
      motionBucketId: fc.integer({ min: 0, max: 1023 }),
      condAug: fc.double({ min: 0, max: 1, noNaN: true }),
      decodingT: fc.integer({ min: 1, max: 64 }),
      width: fc.integer({ min: 1, max: 32 }).map((k) => 64 * k),
      height: fc.integer({ min: 1, max: 32 }).map((k) => 64 * k),
      seed: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    },
    { requiredKeys: [] },
  )
  .filter((o) =>
    (o.minGuidance ?? DEFAULTS.minGuidance) <= (o.maxGuidance ?? DEFAULTS.maxGuidance)
  );

Deno.test({
  name: "resolveSamplingParams() accepts any in-range override and echoes it back",
  permissions: "none",
  fn() {
    fc.assert(
      fc.property(inRangeOverrides, (overrides) => {
        const params = resolveSamplingParams(overrides, DEFAULTS, () => 7);
        for (const [field, value] of Object.entries(overrides)) {
          assert.equal(params[field as keyof SamplingParams], value, field);
        }
        for (const field of Object.keys(SAMPLING_LIMITS) as (keyof SamplingParams)[]) {
          if (!(field in overrides)) {
            assert.equal(params[field], field === "seed" ? 7 : DEFAULTS[field], field);
          }
        }
      }),
    );
  },
});

Deno.test({
  name: "resolveSamplingParams() refuses any integer outside a field's range, naming the field",
  permissions: "none",
  fn() {
    const integerFields = (Object.keys(SAMPLING_LIMITS) as (keyof SamplingParams)[])
      .filter((f) => SAMPLING_LIMITS[f].kind === "integer");
    fc.assert(
      fc.property(
        fc.constantFrom(...integerFields),
        fc.boolean(),
        fc.integer({ min: 1, max: 1_000_000 }),
        (field, below, distance) => {
          const limit = SAMPLING_LIMITS[field] as { min: number; max: number; key: string };
          const value = below ? limit.min - distance : limit.max + distance;
          assert.throws(
            () => resolveSamplingParams({ [field]: value }, DEFAULTS),
            (e: unknown) =>
              e instanceof ParameterError && e.field === limit.key &&
              e.message.startsWith(`${limit.key} = ${value} `),
          );
        },
      ),
    );
  },
});

Deno.test({
  name: "parseSamplingOverrides() maps snake_case input to overrides, numbers from strings",
  permissions: "none",
  fn() {
    assert.deepEqual(
      parseSamplingOverrides({
        steps: "30",
        min_guidance: 1.5,
        guider: "triangle",
        seed: null,
        fps: undefined,
      }),
      { numSteps: 30, minGuidance: 1.5, guider: "triangle" },
    );
    // Non-numeric strings pass through for resolveSamplingParams to refuse by name.
    const overrides = parseSamplingOverrides({ width: "wide" });
    assertParameterError(
      () => resolveSamplingParams(overrides, DEFAULTS),
      "width",
      "64..2048, a multiple of 64",
      /^width = "wide" is not a number/,
    );
    assert.throws(
      () => parseSamplingOverrides({ numSteps: 3 }),
      (e: unknown) =>
        e instanceof ParameterError && e.field === "numSteps" && /\bsteps\b/.test(e.allowed),
    );
  },
});
