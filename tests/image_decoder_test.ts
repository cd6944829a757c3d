import assert from "node:assert/strict";
import { TINY, type VaeConfig } from "../pipeline/config/network_configs.ts";
import type { BuiltNetwork } from "../pipeline/networks/built_network.ts";
import { buildImageDecoder, IMAGE_DECODER_PREFIX } from "../pipeline/networks/image_decoder.ts";
import { writeOnnxModel } from "../pipeline/onnx/model_writer.ts";
import { OnnxSession } from "../pipeline/runtime/onnx_session.ts";
import { float32Entry, writeSafetensors } from "../pipeline/safetensors/writer.ts";
import { numel, type Tensor } from "../pipeline/tensor.ts";
import { CheckpointWeights } from "../pipeline/weights/checkpoint_weights.ts";
import { gaussian, randomWeight } from "../pipeline/weights/random_weights.ts";
import { WeightsMismatchError } from "../pipeline/weights/weight_source.ts";
import { assertClose, fixturePath } from "./_fixtures.ts";

// ---------------------------------------------------------------------------------------------
// An independent float64 reference of sgm's 2-D `AutoencoderKL.decode`
// (`post_quant_conv` then `sgm/modules/diffusionmodules/model.py:Decoder`), one frame at a time.
// ---------------------------------------------------------------------------------------------

/** One frame: [c, h, w] in float64. */
interface Frame {
  readonly c: number;
  readonly h: number;
  readonly w: number;
  readonly data: Float64Array;
}

/** Returns the float32 values of a checkpoint key, asserting its shape. */
type Lookup = (key: string, dims: readonly number[]) => Float32Array;

/** torch `Conv2d(cin, cout, k, padding=(k-1)/2)`. */
function conv(x: Frame, p: Lookup, key: string, cout: number, k: number): Frame {
  const { c: cin, h, w } = x;
  const weight = p(`${key}.weight`, [cout, cin, k, k]);
  const bias = p(`${key}.bias`, [cout]);
  const pad = (k - 1) / 2;
  const out = new Float64Array(cout * h * w);
  for (let o = 0; o < cout; o++) {
    const plane = out.subarray(o * h * w, (o + 1) * h * w);
    plane.fill(bias[o]);
    for (let i = 0; i < cin; i++) {
      for (let ky = 0; ky < k; ky++) {
        for (let kx = 0; kx < k; kx++) {
          const wv = weight[((o * cin + i) * k + ky) * k + kx];
          for (let y = 0; y < h; y++) {
            const sy = y + ky - pad;
            if (sy < 0 || sy >= h) continue;
            for (let xx = 0; xx < w; xx++) {
              const sx = xx + kx - pad;
              if (sx < 0 || sx >= w) continue;
              plane[y * w + xx] += wv * x.data[(i * h + sy) * w + sx];
            }
          }
        }
      }
    }
  }
  return { c: cout, h, w, data: out };
}

/** torch `GroupNorm(32, c, eps=1e-6)` (biased variance). */
function groupNorm(x: Frame, p: Lookup, key: string): Frame {
  const gamma = p(`${key}.weight`, [x.c]);
  const beta = p(`${key}.bias`, [x.c]);
  const size = (x.c / 32) * x.h * x.w;
  const out = new Float64Array(x.data.length);
  for (let g = 0; g < 32; g++) {
    const group = x.data.subarray(g * size, (g + 1) * size);
    const mean = group.reduce((a, b) => a + b, 0) / size;
    const variance = group.reduce((a, b) => a + (b - mean) ** 2, 0) / size;
    const inv = 1 / Math.sqrt(variance + 1e-6);
    for (let j = 0; j < size; j++) {
      const channel = Math.floor((g * size + j) / (x.h * x.w));
      out[g * size + j] = (group[j] - mean) * inv * gamma[channel] + beta[channel];
    }
  }
  return { ...x, data: out };
}

function silu(x: Frame): Frame {
  return { ...x, data: x.data.map((v) => v / (1 + Math.exp(-v))) };
}

function add(a: Frame, b: Frame): Frame {
  return { ...a, data: a.data.map((v, i) => v + b.data[i]) };
}

function resnetBlock(x: Frame, p: Lookup, key: string, cout: number): Frame {
  let h = conv(silu(groupNorm(x, p, `${key}.norm1`)), p, `${key}.conv1`, cout, 3);
  h = conv(silu(groupNorm(h, p, `${key}.norm2`)), p, `${key}.conv2`, cout, 3);
  const skip = x.c === cout ? x : conv(x, p, `${key}.nin_shortcut`, cout, 1);
  return add(skip, h);
}

