/**
 * Stops the server when the `npx` that launched it is gone, as the README's run command
 * (`npx -y deno@2.9.6 task start`) promises Ctrl-C and SIGTERM do.
 *
 * Why it is needed: npm runs the command through `sh -c` and forwards SIGTERM and SIGINT to that
 * shell only. Where `sh` is dash (Debian, Ubuntu) the shell does not `exec` the command: it dies
 * of the signal, and `deno task` (which does forward signals to the server) and the server live
 * on as orphans, holding the port and the model. A terminal's Ctrl-C reaches every process of
 * the foreground group and is not affected; `kill <npx pid>`, a process manager or an IDE
 * stopping the command is. So, only when started by `npm exec` (`npm_command=exec`), the chain of
 * processes from the server up to npm is noted at start and checked every 2 s with `ps` (Deno
 * reads `/proc` only with all permissions): once a link is broken (npm, its shell or `deno task`
 * exited, so a process was re-parented), the server drains and exits as on SIGTERM. Without `ps`
 * nothing is watched.
 *
 * A server started any other way (`deno task start`, a container, `nohup`) is never watched.
 *
 * @module
 */

/** A process as `ps` shows it. */
export interface ProcessInfo {
  readonly ppid: number;
  readonly command: string;
}

/** Options of {@linkcode watchLauncher}. */
export interface LauncherWatchOptions {
  /** Environment lookup (`(name) => Deno.env.get(name)`). */
  readonly env: (name: string) => string | undefined;
  /** Called once when the launcher is gone. */
  readonly onGone: (reason: string) => void;
  /** Check interval, in milliseconds (default 2000). */
  readonly intervalMs?: number;
  /** This process's parent pid (default `Deno.ppid`). */
  readonly ppid?: () => number;
  /** The live processes among `pids` (default: `ps`); rejects when it cannot tell. */
  readonly inspect?: (pids: readonly number[]) => Promise<Map<number, ProcessInfo>>;
}

/** How far up the tree the npm process is looked for. */
const MAX_DEPTH = 6;

/**
 * Starts watching when this process runs under `npm exec`; see the module doc.
 *
 * @returns a function that stops watching (resolved once the chain up to npm is known), or
 * undefined when nothing is watched.
 */
export async function watchLauncher(
  options: LauncherWatchOptions,
): Promise<(() => void) | undefined> {
  if (options.env("npm_command") !== "exec") return undefined;
  const ppid = options.ppid ?? (() => Deno.ppid);
  const inspect = options.inspect ?? psInspect;
  // chain[0] is our parent; each next one is the previous one's parent, up to npm.
  const chain = [ppid()];
  try {
    for (;;) {
      const info = (await inspect([chain.at(-1)!])).get(chain.at(-1)!);
      if (info === undefined) return undefined;
      if (isNpm(info.command)) break;
      if (info.ppid <= 1 || chain.length >= MAX_DEPTH) return undefined;
      chain.push(info.ppid);
    }
  } catch {
    return undefined; // no `ps`: not watched
  }
  const intact = async () => {
    if (ppid() !== chain[0]) return false;
    const live = await inspect(chain);
    return chain.every((pid, i) => {
      const info = live.get(pid);
      return info !== undefined && (i + 1 === chain.length || info.ppid === chain[i + 1]);
    });
  };
  let checking = false;
  const timer = setInterval(async () => {
    if (checking) return;
    checking = true;
    try {
      if (await intact()) return;
      clearInterval(timer);
      options.onGone(`the npm exec (npx) that started the server, pid ${chain.at(-1)}, is gone`);
    } catch {
      // `ps` failed this once: look again next time.
    } finally {
      checking = false;
    }
  }, options.intervalMs ?? 2000);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}

/** npm's process title (`npm exec deno@2.9.6 task start`) or its script path. */
function isNpm(command: string): boolean {
  return /^npm (exec|x)\b/.test(command) || /\bnpm(-cli|x-cli)?\.js\b/.test(command);
}

/** `ps -o pid=,ppid=,stat=,args= -p …`; zombies (exited, not yet reaped) count as gone. */
async function psInspect(pids: readonly number[]): Promise<Map<number, ProcessInfo>> {
  const { stdout } = await new Deno.Command("ps", {
    args: ["-o", "pid=,ppid=,stat=,args=", "-p", pids.join(",")],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output(); // exits 1 when none of the pids lives: an empty answer
  const live = new Map<number, ProcessInfo>();
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    const match = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (match && !match[3].startsWith("Z")) {
      live.set(Number(match[1]), { ppid: Number(match[2]), command: match[4] });
    }
  }
  return live;
}
