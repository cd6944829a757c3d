/**
 * The parts every target shares: the server container (image, env, probes, resources), the model
 * volume, labels. Targets add what their platform needs around them.
 *
 * @module
 */

import type { IContainer } from "kubernetes-models/v1/Container";
import type { IEnvVar } from "kubernetes-models/v1/EnvVar";
import type { IProbe } from "kubernetes-models/v1/Probe";
import type { ISecurityContext } from "kubernetes-models/v1/SecurityContext";
import type { IVolume } from "kubernetes-models/v1/Volume";
import type { IVolumeMount } from "kubernetes-models/v1/VolumeMount";
import type { ResolvedRenderOptions } from "../render.ts";

/** The container's user and group (the Dockerfile's `USER 10001:10001`). */
export const CONTAINER_UID = 10001;

/** Cloud Run's hard limit on a request's duration. */
export const CLOUD_RUN_MAX_TIMEOUT_SECONDS = 3600;

/** Cloud Run sends SIGKILL this long after SIGTERM. */
export const CLOUD_RUN_SHUTDOWN_SECONDS = 10;

/** 200 once the model is loaded and the server takes work; 503 while loading or draining. */
export const READY_PATH = "/readyz";

/** 200 while the process is alive and its event loop answers. */
export const HEALTH_PATH = "/healthz";

/** The GPU resource name of NVIDIA's device plugin (and of Cloud Run). */
export const GPU_RESOURCE = "nvidia.com/gpu";

const MODEL_VOLUME = "model";
const PROBE_PERIOD_SECONDS = 10;

/**
 * How a Deployment of GPU pods rolls out an update: an old pod goes first (`maxSurge: 0`,
 * `maxUnavailable: 1`), so that its GPU is free for the new one. The default (one extra pod first)
 * waits forever for a spare GPU on a cluster with one GPU per node and none free. It costs
 * capacity during a rollout — one pod at a time is down while its successor starts and loads the
 * model; with one replica the service is down for that long (deploy/README.md). A CPU Deployment
 * (no GPU) keeps surging: a new pod is ready before an old one goes.
 */
export function rolloutStrategy(options: ResolvedRenderOptions, { gpu }: { gpu: boolean }): {
  type: "RollingUpdate";
  rollingUpdate: { maxSurge: number; maxUnavailable: number };
} {
  return gpu && options.limits.gpu > 0
    ? { type: "RollingUpdate", rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } }
    : { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } };
}

/** `app.kubernetes.io/*` labels of every object and pod. */
export function labels(options: ResolvedRenderOptions): Record<string, string> {
  return {
    "app.kubernetes.io/name": options.name,
    "app.kubernetes.io/component": "server",
    "app.kubernetes.io/part-of": "svd-stream",
  };
}

/** The environment the server reads (functions/server_config.ts). */
export function serverEnv(
  options: ResolvedRenderOptions,
  { setPort }: { setPort: boolean },
): IEnvVar[] {
  const env: IEnvVar[] = [
    // Cloud Run and Knative set PORT themselves and refuse a container that sets it.
    ...(setPort ? [{ name: "PORT", value: String(options.port) }] : []),
    { name: "MODEL_DIR", value: options.modelDir },
    { name: "SLOTS", value: String(options.slots) },
    { name: "QUEUE_SIZE", value: String(options.queueSize) },
    { name: "RETENTION_SECONDS", value: String(options.retentionSeconds) },
    { name: "MAX_UPLOAD_BYTES", value: String(options.maxUploadBytes) },
    { name: "MAX_PIXELS", value: String(options.maxPixels) },
    { name: "ORT_PROVIDER", value: options.provider },
    { name: "DRAIN_SECONDS", value: String(options.drainSeconds) },
    ...(options.gpuMemoryGb === undefined
      ? []
      : [{ name: "GPU_MEMORY_GB", value: String(options.gpuMemoryGb) }]),
  ];
  if (options.tokenSecret) {
    env.push({
      name: "API_TOKEN",
      valueFrom: { secretKeyRef: { name: options.tokenSecret.name, key: options.tokenSecret.key } },
    });
  }
  for (const [name, value] of Object.entries(options.env).sort(([a], [b]) => a.localeCompare(b))) {
    if (env.some((e) => e.name === name) || name === "PORT") {
      throw new RangeError(`env.${name}: set by the manifest itself; use its own option instead`);
    }
    env.push({ name, value });
  }
  return env;
}

/** An HTTP GET probe on the server's port. */
export function httpProbe(
  options: ResolvedRenderOptions,
  path: string,
  timing: { periodSeconds: number; failureThreshold: number; timeoutSeconds?: number },
): IProbe {
  return {
    httpGet: { path, port: options.port },
    periodSeconds: timing.periodSeconds,
    failureThreshold: timing.failureThreshold,
    timeoutSeconds: timing.timeoutSeconds ?? 5,
  };
}

/** `/readyz` until the model is loaded: up to `startupSeconds`. */
export function startupProbe(options: ResolvedRenderOptions): IProbe {
  return httpProbe(options, READY_PATH, {
    periodSeconds: PROBE_PERIOD_SECONDS,
    failureThreshold: Math.ceil(options.startupSeconds / PROBE_PERIOD_SECONDS),
  });
}

/**
 * `/healthz` every 30 s; three misses restart the container. Generous on purpose: a UNet call
 * runs in a worker, so the event loop answers during a generation, but a restart loses every
 * running video.
 */
