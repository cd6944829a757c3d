/**
 * `readModelDirectory` refuses incomplete or corrupt model directories with an error naming the
 * directory and the file, and hashes only when asked.
 *
 * Run: deno test --allow-read --allow-write --allow-env tests/runtime/model_dir_test.ts
 */

import assert from "node:assert/strict";
import { ModelJsonError } from "../../pipeline/model_json/mod.ts";
import {
  MANIFEST_FILE,
  ModelDirectoryError,
  readModelDirectory,
} from "../../pipeline/runtime/model_dir.ts";
import { copyTinyModel, tinyModelDir } from "./_tiny_model.ts";

/**
 * Asserts that `promise` rejects with a ModelDirectoryError about `file` (and, given, the
 * model.json `field`) matching `pattern`.
 */
async function assertRejectsFor(
  promise: Promise<unknown>,
  dir: string,
  file: string,
  pattern: RegExp,
  field?: string | null,
): Promise<ModelDirectoryError> {
  const error = await promise.then(() => undefined, (e) => e);
  assert.ok(error instanceof ModelDirectoryError, `expected ModelDirectoryError, got ${error}`);
  assert.equal(error.dir, dir);
  assert.equal(error.file, file);
  assert.match(error.message, pattern);
  if (field !== undefined) assert.equal(error.field, field);
  return error;
}

Deno.test("readModelDirectory() returns the manifest and absolute paths of every graph", async () => {
  const dir = await tinyModelDir();
  const model = await readModelDirectory(dir);
  assert.equal(model.dir, await Deno.realPath(dir));
  assert.deepEqual(Object.keys(model.graphs).sort(), [
    "image_encoder",
    "unet",
    "vae_decoder",
    "vae_encoder",
  ]);
  assert.equal(model.graphs.unet?.path, `${model.dir}/unet.onnx`);
  assert.equal(model.graphs.unet?.dataPath, `${model.dir}/unet.onnx.data`);
  assert.deepEqual(model.graphs.unet?.manifest.inputs.map((i) => i.name), [
    "x",
    "timesteps",
    "context",
    "y",
    "image_only_indicator",
  ]);
});

Deno.test("readModelDirectory() checks only the graphs asked for", async () => {
  await using copy = await copyTinyModel();
  await Deno.remove(`${copy.dir}/vae_decoder.onnx.data`);
  const model = await readModelDirectory(copy.dir, { graphs: ["unet"] });
  assert.deepEqual(Object.keys(model.graphs), ["unet"]);
  await assertRejectsFor(
    readModelDirectory(copy.dir),
    copy.dir,
    "vae_decoder.onnx.data",
    /"vae_decoder\.onnx\.data" is missing/,
  );
});

