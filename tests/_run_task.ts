/**
 * Runs `deno task NAME ...args` in the repository root as a user would, capturing its output.
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname;

/** Result of a task run. */
export interface TaskResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a deno task and returns its exit code and output. */
export async function runTask(
  name: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<TaskResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", name, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}
