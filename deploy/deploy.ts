/**
 * `deno task deploy --target cloudrun|knative|k8s|k8s-scaleout [--image REF] [--dry-run] [--out DIR]
 * [--set KEY=VALUE ...] [--region R] [--project P] [--context C]`: renders the manifests
 * (deploy/render.ts), validates them against their schemas (deploy/validate.ts), writes them as
 * YAML, and, without `--dry-run`, applies them: `gcloud run services replace` for Cloud Run,
 * `kubectl apply -f` otherwise. Each command is printed before it runs; a missing tool or missing
 * credentials is one line, not a stack trace.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { runCli, UsageError } from "../pipeline/cli/run_cli.ts";
import {
  applySetting,
  isTarget,
  render,
  type RenderedManifest,
  type RenderOptions,
  TARGETS,
} from "./render.ts";
import { findExecutable, formatCommand, probeCommand, runCommand } from "./_tools.ts";
import { validateManifest } from "./validate.ts";

const USAGE = `Usage: deno task deploy --target ${
  Object.keys(TARGETS).join("|")
} [--image REF] [--dry-run]
       [--out DIR] [--set KEY=VALUE ...] [--region REGION] [--project PROJECT] [--context CONTEXT]
  --dry-run   render and validate only: YAML to --out (or stdout), commands printed, none run
  --set       any render option, e.g. --set slots=2 --set limits.memory=48Gi
              --set modelLocation=gs://my-models/svd_xt --set tokenSecret=none
  --region    Cloud Run region (default $CLOUDSDK_RUN_REGION)
  --context   kubectl context (default: the current one)`;

// The schema validator's dependencies load Node's deprecated `punycode`; its warning is noise here.
(process as { noDeprecation?: boolean }).noDeprecation = true;

/** Runs the deploy CLI with `args`. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      target: { type: "string" },
      image: { type: "string" },
      "dry-run": { type: "boolean", default: false },
      out: { type: "string" },
      set: { type: "string", multiple: true, default: [] },
      region: { type: "string" },
      project: { type: "string" },
      context: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return console.log(USAGE);
  const target = values.target;
  if (target === undefined || !isTarget(target)) {
    throw new UsageError(
      `--target must be one of ${Object.keys(TARGETS).join(", ")}, got ${
        target === undefined ? "nothing" : `"${target}"`
      }\n${USAGE}`,
    );
  }
  const dryRun = values["dry-run"];
  if (!dryRun && values.image === undefined) {
    throw new UsageError(
      "applying needs --image REF (the image the platform pulls, e.g. one pushed by `deno task " +
        "image --push --tag REF`); use --dry-run to render without it",
    );
  }

  let options: RenderOptions = { target, ...(values.image ? { image: values.image } : {}) };
  for (const setting of values.set) options = applySetting(options, setting);
  let manifests = render(options);
  for (const { object } of manifests) validateManifest(object);
  // k8s-scaleout writes its namespace into every object (KEDA's Redis address names it).
  const namespaced = target === "k8s-scaleout" && options.namespace === undefined;
  if (namespaced && dryRun) {
    console.error(
      "namespace: default (--set namespace=NS for another; kubectl apply -n NS refuses these)",
    );
  }

  const region = values.region ?? (Deno.env.get("CLOUDSDK_RUN_REGION") || undefined);
  const commands = (dir: string) =>
    manifests.map(({ file }) =>
      target === "cloudrun"
        ? [
          "gcloud",
          "run",
          "services",
          "replace",
          `${dir}/${file}`,
          `--region=${region ?? "REGION"}`,
          ...(values.project ? [`--project=${values.project}`] : []),
        ]
        : [
          "kubectl",
          "apply",
          "-f",
          `${dir}/${file}`,
          ...(values.context ? [`--context=${values.context}`] : []),
        ]
    );

  const writeOut = async () => {
    if (values.out === undefined) return;
    await writeManifests(values.out, manifests);
    for (const { file } of manifests) console.error(`wrote ${values.out}/${file}`);
  };
  if (dryRun) {
    await writeOut();
    if (values.out === undefined) console.log(toYaml(manifests));
    for (const command of commands(values.out ?? "DIR")) {
      console.error(`dry run, would run: ${formatCommand(command)}`);
    }
    return;
  }

  const tool = target === "cloudrun" ? "gcloud" : "kubectl";
  if (findExecutable(tool) === undefined) {
    throw new Error(
      tool === "gcloud"
        ? "gcloud not found: install the Google Cloud CLI or use --dry-run"
        : "kubectl not found: install kubectl or use --dry-run",
    );
  }
  if (target === "cloudrun" && region === undefined) {
    throw new UsageError(
      "Cloud Run needs --region REGION (or CLOUDSDK_RUN_REGION), e.g. us-central1",
    );
  }
  await checkCredentials(tool, values.context);
  if (namespaced) {
    const namespace = await kubectlNamespace(values.context);
    console.error(
      `namespace: ${namespace} (kubectl's current one; --set namespace=NS for another)`,
    );
    manifests = render({ ...options, namespace });
    for (const { object } of manifests) validateManifest(object);
  }
  await writeOut();

  const dir = values.out ?? await Deno.makeTempDir({ prefix: "svd-stream-deploy-" });
  try {
    if (values.out === undefined) await writeManifests(dir, manifests);
    for (const command of commands(dir)) await runCommand(command);
  } finally {
    if (values.out === undefined) await Deno.remove(dir, { recursive: true });
  }
}

/** Fails with one line when the tool has no credentials or no cluster to talk to. */
async function checkCredentials(tool: "gcloud" | "kubectl", context?: string): Promise<void> {
  if (tool === "gcloud") {
    const { ok, output } = await probeCommand([
      "gcloud",
      "auth",
      "list",
      "--filter=status:ACTIVE",
      "--format=value(account)",
    ]);
    if (!ok || output === "") {
      throw new Error(
        "gcloud has no active account: run `gcloud auth login` (or use a service account, e.g. " +
          "google-github-actions/auth in CI), or use --dry-run",
      );
    }
  } else {
    const { ok, output } = await probeCommand(
      context
        ? ["kubectl", "config", "get-contexts", context]
        : ["kubectl", "config", "current-context"],
    );
    if (!ok) {
      throw new Error(
        `kubectl has no ${context ? `context "${context}"` : "current context"} (${
          output.split("\n")[0]
        }): configure access to a cluster or use --dry-run`,
      );
    }
  }
}

/** The namespace of kubectl's current (or the given) context: where an apply without -n goes. */
async function kubectlNamespace(context?: string): Promise<string> {
  const { ok, output } = await probeCommand([
    "kubectl",
    "config",
    "view",
    "--minify",
    "--output=jsonpath={..namespace}",
    ...(context ? [`--context=${context}`] : []),
  ]);
  if (!ok) throw new Error(`kubectl cannot tell its namespace (${output.split("\n")[0]})`);
  return output.trim() || "default";
}

/** One multi-document YAML stream. */
function toYaml(manifests: readonly RenderedManifest[]): string {
  return manifests.map(({ file, object }) => `# ${file}\n${stringify(object)}`).join("---\n");
}

async function writeManifests(dir: string, manifests: readonly RenderedManifest[]): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const { file, object } of manifests) {
    await Deno.writeTextFile(`${dir}/${file}`, stringify(object));
  }
}

if (import.meta.main) await runCli(main);
