/**
 * What moving the networks' tensors between the service and its inference costs, per call: the
 * inference process's pipe protocol (`pipeline/runtime/_process_protocol.ts`, raw float32 over
 * stdin/stdout) against the Worker thread it replaced (structured clone with transferred
 * buffers, the feeds copied once as the Worker client did). Both ends do no compute: an echo of
 * one output of the UNet's (or the decoder's) size.
 *
 * Shapes: one CFG UNet call of SVD-XT at 576×1024 (x [50, 8, 72, 128] and the conditioning in,
 * out [50, 4, 72, 128] back: 14.7 + 7.4 MB), of SVD (28 frames), and one decoder chunk of 14
 * frames (z [14, 4, 72, 128] in, image [14, 3, 576, 1024] back: 99 MB).
 *
 * Usage: deno task bench ipc [--runs 20]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { FrameReader, FrameWriter } from "../../pipeline/runtime/_process_protocol.ts";
import { type Tensor, tensor } from "../../pipeline/tensor.ts";

interface Case {
  readonly name: string;
  readonly feeds: () => Record<string, Tensor>;
  readonly outDims: number[];
}

const unetCase = (frames: number): Case => ({
  name: `UNet call, CFG batch ${2 * frames} at 576×1024`,
  feeds: () => ({
    x: tensor([2 * frames, 8, 72, 128]),
    timesteps: tensor([2 * frames]),
    context: tensor([2 * frames, 1, 1024]),
    y: tensor([2 * frames, 768]),
    image_only_indicator: tensor([2, frames]),
  }),
  outDims: [2 * frames, 4, 72, 128],
});

const CASES: Case[] = [
  unetCase(25),
  unetCase(14),
  {
    name: "decoder chunk of 14 frames at 576×1024",
    feeds: () => ({ z: tensor([14, 4, 72, 128]) }),
    outDims: [14, 3, 576, 1024],
  },
];

/** Runs the benchmark. */
export async function ipc(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { runs: { type: "string", default: "20" } } });
  const runs = Number(values.runs);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-ffi",
      new URL("./_ipc_echo_process.ts", import.meta.url).pathname,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = new FrameReader(child.stdout);
  const writer = new FrameWriter(child.stdin);
  const worker = new Worker(new URL("./_ipc_echo_worker.ts", import.meta.url), { type: "module" });
  const viaProcess = async (feeds: Record<string, Tensor>, dims: number[]) => {
    await writer.write({ id: 1, dims }, feeds);
    const frame = await reader.next<{ id: number }>();
    return frame!.tensors.out;
  };
  const viaWorker = (feeds: Record<string, Tensor>, dims: number[]) =>
    new Promise<Tensor>((resolve) => {
      worker.onmessage = ({ data }) => resolve(data.out);
      // As the Worker client did: copy each feed once, transfer the copies.
      const copies = Object.fromEntries(
        Object.entries(feeds).map(([n, t]) => [n, { dims: t.dims, data: t.data.slice() }]),
      );
      worker.postMessage(
        { id: 1, dims, feeds: copies },
        Object.values(copies).map((t) => t.data.buffer),
      );
    });
  console.log(`ipc: median (fastest) ms per call of ${runs}, after 3 warm-up calls`);
  for (const c of CASES) {
    const feeds = c.feeds();
    const bytesIn = Object.values(feeds).reduce((s, t) => s + t.data.byteLength, 0);
    const bytesOut = c.outDims.reduce((a, b) => a * b, 4);
    const line: string[] = [];
    for (const [name, call] of [["process", viaProcess], ["worker", viaWorker]] as const) {
      const times: number[] = [];
      for (let i = 0; i < runs + 3; i++) {
        const started = performance.now();
        const out = await call(feeds, c.outDims);
        if (out.data.length * 4 !== bytesOut) throw new Error(`${name}: wrong output size`);
        if (i >= 3) times.push(performance.now() - started);
      }
      times.sort((a, b) => a - b);
      const median = times[Math.floor(times.length / 2)];
      const gbps = (bytesIn + bytesOut) / (median / 1000) / 1e9;
      line.push(
        `${name} ${median.toFixed(1)} (${times[0].toFixed(1)}) ms, ${gbps.toFixed(2)} GB/s`,
      );
    }
    console.log(`  ${c.name} (${mb(bytesIn)} in, ${mb(bytesOut)} out): ${line.join("; ")}`);
  }
  worker.terminate();
  await writer.close();
  await child.status;
  await reader.cancel();
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
