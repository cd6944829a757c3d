/**
 * Full-size conversion benchmark: writes a random SVD-XT checkpoint in sgm layout (9.56 GB, every
 * key of the official file) once, converts it with `deno task convert` as a user would, and
 * prints the converter's wall time and peak RSS; then loads the full-size UNet with ONNX Runtime
 * (CPU) and runs one evaluation at a small latent.
 *
 * Usage: deno task bench convert-full [--config configs/svd_xt.yaml] [--dtype fp16] [--keep]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { OnnxSession } from "../../pipeline/runtime/onnx_session.ts";
import { tensor } from "../../pipeline/tensor.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

async function task(args: string[]): Promise<{ seconds: number; stdout: string }> {
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`deno task ${args.join(" ")} failed:\n${stdout}`);
  return { seconds: (performance.now() - started) / 1000, stdout };
}

/** Runs the benchmark. */
export async function convertFull(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string", default: "configs/svd_xt.yaml" },
      dtype: { type: "string", default: "fp16" },
      keep: { type: "boolean", default: false },
    },
  });
  const name = values.config.replace(/^.*\//, "").replace(/\.yaml$/, "");
  const checkpoint = `${ROOT}.cache/${name}_random.safetensors`;
  const out = `${ROOT}.cache/${name}_random_${values.dtype}`;
  try {
    await Deno.stat(checkpoint);
  } catch {
    console.log(`writing ${checkpoint} …`);
    const written = await task([
      "random-checkpoint",
      "--config",
      values.config,
      "--out",
      checkpoint,
    ]);
    console.log(`${written.stdout.trim()} (${written.seconds.toFixed(0)} s)`);
  }
  const size = (await Deno.stat(checkpoint)).size;
  const converted = await task([
    "convert",
    "--config",
    values.config,
    "--checkpoint",
    checkpoint,
    "--out",
    out,
    "--dtype",
    values.dtype,
    "--force",
  ]);
  console.log(converted.stdout.trim());
  console.log(
    `convert ${name} (${(size / 1e9).toFixed(2)} GB checkpoint, ${values.dtype}): ${
      converted.seconds.toFixed(1)
    } s wall`,
  );

  const loadStarted = performance.now();
  const unet = await OnnxSession.create(`${out}/unet.onnx`);
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  // One video of 2 frames at an 8×8 latent: N = B·T = 2.
  const [t, h, w] = [2, 8, 8];
  const fill = (dims: number[], f: (i: number) => number) => {
    const x = tensor(dims);
    x.data.forEach((_, i) => x.data[i] = f(i));
    return x;
  };
  const runStarted = performance.now();
  const { out: result } = await unet.run({
    x: fill([t, 8, h, w], (i) => Math.sin(i)),
    timesteps: fill([t], () => 0.25 * Math.log(700)),
    context: fill([t, 1, 1024], (i) => Math.cos(i) * 0.5),
    y: fill([t, 768], (i) => Math.sin(i * 0.1)),
    image_only_indicator: tensor([1, t]),
  });
  const runSeconds = (performance.now() - runStarted) / 1000;
  const finite = result.data.every(Number.isFinite);
  console.log(
    `unet.onnx (${values.dtype}) on CPU: load ${loadSeconds.toFixed(1)} s, one evaluation at ` +
      `latent ${h}×${w}, ${t} frames: ${runSeconds.toFixed(1)} s, output [${result.dims}] ` +
      `${finite ? "finite" : "NOT FINITE"}`,
  );
  await unet.release();
  if (!values.keep) await Deno.remove(out, { recursive: true });
}
