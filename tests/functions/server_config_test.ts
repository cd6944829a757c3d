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
      provider: "auto",
      drainSeconds: 30,
      heartbeatSeconds: 15,
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
      ORT_PROVIDER: "cpu",
      DRAIN_SECONDS: "0",
      HEARTBEAT_SECONDS: "0.5",
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
      provider: "cpu",
      drainSeconds: 0,
      heartbeatSeconds: 0.5,
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
