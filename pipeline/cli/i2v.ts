/**
 * `deno task i2v --image in.png --out out.mp4 [options]`: image-to-video from the terminal.
 *
 * Without `--model` it uses a tiny demo model with random weights (built on first use), whose
 * output is coloured noise: it shows the pipeline works, not what SVD makes of your image.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  loadConfig,
  ParameterError,
  parseSamplingOverrides,
  resolveSamplingParams,
  type SamplingParams,
  type SvdConfig,
} from "../config/mod.ts";
import { type ExplicitNoise, generateVideo } from "../generate.ts";
import { prepareImage } from "../image/prepare_image.ts";
import { SIZE_POLICIES, type SizePolicy } from "../image/size_policy.ts";
import { InferenceClient, readModelDirectory } from "../runtime/mod.ts";
import { SafetensorsFile } from "../safetensors/reader.ts";
import { float32Entry, writeSafetensors } from "../safetensors/writer.ts";
import { encodeVideo, VIDEO_FORMATS, type VideoFormat } from "../video/mod.ts";
import { watermarkFrames } from "../watermark/watermark_frames.ts";
import { ProgressBar } from "../weights/progress_bar.ts";
import { ensureDemoModel } from "./demo_model.ts";
import { runCli, UsageError } from "./run_cli.ts";

const USAGE = `Usage: deno task i2v --image FILE --out FILE [options]
  --model DIR            converted model directory (default: the tiny random demo model)
  --config FILE          sampling defaults from this config instead of the model's
  --num-frames N --steps N --fps N --motion-bucket-id N --cond-aug X --seed N
  --min-guidance X --max-guidance X --guider linear|triangle --decoding-t N
  --width N --height N --size cover|contain|stretch|native
  --format mp4|webm|gif|frames (default: from --out's extension) --crf N
  --noise FILE           safetensors with noise [T,4,h,w] and cond_aug_noise [1,3,H,W]
  --save-latents FILE    write final_latent [T,4,h,w] as safetensors
  --provider cpu|cuda|webgpu --max-pixels N
  --no-watermark         leave out sgm's invisible watermark (on by default)`;

const SAMPLING_FLAGS = [
  "num-frames",
  "steps",
  "fps",
  "motion-bucket-id",
  "cond-aug",
  "seed",
  "min-guidance",
  "max-guidance",
  "guider",
  "decoding-t",
  "width",
  "height",
] as const;

/** Runs the image-to-video CLI with `args`. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      image: { type: "string" },
      out: { type: "string" },
      model: { type: "string" },
      config: { type: "string" },
      format: { type: "string" },
      size: { type: "string", default: "cover" },
      crf: { type: "string" },
      noise: { type: "string" },
      "save-latents": { type: "string" },
      provider: { type: "string", default: "cpu" },
      "max-pixels": { type: "string", default: String(64e6) },
      "no-watermark": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      ...Object.fromEntries(SAMPLING_FLAGS.map((f) => [f, { type: "string" as const }])),
    },
  });
  if (values.help) return console.log(USAGE);
  if (!values.image) throw new UsageError(`--image is required\n${USAGE}`);
  if (!values.out) throw new UsageError(`--out is required\n${USAGE}`);
  const format = (values.format ?? formatFromPath(values.out)) as VideoFormat;
  if (!VIDEO_FORMATS.includes(format)) {
    throw new UsageError(`--format must be one of ${VIDEO_FORMATS.join(", ")}, got "${format}"`);
  }
  const size = values.size as SizePolicy;
  if (!SIZE_POLICIES.includes(size)) {
    throw new UsageError(`--size must be one of ${SIZE_POLICIES.join(", ")}, got "${size}"`);
  }
  const provider = values.provider as "cpu" | "cuda" | "webgpu";
  if (!["cpu", "cuda", "webgpu"].includes(provider)) {
    throw new UsageError(`--provider must be cpu, cuda or webgpu, got "${provider}"`);
  }
  const crf = values.crf === undefined ? undefined : Number(values.crf);

  let modelDir = values.model;
  if (!modelDir) {
    modelDir = await ensureDemoModel();
    console.error(
      `No --model given: using the tiny demo model in ${modelDir}. Its weights are random, so the ` +
        `video is coloured noise, not an animation of your image. For real output convert a ` +
        `checkpoint (deno task weights svd_xt) and pass --model models/svd_xt.`,
    );
  }

  // Everything the user typed is checked before the model loads.
  const noise = values.noise ? await readNoise(values.noise) : undefined;
  const config: SvdConfig = values.config
    ? await loadConfig(values.config)
    : (await readModelDirectory(modelDir)).manifest.config;
  const params = samplingParams(values, config, noise);
  const client = await InferenceClient.start({ modelDir, provider });

  const controller = new AbortController();
  const cancel = () => controller.abort(new Error("interrupted (Ctrl-C)"));
  Deno.addSignalListener("SIGINT", cancel);
  const bar = new ProgressBar({ label: "i2v", unit: "items" });
  try {
    const image = await prepareImage(await Deno.readFile(values.image), {
      width: params.width,
      height: params.height,
      policy: size,
      maxPixels: Number(values["max-pixels"]),
    });
    if (noise && (image.width !== params.width || image.height !== params.height)) {
      throw new UsageError(
        `--noise is for ${params.width}×${params.height}, but --size ${size} made the image ` +
          `${image.width}×${image.height}; use --size cover`,
      );
    }
    const video = await generateVideo({
      image: image.tensor,
      params: { ...params, width: image.width, height: image.height },
      model: { scaleFactor: config.scaleFactor, ...config.sampling },
      networks: client,
      noise,
      previews: false,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === "step") bar.update(e.step, e.total, `step σ=${e.sigma.toPrecision(4)}`);
        if (e.type === "decoding") bar.update(e.chunk, e.total, "decoding");
      },
    });
    bar.done();
    if (values["save-latents"]) {
      await writeSafetensors(values["save-latents"], [float32Entry("final_latent", video.latent)], {
        metadata: { seed: String(video.seed) },
      });
    }
    if (!values["no-watermark"]) {
      const marked = await watermarkFrames(video.frames, video.width, video.height, {
        signal: controller.signal,
      });
      if (!marked) {
        console.error(
          `${video.width}×${video.height} is too small to carry the watermark; not marked`,
        );
      }
    }
    const encoded = await encodeVideo(video.frames, {
      width: video.width,
      height: video.height,
      fps: params.fps,
      format,
      out: values.out,
      crf,
      signal: controller.signal,
    });
    const t = video.timings;
    console.log(
      `${encoded.path}: ${format}, ${encoded.frames} frames ${video.width}×${video.height} at ` +
        `${encoded.fps} fps, seed ${video.seed}; conditioning ${t.conditioningMs} ms, sampling ` +
        `${t.samplingMs} ms, decoding ${t.decodingMs} ms`,
    );
  } finally {
    Deno.removeSignalListener("SIGINT", cancel);
    await client.close();
  }
}

/** Sampling parameters from flags over config defaults; `--noise` fixes frames and size. */
function samplingParams(
  values: Record<string, unknown>,
  config: SvdConfig,
  noise: ExplicitNoise | undefined,
): SamplingParams {
  const input: Record<string, unknown> = {};
  for (const flag of SAMPLING_FLAGS) {
    if (values[flag] !== undefined) input[flag.replaceAll("-", "_")] = values[flag];
  }
  const overrides: { -readonly [K in keyof SamplingParams]?: SamplingParams[K] } =
    parseSamplingOverrides(input);
  if (noise) {
    const [frames, , h, w] = noise.noise.dims;
    for (
      const [field, value] of [["numFrames", frames], ["width", 8 * w], ["height", 8 * h]] as const
    ) {
      if (overrides[field] !== undefined && overrides[field] !== value) {
        throw new ParameterError(
          field,
          overrides[field],
          `differs from the --noise file`,
          String(value),
        );
      }
      overrides[field] = value;
    }
  }
  return resolveSamplingParams(overrides, config.sampling);
}

/** Reads `noise` [T,4,h,w] and `cond_aug_noise` [1,3,8h,8w] from a safetensors file. */
async function readNoise(path: string): Promise<ExplicitNoise> {
  using file = await SafetensorsFile.open(path);
  for (const key of ["noise", "cond_aug_noise"]) {
    if (!file.has(key)) throw new UsageError(`--noise file "${path}" has no tensor "${key}"`);
  }
  const noise = await file.readFloat32("noise");
  const condAugNoise = await file.readFloat32("cond_aug_noise");
  const [, , h, w] = noise.dims;
  const [, , height, width] = condAugNoise.dims;
  if (noise.dims.length !== 4 || noise.dims[1] !== 4 || height !== 8 * h || width !== 8 * w) {
    throw new UsageError(
      `--noise file "${path}": noise [${noise.dims}] and cond_aug_noise [${condAugNoise.dims}] ` +
        `must be [T,4,h,w] and [1,3,8h,8w]`,
    );
  }
  return { noise, condAugNoise };
}

function formatFromPath(path: string): string {
  const ext = /\.([a-z0-9]+)$/i.exec(path)?.[1]?.toLowerCase();
  return ext && ext !== "png" ? ext : "frames";
}

if (import.meta.main) await runCli(main);
