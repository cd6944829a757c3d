/**
 * `deno task weights <name>` as users run it, against a local HTTP server on loopback serving the
 * tiny checkpoint and a corrupted copy: download → verify sha256 → convert, or a clear refusal
 * that leaves nothing half-written.
 */

import assert from "node:assert/strict";
import { sha256File } from "../../pipeline/convert/file_hash.ts";
import { fixturePath } from "../_fixtures.ts";
import { runTask } from "../_run_task.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

Deno.test("deno task weights downloads, verifies and converts; refuses corrupt and truncated files", async (t) => {
  const dir = await Deno.makeTempDir();
  const good = await Deno.readFile(fixturePath("weights.safetensors"));
  const corrupt = good.slice();
  corrupt[corrupt.length - 100] ^= 0xff;
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    requests.push(`${path} ${req.headers.get("range") ?? ""}`);
    if (path === "/good.safetensors") return new Response(good);
    if (path === "/corrupt.safetensors") return new Response(corrupt);
    if (path === "/truncated.safetensors") {
      // Announces the full length, sends half, then ends the body.
      const body = new ReadableStream({
        async start(c) {
          c.enqueue(good.subarray(0, good.length >> 1));
          await new Promise((resolve) => setTimeout(resolve, 300)); // let the half arrive
          c.error(new Error("connection dropped"));
        },
      });
      return new Response(body, { headers: { "content-length": String(good.length) } });
    }
    return new Response("not found", { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const sha256 = await sha256File(fixturePath("weights.safetensors"));
  const entry = (name: string, file: string) => ({
    name,
    url: `${base}/${file}`,
    file: `${name}.safetensors`,
    bytes: good.length,
    sha256,
    config: `${ROOT}configs/tiny.yaml`,
    license: "test",
    gated: false,
    provenance: { bytes: "test", sha256: "test" },
  });
  const lock = `${dir}/weights.lock`;
  await Deno.writeTextFile(
    lock,
    JSON.stringify({
      version: 1,
      checkpoints: [
        entry("tiny", "good.safetensors"),
        entry("bad", "corrupt.safetensors"),
        entry("cut", "truncated.safetensors"),
      ],
    }),
  );
  const models = `${dir}/models`;
  const weights = (name: string) => runTask("weights", [name, "--lock", lock, "--models", models]);
  try {
    await t.step("a good file is downloaded, verified and converted", async () => {
      const result = await weights("tiny");
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /\(verified\)/);
      for (
        const f of [
          "model.json",
          "unet.onnx",
          "vae_decoder.onnx",
          "image_encoder.onnx",
          "vae_encoder.onnx",
        ]
      ) {
        await Deno.stat(`${models}/tiny/${f}`);
      }
      assert.equal(await sha256File(`${models}/tiny.safetensors`), sha256);
    });

    await t.step(
      "a corrupted file is refused with the sha256 mismatch and nothing is left",
      async () => {
        const result = await weights("bad");
        assert.equal(result.code, 1);
        assert.match(result.stderr, /sha256 mismatch: expected [0-9a-f]{64}, got [0-9a-f]{64}/);
        const left = [...Deno.readDirSync(models)].map((e) => e.name).sort();
        assert.deepEqual(left, ["tiny", "tiny.safetensors"]);
      },
    );

    await t.step(
      "a truncated transfer fails, keeps the .partial, and the next run resumes",
      async () => {
        const result = await weights("cut");
        assert.equal(result.code, 1);
        assert.doesNotMatch(result.stderr, /\n\s+at /); // one clear line, no stack trace
        const partial = await Deno.stat(`${models}/cut.safetensors.partial`);
        assert.equal(partial.size, good.length >> 1);
        // The server now serves the rest: point the entry at the good file and run again.
        const text = (await Deno.readTextFile(lock)).replace(
          "truncated.safetensors",
          "good.safetensors",
        );
        await Deno.writeTextFile(lock, text);
        requests.length = 0;
        const again = await weights("cut");
        assert.equal(again.code, 0, again.stderr);
        assert.deepEqual(requests, [`/good.safetensors bytes=${good.length >> 1}-`]);
        await Deno.stat(`${models}/cut/model.json`);
      },
    );

    await t.step("an unknown name lists the valid ones", async () => {
      const result = await weights("nope");
      assert.equal(result.code, 1);
      assert.match(result.stderr, /valid names: tiny, bad, cut/);
    });
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
