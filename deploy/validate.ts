/**
 * Checks a rendered object twice: against the published OpenAPI schema of its kind
 * (`kubernetes-models`, `@kubernetes-models/knative`), and against what svd-stream needs to run
 * well (a pinned image, the GPU limit, the probes on `/readyz` and `/healthz`, enough concurrency
 * for its queue, a grace period that covers draining, the token by reference only). The scale-out
 * objects (`@kubernetes-models/keda` for KEDA's `ScaledObject` and `TriggerAuthentication`) get
 * their own: a CPU-only API, a GPU worker, Redis with a password from a Secret, a `redis-streams`
 * trigger on the jobs stream and consumer group of functions/jobs/redis_layout.ts.
 *
 * @example
 * ```ts
 * import { render } from "./deploy/render.ts";
 * import { validateManifest } from "./deploy/validate.ts";
 * for (const { object } of render({ target: "k8s" })) validateManifest(object);
 * ```
 *
 * @module
 */

import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { Service as KnativeService } from "@kubernetes-models/knative/serving.knative.dev/v1";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { Service } from "kubernetes-models/v1";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import { hasTagOrDigest, type KubeObject } from "./render.ts";
import { GPU_RESOURCE, HEALTH_PATH, READY_PATH } from "./targets/_container.ts";
import { CONSUMER_GROUP, JOBS_STREAM, REDIS_STREAMS_TRIGGER } from "./targets/k8s_scaleout.ts";

/** A rendered object that fails its schema or svd-stream's checks; `problems` lists each. */
export class ManifestError extends Error {
  readonly problems: readonly string[];
  constructor(object: { kind?: unknown; metadata?: { name?: unknown } }, problems: string[]) {
    super(`${object.kind} "${object.metadata?.name}" is invalid: ${problems.join("; ")}`);
    this.name = "ManifestError";
    this.problems = problems;
  }
}

/** The schema-checking model of each `apiVersion/kind` svd-stream renders. Add new kinds here. */
const SCHEMAS: Record<string, (object: KubeObject) => { validate(): void }> = {
  "apps/v1/Deployment": (o) => new Deployment(o as never),
  "apps/v1/StatefulSet": (o) => new StatefulSet(o as never),
  "v1/Service": (o) => new Service(o as never),
  "policy/v1/PodDisruptionBudget": (o) => new PodDisruptionBudget(o as never),
  "serving.knative.dev/v1/Service": (o) => new KnativeService(o as never),
  "keda.sh/v1alpha1/ScaledObject": (o) => new ScaledObject(o as never),
  "keda.sh/v1alpha1/TriggerAuthentication": (o) => new TriggerAuthentication(o as never),
};

/** Whether `validateManifest` knows the schema of `apiVersion/kind`. */
export function knowsKind(apiVersion: string, kind: string): boolean {
  return Object.hasOwn(SCHEMAS, `${apiVersion}/${kind}`);
}

/**
 * Validates one object against its schema and svd-stream's checks.
 *
 * @throws {ManifestError} listing every problem found.
 */
