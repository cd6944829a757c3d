/**
 * `deno task weights <name> [--models DIR] [--dtype fp32|fp16] [--allow-unverified] [--force]`:
 * downloads a checkpoint pinned in weights.lock (with progress and resume), verifies its size and
 * sha256, and converts it into `<models>/<name>/` with the config the lock names.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadConfig } from "../config/mod.ts";
import { convertCheckpoint } from "../convert/convert.ts";
import { CheckpointWeights } from "../weights/checkpoint_weights.ts";
import { downloadVerified } from "../weights/download.ts";
import { ProgressBar } from "../weights/progress_bar.ts";
import { lockNames, readWeightsLock, resolveDownloadPlan } from "../weights/weights_lock.ts";
import { runCli, UsageError } from "./run_cli.ts";

const USAGE = `Usage: deno task weights NAME [--models DIR] [--dtype fp32|fp16] [--lock FILE]
       [--allow-unverified] [--force] [--download-only]`;

/** Runs the weights CLI with `args`. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      models: { type: "string", default: "models" },
      dtype: { type: "string", default: "fp32" },
      lock: { type: "string", default: "weights.lock" },
      "allow-unverified": { type: "boolean", default: false },
      force: { type: "boolean", default: false },
      "download-only": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const lock = await readWeightsLock(values.lock);
  if (values.help || positionals.length !== 1) {
    const message = `${USAGE}\nCheckpoints: ${lockNames(lock).join(", ")}`;
    if (values.help) return console.log(message);
    throw new UsageError(message);
  }
  if (values.dtype !== "fp32" && values.dtype !== "fp16") {
    throw new UsageError(`--dtype must be fp32 or fp16, got "${values.dtype}"`);
  }
  const name = positionals[0];
  const plan = resolveDownloadPlan(lock, name, values.models);
  const controller = new AbortController();
  const stop = () => controller.abort(new Error("interrupted (Ctrl-C); run again to resume"));
  Deno.addSignalListener("SIGINT", stop);
  try {
    const bar = new ProgressBar({ label: plan.entry.file });
    const downloaded = await downloadVerified({
      ...plan,
      onProgress: bar.update,
      signal: controller.signal,
      allowUnverified: values["allow-unverified"],
    });
    bar.done();
    console.log(
      `${downloaded.path}: ${downloaded.bytes} bytes, sha256 ${downloaded.sha256} ${
        downloaded.verified ? "(verified)" : "(NOT verified: pin it in weights.lock)"
      }`,
    );
    if (values["download-only"]) return;

    const config = await loadConfig(plan.config);
    const out = `${values.models}/${name}`;
    using source = await CheckpointWeights.open([downloaded.path]);
    const convertBar = new ProgressBar({ label: "convert" });
    await convertCheckpoint({
      config,
      source,
      out,
      precision: values.dtype,
      force: values.force,
      onProgress: ({ graph, written, total }) => convertBar.update(written, total, graph),
    });
    convertBar.done();
    console.log(`Model ready: ${out} (deno task i2v --model ${out} …)`);
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
  }
}

if (import.meta.main) await runCli(main);
