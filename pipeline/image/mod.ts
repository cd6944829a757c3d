/**
 * Input images: sniff the header, validate and decode the whole file to RGB (refusing corrupt,
 * unsupported and oversized files with typed errors), plan the crop and resize to the model's
 * size, make the [1, 3, H, W] tensor in [−1, 1], off the main thread in an `ImagePool`; CLIP
 * preprocessing; a small PNG encoder.
 *
 * @module
 */

export * from "./clip_preprocess.ts";
export * from "./decode_image.ts";
export * from "./image_errors.ts";
export * from "./image_header.ts";
export * from "./image_pool.ts";
export * from "./image_tensor.ts";
export * from "./jpeg_decode.ts";
export * from "./png_chunks.ts";
export * from "./png_decode.ts";
export * from "./png_encode.ts";
export * from "./prepare_image.ts";
export * from "./size_policy.ts";
export * from "./webp_decode.ts";
