/**
 * The door under fire (fast-check, a fixed number of runs): random and mutated multipart bodies,
 * mutated images and random field values thrown at `POST /v1/generations`, through
 * `app.request()` and through the real server (`serveHttp`) on loopback. Whatever arrives, the
 * answer is never a 5xx, every 4xx carries `{error: {code, message}}`, and the server still
 * answers `/healthz` afterwards.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { serveHttp } from "../../functions/http_server.ts";
import { UPLOAD_FIELDS } from "../../functions/multipart.ts";
import jpeg from "jpeg-js";
import { decodePng } from "../../pipeline/image/png_decode.ts";
import { fakeRunner, inputPng, SMALL, testService } from "./_service.ts";

const encoder = new TextEncoder();
const PNG = await inputPng();
const JPEG = (() => {
  const { width, height, rgb } = decodePng(PNG);
  const rgba = new Uint8Array(width * height * 4).fill(255);
  for (let i = 0; i < width * height; i++) rgba.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
  return new Uint8Array(jpeg.encode({ data: rgba, width, height }, 80).data);
})();

/** A request: its Content-Type and body bytes. */
interface Upload {
  readonly type: string;
  readonly body: Uint8Array<ArrayBuffer>;
}

function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** A multipart body from parts given as [name, value, filename?]. */
function multipart(
  boundary: string,
  parts: readonly (readonly [string, Uint8Array | string, string?])[],
): Uint8Array<ArrayBuffer> {
  const chunks: Uint8Array[] = [];
  for (const [name, value, filename] of parts) {
    chunks.push(encoder.encode(
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${
        filename === undefined ? "" : `; filename="${filename}"`
      }\r\n\r\n`,
    ));
    chunks.push(typeof value === "string" ? encoder.encode(value) : value);
    chunks.push(encoder.encode("\r\n"));
  }
  chunks.push(encoder.encode(`--${boundary}--\r\n`));
  return concat(chunks);
}

/** Byte-level mutations: flips, cuts, deletions, insertions, duplications. */
function mutated(bytes: Uint8Array): fc.Arbitrary<Uint8Array<ArrayBuffer>> {
  const at = fc.nat({ max: Math.max(0, bytes.length - 1) });
  const mutation = fc.oneof(
    fc.tuple(fc.constant("flip" as const), at, fc.integer({ min: 1, max: 255 })),
    fc.tuple(fc.constant("cut" as const), at, fc.constant(0)),
    fc.tuple(fc.constant("delete" as const), at, fc.integer({ min: 1, max: 64 })),
    fc.tuple(fc.constant("insert" as const), at, fc.integer({ min: 0, max: 255 })),
    fc.tuple(fc.constant("repeat" as const), at, fc.integer({ min: 1, max: 64 })),
  );
  return fc.array(mutation, { minLength: 1, maxLength: 4 }).map((mutations) => {
    let out = Uint8Array.from(bytes);
    for (const [kind, i, n] of mutations) {
      const p = Math.min(i, out.length);
      if (kind === "flip" && p < out.length) out[p] ^= n;
      else if (kind === "cut") out = out.slice(0, p);
      else if (kind === "delete") out = concat([out.subarray(0, p), out.subarray(p + n)]);
      else if (kind === "insert") {
        out = concat([out.subarray(0, p), Uint8Array.of(n), out.subarray(p)]);
      } else if (kind === "repeat") out = concat([out.subarray(0, p + n), out.subarray(p)]);
    }
    return out;
  });
}

const boundaryArb = fc.stringMatching(/^[A-Za-z0-9'()+_,./:=?-]{1,40}$/);
const fieldName = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...UPLOAD_FIELDS.filter((f) => f !== "image")) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
);
const fieldValue = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.integer({ min: -1000, max: 100000 }).map(String),
  fc.double({ noNaN: false }).map(String),
  fc.constantFrom("", " ", "true", "false", "native", "contain", "gif", "webm", "latent", "1e309"),
);
const image = fc.oneof(
  fc.constant(PNG),
  mutated(PNG),
  mutated(JPEG),
  fc.uint8Array({ maxLength: 256 }),
);

/** Valid-looking forms with random fields and a possibly broken image. */
const forms: fc.Arbitrary<Upload> = fc.tuple(
  boundaryArb,
  image,
  fc.array(fc.tuple(fieldName, fieldValue), { maxLength: 5 }),
  fc.boolean(),
).map(([boundary, img, fields, imageFirst]) => {
  const parts: [string, Uint8Array | string, string?][] = fields.map(([n, v]) => [n, v]);
  const file: [string, Uint8Array, string] = ["image", img, 'in\0put "é".png'];
  return {
    type: `multipart/form-data; boundary=${boundary}`,
    body: multipart(boundary, imageFirst ? [file, ...parts] : [...parts, file]),
  };
});

/** A valid upload, mutated at the byte level (boundaries, headers, image, fields alike). */
const brokenForms: fc.Arbitrary<Upload> = mutated(
  multipart("fuzzB0undary", [["image", PNG, "a.png"], ...Object.entries(SMALL)]),
).map((body) => ({ type: "multipart/form-data; boundary=fuzzB0undary", body }));

/** Random bytes under random content types. */
const noise: fc.Arbitrary<Upload> = fc.tuple(
  fc.oneof(
    boundaryArb.map((b) => `multipart/form-data; boundary=${b}`),
    boundaryArb.map((b) => `multipart/form-data; boundary="${b}"`),
    fc.constantFrom("multipart/form-data", "application/json", "text/plain", ""),
    fc.string({ maxLength: 60 }),
  ),
  fc.uint8Array({ maxLength: 2048 }),
).map(([type, body]) => ({ type, body: Uint8Array.from(body) }));

const uploads = fc.oneof(forms, brokenForms, noise);

/** Asserts the door's contract for one answer; counts it in `seen` by status and code. */
async function assertAnswer(
  response: Response,
  upload: Upload,
  seen: Map<string, number>,
): Promise<void> {
  const text = await response.text();
  const what = `${response.status} for ${JSON.stringify(upload.type)}: ${text}`;
  assert.ok(response.status < 500, what);
  let key = String(response.status);
  if (response.status >= 400) {
    const { error } = JSON.parse(text);
    assert.equal(typeof error?.code, "string", what);
    assert.equal(typeof error?.message, "string", what);
    key += ` ${error.code}`;
  } else {
    assert.equal(response.status, 202, what);
  }
  seen.set(key, (seen.get(key) ?? 0) + 1);
}

/** The run reached deep as well as shallow: accepted uploads and many kinds of refusal. */
function assertVaried(seen: Map<string, number>): void {
  const summary = JSON.stringify(Object.fromEntries(seen));
  assert.ok((seen.get("202") ?? 0) > 0, `nothing was accepted: ${summary}`);
  assert.ok(seen.size >= 6, `few kinds of answer: ${summary}`);
  for (const code of ["malformed_request", "corrupt_image", "invalid_parameter"]) {
    assert.ok([...seen.keys()].some((k) => k.endsWith(code)), `no ${code}: ${summary}`);
  }
}

Deno.test({
  name:
    "fuzzed uploads through app.request() never get a 5xx, every 4xx has an error body, and /healthz still answers",
  permissions: { read: true, write: true, env: true, run: true, net: ["127.0.0.1"] },
  async fn() {
    await using service = await testService({
      run: fakeRunner(),
      startLoop: false,
      queueSize: 100_000,
      maxUploadBytes: 64 * 1024,
    });
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(uploads, async (upload) => {
        const headers: Record<string, string> = upload.type ? { "Content-Type": upload.type } : {};
        const response = await service.app.request("/v1/generations", {
          method: "POST",
          headers,
          body: upload.body,
        });
        await assertAnswer(response, upload, seen);
      }),
      { numRuns: 400, seed: 20261205 },
    );
    assertVaried(seen);
    assert.equal((await service.app.request("/healthz")).status, 200);
  },
});

Deno.test({
  name: "fuzzed uploads through the real server never get a 5xx, and it keeps serving",
  permissions: { read: true, write: true, env: true, run: true, net: ["127.0.0.1"] },
  async fn() {
    await using service = await testService({
      run: fakeRunner(),
      startLoop: false,
      queueSize: 100_000,
      maxUploadBytes: 64 * 1024,
    });
    const server = await serveHttp(service.app.fetch, { hostname: "127.0.0.1", port: 0 });
    const url = `http://127.0.0.1:${server.addr.port}`;
    const seen = new Map<string, number>();
    try {
      await fc.assert(
        fc.asyncProperty(uploads, async (upload) => {
          const headers: Record<string, string> = upload.type
            ? { "Content-Type": upload.type }
            : {};
          const response = await fetch(`${url}/v1/generations`, {
            method: "POST",
            headers,
            body: upload.body,
          });
          await assertAnswer(response, upload, seen);
        }),
        { numRuns: 150, seed: 20261206 },
      );
      assertVaried(seen);
      const health = await fetch(`${url}/healthz`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
    } finally {
      server.closeAll();
      await server.shutdown();
    }
  },
});
