/**
 * downloadVerified against real HTTP servers on loopback, serving the tiny fixture checkpoint.
 *
 * Run: deno test --allow-read --allow-write --allow-net=127.0.0.1 --allow-env tests/weights/
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { fixturePath } from "../_fixtures.ts";
import { DownloadError, downloadVerified } from "../../pipeline/weights/download.ts";
import {
  formatBytes,
  formatDuration,
  formatProgress,
  ProgressBar,
} from "../../pipeline/weights/progress_bar.ts";
import { assertSafetensors } from "../../pipeline/weights/weights_lock.ts";

const SOURCE = fixturePath("weights.safetensors");
const DATA = await Deno.readFile(SOURCE);
const SHA256 = createHash("sha256").update(DATA).digest("hex");
const BYTES = DATA.length;

/** What the server saw of one request. */
interface Seen {
  readonly path: string;
  readonly range: string | null;
  readonly authorization: string | null;
}

/** A `Deno.serve` on 127.0.0.1 with a random port; `await using` shuts it down. */
function serve(
  handler: (request: Request, path: string, count: number) => Response | Promise<Response>,
) {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    seen.push({
      path,
      range: request.headers.get("range"),
      authorization: request.headers.get("authorization"),
    });
    return handler(request, path, seen.filter((s) => s.path === path).length);
  });
  return {
    seen,
    url: (path: string) => `http://127.0.0.1:${server.addr.port}${path}`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** Serves `bytes`, honouring `Range: bytes=N-` (206 / 416) like Hugging Face's CDN does. */
function serveBytes(request: Request, bytes: Uint8Array<ArrayBuffer>): Response {
  const match = request.headers.get("range")?.match(/^bytes=(\d+)-$/);
  if (!match) return new Response(bytes);
  const start = Number(match[1]);
  if (start >= bytes.length) {
    return new Response(null, {
      status: 416,
      headers: { "Content-Range": `bytes */${bytes.length}` },
    });
  }
  return new Response(bytes.subarray(start), {
    status: 206,
    headers: { "Content-Range": `bytes ${start}-${bytes.length - 1}/${bytes.length}` },
  });
}

/** Sends the first `stopAt` bytes of `bytes` in 64 KiB pieces, then ends the body. */
function streamPrefix(bytes: Uint8Array, stopAt: number, headers: HeadersInit = {}): Response {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= stopAt) return controller.close();
      const end = Math.min(sent + 65536, stopAt);
      controller.enqueue(bytes.slice(sent, end));
      sent = end;
    },
  });
  return new Response(body, { headers });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The error `fn` rejects with, asserted to be a `type`. */
