/**
 * deploy/render.ts: every target's objects validate against the published schemas
 * (kubernetes-models, @kubernetes-models/knative) and svd-stream's own checks; each option lands
 * where the platform reads it; and a manifest that loses its GPU limit, its probes or its image tag
 * is refused.
 *
 * Run: deno test --allow-read --allow-env tests/deploy/render_test.ts
 */

import assert from "node:assert/strict";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { IService } from "kubernetes-models/v1/Service";
import {
  applySetting,
  GPU_MEMORY_BY_TYPE,
  hasTagOrDigest,
  type KubeObject,
  parseModelLocation,
  render,
  type RenderOptions,
  resolveRenderOptions,
  type Target,
  TARGETS,
} from "../../deploy/render.ts";
import { GRACE_MARGIN_SECONDS } from "../../deploy/targets/k8s.ts";
import { ManifestError, podSpec, validateManifest } from "../../deploy/validate.ts";

const ALL_TARGETS = Object.keys(TARGETS) as Target[];
const IMAGE = "europe-docker.pkg.dev/acme/svd/svd-stream:1.2.3";

function objects(options: RenderOptions): KubeObject[] {
  return render(options).map((m) => m.object);
}

function workload(
  options: RenderOptions,
): { object: KubeObject; pod: IPodSpec; server: IContainer } {
  const object = objects(options).find((o) => podSpec(o) !== undefined)!;
  const pod = podSpec(object)!;
  return { object, pod, server: pod.containers[0] };
}

function env(container: IContainer): Record<string, unknown> {
  return Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
}

