/**
 * parseRequest: fields checked one by one with the messages users see, defaults filled from the
 * model's config then the declaration, the seed drawn when neither has one, the rules between
 * fields blaming the field written; requestJson says a request back under the API's names.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { loadConfig, type SamplingDefaults } from "../../pipeline/config/mod.ts";
import {
  checkFields,
  fieldsOn,
  jsonSchemaOf,
  ParameterError,
  parseRequest,
  REQUEST_FIELDS,
  type RequestContext,
  requestJson,
  SAMPLING_NAMES,
} from "../../pipeline/request/mod.ts";

/** SVD's defaults (14 frames, 25 steps, CFG 1.0→2.5, no seed), from configs/svd.yaml. */
const DEFAULTS: SamplingDefaults = (await loadConfig(
  new URL("../../configs/svd.yaml", import.meta.url).pathname,
)).sampling;
const HTTP: RequestContext = { surface: "http", model: "svd", sampling: DEFAULTS };

function assertParameterError(
  fn: () => unknown,
  field: string,
  allowed: string,
  message: RegExp,
  code = "invalid_parameter",
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ParameterError, `expected a ParameterError, got ${e}`);
    assert.ok(e instanceof RangeError);
    assert.equal(e.field, field);
    assert.equal(e.allowed, allowed);
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test({
  name:
    "parseRequest() fills the model's defaults, then the declared ones, and keeps a configured seed",
  permissions: "none",
  fn() {
    const request = parseRequest({}, { ...HTTP, sampling: { ...DEFAULTS, seed: 23 } });
    const { sigmaMin: _1, sigmaMax: _2, rho: _3, ...params } = { ...DEFAULTS, seed: 23 };
    assert.deepEqual(request, {
      params,
      model: "svd",
      size: "cover",
      format: "mp4",
      preview: "latent",
      keepRunning: false,
      watermark: true,
      webhookEvents: ["done", "error", "cancelled"],
    });
  },
});

Deno.test({
  name: "parseRequest() draws a seed when neither the request nor the config has one",
  permissions: "none",
  fn() {
    assert.equal(parseRequest({}, { ...HTTP, drawSeed: () => 4242 }).params.seed, 4242);
    const seed = parseRequest({}, HTTP).params.seed;
    assert.ok(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32, String(seed));
  },
});

Deno.test({
  name:
    "parseRequest() reads text as numbers and booleans, trims it, and takes blank text as absent",
  permissions: "none",
  fn() {
    const request = parseRequest(
      { steps: " 30 ", min_guidance: "1.5", guider: "triangle", seed: "", keep_running: "true" },
      { ...HTTP, drawSeed: () => 9 },
    );
    assert.equal(request.params.numSteps, 30);
    assert.equal(request.params.minGuidance, 1.5);
    assert.equal(request.params.guider, "triangle");
    assert.equal(request.params.seed, 9);
    assert.equal(request.keepRunning, true);
    assert.equal(parseRequest({ steps: 12, seed: null }, HTTP).params.numSteps, 12);
  },
});

Deno.test({
  name: "parseRequest() names the field, value and range of a bad value",
  permissions: "none",
  fn() {
    const cases: [Record<string, unknown>, string, string, RegExp][] = [
      [{ steps: "0" }, "steps", "1..200", /^steps = 0 is out of range: allowed 1\.\.200$/],
      [
        { width: "1000" },
        "width",
        "64..2048, a multiple of 64",
        /^width = 1000 is not a multiple of 64: allowed 64\.\.2048, a multiple of 64$/,
      ],
      [{ motion_bucket_id: 12.5 }, "motion_bucket_id", "0..1023", /is not an integer/],
      [{ cond_aug: Number.NaN }, "cond_aug", "0..1", /^cond_aug = NaN is not a number/],
      [{ cond_aug: "lots" }, "cond_aug", "0..1", /^cond_aug = "lots" is not a number/],
      [
        { guider: "cosine" },
        "guider",
        "linear | triangle",
        /^guider = "cosine" is not an allowed value: allowed linear \| triangle$/,
      ],
      [{ seed: 2 ** 32 }, "seed", "0..4294967295", /^seed = 4294967296 is out of range/],
      [{ keep_running: "yes" }, "keep_running", "true | false", /is not an allowed value/],
      [{ format: "frames" }, "format", "mp4 | webm | gif", /is not an allowed value/],
      [{ model: "svd_xt" }, "model", "svd", /^model = "svd_xt" is not the loaded model/],
    ];
    for (const [input, field, allowed, message] of cases) {
      assertParameterError(() => parseRequest(input, HTTP), field, allowed, message);
    }
  },
});

Deno.test({
  name: "parseRequest() refuses min_guidance above max_guidance, blaming the field written",
  permissions: "none",
  fn() {
    assertParameterError(
      () => parseRequest({ min_guidance: 3 }, HTTP),
      "min_guidance",
      "0..2.5",
      /^min_guidance = 3 is above max_guidance \(2\.5\)/,
    );
    assertParameterError(
      () => parseRequest({ max_guidance: 0.5 }, HTTP),
      "max_guidance",
      "1..30",
      /^max_guidance = 0\.5 is below min_guidance \(1\)/,
    );
  },
});

