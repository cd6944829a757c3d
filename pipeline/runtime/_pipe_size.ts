/**
 * Larger pipes for the inference process's stdin and stdout. A Linux pipe holds 64 KiB by
 * default, so a 99 MB decoder chunk crosses in 1,500 reads and writes; at 1 MiB (the default
 * `/proc/sys/fs/pipe-max-size`) in 95. `fcntl(F_SETPIPE_SZ)` through libc, in the child (which
 * has FFI); elsewhere, or when refused, the pipes stay as they are.
 *
 * @module
 */

/** Bytes asked for each pipe. */
export const PIPE_BYTES = 1 << 20;

/**
 * Asks for {@linkcode PIPE_BYTES} on stdin and stdout (Linux only). Returns the sizes obtained
 * (undefined where not a pipe, not Linux, or refused).
 */
export function enlargeStdioPipes(): { stdin?: number; stdout?: number } {
  if (Deno.build.os !== "linux") return {};
  const F_SETPIPE_SZ = 1031;
  try {
    const libc = Deno.dlopen("libc.so.6", {
      fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
    });
    try {
      const size = (fd: number) => {
        const got = libc.symbols.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES);
        return got > 0 ? got : undefined;
      };
      return { stdin: size(0), stdout: size(1) };
    } finally {
      libc.close();
    }
  } catch {
    return {};
  }
}
