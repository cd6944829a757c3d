/**
 * Environment → server configuration: defaults, parsing, and one error naming every bad variable
 * with its allowed values.
 */

import assert from "node:assert/strict";
import { readServerConfig, ServerConfigError } from "../../functions/server_config.ts";

const env = (values: Record<string, string>) => (name: string) => values[name];

Deno.test({
  name: "readServerConfig() fills every default from an empty environment",
  permissions: "none",
  fn() {
    assert.deepEqual(readServerConfig(env({})), {
      port: 8000,
      host: "0.0.0.0",
      modelDir: undefined,
      slots: 1,
      queueSize: 8,
      retentionSeconds: 3600,
      apiToken: undefined,
      maxUploadBytes: 20 * 1024 * 1024,
      maxPixels: 16e6,
      maxConcurrentUploads: 16,
      bodyIdleSeconds: 15,
      bodyTimeoutSeconds: 120,
      provider: "auto",
      drainSeconds: 30,
      heartbeatSeconds: 15,
      role: "all",
      redisUrl: undefined,
      redisClaimIdleMs: 30_000,
      gpuMemoryGb: undefined,
      maxJobSeconds: undefined,
      webhookKeys: undefined,
      webhookRetrySeconds: 3600,
      webhookAllowPrivate: false,
      webhookSpoolDir: undefined,
      publicUrl: undefined,
      maxJobCost: 25 * 1024 * 576 * 50,
      maxJobMemoryGb: undefined,
      inferenceRecycle: true,
    });
  },
});

Deno.test({
  name: "readServerConfig() reads every variable",
  permissions: "none",
  fn() {
    const config = readServerConfig(env({
      PORT: "0",
      HOST: "127.0.0.1",
      MODEL_DIR: "models/svd_xt",
      SLOTS: "2",
      QUEUE_SIZE: "0",
      RETENTION_SECONDS: "60.5",
      API_TOKEN: "abc",
      MAX_UPLOAD_BYTES: "1048576",
      MAX_PIXELS: "1e6",
      MAX_CONCURRENT_UPLOADS: "40",
      BODY_IDLE_SECONDS: "0.5",
      BODY_TIMEOUT_SECONDS: "30",
      ORT_PROVIDER: "cpu",
      DRAIN_SECONDS: "0",
      HEARTBEAT_SECONDS: "0.5",
      ROLE: "worker",
      REDIS_URL: "redis://:secret@10.0.0.5:6380/2",
      REDIS_CLAIM_IDLE_MS: "1500",
      GPU_MEMORY_GB: "22.4",
      MAX_JOB_SECONDS: "600",
      WEBHOOK_SECRET: `whsec_${btoa("k".repeat(32))} whsec_${btoa("o".repeat(24))}`,
      WEBHOOK_RETRY_SECONDS: "60",
      WEBHOOK_ALLOW_PRIVATE: "1",
      PUBLIC_URL: "https://svd.example.com/api/",
      MAX_JOB_COST: "1e9",
      MAX_JOB_MEMORY_GB: "18.5",
      INFERENCE_RECYCLE: "Off",
    }));
    assert.deepEqual(config, {
      port: 0,
      host: "127.0.0.1",
      modelDir: "models/svd_xt",
      slots: 2,
      queueSize: 0,
      retentionSeconds: 60.5,
      apiToken: "abc",
      maxUploadBytes: 1048576,
      maxPixels: 1e6,
      maxConcurrentUploads: 40,
      bodyIdleSeconds: 0.5,
      bodyTimeoutSeconds: 30,
      provider: "cpu",
      drainSeconds: 0,
      heartbeatSeconds: 0.5,
      role: "worker",
      redisUrl: "redis://:secret@10.0.0.5:6380/2",
      redisClaimIdleMs: 1500,
      gpuMemoryGb: 22.4,
      maxJobSeconds: 600,
      webhookKeys: [
        new Uint8Array(32).fill("k".charCodeAt(0)),
        new Uint8Array(24).fill("o".charCodeAt(0)),
      ],
      webhookRetrySeconds: 60,
      webhookAllowPrivate: true,
      webhookSpoolDir: undefined,
      publicUrl: "https://svd.example.com/api",
      maxJobCost: 1e9,
      maxJobMemoryGb: 18.5,
      inferenceRecycle: false,
    });
  },
});

