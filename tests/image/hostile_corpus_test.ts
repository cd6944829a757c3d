import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeImage } from "../../pipeline/image/decode_image.ts";
import {
  CorruptImageError,
  ImageTooLargeError,
  UnsupportedImageError,
} from "../../pipeline/image/image_errors.ts";
import { ImagePool } from "../../pipeline/image/image_pool.ts";
import {
  CORPUS_MAX_PIXELS,
  CORPUS_PERMISSIONS,
  type HostileCase,
  hostileCorpus,
  makeSeeds,
  type Outcome,
} from "./_hostile_corpus.ts";

/** The outcome an error stands for, or a description of an error that must never happen. */
function outcomeOf(error: unknown): Outcome | string {
  if (error instanceof ImageTooLargeError && error.code === "image_too_large") return 413;
  if (error instanceof CorruptImageError && error.code === "corrupt_image") return 422;
  if (error instanceof UnsupportedImageError && error.code === "unsupported_media_type") {
    return 415;
  }
  return `unexpected ${error instanceof Error ? `${error.name}: ${error.message}` : error}`;
}

/** Runs `validate` on every case; returns one line per case whose outcome is wrong. */
async function wrongOutcomes(
  corpus: readonly HostileCase[],
  validate: (bytes: Uint8Array) => Promise<unknown>,
): Promise<string[]> {
  const wrong: string[] = [];
  for (const c of corpus) {
    let outcome: Outcome | string = "decodes";
    let message = "";
    try {
      await validate(c.bytes);
    } catch (error) {
      outcome = outcomeOf(error);
      message = error instanceof Error ? error.message : String(error);
    }
    if (!c.expect.includes(outcome as Outcome)) {
      wrong.push(`${c.name}: expected ${c.expect.join(" or ")}, got ${outcome} ${message}`);
    } else if (outcome !== "decodes" && c.message && !c.message.test(message)) {
      wrong.push(`${c.name}: ${outcome} as expected, but "${message}" does not match ${c.message}`);
    }
  }
  return wrong;
}

const LIMIT = { maxPixels: CORPUS_MAX_PIXELS };

Deno.test({
  name: "decodeImage() decodes or refuses every hostile corpus file with the right status class",
  permissions: CORPUS_PERMISSIONS,
  async fn() {
    const corpus = await hostileCorpus();
    assert.ok(corpus.length > 500, `only ${corpus.length} cases`);
    const wrong = await wrongOutcomes(corpus, (bytes) => decodeImage(bytes, LIMIT));
    assert.deepEqual(wrong, [], `${wrong.length} of ${corpus.length} cases:\n${wrong.join("\n")}`);
  },
});

Deno.test({
  name:
    "ImagePool.validate() gives every hostile corpus file the same outcome, off the main thread",
  permissions: CORPUS_PERMISSIONS,
  async fn() {
    const corpus = await hostileCorpus();
    const pool = new ImagePool({ workers: 2, timeoutMs: 60_000 });
    try {
      const wrong = await wrongOutcomes(corpus, (bytes) => pool.validate(bytes, LIMIT));
      assert.deepEqual(
        wrong,
        [],
        `${wrong.length} of ${corpus.length} cases:\n${wrong.join("\n")}`,
      );
    } finally {
      await pool.close();
    }
  },
});

Deno.test({
  name: "a 4 GiB PNG bomb under a 16 Mpx header is refused having inflated only what 16 Mpx needs",
  permissions: CORPUS_PERMISSIONS,
  async fn() {
    const corpus = await hostileCorpus();
    const bomb = corpus.find((c) => c.name.startsWith("png bomb: 4 GiB IDAT under a 4000×4000"))!;
    assert.ok(bomb.bytes.length < 8 << 20, `the bomb file is ${bomb.bytes.length} bytes`);
    const before = Deno.memoryUsage().rss;
    let peak = before;
    const probe = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 1);
    try {
      await assert.rejects(decodeImage(bomb.bytes, LIMIT), CorruptImageError, "inflates past");
      peak = Math.max(peak, Deno.memoryUsage().rss);
    } finally {
      clearInterval(probe);
    }
    // inflating it whole would take 4 GiB; the cap allows 16 MB (plus zlib's chunk)
    assert.ok(peak - before < 256 << 20, `RSS grew by ${(peak - before) / 2 ** 20} MiB`);
  },
});

Deno.test({
  name:
    "random mutations of real PNG, JPEG and WebP files decode or are refused, never crash or hang",
  permissions: CORPUS_PERMISSIONS,
  async fn() {
    const seeds = Object.values(await makeSeeds());
    // a hang in a worker times out as ImageWorkerError, which the property reports
    const pool = new ImagePool({ workers: 2, timeoutMs: 30_000 });
    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant("flip"),
        spots: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
        xor: fc.integer({ min: 1, max: 255 }),
      }),
      fc.record({ kind: fc.constant("cut"), at: fc.nat() }),
      fc.record({
        kind: fc.constant("insert"),
        at: fc.nat(),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
      }),
      fc.record({
        kind: fc.constant("delete"),
        at: fc.nat(),
        count: fc.integer({ min: 1, max: 64 }),
      }),
      fc.record({
        kind: fc.constant("duplicate"),
        at: fc.nat(),
        count: fc.integer({ min: 1, max: 256 }),
      }),
      fc.record({
        kind: fc.constant("marker"),
        at: fc.nat(),
        byte: fc.integer({ min: 0xc0, max: 0xff }),
      }),
    );
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.nat({ max: seeds.length - 1 }),
          fc.array(mutation, { minLength: 1, maxLength: 3 }),
          async (seedIndex, mutations) => {
            let bytes = seeds[seedIndex].slice();
            for (const m of mutations) bytes = mutate(bytes, m);
            try {
              const info = await pool.validate(bytes, LIMIT);
              return info.width >= 1 && info.height >= 1;
            } catch (error) {
              const outcome = outcomeOf(error);
              if (typeof outcome === "string") throw new Error(outcome);
              return true;
            }
          },
        ),
        { numRuns: 400 },
      );
    } finally {
      await pool.close();
    }
  },
});

type Mutation =
  | { kind: "flip"; spots: number[]; xor: number }
  | { kind: "cut"; at: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; count: number }
  | { kind: "duplicate"; at: number; count: number }
  | { kind: "marker"; at: number; byte: number };

/** Applies one mutation; positions wrap around the file's length. */
function mutate(bytes: Uint8Array, m: Mutation): Uint8Array {
  const n = Math.max(1, bytes.length);
  switch (m.kind) {
    case "flip": {
      const out = bytes.slice();
      for (const spot of m.spots) if (out.length > 0) out[spot % n] ^= m.xor;
      return out;
    }
    case "cut":
      return bytes.slice(0, m.at % (bytes.length + 1));
    case "insert": {
      const at = m.at % (bytes.length + 1);
      return concat(bytes.subarray(0, at), m.bytes, bytes.subarray(at));
    }
    case "delete": {
      const at = m.at % n;
      return concat(bytes.subarray(0, at), bytes.subarray(at + m.count));
    }
    case "duplicate": {
      const at = m.at % n;
      const slice = bytes.subarray(at, at + m.count);
      return concat(bytes.subarray(0, at), slice, slice, bytes.subarray(at + m.count));
    }
    case "marker": { // an 0xFF and a marker-like byte, where JPEG parsers are most fragile
      const out = bytes.slice();
      const at = m.at % n;
      out[at] = 0xff;
      if (at + 1 < out.length) out[at + 1] = m.byte;
      return out;
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}