/** sgm `AttnBlock`: single head over h·w, 1×1 conv q/k/v/proj_out, scale c^-0.5. */
function attnBlock(x: Frame, p: Lookup, key: string): Frame {
  const { c, h, w } = x;
  const n = h * w;
  const normed = groupNorm(x, p, `${key}.norm`);
  const [q, k, v] = ["q", "k", "v"].map((name) => conv(normed, p, `${key}.${name}`, c, 1).data);
  const attended = new Float64Array(c * n);
  const scores = new Float64Array(n);
  for (let s = 0; s < n; s++) {
    let max = -Infinity;
    for (let t = 0; t < n; t++) {
      let dot = 0;
      for (let i = 0; i < c; i++) dot += q[i * n + s] * k[i * n + t];
      scores[t] = dot / Math.sqrt(c);
      max = Math.max(max, scores[t]);
    }
    let sum = 0;
    for (let t = 0; t < n; t++) sum += scores[t] = Math.exp(scores[t] - max);
    for (let i = 0; i < c; i++) {
      let acc = 0;
      for (let t = 0; t < n; t++) acc += scores[t] * v[i * n + t];
      attended[i * n + s] = acc / sum;
    }
  }
  return add(x, conv({ c, h, w, data: attended }, p, `${key}.proj_out`, c, 1));
}

/** Nearest ×2 then 3×3 conv. */
function upsample(x: Frame, p: Lookup, key: string): Frame {
  const { c, h, w } = x;
  const data = new Float64Array(c * 4 * h * w);
  for (let i = 0; i < c; i++) {
    for (let y = 0; y < 2 * h; y++) {
      for (let xx = 0; xx < 2 * w; xx++) {
        data[(i * 2 * h + y) * 2 * w + xx] = x.data[(i * h + (y >> 1)) * w + (xx >> 1)];
      }
    }
  }
  return conv({ c, h: 2 * h, w: 2 * w, data }, p, `${key}.conv`, c, 3);
}

/** `AutoencoderKL.decode` of one latent frame [embedDim, h, w]. */
function referenceDecode(config: VaeConfig, p: Lookup, prefix: string, z: Frame): Frame {
  const key = `${prefix}decoder`;
  const levels = config.chMult.length;
  let x = conv(z, p, `${prefix}post_quant_conv`, config.zChannels, 1);
  x = conv(x, p, `${key}.conv_in`, config.ch * config.chMult[levels - 1], 3);
  x = resnetBlock(x, p, `${key}.mid.block_1`, x.c);
  x = attnBlock(x, p, `${key}.mid.attn_1`);
  x = resnetBlock(x, p, `${key}.mid.block_2`, x.c);
  for (let level = levels - 1; level >= 0; level--) {
    for (let i = 0; i <= config.numResBlocks; i++) {
      x = resnetBlock(x, p, `${key}.up.${level}.block.${i}`, config.ch * config.chMult[level]);
    }
    if (level !== 0) x = upsample(x, p, `${key}.up.${level}.upsample`);
  }
  return conv(silu(groupNorm(x, p, `${key}.norm_out`)), p, `${key}.conv_out`, config.outCh, 3);
}

/** The reference over every frame of `z` [T, embedDim, h, w], as float32 [T, outCh, 8h, 8w]. */
function referenceDecodeFrames(config: VaeConfig, p: Lookup, prefix: string, z: Tensor): Tensor {
  const [frames, c, h, w] = z.dims;
  const outputs = Array.from({ length: frames }, (_, t) =>
    referenceDecode(config, p, prefix, {
      c,
      h,
      w,
      data: Float64Array.from(z.data.subarray(t * c * h * w, (t + 1) * c * h * w)),
    }));
  const { c: oc, h: oh, w: ow } = outputs[0];
  const data = new Float32Array(frames * oc * oh * ow);
  outputs.forEach((o, t) => data.set(o.data, t * oc * oh * ow));
  return { dims: [frames, oc, oh, ow], data };
}

// ---------------------------------------------------------------------------------------------

/** A small 2-D decoder: GroupNorm needs multiples of 32 channels. */
const SMALL: VaeConfig = { ...TINY.vae, ch: 32, chMult: [1, 2], numResBlocks: 1 };

/** Seeded N(0, 1) latents. */
function randomLatent(dims: readonly number[], seed: number): Tensor {
  const normal = gaussian(seed);
  return { dims, data: Float32Array.from({ length: numel(dims) }, normal) };
}

/**
 * Runs the reference once over random weights drawn on demand (so the checkpoint holds exactly the
 * keys the reference reads), then writes them, plus an encoder-side key the decoder must ignore,
 * to `path` without the keys in `omit`.
 */
async function writeSmallCheckpoint(
  path: string,
  z: Tensor,
  omit: readonly string[] = [],
): Promise<Tensor> {
  const drawn = new Map<string, Tensor>();
  const lookup: Lookup = (key, dims) => {
    const t = { dims, data: randomWeight(key, dims, 7) };
    drawn.set(key, t);
    return t.data;
  };
  const expected = referenceDecodeFrames(SMALL, lookup, IMAGE_DECODER_PREFIX, z);
  drawn.set("first_stage_model.quant_conv.weight", {
    dims: [8, 8, 1, 1],
    data: new Float32Array(64),
  });
  const entries = [...drawn].filter(([k]) => !omit.includes(k)).map(([k, t]) => float32Entry(k, t));
  await writeSafetensors(path, entries);
  return expected;
}