async function rejection<E extends Error>(
  fn: () => Promise<unknown>,
  type: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${error}`);
    return error;
  }
  return assert.fail(`expected a ${type.name}, but it resolved`);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "svd-download-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const pins = { sha256: SHA256, bytes: BYTES } as const;

Deno.test("downloadVerified() fetches the tiny checkpoint, verifies it and reports progress", async () => {
  await using server = serve((request) => serveBytes(request, DATA));
  await withTempDir(async (dir) => {
    const destination = `${dir}/nested/tiny.safetensors`;
    const progress: Array<[number, number | undefined]> = [];
    const result = await downloadVerified({
      url: server.url("/tiny.safetensors"),
      destination,
      ...pins,
      onProgress: (done, total) => progress.push([done, total]),
      check: assertSafetensors,
    });
    assert.deepEqual(result, {
      path: destination,
      sha256: SHA256,
      bytes: BYTES,
      resumedFrom: 0,
      verified: true,
      reused: false,
    });
    assert.deepEqual(await Deno.readFile(destination), DATA);
    assert.ok(!(await exists(`${destination}.partial`)), "no .partial is left behind");
    assert.deepEqual(progress.at(-1), [BYTES, BYTES]);
    assert.ok(
      progress.every(([done], i) => i === 0 || done >= progress[i - 1][0]),
      "progress never goes back",
    );
  });
});

Deno.test("downloadVerified() rejects a copy with one byte flipped and keeps nothing", async () => {
  const corrupt = DATA.slice();
  corrupt[BYTES >> 1] ^= 0xff;
  await using server = serve((request) => serveBytes(request, corrupt));
  await withTempDir(async (dir) => {
    const destination = `${dir}/tiny.safetensors`;
    const error = await rejection(
      () => downloadVerified({ url: server.url("/corrupt"), destination, ...pins }),
      DownloadError,
    );
    assert.deepEqual(error.kind, "sha256");
    assert.match(
      error.message,
      new RegExp(
        `^Cannot verify "tiny.safetensors": sha256 mismatch: expected ${SHA256}, got [0-9a-f]{64}`,
      ),
    );
    assert.ok(!(await exists(destination)), "no destination");
    assert.ok(
      !(await exists(`${destination}.partial`)),
      "a corrupt download is not kept for resuming",
    );
  });
});

Deno.test("downloadVerified() keeps the .partial of a broken transfer and resumes it with Range", async () => {
  const cut = 9_000_000;
  await using server = serve((request, _path, count) =>
    count === 1
      // Promises the whole file, sends part of it, then closes the connection.
      ? streamPrefix(DATA, cut, { "Content-Length": String(BYTES) })
      : serveBytes(request, DATA)
  );
  await withTempDir(async (dir) => {
    const destination = `${dir}/tiny.safetensors`;
    const options = { url: server.url("/flaky"), destination, ...pins };
    const error = await rejection(() => downloadVerified(options), DownloadError);
    assert.deepEqual(error.kind, "interrupted");
    assert.match(error.message, /kept ".*tiny\.safetensors\.partial", run again to resume/);
    assert.ok(!(await exists(destination)), "no destination after the failure");
    const kept = (await Deno.stat(`${destination}.partial`)).size;
    assert.ok(kept > 0 && kept <= cut, `kept ${kept} bytes`);

    const result = await downloadVerified(options);
    assert.deepEqual(server.seen.map((s) => s.range), [null, `bytes=${kept}-`]);
    assert.deepEqual(result.resumedFrom, kept);
    assert.deepEqual(result.sha256, SHA256);
    assert.deepEqual(await Deno.readFile(destination), DATA);
    assert.ok(!(await exists(`${destination}.partial`)));
  });
});

Deno.test("downloadVerified() reports a body that ends early as truncated and resumes it", async () => {
  const cut = 5_000_000;
  await using server = serve((request, _path, count) =>
    count === 1 ? streamPrefix(DATA, cut) : serveBytes(request, DATA)
  );
  await withTempDir(async (dir) => {
    const destination = `${dir}/tiny.safetensors`;
    const options = { url: server.url("/short"), destination, ...pins };
    const error = await rejection(() => downloadVerified(options), DownloadError);
    assert.deepEqual(error.kind, "truncated");
    assert.match(
      error.message,
      new RegExp(`^Cannot verify "tiny.safetensors": truncated: got ${cut} of ${BYTES} bytes`),
    );
    assert.ok(!(await exists(destination)));
    assert.deepEqual((await Deno.stat(`${destination}.partial`)).size, cut);

    const result = await downloadVerified(options);
    assert.deepEqual(server.seen.at(-1)?.range, `bytes=${cut}-`);
    assert.deepEqual(result.resumedFrom, cut);
    assert.deepEqual(await Deno.readFile(destination), DATA);
  });
});

Deno.test("downloadVerified() starts over when the server ignores Range and answers 200", async () => {
  await using server = serve(() => new Response(DATA));
  await withTempDir(async (dir) => {
    const destination = `${dir}/tiny.safetensors`;
    // A stale .partial whose bytes do not even match the file: it must be discarded, not extended.
    await Deno.writeFile(`${destination}.partial`, new Uint8Array(1234).fill(0xab));
    const result = await downloadVerified({ url: server.url("/no-range"), destination, ...pins });
    assert.deepEqual(server.seen[0].range, "bytes=1234-");
    assert.deepEqual(result.resumedFrom, 0);
    assert.deepEqual(result.sha256, SHA256);
    assert.deepEqual(await Deno.readFile(destination), DATA);
  });
});

Deno.test("downloadVerified() accepts a complete .partial when the server answers 416", async () => {
  await using server = serve((request) => serveBytes(request, DATA));
  await withTempDir(async (dir) => {
    const destination = `${dir}/tiny.safetensors`;
    await Deno.writeFile(`${destination}.partial`, DATA);
    // bytes "unknown", so the downloader has to ask; the server says there is nothing past the end.
    const result = await downloadVerified({
      url: server.url("/done"),
      destination,
      sha256: SHA256,
      bytes: "unknown",
    });
    assert.deepEqual(server.seen.map((s) => s.range), [`bytes=${BYTES}-`]);
    assert.deepEqual(result.resumedFrom, BYTES);
    assert.deepEqual(await Deno.readFile(destination), DATA);
  });
});

Deno.test("downloadVerified() names the URL and the status of an HTTP error", async () => {
  await using server = serve(() =>
    new Response("no such file", { status: 404, statusText: "Not Found" })
  );
  await withTempDir(async (dir) => {
    const url = server.url("/missing.safetensors");
    const destination = `${dir}/missing.safetensors`;
    const error = await rejection(
      () => downloadVerified({ url, destination, ...pins }),
      DownloadError,
    );
    assert.deepEqual(error.kind, "http");
    assert.deepEqual(
      error.message,
      `Cannot download "missing.safetensors" from ${url}: HTTP 404 Not Found`,
    );
    assert.ok(!(await exists(destination)) && !(await exists(`${destination}.partial`)));
  });
});

Deno.test("downloadVerified() sends the HF token header and explains a gated 401", async () => {
  await using server = serve((request) =>
    request.headers.get("authorization") === "Bearer hf_test_token"
      ? serveBytes(request, DATA)
      : new Response("gated", { status: 401, statusText: "Unauthorized" })
  );
  await withTempDir(async (dir) => {
    const url = server.url("/gated.safetensors");
    const destination = `${dir}/gated.safetensors`;
    const error = await rejection(
      () => downloadVerified({ url, destination, ...pins }),
      DownloadError,
    );
    assert.match(
      error.message,
      /HTTP 401 Unauthorized \(the repository is gated: .*set HF_TOKEN\)$/,
    );

    const headers = { Authorization: "Bearer hf_test_token" };
    const result = await downloadVerified({ url, destination, ...pins, headers });
    assert.deepEqual(server.seen.map((s) => s.authorization), [null, "Bearer hf_test_token"]);
    assert.deepEqual(result.verified, true);
  });
});

Deno.test("downloadVerified() follows a redirect to a CDN without forwarding the token", async () => {
  await using cdn = serve((request) => serveBytes(request, DATA));
  await using hub = serve(() => Response.redirect(cdn.url("/signed-object"), 302));
  await withTempDir(async (dir) => {
    const destination = `${dir}/tiny.safetensors`;
    await Deno.writeFile(`${destination}.partial`, DATA.subarray(0, 1000));
    const headers = { Authorization: "Bearer hf_test_token" };
    const result = await downloadVerified({
      url: hub.url("/resolve/main/tiny"),
      destination,
      ...pins,
      headers,
    });
    assert.equal(result.resumedFrom, 1000);
    assert.deepEqual(hub.seen, [{
      path: "/resolve/main/tiny",
      range: "bytes=1000-",
      authorization: headers.Authorization,
    }]);
    // Like Hugging Face's signed CDN URLs: the range travels on, the token stays with the hub.
    assert.deepEqual(cdn.seen, [{
      path: "/signed-object",
      range: "bytes=1000-",
      authorization: null,
    }]);
  });
});

Deno.test("downloadVerified() stops on abort, leaving no destination and a resumable .partial", async () => {
  await using server = serve(() => streamPrefix(DATA, BYTES, { "Content-Length": String(BYTES) }));
  await withTempDir(async (dir) => {
    const destination = `${dir}/tiny.safetensors`;
    const controller = new AbortController();
    const reason = new DOMException("user pressed ctrl-c", "AbortError");
    const error = await rejection(
      () =>
        downloadVerified({
          url: server.url("/slow"),
          destination,
          ...pins,
          signal: controller.signal,
          onProgress: (done) => done > 1_000_000 && controller.abort(reason),
        }),
      DOMException,
    );
    assert.equal(error, reason, "rejects with the signal's reason");
    assert.ok(!(await exists(destination)), "no destination");
    const kept = (await Deno.stat(`${destination}.partial`)).size;
    assert.ok(kept > 1_000_000 && kept < BYTES, `kept ${kept} bytes`);
  });
});

Deno.test("downloadVerified() refuses an unpinned file unless allowUnverified, then prints its sha256", async () => {
  await using server = serve((request) => serveBytes(request, DATA));
  await withTempDir(async (dir) => {
    const options = {
      url: server.url("/unpinned"),
      destination: `${dir}/new.safetensors`,
      sha256: "unknown",
      bytes: "unknown",
    } as const;
    const error = await rejection(() => downloadVerified(options), DownloadError);
    assert.deepEqual(error.kind, "unverified");
    assert.deepEqual(server.seen.length, 0, "nothing is fetched");

    const lines: string[] = [];
    const result = await downloadVerified({
      ...options,
      allowUnverified: true,
      log: (line) => lines.push(line),
    });
    assert.deepEqual(result.sha256, SHA256);
    assert.deepEqual(result.verified, false);
    assert.deepEqual(lines.length, 1);
    assert.match(
      lines[0],
      new RegExp(`sha256 ${SHA256}, ${BYTES} bytes; pin these in weights.lock`),
    );
  });
});

Deno.test("downloadVerified() copies plain paths and file:// URLs through the same checks", async () => {
  await withTempDir(async (dir) => {
    const fromPath = await downloadVerified({
      url: SOURCE,
      destination: `${dir}/a.safetensors`,
      ...pins,
    });
    assert.deepEqual(fromPath.sha256, SHA256);
    const fileUrl = new URL(`file://${await Deno.realPath(SOURCE)}`).href;
    const fromUrl = await downloadVerified({
      url: fileUrl,
      destination: `${dir}/b.safetensors`,
      ...pins,
    });
    assert.deepEqual(await Deno.readFile(fromUrl.path), DATA);

    // A local source of the wrong size fails before anything is written.
    const error = await rejection(
      () =>
        downloadVerified({
          url: SOURCE,
          destination: `${dir}/c.safetensors`,
          sha256: SHA256,
          bytes: BYTES + 1,
        }),
      DownloadError,
    );
    assert.deepEqual(error.kind, "size");
    assert.ok(!(await exists(`${dir}/c.safetensors`)));
  });
});

