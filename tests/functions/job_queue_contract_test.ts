/**
 * The `JobQueue` contract (`_job_queue_contract.ts`) against both implementations: the embedded
 * queue, and the Redis Streams queue on a real `redis-server` started per test on a free loopback
 * port (skipped with a message when redis-server is not installed; CI installs it).
 *
 * deno test --allow-read --allow-run --allow-net=127.0.0.1 tests/functions/job_queue_contract_test.ts
 */

import type { JobQueue } from "../../functions/jobs/job_queue.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import { RedisJobQueue } from "../../functions/jobs/redis_job_queue.ts";
import { type ContractStore, jobQueueContract } from "./_job_queue_contract.ts";
import { RedisServer, redisServerMissing } from "./_redis_server.ts";

const CAPACITY = 8;
const RETENTION_MS = 60_000;

jobQueueContract({
  name: "MemoryJobQueue",
  permissions: "none",
  idBeyond: (id) => String(Number(id) + 1000),
  store() {
    let queue: MemoryJobQueue | undefined;
    const store: ContractStore = {
      queue(options = {}) {
        queue ??= new MemoryJobQueue({
          capacity: options.capacity ?? CAPACITY,
          retentionMs: RETENTION_MS,
          retryAfterSeconds: options.retryAfterSeconds,
          onCancelledWhileQueued: options.onCancelledWhileQueued,
        });
        return Promise.resolve(queue);
      },
      [Symbol.asyncDispose]: async () => await queue?.close(),
    };
    return Promise.resolve(store);
  },
});

jobQueueContract({
  name: "RedisJobQueue",
  skip: redisServerMissing,
  permissions: { net: ["127.0.0.1"], run: true, read: true },
  // An hour later in Redis's clock than the entry id `ms-seq`.
  idBeyond: (id) => `${BigInt(id.split("-")[0]) + 3_600_000n}-0`,
  async store() {
    const server = await RedisServer.start();
    const queues: JobQueue[] = [];
    return {
      async queue(options = {}) {
        const queue = await RedisJobQueue.connect({
          url: server.url,
          capacity: options.capacity ?? CAPACITY,
          retentionMs: RETENTION_MS,
          ...(options.retryAfterSeconds ? { retryAfterSeconds: options.retryAfterSeconds } : {}),
          onCancelledWhileQueued: options.onCancelledWhileQueued,
          // Short blocking reads, generous timeouts (a loaded 2-core machine).
          blockMs: 100,
          commandTimeoutMs: 2000,
          connectTimeoutMs: 3000,
        });
        queues.push(queue);
        return queue;
      },
      async [Symbol.asyncDispose]() {
        await Promise.all(queues.map((queue) => queue.close()));
        await server.stop();
      },
    };
  },
});
