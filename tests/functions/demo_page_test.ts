/**
 * The demo page (static files in `functions/demo/`, served by the app) driven in headless Chromium
 * through playwright-core, against a fake API served in the test: the page, its files and
 * `/openapi.json` come from the real app (on a fake model), the generations are a scripted SSE
 * stream (queued, started, 3 steps of PNG previews, decoding, encoding, done) and a real mp4 made
 * with ffmpeg.
 *
 * Needs /usr/bin/chromium (`.ci/setup` installs it; the browser tests are ignored without it) and
 * `--allow-sys=homedir,osRelease,uid,gid`, which playwright-core reads when it loads.
 *
 * Set `DEMO_PAGE_SCREENSHOT=/path.png` to keep a screenshot of the finished page.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { loadConfig } from "../../pipeline/config/mod.ts";
import { encodePng } from "../../pipeline/image/png_encode.ts";
import { encodeVideo } from "../../pipeline/video/mod.ts";
import { fixturePath } from "../_fixtures.ts";
import { bareApp } from "./_bare_app.ts";

const CHROMIUM = "/usr/bin/chromium";
const HAS_CHROMIUM = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!HAS_CHROMIUM) {
  console.warn(`demo_page_test: ${CHROMIUM} is missing, browser tests ignored (bash .ci/setup)`);
}

/** Preview frames per step in the scripted stream, and the video's frame count. */
const FRAMES = 8;
const STEPS = 3;
const PREVIEW = { width: 32, height: 18 };
const VIDEO = { width: 64, height: 36, fps: 8 };

/**
 * playwright-core, loaded lazily. Its bundle probes `/proc/sys/fs/binfmt_misc/WSLInterop` with
 * `fs.existsSync` at load; Deno refuses `/proc/sys` without `--allow-all` and throws where Node
 * answers false, so `existsSync` is given Node's never-throwing behaviour first.
 */
async function loadPlaywright(): Promise<typeof import("playwright-core")> {
  const sys = ["homedir", "osRelease", "uid", "gid"] as const;
  for (const kind of sys) {
    const state = (await Deno.permissions.query({ name: "sys", kind })).state;
    if (state !== "granted") {
      throw new Error(
        `playwright-core needs sys access to ${kind}: run the tests with --allow-sys=${
          sys.join(",")
        }`,
      );
    }
  }
  const fs = (await import("node:fs")).default;
  const existsSync = fs.existsSync;
  fs.existsSync = (path: Parameters<typeof existsSync>[0]) => {
    try {
      return existsSync(path);
    } catch {
      return false;
    }
  };
  return await import("playwright-core");
}

/** Runs `fn` with a fresh headless Chromium, closed afterwards. */
async function withBrowser(fn: (browser: Browser) => Promise<void>): Promise<void> {
  const { chromium } = await loadPlaywright();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    await fn(browser);
  } finally {
    await browser.close();
  }
}

/**
 * A page that records every status line it shows (`window.__statuses`, "state: text") and fails
 * the test on any script error or console error.
 */
async function openPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  // browser-side code is passed as strings: the project type-checks without the DOM library
  // Every status line, also those replaced within one task (one observer callback): setStatus()
  // sets data-state, then the text, so each text node added comes after its state's attribute
  // record, whose new value is the next attribute record's old value (or the current one).
  await page.addInitScript(`
    const statuses = (window.__statuses = []);
    document.addEventListener("DOMContentLoaded", () => {
      const el = document.getElementById("status");
      let state = el.dataset.state;
      new MutationObserver((records) => {
        const attrs = records.filter((r) => r.type === "attributes");
        let seen = 0;
        for (const record of records) {
          if (record.type === "attributes") {
            seen++;
            state = seen < attrs.length ? attrs[seen].oldValue : el.dataset.state;
          } else {
            for (const node of record.addedNodes) statuses.push(state + ": " + node.textContent);
          }
        }
      }).observe(el, { attributes: true, attributeOldValue: true, childList: true });
    });`);
  await page.goto(url);
  return { page, errors };
}