Deno.test({
  name:
    "readServerConfig() names every bad variable, its value and the allowed values in one error",
  permissions: "none",
  fn() {
    assert.throws(
      () =>
        readServerConfig(env({
          PORT: "http",
          SLOTS: "0",
          QUEUE_SIZE: "2.5",
          ORT_PROVIDER: "tpu",
          API_TOKEN: " ",
          HEARTBEAT_SECONDS: "-1",
        })),
      (error: unknown) => {
        assert.ok(error instanceof ServerConfigError);
        assert.deepEqual(error.problems, [
          'ORT_PROVIDER = "tpu" is not supported: allowed auto | cuda | webgpu | cpu',
          "API_TOKEN is set but empty: unset it to disable auth, or give a token",
          'PORT = "http" is not an integer: allowed an integer in 0..65535',
          'SLOTS = "0" is out of range: allowed an integer in 1..64',
          'QUEUE_SIZE = "2.5" is not an integer: allowed an integer in 0..10000',
          'HEARTBEAT_SECONDS = "-1" is out of range: allowed 0.01..3600',
        ]);
        assert.match(error.message, /^Invalid server configuration: ORT_PROVIDER/);
        return true;
      },
    );
  },
});

Deno.test({
  name: "readServerConfig() accepts ROLE all | api | worker (any case) and rediss:// URLs",
  permissions: "none",
  fn() {
    const url = "rediss://default:pw@cache.example:6380";
    for (const role of ["all", "api", "worker"] as const) {
      const config = readServerConfig(env({ ROLE: role.toUpperCase(), REDIS_URL: url }));
      assert.equal(config.role, role);
      assert.equal(config.redisUrl, url);
    }
    // `all` without Redis: the embedded queue, as before.
    assert.equal(readServerConfig(env({ ROLE: "all" })).redisUrl, undefined);
  },
});

