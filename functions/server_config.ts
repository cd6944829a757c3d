/**
 * The service's settings, from environment variables, checked in one place: every variable has a
 * default and an allowed range, and every bad value is reported, naming the variable, the value
 * and what is allowed, in one {@linkcode ServerConfigError}.
 *
 * | variable | default | allowed |
 * |---|---|---|
 * | `PORT` | 8000 | 0..65535 (0: any free port) |
 * | `HOST` | `0.0.0.0` | a host name or address to listen on |
 * | `MODEL_DIR` | unset: the tiny demo model | a converted model directory |
 * | `SLOTS` | 1 | 1..64 concurrent generations |
 * | `QUEUE_SIZE` | 8 | 0..10000 jobs waiting beyond those running |
 * | `RETENTION_SECONDS` | 3600 | 1..604800: how long results and events are kept |
 * | `API_TOKEN` | unset: no auth | a non-empty bearer token |
 * | `MAX_UPLOAD_BYTES` | 20 MiB | 1024..1073741824 |
 * | `MAX_PIXELS` | 16000000 | 4096..1000000000, width × height of the upload |
 * | `ORT_PROVIDER` | `auto` | `auto`, `cuda`, `webgpu`, `cpu` (auto: CUDA, then CPU; an explicit one never falls back) |
 * | `DRAIN_SECONDS` | 30 | 0..3600: SIGTERM grace for running jobs |
 * | `HEARTBEAT_SECONDS` | 15 | 0.01..3600: SSE comment interval |
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

/** Execution providers the service accepts (`ORT_PROVIDER`). */
export const SERVER_PROVIDERS = PROVIDER_SETTINGS;

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
  readonly provider: ServerProvider;
  readonly drainSeconds: number;
  readonly heartbeatSeconds: number;
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
  "ORT_PROVIDER",
  "DRAIN_SECONDS",
  "HEARTBEAT_SECONDS",
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
    provider: provider as ServerProvider,
    drainSeconds: number("DRAIN_SECONDS", 30, 0, 3600, false),
    heartbeatSeconds: number("HEARTBEAT_SECONDS", 15, 0.01, 3600, false),
  };
  if (problems.length > 0) throw new ServerConfigError(problems);
  return config;
}
