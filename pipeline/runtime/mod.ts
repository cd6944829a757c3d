/**
 * The inference runtime: a converted model directory, checked ({@linkcode readModelDirectory}),
 * loaded once into ONNX Runtime sessions that live in a child process ({@linkcode InferenceClient}),
 * so that a network call never blocks the service's event loop and a native crash in ONNX Runtime
 * ends that process only.
 *
 * `OnnxSession` (the one module that imports ONNX Runtime) is deliberately not re-exported:
 * importing this module must not load the native addon into the service's process.
 *
 * @example
 * ```ts
 * import { InferenceClient, InferenceWorkerError } from "./pipeline/runtime/mod.ts";
 * let client = await InferenceClient.start({ modelDir: "models/svd_xt", provider: "cpu" });
 * client.exited.then(async (error) => {
 *   if (error.reason === "crashed") client = await InferenceClient.start({ modelDir: "models/svd_xt" });
 * });
 * ```
 *
 * @module
 */

export {
  checkFeeds,
  InferenceClient,
  type InferenceClientOptions,
  type InferenceProcessStats,
  InferenceWorkerError,
  type InferenceWorkerExit,
  type RunOptions,
} from "./inference_client.ts";
export {
  MANIFEST_FILE,
  type ModelDirectory,
  ModelDirectoryError,
  type ModelGraph,
  readModelDirectory,
  type ReadModelDirectoryOptions,
} from "./model_dir.ts";
export type { Provider } from "./onnx_session.ts";
