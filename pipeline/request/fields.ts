/**
 * The request fields of a generation, declared once: name, type and range (a zod schema),
 * default, description, label and the surfaces that accept the field. Everything else is derived
 * from this table:
 *
 * | surface | derived by |
 * |---|---|
 * | HTTP upload (`POST /v1/generations`) | `parseRequest` (functions/multipart.ts feeds it the form) |
 * | OpenAPI `GenerationUpload`, `GenerationParams` | functions/api_schemas.ts (the zod schemas, through `@hono/zod-openapi`) |
 * | CLI flags and `--help` | `cliOptions`, `cliHelp` (pipeline/cli/i2v.ts) |
 * | demo page inputs and limits | the page reads `/openapi.json` |
 * | YAML `sampling` block | pipeline/config/_field_specs.ts (`checkValue` checks each value) |
 * | status JSON `params` | `requestJson` |
 * | the types `SamplingParams`, `GenerationRequest`, `PreviewMode`, … | mapped from this table |
 *
 * Why zod (npm `zod`, v4): one schema per field serves validation (`safeParse`) and the
 * documents (its JSON Schema, draft 2020-12, is OpenAPI 3.1's dialect, and `@hono/zod-openapi`
 * turns it into the OpenAPI document with the routes). The project already uses zod for
 * `model.json`. Messages stay ours (`steps = 0 is out of range: allowed 1..200`): zod's issue codes
 * are mapped to a problem in `field_values.ts` and the allowed values are said from the schema.
 *
 * Ranges and why:
 * - `width`, `height`: 64..2048, multiples of 64. The latent is 1/8 of the image and the UNet
 *   halves it three times (sgm rounds images down to multiples of 64).
 * - `num_frames` 1..64 and `decoding_t` 1..64: SVD is trained on 14, SVD-XT on 25; the temporal
 *   layers accept other counts, memory grows linearly. `decoding_t` may exceed `num_frames`.
 * - `steps` 1..200 (sgm: `num_steps`): EDM Euler steps; 25 / 30 are the references.
 * - `min_guidance`, `max_guidance` 0..30, min ≤ max: per-frame CFG scales (sgm's
 *   `LinearPredictionGuider` min_scale / max_scale).
 * - `fps` 1..60: the video's frame rate; the model sees `fps_id = fps − 1` (as diffusers).
 * - `motion_bucket_id` 0..1023: a sinusoidal embedding, any integer works; 127 is the default
 *   and sgm's demo offers 0..511.
 * - `cond_aug` 0..1: noise added to the conditioning frame, in [−1, 1] image units (0.02).
 * - `seed` 0..2³²−1: an unsigned 32-bit integer, like sgm's and diffusers' generators take.
 * - `crf` 0..63 here, narrowed by `format` in `parse_request.ts` (mp4 0..51, webm 0..63, gif none).
 * - `timeout_seconds` 1..604800 (a week), narrowed by the service's `MAX_JOB_SECONDS`.
 * - `webhook` an http(s) URL of at most 2048 characters; `parse_request.ts` allows http only when
 *   the service says so (`WEBHOOK_ALLOW_PRIVATE`, for tests), the service checks its addresses.
 *
 * ## Adding a field
 *
 * Add one entry to {@linkcode REQUEST_FIELDS}. Its key is the camelCase property of the request
 * (`request.watermark`, or `request.params.x` for `group: "sampling"`), and the entry says:
 *
 * ```ts
 * watermark: {
 *   key: "watermark", // the form field, JSON key, YAML key; the CLI flag is --watermark
 *   group: "job", // "sampling": request.params and the YAML sampling block, default from the model
 *   schema: z.boolean(), // type and range; z.url({ protocol: /^https$/ }), z.array(z.enum([…]))
 *   default: true, // or optional: true (absent = undefined)
 *   title: "Watermark", // the demo page's label
 *   description: "Embed an invisible watermark in every frame.",
 *   surfaces: ["http", "cli"], // a boolean defaulting to true becomes --no-watermark on the CLI
 * },
 * ```
 *
 * The request type, the HTTP parser, `/openapi.json` (and so the demo page, which puts a field it
 * does not place under "Advanced": a number input, a select, a checkbox or a text input), the CLI
 * and its help, the status JSON and the Redis record (JSON) follow, and
 * tests/request/request_surfaces_test.ts checks the new field on every surface as it is. A rule
 * between fields, or one that needs the service's limits (`timeout_seconds` ≤ `MAX_JOB_SECONDS`,
 * admission by cost), goes into `REQUEST_RULES` in `parse_request.ts` (the limits into
 * `RequestContext`). Add the field's default to the whole default request in
 * tests/request/parse_request_test.ts, then use the value where the feature lives.
 *
 * @module
 */

