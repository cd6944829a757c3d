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
 *
 * @module
 */

import { coldStart } from "./cold_start.ts";
import { convertFull } from "./convert_full.ts";
import { generateOverhead } from "./generate_overhead.ts";
import { graphCpuTime } from "./graph_cpu_time.ts";
import { placement } from "./placement.ts";
import { scaleout } from "./scaleout.ts";

const BENCHES: Record<string, (args: string[]) => Promise<void>> = {
  "convert-full": convertFull,
  generate: generateOverhead,
  "cold-start": coldStart,
  "graph-cpu-time": graphCpuTime,
  placement,
  scaleout,
};

const [name, ...args] = Deno.args;
const bench = BENCHES[name];
if (!bench) {
  console.error(`Usage: deno task bench ${Object.keys(BENCHES).join("|")} [options]`);
  Deno.exit(2);
}
await bench(args);
