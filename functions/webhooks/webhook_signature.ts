/**
 * Standard Webhooks signatures (standardwebhooks.com, spec 1.0): a delivery carries
 * `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, which is `v1,` and
 * the base64 HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>` keyed by the secret's bytes.
 * The secret is written `whsec_` + base64 (`WEBHOOK_SECRET`); the spec asks for 24 to 64 random
 * bytes. Several secrets separated by spaces sign every delivery with each of them, the spec's
 * way to rotate a secret without downtime (the receiver accepts a delivery when one signature
 * matches a secret it knows): put the new one first, drop the old one once receivers have
 * switched.
 *
 * Signing is node:crypto's HMAC (built in); the tests verify it with the `standardwebhooks` npm
 * package, a third-party implementation of the receiving side.
 *
 * @example
 * ```ts
 * import { parseWebhookSecrets, signWebhook } from "./webhook_signature.ts";
 * const keys = parseWebhookSecrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
 * signWebhook(keys, "msg_1", 1674087231, '{"a":1}'); // "v1,…"
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";

/** The secret's prefix in its written form. */
export const SECRET_PREFIX = "whsec_";
/** Smallest and largest secret, in bytes (the spec's 192 and 512 bits). */
export const SECRET_BYTES = { min: 24, max: 64 } as const;

/** A secret that is not `whsec_` + base64 of 24..64 bytes; the message never quotes it. */
export class WebhookSecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookSecretError";
  }
}

/**
 * The HMAC keys of `text`: one or more `whsec_…` secrets separated by spaces.
 * @throws {WebhookSecretError} saying which secret (by its place) is wrong and what is allowed.
 */
export function parseWebhookSecrets(text: string): Uint8Array[] {
  const secrets = text.trim().split(/\s+/).filter((secret) => secret !== "");
  if (secrets.length === 0) throw new WebhookSecretError("no secret given");
  return secrets.map((secret, index) => {
    const which = secrets.length === 1 ? "the secret" : `secret ${index + 1}`;
    const allowed = `${SECRET_PREFIX} followed by the base64 of ${SECRET_BYTES.min}..` +
      `${SECRET_BYTES.max} random bytes (e.g. whsec_$(openssl rand -base64 32))`;
    if (!secret.startsWith(SECRET_PREFIX)) {
      throw new WebhookSecretError(
        `${which} does not start with ${SECRET_PREFIX}: allowed ${allowed}`,
      );
    }
    const base64 = secret.slice(SECRET_PREFIX.length);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || base64.length % 4 !== 0) {
      throw new WebhookSecretError(
        `${which} is not base64 after ${SECRET_PREFIX}: allowed ${allowed}`,
      );
    }
    const key = new Uint8Array(Buffer.from(base64, "base64"));
    if (key.length < SECRET_BYTES.min || key.length > SECRET_BYTES.max) {
      throw new WebhookSecretError(`${which} holds ${key.length} bytes: allowed ${allowed}`);
    }
    return key;
  });
}

/**
 * The `webhook-signature` header: `v1,<base64>` per key, separated by spaces.
 *
 * @param id the `webhook-id` (no `.` in it)
 * @param timestamp the `webhook-timestamp`, Unix seconds
 * @param body the exact bytes sent, as text
 */
export function signWebhook(
  keys: readonly Uint8Array[],
  id: string,
  timestamp: number,
  body: string,
): string {
  if (id.includes(".")) throw new TypeError(`A webhook id must not hold a ".": ${id}`);
  const content = `${id}.${timestamp}.${body}`;
  return keys
    .map((key) => `v1,${createHmac("sha256", key).update(content, "utf8").digest("base64")}`)
    .join(" ");
}
