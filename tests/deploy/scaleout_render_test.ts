/**
 * `k8s-scaleout`: every object validates (kubernetes-models, @kubernetes-models/keda, svd-stream's
 * checks); the GPU worker, the CPU API, Redis and the KEDA `ScaledObject` with its `redis-streams`
 * trigger on the jobs stream; breaking the GPU limit, the probes or the trigger is refused; the
 * acceptance command writes them.
 *
 * Run: deno test --allow-read --allow-write --allow-run --allow-env tests/deploy/scaleout_render_test.ts
 */

import assert from "node:assert/strict";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import { parse } from "yaml";
import { redisLayout } from "../../functions/jobs/redis_layout.ts";
import { applySetting, type KubeObject, render, type RenderOptions } from "../../deploy/render.ts";
import { knowsKind, ManifestError, podSpec, validateManifest } from "../../deploy/validate.ts";
import { runTask } from "../_run_task.ts";

const IMAGE = "europe-docker.pkg.dev/acme/svd/svd-stream:1.2.3";

function objects(options: Partial<RenderOptions> = {}): KubeObject[] {
  return render({ target: "k8s-scaleout", image: IMAGE, ...options }).map((m) => m.object);
}

function find(list: KubeObject[], kind: string, name: string): KubeObject {
  const object = list.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(object, `no ${kind} ${name} in ${list.map((o) => `${o.kind}/${o.metadata.name}`)}`);
  return structuredClone(object);
}

function container(object: KubeObject): IContainer {
  return podSpec(object)!.containers[0];
}

function env(c: IContainer): Record<string, unknown> {
  return Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
}

interface Trigger {
  type: string;
  name?: string;
  metadata: Record<string, string>;
  authenticationRef?: { name: string };
}

