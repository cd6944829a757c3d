/**
 * `deno task deploy`: for each target, `--dry-run --out DIR` writes YAML that validates against the
 * published schemas and mentions nvidia.com/gpu, /readyz and /healthz; applying runs gcloud or
 * kubectl (fakes here) and prints each command; a missing tool, missing credentials or a bad option
 * is one line.
 *
 * Run: deno test --allow-read --allow-write --allow-run --allow-env tests/deploy/deploy_cli_test.ts
 */

import assert from "node:assert/strict";
import { parse, parseAllDocuments } from "yaml";
import type { KubeObject, Target } from "../../deploy/render.ts";
import { knowsKind, validateManifest } from "../../deploy/validate.ts";
import { runTask } from "../_run_task.ts";
import { fakeBin } from "./_fake_tools.ts";

const TARGETS: Target[] = ["cloudrun", "knative", "k8s"];
const IMAGE = "europe-docker.pkg.dev/acme/svd/svd-stream:1.2.3";

/** The lines of `text` that are not empty. */
function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

for (const target of TARGETS) {
  Deno.test(`deno task deploy --target ${target} --dry-run --out DIR writes valid YAML`, async () => {
    const out = await Deno.makeTempDir({ prefix: `deploy_${target}_` });
    try {
      const { code, stdout, stderr } = await runTask("deploy", [
        "--target",
        target,
        "--dry-run",
        "--out",
        out,
      ]);
      assert.equal(code, 0, stderr);
      assert.equal(stdout, "");
      const files = [...Deno.readDirSync(out)].map((e) => e.name).sort();
      assert.ok(files.length >= 1 && files.every((f) => f.endsWith(".yaml")), String(files));
      const all = files.map((f) => Deno.readTextFileSync(`${out}/${f}`)).join("\n");
      for (const needle of ["nvidia.com/gpu", "/readyz", "/healthz"]) {
        assert.ok(all.includes(needle), `${target}: no ${needle} in the YAML`);
      }
      for (const file of files) {
        const object = parse(Deno.readTextFileSync(`${out}/${file}`)) as KubeObject;
        assert.ok(
          knowsKind(object.apiVersion, object.kind),
          `${file}: ${object.apiVersion} ${object.kind}`,
        );
        validateManifest(object);
        assert.match(stderr, new RegExp(`wrote ${out}/${file}`));
      }
      const command = target === "cloudrun" ? "gcloud run services replace" : "kubectl apply -f";
      assert.match(stderr, new RegExp(`dry run, would run: ${command} ${out}/`));
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  });
}

Deno.test("deno task deploy --dry-run without --out prints the YAML documents", async () => {
  const { code, stdout, stderr } = await runTask("deploy", [
    "--target=k8s",
    "--dry-run",
    `--image=${IMAGE}`,
    "--set",
    "slots=2",
    "--set=namespace=ml",
  ]);
  assert.equal(code, 0, stderr);
  const documents = parseAllDocuments(stdout).map((d) => d.toJS() as KubeObject);
  assert.deepEqual(documents.map((d) => d.kind), ["Deployment", "Service", "PodDisruptionBudget"]);
  assert.ok(documents.every((d) => d.metadata.namespace === "ml"));
  for (const document of documents) validateManifest(document);
  assert.match(stdout, new RegExp(IMAGE.replaceAll(".", "\\.")));
  assert.match(stdout, /name: SLOTS\n\s+value: "2"/);
});

Deno.test("deno task deploy: a bad option or target is one line, exit 1 or 2", async () => {
  const cases: [string[], number, RegExp][] = [
    [
      ["--target", "nomad", "--dry-run"],
      2,
      /^error: --target must be one of cloudrun, knative, k8s, k8s-scaleout, got "nomad"/,
    ],
    [["--target", "k8s", "--dry-run", "--set", "slots=0"], 1, /^error: slots = 0 is out of range/],
    [
      ["--target", "k8s", "--dry-run", "--set", "colour=red"],
      1,
      /^error: --set colour: unknown option/,
    ],
    [["--target", "k8s"], 2, /^error: applying needs --image REF/],
  ];
  for (const [args, expected, pattern] of cases) {
    const { code, stderr } = await runTask("deploy", args);
    assert.equal(code, expected, `${args.join(" ")}: ${stderr}`);
    assert.match(lines(stderr)[0], pattern);
    assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
  }
});

Deno.test("deno task deploy --target cloudrun without gcloud says so in one line", async () => {
  await using bin = await fakeBin([]);
  const { code, stderr } = await runTask(
    "deploy",
    ["--target", "cloudrun", "--image", IMAGE, "--region", "europe-west4"],
    { PATH: bin.path },
  );
  assert.equal(code, 1);
  assert.deepEqual(lines(stderr), [
    "error: gcloud not found: install the Google Cloud CLI or use --dry-run",
  ]);
});

Deno.test("deno task deploy --target k8s without kubectl says so in one line", async () => {
  await using bin = await fakeBin([]);
  const { code, stderr } = await runTask("deploy", ["--target", "k8s", "--image", IMAGE], {
    PATH: bin.path,
  });
  assert.equal(code, 1);
  assert.deepEqual(lines(stderr), ["error: kubectl not found: install kubectl or use --dry-run"]);
});

Deno.test("deno task deploy --target cloudrun without credentials says so in one line", async () => {
  await using bin = await fakeBin([{
    name: "gcloud",
    answers: [{ prefix: "auth list", code: 0 }],
  }]);
  const { code, stderr } = await runTask(
    "deploy",
    ["--target", "cloudrun", "--image", IMAGE, "--region", "europe-west4"],
    { PATH: bin.path },
  );
  assert.equal(code, 1);
  assert.equal(lines(stderr).length, 1, stderr);
  assert.match(stderr, /^error: gcloud has no active account: run `gcloud auth login`/);
  assert.deepEqual(await bin.calls(), [
    "gcloud auth list --filter=status:ACTIVE --format=value(account)",
  ]);
});

Deno.test("deno task deploy --target cloudrun runs gcloud run services replace and prints it", async () => {
  await using bin = await fakeBin([{
    name: "gcloud",
    answers: [{ prefix: "auth list", code: 0, output: "deployer@acme.iam.gserviceaccount.com" }],
  }]);
  const out = await Deno.makeTempDir({ prefix: "deploy_apply_" });
  try {
    const { code, stdout, stderr } = await runTask(
      "deploy",
      [
        "--target",
        "cloudrun",
        "--image",
        IMAGE,
        "--region",
        "europe-west4",
        "--project",
        "acme",
        "--out",
        out,
      ],
      { PATH: bin.path },
    );
    assert.equal(code, 0, stderr);
    const command =
      `gcloud run services replace ${out}/svd-stream-service.yaml --region=europe-west4 --project=acme`;
    assert.deepEqual(lines(stdout), [`$ ${command}`]);
    assert.deepEqual((await bin.calls()).slice(1), [command]);
    assert.match(
      Deno.readTextFileSync(`${out}/svd-stream-service.yaml`),
      new RegExp(`image: ${IMAGE}`),
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("deno task deploy --target cloudrun needs a region", async () => {
  await using bin = await fakeBin([{ name: "gcloud" }]);
  const { code, stderr } = await runTask("deploy", ["--target", "cloudrun", "--image", IMAGE], {
    PATH: bin.path,
    CLOUDSDK_RUN_REGION: "",
  });
  assert.equal(code, 2);
  assert.match(stderr, /^error: Cloud Run needs --region REGION/);
});

Deno.test("deno task deploy --target k8s applies each file with kubectl and prints each command", async () => {
  await using bin = await fakeBin([{ name: "kubectl" }]);
  const { code, stdout, stderr } = await runTask(
    "deploy",
    ["--target", "k8s", "--image", IMAGE, "--context", "gpu-cluster"],
    { PATH: bin.path },
  );
  assert.equal(code, 0, stderr);
  const applied = lines(stdout).map((l) => l.replace(/^\$ /, ""));
  assert.equal(applied.length, 3);
  for (const [i, kind] of ["deployment", "service", "poddisruptionbudget"].entries()) {
    assert.match(
      applied[i],
      new RegExp(`^kubectl apply -f \\S+/svd-stream-${kind}\\.yaml --context=gpu-cluster$`),
    );
  }
  assert.deepEqual(await bin.calls(), ["kubectl config get-contexts gpu-cluster", ...applied]);
  // The temporary folder is gone afterwards.
  assert.throws(() => Deno.statSync(applied[0].split(" ")[3]), Deno.errors.NotFound);
});

Deno.test("deno task deploy --target knative without a cluster context says so in one line", async () => {
  await using bin = await fakeBin([{
    name: "kubectl",
    answers: [{
      prefix: "config current-context",
      code: 1,
      output: "error: current-context is not set",
    }],
  }]);
  const { code, stderr } = await runTask("deploy", ["--target", "knative", "--image", IMAGE], {
    PATH: bin.path,
  });
  assert.equal(code, 1);
  assert.deepEqual(lines(stderr), [
    "error: kubectl has no current context (error: current-context is not set): configure access to a cluster or use --dry-run",
  ]);
});

Deno.test("deno task deploy: a failing kubectl apply is one line after its own output", async () => {
  await using bin = await fakeBin([{
    name: "kubectl",
    answers: [{ prefix: "apply", code: 1, output: "The connection to the server was refused" }],
  }]);
  const { code, stdout, stderr } = await runTask("deploy", ["--target", "k8s", "--image", IMAGE], {
    PATH: bin.path,
  });
  assert.equal(code, 1);
  assert.match(stdout, /The connection to the server was refused/);
  assert.deepEqual(lines(stderr), [
    "error: kubectl apply -f failed with exit code 1 (its output is above)",
  ]);
});

Deno.test("deno task deploy --target k8s-scaleout applies into kubectl's current namespace, KEDA's Redis address included", async () => {
  await using bin = await fakeBin([{
    name: "kubectl",
    answers: [{ prefix: "config view", code: 0, output: "video" }],
  }]);
  const out = await Deno.makeTempDir({ prefix: "deploy_scaleout_ns_" });
  try {
    const { code, stderr } = await runTask(
      "deploy",
      ["--target", "k8s-scaleout", "--image", IMAGE, "--out", out],
      { PATH: bin.path },
    );
    assert.equal(code, 0, stderr);
    assert.match(stderr, /namespace: video \(kubectl's current one/);
    const documents = [...Deno.readDirSync(out)].map((e) =>
      parse(Deno.readTextFileSync(`${out}/${e.name}`)) as KubeObject
    );
    assert.ok(documents.length > 0);
    assert.ok(documents.every((d) => d.metadata.namespace === "video"));
    const scaled = documents.find((d) => d.kind === "ScaledObject")!;
    const triggers = (scaled.spec as { triggers: { metadata: { address: string } }[] }).triggers;
    assert.ok(triggers.every((t) => t.metadata.address.startsWith("svd-stream-redis.video.svc")));
    const calls = await bin.calls();
    assert.equal(calls[1], "kubectl config view --minify --output=jsonpath={..namespace}");
    assert.ok(calls.slice(2).every((c) => c.startsWith("kubectl apply -f ")));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