Deno.test("downloadVerified() resumes a local copy and re-checks an existing destination", async () => {
  await withTempDir(async (dir) => {
    const destination = `${dir}/tiny.safetensors`;
    await Deno.writeFile(`${destination}.partial`, DATA.subarray(0, 777_777));
    const first = await downloadVerified({ url: SOURCE, destination, ...pins });
    assert.deepEqual(first.resumedFrom, 777_777);
    assert.deepEqual(await Deno.readFile(destination), DATA);

    const again = await downloadVerified({
      url: "http://127.0.0.1:9/never-fetched",
      destination,
      ...pins,
    });
    assert.deepEqual(again.reused, true);

    const error = await rejection(
      () => downloadVerified({ url: SOURCE, destination, sha256: "0".repeat(64), bytes: BYTES }),
      DownloadError,
    );
    assert.deepEqual(error.kind, "exists");
    assert.deepEqual(await Deno.readFile(destination), DATA, "an existing file is never touched");
  });
});

Deno.test("downloadVerified() deletes a download that fails the safetensors check", async () => {
  const html = new TextEncoder().encode(
    "<!doctype html><title>Log in to Hugging Face</title>".repeat(10),
  );
  await using server = serve(() => new Response(html));
  await withTempDir(async (dir) => {
    const destination = `${dir}/login.safetensors`;
    const error = await rejection(
      () =>
        downloadVerified({
          url: server.url("/login"),
          destination,
          sha256: "unknown",
          bytes: "unknown",
          allowUnverified: true,
          check: assertSafetensors,
          log: () => {},
        }),
      DownloadError,
    );
    assert.deepEqual(error.kind, "invalid");
    assert.ok(!(await exists(destination)) && !(await exists(`${destination}.partial`)));
  });
});

