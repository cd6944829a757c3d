/**
 * Scaled-out Kubernetes (`k8s-scaleout`): the HTTP API and the GPU workers run apart and share one
 * Redis (the job queue of functions/jobs/redis_job_queue.ts), and KEDA scales the workers on that
 * queue, down to zero.
 *
 * | object                                   | what                                                       |
 * | ---------------------------------------- | ---------------------------------------------------------- |
 * | Deployment `<name>-worker`               | `ROLE=worker`, one GPU each; replicas owned by KEDA        |
 * | Deployment `<name>-api`                  | `ROLE=api`, CPU only, ≥ 2 replicas, no model of its own    |
 * | Service `<name>-api`                     | ClusterIP :80 in front of the API                          |
 * | PodDisruptionBudget `<name>-api`         | node drains keep all but one API pod                       |
 * | StatefulSet + Service `<name>-redis`     | Redis 7 with a password and a volume (not with `redisUrl`) |
 * | TriggerAuthentication `<name>-redis`     | KEDA reads the Redis password from the same Secret         |
 * | ScaledObject `<name>-worker`             | `redis-streams` triggers on `svd:jobs` / group `workers`   |
 *
 * The API gets no `MODEL_DIR` and no model volume: it checks requests against the model a worker
 * publishes to Redis when it starts (its model.json and its default `decoding_t`;
 * functions/jobs/published_model.ts), and is ready once one has (and Redis answers). The key stays
 * when the workers scale to zero. On a fresh install the worker Deployment starts with one replica
 * (it has no `replicas` field), and the ScaledObject's `initialCooldownPeriod` keeps it up for
 * {@linkcode INITIAL_COOLDOWN_SECONDS} before KEDA may scale it to zero, so that it starts and
 * publishes.
 *
 * `REDIS_URL` is built by Kubernetes' dependent-variable expansion: `REDIS_PASSWORD` comes from the
 * Secret (`secretKeyRef`), then `REDIS_URL = redis://:$(REDIS_PASSWORD)@HOST:PORT/DB`. The password
 * is therefore pasted into a URL unencoded: use a URL-safe one (`openssl rand -hex 32`).
 *
 * @module
 */

