/**
 * `/healthz` while the real server takes a large image: starts `main.ts` (the tiny demo model) in
 * a subprocess, polls its `/healthz` with `curl` from another process every 10 ms, and POSTs a
 * 16 Mpx PNG and a 16 Mpx progressive JPEG (4000×4000, ffmpeg and jpegtran) — each read and
 * parsed, validated whole in the image pool at the door, then decoded, resized and tensorised
 * again in the pool by its job, which then generates a small clip (in the inference process, which
 * takes the CPU's cores meanwhile). Prints, per upload, the time to the 202 and the slowest
 * `/healthz` answer until then (reading, parsing, validating), then the time to the job's end and
 * the slowest answer during the job (preparing, generating, encoding); and the slowest while idle,
 * for comparison. The target: under 50 ms.
 *
 * Usage: deno task bench healthz [--runs 3]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { MainProcess } from "../functions/_main_process.ts";
import { upload } from "../functions/_service.ts";

/** Runs the benchmark. */
export async function healthzLatency(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { runs: { type: "string", default: "3" } } });
  const dir = await Deno.makeTempDir({ prefix: "svd_bench_healthz_" });
  try {
    console.log("making inputs with ffmpeg and jpegtran…");
    const inputs = await makeInputs(dir);
    await using service = new MainProcess({ MAX_UPLOAD_BYTES: String(64 * 2 ** 20) });
    const url = await service.url();
    await service.line("ready");
    await generate(url, await Deno.readFile("tests/fixtures/tiny/input.png")); // warm
    const rows: string[][] = [];
    const idle = pollHealthz(url);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const idleWorst = await idle.stop();
    rows.push(["(idle, 3 s)", "", fmt(idleWorst.worst), "", "", String(idleWorst.count)]);
    for (const input of inputs) {
      const bytes = await Deno.readFile(input.path);
      for (let run = 1; run <= Number(values.runs); run++) {
        let accepted = { worst: 0, count: 0 };
        let poller = pollHealthz(url);
        const times = await generate(url, bytes, async () => {
          accepted = await poller.stop();
          poller = pollHealthz(url);
        });
        const job = await poller.stop();
        rows.push([
          `${input.name} (${(bytes.length / 2 ** 20).toFixed(1)} MiB) #${run}`,
          fmt(times.acceptedMs),
          fmt(accepted.worst),
          fmt(times.doneMs),
          fmt(job.worst),
          String(accepted.count + job.count),
        ]);
        console.log(rows.at(-1)!.join(" | "));
      }
    }
    console.log();
    const header = [
      "upload",
      "202 after ms",
      "worst /healthz ms until 202",
      "job done after ms",
      "worst /healthz ms in the job",
      "polls",
    ];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join(" | ");
    console.log(line(header));
    console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
    for (const row of rows) console.log(line(row));
    const door = Math.max(...rows.slice(1).map((r) => Number(r[2])));
    const job = Math.max(...rows.slice(1).map((r) => Number(r[4])));
    console.log(`\nworst /healthz while uploads were read and validated: ${fmt(door)} ms`);
    console.log(`worst /healthz while their jobs ran: ${fmt(job)} ms`);
    console.log(
      `RESULT ${
        JSON.stringify({ idle_worst_ms: idleWorst.worst, door_worst_ms: door, job_worst_ms: job })
      }`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Submits `bytes` and waits for its job's end; the times to the 202 and to the end. */
async function generate(url: string, bytes: Uint8Array, onAccepted?: () => Promise<void>) {
  const started = performance.now();
  const response = await fetch(`${url}/v1/generations`, {
    method: "POST",
    body: upload(bytes, { steps: "2", num_frames: "4", width: "128", height: "64" }),
  });
  const body = await response.json();
  if (response.status !== 202) throw new Error(`${response.status}: ${JSON.stringify(body)}`);
  const acceptedMs = performance.now() - started;
  await onAccepted?.();
  for (;;) {
    const status = await (await fetch(`${url}${body.status_url}`)).json();
    if (status.status === "done") break;
    if (status.status === "error" || status.status === "cancelled") {
      throw new Error(`job ${status.status}: ${JSON.stringify(status)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { acceptedMs, doneMs: performance.now() - started };
}

/** `curl` polling `/healthz` every 10 ms from another process; `stop()` gives the slowest. */
function pollHealthz(url: string): { stop(): Promise<{ worst: number; count: number }> } {
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `while :; do curl -s -o /dev/null --max-time 60 -w '%{time_total}\\n' ${url}/healthz; ` +
      "sleep 0.01; done",
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
      return { worst: Math.max(0, ...times) * 1000, count: times.length };
    },
  };
}

async function makeInputs(dir: string): Promise<{ name: string; path: string }[]> {
  const run = async (command: string, args: string[]) => {
    const { success, stderr } = await new Deno.Command(command, { args, stderr: "piped" })
      .output();
    if (!success) throw new Error(`${command} failed: ${new TextDecoder().decode(stderr)}`);
  };
  const ffmpeg = (file: string, options: string[] = []) =>
    run("ffmpeg", [
      ...["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"],
      ...["-i", "testsrc2=size=4000x4000", "-frames:v", "1", ...options, `${dir}/${file}`],
    ]);
  await ffmpeg("16mpx.png");
  await ffmpeg("16mpx.jpg", ["-q:v", "3"]);
  await run("jpegtran", ["-progressive", "-outfile", `${dir}/16mpx_p.jpg`, `${dir}/16mpx.jpg`]);
  return [
    { name: "16 Mpx PNG", path: `${dir}/16mpx.png` },
    { name: "16 Mpx progressive JPEG", path: `${dir}/16mpx_p.jpg` },
  ];
}

function fmt(ms: number): string {
  return ms.toFixed(1);
}
