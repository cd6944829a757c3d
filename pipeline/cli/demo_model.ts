/**
 * The tiny demo model: `configs/tiny.yaml` (SVD's architecture at toy width) with seeded random
 * weights, converted on first use. It lets the CLI and the server run anywhere without the
 * 9.56 GB download; its videos are coloured noise.
 *
 * @module
 */

import { loadConfig } from "../config/mod.ts";
import { convertCheckpoint } from "../convert/convert.ts";
import { RandomWeights } from "../weights/random_weights.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Where the demo model lives: `SVD_DEMO_MODEL_DIR`, else `.cache/demo-tiny` in the project. */
export function demoModelDir(): string {
  return Deno.env.get("SVD_DEMO_MODEL_DIR") ?? `${ROOT}.cache/demo-tiny`;
}

/** Returns the demo model directory, converting it first if it is not there yet. */
export async function ensureDemoModel(dir = demoModelDir()): Promise<string> {
  try {
    await Deno.stat(`${dir}/model.json`);
    return dir;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const config = await loadConfig(`${ROOT}configs/tiny.yaml`);
  try {
    await convertCheckpoint({ config, source: new RandomWeights(0), out: dir });
  } catch (error) {
    // Another process converted it at the same time: its result is as good as ours.
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  return dir;
}
