/**
 * The service's settings, from environment variables, checked in one place: every variable has a
 * default and an allowed range, and every bad value is reported, naming the variable, the value
 * and what is allowed, in one {@linkcode ServerConfigError}.
 *
 * | variable | default | allowed |
 * |---|---|---|
 * | `PORT` | 8000 | 0..65535 (0: any free port) |
 * | `HOST` | `0.0.0.0` | a host name or address to listen on |
 * | `MODEL_DIR` | unset: the tiny demo model (`ROLE=api`: the model the workers publish to Redis) | a converted model directory |
 * | `SLOTS` | 1 | 1..64 concurrent generations |
 * | `QUEUE_SIZE` | 8 | 0..10000 jobs waiting beyond those running |
 * | `RETENTION_SECONDS` | 3600 | 1..604800: how long results and events are kept |
 * | `API_TOKEN` | unset: no auth | a non-empty bearer token |
 * | `MAX_UPLOAD_BYTES` | 20 MiB | 1024..1073741824 |
 * | `MAX_PIXELS` | 16000000 | 4096..1000000000, width × height of the upload |
 * | `MAX_CONCURRENT_UPLOADS` | 16 | 1..10000 uploads read at once; one more gets 503 `too_many_uploads` with `Retry-After` |
 * | `BODY_IDLE_SECONDS` | 15 | 0.1..3600: an upload whose next bytes take longer gets 408 and its connection is closed |
 * | `BODY_TIMEOUT_SECONDS` | 120 | 1..86400: an upload not all received this long after its reading began gets 408 and its connection is closed |
 * | `ORT_PROVIDER` | `auto` | `auto`, `cuda`, `webgpu`, `cpu` (auto: CUDA, then CPU; an explicit one never falls back) |
 * | `DRAIN_SECONDS` | 30 | 0..3600: SIGTERM grace for running jobs |
 * | `HEARTBEAT_SECONDS` | 15 | 0.01..3600: SSE comment interval |
 * | `ROLE` | `all` | `all` (HTTP and worker in one process), `api` (HTTP only, loads no model), `worker` (runs jobs; serves only `/healthz`, `/readyz`, `/metrics`); `api` and `worker` need `REDIS_URL` |
 * | `REDIS_URL` | unset: the embedded in-process queue | `redis://[[user]:password@]host[:port][/db]` or `rediss://…`: the Redis Streams queue shared by every instance |
 * | `REDIS_CLAIM_IDLE_MS` | 30000 | 100..3600000: a job whose worker stopped heartbeating is reclaimed after this long (needs `REDIS_URL`) |
 * | `GPU_MEMORY_GB` | unset: what `nvidia-smi` reports | 1..4096 GiB of GPU memory the memory plan may use to choose the default `decoding_t`; with `nvidia-smi` too, the smaller wins (a MIG slice, a shared GPU, an API process without a GPU) |
 * | `MAX_JOB_SECONDS` | unset: no limit | 1..604800: the largest `timeout_seconds` a request may ask, and the deadline of those that ask none |
 * | `WEBHOOK_SECRET` | unset: no webhooks (`webhook` is refused) | `whsec_` + base64 of 24..64 bytes (Standard Webhooks); several, space-separated, sign with each (rotation). Never quoted in messages |
 * | `WEBHOOK_RETRY_SECONDS` | 3600 | 10..604800: how long after its event a failed delivery is retried |
 * | `WEBHOOK_ALLOW_PRIVATE` | `0` | `1`: webhooks may go to loopback and private addresses, over http too (tests only) |
 * | `WEBHOOK_SPOOL_DIR` | unset: pending deliveries in memory only | a folder where the embedded queue keeps pending deliveries across restarts (not with `REDIS_URL`: they are in Redis) |
 * | `PUBLIC_URL` | unset: relative URLs | `http(s)://host[:port][/path]`: the service's address as clients see it, for the URLs in webhook bodies |
 * | `MAX_JOB_COST` | 737280000 (SVD-XT's 25 frames at 1024×576 with 50 steps) | 1..1e15: the largest frames × width × height × steps a request may ask for |
 * | `INFERENCE_RECYCLE` | `on` | `on`, `off`: after a job larger than the model's default request that grew the inference process's memory by more than 20 %, replace the process (returning that memory; the next job waits for the reload) |
 * | `MAX_JOB_MEMORY_GB` | unset: the GPU's memory (as for `decoding_t`), or 16 on the CPU provider (22 on a GPU of unknown memory) | 0.1..65536 GiB: the largest planned peak memory of one job (GPU memory, or RAM on the CPU provider; `deno task plan`) |
 *
 * With `REDIS_URL`, `SLOTS + QUEUE_SIZE` of the instance that accepts a job bounds the jobs queued
 * and running cluster-wide (give every instance the same values); `SLOTS` is per worker process.
 *
 * @example
 * ```ts
 * import { readServerConfig } from "./server_config.ts";
 * const config = readServerConfig((name) => Deno.env.get(name));
 * config.port; // 8000
 * ```
 *
 * @module
 */

