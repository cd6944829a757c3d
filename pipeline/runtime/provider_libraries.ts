/**
 * Whether onnxruntime-node has a GPU provider's libraries at all, checked on disk before ONNX
 * Runtime is asked: ORT prints a red `Failed to load library libonnxruntime_providers_shared.so`
 * error on stderr for every CUDA attempt without them, which on a CPU-only machine (the default
 * `npx deno task start`, where onnxruntime-node's install script does not run) is alarming noise
 * for a fallback that was expected.
 *
 * onnxruntime-node's npm package carries the CPU provider only; its postinstall script downloads
 * the CUDA provider (`libonnxruntime_providers_cuda.so` and `libonnxruntime_providers_shared.so`)
 * into `bin/napi-v6/linux/x64/`, for linux/x64 only. The GPU image runs that script
 * (`deploy/Dockerfile`); without it the CUDA provider cannot load, whatever the machine has.
 *
 * @module
 */

import type { Provider } from "./onnx_session.ts";

/** The files ORT's CUDA provider loads from onnxruntime-node's binding folder, per platform. */
const CUDA_LIBRARIES: Readonly<Record<string, readonly string[]>> = {
  linux: ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"],
  windows: ["onnxruntime_providers_shared.dll", "onnxruntime_providers_cuda.dll"],
};

/**
 * Why `provider` cannot load on this machine for lack of onnxruntime-node's files, or undefined
 * when nothing is missing (ORT decides then: drivers, CUDA, cuDNN and the GPU are its to check).
 * Only the CUDA provider is checked; the others are built in.
 *
 * @param bindingDir onnxruntime-node's `bin/napi-v6/<platform>/<arch>` folder (default: found
 * from the installed package); null when unknown (no local folder for it): ORT decides then.
 */
export async function missingProviderLibraries(
  provider: Provider,
  bindingDir: string | null = defaultBindingDir(),
): Promise<string | undefined> {
  if (provider !== "cuda") return undefined;
  const libraries = CUDA_LIBRARIES[Deno.build.os];
  if (libraries === undefined) {
    return `onnxruntime-node has no CUDA provider on ${Deno.build.os}`;
  }
  if (bindingDir === null) return undefined;
  const missing: string[] = [];
  for (const name of libraries) {
    try {
      await Deno.stat(`${bindingDir}/${name}`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) return undefined; // cannot tell: ask ORT
      missing.push(name);
    }
  }
  if (missing.length === 0) return undefined;
  return `onnxruntime-node's CUDA provider is not installed (no ${missing.at(-1)}; its install ` +
    "script fetches it: `ONNXRUNTIME_NODE_INSTALL=cuda12 deno install " +
    "--allow-scripts=npm:onnxruntime-node`, as the GPU image does)";
}

/** `…/onnxruntime-node/bin/napi-v6/<platform>/<arch>`, when the package is a local folder. */
function defaultBindingDir(): string | null {
  let entry: URL;
  try {
    entry = new URL(import.meta.resolve("onnxruntime-node"));
  } catch {
    return null;
  }
  if (entry.protocol !== "file:") return null;
  // The entry point is `<package>/dist/index.js`.
  const packageDir = new URL("..", new URL(".", entry));
  const platform = Deno.build.os === "windows" ? "win32" : Deno.build.os;
  const arch = Deno.build.arch === "x86_64" ? "x64" : "arm64";
  const path = decodeURIComponent(new URL(`bin/napi-v6/${platform}/${arch}`, packageDir).pathname);
  return Deno.build.os === "windows" ? path.replace(/^\/([A-Za-z]:)/, "$1") : path;
}