Deno.test({
  name: "parseRequest() takes crf for mp4 and webm within their ranges, and refuses it for gif",
  permissions: "none",
  fn() {
    assert.equal(parseRequest({ crf: "51" }, HTTP).crf, 51);
    assert.equal(parseRequest({ crf: "63", format: "webm" }, HTTP).crf, 63);
    assert.equal(parseRequest({}, HTTP).crf, undefined);
    assertParameterError(() => parseRequest({ crf: "52" }, HTTP), "crf", "0..51 for mp4", /52/);
    assertParameterError(
      () => parseRequest({ crf: "20", format: "gif" }, HTTP),
      "crf",
      "only with format mp4 or webm",
      /^crf = 20 does not apply to gif/,
    );
  },
});

Deno.test({
  name:
    "parseRequest() names the format's crf range for any crf outside it, even beyond every format's",
  permissions: "none",
  fn() {
    for (const crf of ["99", "64", "-1"]) {
      assertParameterError(
        () => parseRequest({ crf }, HTTP),
        "crf",
        "0..51 for mp4",
        new RegExp(`^crf = ${crf} is out of range: allowed 0\\.\\.51 for mp4$`),
      );
      assertParameterError(
        () => parseRequest({ crf, format: "webm" }, HTTP),
        "crf",
        "0..63 for webm",
        new RegExp(`^crf = ${crf} is out of range: allowed 0\\.\\.63 for webm$`),
      );
      assertParameterError(
        () => parseRequest({ crf, format: "gif" }, HTTP),
        "crf",
        "only with format mp4 or webm",
        new RegExp(`^crf = ${crf} does not apply to gif`),
      );
    }
    assertParameterError(
      () => parseRequest({ crf: "2.5", format: "webm" }, HTTP),
      "crf",
      "0..63 for webm",
      /^crf = 2\.5 is not an integer/,
    );
  },
});

Deno.test({
  name: "checkFields() refuses a crf out of every format's range with its format's range",
  permissions: "none",
  fn() {
    assertParameterError(() => checkFields({ crf: "99" }, "cli"), "crf", "0..51 for mp4", /99/);
    assertParameterError(
      () => checkFields({ crf: "99", format: "webm" }, "cli"),
      "crf",
      "0..63 for webm",
      /99/,
    );
    // within 0..63 the field is fine on its own; parseRequest's rule narrows it by format
    assert.deepEqual(checkFields({ crf: "60" }, "cli"), { crf: 60 });
  },
});

Deno.test({
  name: "parseRequest() refuses a field its surface does not have, as unknown_field",
  permissions: "none",
  fn() {
    assertParameterError(
      () => parseRequest({ num_steps: "3" }, HTTP),
      "num_steps",
      fieldsOn("http").map((name) => REQUEST_FIELDS[name].key).join(", "),
      /^Unknown field "num_steps"$/,
      "unknown_field",
    );
    // preview and keep_running are HTTP fields; the CLI has no such flags
    assert.throws(
      () => parseRequest({ preview: "none" }, { ...HTTP, surface: "cli" }),
      (e: unknown) => e instanceof ParameterError && e.code === "unknown_field",
    );
  },
});

/** Any in-range value of a numeric field, from its declared schema. */
function inRange(name: (typeof SAMPLING_NAMES)[number]): fc.Arbitrary<unknown> {
  const schema = jsonSchemaOf(REQUEST_FIELDS[name]);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...schema.enum);
  const min = schema.minimum as number;
  const max = schema.maximum as number;
  if (schema.type === "number") return fc.double({ min, max, noNaN: true });
  const step = (schema.multipleOf as number | undefined) ?? 1;
  return fc.integer({ min: Math.ceil(min / step), max: Math.floor(max / step) }).map((k) =>
    k * step
  );
}

Deno.test({
  name: "parseRequest() accepts any in-range sampling value and echoes it back under its key",
  permissions: "none",
  fn() {
    const overrides = fc.record(
      Object.fromEntries(SAMPLING_NAMES.map((name) => [REQUEST_FIELDS[name].key, inRange(name)])),
      { requiredKeys: [] },
    ).filter((o) =>
      ((o.min_guidance as number | undefined) ?? DEFAULTS.minGuidance) <=
        ((o.max_guidance as number | undefined) ?? DEFAULTS.maxGuidance)
    );
    fc.assert(fc.property(overrides, (input) => {
      const request = parseRequest(input, { ...HTTP, drawSeed: () => 7 });
      const json = requestJson(request);
      for (const [key, value] of Object.entries(input)) assert.equal(json[key], value, key);
      for (const name of SAMPLING_NAMES) {
        if (REQUEST_FIELDS[name].key in input) continue;
        const expected = name === "seed" ? 7 : DEFAULTS[name];
        assert.equal(request.params[name], expected, name);
      }
    }));
  },
});

