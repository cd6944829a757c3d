/**
 * External tools of the deploy tasks (gcloud, kubectl, docker, podman): found on `PATH` without
 * running them, run with each command printed first, and a failure turned into one line.
 *
 * @module
 */

import { delimiter, join } from "node:path";

/** The repository root: where `docker build` runs and relative paths start. */
export const ROOT = new URL("..", import.meta.url).pathname;

/** Full path of `name` in `PATH`, or undefined when no executable file of that name is there. */
export function findExecutable(
  name: string,
  path = Deno.env.get("PATH") ?? "",
): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && info.mode !== null && (info.mode & 0o111) !== 0) return candidate;
    } catch {
      // Not in this directory (or not readable): try the next.
    }
  }
  return undefined;
}

/** Quotes a command for printing so that it can be copied into a shell. */
export function formatCommand(command: readonly string[]): string {
  return command.map((arg) =>
    /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`
  )
    .join(" ");
}

/** Options of {@linkcode runCommand}. */
export interface RunCommandOptions {
  /** Working directory (default: the repository root). */
  readonly cwd?: string;
  /** Extra environment variables. */
  readonly env?: Record<string, string>;
  /** Where the `$ command` line goes (default: stdout). */
  readonly print?: (line: string) => void;
}

/**
 * Prints `$ command` and runs it with the terminal's stdin, stdout and stderr.
 *
 * @throws {Error} one line naming the command and its exit code when it fails.
 */
export async function runCommand(
  command: readonly string[],
  options: RunCommandOptions = {},
): Promise<void> {
  (options.print ?? console.log)(`$ ${formatCommand(command)}`);
  const { code } = await new Deno.Command(command[0], {
    args: command.slice(1),
    cwd: options.cwd ?? ROOT,
    env: options.env,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) {
    throw new Error(
      `${formatCommand(command.slice(0, 3))} failed with exit code ${code} (its output is above)`,
    );
  }
}

/** Runs a quiet check (`kubectl config current-context`): its exit code and trimmed output. */
export async function probeCommand(
  command: readonly string[],
): Promise<{ ok: boolean; output: string }> {
  try {
    const out = await new Deno.Command(command[0], {
      args: command.slice(1),
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    const output = (decoder.decode(out.stdout) + decoder.decode(out.stderr)).trim();
    return { ok: out.code === 0, output };
  } catch (error) {
    return { ok: false, output: error instanceof Error ? error.message : String(error) };
  }
}
