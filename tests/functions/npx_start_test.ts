/**
 * The README's run command, `npx -y deno@2.9.6 task start`, as a user or a process manager stops
 * it: SIGTERM or SIGINT to the npx process, and nothing of the server is left behind (npm hands the
 * signal to `sh -c` only, which on dash dies without passing it on). Also: the start says nothing
 * alarming (no "Ignored build scripts" box, no ONNX Runtime error) and names the provider once.
 * A unit test of the watch with a fake process table comes first.
 *
 * Needs npx (the README's prerequisite); skipped without it. Run:
 * deno test --allow-read --allow-write --allow-env --allow-net=127.0.0.1 --allow-run
 *   tests/functions/npx_start_test.ts
 */

import assert from "node:assert/strict";
import { watchLauncher } from "../../functions/launcher_watch.ts";
import { missingProviderLibraries } from "../../pipeline/runtime/provider_libraries.ts";
import { waitFor } from "./_service.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

Deno.test("watchLauncher() fires once a link between the server and npm is broken, and only under npm exec", async () => {
  // 100 (server) -> 10 (deno task) -> 9 (sh -c) -> 8 (npm exec) -> 1
  const table = new Map([
    [10, { ppid: 9, command: "deno task start" }],
    [9, { ppid: 8, command: "sh -c 'deno' task start" }],
    [8, { ppid: 1, command: "npm exec deno@2.9.6 task start" }],
  ]);
  const inspect = (pids: readonly number[]) =>
    Promise.resolve(new Map(pids.flatMap((pid) => table.has(pid) ? [[pid, table.get(pid)!]] : [])));
  const under = (env: Record<string, string>) => (name: string) => env[name];
  assert.equal(
    await watchLauncher({ env: under({}), onGone: () => {}, ppid: () => 10, inspect }),
    undefined,
    "not started by npm: not watched",
  );
  assert.equal(
    await watchLauncher({
      env: under({ npm_command: "exec" }),
      onGone: () => {},
      inspect: () => Promise.reject(new Error("ps: not found")),
    }),
    undefined,
    "no ps: not watched",
  );
  const gone: string[] = [];
  const stop = await watchLauncher({
    env: under({ npm_command: "exec" }),
    onGone: (reason) => gone.push(reason),
    intervalMs: 10,
    ppid: () => 10,
    inspect,
  });
  assert.ok(stop, "watched");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(gone, [], "nothing broken yet");
  table.delete(9); // npm forwarded SIGTERM to the shell, which died
  table.set(10, { ppid: 1, command: "deno task start" }); // deno task is re-parented
  await waitFor(() => gone.length > 0, "the watch to fire", 5000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(gone.length, 1);
  assert.match(gone[0], /pid 8/);
  stop();
});

/** Whether npx runs here. */
const npxMissing = await new Deno.Command("npx", { args: ["--version"], stdout: "null" })
  .output()
  .then((o) => (o.success ? undefined : "npx --version failed"), (e) => String(e));

/** The processes started under `root` (its descendants), from `ps`. */
async function descendants(root: number): Promise<Map<number, string>> {
  const { stdout } = await new Deno.Command("ps", {
    args: ["-eo", "pid=,ppid=,args="],
    stdout: "piped",
  }).output();
  const children = new Map<number, { pid: number; command: string }[]>();
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    const match = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const [pid, ppid] = [Number(match[1]), Number(match[2])];
    children.set(ppid, [...children.get(ppid) ?? [], { pid, command: match[3] }]);
  }
  const found = new Map<number, string>();
  const visit = (pid: number) => {
    for (const child of children.get(pid) ?? []) {
      found.set(child.pid, child.command);
      visit(child.pid);
    }
  };
  visit(root);
  return found;
}

/** Which of `pids` still live (zombies excluded). */
async function alive(pids: Iterable<number>): Promise<number[]> {
  const list = [...pids];
  if (list.length === 0) return [];
  const { stdout } = await new Deno.Command("ps", {
    args: ["-o", "pid=,stat=", "-p", list.join(",")],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(stdout).split("\n").flatMap((line) => {
    const match = /^\s*(\d+)\s+(\S+)/.exec(line);
    return match && !match[2].startsWith("Z") ? [Number(match[1])] : [];
  });
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test({
    name: `${signal} to the README's npx command stops the server: no deno process is left`,
    ignore: npxMissing !== undefined || Deno.build.os === "windows",
    async fn() {
      const npx = new Deno.Command("npx", {
        args: ["-y", "deno@2.9.6", "task", "start"],
        cwd: ROOT,
        env: { PORT: "0", HOST: "127.0.0.1", NO_COLOR: "1", LOG_FORMAT: "json" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const lines: Record<string, unknown>[] = [];
      const stdout = (async () => {
        let buffer = "";
        for await (const text of npx.stdout.pipeThrough(new TextDecoderStream())) {
          buffer += text;
          const parts = buffer.split("\n");
          buffer = parts.pop()!;
          for (const line of parts) lines.push(JSON.parse(line));
        }
      })();
      const stderr = new Response(npx.stderr).text();
      let deno = new Map<number, string>();
      try {
        await waitFor(() => lines.some((l) => l.event === "ready"), "the ready line", 120_000);
        const tree = await descendants(npx.pid);
        deno = new Map([...tree].filter(([, command]) => /\bdeno\b/.test(command)));
        assert.ok(
          [...deno.values()].some((c) => /task start/.test(c)) &&
            [...deno.values()].some((c) => /main\.ts/.test(c)),
          `deno task start and main.ts run under npx: ${JSON.stringify([...tree])}`,
        );
        npx.kill(signal);
        await npx.status;
        await waitFor(
          async () => (await alive(deno.keys())).length === 0,
          "every deno process to exit",
          40_000,
        );
      } finally {
        for (const pid of await alive(deno.keys())) Deno.kill(pid, "SIGKILL");
        try {
          npx.kill("SIGKILL");
        } catch { /* already ended */ }
      }
      await stdout;
      assert.ok(lines.some((l) => l.event === "shutdown"), JSON.stringify(lines));
      const choices = lines.filter((l) => /ORT provider:/.test(String(l.message)));
      assert.equal(choices.length, 1, "the provider choice is logged once");
      const errors = await stderr;
      assert.doesNotMatch(errors, /Ignored build scripts|approve-scripts/);
      if (await missingProviderLibraries("cuda") !== undefined) {
        // CUDA is skipped without asking ONNX Runtime, which would print an error of its own.
        assert.doesNotMatch(errors, /onnxruntime|providers_shared/i);
      }
    },
  });
}

Deno.test("installing the npm packages afresh shows no 'Ignored build scripts' box", async () => {
  // A fresh node_modules from deno.json and deno.lock (packages from Deno's cache, which this
  // checkout's own install filled): what a new clone's first `deno task start` goes through.
  const dir = await Deno.makeTempDir({ prefix: "fresh_install_" });
  try {
    for (const file of ["deno.json", "deno.lock"]) {
      await Deno.copyFile(`${ROOT}/${file}`, `${dir}/${file}`);
    }
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["install", "--frozen"],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const errors = new TextDecoder().decode(stderr);
    assert.equal(code, 0, errors);
    assert.doesNotMatch(errors, /Ignored build scripts|approve-scripts/);
    // onnxruntime-node is there, its install script (the CUDA download) not run.
    const ort = `${dir}/node_modules/.deno/onnxruntime-node@1.30.0`;
    assert.ok(Deno.statSync(`${ort}/node_modules/onnxruntime-node/package.json`).isFile);
    assert.throws(() => Deno.statSync(`${ort}/.scripts-run`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