import { z } from "zod";
import { MAX_SIDE, SIZE_POLICIES } from "../image/size_policy.ts";
import { CRF } from "../video/encode_video.ts";

/** Where a field is accepted: the HTTP upload, the CLI's flags, a config's `sampling` block. */
export type Surface = "http" | "cli" | "config";

/** One request field; see the module doc. */
export interface FieldDeclaration {
  /** The name users type: form field, JSON and YAML key; the CLI flag is `--key-with-dashes`. */
  readonly key: string;
  /**
   * `sampling`: a sampling parameter (`request.params`), defaulting to the model's config, and a
   * key of the YAML `sampling` block. `job`: a top-level field of the request.
   */
  readonly group: "sampling" | "job";
  /** Type and allowed values, after text was read as a number or a boolean. */
  readonly schema: z.ZodType;
  /**
   * When the request and the model's config leave the field out. `null`: a value drawn per run
   * (the seed). Absent: the model's config always has one (the family defaults), or `optional`.
   */
  readonly default?: unknown;
  /** Absent stays absent (`undefined` in the request): `crf`, the encoder's default. */
  readonly optional?: boolean;
  /** A short label (the demo page's). */
  readonly title: string;
  /** What the field does; the first sentence is the CLI's help line. */
  readonly description: string;
  readonly surfaces: readonly Surface[];
}

const EVERYWHERE = ["http", "cli", "config"] as const;

/** The events a webhook can be sent for (`webhook_events`). */
export const WEBHOOK_EVENTS = ["started", "done", "error", "cancelled"] as const;

/** The events a webhook gets when `webhook_events` is not given: the terminal ones. */
export const DEFAULT_WEBHOOK_EVENTS: readonly ("done" | "error" | "cancelled")[] = [
  "done",
  "error",
  "cancelled",
];

/** The longest `timeout_seconds` the declaration allows: a week (`MAX_JOB_SECONDS` narrows it). */
export const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;
// The side limit is the size policy's: `native` and `contain` sizes obey the same bound.
const IMAGE_SIDE = z.int().min(64).max(MAX_SIDE).multipleOf(64);
const GUIDANCE = z.number().min(0).max(30);

