/**
 * `deno task i2v --image in.png --out out.mp4 [options]`: image-to-video from the terminal.
 *
 * Without `--model` it uses a tiny demo model with random weights (built on first use), whose
 * output is coloured noise: it shows the pipeline works, not what SVD makes of your image.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadConfig, type SvdConfig } from "../config/mod.ts";
import { type ExplicitNoise, generateVideo, modelConstants } from "../generate.ts";
import { assertImageSize, sniffImage } from "../image/mod.ts";
import { prepareImage } from "../image/prepare_image.ts";
import {
  checkFields,
  cliHelp,
  cliOptions,
  cliRequestInput,
  CRF_ALLOWED,
  type GenerationRequest,
  ParameterError,
  parseRequest,
  REQUEST_FIELDS,
} from "../request/mod.ts";
import { InferenceClient, readModelDirectory } from "../runtime/mod.ts";
import { SafetensorsFile } from "../safetensors/reader.ts";
import { float32Entry, writeSafetensors } from "../safetensors/writer.ts";
import { encodeVideo, VIDEO_FORMATS, type VideoFormat } from "../video/mod.ts";
import { watermarkFrames } from "../watermark/watermark_frames.ts";
import { ProgressBar } from "../weights/progress_bar.ts";
import { checkFfmpeg, checkInput, checkOutput } from "./_checks.ts";
import { ensureDemoModel } from "./demo_model.ts";
import { runCli, UsageError } from "./run_cli.ts";

const PROVIDERS = ["cpu", "cuda", "webgpu"] as const;
const MAX_PIXELS = 64e6;

const USAGE = `Usage: deno task i2v --image FILE --out FILE [options]
  --image FILE               the input image (PNG, JPEG; WebP through ffmpeg)
  --out FILE                 the clip, or a folder of PNGs with --format frames
  --model DIR                converted model directory (default: the tiny random demo model)
  --config FILE              sampling defaults from this config instead of the model's
  --noise FILE               safetensors with noise [T,4,h,w] and cond_aug_noise [1,3,H,W]
  --save-latents FILE        write final_latent [T,4,h,w] as safetensors
  --provider ${PROVIDERS.join("|")}   ONNX Runtime's execution provider (default cpu)
  --max-pixels N             largest input image, width × height (default ${MAX_PIXELS})
Generation (a flag left out takes the default):
${
  cliHelp({
    format: ", or frames: a folder of PNGs (default: from --out's extension)",
  }).join("\n")
}`;

/** Runs the image-to-video CLI with `args`. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      image: { type: "string" },
      out: { type: "string" },
      model: { type: "string" },
      config: { type: "string" },
      noise: { type: "string" },
      "save-latents": { type: "string" },
      provider: { type: "string", default: "cpu" },
      "max-pixels": { type: "string", default: String(MAX_PIXELS) },
      help: { type: "boolean", short: "h", default: false },
      ...cliOptions(),
    },
  });
  if (values.help) return console.log(USAGE);

  // 1. Everything typed is checked before anything slow starts: flags, files, output, ffmpeg.
  if (!values.image) throw new UsageError(`--image is required\n${USAGE}`);
  if (!values.out) throw new UsageError(`--out is required\n${USAGE}`);
  const typed = values as Readonly<Record<string, string | boolean | undefined>>;
  const format = (typed.format as string | undefined) ?? formatFromPath(values.out);
  if (!VIDEO_FORMATS.includes(format as VideoFormat)) {
    throw new ParameterError(
      "format",
      format,
      "is not an allowed value",
      VIDEO_FORMATS.join(" | "),
    );
  }
  const frames = format === "frames"; // a folder of PNGs: the CLI's own output, not a request's
  if (frames && typed.crf !== undefined) {
    throw new ParameterError("crf", typed.crf, "does not apply to frames", CRF_ALLOWED);
  }
  const input = cliRequestInput({ ...values, format: frames ? undefined : format });
  checkFields(input, "cli");
  const provider = values.provider as (typeof PROVIDERS)[number];
  if (!PROVIDERS.includes(provider)) {
    throw new UsageError(`--provider must be ${PROVIDERS.join(", ")}, got "${provider}"`);
  }
  const maxPixels = Number(values["max-pixels"]);
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
    throw new UsageError(`--max-pixels must be a whole number ≥ 1, got "${values["max-pixels"]}"`);
  }
  await checkInput("--image", values.image);
  if (values.model) await checkInput("--model", values.model, { directory: true });
  if (values.config) await checkInput("--config", values.config);
  if (values.noise) await checkInput("--noise", values.noise);
  await checkOutput(values.out, { folder: frames });
  if (values["save-latents"]) await checkOutput(values["save-latents"], { folder: false });
  await checkFfmpeg();
  const imageBytes = await Deno.readFile(values.image);
  assertImageSize(sniffImage(imageBytes), maxPixels);
  const noise = values.noise ? await readNoise(values.noise) : undefined;

  // 2. The model's defaults, and the request with them.
  const modelDir = values.model ?? await ensureDemoModel();
  const config: SvdConfig = values.config
    ? await loadConfig(values.config)
    : (await readModelDirectory(modelDir)).manifest.config;
  const request = parseRequest(noise ? withNoiseShape(input, noise) : input, {
    surface: "cli",
    model: config.name,
    sampling: config.sampling,
  });
  if (!values.model) {
    console.error(
      `No --model given: using the tiny demo model in ${modelDir}. Its weights are random, so the ` +
        `video is coloured noise, not an animation of your image. For real output convert a ` +
        `checkpoint (deno task weights svd_xt) and pass --model models/svd_xt.`,
    );
  }
  const { params } = request;

  // 3. The model, then the generation.
  const client = await InferenceClient.start({ modelDir, provider });
  const bar = new ProgressBar({ label: "i2v", unit: "items" });
  const controller = new AbortController();
  const cancel = () => {
    bar.stop(); // the message that follows starts on a line of its own
    controller.abort(new Error("interrupted (Ctrl-C)"));
  };
  Deno.addSignalListener("SIGINT", cancel);
  try {
    const image = await prepareImage(imageBytes, {
      width: params.width,
      height: params.height,
      policy: request.size,
      maxPixels,
    });
    if (noise && (image.width !== params.width || image.height !== params.height)) {
      throw new UsageError(
        `--noise is for ${params.width}×${params.height}, but --size ${request.size} made the ` +
          `image ${image.width}×${image.height}; use --size cover`,
      );
    }
    const video = await generateVideo({
      image: image.tensor,
      params: { ...params, width: image.width, height: image.height },
      model: modelConstants(config),
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
    if (request.watermark) {
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
      format: frames ? "frames" : request.format,
      out: values.out,
      crf: request.crf,
      signal: controller.signal,
    });
    const t = video.timings;
    console.log(
      `${encoded.path}: ${encoded.format}, ${encoded.frames} frames ${video.width}×${video.height} ` +
        `at ${encoded.fps} fps, seed ${video.seed}; conditioning ${t.conditioningMs} ms, sampling ` +
        `${t.samplingMs} ms, decoding ${t.decodingMs} ms`,
    );
  } finally {
    bar.stop();
    Deno.removeSignalListener("SIGINT", cancel);
    await client.close();
  }
}

/** `--noise` fixes the frames and the size: a flag that says otherwise is refused. */
function withNoiseShape(
  input: Readonly<Record<string, unknown>>,
  noise: ExplicitNoise,
): Record<string, unknown> {
  const [frames, , h, w] = noise.noise.dims;
  const shape: Partial<Record<keyof GenerationRequest["params"], number>> = {
    numFrames: frames,
    width: 8 * w,
    height: 8 * h,
  };
  const out = { ...input };
  for (const [name, value] of Object.entries(shape)) {
    const { key } = REQUEST_FIELDS[name as keyof typeof shape];
    const given = out[key] === undefined ? undefined : Number(out[key]);
    if (given !== undefined && given !== value) {
      throw new ParameterError(key, given, "differs from the --noise file", String(value));
    }
    out[key] = String(value);
  }
  return out;
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
