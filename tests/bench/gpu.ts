/**
 * `deno task bench gpu`: the one-shot GPU benchmark. Converts full-size SVD-XT from random
 * weights of the real shapes (fp16; compute does not depend on the values) into `.cache/`, then
 * runs 576×1024, 25 frames, 25 steps twice, as the service does (previews streamed, mp4 encoded):
 * a cold run (cuDNN's algorithm search and the arenas' growth happen there) and a warm one. It
 * samples `nvidia-smi` every 100 ms and prints one JSON line: provider, device, model load s,
 * UNet ms per step, decode ms, end-to-end s, first-preview latency, peak GPU memory, the
 * attention kernels ORT chose, and the memory plan's figure beside the measured one.
 *
 * On an offline GPU host it runs from `bench/gpu/run.sh` (docs/gpu.md says how the pieces get
 * there). `--provider cpu --config configs/tiny.yaml …` runs the same path on any machine.
 *
 * Usage: deno task bench gpu [--provider cuda|webgpu|cpu] [--config configs/svd_xt.yaml]
 *   [--frames 25] [--steps 25] [--width 1024 --height 576] [--decoding-t N] [--runs 2]
 *   [--deno-config FILE] [--cached-only] (how the measured subprocess runs: the config, and no
 *   network on an offline host; default the project's config)
 *   [--log FILE] (the measured subprocess's stdout: ORT's attention-kernel lines)
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadConfig } from "../../pipeline/config/mod.ts";
import { convertCheckpoint } from "../../pipeline/convert/convert.ts";
import { chooseDecodingT, planMemory, queryGpuMemory } from "../../pipeline/plan/mod.ts";
import { RandomWeights } from "../../pipeline/weights/random_weights.ts";
import type { GenerationTimes } from "./gpu_generation.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
/** The goal for SVD-XT 25×25 end to end on one H100, seconds. */
const GOAL_SECONDS = 12;

