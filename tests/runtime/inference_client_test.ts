/**
 * `InferenceClient`: ONNX Runtime sessions loaded once in a child process, answering `run`
 * requests by id, surviving failed runs, failing loudly (every pending request rejected) when the
 * process dies however it dies (an uncaught error, exit, abort, segfault, SIGKILL), and never
 * outliving the process that started it.
 *
 * Run: deno test --allow-read --allow-write --allow-ffi --allow-env --allow-run tests/runtime/inference_client_test.ts
 */

import assert from "node:assert/strict";
import { missingProviderLibraries } from "../../pipeline/runtime/provider_libraries.ts";
import {
  InferenceClient,
  type InferenceClientOptions,
  InferenceWorkerError,
} from "../../pipeline/runtime/mod.ts";
import { type Tensor, tensor } from "../../pipeline/tensor.ts";
import { assertClose, readFixture } from "../_fixtures.ts";
import { tinyModelDir } from "./_tiny_model.ts";

/** The fixture README's acceptance for one UNet call. */
const UNET_TOLERANCE = 5e-4;
const INPUTS = ["x", "timesteps", "context", "y", "image_only_indicator"] as const;

/** The fixture's UNet feeds and expected output, primary ("") or alternative ("alt.") case. */
async function unetCase(prefix: "" | "alt.") {
  const t = await readFixture("unet.safetensors", [...INPUTS, "out"].map((n) => prefix + n));
  const feeds = Object.fromEntries(INPUTS.map((n) => [n, t[prefix + n]]));
  return { feeds, expected: t[`${prefix}out`] };
}

/** Starts a client on the tiny model with only the UNet loaded (unless told otherwise). */
async function startTiny(options: Partial<InferenceClientOptions> = {}): Promise<InferenceClient> {
  return await InferenceClient.start({
    modelDir: await tinyModelDir(),
    graphs: ["unet"],
    ...options,
  });
}

/** UNet feeds of zeros-and-ramps for `frames` frames of a `size`×`size` latent (one video). */
function unetFeeds(frames: number, size: number): Record<string, Tensor> {
  const ramp = (dims: number[]) => {
    const t = tensor(dims);
    t.data.forEach((_, i) => t.data[i] = Math.sin(i * 0.01));
    return t;
  };
  return {
    x: ramp([frames, 8, size, size]),
    timesteps: tensor([frames], new Float32Array(frames).fill(0.5)),
    context: ramp([frames, 1, 64]),
    y: ramp([frames, 768]),
    image_only_indicator: tensor([1, frames]),
  };
}

Deno.test("InferenceClient runs the tiny unet in a child process and matches unet:out", async () => {
  await using client = await startTiny();
  assert.notEqual(client.pid, Deno.pid);
  assert.equal(client.provider, "cpu");
  assert.deepEqual(client.graphs, ["unet"]);
  assert.ok(client.loadMs.unet! > 0, `load time ${client.loadMs.unet}`);
  assert.equal(client.alive, true);
  const { feeds, expected } = await unetCase("");
  const { out } = await client.run("unet", feeds);
  assertClose(out, expected, UNET_TOLERANCE, "unet:out");
  // Without `transfer`, the caller's feeds are copied and stay readable.
  assert.equal(feeds.x.data.length, 8 * 8 * 8 * 16);
});

Deno.test("InferenceClient answers two concurrent runs each with its own result", async () => {
  await using client = await startTiny();
  const [primary, alt] = await Promise.all([unetCase(""), unetCase("alt.")]);
  const [a, b] = await Promise.all([
    client.run("unet", primary.feeds),
    client.run("unet", alt.feeds),
  ]);
  assertClose(a.out, primary.expected, UNET_TOLERANCE, "unet:out (concurrent)");
  assertClose(b.out, alt.expected, UNET_TOLERANCE, "unet:alt.out (concurrent)");
  assert.equal(client.pending, 0);
});

Deno.test("InferenceClient.run({ transfer: true }) hands the feed buffers over", async () => {
  await using client = await startTiny();
  const { feeds, expected } = await unetCase("");
  const x = feeds.x.data;
  const { out } = await client.run("unet", feeds, { transfer: true });
  assertClose(out, expected, UNET_TOLERANCE, "unet:out (transferred)");
  assert.equal(x.length, 0, "x was transferred, not copied");
});

