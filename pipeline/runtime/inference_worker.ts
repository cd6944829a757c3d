/**
 * The inference worker: a module Worker that owns every ONNX Runtime session of one model
 * directory. `session.run` blocks the JS thread that calls it for the whole network call (a UNet
 * step takes seconds), so sessions live here and the main thread (HTTP, SSE, timers) stays free.
 *
 * Started by `InferenceClient.start` and imported by no module (the messages are declared in
 * `_worker_protocol.ts`, which the client shares). Protocol:
 *
 * 1. client → `load` (absolute graph paths, provider, threads, attention dtypes to check); worker
 *    → `loaded` (per-graph load times) or `loadFailed` (a session that cannot be created, or an
 *    `AttentionFormError` when the provider computes the model's fused attention wrongly).
 * 2. client → `run` (request id, graph, feeds with their buffers transferred); worker → `result`
 *    (outputs, buffers transferred) or `runFailed` with the same id. A failed run leaves the
 *    worker serving.
 * 3. client → `release`; worker frees its sessions and answers `released`, then is terminated.
 *
 * @module
 */

import type { GraphName } from "../convert/model_manifest.ts";
import {
  serializeError,
  transferable,
  type WorkerRequest,
  type WorkerResponse,
} from "./_worker_protocol.ts";
import { assertFusedAttention } from "./attention_check.ts";
import { OnnxSession } from "./onnx_session.ts";

// The worker side. `self` is the DedicatedWorkerGlobalScope; typed loosely so this file also
// type-checks under the main-thread lib (the client imports its types).
interface WorkerScope {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerResponse, transfer?: Transferable[]): void;
}

if (isWorker()) {
  const scope = self as unknown as WorkerScope;
  const sessions = new Map<GraphName, OnnxSession>();
  const post = (message: WorkerResponse, transfer: Transferable[] = []) =>
    scope.postMessage(message, transfer);

  scope.onmessage = ({ data: request }) => {
    // Thrown synchronously, so it is uncaught in the worker's event loop as a real crash would be.
    if (request.type === "crash") throw new Error(request.message);
    void handle(request);
  };

  const handle = async (request: Exclude<WorkerRequest, { type: "crash" }>) => {
    switch (request.type) {
      case "load":
        try {
          post({ type: "loaded", loadMs: await load(request, sessions) });
        } catch (error) {
          await releaseAll(sessions);
          post({ type: "loadFailed", error: serializeError(error) });
        }
        return;
      case "run": {
        const session = sessions.get(request.graph);
        try {
          if (!session) throw new RangeError(`Graph "${request.graph}" is not loaded`);
          const [outputs, transfer] = transferable(await session.run(request.feeds));
          post({ type: "result", id: request.id, outputs }, transfer);
        } catch (error) {
          post({ type: "runFailed", id: request.id, error: serializeError(error) });
        }
        return;
      }
      case "release":
        await releaseAll(sessions);
        post({ type: "released" });
        return;
    }
  };
}

/** Loads each graph once, in order, timing each. */
async function load(
  request: Extract<WorkerRequest, { type: "load" }>,
  sessions: Map<GraphName, OnnxSession>,
): Promise<Partial<Record<GraphName, number>>> {
  const loadMs: Partial<Record<GraphName, number>> = {};
  for (const graph of request.graphs) {
    const started = performance.now();
    const session = await OnnxSession.create(graph.path, {
      provider: request.provider,
      threads: request.threads,
      optimization: request.optimization,
    });
    sessions.set(graph.name, session);
    loadMs[graph.name] = performance.now() - started;
  }
  await assertFusedAttention(request.provider, request.checkAttention ?? []);
  return loadMs;
}

async function releaseAll(sessions: Map<GraphName, OnnxSession>): Promise<void> {
  for (const session of sessions.values()) await session.release().catch(() => {});
  sessions.clear();
}

/** True inside a Worker: only workers have a `WorkerGlobalScope` (and a global `postMessage`). */
function isWorker(): boolean {
  const scope = (globalThis as { WorkerGlobalScope?: abstract new () => unknown })
    .WorkerGlobalScope;
  return typeof scope === "function" && globalThis instanceof scope;
}
