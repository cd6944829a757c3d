/**
 * safetensors: a lazy reader and a streaming writer.
 *
 * @module
 */
export * from "./reader.ts";
export * from "./writer.ts";
