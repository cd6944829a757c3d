/**
 * Runs {@linkcode resolveProvider} with real ONNX Runtime sessions on the tiny model and prints
 * the outcome as one JSON line. A separate process because starting the inference process needs
 * `--allow-run` and `--allow-ffi`, which the deploy tests do not otherwise ask for.
 *
 * Usage: deno run --allow-read --allow-write --allow-env --allow-ffi --allow-run tests/deploy/_provider_probe.ts SETTING
 *
 * @module
 */

import { InferenceClient } from "../../pipeline/runtime/mod.ts";
import { parseProviderSetting, resolveProvider } from "../../pipeline/runtime/provider.ts";
import { missingProviderLibraries } from "../../pipeline/runtime/provider_libraries.ts";
import { tinyModelDir } from "../runtime/_tiny_model.ts";

const modelDir = await tinyModelDir();
const logs: string[] = [];
const cudaLibraries = await missingProviderLibraries("cuda") === undefined;
try {
  const choice = await resolveProvider(
    parseProviderSetting(Deno.args[0]),
    (provider) => InferenceClient.start({ modelDir, provider, graphs: ["vae_encoder"] }),
    { log: (line) => logs.push(line) },
  );
  await choice.value.close();
  console.log(
    JSON.stringify({ provider: choice.provider, skipped: choice.skipped, logs, cudaLibraries }),
  );
} catch (error) {
  const { name, message } = error as Error;
  console.log(JSON.stringify({ error: { name, message }, logs, cudaLibraries }));
}
