/**
 * The memory plan: what it adds up, how it grows with `decoding_t`, and the chooser built on it.
 *
 * Run: deno test --allow-read tests/plan/memory_plan_test.ts
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { loadConfig, type SvdConfig } from "../../pipeline/config/mod.ts";
import {
  chooseDecodingT,
  CUDA_CONTEXT_BYTES,
  CUDA_SESSION_BYTES,
  GPUS,
  largestDecodingT,
  planMemory,
} from "../../pipeline/plan/mod.ts";
import { buildGraphStructure } from "../../pipeline/plan/graph_structure.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const GIB = 1024 ** 3;
const config = (name: string): Promise<SvdConfig> => loadConfig(`${ROOT}configs/${name}.yaml`);

Deno.test("planMemory() adds runtime, weights and each session's arena, the decoder at its in-use peak", async () => {
  const tiny = await config("tiny");
  const plan = planMemory({
    config: tiny,
    precision: "fp32",
    provider: "cuda",
    frames: 4,
    width: 128,
    height: 64,
    decodingT: 2,
  });
  assert.equal(plan.runtimeBytes, CUDA_CONTEXT_BYTES + 4 * CUDA_SESSION_BYTES);
  // Weights: the exact bytes of the initializers the converter would write.
  const unet = buildGraphStructure("unet", tiny, "fp32");
  assert.equal(plan.weightBytes.unet, unet.initializers.reduce((s, i) => s + i.byteLength, 0));
  const a = plan.activations;
  assert.equal(plan.components.unet, a.unet.reservedBytes);
  assert.equal(
    plan.components.encoders,
    a.image_encoder.reservedBytes + a.vae_encoder.reservedBytes,
  );
  assert.equal(plan.components.vaeDecode, a.vae_decoder.inUseBytes);
  const sum = Object.values(plan.components).reduce((x, y) => x + y, 0);
  assert.equal(plan.totalBytes, sum);
  for (const graph of Object.values(a)) {
    assert.ok(graph.livePeakBytes <= graph.inUseBytes && graph.inUseBytes <= graph.reservedBytes);
  }
});

Deno.test("planMemory() counts SVD-XT's fp16 weights as the converter writes them (4.70 GB)", async () => {
  const plan = planMemory({
    config: await config("svd_xt"),
    precision: "fp16",
    provider: "cuda",
    frames: 25,
    width: 1024,
    height: 576,
    decodingT: 1,
  });
  // README: "weights are 4.70 GB with --dtype fp16 (UNet and CLIP fp16, VAE fp32)".
  assert.ok(plan.components.weights >= 4.70e9 && plan.components.weights < 4.72e9);
  // The UNet's CFG batch is 2·25: its live peak is in a level-0 feed-forward of [50, 9216, 2560].
  assert.ok(plan.activations.unet.livePeakBytes > 2 * 50 * 9216 * 2560 * 2);
});

Deno.test("planMemory() grows with decoding_t and only the decoder changes", async () => {
  for (
    const [name, precision, provider] of [["svd_xt", "fp16", "cuda"], [
      "tiny",
      "fp32",
      "cpu",
    ]] as const
  ) {
    const c = await config(name);
    const plans = [1, 2, 3, 5, 8, 13].map((decodingT) =>
      planMemory({ config: c, precision, provider, frames: 13, width: 256, height: 128, decodingT })
    );
    for (let i = 1; i < plans.length; i++) {
      assert.ok(plans[i].components.vaeDecode > plans[i - 1].components.vaeDecode, `${name} ${i}`);
      assert.ok(plans[i].totalBytes > plans[i - 1].totalBytes);
      assert.equal(plans[i].components.unet, plans[0].components.unet);
      assert.equal(plans[i].components.weights, plans[0].components.weights);
    }
  }
});

Deno.test("planMemory() on the CPU counts float16 weights as float32 and arenas as written", async () => {
  const xt = await config("svd_xt");
  const run = { frames: 2, width: 128, height: 64, decodingT: 1 };
  const cpu16 = planMemory({ config: xt, precision: "fp16", provider: "cpu", ...run });
  const cpu32 = planMemory({ config: xt, precision: "fp32", provider: "cpu", ...run });
  const gpu16 = planMemory({ config: xt, precision: "fp16", provider: "cuda", ...run });
  assert.equal(cpu16.components.weights, cpu32.components.weights);
  assert.ok(gpu16.components.weights < 0.55 * cpu32.components.weights);
  assert.equal(cpu16.components.unet, cpu16.activations.unet.touchedBytes);
});

Deno.test("planMemory() refuses sizes the model cannot run, naming the field", async () => {
  const tiny = await config("tiny");
  const base = {
    config: tiny,
    precision: "fp32",
    provider: "cuda",
    frames: 2,
    width: 128,
    height: 64,
    decodingT: 1,
  } as const;
  assert.throws(
    () => planMemory({ ...base, width: 100 }),
    /width = 100 is not a positive multiple of 64/,
  );
  assert.throws(
    () => planMemory({ ...base, decodingT: 0 }),
    /decodingT = 0 is not a positive integer/,
  );
});

Deno.test("largestDecodingT() picks the largest value whose plan fits, for any budget", async () => {
  const tiny = await config("tiny");
  const question = {
    config: tiny,
    precision: "fp32",
    provider: "cuda",
    run: { frames: 6, width: 256, height: 128 },
  } as const;
  const totals = [1, 2, 3, 4, 5, 6].map((decodingT) =>
    planMemory({ ...question, ...question.run, decodingT }).totalBytes
  );
  fc.assert(
    fc.property(fc.integer({ min: totals[0] - 1000, max: totals[5] + 1000 }), (budget) => {
      const expected = totals.filter((t) => t <= budget).length;
      const { decodingT } = largestDecodingT(question, budget);
      assert.equal(decodingT ?? 0, expected);
    }),
    { numRuns: 60 },
  );
  // Exactly at a plan's total it fits; a byte less and it does not.
  assert.equal(largestDecodingT(question, totals[3]).decodingT, 4);
  assert.equal(largestDecodingT(question, totals[3] - 1).decodingT, 3);
  assert.equal(largestDecodingT(question, totals[0] - 1).decodingT, undefined);
});

Deno.test("chooseDecodingT() never exceeds the model's default and falls back to 1 when nothing fits", async () => {
  const tiny = await config("tiny"); // sampling.decoding_t 3, 4 frames
  const question = { config: tiny, precision: "fp32", provider: "cuda" } as const;
  const big = chooseDecodingT(question, 1000 * GIB);
  assert.deepEqual([big.decodingT, big.fits], [3, true]);
  const plan2 = planMemory({ ...question, frames: 4, width: 128, height: 64, decodingT: 2 });
  const two = chooseDecodingT(question, plan2.totalBytes);
  assert.deepEqual([two.decodingT, two.fits, two.plannedBytes], [2, true, plan2.totalBytes]);
  const none = chooseDecodingT(question, 1);
  assert.deepEqual([none.decodingT, none.fits], [1, false]);
  assert.equal(chooseDecodingT(question, 1000 * GIB, 1).decodingT, 1);
});

Deno.test("the plan fits SVD-XT's whole video into one decoder call on an H100 and an H200", async () => {
  const question = { config: await config("svd_xt"), precision: "fp16", provider: "cuda" } as const;
  assert.equal(largestDecodingT(question, GPUS.h100.memoryBytes).decodingT, 25);
  assert.equal(largestDecodingT(question, GPUS.h200.memoryBytes).decodingT, 25);
  const a100 = largestDecodingT(question, GPUS["a100-40"].memoryBytes).decodingT!;
  assert.ok(a100 >= 1 && a100 < 25);
});

Deno.test("planMemory() with unetBatch split plans the UNet at one video per call: about half its memory, nothing else changes", async () => {
  const question = { config: await config("svd_xt"), precision: "fp16", provider: "cuda" } as const;
  const run = { frames: 25, width: 1024, height: 576, decodingT: 2 };
  const batched = planMemory({ ...question, ...run });
  const split = planMemory({ ...question, ...run, unetBatch: "split" });
  assert.equal(batched.request.unetBatch, "cfg");
  assert.equal(split.request.unetBatch, "split");
  const ratio = split.activations.unet.livePeakBytes / batched.activations.unet.livePeakBytes;
  assert.ok(ratio > 0.45 && ratio < 0.55, `live peak ratio ${ratio}`);
  assert.ok(split.components.unet < 0.55 * batched.components.unet);
  for (const part of ["runtime", "weights", "encoders", "vaeDecode"] as const) {
    assert.equal(split.components[part], batched.components[part], part);
  }
});

Deno.test("chooseDecodingT() with unetBatch auto splits the CFG batch only when that lets more frames per decoder call fit", async () => {
  const question = { config: await config("svd_xt"), precision: "fp16", provider: "cuda" } as const;
  // An L4: the batched UNet does not fit at all; split, decoding_t 3 does (docs/gpu.md).
  const l4 = chooseDecodingT({ ...question, unetBatch: "auto" }, GPUS.l4.memoryBytes);
  assert.deepEqual([l4.unetBatch, l4.decodingT, l4.fits], ["split", 3, true]);
  assert.equal(chooseDecodingT(question, GPUS.l4.memoryBytes).fits, false, "cfg alone");
  // An H100 decodes the model's default 14 batched: no reason to split.
  const h100 = chooseDecodingT({ ...question, unetBatch: "auto" }, GPUS.h100.memoryBytes);
  assert.deepEqual([h100.unetBatch, h100.decodingT], ["cfg", 14]);
  // An A100 40 GB: batched reaches 8, split 11 (still under the default 14): split.
  const a100 = chooseDecodingT({ ...question, unetBatch: "auto" }, GPUS["a100-40"].memoryBytes);
  assert.equal(a100.unetBatch, "split");
  assert.ok(a100.decodingT > chooseDecodingT(question, GPUS["a100-40"].memoryBytes).decodingT);
});

Deno.test("planMemory() with decomposed attention counts every score of the UNet's attention", async () => {
  const svdXt = await config("svd_xt");
  const run = { frames: 13, width: 256, height: 128, decodingT: 2 } as const;
  const plan = (attention: "fused" | "decomposed") =>
    planMemory({ config: svdXt, precision: "fp16", provider: "cuda", attention, ...run });
  const fused = plan("fused");
  const decomposed = plan("decomposed");
  assert.equal(fused.request.attention, "fused");
  assert.equal(decomposed.request.attention, "decomposed");
  // The same weights; the decomposed form adds only small shape and scale constants.
  for (const [graph, bytes] of Object.entries(decomposed.weightBytes)) {
    const extra = bytes - fused.weightBytes[graph as keyof typeof fused.weightBytes];
    assert.ok(extra >= 0 && extra < 1024, `${graph}: ${extra} bytes more`);
  }
  // Level 0's spatial self-attention: the CFG batch of 26, 5 heads of 64, 32×16 = 512 tokens;
  // its float32 scores [26, 5, 512, 512] are one live tensor.
  const scores = 26 * 5 * 512 * 512 * 4;
  assert.ok(decomposed.activations.unet.livePeakBytes >= scores);
  assert.ok(decomposed.components.unet > fused.components.unet);
  assert.deepEqual(
    planMemory({ config: svdXt, precision: "fp16", provider: "cuda", ...run }),
    fused,
  );
});