Deno.test({
  name:
    "readServerConfig() refuses an unknown ROLE, api/worker without REDIS_URL, a non-Redis URL (unquoted) and a bad REDIS_CLAIM_IDLE_MS",
  permissions: "none",
  fn() {
    const problems = (values: Record<string, string>) => {
      try {
        readServerConfig(env(values));
      } catch (error) {
        assert.ok(error instanceof ServerConfigError);
        return error.problems;
      }
      assert.fail("no error");
    };
    assert.deepEqual(problems({ ROLE: "gpu" }), [
      'ROLE = "gpu" is not supported: allowed all | api | worker',
    ]);
    for (const role of ["api", "worker"]) {
      const [problem] = problems({ ROLE: role });
      assert.match(problem, new RegExp(`^ROLE = "${role}" needs REDIS_URL`));
    }
    const [bad] = problems({ REDIS_URL: "http://user:hunter2@host:6379" });
    assert.match(bad, /^REDIS_URL is not a Redis URL: allowed redis:\/\//);
    assert.ok(!bad.includes("hunter2"), "the URL (and its password) is not repeated");
    assert.deepEqual(problems({ REDIS_URL: "redis://h", REDIS_CLAIM_IDLE_MS: "5" }), [
      'REDIS_CLAIM_IDLE_MS = "5" is out of range: allowed an integer in 100..3600000',
    ]);
  },
});

Deno.test({
  name: "readServerConfig() names GPU_MEMORY_GB, its value and the allowed range when it is bad",
  permissions: "none",
  fn() {
    for (
      const [value, problem] of [
        ["24GB", 'GPU_MEMORY_GB = "24GB" is not a number: allowed 1..4096'],
        ["0.5", 'GPU_MEMORY_GB = "0.5" is out of range: allowed 1..4096'],
        ["-8", 'GPU_MEMORY_GB = "-8" is out of range: allowed 1..4096'],
        ["5000", 'GPU_MEMORY_GB = "5000" is out of range: allowed 1..4096'],
      ]
    ) {
      assert.throws(() => readServerConfig(env({ GPU_MEMORY_GB: value })), (error: unknown) => {
        assert.ok(error instanceof ServerConfigError);
        assert.deepEqual(error.problems, [problem]);
        return true;
      });
    }
    assert.equal(readServerConfig(env({ GPU_MEMORY_GB: " 80 " })).gpuMemoryGb, 80);
    assert.equal(readServerConfig(env({ GPU_MEMORY_GB: "" })).gpuMemoryGb, undefined);
  },
});

Deno.test({
  name: "readServerConfig() refuses a bad WEBHOOK_SECRET without quoting it, and the other " +
    "webhook and deadline settings out of range",
  permissions: "none",
  fn() {
    const problems = (values: Record<string, string>) => {
      try {
        readServerConfig(env(values));
      } catch (error) {
        assert.ok(error instanceof ServerConfigError);
        return error.problems;
      }
      assert.fail("no error");
    };
    const allowed = "allowed whsec_ followed by the base64 of 24..64 random bytes " +
      "(e.g. whsec_$(openssl rand -base64 32))";
    assert.deepEqual(problems({ WEBHOOK_SECRET: "hunter2hunter2hunter2hunter2" }), [
      `WEBHOOK_SECRET: the secret does not start with whsec_: ${allowed}`,
    ]);
    assert.deepEqual(problems({ WEBHOOK_SECRET: `whsec_${btoa("short")}` }), [
      `WEBHOOK_SECRET: the secret holds 5 bytes: ${allowed}`,
    ]);
    assert.deepEqual(problems({ WEBHOOK_SECRET: `whsec_${btoa("k".repeat(32))} whsec_!!` }), [
      `WEBHOOK_SECRET: secret 2 is not base64 after whsec_: ${allowed}`,
    ]);
    assert.deepEqual(
      problems({
        MAX_JOB_SECONDS: "0",
        WEBHOOK_RETRY_SECONDS: "5",
        WEBHOOK_ALLOW_PRIVATE: "yes",
        PUBLIC_URL: "svd.example.com",
      }),
      [
        'WEBHOOK_ALLOW_PRIVATE = "yes" is not a switch: allowed 0 | 1',
        'PUBLIC_URL = "svd.example.com" is not a base URL: allowed http(s)://host[:port][/path], ' +
        "without query or fragment",
        'MAX_JOB_SECONDS = "0" is out of range: allowed an integer in 1..604800',
        'WEBHOOK_RETRY_SECONDS = "5" is out of range: allowed an integer in 10..604800',
      ],
    );
    assert.deepEqual(problems({ REDIS_URL: "redis://h", WEBHOOK_SPOOL_DIR: "/var/spool/svd" }), [
      "WEBHOOK_SPOOL_DIR is for the embedded queue: with REDIS_URL pending deliveries are kept " +
      "in Redis (unset it)",
    ]);
    assert.equal(readServerConfig(env({ WEBHOOK_SPOOL_DIR: "/s" })).webhookSpoolDir, "/s");
  },
});

Deno.test({
  name:
    "readServerConfig() names MAX_JOB_COST and MAX_JOB_MEMORY_GB, their values and the allowed ranges when bad",
  permissions: "none",
  fn() {
    for (
      const [values, problem] of [
        [
          { MAX_JOB_COST: "0" },
          'MAX_JOB_COST = "0" is out of range: allowed an integer in 1..1000000000000000',
        ],
        [{ MAX_JOB_COST: "1.5e3" }, undefined],
        [
          { MAX_JOB_COST: "lots" },
          'MAX_JOB_COST = "lots" is not an integer: allowed an integer in 1..1000000000000000',
        ],
        [
          { MAX_JOB_MEMORY_GB: "16GB" },
          'MAX_JOB_MEMORY_GB = "16GB" is not a number: allowed 0.1..65536',
        ],
        [{ MAX_JOB_MEMORY_GB: "0" }, 'MAX_JOB_MEMORY_GB = "0" is out of range: allowed 0.1..65536'],
        [
          { INFERENCE_RECYCLE: "sometimes" },
          'INFERENCE_RECYCLE = "sometimes" is not supported: allowed on | off',
        ],
      ] as const
    ) {
      if (problem === undefined) {
        assert.equal(readServerConfig(env(values)).maxJobCost, 1500);
        continue;
      }
      assert.throws(() => readServerConfig(env(values)), (error: unknown) => {
        assert.ok(error instanceof ServerConfigError);
        assert.deepEqual(error.problems, [problem]);
        return true;
      });
    }
  },
});