import type { IScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import type { ITriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IStatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IEnvVar } from "kubernetes-models/v1/EnvVar";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { IService } from "kubernetes-models/v1/Service";
import { redisLayout } from "../../functions/jobs/redis_layout.ts";
import type { KubeObject, ResolvedRenderOptions } from "../render.ts";
import {
  CONTAINER_UID,
  GPU_RESOURCE,
  labels,
  livenessProbe,
  modelVolume,
  quantityBytes,
  readinessProbe,
  rolloutStrategy,
  securityContext,
  serverContainer,
  serverEnv,
} from "./_container.ts";
import { GRACE_MARGIN_SECONDS } from "./k8s.ts";

/** The jobs stream KEDA watches: RedisJobQueue's default prefix `svd` (redis_layout.ts). */
export const JOBS_STREAM = redisLayout("svd").jobs;

/** The consumer group the workers read the jobs stream with (RedisJobQueue's default). */
export const CONSUMER_GROUP = "workers";

/** The trigger type of KEDA's Redis Streams scaler (standalone or Sentinel Redis). */
export const REDIS_STREAMS_TRIGGER = "redis-streams";

/**
 * How long KEDA leaves a new ScaledObject's workers up before it may scale them to zero: time for
 * the first worker to pull its image, start and publish its model (KEDA ≥ 2.14).
 */
export const INITIAL_COOLDOWN_SECONDS = 900;

/** The Redis port of the rendered StatefulSet. */
const REDIS_PORT = 6379;

/** The official image runs as `redis` (uid and gid 999). */
const REDIS_UID = 999;

/** Labels of one component (`api`, `worker`, `redis`); the selector is name + component. */
export function componentLabels(
  options: ResolvedRenderOptions,
  component: "api" | "worker" | "redis",
): Record<string, string> {
  return { ...labels(options), "app.kubernetes.io/component": component };
}

function selector(options: ResolvedRenderOptions, component: "api" | "worker" | "redis") {
  return {
    "app.kubernetes.io/name": options.name,
    "app.kubernetes.io/component": component,
  };
}

function meta(options: ResolvedRenderOptions, name: string, component: "api" | "worker" | "redis") {
  return { name, namespace: namespaceOf(options), labels: componentLabels(options, component) };
}

/**
 * The namespace of every object: KEDA's operator dials Redis from its own namespace, so the
 * address names the namespace, and objects and address must agree. `--set namespace`, else what
 * `deno task deploy` found as kubectl's current namespace, else `default` — written into every
 * object, so that `kubectl apply -n other` refuses them instead of KEDA dialling the wrong Redis.
 */
export function namespaceOf(options: ResolvedRenderOptions): string {
  return options.namespace ?? "default";
}

/** Where Redis is: host, port, database, TLS; the StatefulSet's Service unless `redisUrl`. */
export function redisEndpoint(options: ResolvedRenderOptions): {
  host: string;
  /** The host as KEDA's operator (in its own namespace) reaches it. */
  kedaHost: string;
  port: number;
  database: number;
  tls: boolean;
} {
  const url = options.scaleOut.redisUrl;
  if (url) {
    const tls = url.protocol === "rediss:";
    return {
      host: url.hostname,
      kedaHost: url.hostname,
      port: Number(url.port || REDIS_PORT),
      database: Number(url.pathname.slice(1) || 0),
      tls,
    };
  }
  const host = `${options.name}-redis`;
  return {
    host,
    kedaHost: `${host}.${namespaceOf(options)}.svc.cluster.local`,
    port: REDIS_PORT,
    database: 0,
    tls: false,
  };
}

/** `REDIS_PASSWORD` from the Secret, then `REDIS_URL` built from it (`$(VAR)` expansion). */
export function redisEnv(options: ResolvedRenderOptions): IEnvVar[] {
  const { host, port, database, tls } = redisEndpoint(options);
  const secret = options.scaleOut.redisSecret;
  return [
    {
      name: "REDIS_PASSWORD",
      valueFrom: { secretKeyRef: { name: secret.name, key: secret.key } },
    },
    {
      name: "REDIS_URL",
      value: `${tls ? "rediss" : "redis"}://:$(REDIS_PASSWORD)@${host}:${port}/${database}`,
    },
  ];
}

function podSecurity(): IPodSpec["securityContext"] {
  return {
    runAsNonRoot: true,
    runAsUser: CONTAINER_UID,
    runAsGroup: CONTAINER_UID,
    fsGroup: CONTAINER_UID,
    seccompProfile: { type: "RuntimeDefault" },
  };
}

/** Renders the worker and API Deployments, Redis (unless `redisUrl`), and the KEDA objects. */
export function renderK8sScaleout(options: ResolvedRenderOptions): KubeObject[] {
  const so = options.scaleOut;
  const workerName = `${options.name}-worker`;
  const apiName = `${options.name}-api`;
  const redisName = `${options.name}-redis`;
  const common = {
    ...(options.serviceAccount ? { serviceAccountName: options.serviceAccount } : {}),
    // SIGTERM starts draining: the worker finishes its jobs for DRAIN_SECONDS (a job it cannot
    // finish is reclaimed by another worker after REDIS_CLAIM_IDLE_MS); the API ends its streams.
    terminationGracePeriodSeconds: options.drainSeconds + GRACE_MARGIN_SECONDS,
    securityContext: podSecurity(),
  };

  // --- GPU workers: ROLE=worker, the model read-only, replicas owned by KEDA (0..maxInstances).
  const model = modelVolume(options);
  const workerBase = serverContainer(options, {
    portName: "http",
    setPort: true,
    readiness: true,
    requests: true,
    security: true,
  }, [...model.mounts, { name: "scratch", mountPath: "/tmp" }]);
  const worker: IContainer = {
    ...workerBase,
    name: "worker",
    env: [
      { name: "ROLE", value: "worker" },
      ...redisEnv(options),
      // A worker serves only the probes and /metrics, which need no token.
      ...workerBase.env!.filter((e) => e.name !== "API_TOKEN"),
    ],
  };
  const workerDeployment: IDeployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta(options, workerName, "worker"),
    spec: {
      // No `replicas`: KEDA's HPA owns it, and an apply must not reset it.
      selector: { matchLabels: selector(options, "worker") },
      // An old worker frees its GPU before its successor starts; queued jobs wait in Redis.
      strategy: rolloutStrategy(options, { gpu: true }),
      template: {
        metadata: { labels: componentLabels(options, "worker") },
        spec: {
          ...common,
          ...(Object.keys(options.nodeSelector).length > 0
            ? { nodeSelector: { ...options.nodeSelector } }
            : {}),
          ...(options.limits.gpu > 0
            ? { tolerations: [{ key: GPU_RESOURCE, operator: "Exists", effect: "NoSchedule" }] }
            : {}),
          ...(model.initContainers.length > 0 ? { initContainers: model.initContainers } : {}),
          containers: [worker],
          volumes: [...model.volumes, { name: "scratch", emptyDir: { sizeLimit: "20Gi" } }],
        },
      },
    },
  };

  // --- API: ROLE=api, no model, no GPU; ready on /readyz once Redis answers and a worker has
  // published its model there.
  const apiResources = { cpu: so.apiLimits.cpu, memory: so.apiLimits.memory };
  const api: IContainer = {
    name: "api",
    image: options.image,
    ports: [{ name: "http", containerPort: options.port }],
    env: [
      { name: "ROLE", value: "api" },
      ...redisEnv(options),
      // The API loads no model (it takes the one the workers publish): no MODEL_DIR, no
      // ORT_PROVIDER.
      ...serverEnv(options, { setPort: true }).filter((e) =>
        e.name !== "MODEL_DIR" && e.name !== "ORT_PROVIDER"
      ),
    ],
    resources: { requests: { ...apiResources }, limits: { ...apiResources } },
    readinessProbe: readinessProbe(options),
    livenessProbe: livenessProbe(options),
    securityContext: securityContext(),
    volumeMounts: [{ name: "scratch", mountPath: "/tmp" }],
  };
  const apiDeployment: IDeployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta(options, apiName, "api"),
    spec: {
      replicas: so.apiReplicas,
      selector: { matchLabels: selector(options, "api") },
      strategy: rolloutStrategy(options, { gpu: false }),
      template: {
        metadata: { labels: componentLabels(options, "api") },
        spec: {
          ...common,
          containers: [api],
          // Uploads are buffered here before they go to Redis.
          volumes: [{ name: "scratch", emptyDir: { sizeLimit: "2Gi" } }],
        },
      },
    },
  };
  const apiService: IService = {
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(options, apiName, "api"),
    spec: {
      type: "ClusterIP",
      selector: selector(options, "api"),
      ports: [{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }],
    },
  };
  const apiBudget: IPodDisruptionBudget = {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: meta(options, apiName, "api"),
    spec: { maxUnavailable: 1, selector: { matchLabels: selector(options, "api") } },
  };

  // --- KEDA. Metadata names as in KEDA's Redis Streams scaler docs
  // (https://keda.sh/docs/2.13/scalers/redis-streams/): `address`, `stream`, `consumerGroup`,
  // `lagCount` + `activationLagCount` (consumer-group lag, XINFO GROUPS, Redis ≥ 7: the mode that
  // scales from 0), `streamLength` (XLEN, without `consumerGroup`), `databaseIndex`, `enableTLS`;
  // the password from a TriggerAuthentication's `secretTargetRef` parameter `password`.
  const endpoint = redisEndpoint(options);
  const connection: Record<string, string> = {
    address: `${endpoint.kedaHost}:${endpoint.port}`,
    stream: JOBS_STREAM,
    ...(endpoint.database !== 0 ? { databaseIndex: String(endpoint.database) } : {}),
    ...(endpoint.tls ? { enableTLS: "true" } : {}),
  };
  const authenticationRef = { name: redisName };
  const triggerAuth: ITriggerAuthentication = {
    apiVersion: "keda.sh/v1alpha1",
    kind: "TriggerAuthentication",
    metadata: meta(options, redisName, "redis"),
    spec: {
      secretTargetRef: [{
        parameter: "password",
        name: so.redisSecret.name,
        key: so.redisSecret.key,
      }],
    },
  };
  const scaledObject: IScaledObject = {
    apiVersion: "keda.sh/v1alpha1",
    kind: "ScaledObject",
    metadata: meta(options, workerName, "worker"),
    spec: {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: workerName },
      minReplicaCount: options.minInstances,
      maxReplicaCount: options.maxInstances,
      pollingInterval: 15,
      // Idle this long (no job queued or running) before the last worker goes.
      cooldownPeriod: 300,
      // A fresh install's first worker publishes the model the API needs: let it start first.
      initialCooldownPeriod: INITIAL_COOLDOWN_SECONDS,
      advanced: {
        horizontalPodAutoscalerConfig: {
          behavior: {
            // The HPA picks which pod to remove and may pick a busy one (it drains for
            // DRAIN_SECONDS, then its job is reclaimed): scale down slowly, one pod a minute.
            scaleDown: {
              stabilizationWindowSeconds: 300,
              policies: [{ type: "Pods", value: 1, periodSeconds: 60 }],
            },
          },
        },
      },
      triggers: [
        {
          // Jobs queued and not yet delivered to any worker: one replica per `lagCount` of them
          // (default SLOTS: a worker takes SLOTS jobs at once). activationLagCount "0": the first
          // queued job wakes the deployment from zero.
          type: REDIS_STREAMS_TRIGGER,
          name: "queued",
          metadata: {
            ...connection,
            consumerGroup: CONSUMER_GROUP,
            lagCount: String(so.lagCount),
            activationLagCount: "0",
          },
          authenticationRef,
        },
        {
          // Jobs queued or running: the queue XDELs an entry when its job leaves, so XLEN is
          // exactly that. Keeps busy workers up once the lag is 0 (the HPA takes the larger of the
          // two), and covers a lag Redis reports as unknown (NULL, read as 0) after a queued job
          // was cancelled (XDEL ahead of the group's last-delivered-id).
          type: REDIS_STREAMS_TRIGGER,
          name: "jobs",
          metadata: { ...connection, streamLength: String(options.slots) },
          authenticationRef,
        },
      ],
    },
  };

  // A JSON copy: objects shared between fields would become YAML anchors and aliases.
  return JSON.parse(JSON.stringify([
    workerDeployment,
    apiDeployment,
    apiService,
    apiBudget,
    ...(so.redisUrl ? [] : renderRedis(options, redisName)),
    triggerAuth,
    scaledObject,
  ])) as KubeObject[];
}

