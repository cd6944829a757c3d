/**
 * The `bench ipc` child: answers every frame with a frame holding one tensor of the dims it is
 * told (`{dims}`), as the inference process answers a UNet call, over the same protocol and pipes.
 *
 * @module
 */

import { FrameReader, FrameWriter } from "../../pipeline/runtime/_process_protocol.ts";
import { protocolStdout } from "../../pipeline/runtime/_stdio_pipes.ts";

const reader = new FrameReader(Deno.stdin.readable);
const writer = new FrameWriter(protocolStdout()); // as the inference process does
while (true) {
  const frame = await reader.next<{ id: number; dims: number[] }>();
  if (!frame) break;
  const { id, dims } = frame.message;
  const n = dims.reduce((a, b) => a * b, 1);
  await writer.write({ id }, { out: { dims, data: new Float32Array(n) } });
}
