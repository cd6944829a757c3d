/**
 * Reads a `text/event-stream` body incrementally, as a browser's EventSource would: events as
 * they arrive, comments and `retry:` counted.
 *
 * @module
 */

/** One parsed event; `data` is the JSON payload. */
export interface SseEvent {
  readonly id?: string;
  readonly event: string;
  // deno-lint-ignore no-explicit-any
  readonly data: any;
}

/** An incremental SSE parser over a response body. */
export class SseReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #buffer = "";
  /** Comment lines seen (`: heartbeat`). */
  comments = 0;
  /** `retry:` values seen. */
  readonly retries: number[] = [];
  /** Every event read so far. */
  readonly events: SseEvent[] = [];

  constructor(response: Response) {
    if (!response.body) throw new TypeError("response has no body");
    this.#reader = response.body.getReader();
  }

  /** The next event, or undefined at the end of the stream. */
  async next(): Promise<SseEvent | undefined> {
    while (true) {
      const end = this.#buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        const event = this.#parse(block);
        if (event) {
          this.events.push(event);
          return event;
        }
        continue;
      }
      const { done, value } = await this.#reader.read();
      if (done) return undefined;
      this.#buffer += this.#decoder.decode(value, { stream: true });
    }
  }

  /** Reads until `predicate` holds for an event (returned) or the stream ends (undefined). */
  async until(predicate: (event: SseEvent) => boolean): Promise<SseEvent | undefined> {
    for (let event = await this.next(); event; event = await this.next()) {
      if (predicate(event)) return event;
    }
    return undefined;
  }

  /** Reads to the end of the stream; returns every event read. */
  async rest(): Promise<SseEvent[]> {
    while (await this.next());
    return this.events;
  }

  /** Stops reading: the client goes away. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }

  #parse(block: string): SseEvent | undefined {
    let id: string | undefined;
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) this.comments++;
      else if (line.startsWith("retry:")) this.retries.push(Number(line.slice(6)));
      else if (line.startsWith("id:")) id = line.slice(3).trim();
      else if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (data.length === 0) return undefined;
    return { id, event, data: JSON.parse(data.join("\n")) };
  }
}
