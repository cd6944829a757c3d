/**
 * `InferenceEngine`: one warm client, replaced after a crash, and recycled after a large job that
 * grew its process's memory (once no other job uses it); the next job waits for the fresh one.
 * Fake clients for the rules, then the real inference process on the demo model for the memory.
 *
 * Run: deno test --allow-read --allow-write --allow-ffi --allow-env --allow-run tests/service/inference_engine_test.ts
 */

import assert from "node:assert/strict";
import { ensureDemoModel } from "../../pipeline/cli/demo_model.ts";
import { generateVideo, modelConstants } from "../../pipeline/generate.ts";
import { prepareImage } from "../../pipeline/image/prepare_image.ts";
import { readModelDirectory } from "../../pipeline/runtime/mod.ts";
import { InferenceClient } from "../../pipeline/runtime/mod.ts";
import {
  type EngineClient,
  type EngineNotice,
  InferenceEngine,
} from "../../pipeline/service/inference_engine.ts";
import { fixturePath } from "../_fixtures.ts";

const MIB = 1024 ** 2;

/** A client whose resident memory a test sets. */
class FakeClient implements EngineClient {
  static started = 0;
  readonly id = ++FakeClient.started;
  rssBytes = 100 * MIB;
  alive = true;
  closed = false;
  readonly exited: Promise<{ reason: string; message: string }>;
  #exit!: (e: { reason: string; message: string }) => void;
  constructor() {
    this.exited = new Promise((resolve) => this.#exit = resolve);
  }
  run() {
    return Promise.resolve({});
  }
  stats() {
    return Promise.resolve({ rssBytes: this.rssBytes });
  }
  /** Dies as a native crash would. */
  crash() {
    this.alive = false;
    this.#exit({ reason: "crashed", message: "SIGSEGV" });
  }
  close() {
    this.alive = false;
    this.closed = true;
    this.#exit({ reason: "closed", message: "closed" });
    return Promise.resolve();
  }
}

function fakeEngine() {
  const clients: FakeClient[] = [];
  const notices: EngineNotice[] = [];
  const engine = new InferenceEngine(() => {
    const client = new FakeClient();
    clients.push(client);
    return Promise.resolve(client);
  }, (notice) => notices.push(notice));
  return { engine, clients, notices };
}

Deno.test("InferenceEngine.use() recycles the process after a large job that grew its memory by more than 20 %", async () => {
  const { engine, clients, notices } = fakeEngine();
  const first = await engine.use((client) => {
    client.rssBytes = 400 * MIB; // the arena took a large job's peak
    return Promise.resolve(client);
  }, { large: () => true });
  assert.equal(first.closed, true, "the grown process was closed");
  const next = await engine.acquire();
  assert.notEqual(next, first);
  assert.equal(clients.length, 2);
  assert.deepEqual(notices.find((n) => n.type === "recycling"), {
    type: "recycling",
    rssBeforeBytes: 100 * MIB,
    rssAfterBytes: 400 * MIB,
  });
  assert.ok(!notices.some((n) => n.type === "worker_stopped"), "a recycle is not a crash");
  await engine.close();
});

Deno.test("InferenceEngine.ready stays true while a crashed or recycled process is replaced, and turns false when the replacement cannot start", async () => {
  const clients: FakeClient[] = [];
  let release!: () => void;
  let fail = false;
  const engine = new InferenceEngine(async () => {
    if (clients.length > 0) await new Promise<void>((resolve) => release = resolve);
    if (fail) throw new Error("no GPU");
    const client = new FakeClient();
    clients.push(client);
    return client;
  });
  assert.equal(engine.ready, false, "not before the first load");
  await engine.acquire();
  assert.equal(engine.ready, true);
  clients[0].crash();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(engine.current, undefined, "the crashed client is gone");
  assert.equal(engine.ready, true, "its replacement is starting: still ready");
  release();
  await engine.acquire();
  assert.equal(clients.length, 2);
  assert.equal(engine.ready, true);
  fail = true;
  clients[1].crash();
  await new Promise((resolve) => setTimeout(resolve, 0));
  release();
  await assert.rejects(engine.acquire(), /no GPU/);
  assert.equal(engine.ready, false, "a replacement that cannot start is not ready");
  fail = false;
  const next = engine.acquire();
  release();
  await next;
  assert.equal(engine.ready, true, "ready again once one starts");
  await engine.close();
  assert.equal(engine.ready, false, "not once closed");
});

Deno.test("InferenceEngine.use() keeps the process after a small job, a large one that did not grow it, or growth under 64 MiB", async () => {
  const { engine, clients } = fakeEngine();
  const grow = (bytes: number) => (client: FakeClient) => {
    client.rssBytes += bytes;
    return Promise.resolve();
  };
  await engine.use(grow(1000 * MIB), { large: () => false }); // grew, but not a large job
  await engine.use(grow(0), { large: () => true }); // large, nothing grew
  await engine.use(grow(200 * MIB), { large: () => true }); // 1100 → 1300: +18 %
  await engine.use(grow(60 * MIB), { large: () => true }); // tiny growth
  await engine.use(grow(1000 * MIB)); // no `large`: never measured
  assert.equal(clients.length, 1);
  assert.equal(clients[0].closed, false);
  await engine.close();
});

Deno.test("InferenceEngine: a recycle waits for the other jobs on the process; new jobs wait for the fresh one", async () => {
  const { engine, clients } = fakeEngine();
  let releaseOther!: () => void;
  const other = engine.use((client) =>
    new Promise<FakeClient>((resolve) => releaseOther = () => resolve(client))
  );
  await new Promise((resolve) => setTimeout(resolve, 0));
  await engine.use((client) => {
    client.rssBytes = 500 * MIB;
    return Promise.resolve();
  }, { large: () => true });
  assert.equal(clients[0].closed, false, "still used by the other job");
  let acquired: FakeClient | undefined;
  const waiting = engine.acquire().then((client) => acquired = client);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(acquired, undefined, "new jobs wait for the replacement");
  releaseOther();
  assert.equal(await other, clients[0]);
  await waiting;
  assert.equal(clients[0].closed, true);
  assert.equal(acquired, clients[1]);
  await engine.close();
});

Deno.test({
  name:
    "after a large job the demo model's inference process is replaced, and idle memory comes back within 20 %",
  async fn() {
    const modelDir = await ensureDemoModel();
    const { manifest } = await readModelDirectory(modelDir);
    const engine = new InferenceEngine(() => InferenceClient.start({ modelDir }));
    const png = await Deno.readFile(fixturePath("input.png"));
    const generate = async (
      client: InferenceClient,
      width: number,
      height: number,
      frames: number,
    ) => {
      const image = await prepareImage(png, { width, height, policy: "cover", maxPixels: 1e6 });
      await generateVideo({
        image: image.tensor,
        params: {
          ...manifest.config.sampling,
          numFrames: frames,
          numSteps: 1,
          decodingT: frames,
          width,
          height,
          seed: 1,
        },
        model: modelConstants(manifest.config),
        networks: client,
        previews: false,
      });
    };
    try {
      const small = await engine.use((client) => generate(client, 128, 64, 4).then(() => client));
      const before = (await small.stats()).rssBytes;
      const large = await engine.use(async (client) => {
        await generate(client, 256, 256, 8);
        return { pid: client.pid, rss: (await client.stats()).rssBytes };
      }, { large: () => true });
      const fresh = await engine.acquire();
      assert.notEqual(fresh.pid, large.pid, "a fresh inference process");
      const idle = (await fresh.stats()).rssBytes;
      const gib = (b: number) => (b / 1024 ** 3).toFixed(2);
      console.log(
        `inference RSS: before ${gib(before)}, after the large job ${gib(large.rss)}, idle after ${
          gib(idle)
        } GiB`,
      );
      assert.ok(
        large.rss > 1.2 * before,
        "the large job grew the process (else this test tests nothing)",
      );
      assert.ok(idle <= 1.2 * before, `idle ${gib(idle)} GiB > 1.2 × ${gib(before)} GiB`);
    } finally {
      await engine.close();
    }
  },
});
