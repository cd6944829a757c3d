import assert from "node:assert/strict";
import {
  microConditioningVector,
  timestepEmbedding,
} from "../../pipeline/conditioning/micro_conditioning.ts";
import { SafetensorsFile } from "../../pipeline/safetensors/reader.ts";
import { tensor } from "../../pipeline/tensor.ts";
import { assertClose, fixturePath, FIXTURES, readFixture } from "../_fixtures.ts";

Deno.test({
  name: "timestepEmbedding() puts the cosines first, then the sines",
  permissions: "none",
  fn() {
    assert.deepEqual(Array.from(timestepEmbedding([0], 4).data), [1, 1, 0, 0]);
    // dim 4: frequencies [1, exp(-ln(10000) / 2)] = [1, 0.01]
    const e = timestepEmbedding([1], 4).data;
    const expected = [Math.cos(1), Math.cos(0.01), Math.sin(1), Math.sin(0.01)];
    expected.forEach((v, i) =>
      assert.ok(Math.abs(e[i] - v) < 1e-6, `column ${i}: ${e[i]} vs ${v}`)
    );
  },
});

Deno.test({
  name: "timestepEmbedding() pads an odd width with a zero column",
  permissions: "none",
  fn() {
    const e = timestepEmbedding([0, 2], 3);
    assert.deepEqual(e.dims, [2, 3]);
    assert.deepEqual(Array.from(e.data), [
      1,
      0,
      0,
      Math.fround(Math.cos(2)),
      Math.fround(Math.sin(2)),
      0,
    ]);
  },
});

Deno.test({
  name: "microConditioningVector() repeats [emb(fps) | emb(motion) | emb(cond_aug)] on every frame",
  permissions: "none",
  fn() {
    const y = microConditioningVector({ fpsId: 6, motionBucketId: 127, condAug: 0.02 }, 3, 4);
    assert.deepEqual(y.dims, [3, 12]);
    const parts = timestepEmbedding([6, 127, 0.02], 4).data;
    for (let t = 0; t < 3; t++) {
      assert.deepEqual(Array.from(y.data.subarray(t * 12, (t + 1) * 12)), Array.from(parts));
    }
    assert.throws(
      () => microConditioningVector({ fpsId: NaN, motionBucketId: 127, condAug: 0.02 }, 3, 256),
      RangeError,
    );
    assert.throws(
      () => microConditioningVector({ fpsId: 6, motionBucketId: 127, condAug: 0.02 }, 0, 256),
      RangeError,
    );
  },
});

Deno.test({
  name: "microConditioningVector() reproduces sgm's vector for fps_id 6, motion 127, cond_aug 0.02",
  permissions: { read: [FIXTURES] },
  async fn() {
    using st = await SafetensorsFile.open(fixturePath("conditioning.safetensors"));
    const fpsId = (await st.readIntegers("input.fps_id")).data[0];
    const motionBucketId = (await st.readIntegers("input.motion_bucket_id")).data[0];
    const condAug = (await st.readFloat32("input.cond_aug")).data[0];
    assert.deepEqual([fpsId, motionBucketId, Math.fround(0.02)], [6, 127, condAug]);

    const t = await readFixture("conditioning.safetensors", [
      "c.vector",
      "uc.vector",
      "vector_part.fps_id",
      "vector_part.motion_bucket_id",
      "vector_part.cond_aug",
    ]);
    const y = microConditioningVector({ fpsId, motionBucketId, condAug }, 4, 256);
    assertClose(y, t["c.vector"], 1e-4, "c.vector");
    assertClose(y, t["uc.vector"], 1e-4, "uc.vector");
    const part = (k: number) => {
      const out = new Float32Array(4 * 256);
      for (let f = 0; f < 4; f++) {
        out.set(y.data.subarray(f * 768 + k * 256, f * 768 + (k + 1) * 256), f * 256);
      }
      return tensor([4, 256], out); // [T, 768] -> the k-th [T, 256] block
    };
    assertClose(part(0), t["vector_part.fps_id"], 1e-4, "vector_part.fps_id");
    assertClose(part(1), t["vector_part.motion_bucket_id"], 1e-4, "vector_part.motion_bucket_id");
    assertClose(part(2), t["vector_part.cond_aug"], 1e-4, "vector_part.cond_aug");
  },
});
