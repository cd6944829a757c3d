/**
 * Standard Webhooks signatures: what we sign, the third-party `standardwebhooks` package (the
 * receiving side, written by others) verifies — every secret of a rotation, any body — and it
 * refuses a tampered body, another secret and another id; bad secrets are refused naming what is
 * allowed, never quoting the secret.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Webhook } from "standardwebhooks";
import {
  parseWebhookSecrets,
  signWebhook,
  WebhookSecretError,
} from "../../functions/webhooks/webhook_signature.ts";
import { randomSecret } from "./_webhook_receiver.ts";

const headers = (id: string, timestamp: number, signature: string) => ({
  "webhook-id": id,
  "webhook-timestamp": String(timestamp),
  "webhook-signature": signature,
});

Deno.test({
  name: "signWebhook() signs any body so that the standardwebhooks package verifies it",
  permissions: "none",
  fn() {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.uuid(), (text, uuid) => {
        const secret = randomSecret();
        const body = JSON.stringify({ text });
        const id = `msg_${uuid}_1732530000000-0`;
        const now = Math.floor(Date.now() / 1000);
        const signature = signWebhook(parseWebhookSecrets(secret), id, now, body);
        assert.match(signature, /^v1,[A-Za-z0-9+/]{43}=$/);
        assert.deepEqual(new Webhook(secret).verify(body, headers(id, now, signature)), { text });
      }),
      { numRuns: 50 },
    );
  },
});

Deno.test({
  name: "a tampered body, another secret or another id fail the standardwebhooks check",
  permissions: "none",
  fn() {
    const secret = randomSecret();
    const now = Math.floor(Date.now() / 1000);
    const body = '{"status":"done"}';
    const signature = signWebhook(parseWebhookSecrets(secret), "msg_a", now, body);
    const verify = (s: string, b: string, id: string) =>
      new Webhook(s).verify(b, headers(id, now, signature));
    assert.throws(() => verify(secret, '{"status":"error"}', "msg_a"), /No matching signature/);
    assert.throws(() => verify(randomSecret(), body, "msg_a"), /No matching signature/);
    assert.throws(() => verify(secret, body, "msg_b"), /No matching signature/);
    assert.throws(
      () => signWebhook(parseWebhookSecrets(secret), "msg.a", now, body),
      /must not hold a "\."/,
    );
  },
});

Deno.test({
  name: "several secrets sign with each (rotation): a receiver with either one verifies",
  permissions: "none",
  fn() {
    const [fresh, old] = [randomSecret(), randomSecret()];
    const now = Math.floor(Date.now() / 1000);
    const signature = signWebhook(parseWebhookSecrets(`${fresh} ${old}`), "msg_r", now, "{}");
    assert.equal(signature.split(" ").length, 2);
    for (const secret of [fresh, old]) {
      assert.deepEqual(new Webhook(secret).verify("{}", headers("msg_r", now, signature)), {});
    }
  },
});

Deno.test({
  name: "parseWebhookSecrets() takes whsec_ + base64 of 24..64 bytes and refuses the rest " +
    "without quoting them",
  permissions: "none",
  fn() {
    const of = (n: number) => `whsec_${btoa("s".repeat(n))}`;
    assert.equal(parseWebhookSecrets(of(24))[0].length, 24);
    assert.equal(parseWebhookSecrets(` ${of(64)}  ${of(32)} `).length, 2);
    for (
      const bad of [of(23), of(65), "s3cr3tvaluethatislongenough0123", "whsec_not base64!", ""]
    ) {
      assert.throws(() => parseWebhookSecrets(bad), (error: unknown) => {
        assert.ok(error instanceof WebhookSecretError);
        assert.match(error.message, /allowed whsec_ followed by the base64 of 24\.\.64|no secret/);
        if (bad.length > 8) assert.ok(!error.message.includes(bad.slice(6)), error.message);
        return true;
      });
    }
  },
});
