/**
 * `model.json` is checked whole when read: a truncated or tampered file, a value of the wrong
 * type, an unknown key, an embedded config the config loader would refuse, or a UNet whose `y`
 * does not fit the config are refused with the file, the line and the field; the writer never
 * writes what the reader would refuse.
 *
 * Run: deno test --allow-read --allow-write tests/model_json/
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../pipeline/config/mod.ts";
import {
  formatModelJson,
  ModelJsonError,
  type ModelManifest,
  parseModelJson,
  readModelJson,
  writeModelJson,
} from "../../pipeline/model_json/mod.ts";
import { tinyModelDir } from "../runtime/_tiny_model.ts";

const FILE = "models/tiny/model.json";
const PERMISSIONS = { read: true, write: true } as const;

/** The tiny model's manifest as the converter wrote it. */
async function tinyManifest(): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(`${await tinyModelDir()}/model.json`));
}

/** `manifest` with the value at `path` replaced (or deleted for `undefined`), as pretty JSON. */
function edited(manifest: unknown, path: (string | number)[], value: unknown): string {
  const copy = structuredClone(manifest) as Record<string | number, unknown>;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
  return JSON.stringify(copy, null, 2);
}

/** Asserts that `text` is refused naming `field`, with `message`, at a line that shows `near`. */
function assertRefused(
  text: string,
  expected: { field: string | null; message: RegExp; near?: RegExp },
): ModelJsonError {
  let error: unknown;
  try {
    parseModelJson(text, FILE);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ModelJsonError, `expected a ModelJsonError, got ${error}`);
  assert.equal(error.file, FILE);
  assert.equal(error.field, expected.field, error.message);
  assert.ok(error.message.startsWith(`${FILE}:${error.line}: `), error.message);
  assert.match(error.message, expected.message);
  if (expected.near) {
    assert.match(text.split("\n")[error.line - 1], expected.near, `line ${error.line}`);
  }
  return error;
}

Deno.test({
  name: "parseModelJson() accepts what the converter wrote and re-validates its config",
  permissions: PERMISSIONS,
  async fn() {
    const text = JSON.stringify(await tinyManifest(), null, 2);
    const manifest = parseModelJson(text, FILE);
    const config = await loadConfig(
      new URL("../fixtures/tiny/config.yaml", import.meta.url).pathname,
    );
    assert.deepEqual(manifest.config, config);
    assert.ok(Object.isFrozen(manifest.config.unet.channelMult));
    assert.deepEqual(Object.keys(manifest.graphs).sort(), [
      "image_encoder",
      "unet",
      "vae_decoder",
      "vae_encoder",
    ]);
  },
});

Deno.test({
  name: "parseModelJson() refuses a truncated file, naming the file and the line",
  permissions: PERMISSIONS,
  async fn() {
    const text = JSON.stringify(await tinyManifest(), null, 2);
    const cut = text.slice(0, text.length >> 1);
    const error = assertRefused(cut, {
      field: null,
      message: /: not valid JSON \(.*\): truncated/,
    });
    assert.equal(error.line, cut.split("\n").length, "the line where the text ends");
    assert.ok(error.cause instanceof SyntaxError);
  },
});

Deno.test({
  name: "parseModelJson() refuses a value of the wrong type, quoting it at its line",
  permissions: PERMISSIONS,
  async fn() {
    const manifest = await tinyManifest();
    assertRefused(edited(manifest, ["graphs", "unet", "parameters"], "many"), {
      field: "graphs.unet.parameters",
      message: /graphs\.unet\.parameters = "many": expected number, received string$/,
      near: /"parameters": "many"/,
    });
    assertRefused(edited(manifest, ["graphs", "unet", "inputs", 3, "dims", 0], true), {
      field: "graphs.unet.inputs[3].dims[0]",
      message: /graphs\.unet\.inputs\[3\]\.dims\[0\] = true is not a size .* or a symbolic name/,
      near: /true/,
    });
    assertRefused(edited(manifest, ["files", "unet.onnx", "sha256"], "not-a-hash"), {
      field: 'files["unet.onnx"].sha256',
      message: /files\["unet\.onnx"\]\.sha256 = "not-a-hash" is not 64 lowercase hex digits$/,
      near: /not-a-hash/,
    });
  },
});

Deno.test({
  name: "parseModelJson() refuses a missing field and an unknown key, naming them",
  permissions: PERMISSIONS,
  async fn() {
    const manifest = await tinyManifest();
    assertRefused(edited(manifest, ["createdAt"], undefined), {
      field: "createdAt",
      message: /createdAt is missing: expected string$/,
    });
    assertRefused(edited(manifest, ["graphs", "text_encoder"], {}), {
      field: "graphs.text_encoder",
      message: /graphs\.text_encoder is not a known key: allowed image_encoder, vae_encoder, unet/,
      near: /"text_encoder"/,
    });
    assertRefused(edited(manifest, ["graphs", "unet", "data"], "../unet.onnx.data"), {
      field: "graphs.unet.data",
      message: /graphs\.unet\.data = "\.\.\/unet\.onnx\.data" is not a file name inside the/,
      near: /"data": "\.\.\/unet\.onnx\.data"/,
    });
    const unlisted = structuredClone(manifest) as { files: Record<string, unknown> };
    delete unlisted.files["unet.onnx.data"];
    assertRefused(JSON.stringify(unlisted, null, 2), {
      field: "graphs.unet.data",
      message: /graphs\.unet\.data = "unet\.onnx\.data" has no entry in "files"/,
    });
  },
});

