/**
 * Temporary folders left by killed service processes are cleared at start — only ours, only
 * abandoned ones — while a live process's folder (even another process's, on the same `/tmp`) is
 * kept.
 *
 * Run: deno test --allow-read --allow-write --allow-run --allow-env tests/service/temp_dirs_test.ts
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { clearStaleTempDirs, ProcessTempDir } from "../../pipeline/service/temp_dirs.ts";

/** Starts `_temp_dir_owner.ts` on `root`; resolves once it holds its folder. */
async function owner(root: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      new URL("./_temp_dir_owner.ts", import.meta.url).pathname,
      root,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    line += value;
  }
  await reader.cancel();
  return { child, path: JSON.parse(line).path as string };
}

const HOUR = 3_600_000;

Deno.test("clearStaleTempDirs() removes the folder of a SIGKILLed process and keeps a live one's", async () => {
  const root = await Deno.makeTempDir({ prefix: "temp_dirs_test_" });
  try {
    const [live, killed] = [await owner(root), await owner(root)];
    await using mine = await ProcessTempDir.create(root);
    let cleared = await clearStaleTempDirs(root);
    assert.deepEqual(cleared.removed, [], "every owner is alive");
    assert.deepEqual(new Set(cleared.kept), new Set([live.path, killed.path, mine.path]));

    killed.child.kill("SIGKILL"); // as during an encode: the half-written clip stays
    await killed.child.status;
    cleared = await clearStaleTempDirs(root);
    assert.deepEqual(cleared.removed, [killed.path]);
    await assert.rejects(Deno.stat(killed.path), Deno.errors.NotFound);
    assert.ok((await Deno.stat(live.path)).isDirectory, "another live process's folder stays");
    assert.ok((await Deno.stat(mine.path)).isDirectory);

    live.child.kill("SIGKILL");
    await live.child.status;
    await mine.close();
    assert.deepEqual((await clearStaleTempDirs(root)).removed, [live.path]);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(root)), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("clearStaleTempDirs() clears old loose svd_job_* and lockless svd-stream-* folders, nothing else", async () => {
  const root = await Deno.makeTempDir({ prefix: "temp_dirs_test_" });
  try {
    const make = async (name: string, ageMs: number, file?: string) => {
      const path = join(root, name);
      await Deno.mkdir(path);
      if (file) await Deno.writeTextFile(join(path, file), "x");
      const time = new Date(Date.now() - ageMs);
      await Deno.utime(path, time, time);
      return path;
    };
    const oldJob = await make("svd_job_abc123", 2 * HOUR, "clip.mp4.partial.mp4");
    const youngJob = await make("svd_job_def456", 60_000);
    const oldLockless = await make("svd-stream-123-xyz", 2 * HOUR);
    const youngLockless = await make("svd-stream-124-xyz", 1000);
    const unrelated = await make("other_app_tmp", 10 * HOUR);
    await Deno.writeTextFile(join(root, "svd_job_file"), "a file, not a folder");
    const cleared = await clearStaleTempDirs(root);
    assert.deepEqual(new Set(cleared.removed), new Set([oldJob, oldLockless]));
    assert.deepEqual(new Set(cleared.kept), new Set([youngJob, youngLockless]));
    assert.ok((await Deno.stat(unrelated)).isDirectory);
    assert.ok((await Deno.stat(join(root, "svd_job_file"))).isFile);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("ProcessTempDir holds svd-stream-<pid>-* locked, and close() removes it with its jobs' folders", async () => {
  const root = await Deno.makeTempDir({ prefix: "temp_dirs_test_" });
  try {
    const temp = await ProcessTempDir.create(root);
    assert.ok(temp.path.startsWith(join(root, `svd-stream-${Deno.pid}-`)), temp.path);
    const other = await Deno.open(join(temp.path, ".lock"), { write: true });
    assert.equal(await other.tryLock(true), false, "locked while the process lives");
    other.close();
    await Deno.makeTempDir({ dir: temp.path, prefix: "svd_job_" });
    await temp.close();
    assert.deepEqual(await Array.fromAsync(Deno.readDir(root)), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
