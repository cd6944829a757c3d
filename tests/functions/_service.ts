/**
 * The service assembled as `main.ts` assembles it — memory queue, worker loop, metrics, app —
 * on the tiny demo model or on a fake job runner, for tests.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../../functions/app.ts";
import type { JobAdmission } from "../../functions/job_admission.ts";
import type { ConcurrentUploads } from "../../functions/middleware/upload_admission.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import { WorkerLoop } from "../../functions/jobs/worker_loop.ts";
import { Metrics } from "../../functions/metrics.ts";
import type { UploadModel } from "../../functions/multipart.ts";
import type { WebhookTargets } from "../../functions/routes/generations.ts";
import { DeadlineSweeper } from "../../functions/jobs/deadlines.ts";
import { ensureDemoModel } from "../../pipeline/cli/demo_model.ts";
import { GenerationCancelledError } from "../../pipeline/errors.ts";
import { ImagePool } from "../../pipeline/image/image_pool.ts";
import { modelConstants } from "../../pipeline/generate.ts";
import { InferenceClient, readModelDirectory } from "../../pipeline/runtime/mod.ts";
import { InferenceEngine } from "../../pipeline/service/inference_engine.ts";
import {
  CLIP_CONTENT_TYPES,
  type ClipFormat,
  type VideoJobRunner,
  videoJobRunner,
} from "../../pipeline/service/video_job.ts";
import { fixturePath } from "../_fixtures.ts";
import { type CapturedLine, capturedLog } from "./_captured_log.ts";

/** Options of {@linkcode testService}. */
export interface TestServiceOptions {
  /** `"model"`: the real pipeline on the demo model (default); or a fake runner. */
  readonly run?: VideoJobRunner | "model";
  readonly slots?: number;
  readonly queueSize?: number;
  readonly apiToken?: string;
  readonly heartbeatMs?: number;
  readonly maxUploadBytes?: number;
  readonly maxPixels?: number;
  /** Upload limits (the app's defaults otherwise). */
  readonly maxConcurrentUploads?: number;
  /** Upload places shared with other apps, as `main.ts` shares them (default: the app's own). */
  readonly uploads?: ConcurrentUploads;
  readonly bodyIdleMs?: number;
  readonly bodyTimeoutMs?: number;
  /** Admission by cost (default: none). */
  readonly admitJob?: JobAdmission;
  readonly retentionMs?: number;
  readonly cancelPollMs?: number;
  /** Overrides the engine's readiness (fake runners have no engine). */
  readonly inferenceReady?: () => boolean;
  /** Start the worker loop (default true). */
  readonly startLoop?: boolean;
  /** `MAX_JOB_SECONDS` (default: no limit). */
  readonly maxJobSeconds?: number;
  /** Where webhooks may go (default: nowhere). */
  readonly webhookTargets?: WebhookTargets;
  /** Sweep queued jobs past their deadline every this many ms (default: no sweeper). */
  readonly sweepMs?: number;
  /** ffmpeg's time per job, in milliseconds (default: scaled to the clip). */
  readonly encodeTimeoutMs?: number;
}

/** A running service; dispose it to stop everything. */
export interface TestService extends AsyncDisposable {
  readonly app: Hono;
  readonly queue: MemoryJobQueue;
  readonly loop: WorkerLoop;
  /** Checks uploads at the door and prepares the model's jobs' images. */
  readonly imagePool: ImagePool;
  readonly metrics: Metrics;
  readonly model: UploadModel;
  /** Present with `run: "model"`. */
  readonly engine?: InferenceEngine<InferenceClient>;
  /** Log lines the service wrote (requests and job transitions). */
  readonly logs: CapturedLine[];
}

/** Builds (and starts) a service; see the module doc. */
export async function testService(options: TestServiceOptions = {}): Promise<TestService> {
  const dir = await ensureDemoModel();
  const { manifest } = await readModelDirectory(dir);
  const model: UploadModel = { name: manifest.name, sampling: manifest.config.sampling };
  const log = capturedLog();
  const logs = log.lines;
  const metrics = new Metrics();
  const slots = options.slots ?? 1;
  const queue = new MemoryJobQueue({
    capacity: slots + (options.queueSize ?? 8),
    retentionMs: options.retentionMs ?? 60_000,
    retryAfterSeconds: () => 7,
    onCancelledWhileQueued: () => metrics.cancelledWhileQueued(),
  });
  const maxPixels = options.maxPixels ?? 16e6;
  const imagePool = new ImagePool();
  let engine: InferenceEngine<InferenceClient> | undefined;
  let run: VideoJobRunner;
  if (options.run === undefined || options.run === "model") {
    const started = new InferenceEngine(() => InferenceClient.start({ modelDir: dir }));
    engine = started;
    await started.acquire();
    run = videoJobRunner({
      images: imagePool,
      networks: () => started.acquire(),
      model: modelConstants(manifest.config),
      maxPixels,
      encodeTimeoutMs: options.encodeTimeoutMs,
    });
  } else {
    run = options.run;
  }
  const loop = new WorkerLoop({
    queue,
    slots,
    run,
    observer: metrics,
    log,
    cancelPollMs: options.cancelPollMs ?? 100,
    name: "test",
  });
  const app = createApp({
    queue,
    model,
    metrics,
    provider: "cpu",
    inferenceReady: options.inferenceReady ?? (() => engine?.ready ?? true),
    apiToken: options.apiToken,
    maxUploadBytes: options.maxUploadBytes ?? 20 * 1024 * 1024,
    maxPixels,
    imagePool,
    maxConcurrentUploads: options.maxConcurrentUploads,
    uploads: options.uploads,
    bodyIdleMs: options.bodyIdleMs,
    bodyTimeoutMs: options.bodyTimeoutMs,
    admitJob: options.admitJob,
    queueCapacity: slots + (options.queueSize ?? 8),
    retryAfterSeconds: () => 7,
    heartbeatMs: options.heartbeatMs ?? 15_000,
    log,
    jobLog: log,
    maxJobSeconds: options.maxJobSeconds,
    webhookTargets: options.webhookTargets,
  });
  if (options.startLoop ?? true) loop.start();
  const sweeper = options.sweepMs === undefined
    ? undefined
    : new DeadlineSweeper({ queue, intervalMs: options.sweepMs, log });
  sweeper?.start();
  return {
    app,
    queue,
    loop,
    imagePool,
    metrics,
    model,
    engine,
    logs,
    async [Symbol.asyncDispose]() {
      sweeper?.stop();
      await loop.stop({ drainMs: 60_000, cancelAfterMs: 0 });
      await queue.close();
      await engine?.close();
      await imagePool.close();
    },
  };
}

