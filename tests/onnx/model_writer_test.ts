import assert from "node:assert/strict";
import { GraphBuilder } from "../../pipeline/onnx/graph.ts";
import { writeOnnxModel } from "../../pipeline/onnx/model_writer.ts";
import { OnnxSession } from "../../pipeline/runtime/onnx_session.ts";
import { tensor } from "../../pipeline/tensor.ts";

/** y = x · W + b with W, b streamed as external data. */
function affineGraph(loads: string[], fail = false) {
  const g = new GraphBuilder("affine");
  const x = g.input("x", "float32", ["N", 512]);
  const lazy = (name: string, dims: number[], fill: (i: number) => number) =>
    g.addInitializer({
      name,
      type: "float32",
      dims,
      byteLength: dims.reduce((a, b) => a * b) * 4,
      load: () => {
        loads.push(name);
        if (fail && name === "b") return Promise.reject(new Error("disk on fire"));
        const data = new Float32Array(dims.reduce((a, b) => a * b)).map((_, i) => fill(i));
        return Promise.resolve(new Uint8Array(data.buffer));
      },
    });
  const w = lazy("W", [512, 600], (i) => (i % 601 === 0 ? 1 : 0)); // identity on the first 512 columns
  const b = lazy("b", [600], (i) => i);
  g.output("y", g.op("Add", [g.op("MatMul", [x, w]), b]), "float32", ["N", 600]);
  return g;
}

Deno.test("writeOnnxModel streams initializers one at a time into aligned external data", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const loads: string[] = [];
    const written = await writeOnnxModel(affineGraph(loads), `${dir}/m.onnx`);
    assert.deepEqual(loads, ["W", "b"]);
    assert.equal(written.dataPath, `${dir}/m.onnx.data`);
    // W at offset 0 (64 KiB-aligned, ≥ 1 MiB), b right after it (16-byte aligned).
    assert.equal(written.dataBytes, 512 * 600 * 4 + 600 * 4);
    const session = await OnnxSession.create(`${dir}/m.onnx`);
    const x = tensor([1, 512], new Float32Array(512).map((_, i) => i / 100));
    const { y } = await session.run({ x });
    await session.release();
    assert.equal(y.data[3], Math.fround(Math.fround(3 / 100) + 3));
    assert.equal(y.data[599], 599);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failing weight load leaves neither the model nor its data file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      () => writeOnnxModel(affineGraph([], true), `${dir}/m.onnx`),
      /disk on fire/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
