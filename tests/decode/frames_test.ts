import assert from "node:assert/strict";
import { chunkFrames, toUint8Frames } from "../../pipeline/decode/frames.ts";
import { SafetensorsFile } from "../../pipeline/safetensors/reader.ts";
import { tensor } from "../../pipeline/tensor.ts";
import { fixturePath, FIXTURES, readFixture } from "../_fixtures.ts";

Deno.test({
  name: "toUint8Frames() truncates (x + 1) / 2 * 255 like numpy astype(uint8), after clamping",
  permissions: "none",
  fn() {
    // one 2x1 frame: R = [-1, -3], G = [0, 0.999], B = [1, 3]
    const decoded = tensor([1, 3, 2, 1], new Float32Array([-1, -3, 0, 0.999, 1, 3]));
    const [frame] = toUint8Frames(decoded);
    // pixel 0: 0, 127 (127.5 truncated), 255; pixel 1: clamped 0, 254 (254.87 truncated), clamped 255
    assert.deepEqual(Array.from(frame), [0, 127, 255, 0, 254, 255]);
    assert.throws(() => toUint8Frames(tensor([1, 4, 1, 1])), RangeError);
  },
});

Deno.test({
  name: "chunkFrames() splits frames into consecutive non-overlapping chunks",
  permissions: "none",
  fn() {
    assert.deepEqual(chunkFrames(4, 3), [[0, 3], [3, 4]]);
    assert.deepEqual(chunkFrames(25, 14), [[0, 14], [14, 25]]);
    assert.deepEqual(chunkFrames(14, 14), [[0, 14]]);
    assert.deepEqual(chunkFrames(0, 14), []);
    assert.throws(() => chunkFrames(4, 0), RangeError);
  },
});

Deno.test({
  name: "toUint8Frames() reproduces sgm's frames_uint8 from its decoded video",
  permissions: { read: [FIXTURES] },
  async fn() {
    const { decoded } = await readFixture("sampling.safetensors", ["decoded"]);
    using st = await SafetensorsFile.open(fixturePath("sampling.safetensors"));
    const expected = await st.readBytes("frames_uint8"); // [T, H, W, 3]
    const frames = toUint8Frames(decoded);
    assert.equal(frames.length, 4);
    const frameSize = 64 * 128 * 3;
    let different = 0;
    frames.forEach((frame, t) => {
      assert.equal(frame.length, frameSize);
      frame.forEach((v, i) => {
        const ref = expected[t * frameSize + i];
        assert.ok(Math.abs(v - ref) <= 1, `frame ${t} value ${i}: ${v} vs ${ref}`);
        if (v !== ref) different++;
      });
    });
    // README: within +-1 and at most 1 % different; the same float32 arithmetic makes it exact
    assert.equal(different, 0);
  },
});
