/**
 * Image preparation benchmark: how long the main thread stalls while an upload is validated,
 * decoded, resized and tensorised, on the main thread (`prepareImage`, as before) and in an
 * `ImagePool` worker, and what one preparation costs in memory.
 *
 * Cases (the issue's): a 16 Mpx PNG (4000×4000) to 1024×576, a 16 Mpx progressive JPEG to
 * 1024×576, a 512×512 PNG upscaled to 2048×2048; each also validated alone (`validate`, what the
 * door runs). For each it prints the preparation's wall time, the worst lateness of a 1 ms
 * `setInterval` probe on the main thread, the slowest `/healthz` seen by `curl` polling a
 * loopback `Deno.serve` from another process every 10 ms, and the peak RSS above the level
 * before (Linux `VmHWM`; the pool's workers are threads of the same process). Each measurement runs in a fresh Deno process, so the peak is its own;
 * pool modes start their worker (modules loaded) before measuring, as a running service has.
 *
 * Usage: deno task bench image-prep [--runs 3] [--workers 1]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ImagePool } from "../../pipeline/image/image_pool.ts";
import { prepareImage, type PrepareImageOptions } from "../../pipeline/image/prepare_image.ts";

interface Case {
  readonly name: string;
  readonly path: string;
  readonly options: PrepareImageOptions;
}

interface Sample {
  readonly wallMs: number;
  readonly stallMs: number;
  readonly healthzMs: number;
  readonly peakRssMiB: number;
}

/** Runs the benchmark (or, with `--child`, one measurement in this process). */
export async function imagePrep(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      runs: { type: "string", default: "3" },
      workers: { type: "string", default: "1" },
      child: { type: "string" },
    },
  });
  if (values.child) return await child(JSON.parse(values.child));
  const runs = Number(values.runs);
  console.log("making inputs with ffmpeg and jpegtran…");
  const dir = await Deno.makeTempDir({ prefix: "svd_bench_image_" });
  try {
    const cases = await makeCases(dir);
    for (const c of cases) {
      const { size } = await Deno.stat(c.path);
      console.log(`  ${c.name}: ${(size / 2 ** 20).toFixed(2)} MiB`);
    }
    const rows: string[][] = [];
    for (const c of cases) {
      for (const mode of MODES) {
        const samples: Sample[] = [];
        for (let i = 0; i < runs; i++) {
          samples.push(await inChild({ ...c, mode, workers: Number(values.workers) }));
        }
        rows.push([
          c.name,
          mode,
          fmt(median(samples.map((s) => s.wallMs))),
          fmt(Math.max(...samples.map((s) => s.stallMs))),
          fmt(Math.max(...samples.map((s) => s.healthzMs))),
          fmt(Math.max(...samples.map((s) => s.peakRssMiB))),
        ]);
        console.log(rows.at(-1)!.join(" | "));
      }
    }
    console.log(
      `\n${runs} runs each, each in a fresh process; ${values.workers} worker(s); ` +
        "wall = median, the rest = worst\n",
    );
    printTable(
      ["input", "mode", "wall ms", "worst stall ms", "worst /healthz ms", "peak RSS +MiB"],
      rows,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const MODES = ["main thread prepareImage", "ImagePool.prepare", "ImagePool.validate"] as const;

interface ChildTask {
  readonly name: string;
  readonly path: string;
  readonly options: PrepareImageOptions;
  readonly mode: (typeof MODES)[number];
  readonly workers: number;
}

/** Runs one measurement in a fresh Deno process, so its peak RSS is its own. */
async function inChild(task: ChildTask): Promise<Sample> {
  const self = new URL(import.meta.url).pathname;
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      ...["run", "--allow-read", "--allow-write", "--allow-env", "--allow-run"],
      ...["--allow-net=127.0.0.1", self, "--child", JSON.stringify(task)],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) throw new Error(`measurement failed: ${new TextDecoder().decode(stderr)}`);
  return JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").at(-1)!);
}

/** The child: a `/healthz` server, the poller, the probe, one preparation; prints a Sample. */
async function child(task: ChildTask): Promise<void> {
  const bytes = await Deno.readFile(task.path);
  await using server = startHealthz();
  const pool = new ImagePool({ workers: task.workers });
  try {
    // a worker started with its modules loaded, as in a running service
    if (task.mode !== "main thread prepareImage") {
      await pool.validate(new Uint8Array(0), { maxPixels: 1 }).catch(() => {}); // empty: refused
    }
    const run = task.mode === "main thread prepareImage"
      ? () => prepareImage(bytes, task.options)
      : task.mode === "ImagePool.prepare"
      ? () => pool.prepare(bytes, task.options)
      : () => pool.validate(bytes, task.options);
    console.log(JSON.stringify(await measure(run, server.port)));
  } finally {
    await pool.close();
  }
}

/** One preparation with the main-thread probe, the external /healthz poller and VmHWM. */
async function measure(run: () => Promise<unknown>, port: number): Promise<Sample> {
  const baseline = Deno.memoryUsage().rss;
  const poller = pollHealthz(port);
  await new Promise((resolve) => setTimeout(resolve, 200)); // the poller is polling
  let stall = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    stall = Math.max(stall, now - last - 1);
    last = now;
  }, 1);
  const started = performance.now();
  await run();
  const wallMs = performance.now() - started;
  await new Promise((resolve) => setTimeout(resolve, 20)); // the probe sees the end of a stall
  clearInterval(probe);
  const healthzMs = await poller.stop();
  return {
    wallMs,
    stallMs: stall,
    healthzMs,
    peakRssMiB: ((await peakRss()) - baseline) / 2 ** 20,
  };
}

