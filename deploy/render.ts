/**
 * Every deployment manifest of svd-stream, rendered from one set of options: a Knative Service for
 * Cloud Run (`cloudrun`), the same for a Knative cluster with GPU nodes (`knative`), or a plain
 * Kubernetes Deployment + Service + PodDisruptionBudget (`k8s`), or the scaled-out layout: CPU API
 * pods, GPU worker pods scaled by KEDA on the Redis jobs stream, and Redis (`k8s-scaleout`).
 *
 * Options come in raw ({@linkcode RenderOptions}, every field optional but the target), are
 * resolved once with per-target defaults and checked ({@linkcode resolveRenderOptions}), and each
 * target is a function from the resolved options to a list of objects ({@linkcode TARGETS}): a new
 * target is one more entry there.
 *
 * @example
 * ```ts
 * import { render } from "./deploy/render.ts";
 * const manifests = render({ target: "cloudrun", image: "europe-docker.pkg.dev/p/r/svd-stream:1.0.0" });
 * manifests[0].file; // "svd-stream-service.yaml"
 * manifests[0].object.kind; // "Service"
 * ```
 *
 * @module
 */

import { GPUS, type GpuSpec } from "../pipeline/plan/gpus.ts";
import { PROVIDER_SETTINGS, type ProviderSetting } from "../pipeline/runtime/provider.ts";
import { CLOUD_RUN_MAX_TIMEOUT_SECONDS, CLOUD_RUN_SHUTDOWN_SECONDS } from "./targets/_container.ts";
import { renderCloudRun } from "./targets/cloudrun.ts";
import { renderK8s } from "./targets/k8s.ts";
import { renderK8sScaleout } from "./targets/k8s_scaleout.ts";
import { renderKnative } from "./targets/knative.ts";

/** A Kubernetes-style object as written to YAML. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Record<string, string>;
    readonly annotations?: Record<string, string>;
  };
  readonly [field: string]: unknown;
}

/** One rendered object and the file name it is written to. */
export interface RenderedManifest {
  /** `<name>-<kind>.yaml`, e.g. `svd-stream-deployment.yaml`. */
  readonly file: string;
  readonly object: KubeObject;
}

/** A Secret (Kubernetes) or Secret Manager secret (Cloud Run), by reference only. */
export interface SecretRef {
  /** The secret's name. */
  readonly name: string;
  /** The key inside it (Kubernetes), or the version (Cloud Run: `latest` or a number). */
  readonly key: string;
}

/** Resources of one instance. Requests equal limits (a GPU instance is never overcommitted). */
export interface ResourceLimits {
  /** Kubernetes quantity, e.g. `32Gi`. */
  readonly memory?: string;
  /** Kubernetes quantity, e.g. `8`. */
  readonly cpu?: string;
  /** Number of `nvidia.com/gpu`; 0 renders a CPU-only deployment (`ORT_PROVIDER=cpu`). */
  readonly gpu?: number;
}

/** Where manifests can go. */
export type Target = keyof typeof TARGETS;