Deno.test("readModelDirectory() names the directory when model.json is missing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "runtime_empty_" });
  try {
    const error = await assertRejectsFor(
      readModelDirectory(dir),
      dir,
      MANIFEST_FILE,
      /model\.json is missing/,
    );
    assert.ok(error.message.includes(dir), error.message);
    assert.ok(error.cause instanceof Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readModelDirectory() refuses a directory that does not exist", async () => {
  await assertRejectsFor(
    readModelDirectory("/nonexistent/svd-model"),
    "/nonexistent/svd-model",
    ".",
    /Cannot load model directory "\/nonexistent\/svd-model": the directory cannot be opened/,
  );
});

Deno.test("readModelDirectory() refuses a wrong format tag and quotes it", async () => {
  await using copy = await copyTinyModel();
  const path = `${copy.dir}/${MANIFEST_FILE}`;
  const manifest = JSON.parse(await Deno.readTextFile(path));
  await Deno.writeTextFile(path, JSON.stringify({ ...manifest, format: "svd-stream-model/0" }));
  await assertRejectsFor(
    readModelDirectory(copy.dir),
    copy.dir,
    MANIFEST_FILE,
    /model\.json:1: format = "svd-stream-model\/0" is not a format .*: expected "svd-stream-model\/1"/,
  );
});

Deno.test("readModelDirectory() refuses model.json that is not JSON", async () => {
  await using copy = await copyTinyModel();
  await Deno.writeTextFile(`${copy.dir}/${MANIFEST_FILE}`, "{ not json");
  const error = await assertRejectsFor(
    readModelDirectory(copy.dir),
    copy.dir,
    MANIFEST_FILE,
    /model\.json:1: not valid JSON/,
  );
  assert.ok(error.cause instanceof ModelJsonError);
  assert.ok(error.cause.cause instanceof SyntaxError);
});

Deno.test("readModelDirectory() refuses a graph file outside the directory", async () => {
  await using copy = await copyTinyModel();
  const path = `${copy.dir}/${MANIFEST_FILE}`;
  const manifest = JSON.parse(await Deno.readTextFile(path));
  manifest.graphs.unet.data = "../unet.onnx.data";
  await Deno.writeTextFile(path, JSON.stringify(manifest));
  await assertRejectsFor(
    readModelDirectory(copy.dir),
    copy.dir,
    MANIFEST_FILE,
    /graphs\.unet\.data = "\.\.\/unet\.onnx\.data" is not a file name inside the directory/,
  );
});

Deno.test("readModelDirectory() names a truncated .onnx.data file and both sizes", async () => {
  await using copy = await copyTinyModel();
  const path = `${copy.dir}/unet.onnx.data`;
  const { size } = await Deno.stat(path);
  await Deno.truncate(path, size - 4096);
  await assertRejectsFor(
    readModelDirectory(copy.dir),
    copy.dir,
    "unet.onnx.data",
    new RegExp(
      `Cannot load weights "unet\\.onnx\\.data" in ".*": ${size - 4096} bytes on disk, ` +
        `model\\.json records ${size}`,
    ),
  );
});

Deno.test("readModelDirectory({ verify: true }) catches a flipped byte and quotes both hashes", async () => {
  await using copy = await copyTinyModel();
  const path = `${copy.dir}/unet.onnx.data`;
  const bytes = await Deno.readFile(path);
  bytes[bytes.length >> 1] ^= 0x01;
  await Deno.writeFile(path, bytes);
  const manifest = JSON.parse(await Deno.readTextFile(`${copy.dir}/${MANIFEST_FILE}`));
  const expected = manifest.files["unet.onnx.data"].sha256;
  // The size is unchanged: the cheap default check cannot see it.
  await readModelDirectory(copy.dir);
  await assertRejectsFor(
    readModelDirectory(copy.dir, { verify: true }),
    copy.dir,
    "unet.onnx.data",
    new RegExp(
      `Cannot load weights "unet\\.onnx\\.data" in ".*": sha256 mismatch: expected ${expected}, ` +
        `got (?!${expected})[0-9a-f]{64}$`,
    ),
  );
});

Deno.test("readModelDirectory({ verify: true }) accepts an intact directory", async () => {
  const model = await readModelDirectory(await tinyModelDir(), { verify: true });
  assert.equal(Object.keys(model.graphs).length, 4);
});

Deno.test("readModelDirectory() refuses a graph the manifest does not have", async () => {
  await using copy = await copyTinyModel();
  const path = `${copy.dir}/${MANIFEST_FILE}`;
  const manifest = JSON.parse(await Deno.readTextFile(path));
  delete manifest.graphs.vae_decoder;
  await Deno.writeTextFile(path, JSON.stringify(manifest));
  await assertRejectsFor(
    readModelDirectory(copy.dir, { graphs: ["unet", "vae_decoder"] }),
    copy.dir,
    MANIFEST_FILE,
    /graph "vae_decoder" is not in model\.json \(it has: image_encoder, vae_encoder, unet\)/,
  );
});

Deno.test("readModelDirectory() names a missing graph file and the model.json field that lists it", async () => {
  await using copy = await copyTinyModel();
  await Deno.remove(`${copy.dir}/unet.onnx`);
  await assertRejectsFor(
    readModelDirectory(copy.dir),
    copy.dir,
    "unet.onnx",
    /"unet\.onnx" is missing \(model\.json graphs\.unet\.file\)$/,
    "graphs.unet.file",
  );
});

Deno.test("readModelDirectory() refuses a tampered config in model.json, naming line and field", async () => {
  await using copy = await copyTinyModel();
  const path = `${copy.dir}/${MANIFEST_FILE}`;
  const manifest = JSON.parse(await Deno.readTextFile(path));
  manifest.config.sampling.decodingT = 0;
  const text = JSON.stringify(manifest, null, 2);
  await Deno.writeTextFile(path, text);
  const line = text.split("\n").findIndex((l) => l.includes('"decodingT": 0')) + 1;
  const error = await assertRejectsFor(
    readModelDirectory(copy.dir),
    copy.dir,
    MANIFEST_FILE,
    new RegExp(
      `model\\.json:${line}: config\\.sampling\\.decodingT = 0 is out of range: allowed 1\\.\\.64$`,
    ),
    "config.sampling.decodingT",
  );
  assert.ok(error.cause instanceof ModelJsonError);
});

Deno.test("readModelDirectory() refuses a truncated model.json", async () => {
  await using copy = await copyTinyModel();
  const path = `${copy.dir}/${MANIFEST_FILE}`;
  const text = await Deno.readTextFile(path);
  await Deno.writeTextFile(path, text.slice(0, text.length - 100));
  await assertRejectsFor(
    readModelDirectory(copy.dir),
    copy.dir,
    MANIFEST_FILE,
    /model\.json:\d+: not valid JSON \(.*\): truncated or edited\?$/,
    null,
  );
});