Deno.test("downloadVerified() rejects malformed pins with a TypeError", async () => {
  await assert.rejects(
    () => downloadVerified({ url: SOURCE, destination: "/tmp/x", sha256: "abc", bytes: 1 }),
    new TypeError(`sha256 must be 64 hex digits or "unknown", got "abc"`),
  );
  await assert.rejects(
    () => downloadVerified({ url: SOURCE, destination: "/tmp/x", sha256: SHA256, bytes: -1 }),
    new TypeError(`bytes must be a non-negative integer or "unknown", got -1`),
  );
});

Deno.test("formatProgress() shows bytes, percent, rate and ETA", () => {
  const line = formatProgress({
    label: "svd_xt.safetensors",
    done: 4_020_000_000,
    total: 9_559_625_980,
    movedBytes: 85_300_000 * 10,
    elapsedMs: 10_000,
    barWidth: 10,
  });
  assert.deepEqual(
    line,
    "svd_xt.safetensors [####......]   42.1%  4.02 GB / 9.56 GB  85.3 MB/s  ETA 1m05s",
  );
  assert.deepEqual(formatBytes(512), "512 B");
  assert.deepEqual(formatBytes(391_017_740), "391 MB");
  assert.deepEqual(formatDuration(7_380_000), "2h03m");
});