/** Raw options: everything but `target` has a default (see {@linkcode resolveRenderOptions}). */
export interface RenderOptions {
  readonly target: Target;
  /** Service name and `app.kubernetes.io/name` label (default `svd-stream`). */
  readonly name?: string;
  /** Namespace for `knative` and `k8s` (default: none, i.e. kubectl's current one). */
  readonly namespace?: string;
  /** Image reference with a tag or digest (default `svd-stream:dev`). */
  readonly image?: string;
  /**
   * Where the converted model comes from:
   * - `gs://BUCKET[/PATH]` (cloudrun): a Cloud Storage FUSE volume, read-only.
   * - `pvc:CLAIM[/SUBPATH]` (knative, k8s): a PersistentVolumeClaim, read-only.
   * - `init:NAME` (knative, k8s): an init container runs `deno task weights NAME` into an emptyDir.
   * - `baked`: the model is in the image (built with `--build-arg BAKE_MODEL=NAME`).
   *
   * Default: `gs://svd-stream-models/svd_xt` on cloudrun, `pvc:svd-stream-models/svd_xt` elsewhere.
   */
  readonly modelLocation?: string;
  /** `MODEL_DIR`, where the container sees the model (default `/models/svd_xt`). */
  readonly modelDir?: string;
  /** `SLOTS`: generations run at once per instance (default 1: one GPU runs one video). */
  readonly slots?: number;
  /** `QUEUE_SIZE`: requests waiting for a slot per instance (default 4). */
  readonly queueSize?: number;
  /** Connections beyond the streaming ones (status, downloads, metrics) an instance takes (default 2). */
  readonly extraConnections?: number;
  /** `RETENTION_SECONDS`: how long finished videos stay downloadable (default 1800). */
  readonly retentionSeconds?: number;
  /** `MAX_UPLOAD_BYTES` (default 20 MiB). */
  readonly maxUploadBytes?: number;
  /** `MAX_PIXELS` of an uploaded image (default 4096²). */
  readonly maxPixels?: number;
  /** `ORT_PROVIDER` (default `cuda` with a GPU, `cpu` without). */
  readonly provider?: ProviderSetting;
  /** Per instance (default 8 CPUs, 32Gi, 1 GPU). */
  readonly limits?: ResourceLimits;
  /** Cloud Run accelerator (default `nvidia-l4`); elsewhere it only sets `GPU_MEMORY_GB`. */
  readonly gpuType?: string;
  /**
   * `GPU_MEMORY_GB`: the GPU memory (GiB) the memory plan chooses the default `decoding_t` for.
   * Default: the memory of `gpuType` where the GPU type is known (Cloud Run, or a `gpuType`
   * given for another target; see {@linkcode GPU_MEMORY_BY_TYPE}), else unset (the server asks
   * `nvidia-smi`; an API process without a GPU then keeps the model's default).
   */
  readonly gpuMemoryGb?: number;
  /** `API_TOKEN` from this secret; `null` serves without a token. Default `svd-stream-api-token`. */
  readonly tokenSecret?: SecretRef | null;
  /** `HF_TOKEN` for `init:NAME` model locations (default `svd-stream-hf-token`, key `token`). */
  readonly hfTokenSecret?: SecretRef;
  /** Fewest instances (default 0; k8s runs max(1, minInstances) replicas). */
  readonly minInstances?: number;
  /** Most instances (default 3). */
  readonly maxInstances?: number;
  /** Upper estimate of one generation, seconds (default 300: SVD-XT, 25 frames, on an L4). */
  readonly longestGenerationSeconds?: number;
  /**
   * `DRAIN_SECONDS`: after SIGTERM, how long running generations may finish. Default: the longest
   * generation, but 8 on Cloud Run, which kills an instance 10 s after SIGTERM.
   */
  readonly drainSeconds?: number;
  /**
   * How long one request may last: a streaming request lives through its queue wait and its
   * generation. Default: longest generation × ⌈(slots + queue) / slots⌉ + 60.
   */
  readonly requestTimeoutSeconds?: number;
  /** How long loading the model may take before the startup probe gives up (default 240 on
   * Cloud Run, its limit; 600 elsewhere). */
  readonly startupSeconds?: number;
  /** Container port (default 8080). Cloud Run and Knative pass it as `PORT`. */
  readonly port?: number;
  /** Service account the instances run as (default: the platform's default). */
  readonly serviceAccount?: string;
  /** Node labels a GPU node has (knative, k8s; default `nvidia.com/gpu.present: "true"`). */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** More environment variables. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * `k8s-scaleout` only: a managed Redis, `redis://HOST[:PORT][/DB]` or `rediss://…`, without
   * credentials (the password comes from `redisSecret`). Default: none, a Redis StatefulSet is
   * rendered.
   */
  readonly redisUrl?: string;
  /** `k8s-scaleout` only: the Redis password (default `svd-stream-redis`, key `password`). */
  readonly redisSecret?: Partial<SecretRef>;
  /** `k8s-scaleout` only: the Redis image of the StatefulSet (default `redis:7.4-alpine`; ≥ 7). */
  readonly redisImage?: string;
  /** `k8s-scaleout` only: the Redis pod's memory (default `4Gi`; `maxmemory` is 75 % of it). */
  readonly redisMemory?: string;
  /** `k8s-scaleout` only: the Redis data volume (default `10Gi`). */
  readonly redisStorage?: string;
  /** `k8s-scaleout` only: API replicas (default 2). */
  readonly apiReplicas?: number;
  /** `k8s-scaleout` only: one API pod's resources (default 1 CPU, 2Gi). */
  readonly apiLimits?: { readonly cpu?: string; readonly memory?: string };
  /**
   * `k8s-scaleout` only: KEDA's `lagCount`, queued jobs per worker replica (default `slots`: each
   * worker takes `slots` jobs at once).
   */
  readonly lagCount?: number;
}