/** Every request field, in the order they are documented; see the module doc. */
export const REQUEST_FIELDS = {
  model: {
    key: "model",
    group: "job",
    schema: z.string().min(1).max(100),
    title: "Model",
    description: "The model to run. The loaded model's name (the default): one model per " +
      "service.",
    surfaces: ["http"],
  },
  numFrames: {
    key: "num_frames",
    group: "sampling",
    schema: z.int().min(1).max(64),
    title: "Frames",
    description: "Frames to generate. SVD is trained on 14, SVD-XT on 25; memory grows linearly.",
    surfaces: EVERYWHERE,
  },
  numSteps: {
    key: "steps",
    group: "sampling",
    schema: z.int().min(1).max(200),
    title: "Steps",
    description: "Sampling steps. EDM Euler steps (sgm's num_steps); 25 (SVD) and 30 (SVD-XT) " +
      "are the references.",
    surfaces: EVERYWHERE,
  },
  fps: {
    key: "fps",
    group: "sampling",
    schema: z.int().min(1).max(60),
    default: 7,
    title: "FPS",
    description: "Frame rate of the video. The model is conditioned on fps − 1, as SVD was " +
      "trained.",
    surfaces: EVERYWHERE,
  },
  motionBucketId: {
    key: "motion_bucket_id",
    group: "sampling",
    schema: z.int().min(0).max(1023),
    default: 127,
    title: "Motion bucket",
    description: "How much motion. A sinusoidal embedding: any integer works; sgm's demo offers " +
      "0..511.",
    surfaces: EVERYWHERE,
  },
  condAug: {
    key: "cond_aug",
    group: "sampling",
    schema: z.number().min(0).max(1),
    default: 0.02,
    title: "Cond. augmentation",
    description: "Noise added to the conditioning frame. In [−1, 1] image units (diffusers: " +
      "noise_aug_strength).",
    surfaces: EVERYWHERE,
  },
  seed: {
    key: "seed",
    group: "sampling",
    schema: z.int().min(0).max(2 ** 32 - 1),
    default: null,
    title: "Seed",
    description: "Noise seed. Philox4x32-10, the same noise on every machine; absent: the " +
      "model's configured seed, else a fresh random one per run.",
    surfaces: EVERYWHERE,
  },
  minGuidance: {
    key: "min_guidance",
    group: "sampling",
    schema: GUIDANCE,
    title: "Guidance min",
    description: "CFG scale of the first frame. sgm's min_scale; at most max_guidance.",
    surfaces: EVERYWHERE,
  },
  maxGuidance: {
    key: "max_guidance",
    group: "sampling",
    schema: GUIDANCE,
    title: "Guidance max",
    description: "CFG scale of the last frame. sgm's max_scale; at least min_guidance.",
    surfaces: EVERYWHERE,
  },
  guider: {
    key: "guider",
    group: "sampling",
    schema: z.enum(["linear", "triangle"]),
    default: "linear",
    title: "Guider",
    description: "How the CFG scale varies over the frames. linear (SVD's), or triangle (up to " +
      "the middle frame, then down).",
    surfaces: EVERYWHERE,
  },
  decodingT: {
    key: "decoding_t",
    group: "sampling",
    schema: z.int().min(1).max(64),
    default: 14,
    title: "Decode chunk (frames)",
    description: "Frames per VAE decoder call. Fewer need less memory; more than num_frames is " +
      "allowed.",
    surfaces: EVERYWHERE,
  },
  width: {
    key: "width",
    group: "sampling",
    schema: IMAGE_SIDE,
    default: 1024,
    title: "Width",
    description: "Target width in pixels. SVD was trained at 1024×576; size decides how the " +
      "image meets it.",
    surfaces: EVERYWHERE,
  },
  height: {
    key: "height",
    group: "sampling",
    schema: IMAGE_SIDE,
    default: 576,
    title: "Height",
    description: "Target height in pixels. size decides how the image meets it.",
    surfaces: EVERYWHERE,
  },
  size: {
    key: "size",
    group: "job",
    schema: z.enum(SIZE_POLICIES),
    default: "cover",
    title: "Size policy",
    description: "How the image becomes width × height. cover: scale and centre-crop; contain: " +
      "fit inside; stretch; native: its own size, rounded down to multiples of 64.",
    surfaces: ["http", "cli"],
  },
  format: {
    key: "format",
    group: "job",
    schema: z.enum(["mp4", "webm", "gif"]),
    default: "mp4",
    title: "Format",
    description: "The clip's format. mp4 (H.264), webm (VP9) or gif.",
    surfaces: ["http", "cli"],
  },
  crf: {
    key: "crf",
    group: "job",
    schema: z.int().min(0).max(Math.max(CRF.mp4.max, CRF.webm.max)),
    optional: true,
    title: "Quality (CRF)",
    description: `Video quality, lower is better. mp4 ${CRF.mp4.min}..${CRF.mp4.max} (default ` +
      `${CRF.mp4.default}), webm ${CRF.webm.min}..${CRF.webm.max} (default ${CRF.webm.default}); ` +
      "not for gif.",
    surfaces: ["http", "cli"],
  },
  preview: {
    key: "preview",
    group: "job",
    schema: z.enum(["latent", "none"]),
    default: "latent",
    title: "Previews",
    description: "Previews in step events. latent: one small image per frame at every step; " +
      "none: no previews.",
    surfaces: ["http"],
  },
  keepRunning: {
    key: "keep_running",
    group: "job",
    schema: z.boolean(),
    default: false,
    title: "Keep running when I leave",
    description: "Keep generating when the client of a streaming POST disconnects. By default " +
      "the generation is then cancelled.",
    surfaces: ["http"],
  },
  watermark: {
    key: "watermark",
    group: "job",
    schema: z.boolean(),
    default: true,
    title: "Invisible watermark",
    description: "Embed sgm's invisible 48-bit watermark (imwatermark DWT-DCT) in every frame, " +
      "as Stability's sampling script does; `deno task watermark FILE` reads it back.",
    surfaces: ["http", "cli"],
  },
  timeoutSeconds: {
    key: "timeout_seconds",
    group: "job",
    schema: z.int().min(1).max(MAX_TIMEOUT_SECONDS),
    optional: true,
    title: "Deadline (seconds)",
    description: "Give the generation up this many seconds after it was submitted, queued or " +
      "running: it ends with error deadline_exceeded. At most the service's MAX_JOB_SECONDS " +
      "(also the default when it is set).",
    surfaces: ["http"],
  },
  webhook: {
    key: "webhook",
    group: "job",
    // The pattern tells OpenAPI readers (and validators without formats) the URL's shape.
    schema: z.url({ protocol: /^https?$/ }).max(2048).meta({
      pattern: "^https?://[^\\s/?#]+([/?#]|$)",
    }),
    optional: true,
    title: "Webhook URL",
    description: "An https URL that gets a signed POST (Standard Webhooks) for each of " +
      "webhook_events, with the generation's status JSON; needs the service's WEBHOOK_SECRET.",
    surfaces: ["http"],
  },
  webhookEvents: {
    key: "webhook_events",
    group: "job",
    schema: z.array(z.enum(WEBHOOK_EVENTS)).min(1).max(WEBHOOK_EVENTS.length),
    default: DEFAULT_WEBHOOK_EVENTS,
    optional: true, // a request made in code may leave it out: the default applies all the same
    title: "Webhook events",
    description: "The events sent to webhook, comma-separated: started, done, error, cancelled " +
      "(default: the terminal ones).",
    surfaces: ["http"],
  },
} as const satisfies Readonly<Record<string, FieldDeclaration>>;