Deno.test("InferenceClient rejects misnamed or misshaped feeds before sending, listing each feed's dims", async () => {
  await using client = await startTiny();
  const { feeds } = await unetCase("");
  const { y: _, ...withoutY } = feeds;
  await assert.rejects(
    client.run("unet", withoutY),
    (e: Error) =>
      e instanceof TypeError && /y is missing/.test(e.message) &&
      e.message.includes("x: Float32Array [8, 8, 8, 16]") &&
      e.message.includes("context: Float32Array [8, 1, 64]"),
  );
  await assert.rejects(
    client.run("unet", { ...feeds, mask: tensor([1]) }),
    (e: Error) => e instanceof TypeError && /mask is not an input/.test(e.message),
  );
  await assert.rejects(
    client.run("unet", { ...feeds, context: tensor([8, 1, 32]) }),
    (e: Error) =>
      e instanceof RangeError &&
      /context axis 2 is 32, expected \[N, 1, 64\]/.test(e.message) &&
      e.message.includes("context: Float32Array [8, 1, 32]"),
  );
  await assert.rejects(
    client.run("unet", { ...feeds, timesteps: tensor([4]) }),
    (e: Error) => e instanceof RangeError && /timesteps has N = 4 but x has N = 8/.test(e.message),
  );
  await assert.rejects(
    client.run("vae_decoder", {}),
    (e: Error) =>
      e instanceof RangeError && /"vae_decoder" is not loaded \(loaded: unet\)/.test(e.message),
  );
  assert.equal(client.pending, 0);
});

Deno.test("InferenceClient: a run ORT refuses rejects that request only; the process keeps serving", async () => {
  await using client = await startTiny();
  const { feeds, expected } = await unetCase("");
  // 6×6 passes the manifest checks (h and w are symbolic) but the UNet's skip connections do
  // not line up (6 → 3 → 2 → 1 → 2 → 4 ≠ 3), so ORT fails inside the worker.
  const bad = unetFeeds(2, 6);
  const [failed, good] = await Promise.allSettled([
    client.run("unet", bad),
    client.run("unet", feeds),
  ]);
  assert.equal(failed.status, "rejected");
  const error = (failed as PromiseRejectedResult).reason as Error;
  assert.ok(!(error instanceof InferenceWorkerError), `${error}`);
  for (
    const dims of [
      "x: float32 [2, 8, 6, 6]",
      "timesteps: float32 [2]",
      "image_only_indicator: float32 [1, 2]",
    ]
  ) {
    assert.ok(error.message.includes(dims), `"${dims}" not in: ${error.message}`);
  }
  assert.equal(good.status, "fulfilled");
  assertClose(
    (good as PromiseFulfilledResult<Record<string, Tensor>>).value.out,
    expected,
    UNET_TOLERANCE,
    "unet:out beside a failing run",
  );
  assert.equal(client.alive, true);
  const { out } = await client.run("unet", feeds);
  assertClose(out, expected, UNET_TOLERANCE, "unet:out after a failing run");
});

Deno.test("InferenceClient.close() mid-run rejects the pending request with InferenceWorkerError; a new client works", async () => {
  const exits: InferenceWorkerError[] = [];
  const client = await startTiny({ onExit: (e) => exits.push(e) });
  const running = client.run("unet", unetFeeds(4, 64)); // ~0.7 s on 2 CPU cores
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(client.pending, 1);
  await client.close();
  const error = await running.then(() => undefined, (e) => e);
  assert.ok(error instanceof InferenceWorkerError, `${error}`);
  assert.equal(error.reason, "closed");
  assert.equal(client.alive, false);
  assert.equal(await client.exited, exits[0]);
  assert.equal(exits.length, 1);
  await assert.rejects(client.run("unet", unetFeeds(1, 8)), InferenceWorkerError);

  await using fresh = await startTiny();
  const { feeds, expected } = await unetCase("");
  assertClose(
    (await fresh.run("unet", feeds)).out,
    expected,
    UNET_TOLERANCE,
    "unet:out (new client)",
  );
});