/** Writes `network` into `dir`, runs it once on `z` and returns `image`. */
async function decodeOnce(network: BuiltNetwork, dir: string, z: Tensor): Promise<Tensor> {
  const path = `${dir}/${network.graph.name}.onnx`;
  await writeOnnxModel(network.graph, path);
  const session = await OnnxSession.create(path);
  try {
    return (await session.run({ z })).image;
  } finally {
    await session.release();
  }
}

/**
 * fp16 (float16 weights and activations, float32 GroupNorm statistics and I/O), ORT CPU 1.30,
 * small random decoder: measured max |fp16 − float64 reference| 2.5e-3 on outputs up to |2.1|
 * (fp32: 2.6e-6). float16's unit roundoff 2^-11 ≈ 4.9e-4 gives ≈1e-3 on such values from one
 * rounding, and
 * rounding accumulates over ~12 convolutions and the attention; 2e-2 leaves margin for kernels
 * that keep more in fp16 than the CPU provider does. A wrong layer is ≥ 1e-1.
 */
const FP16_BOUND = 2e-2;

Deno.test("buildImageDecoder() matches a float64 reference of AutoencoderKL.decode", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const z = randomLatent([2, 4, 8, 8], 11);
    const expected = await writeSmallCheckpoint(`${dir}/small.safetensors`, z);
    using weights = await CheckpointWeights.open([`${dir}/small.safetensors`]);
    const fp32 = await decodeOnce(buildImageDecoder(SMALL, weights), dir, z);
    assertClose(fp32, expected, 1e-4, "fp32 image");
    const fp16 = await decodeOnce(buildImageDecoder(SMALL, weights, { precision: "fp16" }), dir, z);
    assertClose(fp16, expected, FP16_BOUND, "fp16 image");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildImageDecoder() reads sgm's key names: the fixture's 2-D conditioner decoder", async () => {
  // The conditioner's AutoencoderKLModeOnly holds an (unused) 2-D decoder with post_quant_conv,
  // written by sgm itself: the same module as an image_decoder checkpoint's first stage.
  const prefix = "conditioner.embedders.3.encoder.";
  using weights = await CheckpointWeights.open([fixturePath("weights.safetensors")]);
  const values = new Map<string, Float32Array>();
  for (const key of weights.keys().filter((k) => k.startsWith(prefix))) {
    values.set(key, await weights.read(key));
  }
  const lookup: Lookup = (key, dims) => {
    assert.deepEqual(weights.dims(key), dims, key);
    return values.get(key)!;
  };
  const z = randomLatent([1, 4, 4, 4], 12);
  const expected = referenceDecodeFrames(TINY.vae, lookup, prefix, z);
  const dir = await Deno.makeTempDir();
  try {
    const image = await decodeOnce(buildImageDecoder(TINY.vae, weights, { prefix }), dir, z);
    assertClose(image, expected, 1e-4, "conditioner 2-D decoder image");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildImageDecoder() rejects a temporal checkpoint, naming post_quant_conv", async () => {
  using weights = await CheckpointWeights.open([fixturePath("weights.safetensors")]);
  assert.throws(
    () => buildImageDecoder(TINY.vae, weights),
    (error: unknown) =>
      error instanceof WeightsMismatchError &&
      error.key === "first_stage_model.post_quant_conv.weight" &&
      error.message.includes(error.key),
  );
});

Deno.test("buildImageDecoder() rejects a temporal decoder even with a post_quant_conv", async () => {
  // give the temporal checkpoint the conditioner's post_quant_conv: every 2-D key is then found,
  // and the temporal keys are reported as unused
  using weights = await CheckpointWeights.open(
    [fixturePath("weights.safetensors")],
    (key) =>
      key.replace(
        "conditioner.embedders.3.encoder.post_quant_conv.",
        "first_stage_model.post_quant_conv.",
      ),
  );
  assert.throws(
    () => buildImageDecoder(TINY.vae, weights),
    (error: unknown) =>
      error instanceof WeightsMismatchError &&
      /^first_stage_model\.decoder\..*(time_stack|mix_factor|time_mix_conv)/.test(error.key) &&
      error.message.includes("unused"),
  );
});

Deno.test("buildImageDecoder() names a missing key and a key of the wrong shape", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = "first_stage_model.decoder.up.0.block.0.nin_shortcut.bias";
    await writeSmallCheckpoint(`${dir}/small.safetensors`, randomLatent([1, 4, 2, 2], 13), [
      missing,
    ]);
    using weights = await CheckpointWeights.open([`${dir}/small.safetensors`]);
    assert.throws(
      () => buildImageDecoder(SMALL, weights),
      (error: unknown) =>
        error instanceof WeightsMismatchError && error.key === missing &&
        error.message.includes(missing),
    );
    // a config with 4× wider channels reads every weight with another shape; the first is named
    assert.throws(
      () => buildImageDecoder({ ...SMALL, ch: 128 }, weights),
      (error: unknown) =>
        error instanceof WeightsMismatchError &&
        error.key === "first_stage_model.decoder.conv_in.weight" &&
        error.message.includes("[64, 4, 3, 3]"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
