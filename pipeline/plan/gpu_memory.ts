/**
 * How much GPU memory this host has, as `nvidia-smi` reports it. onnxruntime-node exposes no
 * device query (its CUDA options are only `deviceId`), so `nvidia-smi` is the source at start; it
 * ships with the NVIDIA driver and is mounted into GPU containers by the NVIDIA container toolkit.
 *
 * @module
 */

const MIB = 1024 ** 2;

/** What a probe found. */
export type GpuMemoryProbe =
  | { readonly found: true; readonly bytes: number; readonly name: string }
  | { readonly found: false; readonly reason: string };

/** Runs a command and returns its stdout (injectable for tests). */
export type CommandRunner = (
  command: string,
  args: readonly string[],
) => Promise<{ readonly code: number; readonly stdout: string; readonly stderr: string }>;

/** Runs `command` with `Deno.Command` (needs `--allow-run`). */
export const denoCommandRunner: CommandRunner = async (command, args) => {
  const output = await new Deno.Command(command, {
    args: [...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
};

/**
 * `memory.total` of GPU `deviceId` from `nvidia-smi`, or why it could not be read (no driver,
 * no permission to run it, an unexpected answer). Never throws.
 */
export async function queryGpuMemory(
  deviceId = 0,
  run: CommandRunner = denoCommandRunner,
): Promise<GpuMemoryProbe> {
  let result;
  try {
    result = await run("nvidia-smi", [
      "--query-gpu=memory.total,name",
      "--format=csv,noheader,nounits",
      `--id=${deviceId}`,
    ]);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "nvidia-smi is not installed"
      : `nvidia-smi could not run: ${error instanceof Error ? error.message : String(error)}`;
    return { found: false, reason };
  }
  if (result.code !== 0) {
    const said = (result.stderr || result.stdout).trim().split("\n")[0] ?? "";
    return { found: false, reason: `nvidia-smi exited with ${result.code}: ${said}` };
  }
  return parseMemoryTotal(result.stdout);
}

/** Parses `23034, NVIDIA L4` (MiB, name), the first line of `nvidia-smi`'s CSV answer. */
export function parseMemoryTotal(stdout: string): GpuMemoryProbe {
  const line = stdout.trim().split("\n")[0] ?? "";
  const match = /^\s*(\d+)\s*,\s*(.+?)\s*$/.exec(line);
  if (!match) return { found: false, reason: `unexpected nvidia-smi answer "${line}"` };
  return { found: true, bytes: Number(match[1]) * MIB, name: match[2] };
}
