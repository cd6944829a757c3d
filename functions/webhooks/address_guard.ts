/**
 * The SSRF guard of webhooks: a webhook URL is the client's, and the service POSTs to it from
 * inside its network, so it must never reach the service's own side — loopback, private networks,
 * link-local addresses (where cloud metadata services answer: 169.254.169.254, fd00:ec2::254),
 * carrier-grade NAT (Alibaba's 100.100.100.200), and every other address that is not public
 * unicast. The check is made twice:
 *
 * 1. when the request comes (`checkWebhookTarget`): the host is resolved and every address it
 *    resolves to must be public, or the request is refused with 422 naming `webhook`;
 * 2. when each attempt connects (`webhook_sender.ts`): the host is resolved again, checked
 *    again, and the socket connects to one of exactly the addresses checked. A name that
 *    resolved to a public address at (1) and to a private one later (DNS rebinding) is refused
 *    there.
 *
 * Addresses are classified by `ipaddr.js` (npm, a long-kept library used by Express and others):
 * IPv4-mapped and IPv4-compatible IPv6 addresses (`::ffff:127.0.0.1`) are judged as the IPv4
 * address they hold, and IPv6 ranges that embed IPv4 (6to4, Teredo, NAT64) are refused. Only
 * ipaddr.js's `unicast` range passes. IP literals in the URL are checked as written.
 *
 * `WEBHOOK_ALLOW_PRIVATE=1` turns the guard off (and allows http URLs): for tests with a receiver
 * on loopback, never in production.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";
import { ParameterError, WEBHOOK_ALLOWED } from "../../pipeline/request/mod.ts";
import { HttpError } from "../errors.ts";

/** How webhook hosts are resolved and judged. */
export interface AddressPolicy {
  /** Any address passes (`WEBHOOK_ALLOW_PRIVATE=1`, tests only). */
  readonly allowPrivate: boolean;
  /** A host name's addresses (default: the system resolver, as node's `dns.lookup` answers). */
  readonly resolve?: (hostname: string) => Promise<string[]>;
  /** Longest wait for the resolver, in ms (default 5000). */
  readonly resolveTimeoutMs?: number;
}

/** Why `address` may not be a webhook's, in words (`a loopback address`), or undefined if public. */
export function forbiddenAddress(address: string): string | undefined {
  if (!ipaddr.isValid(address)) return "not an IP address";
  const ip = ipaddr.process(address); // ::ffff:a.b.c.d → a.b.c.d
  const range = ip.range();
  return range === "unicast" ? undefined : RANGE_WORDS[range] ?? `a ${range} address`;
}

const RANGE_WORDS: Readonly<Record<string, string>> = {
  loopback: "a loopback address",
  private: "a private address",
  linkLocal: "a link-local address (where cloud metadata services answer)",
  uniqueLocal: "a unique local (private) IPv6 address",
  carrierGradeNat: "a carrier-grade NAT (shared) address",
  unspecified: "the unspecified address",
  broadcast: "the broadcast address",
  multicast: "a multicast address",
  reserved: "a reserved address",
  "6to4": "a 6to4 address (it embeds an IPv4 address)",
  teredo: "a Teredo address (it embeds an IPv4 address)",
  rfc6052: "a NAT64 address (it embeds an IPv4 address)",
  rfc6145: "an IPv4-translated address",
  discard: "a discard-only address",
};

/** A webhook host whose address the guard refuses, or that cannot be resolved. */
export class WebhookTargetError extends Error {
  /**
   * True when the resolver failed for now (no answer in time, `EAI_AGAIN`, a server failure), not
   * because of the URL: asking again later may succeed.
   */
  readonly transient: boolean;
  constructor(message: string, options?: ErrorOptions & { transient?: boolean }) {
    super(message, options);
    this.name = "WebhookTargetError";
    this.transient = options?.transient ?? false;
  }
}

