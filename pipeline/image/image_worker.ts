/**
 * The image worker: a module Worker that validates, decodes, resizes and tensorises uploads for
 * `ImagePool`, so the main thread (HTTP, SSE, timers) never runs that CPU work. It handles one
 * request at a time (the pool sends no second one before the answer), so it holds at most one
 * decoded image. Imported by no module; the messages are in `_image_worker_protocol.ts`.
 *
 * 1. pool → `prepare` (id, the upload's bytes transferred, target size, policy, pixel limit);
 *    worker → `prepared` (the `[1, 3, H, W]` tensor, its buffer transferred) or `failed`.
 * 2. pool → `validate` (id, bytes, pixel limit); worker → `validated` (format and size of an
 *    image that decoded completely) or `failed`.
 *
 * @module
 */

import {
  type ImageWorkerRequest,
  type ImageWorkerResponse,
  serializeError,
} from "./_image_worker_protocol.ts";
import { decodeImage } from "./decode_image.ts";
import { sniffImage } from "./image_header.ts";
import { prepareImage } from "./prepare_image.ts";

// `self` is the DedicatedWorkerGlobalScope; typed loosely so this file also type-checks under
// the main-thread lib.
interface WorkerScope {
  onmessage: ((event: MessageEvent<ImageWorkerRequest>) => void) | null;
  postMessage(message: ImageWorkerResponse, transfer?: Transferable[]): void;
}

if (isWorker()) {
  const scope = self as unknown as WorkerScope;
  scope.onmessage = ({ data: request }) => {
    // Thrown synchronously, so it is uncaught in the worker's event loop as a real crash would be.
    if (request.type === "crash") throw new Error("image worker crash requested by a test");
    if (request.type === "hang") { while (true) { /* a decode that never ends */ } }
    void handle(request, scope);
  };
}

async function handle(
  request: Extract<ImageWorkerRequest, { type: "prepare" | "validate" }>,
  scope: WorkerScope,
): Promise<void> {
  try {
    if (request.type === "prepare") {
      const image = await prepareImage(request.bytes, request.options);
      scope.postMessage({ type: "prepared", id: request.id, image }, [
        image.tensor.data.buffer as ArrayBuffer,
      ]);
    } else {
      const { width, height } = await decodeImage(request.bytes, request.options);
      const { format } = sniffImage(request.bytes); // decodeImage read this header already
      scope.postMessage({ type: "validated", id: request.id, info: { format, width, height } });
    }
  } catch (error) {
    scope.postMessage({ type: "failed", id: request.id, error: serializeError(error) });
  }
}

/** True inside a Worker: only workers have a `WorkerGlobalScope`. */
function isWorker(): boolean {
  const scope = (globalThis as { WorkerGlobalScope?: abstract new () => unknown })
    .WorkerGlobalScope;
  return typeof scope === "function" && globalThis instanceof scope;
}