/** The `k8s-scaleout` settings, resolved. */
export interface ScaleOutOptions {
  /** A managed Redis (no credentials in it), or undefined: the rendered StatefulSet. */
  readonly redisUrl: URL | undefined;
  readonly redisSecret: SecretRef;
  readonly redisImage: string;
  readonly redisMemory: string;
  readonly redisStorage: string;
  readonly apiReplicas: number;
  readonly apiLimits: { readonly cpu: string; readonly memory: string };
  readonly lagCount: number;
}

/** Options with every default filled in and checked. */
export interface ResolvedRenderOptions {
  readonly target: Target;
  readonly name: string;
  readonly namespace: string | undefined;
  readonly image: string;
  readonly model: ModelLocation;
  readonly modelDir: string;
  readonly slots: number;
  readonly queueSize: number;
  readonly extraConnections: number;
  readonly retentionSeconds: number;
  readonly maxUploadBytes: number;
  readonly maxPixels: number;
  readonly provider: ProviderSetting;
  readonly limits: Required<ResourceLimits>;
  readonly gpuType: string;
  /** Undefined: not set in the manifest. */
  readonly gpuMemoryGb: number | undefined;
  readonly tokenSecret: SecretRef | null;
  readonly hfTokenSecret: SecretRef;
  readonly minInstances: number;
  readonly maxInstances: number;
  readonly longestGenerationSeconds: number;
  readonly drainSeconds: number;
  readonly requestTimeoutSeconds: number;
  readonly startupSeconds: number;
  readonly port: number;
  readonly serviceAccount: string | undefined;
  readonly nodeSelector: Readonly<Record<string, string>>;
  readonly env: Readonly<Record<string, string>>;
  readonly scaleOut: ScaleOutOptions;
}

/** A parsed `modelLocation`. */
export type ModelLocation =
  | { readonly kind: "gcs"; readonly bucket: string; readonly path: string }
  | { readonly kind: "pvc"; readonly claim: string; readonly subPath: string }
  | { readonly kind: "init"; readonly weights: string }
  | { readonly kind: "baked" };

/**
 * GPU memory by accelerator name (Cloud Run's `run.googleapis.com/accelerator`, GKE's
 * `cloud.google.com/gke-accelerator`), in GiB as `nvidia-smi` reports it (`pipeline/plan/gpus.ts`).
 */
export const GPU_MEMORY_BY_TYPE: Readonly<Record<string, number>> = Object.fromEntries(
  ([
    ["nvidia-l4", GPUS.l4],
    ["nvidia-tesla-a100", GPUS["a100-40"]],
    ["nvidia-a100-80gb", GPUS["a100-80"]],
    ["nvidia-h100-80gb", GPUS.h100],
    ["nvidia-h200-141gb", GPUS.h200],
  ] as [string, GpuSpec][]).map((
    [type, gpu],
  ) => [type, Math.floor(gpu.memoryBytes / 2 ** 30 * 100) / 100]),
);