/** The fixture image: a 128×64 PNG. */
export function inputPng(): Promise<Uint8Array> {
  return Deno.readFile(fixturePath("input.png"));
}

/** A multipart body with `image` (when given) and text `fields`. */
export function upload(
  image: Uint8Array | string | undefined,
  fields: Record<string, string> = {},
): FormData {
  const form = new FormData();
  if (typeof image === "string") form.append("image", image);
  else if (image) {
    form.append("image", new Blob([image as Uint8Array<ArrayBuffer>]), "input.png");
  }
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  return form;
}

/**
 * POSTs the fixture image with `fields` to a running service at `url` (`http://host:port`) and
 * returns the new generation's id, failing the test with the answer's body unless it is 202.
 */
export async function postGeneration(url: string, fields: Record<string, string>): Promise<string> {
  const response = await fetch(`${url}/v1/generations`, {
    method: "POST",
    body: upload(await inputPng(), fields),
  });
  const body = await response.json();
  assert.equal(response.status, 202, JSON.stringify(body));
  return body.id;
}

/** Small, fast request fields for the demo model. */
export const SMALL = { steps: "2", num_frames: "4", width: "128", height: "64" } as const;

/** Options of {@linkcode fakeRunner}. */
export interface FakeRunnerOptions {
  /** Pause per step, in milliseconds (default 5). */
  readonly stepMs?: number;
  /** Bytes of the fake clip (default 1000). */
  readonly bytes?: number;
  /** Resolves before the job starts its steps (to hold jobs in place). */
  readonly gate?: () => Promise<void>;
  /** Throws this instead of finishing. */
  readonly fail?: () => Error | undefined;
}

/**
 * A job runner without a model: `started`, one `step` per requested step (with one fake preview
 * per frame when previews are on), one `decoding`, `encoding`, and a clip of patterned bytes
 * (`byte i = i % 251`). It stops between steps when the signal aborts, as the pipeline does.
 */
export function fakeRunner(options: FakeRunnerOptions = {}): VideoJobRunner {
  return async (_image, spec, { signal, onEvent }) => {
    const p = spec.params;
    await options.gate?.();
    onEvent({
      type: "started",
      seed: p.seed,
      frames: p.numFrames,
      steps: p.numSteps,
      width: p.width,
      height: p.height,
    });
    for (let step = 1; step <= p.numSteps; step++) {
      if (signal.aborted) throw new GenerationCancelledError("cancelled", { cause: signal.reason });
      await new Promise((resolve) => setTimeout(resolve, options.stepMs ?? 5));
      onEvent({
        type: "step",
        step,
        total: p.numSteps,
        sigma: 1 / step,
        elapsedMs: step * 5,
        etaMs: (p.numSteps - step) * 5,
        ...(spec.preview === "latent"
          ? { frames: Array.from({ length: p.numFrames }, () => "data:image/png;base64,") }
          : {}),
      });
    }
    if (signal.aborted) throw new GenerationCancelledError("cancelled", { cause: signal.reason });
    onEvent({ type: "decoding", chunk: 1, total: 1 });
    const failure = options.fail?.();
    if (failure) throw failure;
    onEvent({ type: "encoding" });
    const format = spec.format as ClipFormat;
    const bytes = Uint8Array.from({ length: options.bytes ?? 1000 }, (_, i) => i % 251);
    return {
      bytes,
      format,
      contentType: CLIP_CONTENT_TYPES[format],
      seed: p.seed,
      width: p.width,
      height: p.height,
      frames: p.numFrames,
      fps: p.fps,
      timings: {
        preparingMs: 0,
        conditioningMs: 0,
        samplingMs: 0,
        decodingMs: 0,
        encodingMs: 0,
        totalMs: 0,
      },
    };
  };
}

/** Polls `check` every 20 ms until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = 60_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
