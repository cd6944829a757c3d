/**
 * The full-size SVD-XT UNet on ONNX Runtime's CPU provider: one denoising step is one UNet call on
 * the CFG batch of 2×frames, timed so it can be set beside PyTorch's time for the same call.
 *
 * Converts the UNet alone from random weights of the real shapes (`deno task convert --checkpoint
 * random --graphs unet`, float32 as the CPU computes) into `.cache/` on first use, loads it,
 * runs one warm-up call and `--runs` timed calls, and prints one JSON line.
 *
 * Usage: deno task bench unet [--frames 4] [--latent 8x16] [--threads 2] [--runs 3]
 *        [--dtype fp32|fp16] [--config configs/svd_xt.yaml]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { peakRssBytes } from "../../pipeline/cli/peak_rss.ts";
import { OnnxSession } from "../../pipeline/runtime/onnx_session.ts";
import { type Tensor, tensor } from "../../pipeline/tensor.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Runs the benchmark. */
export async function unetCpu(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      frames: { type: "string", default: "4" },
      latent: { type: "string", default: "8x16" },
      threads: { type: "string", default: "2" },
      runs: { type: "string", default: "3" },
      dtype: { type: "string", default: "fp32" },
      config: { type: "string", default: "configs/svd_xt.yaml" },
    },
    strict: true,
  });
  const frames = positive("frames", values.frames);
  const threads = positive("threads", values.threads);
  const runs = positive("runs", values.runs);
  const latent = /^(\d+)x(\d+)$/.exec(values.latent);
  if (!latent) throw new RangeError(`--latent must be HxW (e.g. 8x16), got "${values.latent}"`);
  const [h, w] = [Number(latent[1]), Number(latent[2])];
  if (h % 8 !== 0 || w % 8 !== 0) {
    throw new RangeError(`--latent ${values.latent}: both sides must be multiples of 8`);
  }
  if (values.dtype !== "fp32" && values.dtype !== "fp16") {
    throw new RangeError(`--dtype must be fp32 or fp16, got "${values.dtype}"`);
  }

  const name = values.config.replace(/^.*\//, "").replace(/\.yaml$/, "");
  const dir = `${ROOT}.cache/${name}_random_unet_${values.dtype}`;
  if (!(await exists(`${dir}/model.json`))) {
    console.error(`converting the full-size UNet from random weights into ${dir} …`);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "-q",
        "convert",
        "--config",
        values.config,
        "--checkpoint",
        "random",
        "--graphs",
        "unet",
        "--dtype",
        values.dtype,
        "--out",
        dir,
        "--force",
      ],
      cwd: ROOT,
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error("deno task convert failed");
  }
  const manifest = JSON.parse(await Deno.readTextFile(`${dir}/model.json`));
  const unet = manifest.config.unet;

  let started = performance.now();
  const session = await OnnxSession.create(`${dir}/unet.onnx`, { provider: "cpu", threads });
  const loadSeconds = (performance.now() - started) / 1000;
  try {
    // The CFG batch: conditional and unconditional halves of `frames` frames each.
    const n = 2 * frames;
    const fill = (dims: number[], f: (i: number) => number): Tensor =>
      tensor(dims, Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => f(i)));
    const feeds = {
      x: fill([n, unet.inChannels, h, w], (i) => Math.sin(i * 0.37)),
      timesteps: fill([n], () => 0.25 * Math.log(10)),
      context: fill([n, 1, unet.contextDim], (i) => Math.cos(i * 0.11)),
      y: fill([n, unet.admInChannels], (i) => Math.sin(i * 0.05)),
      image_only_indicator: fill([2, frames], () => 0),
    };
    await session.run(feeds); // warm-up: first-run allocations and prepacking
    const times: number[] = [];
    let finite = true;
    for (let i = 0; i < runs; i++) {
      started = performance.now();
      const { out } = await session.run(feeds);
      times.push(performance.now() - started);
      finite &&= out.data.every(Number.isFinite);
    }
    const sorted = [...times].sort((a, b) => a - b);
    console.log(JSON.stringify({
      bench: "unet",
      provider: "cpu",
      model: name,
      precision: values.dtype,
      frames,
      batch: n,
      latent: [h, w],
      threads,
      load_s: round(loadSeconds, 1),
      runs,
      ms_per_step_median: Math.round(sorted[Math.floor(sorted.length / 2)]),
      ms_per_step_min: Math.round(sorted[0]),
      outputs_finite: finite,
      peak_rss_gib: round(peakRssBytes() / 2 ** 30, 2),
    }));
  } finally {
    await session.release();
  }
}

function positive(flag: string, raw: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`--${flag} must be a positive integer, got "${raw}"`);
  }
  return value;
}

function round(value: number, digits: number): number {
  return Number(value.toFixed(digits));
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
