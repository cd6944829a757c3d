/**
 * Upload memory benchmark: what concurrent large uploads add to the service's resident memory,
 * and whether it comes back. Starts `main.ts` (the tiny demo model, the real server) in a
 * subprocess, then sends `--uploads` concurrent uploads of `--mib` MiB each and samples the
 * service process's RSS (`/proc/<pid>/status`: `VmRSS` every 50 ms, `VmHWM` for the peak; the
 * inference process is another process and is not counted) before, during, once every upload is
 * answered, and after the accepted jobs are cancelled and the process has idled (`--idle` s: the
 * image pool's workers stop after 30 s idle).
 *
 * Each upload is a real PNG that the door validates whole: the 128×64 fixture padded after its
 * IEND to the size (`padded`, the upload's bytes alone), or a noise PNG of that size (`noise`,
 * ~2580×2580: every byte inflated and every pixel decoded at the door, then again in its job).
 * The bound the issue sets: at most 2 × uploads × 20 MiB above the baseline.
 *
 * Usage: deno task bench uploads [--uploads 40] [--mib 19.9] [--kind padded|noise]
 *   [--concurrency 40] [--idle 35]
 *
 * `--concurrency` is `MAX_CONCURRENT_UPLOADS` (uploads over it get 503 before being read).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { deflateSync } from "node:zlib";
import { crc32 } from "../../pipeline/image/png_encode.ts";
import { MainProcess } from "../functions/_main_process.ts";
import { upload } from "../functions/_service.ts";

const MIB = 2 ** 20;

/** Runs the benchmark. */
export async function uploads(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      uploads: { type: "string", default: "40" },
      mib: { type: "string", default: "19.9" },
      kind: { type: "string", default: "padded" },
      concurrency: { type: "string", default: "40" },
      idle: { type: "string", default: "35" },
    },
  });
  const count = Number(values.uploads);
  const bytes = Math.round(Number(values.mib) * MIB);
  const png = values.kind === "noise" ? noisePng(bytes) : paddedPng(bytes);
  console.log(
    `${count} concurrent uploads of a ${(png.length / MIB).toFixed(2)} MiB ${values.kind} PNG, ` +
      `MAX_CONCURRENT_UPLOADS=${values.concurrency}`,
  );
  await using service = new MainProcess({
    QUEUE_SIZE: String(count + 8),
    MAX_CONCURRENT_UPLOADS: values.concurrency,
    MAX_UPLOAD_BYTES: String(21 * MIB),
  });
  const url = await service.url();
  await service.line("ready");
  const pid = service.process.pid;
  // warm: one small upload through every path (parser, image pool, queue), then cancelled
  await cancel(url, await post(url, await Deno.readFile("tests/fixtures/tiny/input.png")));
  await settle(url);
  const baseline = rssMiB(pid);
  const hwmBefore = hwmMiB(pid);
  let peak = baseline;
  const sampler = setInterval(() => peak = Math.max(peak, rssMiB(pid)), 50);
  const started = performance.now();
  const answers = await Promise.all(Array.from({ length: count }, () => post(url, png)));
  const answeredMs = performance.now() - started;
  clearInterval(sampler);
  const answered = rssMiB(pid);
  const hwm = hwmMiB(pid);
  const statuses = new Map<string, number>();
  for (const a of answers) statuses.set(a.label, (statuses.get(a.label) ?? 0) + 1);
  await Promise.all(answers.map((a) => cancel(url, a)));
  await settle(url);
  const cancelled = rssMiB(pid);
  await new Promise((resolve) => setTimeout(resolve, Number(values.idle) * 1000));
  const idle = rssMiB(pid);
  const bound = 2 * count * 20;
  console.log(`answers: ${[...statuses].map(([s, n]) => `${n} × ${s}`).join(", ")}`);
  console.log(`all answered in ${(answeredMs / 1000).toFixed(1)} s`);
  const rows: [string, number][] = [
    ["baseline RSS", baseline],
    ["peak RSS while uploading (sampled)", peak],
    ["peak RSS (VmHWM)", Math.max(hwm, hwmBefore)],
    ["RSS once all were answered", answered],
    ["RSS after cancelling the jobs", cancelled],
    [`RSS after ${values.idle} s idle`, idle],
  ];
  for (const [what, mib] of rows) {
    console.log(
      `${what.padEnd(40)} ${mib.toFixed(0).padStart(6)} MiB  (${
        (mib - baseline >= 0 ? "+" : "") + (mib - baseline).toFixed(0)
      })`,
    );
  }
  const added = Math.max(peak, hwm) - baseline;
  console.log(
    `added at the peak: ${added.toFixed(0)} MiB = ${
      (added / (count * png.length / MIB)).toFixed(2)
    } × the uploads' bytes; bound 2 × ${count} × 20 MiB = ${bound} MiB: ${
      added <= bound ? "within" : "OVER"
    }`,
  );
  console.log(`RESULT ${
    JSON.stringify({
      uploads: count,
      upload_mib: Number((png.length / MIB).toFixed(2)),
      kind: values.kind,
      max_concurrent_uploads: Number(values.concurrency),
      statuses: Object.fromEntries(statuses),
      baseline_mib: Math.round(baseline),
      peak_added_mib: Math.round(added),
      bound_mib: bound,
      answered_added_mib: Math.round(answered - baseline),
      cancelled_added_mib: Math.round(cancelled - baseline),
      idle_added_mib: Math.round(idle - baseline),
    })
  }`);
}

