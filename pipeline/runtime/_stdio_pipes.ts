/**
 * The inference process's stdio as its protocol channel, made safe and fast (in the child, which
 * has FFI):
 *
 * - **Native code cannot write into the protocol.** ONNX Runtime prints to the C++ `std::cout` in
 *   places (e.g. the CUDA attention kernel report of `ORT_ENABLE_ATTENTION_KERNEL_DEBUG_INFO`),
 *   which is file descriptor 1, the pipe the frames travel in. {@linkcode protocolStdout} moves
 *   the pipe to a new descriptor (`dup`), points descriptor 1 at stderr (`dup2`), and writes the
 *   frames to the new one with libc's `write` (on a helper thread: `nonblocking` FFI). Anything
 *   printed on "stdout" then lands in stderr, which the service passes through.
 * - **Larger pipes.** A Linux pipe holds 64 KiB, so a 99 MB decoder chunk crosses in 1,500 reads
 *   and writes; at 1 MiB (the default `/proc/sys/fs/pipe-max-size`) in 95
 *   (`fcntl(F_SETPIPE_SZ)`).
 *
 * On Windows, or where libc cannot be opened, the process uses `Deno.stdout` as it is.
 *
 * @module
 */

/** Bytes asked for each pipe. */
export const PIPE_BYTES = 1 << 20;

const F_SETPIPE_SZ = 1031;

const SYMBOLS = {
  dup: { parameters: ["i32"], result: "i32" },
  dup2: { parameters: ["i32", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
} as const;

/**
 * The stream the frames go out on: a private duplicate of stdout (descriptor 1 then leads to
 * stderr), with stdin's and stdout's pipes enlarged to {@linkcode PIPE_BYTES} on Linux. Call it
 * once, before ONNX Runtime is loaded.
 */
export function protocolStdout(): WritableStream<Uint8Array> {
  let libc: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    if (Deno.build.os === "windows") throw new Error("no libc");
    libc = Deno.dlopen(Deno.build.os === "darwin" ? "libSystem.B.dylib" : "libc.so.6", SYMBOLS);
  } catch {
    return Deno.stdout.writable;
  }
  if (Deno.build.os === "linux") {
    libc.symbols.fcntl(0, F_SETPIPE_SZ, PIPE_BYTES);
    libc.symbols.fcntl(1, F_SETPIPE_SZ, PIPE_BYTES);
  }
  const fd = libc.symbols.dup(1);
  if (fd < 0 || libc.symbols.dup2(2, 1) < 0) {
    libc.close();
    return Deno.stdout.writable;
  }
  const write = libc.symbols.write;
  return new WritableStream<Uint8Array>({
    async write(chunk) {
      for (let offset = 0; offset < chunk.length;) {
        const rest = chunk.subarray(offset);
        const written = Number(await write(fd, rest, BigInt(rest.length)));
        if (written <= 0) throw new Error(`write to the service failed (${written})`);
        offset += written;
      }
    },
  });
}
