/**
 * `missingProviderLibraries()`: the CUDA provider's files are looked for in onnxruntime-node's
 * binding folder before ONNX Runtime is asked, so that a CPU-only machine gets a reason, not ORT's
 * own error on stderr.
 *
 * Run: deno test --allow-read --allow-write tests/runtime/provider_libraries_test.ts
 */

import assert from "node:assert/strict";
import { missingProviderLibraries } from "../../pipeline/runtime/provider_libraries.ts";

Deno.test({
  name:
    "missingProviderLibraries() names the CUDA file that is missing, and nothing once both are there",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "binding_" });
    try {
      const reason = await missingProviderLibraries("cuda", dir);
      assert.match(
        String(reason),
        /CUDA provider is not installed \(no libonnxruntime_providers_cuda\.so;/,
      );
      assert.match(String(reason), /ONNXRUNTIME_NODE_INSTALL=cuda12 deno install/);
      await Deno.writeFile(`${dir}/libonnxruntime_providers_shared.so`, new Uint8Array());
      await Deno.writeFile(`${dir}/libonnxruntime_providers_cuda.so`, new Uint8Array());
      assert.equal(await missingProviderLibraries("cuda", dir), undefined, "ORT decides then");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("missingProviderLibraries() never holds back the built-in providers, nor CUDA where it cannot look", async () => {
  assert.equal(await missingProviderLibraries("cpu", "/nowhere"), undefined);
  assert.equal(await missingProviderLibraries("webgpu", "/nowhere"), undefined);
  if (Deno.build.os === "linux") {
    assert.equal(await missingProviderLibraries("cuda", null), undefined);
  }
});

Deno.test("missingProviderLibraries() finds the installed onnxruntime-node by itself", async () => {
  // This checkout installs onnxruntime-node without its install script: no CUDA files.
  const reason = await missingProviderLibraries("cuda");
  if (reason !== undefined) assert.match(reason, /CUDA provider is not installed/);
});
