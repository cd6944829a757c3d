/**
 * Bad images are refused at the door, synchronously: every file of the hostile corpus
 * (`tests/image/_hostile_corpus.ts`: truncations, flipped bytes, bad CRCs and zlib data, JPEG
 * processes we do not decode, animated WebP, lying sizes, bombs) is answered by
 * `POST /v1/generations` with the status its case names — 202 only for the files that decode —
 * and nothing bad is queued. Before the image pool checked uploads whole, 41 of 71 such files got
 * 202 and failed later in their job.
 */

import assert from "node:assert/strict";
import { CORPUS_PERMISSIONS, hostileCorpus } from "../image/_hostile_corpus.ts";
import { fakeRunner, SMALL, testService, upload } from "./_service.ts";

Deno.test({
  name:
    "every hostile image gets its refusal (413, 415, 422 corrupt_image) at once; only whole images are queued",
  permissions: { ...CORPUS_PERMISSIONS, env: true, net: ["127.0.0.1"] },
  async fn() {
    const corpus = await hostileCorpus();
    await using service = await testService({
      run: fakeRunner(),
      startLoop: false,
      queueSize: corpus.length,
    });
    const wrong: string[] = [];
    let accepted = 0;
    for (const c of corpus) {
      const response = await service.app.request("/v1/generations", {
        method: "POST",
        body: upload(c.bytes, SMALL),
      });
      const body = await response.json();
      const outcome = response.status === 202 ? "decodes" : response.status;
      if (response.status === 202) accepted++;
      else {
        const code =
          { 413: "image_too_large", 415: "unsupported_media_type", 422: "corrupt_image" }[
            response.status as 413 | 415 | 422
          ];
        if (body.error?.code !== code || body.error?.field !== "image") {
          wrong.push(`${c.name}: ${response.status} ${JSON.stringify(body)}`);
          continue;
        }
        if (c.message && !c.message.test(body.error.message)) {
          wrong.push(`${c.name}: message ${JSON.stringify(body.error.message)} !~ ${c.message}`);
          continue;
        }
      }
      if (!(c.expect as readonly (string | number)[]).includes(outcome)) {
        wrong.push(`${c.name}: ${outcome}, expected ${c.expect.join(" or ")}`);
      }
    }
    assert.deepEqual(wrong, [], `${wrong.length} of ${corpus.length} wrong`);
    const stats = await service.queue.stats();
    assert.equal(stats.queued, accepted, "exactly the accepted uploads were queued");
    assert.ok(accepted >= 8 && accepted < corpus.length / 4, `${accepted} accepted`);
  },
});

Deno.test({
  name: "a corrupt PNG (bad CRC) is 422 corrupt_image naming the chunk; a lossless JPEG is 415",
  permissions: { ...CORPUS_PERMISSIONS, env: true, net: ["127.0.0.1"] },
  async fn() {
    const corpus = await hostileCorpus();
    await using service = await testService({ run: fakeRunner(), startLoop: false });
    const post = (bytes: Uint8Array) =>
      service.app.request("/v1/generations", { method: "POST", body: upload(bytes, SMALL) });
    // a byte of IDAT's data (spot 8 on), not of its type
    const crc = corpus.find((c) =>
      Number(/^png: byte (\d+) of chunk IDAT flipped$/.exec(c.name)?.[1]) >= 8
    )!;
    const refused = await post(crc.bytes);
    assert.equal(refused.status, 422);
    const { error } = await refused.json();
    assert.equal(error.code, "corrupt_image");
    assert.equal(error.field, "image");
    assert.match(error.message, /CRC mismatch in chunk IDAT/);
    const lossless = corpus.find((c) => c.name === "jpeg: SOF0 swapped for 0xFFC3")!;
    const unsupported = await post(lossless.bytes);
    assert.equal(unsupported.status, 415);
    assert.equal((await unsupported.json()).error.code, "unsupported_media_type");
    assert.deepEqual(await service.queue.stats(), { queued: 0, running: 0 });
  },
});