type Fields = typeof REQUEST_FIELDS;

/** The camelCase name of a request field (`numSteps`). */
export type FieldName = keyof Fields;

/** The checked value of field `F`. */
export type FieldValue<F extends FieldName> = z.output<Fields[F]["schema"]>;

type SamplingName = {
  [F in FieldName]: Fields[F]["group"] extends "sampling" ? F : never;
}[FieldName];
type JobName = Exclude<FieldName, SamplingName>;
type OptionalName = {
  [F in FieldName]: Fields[F] extends { optional: true } ? F : never;
}[FieldName];

/** Parameters of one generation, every one filled (seed included). */
export type SamplingParams = { readonly [F in SamplingName]: FieldValue<F> };

/** The sampling fields under the names users type (`{ steps: number, … }`): a YAML block. */
export type SamplingFieldsByKey = {
  [F in SamplingName as Fields[F]["key"]]: FieldValue<F>;
};

/**
 * One validated generation request, from the HTTP edge (or the CLI) to the worker: everything
 * but the image. Stored as JSON by the queues.
 */
export type GenerationRequest =
  & { readonly params: SamplingParams }
  & { readonly [F in Exclude<JobName, OptionalName>]: FieldValue<F> }
  & { readonly [F in Extract<JobName, OptionalName>]?: FieldValue<F> };

/** How the CFG scale varies over the frames (sgm `LinearPredictionGuider` / `TrianglePredictionGuider`). */
export type GuiderKind = FieldValue<"guider">;

/** Whether `step` events carry previews. */
export type PreviewMode = FieldValue<"preview">;

/** An event a webhook is sent for. */
export type WebhookEvent = typeof WEBHOOK_EVENTS[number];

/** A clip a generation returns as one file (the CLI can also write a folder of PNGs). */
export type ClipFormat = FieldValue<"format">;

/** The names of all fields, in declaration order. */
export const FIELD_NAMES: readonly FieldName[] = Object.keys(REQUEST_FIELDS) as FieldName[];

/** The sampling fields' names (`request.params`), in declaration order. */
export const SAMPLING_NAMES: readonly SamplingName[] = FIELD_NAMES.filter((name) =>
  REQUEST_FIELDS[name].group === "sampling"
) as SamplingName[];

/** The fields `surface` accepts, in declaration order. */
export function fieldsOn(surface: Surface): FieldName[] {
  return FIELD_NAMES.filter((name) =>
    (REQUEST_FIELDS[name].surfaces as readonly Surface[]).includes(surface)
  );
}

/** The declaration of `name`. */
export function declarationOf(name: FieldName): FieldDeclaration {
  return REQUEST_FIELDS[name];
}
