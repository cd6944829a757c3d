/**
 * `deno task bench NAME [options]`: benchmarks that print measured numbers (never timed tests).
 *
 * - `convert-full`: full-size random SVD-XT checkpoint → converter wall time and peak RSS, then
 *   one CPU evaluation of the full-size UNet.
 * - `generate`: the pipeline's own cost next to the networks' on the tiny demo model.
 * - `cold-start`: the service's start, model load and first request on the tiny demo model.
 * - `graph-cpu-time`: CPU time of one UNet or VAE decoder call in two model directories.
 * - `placement`: which provider ORT puts each node of each graph on (`--provider webgpu|cuda`),
 *   failing when a compute-heavy node falls back to the CPU.
 * - `scaleout`: N jobs with 1 and 2 Redis worker processes (throughput, ratio), and the latency a
 *   `step` event gains on the Redis path against the embedded one.
 * - `unet`: the full-size UNet on the CPU provider, one CFG-batched step (one JSON line).
 * - `gpu`: the one-shot GPU benchmark (full-size SVD-XT, fp16, 576×1024, 25×25; one JSON line);
 *   on an offline GPU host it runs from `bench/gpu/run.sh` (docs/gpu.md).
 * - `ipc`: what the inference process's pipe costs per UNet call and decoder chunk, against the
 *   Worker thread it replaced (no compute; SVD-XT's and SVD's full-size tensors).
 * - `memory`: the service's resident memory (service + inference process) before, during and after a
 *   large job, with and without recycling the inference process.
 * - `image-prep`: the main thread's worst stall and `/healthz` latency while a 16 Mpx PNG, a
 *   16 Mpx progressive JPEG and an upscale to 2048² are prepared, on the main thread and in an
 *   `ImagePool` worker, with the peak RSS of one preparation.
 * - `uploads`: what concurrent large uploads add to the service's RSS through the real server
 *   (`main.ts`), against the bound 2 × uploads × 20 MiB, and what is left after.
 * - `healthz`: the worst `/healthz` latency, polled from another process, while the real server
 *   takes and prepares a 16 Mpx PNG and a 16 Mpx progressive JPEG upload.
 * - `watermark`: sgm's invisible watermark — embed and read time per frame, PSNR, and the bits that
 *   survive PNG, our default mp4 and webm, at 1024×576 and at the demo size.
 *
 * @module
 */

// Loaded on demand: `bench gpu` runs on an offline GPU host under bench/gpu/deno.json, which
// has only the pipeline's packages (no Hono, no Redis).
const BENCHES: Record<string, () => Promise<(args: string[]) => Promise<void>>> = {
  "convert-full": async () => (await import("./convert_full.ts")).convertFull,
  generate: async () => (await import("./generate_overhead.ts")).generateOverhead,
  "cold-start": async () => (await import("./cold_start.ts")).coldStart,
  scaleout: async () => (await import("./scaleout.ts")).scaleout,
  unet: async () => (await import("./unet_cpu.ts")).unetCpu,
  gpu: async () => (await import("./gpu.ts")).gpuBench,
  "image-prep": async () => (await import("./image_prep.ts")).imagePrep,
  watermark: async () => (await import("./watermark.ts")).watermarkBench,
  ipc: async () => (await import("./ipc.ts")).ipc,
  memory: async () => (await import("./memory.ts")).memory,
  uploads: async () => (await import("./uploads.ts")).uploads,
  healthz: async () => (await import("./healthz_latency.ts")).healthzLatency,
  "graph-cpu-time": async () => (await import("./graph_cpu_time.ts")).graphCpuTime,
  placement: async () => (await import("./placement.ts")).placement,
};

const [name, ...args] = Deno.args;
const bench = BENCHES[name];
if (!bench) {
  console.error(`Usage: deno task bench ${Object.keys(BENCHES).join("|")} [options]`);
  Deno.exit(2);
}
await (await bench())(args);