Deno.test({
  name: "parseRequest() refuses any integer outside a field's range, naming the field",
  permissions: "none",
  fn() {
    const integers = fieldsOn("http").filter((name) =>
      jsonSchemaOf(REQUEST_FIELDS[name]).type === "integer"
    );
    fc.assert(fc.property(
      fc.constantFrom(...integers),
      fc.boolean(),
      fc.integer({ min: 1, max: 1_000_000 }),
      (name, below, distance) => {
        const schema = jsonSchemaOf(REQUEST_FIELDS[name]);
        const { key } = REQUEST_FIELDS[name];
        const value = below
          ? (schema.minimum as number) - distance
          : (schema.maximum as number) + distance;
        assert.throws(
          () => parseRequest({ [key]: String(value) }, HTTP),
          (e: unknown) =>
            e instanceof ParameterError && e.field === key &&
            e.message.startsWith(`${key} = ${value} `),
        );
      },
    ));
  },
});

Deno.test({
  name: "requestJson() says every HTTP field back, and what it says parses to the same request",
  permissions: "none",
  fn() {
    const context: RequestContext = { ...HTTP, webhooks: "https" };
    const request = parseRequest({
      steps: "9",
      crf: "30",
      format: "webm",
      timeout_seconds: "60",
      webhook: "https://hooks.example.com/svd",
      webhook_events: "started, done",
    }, context);
    const json = requestJson(request);
    assert.deepEqual(
      Object.keys(json),
      fieldsOn("http").map((name) => REQUEST_FIELDS[name].key),
    );
    assert.deepEqual(json.webhook_events, ["started", "done"]);
    assert.deepEqual(parseRequest(json, context), request);
    assert.equal("crf" in requestJson(parseRequest({}, HTTP)), false, "an absent crf stays absent");
  },
});

Deno.test({
  name: "parseRequest() bounds timeout_seconds by MAX_JOB_SECONDS, which is also its default",
  permissions: "none",
  fn() {
    assert.equal(parseRequest({}, HTTP).timeoutSeconds, undefined, "no limit, no deadline");
    assert.equal(parseRequest({ timeout_seconds: "30" }, HTTP).timeoutSeconds, 30);
    const limited: RequestContext = { ...HTTP, maxJobSeconds: 600 };
    assert.equal(parseRequest({}, limited).timeoutSeconds, 600);
    assert.equal(parseRequest({ timeout_seconds: "600" }, limited).timeoutSeconds, 600);
    assertParameterError(
      () => parseRequest({ timeout_seconds: "601" }, limited),
      "timeout_seconds",
      "1..600",
      /^timeout_seconds = 601 is above the service's MAX_JOB_SECONDS: allowed 1\.\.600$/,
    );
    assertParameterError(
      () => parseRequest({ timeout_seconds: "0" }, HTTP),
      "timeout_seconds",
      "1..604800",
      /out of range/,
    );
    assertParameterError(
      () => parseRequest({ timeout_seconds: "1.5" }, HTTP),
      "timeout_seconds",
      "1..604800",
      /is not an integer/,
    );
  },
});

Deno.test({
  name: "parseRequest() takes a webhook only from a service that sends them, over https unless " +
    "it allows http",
  permissions: "none",
  fn() {
    const url = "https://hooks.example.com/svd?token=abc";
    const https: RequestContext = { ...HTTP, webhooks: "https" };
    const request = parseRequest({ webhook: url }, https);
    assert.equal(request.webhook, url);
    assert.deepEqual(request.webhookEvents, ["done", "error", "cancelled"], "the terminal ones");
    assert.deepEqual(
      parseRequest({ webhook: url, webhook_events: "started,error" }, https).webhookEvents,
      ["started", "error"],
    );
    assertParameterError(
      () => parseRequest({ webhook: url }, HTTP),
      "webhook",
      "no webhook",
      /this service sends no webhooks \(it has no WEBHOOK_SECRET\)/,
    );
    assertParameterError(
      () => parseRequest({ webhook: "http://hooks.example.com/" }, https),
      "webhook",
      "an https URL of a public host",
      /is not an https URL/,
    );
    assert.equal(
      parseRequest({ webhook: "http://127.0.0.1:9/" }, { ...HTTP, webhooks: "http" }).webhook,
      "http://127.0.0.1:9/",
    );
    for (const bad of ["ftp://hooks.example.com/", "hooks.example.com", "https://"]) {
      assertParameterError(
        () => parseRequest({ webhook: bad }, https),
        "webhook",
        "an http or https URL",
        /is not a valid URL|has the wrong length/,
      );
    }
    assertParameterError(
      () => parseRequest({ webhook: "https://me:pw@hooks.example.com/" }, https),
      "webhook",
      "an https URL of a public host without credentials (the signature authenticates the sender)",
      /holds a user name or password/,
    );
    assertParameterError(
      () => parseRequest({ webhook: url, webhook_events: "done,finished" }, https),
      "webhook_events",
      "a comma-separated list, each started | done | error | cancelled",
      /is not an allowed value/,
    );
    assertParameterError(
      () => parseRequest({ webhook_events: "done" }, https),
      "webhook_events",
      "only with webhook",
      /is given without a webhook/,
    );
  },
});