/** The render function of each target. Add a target here. */
export const TARGETS = {
  cloudrun: renderCloudRun,
  knative: renderKnative,
  k8s: renderK8s,
  "k8s-scaleout": renderK8sScaleout,
} satisfies Record<string, (options: ResolvedRenderOptions) => KubeObject[]>;

/** Renders `options.target`'s manifests. @throws {RangeError | TypeError} for a bad option. */
export function render(options: RenderOptions): RenderedManifest[] {
  const resolved = resolveRenderOptions(options);
  return TARGETS[resolved.target](resolved).map((object) => ({
    file: `${object.metadata.name}-${object.kind.toLowerCase()}.yaml`,
    object,
  }));
}

/** Whether `value` names a target. */
export function isTarget(value: string): value is Target {
  return Object.hasOwn(TARGETS, value);
}

/**
 * Fills in the defaults (the only place that knows them) and checks every value.
 *
 * @throws {RangeError} naming the option, its value and what is allowed.
 */
export function resolveRenderOptions(options: RenderOptions): ResolvedRenderOptions {
  const { target } = options;
  if (!isTarget(target)) {
    throw new RangeError(
      `target = "${target}" is unknown: allowed ${Object.keys(TARGETS).join(", ")}`,
    );
  }
  const cloudRun = target === "cloudrun";
  const name = options.name ?? "svd-stream";
  if (!/^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$/.test(name)) {
    throw new RangeError(
      `name = "${name}" is not a service name: lowercase letters, digits and "-", starting with a ` +
        "letter, at most 49 characters",
    );
  }
  const image = options.image ?? "svd-stream:dev";
  if (!hasTagOrDigest(image)) {
    throw new RangeError(`image = "${image}" has no tag or digest: give one (e.g. ${image}:1.0.0)`);
  }
  const scaleOut = target === "k8s-scaleout";
  const slots = integer("slots", options.slots ?? 1, 1, 64);
  const minInstances = integer("minInstances", options.minInstances ?? 0, 0);
  const maxInstances = integer("maxInstances", options.maxInstances ?? 3, 1);
  if (minInstances > maxInstances) {
    throw new RangeError(
      `minInstances = ${minInstances} is more than maxInstances = ${maxInstances}`,
    );
  }
  // With a shared Redis queue, SLOTS + QUEUE_SIZE bounds the jobs queued and running cluster-wide
  // (functions/server_config.ts): by default every worker holds what one k8s instance holds.
  const queueSize = integer(
    "queueSize",
    options.queueSize ?? (scaleOut ? maxInstances * (slots + 4) - slots : 4),
    0,
    10000,
  );
  const limits = {
    memory: options.limits?.memory ?? "32Gi",
    cpu: options.limits?.cpu ?? "8",
    gpu: integer("limits.gpu", options.limits?.gpu ?? 1, 0, 8),
  };
  const provider = options.provider ?? (limits.gpu > 0 ? "cuda" : "cpu");
  if (!PROVIDER_SETTINGS.includes(provider)) {
    throw new RangeError(
      `provider = "${provider}" is unknown: allowed ${PROVIDER_SETTINGS.join(", ")}`,
    );
  }
  if ((provider === "cuda" || provider === "webgpu") && limits.gpu === 0) {
    throw new RangeError(`provider = "${provider}" needs a GPU, but limits.gpu = 0`);
  }
  const longest = integer("longestGenerationSeconds", options.longestGenerationSeconds ?? 300, 1);
  // The last request admitted to a full queue waits for every request ahead of it (spread over
  // every worker when they share a queue).
  const rounds = Math.ceil((slots + queueSize) / (slots * (scaleOut ? maxInstances : 1)));
  const requestTimeoutSeconds = integer(
    "requestTimeoutSeconds",
    options.requestTimeoutSeconds ??
      Math.min(longest * rounds + 60, cloudRun ? CLOUD_RUN_MAX_TIMEOUT_SECONDS : Infinity),
    1,
    cloudRun ? CLOUD_RUN_MAX_TIMEOUT_SECONDS : undefined,
  );
  if (requestTimeoutSeconds < longest * rounds) {
    throw new RangeError(
      `requestTimeoutSeconds = ${requestTimeoutSeconds} is shorter than the longest wait of a ` +
        `streaming request: ${rounds} generations of ${longest} s (slots ${slots}, queue ` +
        `${queueSize}); raise it or make the queue shorter`,
    );
  }
  const drainSeconds = integer(
    "drainSeconds",
    options.drainSeconds ?? (cloudRun ? CLOUD_RUN_SHUTDOWN_SECONDS - 2 : longest),
    0,
    cloudRun ? CLOUD_RUN_SHUTDOWN_SECONDS - 1 : 3600,
  );
  const model = parseModelLocation(
    options.modelLocation ??
      (cloudRun ? "gs://svd-stream-models/svd_xt" : "pvc:svd-stream-models/svd_xt"),
  );
  if (cloudRun && (model.kind === "pvc" || model.kind === "init")) {
    throw new RangeError(
      `modelLocation kind "${model.kind}" is not available on Cloud Run: use gs://BUCKET/PATH or baked`,
    );
  }
  if (!cloudRun && model.kind === "gcs") {
    throw new RangeError(
      `modelLocation gs://… is for Cloud Run; on ${target} use pvc:CLAIM[/SUBPATH], init:NAME or baked`,
    );
  }
  const modelDir = options.modelDir ??
    (model.kind === "init" ? `/models/${model.weights}` : "/models/svd_xt");
  if (!modelDir.startsWith("/")) throw new RangeError(`modelDir = "${modelDir}" is not absolute`);
  if (model.kind === "init" && modelDir !== `/models/${model.weights}`) {
    throw new RangeError(
      `modelDir = "${modelDir}" must be /models/${model.weights} for modelLocation init:${model.weights}`,
    );
  }
  const defaultKey = cloudRun ? "latest" : "token";
  const gpuType = options.gpuType ?? "nvidia-l4";
  // Only where the GPU is known: a wrong value would shrink the plan of a bigger GPU.
  const typeKnown = cloudRun || options.gpuType !== undefined;
  const gpuMemoryGb = options.gpuMemoryGb ??
    (limits.gpu > 0 && typeKnown ? GPU_MEMORY_BY_TYPE[gpuType] : undefined);
  if (gpuMemoryGb !== undefined && !(gpuMemoryGb >= 1 && gpuMemoryGb <= 4096)) {
    throw new RangeError(`gpuMemoryGb = ${gpuMemoryGb} is out of range: allowed 1..4096 (GiB)`);
  }
  return {
    target,
    name,
    namespace: options.namespace,
    image,
    model,
    modelDir,
    slots,
    queueSize,
    extraConnections: integer("extraConnections", options.extraConnections ?? 2, 0),
    // Ranges as functions/server_config.ts accepts them.
    retentionSeconds: integer("retentionSeconds", options.retentionSeconds ?? 1800, 1, 604800),
    maxUploadBytes: integer(
      "maxUploadBytes",
      options.maxUploadBytes ?? 20 * 2 ** 20,
      1024,
      2 ** 30,
    ),
    maxPixels: integer("maxPixels", options.maxPixels ?? 4096 * 4096, 4096, 1e9),
    provider,
    limits,
    gpuType,
    gpuMemoryGb,
    tokenSecret: options.tokenSecret === null
      ? null
      : { name: "svd-stream-api-token", key: defaultKey, ...options.tokenSecret },
    hfTokenSecret: { name: "svd-stream-hf-token", key: "token", ...options.hfTokenSecret },
    minInstances,
    maxInstances,
    longestGenerationSeconds: longest,
    drainSeconds,
    requestTimeoutSeconds,
    startupSeconds: integer("startupSeconds", options.startupSeconds ?? (cloudRun ? 240 : 600), 10),
    port: integer("port", options.port ?? 8080, 1, 65535),
    serviceAccount: options.serviceAccount,
    nodeSelector: options.nodeSelector ??
      (limits.gpu > 0 ? { "nvidia.com/gpu.present": "true" } : {}),
    env: options.env ?? {},
    scaleOut: resolveScaleOut(options, slots),
  };
}

