/**
 * CPU cost of one graph call in two model directories (e.g. before and after a change of graph
 * form), measured as process CPU time per call on one intra-op thread, the two models taking
 * turns. CPU time is far less sensitive than wall time to other work on a shared machine.
 *
 * Usage: deno task bench graph-cpu-time --a DIR --b DIR [--graph unet|vae_decoder] [--reps 8]
 *
 * Feeds are random, at the `generate` benchmark's shapes: 14 frames of 512×256 (latent 32×64), the
 * UNet's CFG batch of 28.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { OnnxSession } from "../../pipeline/runtime/onnx_session.ts";
import type { Tensor } from "../../pipeline/tensor.ts";

const FRAMES = 14;
const [H, W] = [32, 64];

function random(dims: number[]): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return { dims, data: Float32Array.from({ length: n }, () => Math.random() - 0.5) };
}

const FEEDS: Record<string, () => Record<string, Tensor>> = {
  unet: () => ({
    x: random([2 * FRAMES, 8, H, W]),
    timesteps: random([2 * FRAMES]),
    context: random([2 * FRAMES, 1, 64]),
    y: random([2 * FRAMES, 768]),
    image_only_indicator: { dims: [2, FRAMES], data: new Float32Array(2 * FRAMES) },
  }),
  vae_decoder: () => ({ z: random([FRAMES, 4, H, W]) }),
};

/** Runs the benchmark. */
export async function graphCpuTime(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      a: { type: "string" },
      b: { type: "string" },
      graph: { type: "string", default: "unet" },
      reps: { type: "string", default: "8" },
    },
  });
  const feeds = FEEDS[values.graph]?.();
  if (!values.a || !values.b || !feeds) {
    throw new RangeError(
      `Usage: deno task bench graph-cpu-time --a DIR --b DIR [--graph unet|vae_decoder] [--reps N]`,
    );
  }
  const sessions = [
    await OnnxSession.create(`${values.a}/${values.graph}.onnx`, { threads: 1 }),
    await OnnxSession.create(`${values.b}/${values.graph}.onnx`, { threads: 1 }),
  ];
  const times: number[][] = [[], []];
  for (let i = 0; i < Number(values.reps); i++) {
    for (const [j, session] of sessions.entries()) {
      const start = process.cpuUsage();
      await session.run(feeds);
      const used = process.cpuUsage(start);
      times[j].push((used.user + used.system) / 1000);
    }
  }
  for (const session of sessions) await session.release();
  const summary = (t: number[]) => {
    const sorted = [...t].sort((x, y) => x - y);
    return { minMs: Math.round(sorted[0]), medianMs: Math.round(sorted[sorted.length >> 1]) };
  };
  console.log(JSON.stringify({
    graph: values.graph,
    frames: FRAMES,
    latent: `${H}x${W}`,
    threads: 1,
    a: { dir: values.a, ...summary(times[0]) },
    b: { dir: values.b, ...summary(times[1]) },
  }));
}
