/**
 * `ORT_PROVIDER` resolution: an explicit provider is used or the start fails, naming it; `auto`
 * tries CUDA, then the CPU, and says why CUDA was skipped. First with a fake loader, then with real
 * ONNX Runtime sessions on the tiny model (in a child process: loading ONNX Runtime needs
 * --allow-ffi, which the deploy tests otherwise do without).
 *
 * Run: deno test --allow-read --allow-write --allow-run --allow-env tests/deploy/provider_test.ts
 */

import assert from "node:assert/strict";
import type { Provider } from "../../pipeline/runtime/mod.ts";
import {
  describeProviderChoice,
  parseProviderSetting,
  ProviderUnavailableError,
  resolveProvider,
} from "../../pipeline/runtime/provider.ts";

/** A loader where only `available` providers load; it records what was tried. */
function fakeLoader(available: Provider[]) {
  const tried: Provider[] = [];
  const load = (provider: Provider) => {
    tried.push(provider);
    return available.includes(provider)
      ? Promise.resolve(`session on ${provider}`)
      : Promise.reject(new Error(`libonnxruntime_providers_${provider}.so: cannot open`));
  };
  return { tried, load };
}

Deno.test("parseProviderSetting() reads auto|cuda|webgpu|cpu, unset as auto, and names a bad value", () => {
  assert.equal(parseProviderSetting(undefined), "auto");
  assert.equal(parseProviderSetting(""), "auto");
  assert.equal(parseProviderSetting(" CUDA "), "cuda");
  assert.equal(parseProviderSetting("webgpu"), "webgpu");
  assert.equal(parseProviderSetting("cpu"), "cpu");
  assert.throws(
    () => parseProviderSetting("tensorrt"),
    (e: Error) => e instanceof RangeError && /"tensorrt".*auto, cuda, webgpu, cpu/.test(e.message),
  );
});

Deno.test("resolveProvider('cpu') uses the CPU and tries nothing else", async () => {
  const { tried, load } = fakeLoader(["cpu", "cuda"]);
  const choice = await resolveProvider("cpu", load);
  assert.equal(choice.provider, "cpu");
  assert.equal(choice.value, "session on cpu");
  assert.deepEqual(choice.skipped, []);
  assert.deepEqual(tried, ["cpu"]);
});

Deno.test("resolveProvider('cuda') fails with a clear message and never falls back to the CPU", async () => {
  const { tried, load } = fakeLoader(["cpu"]);
  const error = await resolveProvider("cuda", load).then(
    () => assert.fail("resolved"),
    (e) => e,
  );
  assert.ok(error instanceof ProviderUnavailableError);
  assert.equal(error.setting, "cuda");
  assert.match(error.message, /^ORT_PROVIDER=cuda was asked for and cannot be used/);
  assert.match(error.message, /never falls back/);
  assert.match(error.message, /libonnxruntime_providers_cuda\.so: cannot open/);
  assert.match((error.cause as Error).message, /libonnxruntime_providers_cuda/);
  assert.deepEqual(tried, ["cuda"]);
});

Deno.test("resolveProvider('auto') uses CUDA when it loads", async () => {
  const { tried, load } = fakeLoader(["cuda", "cpu"]);
  const choice = await resolveProvider("auto", load);
  assert.equal(choice.provider, "cuda");
  assert.deepEqual(tried, ["cuda"]);
  assert.equal(describeProviderChoice(choice), "ORT provider: cuda (ORT_PROVIDER=auto)");
});

Deno.test("resolveProvider('auto') falls back to the CPU and logs the choice once, with why CUDA was skipped", async () => {
  const { tried, load } = fakeLoader(["cpu"]);
  const lines: string[] = [];
  const skips: string[] = [];
  const choice = await resolveProvider("auto", load, {
    log: (line) => lines.push(line),
    onSkip: (skipped, next) => skips.push(`${skipped.provider} -> ${next}`),
  });
  assert.equal(choice.provider, "cpu");
  assert.deepEqual(tried, ["cuda", "cpu"]);
  assert.deepEqual(choice.skipped, [
    { provider: "cuda", reason: "libonnxruntime_providers_cuda.so: cannot open" },
  ]);
  assert.deepEqual(lines, [
    "ORT provider: cpu (ORT_PROVIDER=auto; skipped cuda: libonnxruntime_providers_cuda.so: cannot open)",
  ]);
  assert.deepEqual(skips, ["cuda -> cpu"]);
});