const SCALE_OUT_OPTIONS = [
  "redisUrl",
  "redisSecret",
  "redisImage",
  "redisMemory",
  "redisStorage",
  "apiReplicas",
  "apiLimits",
  "lagCount",
] as const;

function resolveScaleOut(options: RenderOptions, slots: number): ScaleOutOptions {
  if (options.target !== "k8s-scaleout") {
    const given = SCALE_OUT_OPTIONS.filter((key) => options[key] !== undefined);
    if (given.length > 0) {
      throw new RangeError(`${given.join(", ")}: only for target k8s-scaleout`);
    }
  }
  let redisUrl: URL | undefined;
  if (options.redisUrl !== undefined) {
    try {
      redisUrl = new URL(options.redisUrl);
    } catch { /* reported below */ }
    if (redisUrl?.protocol !== "redis:" && redisUrl?.protocol !== "rediss:") {
      throw new RangeError(
        `redisUrl = "${options.redisUrl}" is not redis://HOST[:PORT][/DB] or rediss://…`,
      );
    }
    if (redisUrl.username !== "" || redisUrl.password !== "") {
      // Not echoed: it holds a secret.
      throw new RangeError(
        "redisUrl must not hold credentials: the password comes from redisSecret (a Secret)",
      );
    }
    if (!/^(\/\d{0,2})?$/.test(redisUrl.pathname) || redisUrl.search || redisUrl.hash) {
      throw new RangeError(
        `redisUrl = "${options.redisUrl}": only a database number may follow the host (/0)`,
      );
    }
  }
  const redisImage = options.redisImage ?? "redis:7.4-alpine";
  if (!hasTagOrDigest(redisImage)) {
    throw new RangeError(`redisImage = "${redisImage}" has no tag or digest`);
  }
  return {
    redisUrl,
    redisSecret: { name: "svd-stream-redis", key: "password", ...options.redisSecret },
    redisImage,
    redisMemory: options.redisMemory ?? "4Gi",
    redisStorage: options.redisStorage ?? "10Gi",
    apiReplicas: integer("apiReplicas", options.apiReplicas ?? 2, 1, 100),
    apiLimits: { cpu: "1", memory: "2Gi", ...options.apiLimits },
    lagCount: integer("lagCount", options.lagCount ?? slots, 1, 10000),
  };
}

