/**
 * Valid multipart is accepted however it is written and however it arrives (chunked at every
 * byte, over a real socket): an epilogue of any length, a preamble, filenames with NUL, UTF-8,
 * escaped quotes or `filename*`. Malformed multipart is 400 `malformed_request` with a message
 * saying what is wrong. (Before: an epilogue over 1 KB was "ends before the closing boundary", and
 * a filename with NUL a bare 400.)
 */

import assert from "node:assert/strict";
import { fakeRunner, inputPng, SMALL, testService } from "./_service.ts";

const BOUNDARY = "----svdBoundary7MA4YWxkTrZu0gW";
const encoder = new TextEncoder();

/** One form-data part: its Content-Disposition parameters (raw), and its body. */
function part(
  disposition: string,
  body: Uint8Array | string,
  type?: string,
): Uint8Array<ArrayBuffer> {
  const head = `--${BOUNDARY}\r\nContent-Disposition: form-data; ${disposition}\r\n` +
    (type ? `Content-Type: ${type}\r\n` : "") + "\r\n";
  return concat(
    encoder.encode(head),
    typeof body === "string" ? encoder.encode(body) : body,
    encoder.encode("\r\n"),
  );
}

/** A whole body: preamble, the image part (filename as written), SMALL's fields, epilogue. */
function body(
  png: Uint8Array,
  options: { filename?: string; preamble?: string; epilogue?: string },
) {
  const fields = Object.entries(SMALL).map(([name, value]) => part(`name="${name}"`, value));
  return concat(
    encoder.encode(options.preamble ?? ""),
    part(`name="image"; ${options.filename ?? 'filename="input.png"'}`, png, "image/png"),
    ...fields,
    encoder.encode(`--${BOUNDARY}--${options.epilogue ?? "\r\n"}`),
  );
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** `bytes` as a stream of chunks of `size` bytes. */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset += size));
    },
  });
}

const HEADERS = { "Content-Type": `multipart/form-data; boundary=${BOUNDARY}` };

Deno.test("valid multipart with a long epilogue, a preamble or odd filenames is accepted, whatever its chunking", async (t) => {
  await using service = await testService({ run: fakeRunner(), startLoop: false, queueSize: 200 });
  const png = await inputPng();
  const cases: Record<string, Uint8Array> = {
    "an epilogue of 64 KiB": body(png, { epilogue: "\r\n" + "epilogue ".repeat(7282) }),
    "an epilogue of 2 KB without a CRLF first": body(png, { epilogue: "x".repeat(2000) }),
    "a preamble": body(png, { preamble: "This is a preamble.\r\nIt is ignored.\r\n" }),
    "a filename with NUL": body(png, { filename: 'filename="a\0b.png"' }),
    "a filename in UTF-8": body(png, { filename: 'filename="photo été 画像 🎞.png"' }),
    "a filename with escaped quotes": body(png, { filename: 'filename="say \\"cheese\\".png"' }),
    "a filename with a semicolon": body(png, { filename: 'filename="a;b.png"' }),
    "an empty filename": body(png, { filename: 'filename=""' }),
    "filename* (RFC 5987)": body(png, { filename: "filename*=UTF-8''%E7%94%BB%E5%83%8F.png" }),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    await t.step(name, async () => {
      for (const size of [bytes.length, 1000, 7, 1]) {
        const response = await service.app.request("/v1/generations", {
          method: "POST",
          headers: HEADERS,
          body: chunked(bytes, size),
          duplex: "half",
        } as RequestInit);
        assert.equal(response.status, 202, `chunks of ${size}: ${await response.text()}`);
      }
    });
  }
});

Deno.test("a long epilogue and a NUL filename are accepted over a real socket too", async () => {
  await using service = await testService({ run: fakeRunner(), startLoop: false });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, service.app.fetch);
  try {
    const png = await inputPng();
    const url = `http://127.0.0.1:${server.addr.port}/v1/generations`;
    for (
      const bytes of [
        body(png, { epilogue: "\r\n" + "e".repeat(256 * 1024) }),
        body(png, { filename: 'filename="\0\0.png"' }),
      ]
    ) {
      const response = await fetch(url, { method: "POST", headers: HEADERS, body: bytes });
      assert.equal(response.status, 202, await response.text());
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("malformed multipart is 400 malformed_request saying what is wrong", async (t) => {
  await using service = await testService({ run: fakeRunner(), startLoop: false });
  const png = await inputPng();
  const whole = body(png, {});
  const cases: [string, Uint8Array | string, RegExp][] = [
    ["no boundary at all", "garbage", /no boundary "------svdBoundary/],
    ["an empty body", "", /no boundary|no body/],
    [
      "cut before the closing boundary",
      whole.slice(0, whole.length - 200),
      /ends before the closing boundary "------svdBoundary7MA4YWxkTrZu0gW--"/,
    ],
    [
      "a part without Content-Disposition",
      `--${BOUNDARY}\r\nContent-Type: text/plain\r\n\r\n3\r\n--${BOUNDARY}--`,
      /part 1 has no Content-Disposition header/,
    ],
    [
      "a part that is not form-data",
      `--${BOUNDARY}\r\nContent-Disposition: attachment; name="steps"\r\n\r\n3\r\n--${BOUNDARY}--`,
      /part 1 has Content-Disposition "attachment; name=\\"steps\\"", not form-data/,
    ],
    [
      "a part without a name",
      `--${BOUNDARY}\r\nContent-Disposition: form-data; filename="a.png"\r\n\r\n3\r\n--${BOUNDARY}--`,
      /part 1 has no field name/,
    ],
    [
      "headers over 8 KiB",
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="steps"\r\nX-Pad: ${
        "p".repeat(9000)
      }\r\n\r\n3\r\n--${BOUNDARY}--`,
      /headers are longer than 8192 bytes/,
    ],
    [
      "headers that are not UTF-8",
      concat(
        encoder.encode(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="st`),
        new Uint8Array([0xff, 0xfe]),
        encoder.encode(`"\r\n\r\n3\r\n--${BOUNDARY}--`),
      ),
      /the headers of part 1 are not UTF-8/,
    ],
  ];
  for (const [name, bytes, message] of cases) {
    await t.step(name, async () => {
      for (const size of [1 << 20, 5]) {
        const data = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
        const response = await service.app.request("/v1/generations", {
          method: "POST",
          headers: HEADERS,
          body: chunked(data, size),
          duplex: "half",
        } as RequestInit);
        const text = await response.text();
        assert.equal(response.status, 400, text);
        const { error } = JSON.parse(text);
        assert.equal(error.code, "malformed_request");
        assert.match(error.message, /^The multipart body is malformed: /);
        assert.match(error.message, message);
      }
    });
  }
  assert.deepEqual(await service.queue.stats(), { queued: 0, running: 0 });
});

Deno.test("a text field that is not UTF-8 is 422 naming the field", async () => {
  await using service = await testService({ run: fakeRunner(), startLoop: false });
  const bytes = concat(
    part('name="image"; filename="a.png"', await inputPng()),
    part('name="format"', new Uint8Array([0x6d, 0x70, 0xff])),
    encoder.encode(`--${BOUNDARY}--`),
  );
  const response = await service.app.request("/v1/generations", {
    method: "POST",
    headers: HEADERS,
    body: bytes,
  });
  assert.equal(response.status, 422);
  const { error } = await response.json();
  assert.deepEqual([error.code, error.field], ["invalid_parameter", "format"]);
  assert.match(error.message, /not UTF-8/);
});
