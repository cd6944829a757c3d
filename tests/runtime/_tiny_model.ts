/**
 * The tiny fixture model, converted once per test process into a temporary directory (about
 * 0.4 s), and disposable copies of it for tests that damage files.
 *
 * @module
 */

import { loadConfig } from "../../pipeline/config/mod.ts";
import { convertCheckpoint } from "../../pipeline/convert/convert.ts";
import { CheckpointWeights } from "../../pipeline/weights/checkpoint_weights.ts";
import { fixturePath } from "../_fixtures.ts";

let converted: Promise<string> | undefined;

/** Path of the tiny model directory (all four graphs, fp32), converted on first use. */
export function tinyModelDir(): Promise<string> {
  converted ??= convertTiny();
  return converted;
}

async function convertTiny(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "runtime_tiny_model_" });
  // Removed when the test process ends; the cached path stays valid for every test until then.
  globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
  const config = await loadConfig(fixturePath("config.yaml"));
  using source = await CheckpointWeights.open([fixturePath("weights.safetensors")]);
  const out = `${root}/tiny`;
  await convertCheckpoint({ config, source, out });
  return out;
}

/** A fresh copy of the tiny model directory, removed when the returned handle is disposed. */
export async function copyTinyModel(): Promise<AsyncDisposable & { dir: string }> {
  const from = await tinyModelDir();
  const dir = await Deno.makeTempDir({ prefix: "runtime_model_copy_" });
  for await (const entry of Deno.readDir(from)) {
    await Deno.copyFile(`${from}/${entry.name}`, `${dir}/${entry.name}`);
  }
  return {
    dir,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}