import { PROVIDER_SETTINGS, type ProviderSetting } from "../pipeline/runtime/provider.ts";
import { MAX_TIMEOUT_SECONDS } from "../pipeline/request/mod.ts";
import { parseWebhookSecrets, WebhookSecretError } from "./webhooks/webhook_signature.ts";
import { DEFAULT_MAX_JOB_COST } from "../pipeline/service/job_limits.ts";

/** Execution providers the service accepts (`ORT_PROVIDER`). */
export const SERVER_PROVIDERS = PROVIDER_SETTINGS;

/** Process roles (`ROLE`). */
export const SERVER_ROLES = ["all", "api", "worker"] as const;

/** One of {@linkcode SERVER_ROLES}. */
export type ServerRole = typeof SERVER_ROLES[number];

/** One of {@linkcode SERVER_PROVIDERS}. */
export type ServerProvider = ProviderSetting;

/** The resolved settings (every field filled). */
export interface ServerConfig {
  readonly port: number;
  readonly host: string;
  /** Undefined: the tiny demo model. */
  readonly modelDir?: string;
  readonly slots: number;
  readonly queueSize: number;
  readonly retentionSeconds: number;
  /** Undefined: no authentication. */
  readonly apiToken?: string;
  readonly maxUploadBytes: number;
  readonly maxPixels: number;
  /** Uploads read at once, at most. */
  readonly maxConcurrentUploads: number;
  /** Longest wait for an upload's next bytes, seconds. */
  readonly bodyIdleSeconds: number;
  /** Longest time to receive a whole upload, seconds. */
  readonly bodyTimeoutSeconds: number;
  readonly provider: ServerProvider;
  readonly drainSeconds: number;
  readonly heartbeatSeconds: number;
  /** `all`: HTTP and worker; `api`: HTTP only; `worker`: jobs and probes only. */
  readonly role: ServerRole;
  /** Undefined: the embedded in-process queue. */
  readonly redisUrl?: string;
  /** Idle time after which a dead worker's job is reclaimed (Redis only), in milliseconds. */
  readonly redisClaimIdleMs: number;
  /** GPU memory for the memory plan, GiB; undefined: only what `nvidia-smi` reports. */
  readonly gpuMemoryGb?: number;
  /** The largest and default `timeout_seconds`; undefined: no limit. */
  readonly maxJobSeconds?: number;
  /** The webhook signing keys (`WEBHOOK_SECRET`); undefined: no webhooks. */
  readonly webhookKeys?: Uint8Array[];
  /** How long a failed delivery is retried after its event, in seconds. */
  readonly webhookRetrySeconds: number;
  /** Webhooks may go to private addresses over http too (tests only). */
  readonly webhookAllowPrivate: boolean;
  /** Where the embedded queue keeps pending deliveries; undefined: memory only. */
  readonly webhookSpoolDir?: string;
  /** The service's address as clients see it (no trailing slash); undefined: relative URLs. */
  readonly publicUrl?: string;
  /** Largest frames × width × height × steps of one job. */
  readonly maxJobCost: number;
  /** Largest planned peak memory of one job, GiB; undefined: derived at start (see the table). */
  readonly maxJobMemoryGb?: number;
  /** Replace the inference process after a large job that grew its memory. */
  readonly inferenceRecycle: boolean;
}

