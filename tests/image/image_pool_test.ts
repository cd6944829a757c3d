import assert from "node:assert/strict";
import { GenerationCancelledError } from "../../pipeline/errors.ts";
import {
  CorruptImageError,
  ImageTooLargeError,
  UnsupportedImageError,
} from "../../pipeline/image/image_errors.ts";
import { ImagePool, ImageWorkerError } from "../../pipeline/image/image_pool.ts";
import { encodePng } from "../../pipeline/image/png_encode.ts";
import { prepareImage } from "../../pipeline/image/prepare_image.ts";
import { fixturePath } from "../_fixtures.ts";
import { FFMPEG_PERMISSIONS, makeImage } from "./_ffmpeg.ts";

const LIMIT = { maxPixels: 16e6 };
/** The worker module is read from disk; WebP runs ffmpeg. */
const PERMISSIONS: Deno.PermissionOptionsObject = { ...FFMPEG_PERMISSIONS, env: true };

/** A noisy RGB PNG (does not compress, so it takes a while to decode and resize). */
function noisyPng(width: number, height: number, seed = 1): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  let x = seed;
  for (let i = 0; i < rgb.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    rgb[i] = x >>> 24;
  }
  return encodePng(rgb, width, height);
}

/** Resolves once `condition()` holds, polling; rejects after `ms`. */
async function until(condition: () => boolean, ms = 20_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test({
  name: "ImagePool.prepare() returns exactly the tensor prepareImage() makes on the main thread",
  permissions: PERMISSIONS,
  async fn() {
    const pool = new ImagePool({ workers: 1 });
    try {
      const inputs = [
        Deno.readFileSync(fixturePath("input.png")),
        await makeImage("x.jpg", [], "testsrc=size=200x120"),
        await makeImage("x.webp", ["-lossless", "1"], "testsrc=size=150x100"),
      ];
      for (const bytes of inputs) {
        for (const policy of ["cover", "contain", "stretch", "native"] as const) {
          const options = { width: 192, height: 128, policy, ...LIMIT };
          const here = await prepareImage(bytes, options);
          const there = await pool.prepare(bytes, options);
          assert.deepEqual(there.tensor.dims, here.tensor.dims);
          assert.deepEqual(there.tensor.data, here.tensor.data, policy);
          assert.deepEqual(
            [there.width, there.height, there.sourceWidth, there.sourceHeight],
            [here.width, here.height, here.sourceWidth, here.sourceHeight],
          );
        }
        assert.ok(bytes.byteLength > 0, "the caller's bytes are not detached");
      }
    } finally {
      await pool.close();
    }
  },
});

Deno.test({
  name: "ImagePool.validate() returns the format and size of a whole image",
  permissions: PERMISSIONS,
  async fn() {
    const pool = new ImagePool({ workers: 1 });
    try {
      const png = Deno.readFileSync(fixturePath("input.png"));
      assert.deepEqual(await pool.validate(png, LIMIT), { format: "png", width: 128, height: 64 });
      const webp = await makeImage("x.webp", [], "testsrc=size=96x64");
      assert.deepEqual(await pool.validate(webp, LIMIT), { format: "webp", width: 96, height: 64 });
    } finally {
      await pool.close();
    }
  },
});

Deno.test({
  name: "ImagePool rebuilds the image errors as their own classes, with their codes and messages",
  permissions: PERMISSIONS,
  async fn() {
    const pool = new ImagePool({ workers: 1 });
    try {
      const png = Deno.readFileSync(fixturePath("input.png"));
      const cut = png.slice(0, png.length - 20);
      await assert.rejects(pool.validate(cut, LIMIT), (error: unknown) => {
        assert.ok(error instanceof CorruptImageError);
        assert.equal(error.code, "corrupt_image");
        assert.match(error.message, /^Truncated PNG: chunk IDAT at byte \d+ needs/);
        return true;
      });
      await assert.rejects(pool.validate(png, { maxPixels: 1000 }), (error: unknown) => {
        assert.ok(error instanceof ImageTooLargeError);
        assert.equal(error.code, "image_too_large");
        assert.match(error.message, /128×64 = 8192 pixels, more than the limit of 1000/);
        return true;
      });
      const gif = new TextEncoder().encode("GIF89a\x01\x00\x01\x00");
      await assert.rejects(pool.validate(gif, LIMIT), (error: unknown) => {
        assert.ok(error instanceof UnsupportedImageError && !(error instanceof CorruptImageError));
        assert.equal(error.code, "unsupported_media_type");
        assert.match(error.message, /GIF/);
        return true;
      });
      const options = { width: 100, height: 64, policy: "cover" as const, ...LIMIT };
      await assert.rejects(pool.prepare(png, options), RangeError, "targetWidth must be");
    } finally {
      await pool.close();
    }
  },
});

Deno.test({
  name: "ImagePool: a crashed worker fails only its request; the next one gets a fresh worker",
  permissions: PERMISSIONS,
  async fn() {
    const pool = new ImagePool({ workers: 1 });
    try {
      const png = Deno.readFileSync(fixturePath("input.png"));
      await pool.validate(png, LIMIT); // a worker is up
      const crash = pool.failForTesting("crash");
      const next = pool.validate(png, LIMIT); // queued behind the crash, on the same worker
      await assert.rejects(crash, (error: unknown) => {
        assert.ok(error instanceof ImageWorkerError);
        assert.equal(error.reason, "crashed");
        assert.match(error.message, /Image worker crashed: .*crash requested by a test/);
        return true;
      });
      assert.deepEqual(await next, { format: "png", width: 128, height: 64 });
    } finally {
      await pool.close();
    }
  },
});

Deno.test({
  name: "ImagePool: a request that hangs times out, its worker is stopped, the next one runs",
  permissions: PERMISSIONS,
  async fn() {
    const pool = new ImagePool({ workers: 1, timeoutMs: 500 });
    try {
      const hang = pool.failForTesting("hang");
      const next = pool.validate(Deno.readFileSync(fixturePath("input.png")), LIMIT);
      await assert.rejects(hang, (error: unknown) => {
        assert.ok(error instanceof ImageWorkerError);
        assert.equal(error.reason, "timedOut");
        assert.match(error.message, /longer than 500 ms/);
        return true;
      });
      assert.equal((await next).format, "png");
    } finally {
      await pool.close();
    }
  },
});

Deno.test({
  name: "ImagePool: aborting cancels a queued request and stops a running one",
  permissions: PERMISSIONS,
  async fn() {
    const pool = new ImagePool({ workers: 1, timeoutMs: 60_000 });
    try {
      const running = new AbortController();
      const queued = new AbortController();
      const hang = pool.failForTesting("hang", { signal: running.signal });
      const png = Deno.readFileSync(fixturePath("input.png"));
      const waiting = pool.validate(png, { ...LIMIT, signal: queued.signal });
      assert.deepEqual(pool.stats, { workers: 1, running: 1, queued: 1 });
      queued.abort(new Error("client went away"));
      await assert.rejects(waiting, (error: unknown) => {
        assert.ok(error instanceof GenerationCancelledError);
        assert.equal((error.cause as Error).message, "client went away");
        return true;
      });
      assert.deepEqual(pool.stats, { workers: 1, running: 1, queued: 0 });
      running.abort(new Error("job deleted"));
      await assert.rejects(hang, GenerationCancelledError);
      assert.deepEqual(pool.stats, { workers: 0, running: 0, queued: 0 }); // the spinning worker is gone
      assert.equal((await pool.validate(png, LIMIT)).width, 128);
      const aborted = AbortSignal.abort(new Error("already gone"));
      await assert.rejects(
        pool.validate(png, { ...LIMIT, signal: aborted }),
        GenerationCancelledError,
      );
    } finally {
      await pool.close();
    }
  },
});

Deno.test({
  name: "ImagePool runs at most `workers` requests at once and queues the rest",
  permissions: PERMISSIONS,
  async fn() {
    const pool = new ImagePool({ workers: 2 });
    try {
      const png = noisyPng(600, 400);
      let most = 0;
      const probe = setInterval(() => most = Math.max(most, pool.stats.running), 1);
      const requests = Array.from({ length: 6 }, () => pool.validate(png, LIMIT));
      assert.deepEqual(pool.stats, { workers: 2, running: 2, queued: 4 });
      const results = await Promise.all(requests);
      clearInterval(probe);
      assert.equal(most, 2);
      assert.equal(pool.stats.workers, 2);
      assert.ok(results.every((info) => info.width === 600 && info.height === 400));
    } finally {
      await pool.close();
    }
  },
});

Deno.test({
  name: "ImagePool keeps timers running while a worker prepares a large image",
  permissions: PERMISSIONS,
  async fn() {
    const pool = new ImagePool({ workers: 1 });
    try {
      const png = noisyPng(1500, 1500);
      await pool.validate(noisyPng(8, 8), LIMIT); // the worker is up and its modules loaded
      let ticks = 0;
      const probe = setInterval(() => ticks++, 1);
      const prepared = await pool.prepare(png, {
        width: 1024,
        height: 576,
        policy: "cover",
        ...LIMIT,
      });
      clearInterval(probe);
      assert.deepEqual(prepared.tensor.dims, [1, 3, 576, 1024]);
      // decoding and resizing 2.25 Mpx on this thread would let no timer run until it ended
      assert.ok(ticks >= 3, `only ${ticks} timer ticks during the preparation`);
    } finally {
      await pool.close();
    }
  },
});

Deno.test({
  name: "ImagePool stops idle workers after idleMs, and refuses work once closed",
  permissions: PERMISSIONS,
  async fn() {
    const pool = new ImagePool({ workers: 2, idleMs: 50 });
    const png = Deno.readFileSync(fixturePath("input.png"));
    await Promise.all([pool.validate(png, LIMIT), pool.validate(png, LIMIT)]);
    assert.ok(pool.stats.workers >= 1);
    await until(() => pool.stats.workers === 0);
    const hang = pool.failForTesting("hang");
    const queued = pool.validate(png, LIMIT);
    await pool.close();
    for (const request of [hang, queued, pool.validate(png, LIMIT)]) {
      await assert.rejects(request, (error: unknown) => {
        assert.ok(error instanceof ImageWorkerError);
        assert.equal(error.reason, "closed");
        return true;
      });
    }
    assert.deepEqual(pool.stats, { workers: 0, running: 0, queued: 0 });
  },
});

Deno.test({
  name: "ImagePool rejects a worker count, timeout or idle time out of range, naming it",
  permissions: "none",
  fn() {
    assert.throws(() => new ImagePool({ workers: 0 }), /workers must be a positive integer, got 0/);
    assert.throws(() => new ImagePool({ workers: 1.5 }), /got 1.5/);
    assert.throws(() => new ImagePool({ timeoutMs: 0 }), /timeoutMs must be positive, got 0/);
    assert.throws(() => new ImagePool({ idleMs: -1 }), /idleMs must be ≥ 0, got -1/);
  },
});
