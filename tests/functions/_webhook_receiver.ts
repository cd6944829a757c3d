/**
 * A webhook receiver on loopback for the tests: a real HTTP server (`Deno.serve`, 127.0.0.1, a
 * free port) that checks every delivery's signature with the third-party `standardwebhooks` npm
 * package — the receiving side of the Standard Webhooks spec, written by others — and answers
 * as the test says (by default 500 to the first attempt of each `webhook-id`, 200 after).
 *
 * @module
 */

import { Webhook } from "standardwebhooks";
import { waitFor } from "./_service.ts";

/** One request the receiver got. */
export interface ReceivedDelivery {
  readonly path: string;
  readonly id: string;
  readonly timestamp: string;
  readonly signature: string;
  readonly body: string;
  /** `true` when `standardwebhooks` verified it, else its error message. */
  readonly verified: true | string;
  /** What the receiver answered (0 while it has not answered yet). */
  readonly status: number;
  /** Attempt number of this `webhook-id`, from 1. */
  readonly attempt: number;
}

/** Options of {@linkcode WebhookReceiver.start}. */
export interface ReceiverOptions {
  /** The secret (`whsec_…`) the receiver verifies with. */
  readonly secret: string;
  /**
   * The answer to attempt `attempt` of a delivery: a status, or a Response (default: 500 to the
   * first attempt of each id, then 200).
   */
  readonly answer?: (
    delivery: Omit<ReceivedDelivery, "status">,
  ) => number | Response | Promise<number | Response>;
  /** Serve https with this certificate (PEM) and key, for the name `receiver.test`. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** The test CA and the receiver's certificate for `receiver.test` (tests/fixtures/webhook_tls). */
export async function testTls(): Promise<{ ca: string; cert: string; key: string }> {
  const read = (name: string) =>
    Deno.readTextFile(new URL(`../fixtures/webhook_tls/${name}`, import.meta.url));
  return {
    ca: await read("ca.pem"),
    cert: await read("receiver.pem"),
    key: await read("receiver.key"),
  };
}

/** A receiver; dispose it to stop its server. */
export class WebhookReceiver implements AsyncDisposable {
  readonly deliveries: ReceivedDelivery[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #secure: boolean;

  private constructor(options: ReceiverOptions) {
    const verifier = new Webhook(options.secret);
    const answer = options.answer ?? ((d) => d.attempt === 1 ? 500 : 200);
    this.#secure = options.tls !== undefined;
    const listen = { hostname: "127.0.0.1", port: 0, onListen() {}, ...options.tls };
    this.#server = Deno.serve(listen, async (req) => {
      const body = await req.text();
      const headers = Object.fromEntries(req.headers);
      let verified: true | string = true;
      try {
        verifier.verify(body, headers);
      } catch (error) {
        verified = error instanceof Error ? error.message : String(error);
      }
      const id = req.headers.get("webhook-id") ?? "";
      const seen: Omit<ReceivedDelivery, "status"> = {
        path: new URL(req.url).pathname,
        id,
        timestamp: req.headers.get("webhook-timestamp") ?? "",
        signature: req.headers.get("webhook-signature") ?? "",
        body,
        verified,
        attempt: this.deliveries.filter((d) => d.id === id).length + 1,
      };
      const index = this.deliveries.push({ ...seen, status: 0 }) - 1; // arrived
      const answered = await answer(seen);
      const response = typeof answered === "number"
        ? new Response(answered === 204 ? null : "ok", { status: answered })
        : answered;
      this.deliveries[index] = { ...seen, status: response.status };
      return response;
    });
  }

  /** Starts a receiver on a free loopback port. */
  static start(options: ReceiverOptions): WebhookReceiver {
    return new WebhookReceiver(options);
  }

  /** `http://127.0.0.1:<port>` + `path` (`https://receiver.test:<port>` with TLS). */
  url(path = "/hook"): string {
    const host = this.#secure ? "https://receiver.test" : "http://127.0.0.1";
    return `${host}:${this.#server.addr.port}${path}`;
  }

  get port(): number {
    return this.#server.addr.port;
  }

  /**
   * Waits until `count` requests matching `where` arrived (default: answered ones), at most
   * `timeoutMs`.
   */
  async received(
    count: number,
    where: (d: ReceivedDelivery) => boolean = (d) => d.status !== 0,
    timeoutMs = 60_000,
  ): Promise<ReceivedDelivery[]> {
    return await waitFor(
      () => {
        const found = this.deliveries.filter(where);
        return found.length >= count ? found : undefined;
      },
      `${count} webhook request(s)`,
      timeoutMs,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}

/** A `whsec_` secret of 32 random bytes. */
export function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return `whsec_${btoa(String.fromCharCode(...bytes))}`;
}
