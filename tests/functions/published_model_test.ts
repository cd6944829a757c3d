/**
 * The model of a scaled-out deployment comes from its workers: `main.ts` as a `ROLE=api` process
 * without `MODEL_DIR` serves nothing until a `ROLE=worker` process publishes its model to Redis,
 * then fills requests with that model's defaults — its name, and the `decoding_t` the worker's
 * GPU memory plan chose, not the model file's — and builds no demo model of its own. An API
 * whose own `MODEL_DIR` disagrees with the published model says so and serves nothing. Also the
 * published value's codec. Skipped, with a message, when `redis-server` is not installed.
 *
 * deno test --allow-read --allow-write --allow-ffi --allow-env --allow-net=127.0.0.1 --allow-run \
 *   tests/functions/published_model_test.ts
 */

import assert from "node:assert/strict";
import {
  decodePublishedModel,
  encodePublishedModel,
  modelDisagreement,
  type PublishedModel,
} from "../../functions/jobs/published_model.ts";
import { ensureDemoModel } from "../../pipeline/cli/demo_model.ts";
import { loadConfig } from "../../pipeline/config/mod.ts";
import { ModelJsonError } from "../../pipeline/model_json/mod.ts";
import { planMemory } from "../../pipeline/plan/mod.ts";
import { readModelDirectory } from "../../pipeline/runtime/mod.ts";
import { MainProcess as Service } from "./_main_process.ts";
import { RedisServer, redisServerMissing } from "./_redis_server.ts";
import { inputPng, SMALL, upload, waitFor } from "./_service.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function demoPublished(): Promise<PublishedModel> {
  const { manifest } = await readModelDirectory(await ensureDemoModel(), { graphs: [] });
  return {
    manifest,
    decodingT: 2,
    decodingTSource: "plan",
    publisher: "w (pid 1)",
    publishedAt: 1,
  };
}

Deno.test("a published model reads back as it was, its model.json checked by the reader's rules", async () => {
  const published = await demoPublished();
  const text = encodePublishedModel(published);
  const back = decodePublishedModel(text, "Redis key svd:model");
  assert.deepEqual(back.manifest.config.sampling, published.manifest.config.sampling);
  assert.equal(back.manifest.name, published.manifest.name);
  assert.equal(back.decodingT, 2);
  assert.equal(modelDisagreement(published.manifest, back), undefined);

  const json = JSON.parse(text);
  assert.throws(
    () => decodePublishedModel(JSON.stringify({ ...json, decodingT: 0 }), "key"),
    /key: decoding_t = 0 is out of range: allowed 1\.\.64/,
  );
  assert.throws(() => decodePublishedModel("{", "key"), SyntaxError);
  const broken = JSON.parse(json.modelJson);
  broken.config.sampling.numSteps = 0;
  assert.throws(
    () =>
      decodePublishedModel(
        JSON.stringify({ ...json, modelJson: JSON.stringify(broken) }),
        "key",
      ),
    (error: Error) => error instanceof ModelJsonError && /numSteps|steps/.test(error.message),
  );
  const other = {
    ...published.manifest,
    name: "other",
    config: {
      ...published.manifest.config,
      sampling: { ...published.manifest.config.sampling, numSteps: 7, decodingT: 9 },
    },
  };
  assert.equal(
    modelDisagreement(other, published),
    `name "other" vs "${published.manifest.name}", sampling.numSteps 7 vs ` +
      `${published.manifest.config.sampling.numSteps}`,
    "decoding_t aside",
  );
});

/** Status code and JSON body of `GET url`. */
async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: await response.json() };
}

Deno.test({
  name:
    "an API process takes its model and default decoding_t from what a worker publishes to Redis, and one whose MODEL_DIR disagrees says so",
  ignore: redisServerMissing !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using redis = await RedisServer.start();
    const common = { REDIS_URL: redis.url, HEARTBEAT_SECONDS: "1" };
    await using api = new Service({ ...common, ROLE: "api" });
    const a = await api.url();
    assert.equal((await api.line("start")).model_dir, null, "no model directory, no demo model");

    // No worker yet: alive, not ready, and requests are refused with the reason.
    assert.equal((await fetch(`${a}/healthz`)).status, 200);
    const waiting = await getJson(`${a}/readyz`);
    assert.equal(waiting.status, 503);
    assert.equal(waiting.body.status, "waiting_for_model");
    const refused = await fetch(`${a}/v1/generations`, {
      method: "POST",
      body: upload(await inputPng(), SMALL),
    });
    assert.equal(refused.status, 503);
    assert.ok(refused.headers.get("Retry-After"));
    const error = (await refused.json()).error;
    assert.equal(error.code, "model_unavailable");
    assert.match(error.message, /no worker has published its model/);

    // A worker whose memory plan picks decoding_t 2 for the demo model (its model.json says 3).
    const config = await loadConfig(`${ROOT}configs/tiny.yaml`);
    const plan = (decodingT: number) =>
      planMemory({
        config,
        precision: "fp32",
        provider: "cuda",
        frames: 4,
        width: 128,
        height: 64,
        decodingT,
      }).totalBytes;
    const budgetGb = (plan(2) + plan(3)) / 2 / 1024 ** 3;
    await using worker = new Service({
      ...common,
      ROLE: "worker",
      ORT_PROVIDER: "auto",
      GPU_MEMORY_GB: budgetGb.toFixed(6),
    });
    assert.equal((await worker.line("decoding_t")).decodingT, 2);
    await waitFor(
      async () => (await fetch(`${a}/readyz`)).status === 200,
      "the API ready once the model is published",
      120_000,
    );
    const { manifest } = await readModelDirectory(await ensureDemoModel(), { graphs: [] });
    assert.equal(manifest.config.sampling.decodingT, 3);
    assert.equal((await api.line("model_published")).model, manifest.name);
    const posted = await fetch(`${a}/v1/generations`, {
      method: "POST",
      body: upload(await inputPng(), { ...SMALL, preview: "none" }),
    });
    const { id } = await posted.json();
    assert.equal(posted.status, 202);
    const params = (await getJson(`${a}/v1/generations/${id}`)).body.params as Record<
      string,
      unknown
    >;
    assert.equal(params.decoding_t, 2, "the worker's plan, not model.json's 3");
    assert.equal(params.model, manifest.name);

    // An API whose own MODEL_DIR holds another model: not ready, and it says why.
    const dir = await Deno.makeTempDir({ prefix: "other_model_" });
    try {
      const other = { ...manifest, name: "other-model" };
      await Deno.writeTextFile(`${dir}/model.json`, JSON.stringify(other, null, 2));
      await using mismatched = new Service({ ...common, ROLE: "api", MODEL_DIR: dir });
      const m = await mismatched.url();
      const line = await mismatched.line("model_mismatch");
      assert.equal(line.published, manifest.name);
      assert.equal(line.local, "other-model");
      const ready = await getJson(`${m}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(ready.body.status, "model_mismatch");
      assert.match(ready.body.message as string, /other-model.*disagrees|disagrees.*other-model/);
      const post = await fetch(`${m}/v1/generations`, {
        method: "POST",
        body: upload(await inputPng(), SMALL),
      });
      assert.equal(post.status, 503);
      assert.equal((await post.json()).error.code, "model_unavailable");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