/**
 * Parses a `modelLocation` (see {@linkcode RenderOptions.modelLocation}).
 *
 * @throws {RangeError} for anything else.
 */
export function parseModelLocation(location: string): ModelLocation {
  let match = /^gs:\/\/([a-z0-9][-a-z0-9_.]{1,221}[a-z0-9])(?:\/(.*?))?\/?$/.exec(location);
  if (match) return { kind: "gcs", bucket: match[1], path: match[2] ?? "" };
  match = /^pvc:([a-z0-9]([-a-z0-9.]*[a-z0-9])?)(?:\/(.*?))?\/?$/.exec(location);
  if (match) return { kind: "pvc", claim: match[1], subPath: match[3] ?? "" };
  match = /^init:([A-Za-z0-9_.-]+)$/.exec(location);
  if (match) return { kind: "init", weights: match[1] };
  if (location === "baked") return { kind: "baked" };
  throw new RangeError(
    `modelLocation = "${location}" is not gs://BUCKET[/PATH], pvc:CLAIM[/SUBPATH], init:NAME or baked`,
  );
}

/** Whether an image reference pins a tag or a digest (`repo:tag`, `repo@sha256:…`). */
export function hasTagOrDigest(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  return /^[^:@]+:[\w][\w.-]{0,127}$/.test(lastSegment);
}

