/**
 * .github/workflows/deploy.yml: on a version tag it installs Deno 2.9.6, passes `deno task ok`,
 * logs in to Google Cloud and its registry with workload identity (GitHub's OIDC token, no stored
 * password or key), then builds, pushes and deploys with the project's own tasks.
 *
 * Run: deno test --allow-read --allow-env tests/deploy/workflow_test.ts
 */

import assert from "node:assert/strict";
import { parse } from "yaml";

const PATH = new URL("../../.github/workflows/deploy.yml", import.meta.url).pathname;
const text = await Deno.readTextFile(PATH);

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
}
interface Workflow {
  on: { push?: { tags?: string[]; branches?: string[] } };
  jobs: Record<string, { steps: Step[] }>;
}

const workflow = parse(text) as Workflow;
const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);

function stepIndex(predicate: (step: Step) => boolean, what: string): number {
  const index = steps.findIndex(predicate);
  assert.ok(index >= 0, `no step ${what}`);
  return index;
}

Deno.test("deploy.yml runs on version tags only", () => {
  assert.deepEqual(workflow.on.push?.tags, ["v*"]);
  assert.equal(workflow.on.push?.branches, undefined);
});

Deno.test("deploy.yml installs Deno 2.9.6 and passes deno task ok before building anything", () => {
  const checkout = stepIndex((s) => s.uses?.startsWith("actions/checkout@") ?? false, "checks out");
  const deno = stepIndex(
    (s) => s.uses?.startsWith("denoland/setup-deno@") ?? false,
    "installs Deno",
  );
  assert.equal(steps[deno].with?.["deno-version"], "2.9.6");
  const ok = stepIndex((s) => /^deno task ok$/m.test(s.run ?? ""), "runs deno task ok");
  const image = stepIndex(
    (s) => /deno task image --push --tag /.test(s.run ?? ""),
    "pushes the image",
  );
  const deploy = stepIndex(
    (s) => /deno task deploy --target cloudrun --image "\$IMAGE"/.test(s.run ?? ""),
    "runs deno task deploy",
  );
  assert.ok(checkout < deno && deno < ok && ok < image && image < deploy);
});

Deno.test("deploy.yml logs in to Google Cloud and the registry with workload identity, no stored password", () => {
  const workflowPermissions = (parse(text) as { permissions?: Record<string, string> }).permissions;
  assert.equal(workflowPermissions?.["id-token"], "write", "GitHub's OIDC token for the job");
  const authIndex = stepIndex(
    (s) => s.uses?.startsWith("google-github-actions/auth@") ?? false,
    "authenticates to Google Cloud",
  );
  const auth = steps[authIndex] as Step & { id?: string };
  assert.match(String(auth.with?.workload_identity_provider), /^\$\{\{ (secrets|vars)\.\w+ \}\}$/);
  assert.match(String(auth.with?.service_account), /^\$\{\{ (secrets|vars)\.\w+ \}\}$/);
  assert.equal(auth.with?.token_format, "access_token");
  assert.equal(auth.with?.credentials_json, undefined, "no service account key");
  const loginIndex = stepIndex(
    (s) => s.uses?.startsWith("docker/login-action@") ?? false,
    "logs in to the registry",
  );
  assert.ok(authIndex < loginIndex);
  const login = steps[loginIndex];
  assert.equal(login.with?.username, "oauth2accesstoken");
  assert.equal(login.with?.password, `\${{ steps.${auth.id}.outputs.access_token }}`);
  // No stored registry password or key anywhere, and no credential-looking literal.
  assert.doesNotMatch(text, /secrets\.\w*(PASSWORD|_KEY|CREDENTIALS)\b/);
  assert.doesNotMatch(text, /(password|token|key)\s*:\s*(?!\$\{\{)["']?\w{8,}/i);
});