/** A `data:image/png` URL of a flat-coloured preview frame. */
function previewUrl(step: number, frame: number): string {
  const rgb = new Uint8Array(PREVIEW.width * PREVIEW.height * 3);
  for (let y = 0; y < PREVIEW.height; y++) {
    for (let x = 0; x < PREVIEW.width; x++) {
      const p = (y * PREVIEW.width + x) * 3;
      rgb[p] = (frame * 255) / (FRAMES - 1);
      rgb[p + 1] = (x * 255) / (PREVIEW.width - 1);
      rgb[p + 2] = (step * 255) / STEPS;
    }
  }
  const png = encodePng(rgb, PREVIEW.width, PREVIEW.height);
  return `data:image/png;base64,${btoa(String.fromCharCode(...png))}`;
}

/** The real app on a fake model ("fake", the tiny config's defaults): the page and its document. */
async function pageApp() {
  const tiny = await loadConfig(new URL("../../configs/tiny.yaml", import.meta.url).pathname);
  return bareApp({ name: "fake", sampling: tiny.sampling });
}

/** A request the fake API saw. */
interface SeenRequest {
  method: string;
  path: string;
  accept: string | null;
  authorization: string | null;
  lastEventId: string | null;
  /** Multipart fields: strings as they are, files as `file:NAME:BYTES`. */
  fields: Record<string, string>;
}

/** How the fake API answers a POST. */
type Script = "complete" | "error" | "until-delete" | "drop-then-resume";

/** One SSE event as the server writes it. */
function sse(event: string, data: unknown, id?: number): string {
  return `${id === undefined ? "" : `id: ${id}\n`}event: ${event}\ndata: ${
    JSON.stringify(data)
  }\n\n`;
}

/**
 * The fake API: `GET /`, `/demo/*` and `/openapi.json` are the real app's, `POST /v1/generations`
 * answers as `script` says,
 * `GET /videos/clip.mp4` is a real mp4, `DELETE /v1/generations/:id` releases an `until-delete`
 * stream, `GET /v1/generations/gen-456[/events]` are the status JSON and the resumable events
 * (after `Last-Event-ID`) of a `drop-then-resume` run. The SSE stream goes out in odd-sized chunks split inside lines, with a comment, a
 * `retry:` line and CRLF line ends in places, as a proxy may deliver it.
 */