/** Every option `deno task deploy --set KEY=VALUE` accepts, and how its value is read. */
export const SETTABLE_OPTIONS = {
  name: "string",
  namespace: "string",
  image: "string",
  modelLocation: "string",
  modelDir: "string",
  slots: "integer",
  queueSize: "integer",
  extraConnections: "integer",
  retentionSeconds: "integer",
  maxUploadBytes: "integer",
  maxPixels: "integer",
  provider: "string",
  "limits.memory": "string",
  "limits.cpu": "string",
  "limits.gpu": "integer",
  gpuType: "string",
  gpuMemoryGb: "number",
  tokenSecret: "none",
  "tokenSecret.name": "string",
  "tokenSecret.key": "string",
  "hfTokenSecret.name": "string",
  "hfTokenSecret.key": "string",
  minInstances: "integer",
  maxInstances: "integer",
  longestGenerationSeconds: "integer",
  drainSeconds: "integer",
  requestTimeoutSeconds: "integer",
  startupSeconds: "integer",
  port: "integer",
  serviceAccount: "string",
  "nodeSelector.*": "string",
  "env.*": "string",
  redisUrl: "string",
  "redisSecret.name": "string",
  "redisSecret.key": "string",
  redisImage: "string",
  redisMemory: "string",
  redisStorage: "string",
  apiReplicas: "integer",
  "apiLimits.cpu": "string",
  "apiLimits.memory": "string",
  lagCount: "integer",
} as const;

/**
 * Applies one `KEY=VALUE` (as typed after `--set`) to `options`, returning new options:
 * `slots=2`, `limits.memory=48Gi`, `tokenSecret=none`, `nodeSelector.cloud.google.com/gke-accelerator=nvidia-l4`.
 *
 * @throws {RangeError} for an unknown key or a value of the wrong kind.
 */
export function applySetting(options: RenderOptions, setting: string): RenderOptions {
  const equals = setting.indexOf("=");
  if (equals <= 0) throw new RangeError(`--set "${setting}" is not KEY=VALUE`);
  const key = setting.slice(0, equals);
  const raw = setting.slice(equals + 1);
  const [head, ...rest] = key.split(".");
  const sub = rest.join(".");
  const pattern = Object.hasOwn(SETTABLE_OPTIONS, key)
    ? key
    : `${head}.*` in SETTABLE_OPTIONS && sub !== ""
    ? `${head}.*`
    : undefined;
  if (pattern === undefined) {
    throw new RangeError(
      `--set ${key}: unknown option; allowed ${Object.keys(SETTABLE_OPTIONS).join(", ")}`,
    );
  }
  const kind = SETTABLE_OPTIONS[pattern as keyof typeof SETTABLE_OPTIONS];
  let value: string | number | null = raw;
  if (kind === "integer") {
    value = Number(raw);
    if (raw.trim() === "" || !Number.isInteger(value)) {
      throw new RangeError(`--set ${key}=${raw}: not an integer`);
    }
  } else if (kind === "number") {
    value = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(value)) {
      throw new RangeError(`--set ${key}=${raw}: not a number`);
    }
  } else if (kind === "none") {
    if (raw !== "none") throw new RangeError(`--set ${key}=${raw}: only "none" is allowed here`);
    value = null;
  }
  if (sub === "") return { ...options, [key]: value };
  const record = options as unknown as Record<string, unknown>;
  const nested = { ...(record[head] as Record<string, unknown> | null | undefined ?? {}) };
  nested[sub] = value;
  return { ...options, [head]: nested } as RenderOptions;
}

function integer(name: string, value: number, min: number, max = Infinity): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Infinity ? `≥ ${min}` : `${min}..${max}`;
    throw new RangeError(`${name} = ${value} is out of range: allowed integers ${range}`);
  }
  return value;
}