/** Runs the benchmark. */
export async function gpuBench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      provider: { type: "string", default: "cuda" },
      config: { type: "string", default: "configs/svd_xt.yaml" },
      frames: { type: "string", default: "25" },
      steps: { type: "string", default: "25" },
      width: { type: "string", default: "1024" },
      height: { type: "string", default: "576" },
      "decoding-t": { type: "string" },
      runs: { type: "string", default: "2" },
      "deno-config": { type: "string" },
      "cached-only": { type: "boolean", default: false },
      log: { type: "string" },
    },
    strict: true,
  });
  const provider = values.provider;
  if (!["cuda", "webgpu", "cpu"].includes(provider)) {
    throw new RangeError(`--provider must be cuda, webgpu or cpu, got "${provider}"`);
  }
  const precision = provider === "cpu" ? "fp32" : "fp16";
  const config = await loadConfig(values.config);
  const run = {
    frames: Number(values.frames),
    width: Number(values.width),
    height: Number(values.height),
  };

  // 1. The model: converted once, from seeded random weights of the real shapes.
  const modelDir = `${ROOT}.cache/${config.name}_random_${precision}`;
  let convertSeconds: number | null = null;
  if (!(await exists(`${modelDir}/model.json`))) {
    const started = performance.now();
    await convertCheckpoint({
      config,
      source: new RandomWeights(0),
      out: modelDir,
      precision,
      force: true,
    });
    convertSeconds = round((performance.now() - started) / 1000, 1);
  }

  // 2. The device and the plan's decoding_t for it (what the service would choose).
  const device = await queryGpuMemory(0);
  const decodingT = values["decoding-t"] !== undefined
    ? Number(values["decoding-t"])
    : device.found
    ? chooseDecodingT({ config, precision, provider: "cuda", run }, device.bytes).decodingT
    : config.sampling.decodingT;
  const plan = planMemory({
    config,
    precision,
    provider: provider === "cpu" ? "cpu" : "cuda",
    ...run,
    decodingT,
  });

  // 3. GPU memory sampled while the generations run in a subprocess.
  const sampler = device.found ? startMemorySampler() : undefined;
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...(values["deno-config"] ? ["--config", values["deno-config"]] : []),
      ...(values["cached-only"] ? ["--cached-only"] : []),
      "--allow-all",
      `${ROOT}tests/bench/gpu_generation.ts`,
      "--model-dir",
      modelDir,
      "--provider",
      provider,
      "--frames",
      String(run.frames),
      "--steps",
      values.steps,
      "--width",
      String(run.width),
      "--height",
      String(run.height),
      "--decoding-t",
      String(decodingT),
      "--runs",
      values.runs,
    ],
    cwd: ROOT,
    env: {
      ORT_ENABLE_ATTENTION_KERNEL_DEBUG_INFO: "1",
      // Its inference process runs under the same config (the GPU host's onnxruntime-node).
      ...(values["deno-config"] ? { SVD_DENO_CONFIG: values["deno-config"] } : {}),
      ...(values["cached-only"] ? { SVD_DENO_CACHED_ONLY: "1" } : {}),
    },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const samples = await sampler?.stop() ?? [];
  const stdout = new TextDecoder().decode(child.stdout);
  if (values.log) await Deno.writeTextFile(values.log, stdout);
  const resultLine = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (!child.success || !resultLine) {
    console.error(stdout.split("\n").slice(-40).join("\n"));
    throw new Error(`the measured generation failed (exit ${child.code})`);
  }
  const result = JSON.parse(resultLine.slice("RESULT ".length)) as {
    provider: string;
    load_ms: number;
    params: Record<string, number>;
    runs: GenerationTimes[];
  };

  const peakMib = (from = -Infinity, to = Infinity) => {
    const inside = samples.filter((s) => s.time >= from && s.time <= to).map((s) => s.usedMib);
    return inside.length > 0 ? Math.max(...inside) : null;
  };
  const warm = result.runs.at(-1)!;
  const cold = result.runs[0];
  console.log(JSON.stringify({
    bench: "gpu",
    provider: result.provider,
    device: device.found ? device.name : null,
    device_memory_mib: device.found ? Math.round(device.bytes / 2 ** 20) : null,
    model: config.name,
    precision,
    ...result.params,
    convert_s: convertSeconds,
    model_load_s: round(result.load_ms / 1000, 2),
    unet_ms_per_step: warm.unet_ms_per_step_median,
    decode_ms: warm.decode_ms,
    encode_ms: warm.encode_ms,
    end_to_end_s: round(warm.e2e_ms / 1000, 2),
    first_preview_s: round(warm.first_preview_ms / 1000, 2),
    cold: {
      end_to_end_s: round(cold.e2e_ms / 1000, 2),
      unet_ms_per_step: cold.unet_ms_per_step_median,
      decode_ms: cold.decode_ms,
      first_preview_s: round(cold.first_preview_ms / 1000, 2),
    },
    peak_gpu_mib: peakMib(),
    peak_gpu_mib_warm: peakMib(warm.span[0], warm.span[1]),
    planned_peak_mib: Math.round(plan.totalBytes / 2 ** 20),
    attention_kernels: attentionKernels(stdout),
    goal_end_to_end_s: GOAL_SECONDS,
  }));
}

/** Counts ORT's `ORT_ENABLE_ATTENTION_KERNEL_DEBUG_INFO` lines by data type and kernel. */
export function attentionKernels(stdout: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const m of stdout.matchAll(/Operator=(\w+).*?DataType=(\w+) SdpaKernel=(\w+)/g)) {
    const key = `${m[1]} ${m[2]} ${m[3]}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

interface MemorySample {
  readonly time: number;
  readonly usedMib: number;
}

/** `nvidia-smi` every 100 ms: memory used on GPU 0, with wall-clock times. */
function startMemorySampler(): { stop(): Promise<MemorySample[]> } {
  const samples: MemorySample[] = [];
  const process = new Deno.Command("nvidia-smi", {
    args: ["--query-gpu=memory.used", "--format=csv,noheader,nounits", "--id=0", "-lms", "100"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reading = (async () => {
    let buffer = "";
    for await (const chunk of process.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) {
        const used = Number(line.trim());
        if (Number.isFinite(used)) samples.push({ time: Date.now(), usedMib: used });
      }
    }
  })();
  return {
    async stop() {
      try {
        process.kill("SIGTERM");
      } catch { /* already ended */ }
      await process.status;
      await reading.catch(() => {});
      return samples;
    },
  };
}

function round(value: number, digits: number): number {
  return Number(value.toFixed(digits));
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
