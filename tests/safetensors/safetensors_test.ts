import assert from "node:assert/strict";
import fc from "fast-check";
import { halfToFloat, SafetensorsFile } from "../../pipeline/safetensors/reader.ts";
import { float32Entry, writeSafetensors } from "../../pipeline/safetensors/writer.ts";
import { floatToHalfBits } from "../../pipeline/onnx/graph.ts";
import { tensor } from "../../pipeline/tensor.ts";
import { fixturePath } from "../_fixtures.ts";

async function withTemp(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("SafetensorsFile reads the fixture's header and one tensor by key", async () => {
  using st = await SafetensorsFile.open(fixturePath("unet.safetensors"));
  assert.deepEqual(st.info("out").dims, [8, 4, 8, 16]);
  assert.equal(st.info("out").dtype, "F32");
  assert.equal(st.metadata.format, "svd-oracle-fixture-v1");
  const t = await st.readFloat32("out");
  assert.equal(t.data.length, 8 * 4 * 8 * 16);
  assert.deepEqual((await st.readIntegers("num_video_frames")).data, [4]);
  assert.throws(() => st.info("nope"), /Tensor "nope" is not in/);
});

Deno.test("writeSafetensors round-trips F32, F16, BF16, I64 and U8 tensors and metadata", async () => {
  await withTemp(async (dir) => {
    const path = `${dir}/t.safetensors`;
    const halves = new Uint16Array([
      floatToHalfBits(1.5),
      floatToHalfBits(-2),
      floatToHalfBits(65504),
    ]);
    const bf16 = new Uint16Array([0x3fc0, 0xc000]); // 1.5, -2
    await writeSafetensors(path, [
      float32Entry("a", tensor([2, 2], new Float32Array([1, 2, 3, 4]))),
      { name: "h", dtype: "F16", dims: [3], bytes: () => new Uint8Array(halves.buffer) },
      { name: "b", dtype: "BF16", dims: [2], bytes: () => new Uint8Array(bf16.buffer) },
      {
        name: "i",
        dtype: "I64",
        dims: [2],
        bytes: () => new Uint8Array(new BigInt64Array([7n, -1n]).buffer),
      },
      { name: "u", dtype: "U8", dims: [3], bytes: () => new Uint8Array([0, 128, 255]) },
    ], { metadata: { who: "test" } });
    using st = await SafetensorsFile.open(path);
    assert.deepEqual(st.keys(), ["a", "b", "h", "i", "u"]); // sorted by name
    assert.deepEqual([...(await st.readFloat32("a")).data], [1, 2, 3, 4]);
    assert.deepEqual([...(await st.readFloat32("h")).data], [1.5, -2, 65504]);
    assert.deepEqual([...(await st.readFloat32("b")).data], [1.5, -2]);
    assert.deepEqual((await st.readIntegers("i")).data, [7, -1]);
    assert.deepEqual((await st.readIntegers("u")).data, [0, 128, 255]);
    assert.equal(st.metadata.who, "test");
    await assert.rejects(() => st.readFloat32("i"), /not a float type/);
  });
});

Deno.test("a tensor whose bytes do not fit its shape leaves no file behind", async () => {
  await withTemp(async (dir) => {
    const path = `${dir}/bad.safetensors`;
    await assert.rejects(
      () =>
        writeSafetensors(path, [{
          name: "x",
          dtype: "F32",
          dims: [3],
          bytes: () => new Uint8Array(8),
        }]),
      /produced 8 bytes, F32 \[3\] needs 12/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("SafetensorsFile rejects truncated files and invalid headers with the file named", async () => {
  await withTemp(async (dir) => {
    const good = `${dir}/good.safetensors`;
    await writeSafetensors(good, [float32Entry("x", tensor([4], new Float32Array([1, 2, 3, 4])))]);
    const bytes = await Deno.readFile(good);
    await Deno.writeFile(`${dir}/cut.safetensors`, bytes.subarray(0, bytes.length - 4));
    await assert.rejects(
      () => SafetensorsFile.open(`${dir}/cut.safetensors`),
      /past the end of the file/,
    );
    const huge = bytes.slice();
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    await Deno.writeFile(`${dir}/huge.safetensors`, huge);
    await assert.rejects(
      () => SafetensorsFile.open(`${dir}/huge.safetensors`),
      /header length \d+ is invalid/,
    );
    const text = new TextEncoder().encode(
      '{"x": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}',
    );
    const header = new Uint8Array(8 + text.length + 8);
    new DataView(header.buffer).setBigUint64(0, BigInt(text.length), true);
    header.set(text, 8);
    await Deno.writeFile(`${dir}/f64.safetensors`, header);
    await assert.rejects(
      () => SafetensorsFile.open(`${dir}/f64.safetensors`),
      /tensor "x" has unsupported dtype "F64"/,
    );
  });
});

Deno.test("float32 → half bits → float32 is exact for halves and rounds to nearest otherwise", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), (bits) => {
    const value = halfToFloat(bits);
    if (Number.isNaN(value)) return true;
    return floatToHalfBits(value) === bits || (value === 0 && (bits & 0x7fff) === 0);
  }));
  fc.assert(fc.property(fc.float({ min: -60000, max: 60000, noNaN: true }), (v) => {
    const rounded = halfToFloat(floatToHalfBits(v));
    return Math.abs(rounded - v) <= Math.abs(v) * 2 ** -11 + 2 ** -25;
  }));
});
