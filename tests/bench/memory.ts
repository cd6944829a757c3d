/**
 * Does memory come back after a large job? The service (`main.ts` in a subprocess, the tiny demo
 * model, CPU provider) runs a small job, then a large one, then idles; the resident memory of its
 * whole process tree (the service and its inference process) is printed before the large job, at
 * its peak, right after it, and when idle — with `INFERENCE_RECYCLE=on` (the default: the grown
 * inference process is replaced) and `off` (ONNX Runtime's arena keeps the large job's peak).
 *
 * Usage: deno task bench memory [--width 512 --height 512 --frames 8 --steps 1] [--idle-s 3]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { MainProcess } from "../functions/_main_process.ts";

const IMAGE = new URL("../fixtures/tiny/input.png", import.meta.url).pathname;
const GIB = 1024 ** 3;

/** Runs the benchmark. */
export async function memory(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      width: { type: "string", default: "512" },
      height: { type: "string", default: "512" },
      frames: { type: "string", default: "8" },
      steps: { type: "string", default: "1" },
      "idle-s": { type: "string", default: "3" },
    },
  });
  const large = {
    width: values.width,
    height: values.height,
    num_frames: values.frames,
    steps: values.steps,
    decoding_t: values.frames,
    preview: "none",
  };
  console.log(
    `memory after a large job (${large.num_frames} frames at ${large.width}×${large.height}, ` +
      `${large.steps} step, decoding_t ${large.decoding_t}; the tiny demo model, CPU), resident ` +
      `memory of the process tree (service + inference process), GiB:`,
  );
  for (const recycle of ["on", "off"]) {
    await using service = new MainProcess({ INFERENCE_RECYCLE: recycle, LOG_LEVEL: "info" });
    const url = await service.url();
    await waitReady(url);
    await generate(url, { preview: "none" }); // the model's default request: warms the arenas
    await sleep(1000);
    const before = await treeRss(service.process.pid);
    let peak = before.total;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, (await treeRss(service.process.pid)).total);
        await sleep(100);
      }
    })();
    const started = performance.now();
    await generate(url, large);
    const seconds = (performance.now() - started) / 1000;
    sampling = false;
    await sampler;
    const after = await treeRss(service.process.pid);
    await waitReady(url); // a recycled process is loaded again
    await sleep(Number(values["idle-s"]) * 1000);
    const idle = await treeRss(service.process.pid);
    const recycled = service.lines.some((l) => l.event === "inference_recycling");
    console.log(
      `  INFERENCE_RECYCLE=${recycle}: before ${gib(before.total)} (service ${
        gib(before.service)
      } + inference ${gib(before.children)}); peak ${gib(peak)}; right after ${
        gib(after.total)
      }; idle ${gib(idle.total)} (service ${gib(idle.service)} + inference ${
        gib(idle.children)
      }) = ${(idle.total / before.total * 100).toFixed(0)} % of before; large job ${
        seconds.toFixed(1)
      } s${recycled ? ", inference process recycled" : ""}`,
    );
  }
}

/** RSS of `pid` and of all its descendants, by `ps` (bytes). */
async function treeRss(pid: number): Promise<{ service: number; children: number; total: number }> {
  const { stdout } = await new Deno.Command("ps", { args: ["-e", "-o", "pid=,ppid=,rss="] })
    .output();
  const rows = new TextDecoder().decode(stdout).trim().split("\n").map((line) =>
    line.trim().split(/\s+/).map(Number)
  );
  const kids = new Map<number, number[]>();
  const rss = new Map<number, number>();
  for (const [p, parent, kib] of rows) {
    rss.set(p, kib * 1024);
    kids.set(parent, [...(kids.get(parent) ?? []), p]);
  }
  let children = 0;
  const stack = [...(kids.get(pid) ?? [])];
  while (stack.length > 0) {
    const p = stack.pop()!;
    children += rss.get(p) ?? 0;
    stack.push(...(kids.get(p) ?? []));
  }
  const service = rss.get(pid) ?? 0;
  return { service, children, total: service + children };
}

async function generate(url: string, fields: Record<string, string>): Promise<void> {
  const form = new FormData();
  form.append("image", new Blob([await Deno.readFile(IMAGE)], { type: "image/png" }), "input.png");
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  const response = await fetch(`${url}/v1/generations`, {
    method: "POST",
    body: form,
    headers: { accept: "text/event-stream" },
  });
  const text = await response.text();
  if (!/event: done/.test(text)) throw new Error(`no done event:\n${text.slice(-500)}`);
}

async function waitReady(url: string): Promise<void> {
  while ((await fetch(`${url}/readyz`).then((r) => (r.body?.cancel(), r.status))) !== 200) {
    await sleep(50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function gib(bytes: number): string {
  return (bytes / GIB).toFixed(2);
}
