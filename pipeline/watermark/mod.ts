/**
 * sgm's invisible watermark (`imwatermark` `dwtDct`, a fixed 48-bit message in every frame):
 * embedding, reading back, and judging a clip.
 *
 * @module
 */

export * from "./block_code.ts";
export * from "./cv2_yuv.ts";
export * from "./detect_watermark.ts";
export * from "./embed_watermark.ts";
export * from "./haar.ts";
export * from "./message.ts";
export * from "./read_watermark.ts";
export * from "./watermark_frames.ts";