async function withFakeApi(
  script: Script,
  fn: (base: string, seen: SeenRequest[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "svd-demo-page-test-" });
  const frames = Array.from({ length: FRAMES }, (_, t) => {
    const rgb = new Uint8Array(VIDEO.width * VIDEO.height * 3);
    for (let i = 0; i < rgb.length; i += 3) {
      rgb[i] = (t * 255) / (FRAMES - 1);
      rgb[i + 1] = ((i / 3) % VIDEO.width) * 4;
      rgb[i + 2] = 128;
    }
    return rgb;
  });
  const clip = await encodeVideo(frames, { ...VIDEO, format: "mp4", out: join(dir, "clip.mp4") });
  const mp4 = await Deno.readFile(clip.path);
  const seen: SeenRequest[] = [];
  const deleted = Promise.withResolvers<void>();
  await using real = await pageApp();

  const stream = (events: string[], wait: (index: number) => Promise<void>) => {
    const encoder = new TextEncoder();
    let closed = false;
    return new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(encoder.encode(": fake api\nretry: 1000\n\n"));
        for (const [index, text] of events.entries()) {
          await wait(index);
          if (closed) return;
          const bytes = encoder.encode(index % 2 ? text.replaceAll("\n", "\r\n") : text);
          const cut = Math.max(1, Math.floor(bytes.length / 3));
          controller.enqueue(bytes.subarray(0, cut));
          await delay(5);
          if (closed) return;
          controller.enqueue(bytes.subarray(cut));
        }
        controller.close();
      },
      cancel() {
        closed = true;
      },
    });
  };

  // The whole scripted run, with the seed posted (42 when none); event i has SSE id i + 1.
  const runWith = (seed: number) => [
    sse("queued", { position: 1 }, 1),
    sse("started", {
      model: "fake",
      frames: FRAMES,
      steps: STEPS,
      width: VIDEO.width,
      height: VIDEO.height,
      seed,
    }, 2),
    ...Array.from({ length: STEPS }, (_, s) =>
      sse("step", {
        step: s + 1,
        total: STEPS,
        sigma: 700 / 10 ** s,
        elapsed_ms: 250 * (s + 1),
        eta_ms: 250 * (STEPS - s - 1),
        frames: Array.from({ length: FRAMES }, (_, t) => previewUrl(s + 1, t)),
      }, 3 + s)),
    sse("decoding", { chunk: 1, total: 1 }, 3 + STEPS),
    sse("encoding", {}, 4 + STEPS),
    sse("done", {
      video_url: "/videos/clip.mp4",
      format: "mp4",
      bytes: mp4.length,
      seed,
      timings: { queue_ms: 3, sampling_ms: 750, decoding_ms: 40, encoding_ms: 60, total_ms: 853 },
    }, 5 + STEPS),
  ];
  const run = runWith(42);
  const sseHeaders = (location?: string) => ({
    "content-type": "text/event-stream",
    "cache-control": "no-store",
    ...(location ? { location } : {}),
  });

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const record: SeenRequest = {
      method: req.method,
      path: url.pathname,
      accept: req.headers.get("accept"),
      authorization: req.headers.get("authorization"),
      lastEventId: req.headers.get("last-event-id"),
      fields: {},
    };
    seen.push(record);
    if (
      req.method === "GET" &&
      (url.pathname === "/" || url.pathname.startsWith("/demo/") ||
        url.pathname === "/openapi.json")
    ) {
      return real.app.fetch(req);
    }
    if (req.method === "GET" && url.pathname === "/videos/clip.mp4") {
      return new Response(mp4, {
        headers: { "content-type": "video/mp4", "content-length": String(mp4.length) },
      });
    }
    if (req.method === "DELETE" && url.pathname.startsWith("/v1/generations/")) {
      deleted.resolve();
      return new Response(null, { status: 204 });
    }
    if (req.method === "GET" && url.pathname === "/v1/generations/gen-456") {
      return Response.json({
        id: "gen-456",
        status: "running",
        status_url: url.pathname,
        events_url: `${url.pathname}/events`,
      });
    }
    if (req.method === "GET" && url.pathname === "/v1/generations/gen-456/events") {
      const after = Number(req.headers.get("last-event-id") ?? 0);
      return new Response(stream(run.slice(after), () => delay(100)), { headers: sseHeaders() });
    }
    if (req.method === "POST" && url.pathname === "/v1/generations") {
      for (const [name, value] of await req.formData()) {
        record.fields[name] = typeof value === "string"
          ? value
          : `file:${value.name}:${(await value.arrayBuffer()).byteLength}`;
      }
      switch (script) {
        case "error":
          return Response.json({
            error: {
              code: "out_of_range",
              message: "steps = 0 is out of range: allowed 1..200",
              field: "steps",
            },
          }, { status: 422 });
        case "until-delete": {
          // queued, started, step 1; then nothing until DELETE
          const events = [...run.slice(0, 3), sse("cancelled", {}, 4)];
          const wait = (i: number) => i === events.length - 1 ? deleted.promise : delay(100);
          return new Response(stream(events, wait), {
            headers: sseHeaders("/v1/generations/gen-123"),
          });
        }
        case "drop-then-resume": // queued, started, step 1; then the connection ends
          return new Response(stream(run.slice(0, 3), () => delay(100)), {
            headers: sseHeaders("/v1/generations/gen-456"),
          });
        case "complete": {
          const events = runWith(Number(record.fields.seed ?? 42));
          return new Response(stream(events, () => delay(250)), { headers: sseHeaders() });
        }
      }
    }
    return Response.json({ error: { code: "not_found", message: "no route" } }, { status: 404 });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The status lines the page showed, in order. */
function statuses(page: Page): Promise<string[]> {
  return page.evaluate<string[]>("window.__statuses");
}

