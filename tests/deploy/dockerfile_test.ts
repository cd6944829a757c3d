/**
 * deploy/Dockerfile: lint-clean under dockerfile-utils with every check an error, a CUDA base that
 * matches the CUDA provider onnxruntime-node installs, a `cpu` stage, a non-root user, `deno task
 * start` as the entry, a HEALTHCHECK on /healthz, dependencies installed at build time, and the
 * ignore files.
 *
 * Run: deno test --allow-read --allow-run --allow-env --allow-net=127.0.0.1 tests/deploy/dockerfile_test.ts
 */

import assert from "node:assert/strict";
import { validate, ValidationSeverity } from "dockerfile-utils";
import {
  DOCKERFILE,
  globalArgs,
  healthcheckCommand,
  last,
  parseStages,
  type Stage,
  startCommand,
} from "./_dockerfile.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const text = await Deno.readTextFile(DOCKERFILE);
const stages = parseStages(text);
const FINAL_STAGES = ["gpu", "cpu"];

/** Every setting of the validator raised to an error: a warning fails the test too. */
const STRICT = {
  deprecatedMaintainer: ValidationSeverity.ERROR,
  directiveCasing: ValidationSeverity.ERROR,
  emptyContinuationLine: ValidationSeverity.ERROR,
  instructionCasing: ValidationSeverity.ERROR,
  instructionCmdMultiple: ValidationSeverity.ERROR,
  instructionEntrypointMultiple: ValidationSeverity.ERROR,
  instructionHealthcheckMultiple: ValidationSeverity.ERROR,
  instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
  instructionWorkdirRelative: ValidationSeverity.ERROR,
};

function stage(name: string): Stage {
  const found = stages.find((s) => s.name === name);
  assert.ok(
    found,
    `deploy/Dockerfile has no stage "${name}"; stages: ${stages.map((s) => s.name)}`,
  );
  return found;
}

/** The text of every RUN of the stage. */
function runs(s: Stage): string {
  return s.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args).join("\n");
}

Deno.test("deploy/Dockerfile lints clean with dockerfile-utils (any diagnostic fails)", () => {
  const diagnostics = validate(text, STRICT);
  const report = diagnostics.map((d) =>
    `line ${d.range.start.line + 1}: ${d.message} (code ${d.code}, severity ${d.severity})`
  );
  assert.deepEqual(report, []);
});

Deno.test("dockerfile-utils' validator does report problems (the lint test can fail)", () => {
  const broken = 'FROM\nworkdir app\nCMD ["a"]\nCMD ["b"]\nHEALTHCHECK --interval=x CMD true\n';
  assert.ok(validate(broken, STRICT).length >= 3);
});

Deno.test("deploy/Dockerfile has a default gpu stage (the last) and a cpu stage", () => {
  assert.equal(stages.at(-1)?.name, "gpu", "docker build without --target builds the last stage");
  stage("cpu");
  for (const name of FINAL_STAGES) assert.ok(stage(name));
});

Deno.test("each final stage runs as a non-root user", () => {
  for (const name of FINAL_STAGES) {
    const user = last(stage(name), "USER");
    assert.ok(user, `stage ${name} has no USER`);
    const [uid] = user.args.trim().split(":");
    assert.ok(!["root", "0"].includes(uid), `stage ${name}: USER ${user.args}`);
    // Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert.match(uid, /^[1-9]\d*$/, `stage ${name}: USER ${user.args} is not a numeric uid`);
  }
});

Deno.test("each final stage starts with `deno task start`", () => {
  for (const name of FINAL_STAGES) {
    assert.deepEqual(startCommand(stage(name)), ["deno", "task", "start"], `stage ${name}`);
  }
});

Deno.test("each final stage has a HEALTHCHECK on /healthz", () => {
  for (const name of FINAL_STAGES) {
    const command = healthcheckCommand(stage(name));
    assert.ok(command, `stage ${name} has no HEALTHCHECK CMD`);
    assert.equal(command[0], "deno");
    const script = command.at(-1)!;
    const source = Deno.readTextFileSync(`${ROOT}${script}`);
    assert.match(source, /\/healthz/, `${script} does not ask /healthz`);
  }
});