Deno.test("InferenceClient: a run after the process crashed between runs fails as a crash", async () => {
  const client = await startTiny();
  client.crashForTesting("simulated native failure");
  const exit = await client.exited;
  await assert.rejects(
    client.run("unet", unetFeeds(1, 8)),
    (e: InferenceWorkerError) => e === exit && e.reason === "crashed",
  );
});

Deno.test("InferenceClient: an uncaught error in the process rejects pending requests, reports the exit, and a new client works", async () => {
  const client = await startTiny();
  client.crashForTesting("simulated native failure");
  const pending = client.run("unet", unetFeeds(1, 8));
  const exit = await client.exited;
  assert.equal(exit.reason, "crashed");
  assert.match(exit.message, /Inference worker crashed: .*simulated native failure/);
  await assert.rejects(pending, (e: Error) => e === exit);
  assert.equal(client.alive, false);
  await client.close(); // a no-op once dead

  await using fresh = await startTiny();
  const { feeds, expected } = await unetCase("");
  assertClose(
    (await fresh.run("unet", feeds)).out,
    expected,
    UNET_TOLERANCE,
    "unet:out (after crash)",
  );
});

Deno.test("InferenceClient: a SIGKILL of the process mid-run (the OOM killer's signal) fails that run as a crash; a new client works", async () => {
  const client = await startTiny();
  const running = client.run("unet", unetFeeds(4, 64));
  await new Promise((resolve) => setTimeout(resolve, 100));
  Deno.kill(client.pid, "SIGKILL");
  const error = await running.then(() => undefined, (e) => e);
  assert.ok(error instanceof InferenceWorkerError, `${error}`);
  assert.equal(error.reason, "crashed");
  assert.match(
    error.message,
    /Inference worker crashed: the inference process \d+ was killed by SIGKILL/,
  );
  assert.equal(await client.exited, error);
  assert.equal(client.alive, false);

  await using fresh = await startTiny();
  assert.notEqual(fresh.pid, client.pid);
  const { feeds, expected } = await unetCase("");
  assertClose(
    (await fresh.run("unet", feeds)).out,
    expected,
    UNET_TOLERANCE,
    "unet:out (after SIGKILL)",
  );
});

for (
  const [kind, how] of [
    ["segfault", /was killed by SIGSEGV \(a segmentation fault in native code\)/],
    ["abort", /was killed by SIGABRT \(native code aborted\)/],
    ["exit", /exited with code 70/],
  ] as const
) {
  Deno.test(`InferenceClient: a native ${kind} in the process rejects the pending run as a crash, and only the process dies`, async () => {
    const client = await startTiny();
    const running = client.run("unet", unetFeeds(1, 8));
    client.crashForTesting(`simulated ${kind}`, kind);
    const pending = client.run("unet", unetFeeds(1, 8));
    const exit = await client.exited;
    assert.equal(exit.reason, "crashed");
    assert.match(exit.message, how);
    assert.match(exit.message, new RegExp(`crashing on request \\(${kind}\\): simulated ${kind}`));
    await running; // answered before the crash request
    await assert.rejects(pending, (e: Error) => e === exit);
    // This process (the test runner) is still here, and its timers still fire.
    await new Promise((resolve) => setTimeout(resolve, 10));
  });
}

Deno.test("InferenceClient: what native code prints on the process's stdout goes to stderr, not into the frames", async () => {
  await using client = await startTiny();
  const { feeds, expected } = await unetCase("");
  // Frame-like bytes too: the magic "SVD1" and a header length.
  client.printForTesting(
    "SVD1\u0010\u0000\u0000\u0000 Operator=MultiHeadAttention SdpaKernel=FLASH\n",
  );
  const { out } = await client.run("unet", feeds);
  assertClose(out, expected, UNET_TOLERANCE, "unet:out after a native print");
  assert.equal(client.alive, true);
});