Deno.test("the demo page is static files the app serves: HTML, a stylesheet and a script that parses", async () => {
  await using page = await pageApp();
  const { app } = page;
  const html = await (await app.request("/")).text();
  assert.ok(html.startsWith("<!doctype html>"));
  assert.ok(html.trimEnd().endsWith("</html>"));
  // nothing is fetched but the service itself
  assert.doesNotMatch(html, /\b(?:src|href)="https?:/);
  assert.match(html, /<link rel="stylesheet" href="\/demo\/demo.css">/);
  assert.match(html, /<script type="module" src="\/demo\/demo.js"><\/script>/);
  const script = await (await app.request("/demo/demo.js")).text();
  new Function(script); // throws SyntaxError if the script does not parse
  // no field, limit or default is written in the page: they come from /openapi.json
  for (const name of ["num_frames", "steps", "motion_bucket_id", "decoding_t", "guider"]) {
    assert.doesNotMatch(html, new RegExp(`name="${name}"`), name);
  }
  assert.doesNotMatch(script, /\b(?:1023|2048|200)\b/, "no limit in the script");
});

Deno.test({
  name:
    "demo page in Chromium: every upload field of /openapi.json has a labelled input with its limits",
  ignore: !HAS_CHROMIUM,
  async fn() {
    await withFakeApi("complete", async (base) => {
      const document = await (await fetch(`${base}/openapi.json`)).json();
      const properties: Record<string, Record<string, unknown>> =
        document.components.schemas.GenerationUpload.properties;
      await withBrowser(async (browser) => {
        const { page, errors } = await openPage(browser, base);
        await page.waitForSelector("#steps");
        const inputs = await page.evaluate<Record<string, Record<string, string | null>>>(`(() => {
          const out = {};
          for (const input of document.querySelectorAll("#form [name]")) {
            const label = document.querySelector('label[for="' + input.id + '"]') ?? input.closest("label");
            const named = label?.textContent.trim() || input.getAttribute("aria-label");
            out[input.name] = {
              id: input.id, tag: input.tagName, type: input.type, label: named ?? null,
              min: input.getAttribute("min"), max: input.getAttribute("max"), step: input.getAttribute("step"),
              options: input.tagName === "SELECT" ? [...input.options].map((o) => o.value).join("|") : null,
            };
          }
          return out;
        })()`);
        for (const [name, schema] of Object.entries(properties)) {
          if (name === "model") continue; // one model per service: not offered
          const input = inputs[name];
          assert.ok(input, `an input for ${name}`);
          assert.equal(input.id, name);
          assert.ok(input.label, `${name} has a label`);
          if (name === "image") continue;
          assert.ok(input.label?.includes(schema.title as string), `${name}'s label is its title`);
          if (schema.type === "integer" || schema.type === "number") {
            assert.equal(input.min, String(schema.minimum), `${name} min`);
            assert.equal(input.max, String(schema.maximum), `${name} max`);
            if (schema.multipleOf) assert.equal(input.step, String(schema.multipleOf));
          }
          if (Array.isArray(schema.enum)) assert.equal(input.options, schema.enum.join("|"), name);
        }
        assert.equal(inputs.num_frames.max, "64", "the service's limit, not the page's own");
        assert.deepEqual(errors, []);
      });
    });
  },
});

Deno.test({
  name: "demo page in Chromium: upload, stream every step's previews, play the finished mp4",
  ignore: !HAS_CHROMIUM,
  async fn() {
    await withFakeApi("complete", async (base, seen) => {
      await withBrowser(async (browser) => {
        const { page, errors } = await openPage(browser, base);
        await page.setInputFiles("#image", fixturePath("input.png"));
        await page.waitForSelector("#thumb:not([hidden])");
        await page.fill("#steps", String(STEPS));
        await page.fill("#num_frames", String(FRAMES));
        await page.fill("#fps", String(VIDEO.fps));
        await page.fill("#seed", "42");
        await page.click("#generate");

        // every frame of a step is shown, as data URLs, and the player cycles through them
        await page.waitForFunction(`[...document.querySelectorAll("#strip img")]
          .filter((img) => img.src.startsWith("data:image/png")).length === ${FRAMES}`);
        assert.match(await page.getAttribute("#player", "src") ?? "", /^data:image\/png;base64,/);
        const shown = new Set<string>();
        for (let i = 0; i < 6; i++) {
          shown.add(await page.getAttribute("#player", "src") ?? "");
          await delay(1000 / VIDEO.fps);
        }
        assert.ok(shown.size >= 2, `the preview animates (${shown.size} distinct frames seen)`);

        await page.waitForSelector('#status[data-state="done"]');
        assert.equal(await page.locator("#strip img").count(), FRAMES);
        assert.equal(
          await page.locator("#strip img").first().getAttribute("src"),
          previewUrl(3, 0),
        );
        const lines = await statuses(page);
        for (
          const expected of [
            /^queued: Queued — position 1$/,
            /^started: Started fake · 8 frames, 3 steps, 64×36, seed 42$/,
            /^step: Step 1\/3 · σ 700\.0 · ETA 500 ms/,
            /^step: Step 3\/3 · σ 7\.000 · ETA 0 ms/,
            /^decoding: Decoding chunk 1\/1$/,
            /^encoding: Encoding mp4…$/,
            /^done: Done in 853 ms · seed 42$/,
          ]
        ) {
          assert.ok(
            lines.some((line) => expected.test(line)),
            `${expected} in ${lines.join(" | ")}`,
          );
        }
        assert.equal(await page.evaluate<number>('document.getElementById("progress").value'), 1);

        // the video loads and plays
        const media = 'document.querySelector("video#result-media")';
        await page.waitForFunction(`(() => {
          const v = ${media};
          return v !== null && v.readyState >= 2 && !v.paused && v.currentTime > 0;
        })()`);
        const t0 = await page.evaluate<number>(`${media}.currentTime`);
        await page.waitForFunction(`${media}.currentTime !== ${t0}`);
        const video = await page.evaluate<Record<string, unknown>>(`(() => {
          const v = ${media};
          return {
            src: v.getAttribute("src"),
            loop: v.loop,
            muted: v.muted,
            controls: v.controls,
            width: v.videoWidth,
            height: v.videoHeight,
          };
        })()`);
        assert.deepEqual(video, {
          src: "/videos/clip.mp4",
          loop: true,
          muted: true,
          controls: true,
          width: VIDEO.width,
          height: VIDEO.height,
        });
        assert.equal(await page.getAttribute("#download", "href"), "/videos/clip.mp4");
        assert.equal(await page.getAttribute("#download", "download"), "svd-42.mp4");
        assert.equal(await page.textContent("#result-seed"), "42");
        assert.match(await page.textContent("#timings") ?? "", /sampling750 ms.*total853 ms/);
        assert.equal(await page.isDisabled("#cancel"), true);
        assert.equal(await page.isEnabled("#generate"), true);

        // what the server received
        const post = seen.find((r) => r.method === "POST")!;
        assert.equal(post.accept, "text/event-stream");
        assert.equal(post.authorization, null);
        const png = await Deno.stat(fixturePath("input.png"));
        assert.deepEqual(post.fields, {
          image: `file:input.png:${png.size}`,
          num_frames: String(FRAMES),
          steps: String(STEPS),
          fps: String(VIDEO.fps),
          seed: "42",
          guider: "linear",
          format: "mp4",
          size: "cover",
          preview: "latent",
        });

        const screenshot = Deno.env.get("DEMO_PAGE_SCREENSHOT") ??
          await Deno.makeTempFile({ prefix: "svd-demo-page-", suffix: ".png" });
        await page.screenshot({ path: screenshot, fullPage: true });
        assert.ok((await Deno.stat(screenshot)).size > 1000);
        if (!Deno.env.get("DEMO_PAGE_SCREENSHOT")) await Deno.remove(screenshot);
        assert.deepEqual(errors, []);
      });
    });
  },
});

Deno.test({
  name: "demo page in Chromium: a 4xx error names its field; the token is sent and remembered",
  ignore: !HAS_CHROMIUM,
  async fn() {
    await withFakeApi("error", async (base, seen) => {
      await withBrowser(async (browser) => {
        const { page } = await openPage(browser, base);
        // no image: refused in the page, pointing at the file input
        await page.click("#generate");
        await page.waitForSelector("#error:not([hidden])");
        assert.match(
          await page.textContent("#error") ?? "",
          /Field “image”: Choose an input image/,
        );
        assert.equal(await page.getAttribute("#image", "aria-invalid"), "true");
        assert.equal(seen.filter((r) => r.method === "POST").length, 0);

        await page.fill("#token", "secret-token");
        await page.dispatchEvent("#token", "change");
        await page.setInputFiles("#image", fixturePath("input.png"));
        await page.fill("#steps", "0");
        await page.click("#generate");
        await page.waitForSelector('#status[data-state="error"]');
        await page.waitForFunction('/steps/.test(document.getElementById("error").textContent)');
        assert.equal(
          await page.textContent("#error"),
          "Field “steps”: steps = 0 is out of range: allowed 1..200 (out_of_range)",
        );
        assert.equal(await page.getAttribute("#steps", "aria-invalid"), "true");
        assert.equal(await page.evaluate<string>("document.activeElement.id"), "steps");
        assert.equal(await page.getAttribute("#error", "role"), "alert");
        assert.equal(await page.isEnabled("#generate"), true);
        assert.equal(await page.isVisible("#result"), false);
        const post = seen.find((r) => r.method === "POST")!;
        assert.equal(post.authorization, "Bearer secret-token");
        assert.equal(post.fields.steps, "0");

        // editing the field clears its mark; the token survives a reload
        await page.fill("#steps", "3");
        assert.equal(await page.getAttribute("#steps", "aria-invalid"), null);
        await page.reload();
        assert.equal(await page.inputValue("#token"), "secret-token");
      });
    });
  },
});

Deno.test({
  name: "demo page in Chromium: a blank seed is a fresh random seed per generation, and shown",
  ignore: !HAS_CHROMIUM,
  async fn() {
    await withFakeApi("complete", async (base, seen) => {
      await withBrowser(async (browser) => {
        const { page, errors } = await openPage(browser, base);
        await page.setInputFiles("#image", fixturePath("input.png"));
        await page.waitForSelector("#seed");
        assert.equal(await page.inputValue("#seed"), "");
        const seeds: string[] = [];
        for (let run = 1; run <= 2; run++) {
          const before = await page.evaluate<number>("window.__statuses.length");
          await page.click("#generate");
          await page.waitForFunction(
            `window.__statuses.slice(${before}).some((line) => line.startsWith("done: "))`,
          );
          const posted = seen.filter((r) => r.method === "POST").at(-1)!.fields.seed;
          assert.match(posted, /^\d+$/, "the page sent a seed");
          assert.ok(Number(posted) < 2 ** 32);
          assert.equal(await page.textContent("#result-seed"), posted);
          assert.match(await page.textContent("#seed-hint") ?? "", new RegExp(`\\b${posted}$`));
          assert.match(await page.textContent("#status") ?? "", new RegExp(`seed ${posted}$`));
          assert.equal(
            await page.inputValue("#seed"),
            "",
            "the field stays blank for the next run",
          );
          seeds.push(posted);
        }
        assert.notEqual(seeds[0], seeds[1], "each generation draws its own seed");
        assert.deepEqual(errors, []);
      });
    });
  },
});

Deno.test({
  name: "demo page in Chromium: Cancel sends DELETE for the id in Location and ends as cancelled",
  ignore: !HAS_CHROMIUM,
  async fn() {
    await withFakeApi("until-delete", async (base, seen) => {
      await withBrowser(async (browser) => {
        const { page, errors } = await openPage(browser, base);
        await page.setInputFiles("#image", fixturePath("input.png"));
        await page.click("#generate");
        await page.waitForSelector('#status[data-state="step"]');
        assert.equal(await page.locator("#strip img").count(), FRAMES);
        await page.click("#cancel");
        await page.waitForSelector('#status[data-state="cancelled"]');
        assert.deepEqual(
          seen.filter((r) => r.method === "DELETE").map((r) => r.path),
          ["/v1/generations/gen-123"],
        );
        assert.equal(await page.textContent("#status"), "Cancelled.");
        assert.equal(await page.isEnabled("#generate"), true);
        assert.equal(await page.isVisible("#error"), false);
        assert.deepEqual(errors, []);
      });
    });
  },
});

Deno.test({
  name: "demo page in Chromium: a dropped stream resumes at events_url after Last-Event-ID",
  ignore: !HAS_CHROMIUM,
  async fn() {
    await withFakeApi("drop-then-resume", async (base, seen) => {
      await withBrowser(async (browser) => {
        const { page, errors } = await openPage(browser, base);
        await page.setInputFiles("#image", fixturePath("input.png"));
        await page.click("#generate");
        await page.waitForSelector('#status[data-state="done"]');
        assert.deepEqual(
          seen.filter((r) => r.path.startsWith("/v1/")).map((r) =>
            `${r.method} ${r.path}${r.lastEventId ? ` after ${r.lastEventId}` : ""}`
          ),
          [
            "POST /v1/generations",
            "GET /v1/generations/gen-456",
            "GET /v1/generations/gen-456/events after 3",
          ],
        );
        const lines = await statuses(page);
        for (const step of [1, 2, 3]) {
          assert.equal(lines.filter((l) => l.startsWith(`step: Step ${step}/3 `)).length, 1);
        }
        assert.equal(await page.locator("#strip img").count(), FRAMES);
        await page.waitForFunction(
          'document.querySelector("video#result-media").readyState >= 2',
        );
        assert.deepEqual(errors, []);
      });
    });
  },
});

/**
 * `deno task start` on a free port (`PORT=0`; the port is read from the service's "start" log
 * line) with the tiny demo model and `API_TOKEN`, until `/readyz` answers 200; stopped with
 * SIGTERM afterwards.
 */
async function withRealServer(token: string, fn: (base: string) => Promise<void>): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "start"],
    cwd: new URL("../..", import.meta.url).pathname,
    env: { PORT: "0", HOST: "127.0.0.1", API_TOKEN: token, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const port = Promise.withResolvers<number>();
  const stdout = (async () => {
    let buffer = "";
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += text;
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) {
        log.push(line);
        try {
          const entry = JSON.parse(line);
          if (entry.event === "start") port.resolve(entry.port);
        } catch { /* not a log line */ }
      }
    }
    port.reject(new Error("the service exited before listening"));
  })();
  const stderr = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) log.push(text);
  })();
  try {
    const timeout = setTimeout(() => port.reject(new Error("no start line in 120 s")), 120_000);
    const base = `http://127.0.0.1:${await port.promise.finally(() => clearTimeout(timeout))}`;
    const deadline = Date.now() + 120_000;
    for (;;) {
      const status = await fetch(`${base}/readyz`).then(async (r) => {
        await r.body?.cancel();
        return r.status;
      }, () => 0);
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error(`/readyz still ${status} after 120 s`);
      await delay(200);
    }
    await fn(base);
  } catch (error) {
    throw new Error(
      `${error instanceof Error ? error.message : error}\nservice log:\n${log.join("\n")}`,
      {
        cause: error,
      },
    );
  } finally {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await Promise.all([stdout, stderr]);
  }
}

