/**
 * The service's temporary files, and clearing what a killed process left. Each service process
 * owns one folder under the system's temporary directory, `svd-stream-<pid>-<random>/`, and holds
 * an exclusive lock (`flock`) on its `.lock` file for as long as it lives; each job's clip is
 * written in a `svd_job_*` folder inside it. A process that is SIGKILLed (or OOM-killed) mid-encode
 * leaves its folder, but the kernel releases its lock.
 *
 * At start, {@linkcode clearStaleTempDirs} removes only what is provably ours and abandoned, so
 * several service processes can share one machine and one `/tmp`:
 *
 * - `svd-stream-*` folders whose `.lock` it can lock: their owner is gone (a live owner holds the
 *   lock; PIDs are not trusted, since they are reused and differ between containers);
 * - `svd-stream-*` folders without a `.lock` (a crash between creating the folder and locking it)
 *   and `svd_job_*` folders directly in the temporary directory (where earlier versions wrote),
 *   only when untouched for an hour: no live job keeps a folder that long without writing.
 *
 * @example
 * ```ts
 * import { clearStaleTempDirs, ProcessTempDir } from "./temp_dirs.ts";
 * const { removed } = await clearStaleTempDirs();
 * await using temp = await ProcessTempDir.create();
 * runVideoJob(image, spec, { ..., tempDir: temp.path });
 * ```
 *
 * @module
 */

import { tmpdir } from "node:os";
import { join } from "node:path";

/** Prefix of a service process's folder. */
export const PROCESS_DIR_PREFIX = "svd-stream-";
/** Prefix of one job's folder (inside a process's folder; directly in the root before). */
export const JOB_DIR_PREFIX = "svd_job_";
const LOCK_FILE = ".lock";
/** How long an unlockable-by-construction folder must be untouched before it is removed. */
const ABANDONED_AFTER_MS = 3_600_000;

/** This process's temporary folder, locked while it lives; see the module doc. */
export class ProcessTempDir implements AsyncDisposable {
  /** The folder; pass it as `tempDir` to the jobs. */
  readonly path: string;
  readonly #lock: Deno.FsFile;

  private constructor(path: string, lock: Deno.FsFile) {
    this.path = path;
    this.#lock = lock;
  }

  /**
   * Creates and locks `svd-stream-<pid>-<random>/` in `root` (default: the system's temporary
   * directory, `TMPDIR` or /tmp).
   */
  static async create(root: string = tmpdir()): Promise<ProcessTempDir> {
    const path = await Deno.makeTempDir({ dir: root, prefix: `${PROCESS_DIR_PREFIX}${Deno.pid}-` });
    const lock = await Deno.open(join(path, LOCK_FILE), { create: true, write: true });
    if (!await lock.tryLock(true)) {
      lock.close();
      throw new Error(`Cannot lock the new temporary folder "${path}"`);
    }
    return new ProcessTempDir(path, lock);
  }

  /** Removes the folder and everything in it, and releases the lock. */
  async close(): Promise<void> {
    await Deno.remove(this.path, { recursive: true }).catch(() => {});
    try {
      this.#lock.close();
    } catch {
      // already closed
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** What {@linkcode clearStaleTempDirs} did. */
export interface ClearedTempDirs {
  /** Folders removed, full paths. */
  readonly removed: readonly string[];
  /** Folders of live processes (or too young to judge), left alone. */
  readonly kept: readonly string[];
}

/**
 * Removes the temporary folders killed service processes left (see the module doc). Never
 * throws for a folder it cannot read or remove: it is kept and the next start tries again.
 *
 * @param root where to look (default: the system's temporary directory)
 */
export async function clearStaleTempDirs(
  root: string = tmpdir(),
  now: number = Date.now(),
): Promise<ClearedTempDirs> {
  const removed: string[] = [];
  const kept: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(root));
  } catch {
    return { removed, kept };
  }
  for (const entry of entries) {
    if (!entry.isDirectory) continue;
    const path = join(root, entry.name);
    let stale = false;
    if (entry.name.startsWith(PROCESS_DIR_PREFIX)) {
      stale = await ownerGone(path, now);
    } else if (entry.name.startsWith(JOB_DIR_PREFIX)) {
      stale = await untouchedSince(path, now - ABANDONED_AFTER_MS);
    } else {
      continue;
    }
    if (!stale) {
      kept.push(path);
      continue;
    }
    try {
      await Deno.remove(path, { recursive: true });
      removed.push(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) kept.push(path); // another process was faster
    }
  }
  return { removed, kept };
}

/** True when nobody holds the folder's lock (taking it for a moment), or, lockless, it is old. */
async function ownerGone(path: string, now: number): Promise<boolean> {
  let lock: Deno.FsFile;
  try {
    lock = await Deno.open(join(path, LOCK_FILE), { read: true, write: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return await untouchedSince(path, now - ABANDONED_AFTER_MS);
    }
    return false;
  }
  try {
    return await lock.tryLock(true);
  } catch {
    return false;
  } finally {
    lock.close(); // releases the lock if it was taken; the folder goes right after
  }
}

async function untouchedSince(path: string, since: number): Promise<boolean> {
  try {
    const { mtime } = await Deno.stat(path);
    return mtime !== null && mtime.getTime() < since;
  } catch {
    return false;
  }
}
