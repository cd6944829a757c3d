/**
 * How {@linkcode RedisJobQueue} stores its values: a `JobRecord` as the fields of a hash, events as
 * stream entries `{type, data}`, a clip as a hash of its bytes and type. The request and every
 * object-valued field are stored as their JSON, whatever fields they have: the queue never looks
 * inside a request, so a change of `JobRequest` needs no change here.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type {
  JobEvent,
  JobEventType,
  JobPatch,
  JobRecord,
  JobRequest,
  StoredVideo,
} from "./job_queue.ts";

/** One stream entry as node-redis returns it: `[id, [field, value, …]]`. */
export type StreamEntry = [id: string, fields: string[]];

/** An XREAD / XREADGROUP reply: `[[stream, entries]]`. */
export type StreamReply = [key: string, entries: StreamEntry[]][];

/** The `request` field of a job's hash. */
export function encodeRequest(request: JobRequest): string {
  return JSON.stringify(request);
}

/**
 * The record of a job's hash (HGETALL's flat `[field, value, …]`), or undefined when the hash is
 * gone (expired) or not a job's. Absent fields stay absent, as in the embedded queue's records;
 * internal fields (`entry`, `released`, `endedAt`) are left out.
 */
export function decodeRecord(flat: string[]): JobRecord | undefined {
  const h = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) h.set(flat[i], flat[i + 1]);
  const id = h.get("id");
  const request = h.get("request");
  if (id === undefined || request === undefined) return undefined;
  const startedAt = h.get("startedAt");
  const finishedAt = h.get("finishedAt");
  const error = h.get("error");
  const video = h.get("video");
  const worker = h.get("worker");
  return {
    id,
    status: h.get("status") as JobRecord["status"],
    request: JSON.parse(request),
    createdAt: Number(h.get("createdAt")),
    ...(startedAt !== undefined ? { startedAt: Number(startedAt) } : {}),
    ...(finishedAt !== undefined ? { finishedAt: Number(finishedAt) } : {}),
    ...(error !== undefined ? { error: JSON.parse(error) } : {}),
    ...(video !== undefined ? { video: JSON.parse(video) } : {}),
    ...(worker !== undefined ? { worker } : {}),
    attempts: Number(h.get("attempts") ?? 0),
  };
}

/**
 * The `update` script's arguments for `patch`: the count of fields to set, the field-value pairs,
 * then the fields to delete (those given as undefined).
 */
export function encodePatch(patch: JobPatch): string[] {
  const set: string[] = [];
  const unset: string[] = [];
  for (const [field, value] of Object.entries(patch)) {
    if (value === undefined) unset.push(field);
    else set.push(field, typeof value === "object" ? JSON.stringify(value) : String(value));
  }
  return [String(set.length / 2), ...set, ...unset];
}

/** The `data` field of an event's stream entry. */
export function encodeEventData(data: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(data);
}

/** An event from its stream entry; the entry id is the event id. */
export function decodeEvent([id, fields]: StreamEntry): JobEvent {
  return {
    id,
    type: fieldOf(fields, "type") as JobEventType,
    data: JSON.parse(fieldOf(fields, "data") ?? "{}"),
  };
}

/** The `putVideo` script's arguments after the job id: bytes, content type, format. */
export function encodeVideo(video: StoredVideo): (string | Buffer)[] {
  return [toBuffer(video.bytes), video.contentType, video.format];
}

/** A clip from its hash (HGETALL's flat reply as Buffers), or undefined when there is none. */
export function decodeVideo(flat: Buffer[]): StoredVideo | undefined {
  const fields = new Map<string, Buffer>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i].toString(), flat[i + 1]);
  const bytes = fields.get("bytes");
  if (!bytes) return undefined;
  return {
    bytes: new Uint8Array(bytes), // a copy: the reply buffer may be a slice of a larger one
    contentType: fields.get("contentType")?.toString() ?? "application/octet-stream",
    format: (fields.get("format")?.toString() ?? "mp4") as StoredVideo["format"],
  };
}

/** True when `id` is a stream entry id, `<ms>-<seq>`. */
export function isStreamId(id: string): boolean {
  return /^\d{1,20}-\d{1,20}$/.test(id);
}

/** Order of two stream entry ids `<ms>-<seq>`: negative, zero or positive, as for `sort`. */
export function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}

/** The value of `name` in a flat `[field, value, …]` list. */
export function fieldOf(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** `bytes` as a Buffer over the same memory (what node-redis sends as a bulk string). */
export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
