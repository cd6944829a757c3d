/**
 * `deno task random-checkpoint --config configs/svd_xt.yaml --out svd_xt_random.safetensors
 * [--seed N]`: writes a checkpoint of seeded random weights with every key and shape of the
 * official sgm single file (9.56 GB for SVD / SVD-XT), for measuring the converter and the
 * runtime at full size without the real download.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadConfig } from "../config/mod.ts";
import { writeRandomCheckpoint } from "../convert/random_checkpoint.ts";
import { ProgressBar } from "../weights/progress_bar.ts";
import { runCli, UsageError } from "./run_cli.ts";

/** Runs the CLI with `args`. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string" },
      out: { type: "string" },
      seed: { type: "string", default: "0" },
    },
  });
  if (!values.config || !values.out) {
    throw new UsageError("Usage: deno task random-checkpoint --config FILE --out FILE [--seed N]");
  }
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed must be an integer ≥ 0`);
  const config = await loadConfig(values.config);
  const bar = new ProgressBar({ label: "random checkpoint" });
  const { tensors, parameters } = await writeRandomCheckpoint(config, values.out, {
    seed,
    onProgress: bar.update,
  });
  bar.done();
  console.log(`${values.out}: ${tensors} tensors, ${parameters.toLocaleString("en")} parameters`);
}

if (import.meta.main) await runCli(main);