function assertRefused(object: KubeObject, pattern: RegExp) {
  assert.throws(
    () => validateManifest(object),
    (e: Error) => {
      assert.ok(e instanceof ManifestError, `${e.name}: ${e.message}`);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

/** A deep copy of the first workload of `target`, changed by `mutate`. */
function mutated(
  target: Target,
  mutate: (pod: IPodSpec, server: IContainer, o: KubeObject) => void,
) {
  const object = structuredClone(workload({ target, image: IMAGE }).object) as KubeObject;
  const pod = podSpec(object)!;
  mutate(pod, pod.containers[0], object);
  return object;
}

for (const target of ALL_TARGETS) {
  Deno.test(`${target}: every object validates against its schema and svd-stream's checks`, () => {
    for (
      const options of [
        { target },
        { target, image: IMAGE, slots: 2, queueSize: 6, minInstances: 1, maxInstances: 5 },
        { target, modelLocation: "baked", tokenSecret: null },
        { target, limits: { gpu: 0, cpu: "16", memory: "64Gi" } },
      ] satisfies RenderOptions[]
    ) {
      const manifests = render(options);
      assert.ok(manifests.length > 0);
      for (const { object } of manifests) validateManifest(object);
      const text = JSON.stringify(manifests);
      assert.match(text, /\/readyz/);
      assert.match(text, /\/healthz/);
      if (options.limits?.gpu !== 0) assert.match(text, /"nvidia\.com\/gpu":"1"/);
    }
  });

  Deno.test(`${target}: a manifest without its GPU limit is refused`, () => {
    assertRefused(
      mutated(target, (_, server) => delete server.resources!.limits!["nvidia.com/gpu"]),
      /ORT_PROVIDER=cuda without a nvidia\.com\/gpu limit/,
    );
  });

  Deno.test(`${target}: a manifest without its probes is refused`, () => {
    assertRefused(
      mutated(target, (_, server) => delete server.startupProbe),
      /no startup probe on \/readyz/,
    );
    assertRefused(
      mutated(target, (_, server) => delete server.livenessProbe),
      /no liveness probe on \/healthz/,
    );
    assertRefused(
      mutated(target, (_, server) => server.livenessProbe!.httpGet!.path = "/"),
      /no liveness probe on \/healthz/,
    );
  });

  Deno.test(`${target}: a manifest whose image lost its tag is refused`, () => {
    assertRefused(
      mutated(target, (_, server) => server.image = "europe-docker.pkg.dev/acme/svd/svd-stream"),
      /image "europe-docker\.pkg\.dev\/acme\/svd\/svd-stream" has no tag or digest/,
    );
  });

  Deno.test(`${target}: a manifest that breaks the published schema is refused`, () => {
    assertRefused(
      mutated(target, (_, server) => delete (server as { name?: string }).name),
      /schema: .*name/,
    );
    assertRefused(
      mutated(target, (pod) => (pod.containers as unknown) = "server"),
      /schema: .*containers/,
    );
  });

  Deno.test(`${target}: API_TOKEN comes from a secret reference only`, () => {
    // The HTTP API's pods (k8s-scaleout: the api Deployment; its workers have no token).
    const serving = (options: RenderOptions) =>
      objects(options).find((o) => {
        const e = env(podSpec(o)?.containers[0] ?? {} as IContainer);
        return (e.ORT_PROVIDER !== undefined || e.ROLE !== undefined) && e.ROLE !== "worker";
      })!;
    const object = structuredClone(serving({ target, image: IMAGE }));
    const server = podSpec(object)!.containers[0];
    const token = server.env!.find((e) => e.name === "API_TOKEN")!;
    assert.equal(token.value, undefined);
    assert.equal(token.valueFrom?.secretKeyRef?.name, "svd-stream-api-token");
    server.env!.splice(server.env!.indexOf(token), 1, { name: "API_TOKEN", value: "hunter2" });
    assertRefused(object, /API_TOKEN must come from a secret reference/);
    const untokened = serving({ target, tokenSecret: null });
    assert.equal(env(podSpec(untokened)!.containers[0]).API_TOKEN, undefined);
  });

  Deno.test(`${target}: the server's environment carries every setting`, () => {
    const { server } = workload({
      target,
      slots: 2,
      queueSize: 3,
      retentionSeconds: 60,
      maxUploadBytes: 10000,
      maxPixels: 20000,
      drainSeconds: 5,
      env: { LOG_LEVEL: "debug" },
    });
    const e = env(server);
    assert.equal(e.MODEL_DIR, "/models/svd_xt");
    assert.equal(e.SLOTS, "2");
    assert.equal(e.QUEUE_SIZE, "3");
    assert.equal(e.RETENTION_SECONDS, "60");
    assert.equal(e.MAX_UPLOAD_BYTES, "10000");
    assert.equal(e.MAX_PIXELS, "20000");
    assert.equal(e.ORT_PROVIDER, "cuda");
    assert.equal(e.DRAIN_SECONDS, "5");
    assert.equal(e.LOG_LEVEL, "debug");
    assert.equal(env(workload({ target, limits: { gpu: 0 } }).server).ORT_PROVIDER, "cpu");
  });
}

Deno.test("cloudrun: a Knative Service with one L4, CPU always allocated, no PORT, the bucket read-only", () => {
  const { object, pod, server } = workload({
    target: "cloudrun",
    image: IMAGE,
    modelLocation: "gs://acme-models/svd/svd_xt",
    minInstances: 1,
    maxInstances: 4,
  });
  assert.equal(object.apiVersion, "serving.knative.dev/v1");
  assert.equal(object.kind, "Service");
  const template =
    (object.spec as { template: { metadata: { annotations: Record<string, string> } } })
      .template;
  const annotations = template.metadata.annotations;
  assert.equal(annotations["run.googleapis.com/cpu-throttling"], "false");
  assert.equal(annotations["autoscaling.knative.dev/minScale"], "1");
  assert.equal(annotations["autoscaling.knative.dev/maxScale"], "4");
  assert.deepEqual(pod.nodeSelector, { "run.googleapis.com/accelerator": "nvidia-l4" });
  assert.equal(server.resources?.limits?.["nvidia.com/gpu"], "1");
  assert.equal(server.startupProbe?.httpGet?.path, "/readyz");
  assert.equal(server.livenessProbe?.httpGet?.path, "/healthz");
  assert.equal(env(server).PORT, undefined, "Cloud Run sets PORT");
  assert.deepEqual(pod.volumes, [{
    name: "model",
    csi: {
      driver: "gcsfuse.run.googleapis.com",
      readOnly: true,
      volumeAttributes: { bucketName: "acme-models", mountOptions: "only-dir=svd/svd_xt" },
    },
  }]);
  assert.deepEqual(server.volumeMounts, [{
    name: "model",
    mountPath: "/models/svd_xt",
    readOnly: true,
  }]);
  // Cloud Run labels are Google Cloud labels: no "/" in keys.
  assert.ok(Object.keys(object.metadata.labels ?? {}).every((k) => !k.includes("/")));
});

Deno.test("cloudrun and knative: concurrency holds slots + queue streaming requests; the timeout outlasts the queue", () => {
  for (const target of ["cloudrun", "knative"] as const) {
    const { pod } = workload({ target, slots: 2, queueSize: 5, longestGenerationSeconds: 200 });
    const revision = pod as IPodSpec & { containerConcurrency: number; timeoutSeconds: number };
    assert.ok(
      revision.containerConcurrency >= 2 + 5,
      `${target}: ${revision.containerConcurrency}`,
    );
    // The last of 7 admitted requests starts after ⌈7/2⌉ - 1 = 3 generations and runs a 4th.
    assert.ok(revision.timeoutSeconds >= 4 * 200, `${target}: ${revision.timeoutSeconds}`);
    assertRefused(
      mutated(
        target,
        (p) => (p as IPodSpec & { containerConcurrency?: number }).containerConcurrency = 3,
      ),
      /containerConcurrency = 3 is less than SLOTS \+ QUEUE_SIZE = 5/,
    );
  }
});

Deno.test("cloudrun: refuses what Cloud Run would (PORT, two GPUs, too little memory, long drains)", () => {
  assertRefused(
    mutated("cloudrun", (_, s) => s.env!.push({ name: "PORT", value: "8080" })),
    /PORT is set by the platform/,
  );
  assertRefused(
    mutated("cloudrun", (p) => delete p.nodeSelector),
    /run\.googleapis\.com\/accelerator node selector/,
  );
  assert.throws(() => render({ target: "cloudrun", limits: { gpu: 2 } }), /at most one GPU/);
  assert.throws(
    () => render({ target: "cloudrun", limits: { memory: "8Gi" } }),
    /at least 4 CPUs and 16Gi/,
  );
  assert.throws(
    () => render({ target: "cloudrun", drainSeconds: 60 }),
    /drainSeconds = 60 is out of range/,
  );
  assert.throws(() => render({ target: "cloudrun", requestTimeoutSeconds: 7200 }), /out of range/);
  assert.throws(
    () => render({ target: "cloudrun", modelLocation: "pvc:models" }),
    /not available on Cloud Run/,
  );
});

Deno.test("knative: GPU nodes by node selector and toleration, the model on a read-only PVC", () => {
  const { pod, server } = workload({
    target: "knative",
    modelLocation: "pvc:svd-models/xt",
    namespace: "ml",
  });
  assert.deepEqual(pod.nodeSelector, { "nvidia.com/gpu.present": "true" });
  assert.deepEqual(pod.tolerations, [{
    key: "nvidia.com/gpu",
    operator: "Exists",
    effect: "NoSchedule",
  }]);
  assert.deepEqual(pod.volumes, [{
    name: "model",
    persistentVolumeClaim: { claimName: "svd-models", readOnly: true },
  }]);
  assert.deepEqual(server.volumeMounts, [{
    name: "model",
    mountPath: "/models/svd_xt",
    readOnly: true,
    subPath: "xt",
  }]);
  assert.equal(env(server).PORT, undefined, "Knative sets PORT");
  assert.equal(server.readinessProbe?.httpGet?.path, "/readyz");
  assert.equal(server.securityContext?.runAsNonRoot, true);
  assert.equal(workload({ target: "knative", namespace: "ml" }).object.metadata.namespace, "ml");
  assert.throws(
    () => render({ target: "knative", modelLocation: "gs://bucket/x" }),
    /for Cloud Run/,
  );
});

Deno.test("k8s: Deployment, Service and PodDisruptionBudget; grace covers draining; non-root; probes", () => {
  const manifests = render({ target: "k8s", image: IMAGE, drainSeconds: 120, minInstances: 2 });
  assert.deepEqual(manifests.map((m) => `${m.object.apiVersion} ${m.object.kind} ${m.file}`), [
    "apps/v1 Deployment svd-stream-deployment.yaml",
    "v1 Service svd-stream-service.yaml",
    "policy/v1 PodDisruptionBudget svd-stream-poddisruptionbudget.yaml",
  ]);
  const [deployment, service, budget] = manifests.map((m) => m.object) as [
    IDeployment & KubeObject,
    IService & KubeObject,
    IPodDisruptionBudget & KubeObject,
  ];
  assert.equal(deployment.spec?.replicas, 2);
  const pod = podSpec(deployment)!;
  assert.equal(pod.terminationGracePeriodSeconds, 120 + GRACE_MARGIN_SECONDS);
  assert.equal(pod.securityContext?.runAsNonRoot, true);
  assert.equal(pod.securityContext?.runAsUser, 10001);
  const server = pod.containers[0];
  assert.equal(server.image, IMAGE);
  assert.equal(server.resources?.limits?.["nvidia.com/gpu"], "1");
  assert.equal(server.startupProbe?.httpGet?.path, "/readyz");
  assert.equal(server.readinessProbe?.httpGet?.path, "/readyz");
  assert.equal(server.livenessProbe?.httpGet?.path, "/healthz");
  assert.equal(env(server).PORT, "8080");
  assert.ok(
    server.volumeMounts?.some((m) => m.mountPath === "/models/svd_xt" && m.readOnly === true),
  );
  assert.ok(pod.volumes?.some((v) => v.persistentVolumeClaim?.readOnly === true));
  assert.deepEqual(service.spec?.selector, deployment.spec?.selector.matchLabels);
  assert.deepEqual(budget.spec, { maxUnavailable: 1, selector: deployment.spec?.selector });

  assertRefused(
    mutated("k8s", (p) => p.terminationGracePeriodSeconds = 30),
    /terminationGracePeriodSeconds = 30 does not cover DRAIN_SECONDS = 300/,
  );
  assertRefused(mutated("k8s", (p) => delete p.securityContext), /runAsNonRoot/);
  assertRefused(
    mutated("k8s", (_, s) => delete s.readinessProbe),
    /no readiness probe on \/readyz/,
  );
  assertRefused(
    mutated("k8s", (_, s) => s.volumeMounts![0].readOnly = false),
    /not mounted read-only/,
  );
});

Deno.test("k8s: a GPU Deployment frees a GPU before starting its successor, so one GPU per node can roll out", () => {
  const deployment = workload({ target: "k8s", image: IMAGE }).object as IDeployment & KubeObject;
  assert.deepEqual(deployment.spec?.strategy, {
    type: "RollingUpdate",
    rollingUpdate: { maxSurge: 0, maxUnavailable: 1 },
  });
  // A CPU Deployment has no GPU to wait for: it still starts the new pod first.
  const cpu = workload({ target: "k8s", image: IMAGE, limits: { gpu: 0 }, provider: "cpu" })
    .object as IDeployment & KubeObject;
  assert.deepEqual(cpu.spec?.strategy?.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
  // The surge that waits for a spare GPU forever is refused, Kubernetes' default (25%) included.
  const surging = (strategy: unknown) =>
    mutated("k8s", (_p, _s, o) => (o.spec as { strategy?: unknown }).strategy = strategy);
  assertRefused(
    surging({ type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } }),
    /a GPU Deployment rolling out with maxSurge = 1 needs a spare GPU/,
  );
  assertRefused(surging(undefined), /maxSurge = 25% needs a spare GPU/);
  validateManifest(surging({ type: "Recreate" }));
});

Deno.test("k8s with init:NAME: an init container fills an emptyDir with deno task weights", () => {
  const { pod, server } = workload({ target: "k8s", image: IMAGE, modelLocation: "init:svd_xt" });
  const init = pod.initContainers![0];
  assert.equal(init.image, IMAGE);
  assert.match(init.command!.join(" "), /deno task weights "\$0" --models \/models/);
  assert.deepEqual(init.command!.slice(-2), ["svd_xt", "fp16"]);
  assert.equal(init.env![0].valueFrom?.secretKeyRef?.name, "svd-stream-hf-token");
  assert.equal(
    init.resources?.limits?.["nvidia.com/gpu"],
    undefined,
    "no GPU held while downloading",
  );
  assert.ok(pod.volumes!.some((v) => v.name === "model" && v.emptyDir));
  assert.equal(env(server).MODEL_DIR, "/models/svd_xt");
  assert.ok(server.volumeMounts!.some((m) => m.mountPath === "/models" && m.readOnly));
  assert.throws(
    () => render({ target: "k8s", modelLocation: "init:svd", modelDir: "/m" }),
    /must be \/models\/svd/,
  );
});

Deno.test("resolveRenderOptions() fills defaults in one place and names bad values", () => {
  const resolved = resolveRenderOptions({ target: "k8s" });
  assert.equal(resolved.image, "svd-stream:dev");
  assert.equal(resolved.slots, 1);
  assert.equal(resolved.queueSize, 4);
  assert.equal(resolved.provider, "cuda");
  assert.deepEqual(resolved.limits, { memory: "32Gi", cpu: "8", gpu: 1 });
  assert.equal(resolved.requestTimeoutSeconds, 300 * 5 + 60);
  assert.throws(
    () => resolveRenderOptions({ target: "nomad" as Target }),
    /target = "nomad" is unknown/,
  );
  assert.throws(
    () => resolveRenderOptions({ target: "k8s", slots: 0 }),
    /slots = 0 is out of range/,
  );
  assert.throws(
    () => resolveRenderOptions({ target: "k8s", image: "svd-stream" }),
    /has no tag or digest/,
  );
  assert.throws(
    () => resolveRenderOptions({ target: "k8s", minInstances: 4, maxInstances: 2 }),
    /minInstances = 4/,
  );
  assert.throws(
    () => resolveRenderOptions({ target: "k8s", requestTimeoutSeconds: 600 }),
    /requestTimeoutSeconds = 600 is shorter than the longest wait/,
  );
  assert.throws(
    () => resolveRenderOptions({ target: "k8s", provider: "cuda", limits: { gpu: 0 } }),
    /needs a GPU/,
  );
  assert.throws(() => resolveRenderOptions({ target: "k8s", name: "SVD" }), /not a service name/);
});

Deno.test("applySetting() reads --set KEY=VALUE into typed options", () => {
  let options: RenderOptions = { target: "k8s" };
  for (
    const setting of [
      "slots=2",
      "limits.memory=48Gi",
      "limits.gpu=1",
      "tokenSecret.name=my-token",
      "nodeSelector.cloud.google.com/gke-accelerator=nvidia-l4",
      "env.LOG_LEVEL=debug",
      "modelLocation=pvc:models/svd_xt",
    ]
  ) options = applySetting(options, setting);
  assert.deepEqual(options, {
    target: "k8s",
    slots: 2,
    limits: { memory: "48Gi", gpu: 1 },
    tokenSecret: { name: "my-token" },
    nodeSelector: { "cloud.google.com/gke-accelerator": "nvidia-l4" },
    env: { LOG_LEVEL: "debug" },
    modelLocation: "pvc:models/svd_xt",
  });
  assert.equal(applySetting(options, "tokenSecret=none").tokenSecret, null);
  assert.throws(() => applySetting(options, "slots=two"), /--set slots=two: not an integer/);
  assert.throws(
    () => applySetting(options, "colour=red"),
    /--set colour: unknown option; allowed name, /,
  );
  assert.throws(() => applySetting(options, "slots"), /is not KEY=VALUE/);
  const resolved = resolveRenderOptions(options);
  assert.deepEqual(resolved.tokenSecret, { name: "my-token", key: "token" });
});

Deno.test("parseModelLocation() and hasTagOrDigest() read what users type", () => {
  assert.deepEqual(parseModelLocation("gs://bucket"), { kind: "gcs", bucket: "bucket", path: "" });
  assert.deepEqual(parseModelLocation("gs://my-bucket/a/b/"), {
    kind: "gcs",
    bucket: "my-bucket",
    path: "a/b",
  });
  assert.deepEqual(parseModelLocation("pvc:claim"), { kind: "pvc", claim: "claim", subPath: "" });
  assert.deepEqual(parseModelLocation("init:svd_xt"), { kind: "init", weights: "svd_xt" });
  assert.deepEqual(parseModelLocation("baked"), { kind: "baked" });
  assert.throws(() => parseModelLocation("s3://bucket"), /modelLocation = "s3:\/\/bucket" is not/);
  assert.ok(hasTagOrDigest("svd-stream:dev"));
  assert.ok(hasTagOrDigest("localhost:5000/svd-stream:1.0"));
  assert.ok(hasTagOrDigest(`ghcr.io/acme/svd@sha256:${"a".repeat(64)}`));
  assert.ok(!hasTagOrDigest("localhost:5000/svd-stream"));
  assert.ok(!hasTagOrDigest("svd-stream"));
});

Deno.test("GPU_MEMORY_GB: Cloud Run's L4 by default, a known gpuType elsewhere, unset when the GPU is unknown", () => {
  assert.equal(env(workload({ target: "cloudrun" }).server).GPU_MEMORY_GB, "22.49"); // 23034 MiB
  assert.equal(GPU_MEMORY_BY_TYPE["nvidia-h100-80gb"], 79.64);
  for (const target of ["knative", "k8s"] as const) {
    assert.equal(env(workload({ target }).server).GPU_MEMORY_GB, undefined, target);
    const h100 = workload({ target, gpuType: "nvidia-h100-80gb" });
    assert.equal(env(h100.server).GPU_MEMORY_GB, "79.64", target);
    assert.equal(env(workload({ target, gpuMemoryGb: 40 }).server).GPU_MEMORY_GB, "40");
    assert.equal(env(workload({ target, limits: { gpu: 0 } }).server).GPU_MEMORY_GB, undefined);
  }
  assert.equal(
    env(workload({ target: "cloudrun", gpuType: "nvidia-b200" }).server).GPU_MEMORY_GB,
    undefined,
  );
  assert.throws(
    () => resolveRenderOptions({ target: "k8s", gpuMemoryGb: 0.5 }),
    /gpuMemoryGb = 0.5 is out of range: allowed 1..4096 \(GiB\)/,
  );
  assert.equal(applySetting({ target: "k8s" }, "gpuMemoryGb=22.5").gpuMemoryGb, 22.5);
  assert.throws(() => applySetting({ target: "k8s" }, "gpuMemoryGb=lots"), /not a number/);
});
