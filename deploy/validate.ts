/**
 * Checks a rendered object twice: against the published OpenAPI schema of its kind
 * (`kubernetes-models`, `@kubernetes-models/knative`), and against what svd-stream needs to run
 * well (a pinned image, the GPU limit, the probes on `/readyz` and `/healthz`, enough concurrency
 * for its queue, a grace period that covers draining, the token by reference only).
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

import { Service as KnativeService } from "@kubernetes-models/knative/serving.knative.dev/v1";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { Service } from "kubernetes-models/v1";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import { hasTagOrDigest, type KubeObject } from "./render.ts";
import { GPU_RESOURCE, HEALTH_PATH, READY_PATH } from "./targets/_container.ts";

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
  if (pod) problems.push(...checkPod(object, pod));
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
  const server = containers.find((c) => envValue(c, "ORT_PROVIDER") !== undefined);
  if (server === undefined) return [`no container has ORT_PROVIDER: not an svd-stream server`];
  const where = `container "${server.name}"`;

  for (const container of [...containers, ...initContainers]) {
    if (typeof container.image !== "string" || !hasTagOrDigest(container.image)) {
      problems.push(
        `container "${container.name}": image "${container.image}" has no tag or digest`,
      );
    }
  }

  const provider = envValue(server, "ORT_PROVIDER");
  const gpus = Number(server.resources?.limits?.[GPU_RESOURCE] ?? 0);
  if (provider !== "cpu" && !(gpus >= 1)) {
    problems.push(`${where}: ORT_PROVIDER=${provider} without a ${GPU_RESOURCE} limit`);
  }
  if (cloudRun && gpus >= 1 && !pod.nodeSelector?.["run.googleapis.com/accelerator"]) {
    problems.push(`a GPU on Cloud Run needs the run.googleapis.com/accelerator node selector`);
  }

  if (server.startupProbe?.httpGet?.path !== READY_PATH) {
    problems.push(`${where}: no startup probe on ${READY_PATH}`);
  }
  if (server.livenessProbe?.httpGet?.path !== HEALTH_PATH) {
    problems.push(`${where}: no liveness probe on ${HEALTH_PATH}`);
  }
  if (!knative && server.readinessProbe?.httpGet?.path !== READY_PATH) {
    problems.push(`${where}: no readiness probe on ${READY_PATH}`);
  }

  const modelDir = envValue(server, "MODEL_DIR");
  if (!modelDir) problems.push(`${where}: no MODEL_DIR`);
  for (const mount of Array.isArray(server.volumeMounts) ? server.volumeMounts : []) {
    if (modelDir?.startsWith(mount.mountPath) && mount.readOnly !== true) {
      problems.push(`${where}: the model volume at ${mount.mountPath} is not mounted read-only`);
    }
  }

  for (const variable of Array.isArray(server.env) ? server.env : []) {
    if (variable.name === "API_TOKEN" && variable.valueFrom?.secretKeyRef === undefined) {
      problems.push(`${where}: API_TOKEN must come from a secret reference, never a literal`);
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

function envValue(container: IContainer, name: string): string | undefined {
  return Array.isArray(container?.env)
    ? container.env.find((e) => e?.name === name)?.value
    : undefined;
}