function triggers(scaled: KubeObject): Trigger[] {
  return (scaled.spec as { triggers: Trigger[] }).triggers;
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

Deno.test("k8s-scaleout: every object validates, with and without a managed Redis", () => {
  for (
    const options of [
      {},
      { slots: 2, maxInstances: 8, minInstances: 1, modelLocation: "baked", tokenSecret: null },
      { redisUrl: "rediss://redis.example.internal:6380/2" },
      { modelLocation: "init:svd_xt", lagCount: 3 },
    ] satisfies Partial<RenderOptions>[]
  ) {
    const list = objects(options);
    for (const object of list) {
      assert.ok(knowsKind(object.apiVersion, object.kind), `${object.apiVersion} ${object.kind}`);
      validateManifest(object);
    }
  }
  assert.deepEqual(
    objects().map((o) => `${o.kind}/${o.metadata.name}`),
    [
      "Deployment/svd-stream-worker",
      "Deployment/svd-stream-api",
      "Service/svd-stream-api",
      "PodDisruptionBudget/svd-stream-api",
      "StatefulSet/svd-stream-redis",
      "Service/svd-stream-redis",
      "TriggerAuthentication/svd-stream-redis",
      "ScaledObject/svd-stream-worker",
    ],
  );
});

Deno.test("k8s-scaleout: a GPU worker with ROLE=worker, replicas left to KEDA", () => {
  const worker = find(objects(), "Deployment", "svd-stream-worker");
  const pod = podSpec(worker)!;
  const server = container(worker);
  assert.equal((worker.spec as { replicas?: number }).replicas, undefined);
  assert.equal(server.resources?.limits?.["nvidia.com/gpu"], "1");
  assert.deepEqual(pod.nodeSelector, { "nvidia.com/gpu.present": "true" });
  assert.equal(pod.tolerations?.[0].key, "nvidia.com/gpu");
  assert.equal(server.startupProbe?.httpGet?.path, "/readyz");
  assert.equal(server.livenessProbe?.httpGet?.path, "/healthz");
  assert.equal(server.volumeMounts?.find((m) => m.name === "model")?.readOnly, true);
  const e = env(server);
  assert.equal(e.ROLE, "worker");
  assert.equal(e.ORT_PROVIDER, "cuda");
  assert.deepEqual(e.REDIS_PASSWORD, {
    secretKeyRef: { name: "svd-stream-redis", key: "password" },
  });
  assert.equal(e.REDIS_URL, "redis://:$(REDIS_PASSWORD)@svd-stream-redis:6379/0");
  assert.ok(Number(pod.terminationGracePeriodSeconds) >= Number(e.DRAIN_SECONDS) + 10);
  // A worker serves only the probes and /metrics: no token, no access to its secret.
  assert.equal(e.API_TOKEN, undefined);
  // One GPU per node: the old worker goes first (its queued jobs wait in Redis).
  assert.deepEqual((worker.spec as { strategy?: unknown }).strategy, {
    type: "RollingUpdate",
    rollingUpdate: { maxSurge: 0, maxUnavailable: 1 },
  });
  const tokened = structuredClone(worker);
  container(tokened).env!.push({
    name: "API_TOKEN",
    valueFrom: { secretKeyRef: { name: "svd-stream-api-token", key: "token" } },
  });
  assertRefused(tokened, /ROLE=worker serves only the probes and \/metrics: it needs no API_TOKEN/);
});

Deno.test("k8s-scaleout: a CPU API behind a Service and a PodDisruptionBudget", () => {
  const list = objects({ maxInstances: 4, slots: 2 });
  const api = find(list, "Deployment", "svd-stream-api");
  const server = container(api);
  assert.ok((api.spec as { replicas: number }).replicas >= 2);
  assert.equal(server.resources?.limits?.["nvidia.com/gpu"], undefined);
  assert.equal(podSpec(api)!.nodeSelector, undefined);
  assert.equal(server.readinessProbe?.httpGet?.path, "/readyz");
  assert.equal(server.livenessProbe?.httpGet?.path, "/healthz");
  const e = env(server);
  assert.equal(e.ROLE, "api");
  assert.equal(e.MODEL_DIR, undefined);
  assert.deepEqual(e.API_TOKEN, {
    secretKeyRef: { name: "svd-stream-api-token", key: "token" },
  });
  // CPU pods: the new one is ready before an old one goes.
  assert.deepEqual((api.spec as { strategy?: unknown }).strategy, {
    type: "RollingUpdate",
    rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
  });
  // Cluster-wide: SLOTS + QUEUE_SIZE = maxInstances × (slots + 4).
  assert.equal(Number(e.SLOTS) + Number(e.QUEUE_SIZE), 4 * (2 + 4));
  const service = find(list, "Service", "svd-stream-api");
  assert.deepEqual((service.spec as { selector: unknown }).selector, {
    "app.kubernetes.io/name": "svd-stream",
    "app.kubernetes.io/component": "api",
  });
  find(list, "PodDisruptionBudget", "svd-stream-api");
  server.resources!.limits!["nvidia.com/gpu"] = "1";
  assertRefused(api, /ROLE=api holds a nvidia\.com\/gpu/);
});

Deno.test("k8s-scaleout: a ScaledObject with redis-streams triggers on the jobs stream's lag, from 0", () => {
  const list = objects({ slots: 2, maxInstances: 6 });
  const scaled = find(list, "ScaledObject", "svd-stream-worker");
  const spec = scaled.spec as {
    minReplicaCount: number;
    maxReplicaCount: number;
    scaleTargetRef: { name: string };
  };
  assert.equal(scaled.apiVersion, "keda.sh/v1alpha1");
  assert.equal(spec.minReplicaCount, 0);
  assert.equal(spec.maxReplicaCount, 6);
  // A fresh install's worker stays up long enough to publish its model for the API.
  assert.ok((scaled.spec as { initialCooldownPeriod: number }).initialCooldownPeriod >= 600);
  assert.equal(spec.scaleTargetRef.name, "svd-stream-worker");
  const [queued, jobs] = triggers(scaled);
  assert.equal(queued.type, "redis-streams");
  assert.equal(queued.metadata.stream, redisLayout("svd").jobs);
  assert.equal(queued.metadata.consumerGroup, "workers");
  assert.equal(queued.metadata.lagCount, "2");
  assert.equal(queued.metadata.activationLagCount, "0");
  assert.equal(queued.metadata.address, "svd-stream-redis.default.svc.cluster.local:6379");
  assert.equal(jobs.metadata.streamLength, "2");
  assert.equal(jobs.metadata.consumerGroup, undefined);
  const auth = find(list, "TriggerAuthentication", "svd-stream-redis");
  assert.equal(queued.authenticationRef?.name, auth.metadata.name);
  assert.deepEqual((auth.spec as { secretTargetRef: unknown }).secretTargetRef, [
    { parameter: "password", name: "svd-stream-redis", key: "password" },
  ]);
  assert.equal(
    triggers(find(objects({ namespace: "video" }), "ScaledObject", "svd-stream-worker"))[0]
      .metadata.address,
    "svd-stream-redis.video.svc.cluster.local:6379",
  );
});

Deno.test("k8s-scaleout: every object is in the namespace KEDA's Redis address names, default included", () => {
  for (const namespace of [undefined, "video"]) {
    const list = objects({ namespace });
    const expected = namespace ?? "default";
    for (const object of list) {
      assert.equal(object.metadata.namespace, expected, `${object.kind}/${object.metadata.name}`);
    }
    for (const trigger of triggers(find(list, "ScaledObject", "svd-stream-worker"))) {
      assert.equal(trigger.metadata.address, `svd-stream-redis.${expected}.svc.cluster.local:6379`);
    }
  }
  // A ScaledObject moved to another namespace than its address is refused.
  const moved = find(objects({ namespace: "video" }), "ScaledObject", "svd-stream-worker");
  (moved.metadata as { namespace?: string }).namespace = "ml";
  assertRefused(
    moved,
    /address svd-stream-redis\.video\.svc\.cluster\.local:6379 is in namespace "video", the ScaledObject in "ml"/,
  );
});

Deno.test("k8s-scaleout: a managed Redis by URL renders no StatefulSet and keeps TLS", () => {
  const list = objects({ redisUrl: "rediss://redis.example.internal:6380/2" });
  assert.equal(list.some((o) => o.kind === "StatefulSet"), false);
  assert.equal(
    list.some((o) => o.metadata.name === "svd-stream-redis" && o.kind === "Service"),
    false,
  );
  const e = env(container(find(list, "Deployment", "svd-stream-worker")));
  assert.equal(e.REDIS_URL, "rediss://:$(REDIS_PASSWORD)@redis.example.internal:6380/2");
  const queued = triggers(find(list, "ScaledObject", "svd-stream-worker"))[0];
  assert.equal(queued.metadata.address, "redis.example.internal:6380");
  assert.equal(queued.metadata.enableTLS, "true");
  assert.equal(queued.metadata.databaseIndex, "2");
  assert.throws(
    () => objects({ redisUrl: "redis://:hunter2@redis:6379" }),
    /must not hold credentials/,
  );
  assert.throws(() => objects({ redisUrl: "http://redis" }), /not redis:\/\//);
  assert.throws(
    () => render({ target: "k8s", redisUrl: "redis://redis" }),
    /redisUrl: only for target k8s-scaleout/,
  );
  const set = ["redisUrl=redis://r:6379", "redisSecret.name=r", "lagCount=2", "apiReplicas=3"]
    .reduce(applySetting, { target: "k8s-scaleout" } as RenderOptions);
  assert.equal(set.redisSecret?.name, "r");
  assert.equal(set.lagCount, 2);
  assert.equal(set.apiReplicas, 3);
});

Deno.test("k8s-scaleout: Redis 7 with a password from the Secret, no eviction", () => {
  const redis = find(objects(), "StatefulSet", "svd-stream-redis");
  const c = container(redis);
  assert.match(c.image!, /^redis:7/);
  assert.deepEqual(c.args!.slice(0, 2), ["--requirepass", "$(REDIS_PASSWORD)"]);
  assert.equal(c.args![c.args!.indexOf("--maxmemory-policy") + 1], "noeviction");
  assert.deepEqual(env(c).REDIS_PASSWORD, {
    secretKeyRef: { name: "svd-stream-redis", key: "password" },
  });
  c.args![1] = "hunter2";
  assertRefused(redis, /--requirepass \$\(REDIS_PASSWORD\)/);
});

Deno.test("k8s-scaleout: without the GPU limit, the probes or the trigger it is refused", () => {
  const list = objects();
  const worker = () => find(list, "Deployment", "svd-stream-worker");
  const api = () => find(list, "Deployment", "svd-stream-api");
  const scaled = () => find(list, "ScaledObject", "svd-stream-worker");

  let o = worker();
  delete container(o).resources!.limits!["nvidia.com/gpu"];
  assertRefused(o, /ORT_PROVIDER=cuda without a nvidia\.com\/gpu limit/);
  o = worker();
  delete container(o).startupProbe;
  assertRefused(o, /no startup probe on \/readyz/);
  o = worker();
  delete container(o).livenessProbe;
  assertRefused(o, /no liveness probe on \/healthz/);
  o = api();
  delete container(o).readinessProbe;
  assertRefused(o, /no readiness probe on \/readyz/);
  o = api();
  delete container(o).livenessProbe;
  assertRefused(o, /no liveness probe on \/healthz/);
  o = api();
  container(o).image = "svd-stream";
  assertRefused(o, /image "svd-stream" has no tag or digest/);
  o = worker();
  (podSpec(o) as IPodSpec).terminationGracePeriodSeconds = 5;
  assertRefused(o, /terminationGracePeriodSeconds = 5 does not cover/);
  o = worker();
  container(o).env!.find((e) => e.name === "REDIS_URL")!.value = "redis://:hunter2@redis:6379";
  assertRefused(o, /REDIS_URL must take its password from a secret/);

  o = scaled();
  (o.spec as { triggers: Trigger[] }).triggers = [];
  assertRefused(o, /no redis-streams trigger on a consumer group's lag/);
  o = scaled();
  triggers(o)[0].type = "redis";
  assertRefused(o, /no redis-streams trigger on a consumer group's lag/);
  o = scaled();
  triggers(o)[0].metadata.stream = "jobs";
  assertRefused(o, /stream = jobs, the jobs stream is "svd:jobs"/);
  o = scaled();
  triggers(o)[0].metadata.consumerGroup = "api";
  assertRefused(o, /consumerGroup = api, the workers read "workers"/);
  o = scaled();
  delete triggers(o)[0].metadata.activationLagCount;
  assertRefused(o, /no activationLagCount/);
  o = scaled();
  delete triggers(o)[1].authenticationRef;
  assertRefused(o, /no authenticationRef/);
  o = scaled();
  delete (o.spec as { minReplicaCount?: number }).minReplicaCount;
  assertRefused(o, /minReplicaCount = undefined/);
  o = scaled();
  (o.spec as { triggers: unknown }).triggers = "redis-streams";
  assertRefused(o, /schema: .*triggers/);

  o = find(list, "TriggerAuthentication", "svd-stream-redis");
  (o.spec as { secretTargetRef: unknown[] }).secretTargetRef = [];
  assertRefused(o, /no secretTargetRef for the parameter password/);
});

Deno.test("deno task deploy --target k8s-scaleout --dry-run --out DIR writes the manifests", async () => {
  const out = await Deno.makeTempDir({ prefix: "deploy_scaleout_" });
  try {
    const { code, stdout, stderr } = await runTask("deploy", [
      "--target",
      "k8s-scaleout",
      "--dry-run",
      "--out",
      out,
    ]);
    assert.equal(code, 0, stderr);
    assert.equal(stdout, "");
    const files = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    assert.equal(files.length, 8, String(files));
    const all = files.map((f) => Deno.readTextFileSync(`${out}/${f}`)).join("\n");
    for (const needle of ["ScaledObject", "redis-streams", "nvidia.com/gpu", "svd:jobs"]) {
      assert.ok(all.includes(needle), `no ${needle} in the YAML`);
    }
    assert.ok(!/[&*]a\d/.test(all), "YAML anchors or aliases in the output");
    for (const file of files) {
      validateManifest(parse(Deno.readTextFileSync(`${out}/${file}`)) as KubeObject);
      assert.match(stderr, new RegExp(`dry run, would run: kubectl apply -f ${out}/${file}`));
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