/** A loopback server with `/healthz`, as the service has. */
function startHealthz(): { port: number; [Symbol.asyncDispose](): Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("ok"),
  );
  return { port: server.addr.port, [Symbol.asyncDispose]: () => server.shutdown() };
}

/** `curl` polling `/healthz` every 10 ms from another process; `stop()` gives the slowest. */
function pollHealthz(port: number): { stop(): Promise<number> } {
  const url = `http://127.0.0.1:${port}/healthz`;
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `while :; do curl -s -o /dev/null --max-time 60 -w '%{time_total}\\n' ${url}; sleep 0.01; done`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const output = new Response(child.stdout).text();
  return {
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      const times = (await output).trim().split("\n").map(Number).filter(Number.isFinite);
      return Math.max(0, ...times) * 1000;
    },
  };
}

/** This process's peak RSS (VmHWM), read by `cat`: Deno reads no /proc file without --allow-all. */
async function peakRss(): Promise<number> {
  const { stdout } = await new Deno.Command("cat", { args: [`/proc/${Deno.pid}/status`] }).output();
  const kib = Number(/VmHWM:\s+(\d+) kB/.exec(new TextDecoder().decode(stdout))?.[1]);
  return kib * 1024;
}

/** The inputs, written into `dir`. */
async function makeCases(dir: string): Promise<Case[]> {
  const make = async (file: string, source: string, options: string[] = []) => {
    await run("ffmpeg", [
      ...["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source],
      ...["-frames:v", "1", ...options, `${dir}/${file}`],
    ]);
    return `${dir}/${file}`;
  };
  const png16 = await make("16mpx.png", "testsrc2=size=4000x4000");
  const baseline = await make("16mpx.jpg", "testsrc2=size=4000x4000", ["-q:v", "3"]);
  const jpeg16 = `${dir}/16mpx_p.jpg`;
  await run("jpegtran", ["-progressive", "-outfile", jpeg16, baseline]);
  const png512 = await make("512.png", "testsrc2=size=512x512");
  const target = { policy: "cover" as const, maxPixels: 16e6 };
  return [
    {
      name: "16 Mpx PNG → 1024×576",
      path: png16,
      options: { width: 1024, height: 576, ...target },
    },
    {
      name: "16 Mpx progressive JPEG → 1024×576",
      path: jpeg16,
      options: { width: 1024, height: 576, ...target },
    },
    {
      name: "512² PNG upscaled → 2048²",
      path: png512,
      options: { width: 2048, height: 2048, ...target },
    },
  ];
}

async function run(command: string, args: string[]): Promise<void> {
  const { success, stderr } = await new Deno.Command(command, { args, stderr: "piped" }).output();
  if (!success) throw new Error(`${command} failed: ${new TextDecoder().decode(stderr)}`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function fmt(value: number): string {
  return value < 10 ? value.toFixed(1) : value.toFixed(0);
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const row of rows) console.log(line(row));
}

if (import.meta.main) await imagePrep(Deno.args);