interface Answer {
  readonly label: string;
  readonly id?: string;
}

async function post(url: string, png: Uint8Array): Promise<Answer> {
  const response = await fetch(`${url}/v1/generations`, {
    method: "POST",
    body: upload(png, { steps: "1", num_frames: "2", width: "128", height: "64" }),
  });
  const body = await response.json();
  return { label: `${response.status}${body.error ? ` ${body.error.code}` : ""}`, id: body.id };
}

async function cancel(url: string, answer: Answer): Promise<void> {
  if (answer.id) {
    await (await fetch(`${url}/v1/generations/${answer.id}`, { method: "DELETE" })).body?.cancel();
  }
}

/** Waits until nothing is queued or running. */
async function settle(url: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const metrics = await (await fetch(`${url}/metrics`)).text();
    if (/^svd_queue_depth 0$/m.test(metrics) && /^svd_jobs_running 0$/m.test(metrics)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The 128×64 fixture with bytes after its IEND (ignored by decoders) up to `size`. */
export function paddedPng(size: number): Uint8Array {
  const fixture = Deno.readFileSync(new URL("../fixtures/tiny/input.png", import.meta.url));
  const out = new Uint8Array(size);
  out.set(fixture);
  for (let i = fixture.length; i < size; i++) out[i] = i * 2654435761 >>> 24;
  return out;
}

/** An RGB noise PNG of about `size` bytes (noise does not compress: the file is its pixels). */
function noisePng(size: number): Uint8Array {
  const side = Math.floor(Math.sqrt(size / 3 * 0.998));
  const stride = side * 3 + 1;
  const raw = new Uint8Array(side * stride);
  for (let offset = 0; offset < raw.length; offset += 65536) {
    crypto.getRandomValues(raw.subarray(offset, Math.min(raw.length, offset + 65536)));
  }
  for (let y = 0; y < side; y++) raw[y * stride] = 0; // filter: none
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, side);
  new DataView(ihdr.buffer).setUint32(4, side);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 0 })), // stored: the size is the pixels
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** `/proc/<pid>/status` of another process (read by `cat`: Deno's read permission stops at it). */
export function procStatus(pid: number): string {
  const { stdout } = new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).outputSync();
  return new TextDecoder().decode(stdout);
}

/** Resident memory of process `pid`, MiB. */
export function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(procStatus(pid))![1]) / 1024;
}

/** Peak resident memory of process `pid` since it started, MiB. */
export function hwmMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(procStatus(pid))![1]) / 1024;
}
