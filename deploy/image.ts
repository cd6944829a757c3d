/**
 * `deno task image [--push] [--target gpu|cpu] [--tag REF] [--bake NAME] [--build-arg K=V ...]`:
 * builds deploy/Dockerfile from the repository root with docker or podman (whichever is on PATH;
 * `CONTAINER_TOOL=podman` picks one), optionally pushes it. The same build by hand:
 * `docker build -f deploy/Dockerfile --target gpu -t svd-stream:dev .`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runCli, UsageError } from "../pipeline/cli/run_cli.ts";
import { hasTagOrDigest } from "./render.ts";
import { findExecutable, probeCommand, ROOT, runCommand } from "./_tools.ts";

const USAGE = `Usage: deno task image [--push] [--target gpu|cpu] [--tag REF] [--bake NAME]
       [--build-arg KEY=VALUE ...]
  --target  gpu (CUDA 12 + cuDNN 9 base, default) or cpu (slim Debian, CPU provider only)
  --tag     image reference (default svd-stream:dev, svd-stream:dev-cpu for --target cpu)
  --bake    bake a converted model into the image (deno task weights NAME; HF_TOKEN is passed
            as a build secret)
  --push    push the image after building it`;

/** The Dockerfile's final stages. */
export const IMAGE_TARGETS = ["gpu", "cpu"] as const;

/** Runs the image CLI with `args`. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      push: { type: "boolean", default: false },
      target: { type: "string", default: "gpu" },
      tag: { type: "string" },
      bake: { type: "string" },
      "build-arg": { type: "string", multiple: true, default: [] },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return console.log(USAGE);
  const target = values.target;
  if (!(IMAGE_TARGETS as readonly string[]).includes(target)) {
    throw new UsageError(`--target must be gpu or cpu, got "${target}"\n${USAGE}`);
  }
  const tag = values.tag ?? (target === "cpu" ? "svd-stream:dev-cpu" : "svd-stream:dev");
  if (!hasTagOrDigest(tag)) {
    throw new UsageError(`--tag "${tag}" has no tag: give one, e.g. ${tag}:1.0.0`);
  }

  const tool = containerTool();
  if (tool === "docker") {
    const { ok, output } = await probeCommand(["docker", "info", "--format", "{{.ServerVersion}}"]);
    if (!ok) {
      throw new Error(
        `docker cannot reach its daemon (${
          output.split("\n").at(-1)
        }): start Docker, or install podman`,
      );
    }
  }

  const buildArgs = [...values["build-arg"], ...(values.bake ? [`BAKE_MODEL=${values.bake}`] : [])];
  const command = [
    tool,
    "build",
    "--file=deploy/Dockerfile",
    `--target=${target}`,
    `--tag=${tag}`,
    // The CUDA provider exists for linux/x64 only; a build on an arm64 laptop must still make it.
    ...(target === "gpu" ? ["--platform=linux/amd64"] : []),
    // podman reads only the context's .dockerignore; docker (BuildKit) finds deploy/Dockerfile.dockerignore.
    ...(tool === "podman" ? ["--ignorefile=deploy/.dockerignore"] : []),
    ...buildArgs.map((arg) => `--build-arg=${arg}`),
    ...(values.bake && Deno.env.get("HF_TOKEN") ? ["--secret=id=hf_token,env=HF_TOKEN"] : []),
    ".",
  ];
  await runCommand(command, { cwd: ROOT, env: { DOCKER_BUILDKIT: "1" } });
  if (values.push) await runCommand([tool, "push", tag], { cwd: ROOT });
}

/** docker or podman, whichever is on PATH (docker first; `CONTAINER_TOOL` overrides). */
function containerTool(): "docker" | "podman" {
  const wanted = Deno.env.get("CONTAINER_TOOL");
  if (wanted !== undefined && wanted !== "docker" && wanted !== "podman") {
    throw new UsageError(`CONTAINER_TOOL must be docker or podman, got "${wanted}"`);
  }
  const candidates: ("docker" | "podman")[] = wanted ? [wanted] : ["docker", "podman"];
  for (const tool of candidates) {
    if (findExecutable(tool) !== undefined) return tool;
  }
  throw new Error(
    wanted
      ? `${wanted} not found on PATH (CONTAINER_TOOL=${wanted}): install it, or unset CONTAINER_TOOL`
      : "neither docker nor podman found on PATH: install one of them to build the image " +
        "(or build elsewhere: docker build -f deploy/Dockerfile .)",
  );
}

if (import.meta.main) await runCli(main);