/** A single Redis 7 with a password, append-only persistence, no eviction, and its Service. */
function renderRedis(options: ResolvedRenderOptions, name: string): [IStatefulSet, IService] {
  const so = options.scaleOut;
  const secret = { secretKeyRef: { name: so.redisSecret.name, key: so.redisSecret.key } };
  const memory = so.redisMemory;
  // Leave a quarter of the pod's memory for copy-on-write during AOF rewrites.
  const maxMemory = Math.floor(quantityBytes(memory) * 0.75);
  const probe = (periodSeconds: number, failureThreshold: number) => ({
    // redis-cli exits 0 on an error reply (NOAUTH, LOADING): look for the PONG.
    exec: { command: ["sh", "-c", "redis-cli ping | grep -q PONG"] },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 5,
  });
  const statefulSet: IStatefulSet = {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: meta(options, name, "redis"),
    spec: {
      serviceName: name,
      replicas: 1,
      selector: { matchLabels: selector(options, "redis") },
      template: {
        metadata: { labels: componentLabels(options, "redis") },
        spec: {
          securityContext: {
            runAsNonRoot: true,
            runAsUser: REDIS_UID,
            runAsGroup: REDIS_UID,
            fsGroup: REDIS_UID,
            seccompProfile: { type: "RuntimeDefault" },
          },
          terminationGracePeriodSeconds: 30,
          containers: [{
            name: "redis",
            image: so.redisImage,
            command: ["redis-server"],
            args: [
              "--requirepass",
              "$(REDIS_PASSWORD)",
              "--appendonly",
              "yes",
              "--dir",
              "/data",
              "--maxmemory",
              String(maxMemory),
              // The queue's keys must never be evicted: a full Redis refuses writes instead.
              "--maxmemory-policy",
              "noeviction",
            ],
            env: [
              { name: "REDIS_PASSWORD", valueFrom: secret },
              // redis-cli (the probes) reads its password from here.
              { name: "REDISCLI_AUTH", valueFrom: secret },
            ],
            ports: [{ name: "redis", containerPort: REDIS_PORT }],
            resources: {
              requests: { cpu: "500m", memory },
              limits: { memory },
            },
            readinessProbe: probe(5, 2),
            livenessProbe: probe(15, 4),
            securityContext: {
              ...securityContext(),
              runAsUser: REDIS_UID,
              runAsGroup: REDIS_UID,
            },
            volumeMounts: [{ name: "data", mountPath: "/data" }],
          }],
        },
      },
      volumeClaimTemplates: [{
        metadata: { name: "data" },
        spec: {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: so.redisStorage } },
        },
      }],
    },
  };
  const service: IService = {
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(options, name, "redis"),
    spec: {
      clusterIP: "None",
      selector: selector(options, "redis"),
      ports: [{ name: "redis", port: REDIS_PORT, targetPort: "redis", protocol: "TCP" }],
    },
  };
  return [statefulSet, service];
}
