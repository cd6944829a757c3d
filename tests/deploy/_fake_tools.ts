/**
 * Stand-ins for gcloud, kubectl, docker and podman: shell scripts in a temporary folder that log
 * their arguments to a file and exit as told, so that the deploy tasks run end to end without a
 * cloud, a cluster or a daemon (and without any network).
 *
 * @module
 */

/** How one fake tool behaves: `exits` maps an argument prefix to an exit code and output. */
export interface FakeTool {
  readonly name: string;
  /** First matching prefix wins (arguments joined by spaces); default: exit 0, no output. */
  readonly answers?: ReadonlyArray<{ prefix: string; code: number; output?: string }>;
}

/** A folder of fake tools and the log of their calls. */
export interface FakeBin extends AsyncDisposable {
  readonly dir: string;
  /** `PATH` with only the fakes and a link to Deno: no real gcloud, kubectl, docker or podman. */
  readonly path: string;
  /** Every call so far, as `name arg1 arg2 …`. */
  calls(): Promise<string[]>;
}

/** Writes the fakes into a fresh temporary folder. */
export async function fakeBin(tools: readonly FakeTool[]): Promise<FakeBin> {
  const dir = await Deno.makeTempDir({ prefix: "deploy_fake_bin_" });
  const log = `${dir}/calls.log`;
  await Deno.writeTextFile(log, "");
  for (const tool of tools) {
    const cases = (tool.answers ?? []).map(({ prefix, code, output }) =>
      `  ${JSON.stringify(`${prefix}`)}*) ${
        output ? `echo ${shellQuote(output)}; ` : ""
      }exit ${code};;`
    ).join("\n");
    const script = `#!/bin/sh
echo "${tool.name} $*" >> ${shellQuote(log)}
case "$*" in
${cases}
esac
exit 0
`;
    await Deno.writeTextFile(`${dir}/${tool.name}`, script, { mode: 0o755 });
  }
  await Deno.symlink(Deno.execPath(), `${dir}/deno`);
  return {
    dir,
    path: dir,
    calls: async () => (await Deno.readTextFile(log)).split("\n").filter((l) => l !== ""),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