/** Resolver errors that say nothing about the name: the resolver itself failed for now. */
const TRANSIENT_CODES = new Set([
  "EAI_AGAIN",
  "ETIMEOUT",
  "ETIMEDOUT",
  "ESERVFAIL",
  "ECONNREFUSED",
]);

/** What a `webhook` may be, said in the error of a refused one. */
function allowedTargets(policy: AddressPolicy): string {
  return policy.allowPrivate ? "an http or https URL whose host resolves" : WEBHOOK_ALLOWED;
}

/**
 * The addresses of `hostname` (a name, or an IP literal with or without brackets), every one
 * checked unless the policy allows private ones. `signal` stops waiting for the resolver.
 * @throws {WebhookTargetError} when it does not resolve, or resolves to a refused address.
 * @throws `signal.reason` once `signal` is aborted.
 */
export async function resolveTarget(
  hostname: string,
  policy: AddressPolicy,
  signal?: AbortSignal,
): Promise<string[]> {
  const host = hostname.startsWith("[") && hostname.endsWith("]")
    ? hostname.slice(1, -1)
    : hostname;
  let addresses: string[];
  if (ipaddr.isValid(host)) {
    addresses = [host];
  } else {
    try {
      addresses = await withTimeout(
        (policy.resolve ?? systemResolve)(host),
        policy.resolveTimeoutMs ?? 5000,
        `resolving ${host} took longer than ${(policy.resolveTimeoutMs ?? 5000) / 1000} s`,
        signal,
      );
    } catch (error) {
      if (signal?.aborted) throw error;
      const code = errorCode(error);
      throw new WebhookTargetError(`${host} does not resolve (${code})`, {
        cause: error,
        transient: error instanceof ResolveTimeout || TRANSIENT_CODES.has(code),
      });
    }
    if (addresses.length === 0) throw new WebhookTargetError(`${host} has no address`);
  }
  if (policy.allowPrivate) return addresses;
  for (const address of addresses) {
    const why = forbiddenAddress(address);
    if (why) {
      throw new WebhookTargetError(
        host === address ? `${host} is ${why}` : `${host} resolves to ${address}, ${why}`,
      );
    }
  }
  return addresses;
}

/**
 * Checks a request's `webhook` before the job is queued (step 1 of the module doc). `signal` (the
 * request's) stops the wait for the resolver when the client leaves.
 * @throws {ParameterError} naming `webhook` (422) for a host refused or not resolved.
 * @throws {HttpError} 503 `webhook_check_unavailable` + `Retry-After` when the resolver failed for
 *   now (no answer within the timeout, `EAI_AGAIN`): the request may succeed when sent again.
 * @throws `signal.reason` once `signal` is aborted.
 */
export async function checkWebhookTarget(
  url: string,
  policy: AddressPolicy,
  signal?: AbortSignal,
): Promise<void> {
  try {
    await resolveTarget(new URL(url).hostname, policy, signal);
  } catch (error) {
    if (!(error instanceof WebhookTargetError)) throw error;
    if (error.transient) {
      throw new HttpError(
        503,
        "webhook_check_unavailable",
        `The webhook's host could not be checked now: ${error.message}; send the request again`,
        { cause: error, field: "webhook", headers: { "Retry-After": "5" } },
      );
    }
    throw new ParameterError(
      "webhook",
      url,
      `is refused: ${error.message}`,
      allowedTargets(policy),
      { cause: error },
    );
  }
}

async function systemResolve(hostname: string): Promise<string[]> {
  const found = await lookup(hostname, { all: true, verbatim: true });
  return found.map((entry) => entry.address);
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string") return code;
  return error instanceof Error ? error.message : String(error);
}

/** The resolver gave no answer in time. */
class ResolveTimeout extends Error {}

async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  message: string,
  signal?: AbortSignal,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  try {
    signal?.throwIfAborted();
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ResolveTimeout(message)), ms);
        onAbort = () => reject(signal!.reason);
        signal?.addEventListener("abort", onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}