Deno.test("resolveProvider('auto') lists every reason when nothing loads", async () => {
  const { load } = fakeLoader([]);
  const error = await resolveProvider("auto", load).then(() => assert.fail("resolved"), (e) => e);
  assert.ok(error instanceof ProviderUnavailableError);
  assert.deepEqual(error.skipped.map((s) => s.provider), ["cuda", "cpu"]);
  assert.match(error.message, /ORT_PROVIDER=auto: no execution provider could be loaded/);
  assert.match(error.message, /cuda: .*cpu: /);
});

Deno.test("resolveProvider('webgpu') is tried only by name", async () => {
  const { tried, load } = fakeLoader(["webgpu"]);
  assert.equal((await resolveProvider("webgpu", load)).provider, "webgpu");
  assert.deepEqual(tried, ["webgpu"]);
});

// --- real ONNX Runtime sessions (InferenceClient.start) on the tiny model ---

interface ProbeResult {
  /** Whether onnxruntime-node's CUDA provider files are installed here. */
  cudaLibraries: boolean;
  stderr: string;
  provider?: Provider;
  skipped?: { provider: Provider; reason: string }[];
  error?: { name: string; message: string };
  logs: string[];
}

async function probe(setting: string): Promise<ProbeResult> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      "--allow-run", // the inference process
      new URL("./_provider_probe.ts", import.meta.url).pathname,
      setting,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout).trim().split("\n").at(-1) ?? "";
  const errors = new TextDecoder().decode(stderr);
  assert.equal(code, 0, `probe ${setting} exited ${code}: ${errors}`);
  return { ...JSON.parse(out), stderr: errors };
}

/** Whether this machine can run the CUDA provider (then the failure cases cannot be shown). */
const cudaHere = (await probe("cuda")).provider === "cuda";

Deno.test("a real session: ORT_PROVIDER=cpu loads on the CPU", async () => {
  const result = await probe("cpu");
  assert.equal(result.provider, "cpu", JSON.stringify(result));
  assert.deepEqual(result.logs, ["ORT provider: cpu (ORT_PROVIDER=cpu)"]);
});

Deno.test({
  name: "a real session: ORT_PROVIDER=cuda fails at start, naming the provider and what it needs",
  ignore: cudaHere,
  fn: async () => {
    const result = await probe("cuda");
    assert.equal(result.provider, undefined);
    assert.equal(result.error?.name, "ProviderUnavailableError");
    const message = result.error!.message;
    assert.match(message, /^ORT_PROVIDER=cuda was asked for and cannot be used/);
    assert.match(message, /on provider "cuda" \(no fallback to another provider\)/);
    assert.match(message, /CUDA 12 and cuDNN 9/);
  },
});

Deno.test({
  name: "a real session: ORT_PROVIDER=auto falls back to the CPU and logs why CUDA was skipped",
  ignore: cudaHere,
  fn: async () => {
    const result = await probe("auto");
    assert.equal(result.provider, "cpu", JSON.stringify(result));
    assert.deepEqual(result.skipped?.map((s) => s.provider), ["cuda"]);
    assert.match(result.skipped![0].reason, /provider "cuda"/);
    assert.equal(result.logs.length, 1, "the choice is logged once");
    assert.match(result.logs[0], /^ORT provider: cpu \(ORT_PROVIDER=auto; skipped cuda: /);
    if (!result.cudaLibraries) {
      // Without onnxruntime-node's CUDA files ORT is not even asked: no error of its own on stderr.
      assert.match(result.skipped![0].reason, /CUDA provider is not installed/);
      assert.doesNotMatch(result.stderr, /onnxruntime|providers_shared/i, result.stderr);
    }
  },
});
