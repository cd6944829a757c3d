/**
 * weights.lock: it parses, every entry is complete, the tiny entry matches the fixture's bytes,
 * and bad files are reported by entry and field.
 *
 * Run: deno test --allow-read --allow-write --allow-net=127.0.0.1 --allow-env tests/weights/
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { fixturePath } from "../_fixtures.ts";
import { downloadVerified } from "../../pipeline/weights/download.ts";
import {
  huggingFaceHeaders,
  lockEntry,
  lockNames,
  parseWeightsLock,
  readWeightsLock,
  resolveDownloadPlan,
} from "../../pipeline/weights/weights_lock.ts";

const LOCK_PATH = new URL("../../weights.lock", import.meta.url).pathname;
const lock = await readWeightsLock(LOCK_PATH);

const PUBLISHED = {
  svd: ["stabilityai/stable-video-diffusion-img2vid", "svd.safetensors", "configs/svd.yaml"],
  svd_image_decoder: [
    "stabilityai/stable-video-diffusion-img2vid",
    "svd_image_decoder.safetensors",
    "configs/svd_image_decoder.yaml",
  ],
  svd_xt: [
    "stabilityai/stable-video-diffusion-img2vid-xt",
    "svd_xt.safetensors",
    "configs/svd_xt.yaml",
  ],
  svd_xt_image_decoder: [
    "stabilityai/stable-video-diffusion-img2vid-xt",
    "svd_xt_image_decoder.safetensors",
    "configs/svd_xt_image_decoder.yaml",
  ],
  svd_xt_1_1: [
    "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
    "svd_xt_1_1.safetensors",
    "configs/svd_xt_1_1.yaml",
  ],
} as const;

Deno.test("weights.lock lists every published checkpoint and the tiny model", () => {
  assert.deepEqual(lockNames(lock).sort(), [...Object.keys(PUBLISHED), "tiny"].sort());
});

Deno.test("weights.lock entries point at the official resolve/main URLs with their configs", () => {
  for (const [name, [repo, file, config]] of Object.entries(PUBLISHED)) {
    const entry = lockEntry(lock, name);
    assert.equal(entry.repo, repo, name);
    assert.equal(entry.file, file, name);
    assert.equal(entry.url, `https://huggingface.co/${repo}/resolve/main/${file}`, name);
    assert.equal(entry.config, config, name);
    assert.equal(entry.gated, true, `${name} is gated`);
    assert.ok(entry.license.length > 0, `${name} has a license`);
  }
  assert.equal(lockEntry(lock, "tiny").config, "configs/tiny.yaml");
});

Deno.test("weights.lock says where every known value comes from", () => {
  for (const entry of lock.checkpoints) {
    for (const field of ["bytes", "sha256"] as const) {
      const provenance = entry.provenance[field];
      assert.ok(provenance.length > 20, `${entry.name}: provenance of ${field} is explained`);
      if (entry[field] === "unknown") {
        assert.match(provenance, /^unknown/, `${entry.name}: ${field} unknown says why`);
      }
    }
  }
});

Deno.test("weights.lock's tiny entry matches the fixture file's size and sha256", async () => {
  const tiny = lockEntry(lock, "tiny");
  const bytes = await Deno.readFile(fixturePath("weights.safetensors"));
  assert.equal(tiny.bytes, bytes.length);
  assert.equal(tiny.sha256, createHash("sha256").update(bytes).digest("hex"));
});

Deno.test("lockEntry() on an unknown name lists the valid names", () => {
  assert.throws(
    () => lockEntry(lock, "svd_xt_2"),
    new RangeError(
      `Unknown checkpoint "svd_xt_2" in weights lock "${LOCK_PATH}"; valid names: ${
        lockNames(lock).join(", ")
      }`,
    ),
  );
});

Deno.test("parseWeightsLock() names the entry and field of an invalid value", () => {
  const good = JSON.parse(Deno.readTextFileSync(LOCK_PATH));
  const broken = (mutate: (entry: Record<string, unknown>) => void) => {
    const copy = structuredClone(good);
    mutate(copy.checkpoints[2]);
    return JSON.stringify(copy);
  };
  assert.throws(
    () => parseWeightsLock(broken((e) => (e.sha256 = "B2652C")), "w.lock"),
    new SyntaxError(
      `Cannot read weights lock "w.lock": checkpoint "svd_xt" field "sha256" must be 64 lowercase hex digits or "unknown", got "B2652C"`,
    ),
  );
  assert.throws(
    () => parseWeightsLock(broken((e) => (e.bytes = 9.5e9 + 0.5)), "w.lock"),
    /checkpoint "svd_xt" field "bytes" must be a positive integer or "unknown", got 9500000000.5/,
  );
  assert.throws(
    () => parseWeightsLock(broken((e) => delete e.provenance), "w.lock"),
    /checkpoint "svd_xt" field "provenance" must be an object/,
  );
  assert.throws(
    () => parseWeightsLock(broken((e) => (e.size = 1)), "w.lock"),
    /checkpoint "svd_xt" has unknown field "size"/,
  );
  assert.throws(
    () => parseWeightsLock(broken((e) => (e.name = "svd")), "w.lock"),
    /checkpoint name "svd" appears twice/,
  );
  assert.throws(
    () => parseWeightsLock("{ not json", "w.lock"),
    /^SyntaxError: Cannot read weights lock "w.lock": not valid JSON/,
  );
});

Deno.test("resolveDownloadPlan() sends HF_TOKEN to huggingface.co only", () => {
  const plan = resolveDownloadPlan(lock, "svd_xt", "/models", { hfToken: "hf_abc" });
  assert.equal(plan.destination, "/models/svd_xt.safetensors");
  assert.equal(plan.sha256, lockEntry(lock, "svd_xt").sha256);
  assert.deepEqual(plan.headers, { Authorization: "Bearer hf_abc" });
  assert.deepEqual(
    resolveDownloadPlan(lock, "svd_xt", "/models", { hfToken: undefined }).headers,
    {},
  );
  assert.deepEqual(huggingFaceHeaders("https://example.com/svd_xt.safetensors", "hf_abc"), {});
  assert.deepEqual(huggingFaceHeaders("https://huggingface.co.evil.example/x", "hf_abc"), {});
});

Deno.test("resolveDownloadPlan() resolves the tiny entry against the lock's folder and copies it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "svd-lock-test-" });
  try {
    const plan = resolveDownloadPlan(lock, "tiny", dir, { hfToken: "hf_abc" });
    assert.deepEqual(plan.headers, {}, "no token for a local file");
    assert.equal(
      await Deno.realPath(plan.url),
      await Deno.realPath(fixturePath("weights.safetensors")),
    );
    assert.ok(plan.config.endsWith("/configs/tiny.yaml"));
    const result = await downloadVerified(plan);
    assert.equal(result.path, `${dir}/tiny.safetensors`);
    assert.equal(result.verified, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
