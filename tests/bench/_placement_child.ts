/**
 * Child process of `readNodePlacement`: creates one session at ORT's verbose log level, so that
 * ORT prints each node's placement on stderr, and exits.
 *
 * Usage: deno run --allow-read --allow-env --allow-ffi --allow-sys _placement_child.ts MODEL PROVIDER
 *
 * @module
 */

import { OnnxSession, type Provider } from "../../pipeline/runtime/onnx_session.ts";

const [path, provider] = Deno.args;
const session = await OnnxSession.create(path, {
  provider: provider as Provider,
  logLevel: "verbose",
});
await session.release();