Deno.test("ProgressBar prints throttled lines when stderr is not a terminal", () => {
  const out: string[] = [];
  let now = 0;
  const bar = new ProgressBar({
    label: "tiny",
    write: (t) => out.push(t),
    isTerminal: false,
    now: () => now,
  });
  bar.update(0, 100);
  now = 1000;
  bar.update(50, 100); // within 10 s of the last line: not printed
  now = 2000;
  bar.update(100, 100);
  bar.done();
  assert.deepEqual(out.length, 2);
  assert.ok(out.every((line) => line.endsWith("\n") && !line.includes("\r")));
  assert.equal(out[1], `tiny [${"#".repeat(20)}]  100.0%  100 B / 100 B  50 B/s\n`);
});

Deno.test("ProgressBar redraws one line in place on a terminal", () => {
  const out: string[] = [];
  let now = 0;
  const bar = new ProgressBar({
    label: "tiny",
    write: (t) => out.push(t),
    isTerminal: true,
    now: () => now,
  });
  for (let i = 0; i <= 10; i++, now += 150) bar.update(i * 10, 100);
  bar.done();
  assert.ok(out.slice(0, -1).every((text) => text.startsWith("\r\x1b[2K")));
  assert.deepEqual(out.at(-1), "\n");
});

Deno.test("formatProgress() fits maxWidth: the bar narrows first, then the line is cut", () => {
  const state = {
    label: "i2v step σ=700.0",
    done: 3,
    total: 25,
    movedBytes: 3,
    elapsedMs: 2500,
    unit: "items" as const,
  };
  const full = formatProgress(state);
  assert.equal(
    full,
    "i2v step σ=700.0 [##..................]   12.0%  3 / 25  1.20/s  ETA 18s",
  );
  const narrower = formatProgress({ ...state, maxWidth: full.length - 10 });
  assert.equal(narrower, "i2v step σ=700.0 [#.........]   12.0%  3 / 25  1.20/s  ETA 18s");
  for (const width of [49, 30, 10]) {
    const line = formatProgress({ ...state, maxWidth: width });
    assert.ok(line.length <= width, `${JSON.stringify(line)} fits ${width}`);
  }
  assert.match(formatProgress({ ...state, maxWidth: 30 }), /…$/);
});

Deno.test("ProgressBar on a 50-column terminal never draws a line that would wrap", () => {
  const out: string[] = [];
  let now = 0;
  const bar = new ProgressBar({
    label: "i2v",
    write: (t) => out.push(t),
    isTerminal: true,
    now: () => now,
    unit: "items",
    columns: () => 50,
  });
  for (let i = 1; i <= 25; i++, now += 150) bar.update(i, 25, `step σ=${(700 / i).toPrecision(4)}`);
  for (const text of out) assert.ok(text.replace("\r\x1b[2K", "").length <= 47, text);
});

Deno.test("ProgressBar.stop() ends a drawn line so the next message starts on its own", () => {
  const out: string[] = [];
  const bar = new ProgressBar({ label: "i2v", write: (t) => out.push(t), isTerminal: true });
  bar.stop(); // nothing drawn yet: nothing to end
  assert.equal(out.length, 0);
  const drawn = new ProgressBar({ label: "i2v", write: (t) => out.push(t), isTerminal: true });
  drawn.update(1, 10);
  drawn.stop();
  drawn.update(2, 10); // ignored after stop
  drawn.stop();
  assert.equal(out.length, 2);
  assert.equal(out[1], "\n");
});