export function validateManifest(object: KubeObject): void {
  const problems: string[] = [];
  const schema = SCHEMAS[`${object.apiVersion}/${object.kind}`];
  if (schema === undefined) {
    problems.push(`no schema for apiVersion ${object.apiVersion}, kind ${object.kind}`);
  } else {
    try {
      schema(object).validate();
    } catch (error) {
      problems.push(`schema: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const pod = podSpec(object);
  if (pod && isRedis(object)) problems.push(...checkRedisPod(pod));
  else if (pod) problems.push(...checkPod(object, pod));
  if (pod && object.kind === "Deployment") problems.push(...checkRollout(object, pod));
  if (object.apiVersion === "keda.sh/v1alpha1" && object.kind === "ScaledObject") {
    problems.push(...checkScaledObject(object));
  }
  if (object.apiVersion === "keda.sh/v1alpha1" && object.kind === "TriggerAuthentication") {
    problems.push(...checkTriggerAuthentication(object));
  }
  if (problems.length > 0) throw new ManifestError(object, problems);
}

/** The pod template of a workload (Deployment, StatefulSet, Knative Service), else undefined. */
export function podSpec(object: KubeObject): IPodSpec | undefined {
  const spec = object.spec as { template?: { spec?: IPodSpec } } | undefined;
  const isWorkload = object.kind === "Deployment" || object.kind === "StatefulSet" ||
    object.apiVersion.startsWith("serving.knative.dev/");
  return isWorkload ? spec?.template?.spec : undefined;
}

function checkPod(object: KubeObject, pod: IPodSpec): string[] {
  const problems: string[] = [];
  const knative = object.apiVersion.startsWith("serving.knative.dev/");
  const cloudRun =
    Object.keys(pod.nodeSelector ?? {}).some((k) => k.startsWith("run.googleapis.com/")) ||
    Object.keys(object.metadata.annotations ?? {}).some((k) => k.startsWith("run.googleapis.com/"));
  // The schema check reports malformed shapes; these checks read only what is well-formed.
  const containers = Array.isArray(pod.containers) ? pod.containers : [];
  const initContainers = Array.isArray(pod.initContainers) ? pod.initContainers : [];
  const server = containers.find((c) =>
    envValue(c, "ORT_PROVIDER") !== undefined || envValue(c, "ROLE") !== undefined
  );
  if (server === undefined) return [`no container has ORT_PROVIDER: not an svd-stream server`];
  const where = `container "${server.name}"`;
  // ROLE=api (k8s-scaleout) serves HTTP only and loads no model: no GPU, no MODEL_DIR.
  const role = envValue(server, "ROLE") ?? "all";
  const api = role === "api";
  if (role === "api" || role === "worker") {
    const redis = Array.isArray(server.env)
      ? server.env.find((e) => e?.name === "REDIS_URL")
      : undefined;
    if (redis === undefined) problems.push(`${where}: ROLE=${role} without REDIS_URL`);
    else if (redis.valueFrom?.secretKeyRef === undefined && !redisUrlWithoutSecret(redis.value)) {
      problems.push(
        `${where}: REDIS_URL must take its password from a secret ($(REDIS_PASSWORD) or a ` +
          "secretKeyRef), never a literal",
      );
    }
  }

  for (const container of [...containers, ...initContainers]) {
    if (typeof container.image !== "string" || !hasTagOrDigest(container.image)) {
      problems.push(
        `container "${container.name}": image "${container.image}" has no tag or digest`,
      );
    }
  }

  const provider = envValue(server, "ORT_PROVIDER");
  const gpus = Number(server.resources?.limits?.[GPU_RESOURCE] ?? 0);
  if (api) {
    if (gpus > 0) problems.push(`${where}: ROLE=api holds a ${GPU_RESOURCE} it never uses`);
  } else if (provider !== "cpu" && !(gpus >= 1)) {
    problems.push(`${where}: ORT_PROVIDER=${provider} without a ${GPU_RESOURCE} limit`);
  }
  if (cloudRun && gpus >= 1 && !pod.nodeSelector?.["run.googleapis.com/accelerator"]) {
    problems.push(`a GPU on Cloud Run needs the run.googleapis.com/accelerator node selector`);
  }

  if (!api && server.startupProbe?.httpGet?.path !== READY_PATH) {
    problems.push(`${where}: no startup probe on ${READY_PATH}`);
  }
  if (server.livenessProbe?.httpGet?.path !== HEALTH_PATH) {
    problems.push(`${where}: no liveness probe on ${HEALTH_PATH}`);
  }
  if (!knative && server.readinessProbe?.httpGet?.path !== READY_PATH) {
    problems.push(`${where}: no readiness probe on ${READY_PATH}`);
  }

  const modelDir = envValue(server, "MODEL_DIR");
  if (!modelDir && !api) problems.push(`${where}: no MODEL_DIR`);
  for (const mount of Array.isArray(server.volumeMounts) ? server.volumeMounts : []) {
    if (modelDir?.startsWith(mount.mountPath) && mount.readOnly !== true) {
      problems.push(`${where}: the model volume at ${mount.mountPath} is not mounted read-only`);
    }
  }

  for (const variable of Array.isArray(server.env) ? server.env : []) {
    if (variable.name === "API_TOKEN" && variable.valueFrom?.secretKeyRef === undefined) {
      problems.push(`${where}: API_TOKEN must come from a secret reference, never a literal`);
    }
    if (variable.name === "API_TOKEN" && role === "worker") {
      problems.push(
        `${where}: ROLE=worker serves only the probes and /metrics: it needs no API_TOKEN ` +
          "(nor access to its secret)",
      );
    }
    if (variable.name === "PORT" && (knative || cloudRun)) {
      problems.push(`${where}: PORT is set by the platform and must not be set`);
    }
  }

  const slots = Number(envValue(server, "SLOTS") ?? 1);
  const queue = Number(envValue(server, "QUEUE_SIZE") ?? 0);
  if (knative) {
    const revision = pod as IPodSpec & { containerConcurrency?: number; timeoutSeconds?: number };
    if (!(Number(revision.containerConcurrency) >= slots + queue)) {
      problems.push(
        `containerConcurrency = ${revision.containerConcurrency} is less than SLOTS + QUEUE_SIZE = ` +
          `${slots + queue}: each streaming request holds a connection while it waits`,
      );
    }
    if (!(Number(revision.timeoutSeconds) > 0)) problems.push("no request timeoutSeconds");
  } else {
    const drain = Number(envValue(server, "DRAIN_SECONDS") ?? 0);
    if (!(Number(pod.terminationGracePeriodSeconds) >= drain + 10)) {
      problems.push(
        `terminationGracePeriodSeconds = ${pod.terminationGracePeriodSeconds} does not cover ` +
          `DRAIN_SECONDS = ${drain} plus a margin of 10 s`,
      );
    }
    if (pod.securityContext?.runAsNonRoot !== true) {
      problems.push("the pod's securityContext does not set runAsNonRoot: true");
    }
  }
  return problems;
}

/**
 * A Deployment whose pods hold a GPU must free one before it starts another: with the default
 * surge, a rollout on a cluster with no spare GPU waits forever for the extra pod to schedule.
 */
function checkRollout(object: KubeObject, pod: IPodSpec): string[] {
  const containers = Array.isArray(pod.containers) ? pod.containers : [];
  if (!containers.some((c) => Number(c?.resources?.limits?.[GPU_RESOURCE] ?? 0) > 0)) return [];
  const strategy = (object.spec as {
    strategy?: { type?: unknown; rollingUpdate?: { maxSurge?: unknown } };
  }).strategy;
  if (strategy?.type === "Recreate") return [];
  const surge = strategy?.rollingUpdate?.maxSurge ?? "25%"; // Kubernetes' default
  if (surge === 0 || surge === "0" || surge === "0%") return [];
  return [
    `a GPU Deployment rolling out with maxSurge = ${surge} needs a spare GPU for the new pod and ` +
    "waits for one forever where every GPU is taken: use maxSurge 0 with maxUnavailable 1 " +
    "(or Recreate)",
  ];
}

/** Whether a `REDIS_URL` value holds no literal password (none, or `$(VAR)` expansion). */
function redisUrlWithoutSecret(value: string | undefined): boolean {
  const match = /^rediss?:\/\/(?:([^@/]*)@)?[^@]*$/.exec(value ?? "");
  if (!match) return false;
  const password = match[1]?.split(":").slice(1).join(":") ?? "";
  return password === "" || /^\$\([A-Za-z_][A-Za-z0-9_]*\)$/.test(password);
}

function isRedis(object: KubeObject): boolean {
  return object.metadata.labels?.["app.kubernetes.io/component"] === "redis";
}

/** The Redis StatefulSet of k8s-scaleout: a pinned image, non-root, the password from a Secret. */
function checkRedisPod(pod: IPodSpec): string[] {
  const problems: string[] = [];
  const containers = Array.isArray(pod.containers) ? pod.containers : [];
  const redis = containers.find((c) => c?.name === "redis");
  if (redis === undefined) return ['no container "redis"'];
  if (typeof redis.image !== "string" || !hasTagOrDigest(redis.image)) {
    problems.push(`container "redis": image "${redis.image}" has no tag or digest`);
  }
  if (pod.securityContext?.runAsNonRoot !== true) {
    problems.push("the pod's securityContext does not set runAsNonRoot: true");
  }
  const args = Array.isArray(redis.args) ? redis.args : [];
  const requirepass = args.indexOf("--requirepass");
  const password = Array.isArray(redis.env)
    ? redis.env.find((e) => e?.name === "REDIS_PASSWORD")
    : undefined;
  if (
    requirepass < 0 || args[requirepass + 1] !== "$(REDIS_PASSWORD)" ||
    password?.valueFrom?.secretKeyRef === undefined
  ) {
    problems.push(
      'container "redis": no --requirepass $(REDIS_PASSWORD) with REDIS_PASSWORD from a secret',
    );
  }
  if (args[args.indexOf("--maxmemory-policy") + 1] !== "noeviction") {
    problems.push('container "redis": --maxmemory-policy must be noeviction (the queue\'s keys)');
  }
  return problems;
}

/** A ScaledObject of k8s-scaleout: the lag trigger on the jobs stream, from zero, authenticated. */
function checkScaledObject(object: KubeObject): string[] {
  const problems: string[] = [];
  const spec = (object.spec ?? {}) as {
    minReplicaCount?: unknown;
    maxReplicaCount?: unknown;
    scaleTargetRef?: { kind?: unknown; name?: unknown };
    triggers?: unknown;
  };
  const min = spec.minReplicaCount;
  const max = spec.maxReplicaCount;
  if (!(Number.isInteger(min) && (min as number) >= 0)) {
    problems.push(`minReplicaCount = ${min}: give one (0 scales the workers to zero)`);
  }
  if (!(Number.isInteger(max) && (max as number) >= 1 && (max as number) >= (min as number))) {
    problems.push(`maxReplicaCount = ${max} is not an integer ≥ max(1, minReplicaCount)`);
  }
  if ((spec.scaleTargetRef?.kind ?? "Deployment") !== "Deployment") {
    problems.push(`scaleTargetRef.kind = ${spec.scaleTargetRef?.kind}: the worker Deployment`);
  }
  const triggers = Array.isArray(spec.triggers)
    ? spec.triggers as {
      type?: unknown;
      metadata?: Record<string, unknown>;
      authenticationRef?: { name?: unknown };
    }[]
    : [];
  const redis = triggers.filter((t) => t?.type === REDIS_STREAMS_TRIGGER);
  const lag = redis.find((t) => t.metadata?.consumerGroup !== undefined);
  if (lag === undefined) {
    problems.push(
      `no ${REDIS_STREAMS_TRIGGER} trigger on a consumer group's lag: the workers never scale`,
    );
  } else {
    const m = lag.metadata ?? {};
    if (m.consumerGroup !== CONSUMER_GROUP) {
      problems.push(
        `trigger consumerGroup = ${m.consumerGroup}, the workers read "${CONSUMER_GROUP}"`,
      );
    }
    if (!/^[1-9]\d*$/.test(String(m.lagCount))) {
      problems.push(`trigger lagCount = ${m.lagCount} is not a positive integer`);
    }
    if (!/^\d+$/.test(String(m.activationLagCount))) {
      problems.push("trigger has no activationLagCount: KEDA needs it to scale on the lag");
    }
  }
  for (const trigger of redis) {
    const m = trigger.metadata ?? {};
    // KEDA's operator resolves the address from its own namespace: a Service address must name
    // the namespace the objects go to.
    const serviceNamespace = /^[^.:]+\.([^.:]+)\.svc(\.cluster\.local)?(:\d+)?$/.exec(
      String(m.address ?? ""),
    )?.[1];
    if (serviceNamespace !== undefined && serviceNamespace !== object.metadata.namespace) {
      problems.push(
        `trigger address ${m.address} is in namespace "${serviceNamespace}", the ScaledObject in ` +
          `${object.metadata.namespace ? `"${object.metadata.namespace}"` : "no set namespace"}`,
      );
    }
    if (m.stream !== JOBS_STREAM) {
      problems.push(`trigger stream = ${m.stream}, the jobs stream is "${JOBS_STREAM}"`);
    }
    if (m.address === undefined && m.addressFromEnv === undefined && m.host === undefined) {
      problems.push(`a ${REDIS_STREAMS_TRIGGER} trigger has no address`);
    }
    if (typeof trigger.authenticationRef?.name !== "string") {
      problems.push(`a ${REDIS_STREAMS_TRIGGER} trigger has no authenticationRef (the password)`);
    }
  }
  return problems;
}

/** A TriggerAuthentication of k8s-scaleout: the Redis password from a Secret. */
function checkTriggerAuthentication(object: KubeObject): string[] {
  const refs = (object.spec as { secretTargetRef?: unknown } | undefined)?.secretTargetRef;
  const password = Array.isArray(refs)
    ? refs.find((r) => r?.parameter === "password" && r?.name && r?.key)
    : undefined;
  return password ? [] : ["no secretTargetRef for the parameter password"];
}

function envValue(container: IContainer, name: string): string | undefined {
  return Array.isArray(container?.env)
    ? container.env.find((e) => e?.name === name)?.value
    : undefined;
}