export function livenessProbe(options: ResolvedRenderOptions): IProbe {
  return httpProbe(options, HEALTH_PATH, { periodSeconds: 30, failureThreshold: 3 });
}

/** `/readyz` every 5 s: a draining instance leaves the load balancer within seconds. */
export function readinessProbe(options: ResolvedRenderOptions): IProbe {
  return httpProbe(options, READY_PATH, { periodSeconds: 5, failureThreshold: 1 });
}

/** Limits (and, where the platform takes them, equal requests: a GPU node is not overcommitted). */
export function resources(
  options: ResolvedRenderOptions,
  { requests, gpu = true }: { requests: boolean; gpu?: boolean },
): IContainer["resources"] {
  const limits: Record<string, string> = { cpu: options.limits.cpu, memory: options.limits.memory };
  if (gpu && options.limits.gpu > 0) limits[GPU_RESOURCE] = String(options.limits.gpu);
  return requests ? { limits, requests: { ...limits } } : { limits };
}

/** Non-root, no privilege escalation, no capabilities. */
export function securityContext(): ISecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: CONTAINER_UID,
    runAsGroup: CONTAINER_UID,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
}

/** The model volume, its read-only mount, and the init container that fills it (`init:NAME`). */
export interface ModelVolume {
  readonly volumes: IVolume[];
  readonly mounts: IVolumeMount[];
  readonly initContainers: IContainer[];
}

/** The volume that holds `MODEL_DIR` for `options.model`. */
export function modelVolume(options: ResolvedRenderOptions): ModelVolume {
  const { model } = options;
  switch (model.kind) {
    case "baked":
      return { volumes: [], mounts: [], initContainers: [] };
    case "gcs":
      return {
        volumes: [{
          name: MODEL_VOLUME,
          csi: {
            driver: "gcsfuse.run.googleapis.com",
            readOnly: true,
            volumeAttributes: {
              bucketName: model.bucket,
              ...(model.path ? { mountOptions: `only-dir=${model.path}` } : {}),
            },
          },
        }],
        mounts: [{ name: MODEL_VOLUME, mountPath: options.modelDir, readOnly: true }],
        initContainers: [],
      };
    case "pvc":
      return {
        volumes: [{
          name: MODEL_VOLUME,
          persistentVolumeClaim: { claimName: model.claim, readOnly: true },
        }],
        mounts: [{
          name: MODEL_VOLUME,
          mountPath: options.modelDir,
          readOnly: true,
          ...(model.subPath ? { subPath: model.subPath } : {}),
        }],
        initContainers: [],
      };
    case "init": {
      // fp16 for a GPU (half the memory, tensor cores), fp32 for ORT's CPU provider.
      const dtype = options.provider === "cpu" ? "fp32" : "fp16";
      return {
        volumes: [{ name: MODEL_VOLUME, emptyDir: { sizeLimit: "24Gi" } }],
        mounts: [{ name: MODEL_VOLUME, mountPath: "/models", readOnly: true }],
        initContainers: [{
          name: "weights",
          image: options.image,
          // Downloads and verifies the pinned checkpoint, converts it, then drops the checkpoint.
          command: [
            "sh",
            "-c",
            'deno task weights "$0" --models /models --dtype "$1" && rm -f /models/*.safetensors',
            model.weights,
            dtype,
          ],
          env: [{
            name: "HF_TOKEN",
            valueFrom: {
              secretKeyRef: { name: options.hfTokenSecret.name, key: options.hfTokenSecret.key },
            },
          }],
          resources: resources(options, { requests: true, gpu: false }),
          securityContext: securityContext(),
          volumeMounts: [{ name: MODEL_VOLUME, mountPath: "/models" }],
        }],
      };
    }
  }
}

/** The svd-stream server container. */
export function serverContainer(
  options: ResolvedRenderOptions,
  platform: {
    /** `http1` on Cloud Run and Knative (they route HTTP/1 by this name), `http` elsewhere. */
    portName: string;
    /** Set `PORT` (not on Cloud Run and Knative, which set it). */
    setPort: boolean;
    readiness: boolean;
    requests: boolean;
    security: boolean;
  },
  mounts: IVolumeMount[],
): IContainer {
  return {
    name: "server",
    image: options.image,
    ports: [{ name: platform.portName, containerPort: options.port }],
    env: serverEnv(options, { setPort: platform.setPort }),
    resources: resources(options, { requests: platform.requests }),
    startupProbe: startupProbe(options),
    ...(platform.readiness ? { readinessProbe: readinessProbe(options) } : {}),
    livenessProbe: livenessProbe(options),
    ...(platform.security ? { securityContext: securityContext() } : {}),
    ...(mounts.length > 0 ? { volumeMounts: mounts } : {}),
  };
}

/**
 * Bytes of a Kubernetes memory quantity (`32Gi`, `16G`, `16384Mi`, `1e9`).
 *
 * @throws {RangeError} for anything else.
 */
export function quantityBytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?(?:e\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity);
  if (!match) throw new RangeError(`"${quantity}" is not a memory quantity like 32Gi`);
  const units: Record<string, number> = {
    "": 1,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Number(match[1]) * units[match[2] ?? ""];
}

/**
 * CPUs of a Kubernetes CPU quantity (`8`, `4000m`, `0.5`).
 *
 * @throws {RangeError} for anything else.
 */
export function quantityCpus(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(m)?$/.exec(quantity);
  if (!match) throw new RangeError(`"${quantity}" is not a CPU quantity like 8 or 4000m`);
  return Number(match[1]) / (match[2] ? 1000 : 1);
}
