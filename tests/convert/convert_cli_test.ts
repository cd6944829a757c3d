/**
 * The converter as users run it: `deno task convert --config <fixture config.yaml> --checkpoint
 * <fixture weights.safetensors> --out <dir>` writes four graphs and model.json, and each graph
 * reproduces the reference fixtures (tolerances from tests/fixtures/README.md).
 */

import assert from "node:assert/strict";
import type { ModelManifest } from "../../pipeline/model_json/mod.ts";
import { OnnxSession } from "../../pipeline/runtime/onnx_session.ts";
import type { Tensor } from "../../pipeline/tensor.ts";
import { assertClose, fixturePath, readFixture } from "../_fixtures.ts";
import { runTask } from "../_run_task.ts";

async function convertFixture(dir: string, extra: string[] = []) {
  return await runTask("convert", [
    "--config",
    fixturePath("config.yaml"),
    "--checkpoint",
    fixturePath("weights.safetensors"),
    "--out",
    dir,
    ...extra,
  ]);
}

async function runGraph(dir: string, file: string, feeds: Record<string, Tensor>) {
  const session = await OnnxSession.create(`${dir}/${file}`);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Rows [start, end) of a [N, ...] tensor. */
function rows(t: Tensor, start: number, end: number): Tensor {
  const size = t.data.length / t.dims[0];
  return { dims: [end - start, ...t.dims.slice(1)], data: t.data.slice(start * size, end * size) };
}

function concatRows(parts: Tensor[]): Tensor {
  const data = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let offset = 0;
  for (const p of parts) {
    data.set(p.data, offset);
    offset += p.data.length;
  }
  const n = parts.reduce((s, p) => s + p.dims[0], 0);
  return { dims: [n, ...parts[0].dims.slice(1)], data };
}

Deno.test("deno task convert on the fixture checkpoint reproduces every network's fixture", async (t) => {
  const root = await Deno.makeTempDir();
  const dir = `${root}/tiny`;
  try {
    const result = await convertFixture(dir);
    assert.equal(result.code, 0, result.stderr);
    const manifest: ModelManifest = JSON.parse(await Deno.readTextFile(`${dir}/model.json`));

    await t.step("model.json names the four graphs with their fixed I/O names", () => {
      const io = Object.fromEntries(
        Object.entries(manifest.graphs).map(([name, g]) => [
          name,
          [g!.inputs.map((v) => v.name), g!.outputs.map((v) => v.name)],
        ]),
      );
      assert.deepEqual(io, {
        image_encoder: [["pixel_values"], ["image_embeds"]],
        vae_encoder: [["image"], ["mean", "logvar"]],
        unet: [["x", "timesteps", "context", "y", "image_only_indicator"], ["out"]],
        vae_decoder: [["z"], ["image"]],
      });
      for (const file of Object.keys(manifest.files)) {
        assert.match(manifest.files[file].sha256, /^[0-9a-f]{64}$/);
      }
      assert.equal(manifest.attention, "fused");
    });

    await t.step(
      "unet.onnx matches unet.safetensors (sampler case and alt case) within 5e-4",
      async () => {
        const names = ["x", "timesteps", "context", "y", "image_only_indicator"];
        const f = await readFixture("unet.safetensors", [
          ...names,
          "out",
          ...names.map((n) => `alt.${n}`),
          "alt.out",
        ]);
        for (const prefix of ["", "alt."]) {
          const feeds = Object.fromEntries(names.map((n) => [n, f[prefix + n]]));
          const { out } = await runGraph(dir, "unet.onnx", feeds);
          assertClose(out, f[`${prefix}out`], 5e-4, `unet ${prefix}out`);
        }
      },
    );

    await t.step("image_encoder.onnx matches clip.safetensors within 1e-4", async () => {
      const f = await readFixture("clip.safetensors", [
        "preprocessed",
        "embedding",
        "large.preprocessed",
        "large.embedding",
      ]);
      for (const prefix of ["", "large."]) {
        const out = await runGraph(dir, "image_encoder.onnx", {
          pixel_values: f[`${prefix}preprocessed`],
        });
        assertClose(out.image_embeds, f[`${prefix}embedding`], 1e-4, `${prefix}embedding`);
      }
    });

    await t.step("vae_encoder.onnx matches the conditioner encoder within 1e-4", async () => {
      const f = await readFixture("vae_encode.safetensors", [
        "x",
        "cond_encoder.mean",
        "cond_encoder.logvar",
      ]);
      const out = await runGraph(dir, "vae_encoder.onnx", { image: f.x });
      assertClose(out.mean, f["cond_encoder.mean"], 1e-4, "mean");
      assertClose(out.logvar, f["cond_encoder.logvar"], 1e-4, "logvar");
    });

    await t.step(
      "vae_decoder.onnx matches chunked and single-chunk decoding within 5e-4",
      async () => {
        const f = await readFixture("vae_decode.safetensors", [
          "z_decoder_input",
          "out",
          "out_single_chunk",
        ]);
        const z = f.z_decoder_input;
        const chunks = [];
        for (const [start, end] of [[0, 3], [3, 4]]) {
          chunks.push((await runGraph(dir, "vae_decoder.onnx", { z: rows(z, start, end) })).image);
        }
        assertClose(concatRows(chunks), f.out, 5e-4, "decode, chunks of 3");
        const single = await runGraph(dir, "vae_decoder.onnx", { z });
        assertClose(single.image, f.out_single_chunk, 5e-4, "decode, one chunk");
      },
    );

    await t.step("an existing output is not overwritten without --force", async () => {
      const again = await convertFixture(dir);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /exists \(pass --force/);
      const forced = await convertFixture(dir, ["--force", "--dtype", "fp16"]);
      assert.equal(forced.code, 0, forced.stderr);
      const m: ModelManifest = JSON.parse(await Deno.readTextFile(`${dir}/model.json`));
      assert.equal(m.graphs.unet!.dtype, "fp16");
      assert.equal(m.graphs.vae_decoder!.dtype, "fp32");
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("deno task convert with a mismatched config fails naming the key and leaves nothing", async () => {
  const root = await Deno.makeTempDir();
  try {
    const result = await runTask("convert", [
      "--config",
      "configs/svd.yaml",
      "--checkpoint",
      fixturePath("weights.safetensors"),
      "--out",
      `${root}/out`,
    ]);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /^error: Weight "conditioner\.embedders\.0\.open_clip\.model\.visual\.[^"]+" has shape/m,
    );
    assert.deepEqual([...Deno.readDirSync(root)], []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("deno task convert refuses bad arguments with one line and exit code 2", async () => {
  const missing = await runTask("convert", ["--config", "configs/tiny.yaml"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--checkpoint is required/);
  const dtype = await runTask("convert", [
    "--config",
    "a",
    "--checkpoint",
    "b",
    "--out",
    "c",
    "--dtype",
    "int8",
  ]);
  assert.equal(dtype.code, 2);
  assert.match(dtype.stderr, /--dtype must be fp32 or fp16, got "int8"/);
  const attention = await runTask("convert", [
    "--config",
    "a",
    "--checkpoint",
    "b",
    "--out",
    "c",
    "--attention",
    "flash",
  ]);
  assert.equal(attention.code, 2);
  assert.match(attention.stderr, /--attention must be fused or decomposed, got "flash"/);
});

Deno.test("deno task convert --attention decomposed records the form and emits no MultiHeadAttention", async () => {
  const root = await Deno.makeTempDir();
  try {
    const result = await convertFixture(`${root}/tiny`, ["--attention", "decomposed"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /unet: unet\.onnx \(fp32, attention decomposed,/);
    const manifest: ModelManifest = JSON.parse(await Deno.readTextFile(`${root}/tiny/model.json`));
    assert.equal(manifest.attention, "decomposed");
    for (const graph of Object.values(manifest.graphs)) {
      const bytes = await Deno.readFile(`${root}/tiny/${graph!.file}`);
      const text = new TextDecoder("latin1").decode(bytes);
      assert.ok(!text.includes("MultiHeadAttention"), `${graph!.file} has MultiHeadAttention`);
      assert.ok(text.includes("Softmax"), `${graph!.file} has no Softmax`);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