Deno.test("InferenceClient.close() stops a process held in a native call at once", async () => {
  const client = await startTiny();
  client.blockForTesting(60);
  const running = client.run("unet", unetFeeds(1, 8));
  const started = performance.now();
  await client.close();
  const error = await running.then(() => undefined, (e) => e);
  assert.ok(error instanceof InferenceWorkerError && error.reason === "closed", `${error}`);
  assert.ok(performance.now() - started < 30_000, "close() did not wait for the 60 s call");
});

/** True while `pid` is a live (not zombie) process, by `ps` (Deno reads /proc only with -A). */
async function processAlive(pid: number): Promise<boolean> {
  const { stdout } = await new Deno.Command("ps", { args: ["-o", "stat=", "-p", String(pid)] })
    .output();
  const state = new TextDecoder().decode(stdout).trim();
  return state !== "" && !state.startsWith("Z");
}

Deno.test({
  name:
    "the inference process dies with the process that started it, even inside a long native call",
  ignore: Deno.build.os !== "linux",
  async fn() {
    for (const mode of ["block", "idle"]) {
      const parent = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-ffi",
          "--allow-env",
          "--allow-run",
          "--allow-write",
          new URL("./_orphan_parent.ts", import.meta.url).pathname,
          await tinyModelDir(),
          mode,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = parent.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let line = "";
      while (!line.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        line += value;
      }
      const { pid } = JSON.parse(line);
      assert.ok(await processAlive(pid), `${mode}: the inference process ${pid} runs`);
      await new Promise((resolve) => setTimeout(resolve, 200)); // into the native call
      parent.kill("SIGKILL");
      await parent.status;
      await reader.cancel();
      const deadline = Date.now() + 20_000; // the native call would last 60 s
      while (await processAlive(pid) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(
        await processAlive(pid),
        false,
        `${mode}: the inference process ${pid} outlived its parent`,
      );
    }
  },
});

Deno.test("InferenceClient.start() with provider cuda fails with a clear message where CUDA cannot load", async () => {
  const error = await InferenceClient.start({
    modelDir: await tinyModelDir(),
    graphs: ["vae_encoder"],
    provider: "cuda",
  }).then((client) => client, (e) => e);
  if (error instanceof InferenceClient) {
    // A machine with a working CUDA provider: the requested provider is what was used.
    assert.equal(error.provider, "cuda");
    await error.close();
    return;
  }
  assert.ok(error instanceof InferenceWorkerError, `${error}`);
  assert.equal(error.reason, "failedToStart");
  assert.match(
    error.message,
    /Cannot start inference for ".*" on provider "cuda" \(no fallback to another provider\)/,
  );
  assert.match(error.message, /libonnxruntime_providers_cuda\.so/);
  assert.ok(error.cause instanceof Error);
  if (await missingProviderLibraries("cuda") !== undefined) {
    // Known before ONNX Runtime is asked (which would print an error of its own).
    assert.match(error.message, /onnxruntime-node's CUDA provider is not installed/);
  } else {
    assert.match(error.message, /vae_encoder\.onnx/, "ORT refused the first graph");
  }
});

// The inference process's first point (the second: a crash there is not a crash here). Measured on this 2-core EPYC (shared with other jobs): the 64×64,
// 4-frame UNet call takes 0.7–1.3 s in the worker and the main thread's 10 ms timer fires about
// once per 10 ms meanwhile (126 ticks in 1.32 s; 131 ticks in 1.38 s in a child process). The same call through an OnnxSession on the main
// thread, measured once: 0 ticks in 2.06 s and 2.20 s, since `session.run` holds the JS thread for
// the whole call: every HTTP response and SSE event would wait for the whole UNet step.
Deno.test("a timer keeps firing on the main thread while a UNet call runs in the inference process", async () => {
  await using client = await startTiny();
  const feeds = unetFeeds(4, 64);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  const started = performance.now();
  try {
    await client.run("unet", feeds);
  } finally {
    clearInterval(timer);
  }
  const elapsed = performance.now() - started;
  const expected = elapsed / 10;
  assert.ok(
    ticks >= expected / 2,
    `${ticks} ticks in ${elapsed.toFixed(0)} ms (expected ≥ ${(expected / 2).toFixed(0)})`,
  );
  console.log(`UNet 4×8×64×64: ${elapsed.toFixed(0)} ms in the process, ${ticks} timer ticks`);
});
