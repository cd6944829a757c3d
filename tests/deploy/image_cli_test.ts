/**
 * `deno task image`: builds deploy/Dockerfile with docker or podman (fakes here), pushes on
 * `--push`, and says plainly when neither tool is on PATH or docker has no daemon.
 *
 * Run: deno test --allow-read --allow-write --allow-run --allow-env tests/deploy/image_cli_test.ts
 */

import assert from "node:assert/strict";
import { runTask } from "../_run_task.ts";
import { fakeBin } from "./_fake_tools.ts";

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

Deno.test("deno task image with neither docker nor podman on PATH says so plainly", async () => {
  await using bin = await fakeBin([]);
  const { code, stdout, stderr } = await runTask("image", [], { PATH: bin.path });
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.deepEqual(lines(stderr), [
    "error: neither docker nor podman found on PATH: install one of them to build the image " +
    "(or build elsewhere: docker build -f deploy/Dockerfile .)",
  ]);
});

Deno.test("deno task image builds the gpu target with docker by default and prints the command", async () => {
  await using bin = await fakeBin([{ name: "docker" }, { name: "podman" }]);
  const { code, stdout, stderr } = await runTask("image", [], { PATH: bin.path });
  assert.equal(code, 0, stderr);
  const build =
    "docker build --file=deploy/Dockerfile --target=gpu --tag=svd-stream:dev --platform=linux/amd64 .";
  assert.deepEqual(lines(stdout), [`$ ${build}`]);
  assert.deepEqual(await bin.calls(), ["docker info --format {{.ServerVersion}}", build]);
});

Deno.test("deno task image --target cpu --tag REF --push builds and pushes", async () => {
  await using bin = await fakeBin([{ name: "docker" }]);
  const tag = "ghcr.io/acme/svd-stream:1.2.3-cpu";
  const { code, stdout, stderr } = await runTask(
    "image",
    ["--target", "cpu", "--tag", tag, "--push", "--build-arg", "DENO_VERSION=2.9.6"],
    { PATH: bin.path },
  );
  assert.equal(code, 0, stderr);
  assert.deepEqual(lines(stdout), [
    `$ docker build --file=deploy/Dockerfile --target=cpu --tag=${tag} --build-arg=DENO_VERSION=2.9.6 .`,
    `$ docker push ${tag}`,
  ]);
});

Deno.test("deno task image --bake NAME passes BAKE_MODEL and the Hugging Face token as a build secret", async () => {
  await using bin = await fakeBin([{ name: "docker" }]);
  const { code, stdout, stderr } = await runTask("image", ["--bake", "svd_xt"], {
    PATH: bin.path,
    HF_TOKEN: "hf_secret",
  });
  assert.equal(code, 0, stderr);
  assert.match(stdout, /--build-arg=BAKE_MODEL=svd_xt --secret=id=hf_token,env=HF_TOKEN \.$/m);
  assert.doesNotMatch(
    stdout + (await bin.calls()).join("\n"),
    /hf_secret/,
    "the token is never printed",
  );
});

Deno.test("deno task image uses podman when docker is absent, with the Dockerfile's ignore file", async () => {
  await using bin = await fakeBin([{ name: "podman" }]);
  const { code, stdout, stderr } = await runTask("image", ["--tag", "svd-stream:test"], {
    PATH: bin.path,
  });
  assert.equal(code, 0, stderr);
  assert.deepEqual(lines(stdout), [
    "$ podman build --file=deploy/Dockerfile --target=gpu --tag=svd-stream:test --platform=linux/amd64 " +
    "--ignorefile=deploy/.dockerignore .",
  ]);
});

Deno.test("deno task image with docker but no daemon says so in one line", async () => {
  await using bin = await fakeBin([{
    name: "docker",
    answers: [{
      prefix: "info",
      code: 1,
      output:
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
    }],
  }]);
  const { code, stderr } = await runTask("image", [], { PATH: bin.path });
  assert.equal(code, 1);
  assert.deepEqual(lines(stderr), [
    "error: docker cannot reach its daemon (Cannot connect to the Docker daemon at " +
    "unix:///var/run/docker.sock. Is the docker daemon running?): start Docker, or install podman",
  ]);
});

Deno.test("deno task image refuses a bad target or an untagged reference", async () => {
  await using bin = await fakeBin([{ name: "docker" }]);
  let result = await runTask("image", ["--target", "tpu"], { PATH: bin.path });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^error: --target must be gpu or cpu, got "tpu"/);
  result = await runTask("image", ["--tag", "ghcr.io/acme/svd-stream"], { PATH: bin.path });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^error: --tag "ghcr\.io\/acme\/svd-stream" has no tag/);
  assert.deepEqual(await bin.calls(), []);
});