/** The environment variables read, in the order they are documented. */
export const SERVER_ENV = [
  "PORT",
  "HOST",
  "MODEL_DIR",
  "SLOTS",
  "QUEUE_SIZE",
  "RETENTION_SECONDS",
  "API_TOKEN",
  "MAX_UPLOAD_BYTES",
  "MAX_PIXELS",
  "MAX_CONCURRENT_UPLOADS",
  "BODY_IDLE_SECONDS",
  "BODY_TIMEOUT_SECONDS",
  "ORT_PROVIDER",
  "DRAIN_SECONDS",
  "HEARTBEAT_SECONDS",
  "ROLE",
  "REDIS_URL",
  "REDIS_CLAIM_IDLE_MS",
  "GPU_MEMORY_GB",
  "MAX_JOB_SECONDS",
  "WEBHOOK_SECRET",
  "WEBHOOK_RETRY_SECONDS",
  "WEBHOOK_ALLOW_PRIVATE",
  "WEBHOOK_SPOOL_DIR",
  "PUBLIC_URL",
  "MAX_JOB_COST",
  "MAX_JOB_MEMORY_GB",
  "INFERENCE_RECYCLE",
] as const;

/** One or more environment variables have values the service cannot use. */
export class ServerConfigError extends Error {
  /** One line per bad variable: `SLOTS = "0" is out of range: allowed 1..64`. */
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid server configuration: ${problems.join("; ")}`);
    this.name = "ServerConfigError";
    this.problems = problems;
  }
}

/**
 * Reads and checks every variable.
 *
 * @param env looks a variable up (`(name) => Deno.env.get(name)`); undefined or unset = default
 * @throws {ServerConfigError} listing every bad variable with its allowed values
 */
export function readServerConfig(env: (name: string) => string | undefined): ServerConfig {
  const problems: string[] = [];
  const read = (name: string) => {
    const value = env(name);
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  };
  const number = (
    name: string,
    fallback: number,
    min: number,
    max: number,
    integer = true,
  ): number => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const value = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw) ? Number(raw) : NaN;
    const allowed = `allowed ${integer ? "an integer in " : ""}${min}..${max}`;
    if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
      problems.push(
        `${name} = ${JSON.stringify(raw)} is not ${
          integer ? "an integer" : "a number"
        }: ${allowed}`,
      );
    } else if (value < min || value > max) {
      problems.push(`${name} = ${JSON.stringify(raw)} is out of range: ${allowed}`);
    } else return value;
    return fallback;
  };

  const provider = (read("ORT_PROVIDER") ?? "auto").toLowerCase();
  if (!(SERVER_PROVIDERS as readonly string[]).includes(provider)) {
    problems.push(
      `ORT_PROVIDER = ${JSON.stringify(provider)} is not supported: allowed ${
        SERVER_PROVIDERS.join(" | ")
      }`,
    );
  }
  const rawToken = env("API_TOKEN");
  if (rawToken !== undefined && rawToken.trim() === "") {
    problems.push("API_TOKEN is set but empty: unset it to disable auth, or give a token");
  } else if (rawToken !== undefined && /\s/.test(rawToken.trim())) {
    problems.push("API_TOKEN contains whitespace: allowed a token without spaces");
  }
  const role = (read("ROLE") ?? "all").toLowerCase();
  if (!(SERVER_ROLES as readonly string[]).includes(role)) {
    problems.push(
      `ROLE = ${JSON.stringify(role)} is not supported: allowed ${SERVER_ROLES.join(" | ")}`,
    );
  }
  const recycle = (read("INFERENCE_RECYCLE") ?? "on").toLowerCase();
  if (recycle !== "on" && recycle !== "off") {
    problems.push(
      `INFERENCE_RECYCLE = ${JSON.stringify(recycle)} is not supported: allowed on | off`,
    );
  }
  const redisUrl = read("REDIS_URL");
  if (redisUrl !== undefined) {
    let protocol = "";
    try {
      protocol = new URL(redisUrl).protocol;
    } catch { /* reported below */ }
    if (protocol !== "redis:" && protocol !== "rediss:") {
      // Not quoted: a Redis URL may hold a password.
      problems.push(
        "REDIS_URL is not a Redis URL: allowed redis://[[user]:password@]host[:port][/db] or rediss://…",
      );
    }
  } else if (role === "api" || role === "worker") {
    problems.push(
      `ROLE = "${role}" needs REDIS_URL: separate API and worker processes share a Redis queue ` +
        "(unset ROLE for one process doing both)",
    );
  }
  let webhookKeys: Uint8Array[] | undefined;
  const secret = read("WEBHOOK_SECRET");
  if (secret !== undefined) {
    try {
      webhookKeys = parseWebhookSecrets(secret);
    } catch (error) {
      if (!(error instanceof WebhookSecretError)) throw error;
      problems.push(`WEBHOOK_SECRET: ${error.message}`); // the secret itself is never quoted
    }
  }
  const allowPrivate = (read("WEBHOOK_ALLOW_PRIVATE") ?? "0").toLowerCase();
  if (!["0", "1", "false", "true"].includes(allowPrivate)) {
    problems.push(
      `WEBHOOK_ALLOW_PRIVATE = ${JSON.stringify(allowPrivate)} is not a switch: allowed 0 | 1`,
    );
  }
  const webhookSpoolDir = read("WEBHOOK_SPOOL_DIR");
  if (webhookSpoolDir !== undefined && redisUrl !== undefined) {
    problems.push(
      "WEBHOOK_SPOOL_DIR is for the embedded queue: with REDIS_URL pending deliveries are kept " +
        "in Redis (unset it)",
    );
  }
  let publicUrl = read("PUBLIC_URL");
  if (publicUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(publicUrl);
    } catch { /* reported below */ }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.search || url.hash) {
      problems.push(
        `PUBLIC_URL = ${JSON.stringify(publicUrl)} is not a base URL: allowed ` +
          "http(s)://host[:port][/path], without query or fragment",
      );
    }
    publicUrl = publicUrl.replace(/\/+$/, "");
  }
  const config: ServerConfig = {
    port: number("PORT", 8000, 0, 65535),
    host: read("HOST") ?? "0.0.0.0",
    modelDir: read("MODEL_DIR"),
    slots: number("SLOTS", 1, 1, 64),
    queueSize: number("QUEUE_SIZE", 8, 0, 10000),
    retentionSeconds: number("RETENTION_SECONDS", 3600, 1, 604800, false),
    apiToken: rawToken?.trim() || undefined,
    maxUploadBytes: number("MAX_UPLOAD_BYTES", 20 * 1024 * 1024, 1024, 1024 ** 3),
    maxPixels: number("MAX_PIXELS", 16e6, 4096, 1e9),
    maxConcurrentUploads: number("MAX_CONCURRENT_UPLOADS", 16, 1, 10000),
    bodyIdleSeconds: number("BODY_IDLE_SECONDS", 15, 0.1, 3600, false),
    bodyTimeoutSeconds: number("BODY_TIMEOUT_SECONDS", 120, 1, 86400, false),
    provider: provider as ServerProvider,
    drainSeconds: number("DRAIN_SECONDS", 30, 0, 3600, false),
    heartbeatSeconds: number("HEARTBEAT_SECONDS", 15, 0.01, 3600, false),
    role: role as ServerRole,
    redisUrl,
    redisClaimIdleMs: number("REDIS_CLAIM_IDLE_MS", 30_000, 100, 3_600_000),
    gpuMemoryGb: read("GPU_MEMORY_GB") === undefined
      ? undefined
      : number("GPU_MEMORY_GB", 0, 1, 4096, false),
    maxJobSeconds: read("MAX_JOB_SECONDS") === undefined
      ? undefined
      : number("MAX_JOB_SECONDS", 0, 1, MAX_TIMEOUT_SECONDS),
    webhookKeys,
    webhookRetrySeconds: number("WEBHOOK_RETRY_SECONDS", 3600, 10, 604800),
    webhookAllowPrivate: allowPrivate === "1" || allowPrivate === "true",
    webhookSpoolDir,
    publicUrl,
    maxJobCost: number("MAX_JOB_COST", DEFAULT_MAX_JOB_COST, 1, 1e15),
    maxJobMemoryGb: read("MAX_JOB_MEMORY_GB") === undefined
      ? undefined
      : number("MAX_JOB_MEMORY_GB", 0, 0.1, 65536, false),
    inferenceRecycle: recycle !== "off",
  };
  if (problems.length > 0) throw new ServerConfigError(problems);
  return config;
}
