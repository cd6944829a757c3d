/**
 * The GPU-kernel tier's device: ONNX Runtime's WebGPU provider (Dawn over Vulkan) on SwiftShader,
 * the CPU Vulkan driver that Debian's `chromium` package ships. It runs the same WGSL kernels a GPU
 * runs, about 50× slower than the CPU provider, so the tier uses the tiny fixture model only.
 *
 * Importing this module points the Vulkan loader at SwiftShader (`VK_ICD_FILENAMES`, process-wide:
 * the tier always means SwiftShader, whose subgroup size of 4 some of its tests rely on) and gives
 * Dawn a private `XDG_RUNTIME_DIR` when none is set. Production needs neither: there the NVIDIA
 * driver's ICD is found by the loader. Mesa's lavapipe is not an alternative: Dawn refuses it.
 *
 * When the SwiftShader ICD file is absent, every test of the tier is registered as ignored and
 * {@linkcode WEBGPU_SKIP_REASON} is printed once. `.ci/setup` installs chromium, so CI has it.
 *
 * @module
 */

import { OnnxSession } from "../../pipeline/runtime/onnx_session.ts";
import { GraphBuilder } from "../../pipeline/onnx/graph.ts";
import { writeOnnxModel } from "../../pipeline/onnx/model_writer.ts";

/** SwiftShader's Vulkan ICD manifest as Debian's chromium package installs it. */
export const SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json";

/** Why the tier cannot run here, or undefined when it can. */
export const WEBGPU_SKIP_REASON = await skipReason();

if (WEBGPU_SKIP_REASON) {
  console.log(`GPU-kernel tier (WebGPU over SwiftShader) skipped: ${WEBGPU_SKIP_REASON}`);
} else {
  Deno.env.set("VK_ICD_FILENAMES", SWIFTSHADER_ICD);
  if (!Deno.env.get("XDG_RUNTIME_DIR")) {
    const dir = await Deno.makeTempDir({ prefix: "xdg_runtime_" });
    await Deno.chmod(dir, 0o700);
    Deno.env.set("XDG_RUNTIME_DIR", dir);
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  }
}

/** `Deno.test` for the tier: ignored (with the reason printed above) where it cannot run. */
export function webgpuTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: WEBGPU_SKIP_REASON !== undefined, fn });
}

/**
 * Why float16 graphs cannot run on this adapter, or undefined when they can: ORT's WebGPU kernels
 * need the adapter's `shader-f16` feature, which SwiftShader lacks (ORT then refuses the session
 * with "requires f16 but the device does not support it"). Checked once with a one-node graph.
 */
export async function float16SkipReason(): Promise<string | undefined> {
  if (WEBGPU_SKIP_REASON) return WEBGPU_SKIP_REASON;
  const g = new GraphBuilder("f16_check");
  const x = g.op("Cast", [g.input("x", "float32", [4])], { to: 10 });
  g.output("y", g.op("Cast", [g.op("Add", [x, x])], { to: 1 }), "float32", [4]);
  const dir = await Deno.makeTempDir({ prefix: "f16_check_" });
  try {
    await writeOnnxModel(g, `${dir}/f16.onnx`);
    const session = await OnnxSession.create(`${dir}/f16.onnx`, { provider: "webgpu" });
    try {
      await session.run({ x: { dims: [4], data: new Float32Array([1, 2, 3, 4]) } });
      return undefined;
    } finally {
      await session.release();
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/requires f16 but the device does not support it/.test(message)) {
      return "the WebGPU adapter has no shader-f16 feature (SwiftShader has none), so ORT " +
        "refuses float16 graphs on it";
    }
    throw error;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function skipReason(): Promise<string | undefined> {
  try {
    await Deno.stat(SWIFTSHADER_ICD);
    return undefined;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return `the SwiftShader Vulkan driver (${SWIFTSHADER_ICD}) is absent; Debian's chromium ` +
      "package installs it (.ci/setup does)";
  }
}