Deno.test("the GPU base is the CUDA + cuDNN runtime that onnxruntime-node's CUDA provider needs", async () => {
  // The install script's metadata names what it fetches for linux/x64, e.g. "cuda12".
  const metadataPath = `${ROOT}node_modules/onnxruntime-node/script/install-metadata.js`;
  const metadata = await Deno.readTextFile(metadataPath);
  const requirement = /'linux\/x64':\s*\[\s*'cuda(\d+)'\s*\]/.exec(metadata);
  assert.ok(requirement, `no linux/x64 CUDA requirement in ${metadataPath}`);
  const cudaMajor = requirement[1];

  const args = globalArgs(text);
  const gpuFrom = stage("gpu").from.replace(/^\$\{(\w+)\}$/, (_, name) => args[name]);
  assert.match(
    gpuFrom,
    new RegExp(`^nvidia/cuda:${cudaMajor}\\.\\d+\\.\\d+-cudnn-runtime-ubuntu\\d+\\.\\d+$`),
  );
  assert.match(
    runs(stage("deps-gpu")),
    new RegExp(`ONNXRUNTIME_NODE_INSTALL=cuda${cudaMajor} deno install`),
  );
  assert.match(runs(stage("deps-gpu")), /--allow-scripts=npm:onnxruntime-node/);
  assert.match(runs(stage("deps-gpu")), /libonnxruntime_providers_cuda\.so/);
});

Deno.test("the cpu stage is slim Debian without the CUDA provider", () => {
  const args = globalArgs(text);
  const cpuFrom = stage("cpu").from.replace(/^\$\{(\w+)\}$/, (_, name) => args[name]);
  assert.match(cpuFrom, /^debian:[a-z]+-slim$/);
  assert.match(runs(stage("deps-cpu")), /ONNXRUNTIME_NODE_INSTALL=skip deno install/);
});

Deno.test("Deno is pinned to 2.9.6, ffmpeg is installed, dependencies are fetched at build", () => {
  assert.equal(globalArgs(text).DENO_VERSION, "2.9.6");
  for (const name of FINAL_STAGES) {
    assert.match(runs(stage(name)), /apt-get install[^\n]*\bffmpeg\b/, `stage ${name}`);
    // The lockfile is obeyed, and the server's module graph is resolved while the network is there.
    assert.match(runs(stage(name)), /deno install --frozen --entrypoint main\.ts/, `stage ${name}`);
  }
});

Deno.test("the model is not in the image unless BAKE_MODEL is given; MODEL_DIR defaults to /models/svd_xt", () => {
  for (const name of FINAL_STAGES) {
    const s = stage(name);
    assert.ok(s.instructions.some((i) => i.keyword === "ARG" && /^BAKE_MODEL=""$/.test(i.args)));
    assert.match(runs(s), /if \[ -n "\$BAKE_MODEL" \]; then .*deno task weights "\$BAKE_MODEL"/);
    const env = s.instructions.filter((i) => i.keyword === "ENV").map((i) => i.args).join(" ");
    assert.match(env, /MODEL_DIR=\/models\/svd_xt/);
  }
});

Deno.test("the ignore file is beside the Dockerfile for BuildKit, identical to deploy/.dockerignore", async () => {
  const requested = await Deno.readTextFile(`${ROOT}deploy/.dockerignore`);
  const buildKit = await Deno.readTextFile(`${ROOT}deploy/Dockerfile.dockerignore`);
  assert.equal(buildKit, requested);
  const patterns = requested.split("\n").filter((l) => l && !l.startsWith("#"));
  for (const excluded of [".git", "node_modules", "models", ".cache", "tests"]) {
    assert.ok(patterns.includes(excluded), `${excluded} is not ignored`);
  }
  // Everything the image runs stays in the context.
  for (
    const kept of [
      "deno.json",
      "deno.lock",
      "main.ts",
      "pipeline",
      "configs",
      "deploy",
      "weights.lock",
    ]
  ) {
    assert.ok(!patterns.includes(kept), `${kept} is ignored`);
  }
});

Deno.test("the healthcheck script exits 0 on a 200 from /healthz and 1 when nothing answers", async () => {
  const command = healthcheckCommand(stage("gpu"))!;
  const run = async (port: number) => {
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: command.slice(1),
      cwd: ROOT,
      env: { PORT: String(port), NO_COLOR: "1" },
      stdout: "null",
      stderr: "null",
    }).output();
    return code;
  };
  const seen: string[] = [];
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    seen.push(new URL(req.url).pathname);
    return new Response("ok");
  });
  assert.equal(await run(server.addr.port), 0);
  assert.deepEqual(seen, ["/healthz"]);
  await server.shutdown();
  assert.equal(await run(server.addr.port), 1);
});
