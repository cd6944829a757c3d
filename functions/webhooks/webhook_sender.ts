/**
 * One webhook attempt: a POST of the signed body, through node:http or node:https (Deno's node
 * compatibility), because only there can the connection's DNS lookup be our own
 * (`guardedLookup`): the address checked is the address connected to. `fetch` resolves names
 * itself, so a name could pass the check and then connect elsewhere.
 *
 * Redirects are not followed (a 3xx is a failed attempt, as the Standard Webhooks spec advises),
 * every attempt opens its own connection (no pooled socket outlives a check), the response body
 * is read up to 64 KiB and dropped, and an attempt that has not answered within `timeoutMs`
 * (15 s, the low end of the spec's 15–30 s) fails.
 *
 * @module
 */

import http from "node:http";
import https from "node:https";
import ipaddr from "ipaddr.js";
import { type AddressPolicy, guardedLookup, resolveTarget } from "./address_guard.ts";

/** What one attempt sends. */
export interface WebhookPost {
  readonly url: string;
  /** The Standard Webhooks headers (the sender adds Content-Type, Content-Length, User-Agent). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Options of {@linkcode postWebhook}. */
export interface PostOptions {
  readonly policy: AddressPolicy;
  /** Longest wait for the whole attempt, in ms. */
  readonly timeoutMs: number;
  /** Extra CA certificates (PEM) to trust, for tests with a local https receiver. */
  readonly caCerts?: readonly string[];
}

/** How an attempt went: the receiver's status (and its `Retry-After`), or why there was none. */
export type PostResult =
  | { readonly status: number; readonly retryAfterMs?: number }
  | { readonly error: string };

/** The most of a response body read before it is dropped. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/** Sends one attempt; never throws (a failure is a {@linkcode PostResult} with `error`). */
export async function postWebhook(post: WebhookPost, options: PostOptions): Promise<PostResult> {
  const url = new URL(post.url);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  try {
    // node connects to an IP literal without a lookup: it is checked here instead.
    if (ipaddr.isValid(host)) await resolveTarget(host, options.policy);
  } catch (error) {
    return { error: messageOf(error) };
  }
  const secure = url.protocol === "https:";
  const body = new TextEncoder().encode(post.body);
  return await new Promise<PostResult>((resolve) => {
    let settled = false;
    const settle = (result: PostResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      resolve(result);
    };
    const request = (secure ? https : http).request({
      method: "POST",
      host,
      port: url.port === "" ? (secure ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers: {
        ...post.headers,
        "content-type": "application/json",
        "content-length": String(body.length),
        "user-agent": "svd-stream-webhooks/1",
        host: url.host,
      },
      lookup: guardedLookup(options.policy),
      agent: false,
      ...(secure && options.caCerts ? { ca: [...options.caCerts] } : {}),
    }, (response) => {
      const status = response.statusCode ?? 0;
      const retryAfterMs = parseRetryAfter(response.headers["retry-after"]);
      let read = 0;
      response.on("data", (chunk: Uint8Array) => {
        read += chunk.length;
        if (read > MAX_RESPONSE_BYTES) settle({ status, ...retryAfter(retryAfterMs) });
      });
      response.on("end", () => settle({ status, ...retryAfter(retryAfterMs) }));
      response.on("error", () => settle({ status, ...retryAfter(retryAfterMs) }));
    });
    const timer = setTimeout(
      () => settle({ error: `no answer within ${options.timeoutMs / 1000} s` }),
      options.timeoutMs,
    );
    request.on("error", (error) => settle({ error: messageOf(error) }));
    request.end(body);
  });
}

function retryAfter(ms: number | undefined): { retryAfterMs?: number } {
  return ms === undefined ? {} : { retryAfterMs: ms };
}

/** `Retry-After` (seconds, or an HTTP date) in ms from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === "") return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && !error.message.includes(code)
    ? `${error.message} (${code})`
    : error.message;
}