Deno.test({
  name: "parseModelJson() checks the embedded config with the config loader's rules",
  permissions: PERMISSIONS,
  async fn() {
    const manifest = await tinyManifest();
    assertRefused(edited(manifest, ["config", "unet", "channelMult", 1], 3.5), {
      field: "config.unet.channelMult[1]",
      message: /config\.unet\.channelMult\[1\] = 3\.5 is not an integer: allowed 1\.\.16$/,
      near: /3\.5/,
    });
    assertRefused(edited(manifest, ["config", "sampling", "numSteps"], 0), {
      field: "config.sampling.numSteps",
      message: /config\.sampling\.numSteps = 0 is out of range: allowed 1\.\.200$/,
      near: /"numSteps": 0/,
    });
    // A cross-field check, reported at the field and naming the other one as stored.
    assertRefused(edited(manifest, ["config", "unet", "inChannels"], 6), {
      field: "config.unet.inChannels",
      message: /= 6 is not twice config\.unet\.outChannels/,
      near: /"inChannels": 6/,
    });
    assertRefused(edited(manifest, ["config", "vae", "decoders"], "temporal"), {
      field: "config.vae.decoders",
      message: /config\.vae\.decoders is not a known key: allowed ch, /,
    });
    assertRefused(edited(manifest, ["config", "source", "format"], "onnx"), {
      field: "config.source.format",
      message: /= "onnx" is not an allowed value: allowed svd-stream \| sgm$/,
    });
    assertRefused(edited(manifest, ["config", "imageEncoder"], undefined), {
      field: "config.imageEncoder.imageSize",
      message: /config\.imageEncoder\.imageSize is missing: allowed 16\.\.1024$/,
    });
  },
});

Deno.test({
  name: "parseModelJson() reads a model.json written before the attention field as fused attention",
  permissions: PERMISSIONS,
  async fn() {
    const manifest = await tinyManifest();
    assert.equal(manifest.attention, "fused", "the converter records the form");
    const older = edited(manifest, ["attention"], undefined);
    assert.ok(!older.includes('"attention"'));
    assert.equal(parseModelJson(older, FILE).attention, "fused");
    const decomposed = edited(manifest, ["attention"], "decomposed");
    assert.equal(parseModelJson(decomposed, FILE).attention, "decomposed");
  },
});

Deno.test({
  name: "parseModelJson() refuses an unknown attention form, naming the field and the known forms",
  permissions: PERMISSIONS,
  async fn() {
    const manifest = await tinyManifest();
    assertRefused(edited(manifest, ["attention"], "flash"), {
      field: "attention",
      message: /attention = "flash" is not an attention form: allowed fused \| decomposed$/,
      near: /"attention": "flash"/,
    });
    assertRefused(edited(manifest, ["attention"], null), {
      field: "attention",
      message: /attention = null is not an attention form: allowed fused \| decomposed$/,
      near: /"attention": null/,
    });
  },
});

Deno.test({
  name: "parseModelJson() refuses a UNet whose y input is not as wide as the config's vector",
  permissions: PERMISSIONS,
  async fn() {
    const manifest = await tinyManifest();
    assertRefused(edited(manifest, ["graphs", "unet", "inputs", 3, "dims", 1], 192), {
      field: "graphs.unet.inputs[3].dims[1]",
      message: /= 192 differs from config\.unet\.admInChannels \(768\)/,
      near: /192/,
    });
  },
});

Deno.test({
  name: "the stored form of every config in configs/ and of sgm's fixture config reads back equal",
  permissions: { read: true },
  async fn() {
    const dir = new URL("../../configs/", import.meta.url);
    const paths = [new URL("../fixtures/tiny/config.yaml", import.meta.url).pathname];
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.endsWith(".yaml")) paths.push(new URL(entry.name, dir).pathname);
    }
    for (const path of paths) {
      const config = await loadConfig(path);
      const text = formatModelJson(minimalManifest(config));
      assert.deepEqual(parseModelJson(text, FILE).config, config, path);
    }
  },
});

Deno.test({
  name: "writeModelJson() refuses a manifest the reader would refuse and writes nothing",
  permissions: PERMISSIONS,
  async fn() {
    const config = await loadConfig(new URL("../../configs/tiny.yaml", import.meta.url).pathname);
    const dir = await Deno.makeTempDir({ prefix: "model_json_writer_" });
    try {
      const path = `${dir}/model.json`;
      const bad = { ...minimalManifest(config), createdAt: "yesterday" };
      await assert.rejects(writeModelJson(path, bad), (error: unknown) => {
        assert.ok(error instanceof ModelJsonError);
        assert.equal(error.field, "createdAt");
        return true;
      });
      assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written, not even a partial file");

      await writeModelJson(path, minimalManifest(config));
      assert.deepEqual((await readModelJson(path)).config, config);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["model.json"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A manifest without graphs around `config`. */
function minimalManifest(config: ModelManifest["config"]): ModelManifest {
  return {
    format: "svd-stream-model/1",
    name: config.name,
    createdAt: "2026-01-01T00:00:00.000Z",
    source: "random(seed=0)",
    precision: "fp32",
    attention: "fused",
    config,
    graphs: {},
    files: {},
  };
}
