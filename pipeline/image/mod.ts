/**
 * Input images: sniff the header, decode to RGB, plan the crop and resize to the model's size,
 * make the [1, 3, H, W] tensor in [−1, 1]; CLIP preprocessing; a small PNG encoder.
 *
 * @module
 */

export * from "./clip_preprocess.ts";
export * from "./decode_image.ts";
export * from "./image_header.ts";
export * from "./image_tensor.ts";
export * from "./png_decode.ts";
export * from "./png_encode.ts";
export * from "./prepare_image.ts";
export * from "./size_policy.ts";
