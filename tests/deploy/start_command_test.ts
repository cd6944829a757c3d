/**
 * The container's start command, exactly as deploy/Dockerfile's default stage gives it (CMD /
 * ENTRYPOINT), run here from the repository root with only `PORT` set: `MODEL_DIR` unset means the
 * tiny demo model. It must answer `/readyz` with 200 within 60 s, and the image's HEALTHCHECK
 * command must then pass.
 *
 * Run: deno test --allow-read --allow-write --allow-run --allow-env --allow-net=127.0.0.1 tests/deploy/start_command_test.ts
 */

import assert from "node:assert/strict";
import { DOCKERFILE, healthcheckCommand, parseStages, startCommand } from "./_dockerfile.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const READY_TIMEOUT_MS = 60_000;

/** A loopback port nobody listens on right now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Process ids started by `pid`, children before their parents' parents (read from /proc). */
function descendants(pid: number): number[] {
  const found: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = [...Deno.readDirSync(`/proc/${pid}/task`)].map((e) => e.name);
  } catch {
    return found;
  }
  for (const task of tasks) {
    let children: number[] = [];
    try {
      children = Deno.readTextFileSync(`/proc/${pid}/task/${task}/children`).trim().split(/\s+/)
        .filter((c) => c !== "").map(Number);
    } catch {
      continue;
    }
    for (const child of children) found.push(...descendants(child), child);
  }
  return found;
}

/** Collects a stream's text in the background (so that the child never blocks on a full pipe). */
function collect(stream: ReadableStream<Uint8Array>): () => string {
  let text = "";
  (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  })().catch(() => {});
  return () => text;
}

/** The environment of the start: the essentials of this one, PORT, and no MODEL_DIR. */
function startEnv(port: number): Record<string, string> {
  const env: Record<string, string> = { PORT: String(port), NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR", "TMPDIR", "LANG"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

Deno.test({
  name: "the container's start command serves /readyz 200 on the tiny demo model within 60 s",
  // The server's inference worker and job timers outlive single requests; the process is ended below.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const stages = parseStages(await Deno.readTextFile(DOCKERFILE));
    const stage = stages.at(-1)!; // what `docker build -f deploy/Dockerfile .` builds
    const argv = startCommand(stage);
    assert.deepEqual(argv.slice(0, 1), ["deno"], `start command ${JSON.stringify(argv)}`);
    // The image's `deno` is Deno 2.9.6; so is the one running this test.
    const [program, ...args] = [Deno.execPath(), ...argv.slice(1)];

    const port = freePort();
    const child = new Deno.Command(program, {
      args,
      cwd: ROOT,
      clearEnv: true,
      env: startEnv(port),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = collect(child.stdout);
    const stderr = collect(child.stderr);
    let exited: Deno.CommandStatus | undefined;
    child.status.then((status) => exited = status);
    const output = () => `\n--- stdout ---\n${stdout()}\n--- stderr ---\n${stderr()}`;

    try {
      const deadline = Date.now() + READY_TIMEOUT_MS;
      let last = "no answer yet";
      while (true) {
        if (exited) {
          assert.fail(`\`${argv.join(" ")}\` exited with ${exited.code} before ready${output()}`);
        }
        try {
          const response = await fetch(`http://127.0.0.1:${port}/readyz`, {
            signal: AbortSignal.timeout(5000),
          });
          last = `${response.status} ${await response.text()}`;
          if (response.status === 200) break;
        } catch (error) {
          last = (error as Error).message;
        }
        if (Date.now() > deadline) {
          assert.fail(
            `/readyz not 200 within ${READY_TIMEOUT_MS / 1000} s (last: ${last})${output()}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }

      const health = healthcheckCommand(stage)!;
      const check = await new Deno.Command(Deno.execPath(), {
        args: health.slice(1),
        cwd: ROOT,
        env: { PORT: String(port), NO_COLOR: "1" },
      }).output();
      assert.equal(check.code, 0, `HEALTHCHECK ${health.join(" ")} failed${output()}`);
    } finally {
      // `deno task` runs the server as its child: end the whole tree, children first.
      for (const pid of [...descendants(child.pid), child.pid]) {
        try {
          Deno.kill(pid, "SIGTERM");
        } catch {
          // Already gone.
        }
      }
      const stopped = await Promise.race([
        child.status.then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 15_000)),
      ]);
      if (!stopped) {
        for (const pid of [...descendants(child.pid), child.pid]) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch {
            // Already gone.
          }
        }
        await child.status;
      }
    }
  },
});