Deno.test({
  name: "demo page in Chromium against the real service (deno task start, tiny demo model)",
  ignore: !HAS_CHROMIUM,
  async fn() {
    const token = "e2e-token";
    await withRealServer(token, async (base) => {
      await withBrowser(async (browser) => {
        const { page, errors } = await openPage(browser, base);
        page.setDefaultTimeout(120_000);
        await page.fill("#token", token);
        await page.dispatchEvent("#token", "change");
        await page.setInputFiles("#image", fixturePath("input.png"));
        await page.fill("#steps", "3");
        await page.fill("#seed", "7");
        await page.click("#generate");
        await page.waitForSelector('#status[data-state="done"]');

        const lines = await statuses(page);
        const started = lines.find((line) => line.startsWith("started: "));
        const frames = Number(/· (\d+) frames, 3 steps, \d+×\d+, seed 7$/.exec(started ?? "")?.[1]);
        assert.ok(frames > 0, `a started line with the frame count in ${lines.join(" | ")}`);
        for (const step of [1, 2, 3]) {
          assert.ok(
            lines.some((line) => line.startsWith(`step: Step ${step}/3 · σ `)),
            `step ${step}`,
          );
        }
        assert.ok(lines.some((line) => line.startsWith("decoding: Decoding chunk 1/")));
        assert.ok(lines.includes("encoding: Encoding mp4…"));
        assert.equal(
          await page.evaluate<number>(`[...document.querySelectorAll("#strip img")]
            .filter((img) => img.src.startsWith("data:image/png")).length`),
          frames,
        );
        assert.equal(await page.textContent("#result-seed"), "7");

        // with a token, the video is fetched with it and played from a blob URL
        const media = 'document.querySelector("video#result-media")';
        await page.waitForFunction(`(() => {
          const v = ${media};
          return v !== null && v.readyState >= 2 && !v.paused && v.currentTime > 0;
        })()`);
        const t0 = await page.evaluate<number>(`${media}.currentTime`);
        await page.waitForFunction(`${media}.currentTime !== ${t0}`);
        assert.match(await page.getAttribute("#result-media", "src") ?? "", /^blob:/);
        assert.match(await page.getAttribute("#download", "href") ?? "", /^blob:/);

        // the service's own 422 names its field
        await page.fill("#steps", "0");
        await page.click("#generate");
        await page.waitForSelector('#status[data-state="error"]');
        assert.match(await page.textContent("#error") ?? "", /^Field “steps”: .*\(\w+\)$/);
        assert.equal(await page.getAttribute("#steps", "aria-invalid"), "true");

        // a wrong token: 401, pointed at the token field
        await page.fill("#steps", "3");
        await page.fill("#token", "wrong");
        await page.click("#generate");
        await page.waitForSelector('#status[data-state="error"]');
        assert.match(await page.textContent("#error") ?? "", /\(unauthorized\)$/);
        assert.equal(await page.getAttribute("#token", "aria-invalid"), "true");
        assert.deepEqual(errors.filter((e) => !/401|422/.test(e)), []);
      });
    });
  },
});
