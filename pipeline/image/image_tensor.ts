/**
 * RGB bytes → the model's image tensor: crop and resize by a {@linkcode ResizePlan}, then
 * torchvision's `ToTensor()` and `× 2 − 1` (sgm `simple_video_sample.py`), giving [−1, 1].
 *
 * The resize is PIL's `Image.resize(size, BICUBIC, box=crop)` done in floating point: the
 * separable convolution PIL uses (Keys cubic, a = −0.5, pixel centres aligned, the kernel
 * widened by the scale factor when shrinking, so downscaling is antialiased), without PIL's
 * rounding to 8 bits between and after the two passes. Bicubic is what sgm's own resize in
 * `simple_video_sample.py` uses (PIL's default filter); diffusers uses Lanczos.
 * `clip_preprocess.ts`'s `antialiasedResize` (kornia) is not used: its `align_corners=True`
 * grid stretches the image by (in − 1)/(out − 1) instead of in/out, it cannot take a crop
 * rectangle, and its Gaussian pre-blur is a CLIP-preprocessing quirk to match, not a choice.
 *
 * @module
 */

import { type Tensor, tensor } from "../tensor.ts";
import type { ResizePlan } from "./size_policy.ts";

/** PIL's bicubic coefficient (torch and OpenCV use −0.75). */
const CUBIC_A = -0.5;
/** Half-width of the cubic kernel at scale 1. */
const CUBIC_SUPPORT = 2;

/**
 * `ToTensor()(v) × 2 − 1` of each byte value, with torch's float32 rounding at each step:
 * `v / 255`, then `× 2`, then `− 1`.
 */
const BYTE_TO_UNIT = Float32Array.from({ length: 256 }, (_, v) => {
  const f = Math.fround;
  return f(f(f(v / 255) * 2) - 1);
});

/**
 * Crops and resizes an RGB image by `plan` and returns it as a [1, 3, H, W] tensor in [−1, 1]
 * (`v / 255 × 2 − 1`). Without a resize (crop size = output size) the values are exactly
 * torch's; with one they are the resampled bytes, clamped to [0, 255], mapped the same way.
 *
 * @param rgb `[height, width, 3]` bytes
 * @param plan from {@linkcode planResize}; the crop must lie inside the image
 * @returns `[1, 3, plan.height, plan.width]`
 * @throws {RangeError} when `rgb` does not hold width × height × 3 bytes or the crop leaves
 *   the image
 *
 * @example
 * ```ts
 * import { imageToTensor } from "./image_tensor.ts";
 * import { planResize } from "./size_policy.ts";
 * const rgb = new Uint8Array(64 * 64 * 3).fill(255);
 * const x = imageToTensor(rgb, 64, 64, planResize({ width: 64, height: 64 }, { policy: "native" }));
 * x.dims; // [1, 3, 64, 64], every value 1
 * ```
 */
export function imageToTensor(
  rgb: Uint8Array,
  width: number,
  height: number,
  plan: ResizePlan,
): Tensor {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new RangeError(`Image size must be positive integers, got ${width}×${height}`);
  }
  if (rgb.length !== width * height * 3) {
    throw new RangeError(
      `RGB buffer has ${rgb.length} bytes, a ${width}×${height} image needs ${width * height * 3}`,
    );
  }
  const { crop } = plan;
  if (
    !(crop.x >= 0 && crop.y >= 0 && crop.width >= 1 && crop.height >= 1 &&
      crop.x + crop.width <= width && crop.y + crop.height <= height) ||
    ![crop.x, crop.y, crop.width, crop.height].every(Number.isInteger)
  ) {
    throw new RangeError(
      `Crop ${crop.width}×${crop.height} at (${crop.x}, ${crop.y}) is not inside the ${width}×${height} image`,
    );
  }
  if (
    !(Number.isInteger(plan.width) && Number.isInteger(plan.height) && plan.width > 0 &&
      plan.height > 0)
  ) {
    throw new RangeError(`Output size must be positive integers, got ${plan.width}×${plan.height}`);
  }
  const out = new Float32Array(3 * plan.height * plan.width);
  if (crop.width === plan.width && crop.height === plan.height) {
    copyCrop(rgb, width, plan, out);
  } else {
    resampleCrop(rgb, width, height, plan, out);
  }
  return tensor([1, 3, plan.height, plan.width], out);
}

/** No resize: `[H, W, 3]` bytes of the crop → `[3, H, W]` values. */
function copyCrop(rgb: Uint8Array, width: number, plan: ResizePlan, out: Float32Array): void {
  const { x, y } = plan.crop;
  const plane = plan.height * plan.width;
  for (let i = 0; i < plan.height; i++) {
    for (let j = 0; j < plan.width; j++) {
      const src = ((y + i) * width + (x + j)) * 3;
      const dst = i * plan.width + j;
      for (let c = 0; c < 3; c++) out[c * plane + dst] = BYTE_TO_UNIT[rgb[src + c]];
    }
  }
}

/**
 * PIL's two-pass resample: along the width into float rows (only the rows the height pass
 * reads), then along the height into the `[3, H, W]` output.
 */
function resampleCrop(
  rgb: Uint8Array,
  width: number,
  height: number,
  plan: ResizePlan,
  out: Float32Array,
): void {
  const { crop } = plan;
  const tapsX = cubicTaps(crop.x, crop.width, width, plan.width);
  const tapsY = cubicTaps(crop.y, crop.height, height, plan.height);
  const firstRow = tapsY.start[0];
  const lastRow = tapsY.start[plan.height - 1] + tapsY.count[plan.height - 1];
  const outW = plan.width;
  // [rows, outW, 3], the width pass
  const rows = new Float64Array((lastRow - firstRow) * outW * 3);
  for (let r = firstRow; r < lastRow; r++) {
    const srcRow = r * width * 3;
    const dstRow = (r - firstRow) * outW * 3;
    for (let j = 0; j < outW; j++) {
      let sr = 0, sg = 0, sb = 0;
      const start = tapsX.start[j];
      const k0 = j * tapsX.stride;
      for (let k = 0; k < tapsX.count[j]; k++) {
        const w = tapsX.weights[k0 + k];
        const s = srcRow + (start + k) * 3;
        sr += w * rgb[s];
        sg += w * rgb[s + 1];
        sb += w * rgb[s + 2];
      }
      rows[dstRow + j * 3] = sr;
      rows[dstRow + j * 3 + 1] = sg;
      rows[dstRow + j * 3 + 2] = sb;
    }
  }
  // the height pass, into [3, H, W]
  const plane = plan.height * outW;
  const f = Math.fround;
  for (let i = 0; i < plan.height; i++) {
    const start = tapsY.start[i] - firstRow;
    const k0 = i * tapsY.stride;
    for (let j = 0; j < outW; j++) {
      let sr = 0, sg = 0, sb = 0;
      for (let k = 0; k < tapsY.count[i]; k++) {
        const w = tapsY.weights[k0 + k];
        const s = ((start + k) * outW + j) * 3;
        sr += w * rows[s];
        sg += w * rows[s + 1];
        sb += w * rows[s + 2];
      }
      const dst = i * outW + j;
      out[dst] = f(f(f(clampByte(sr) / 255) * 2) - 1);
      out[plane + dst] = f(f(f(clampByte(sg) / 255) * 2) - 1);
      out[2 * plane + dst] = f(f(f(clampByte(sb) / 255) * 2) - 1);
    }
  }
}

/** Per output position: first source index, tap count, `stride` weights (summing to 1). */
interface Taps {
  readonly start: Int32Array;
  readonly count: Int32Array;
  readonly stride: number;
  readonly weights: Float64Array;
}

/**
 * PIL's `precompute_coeffs` for one axis: output pixel `i` is centred on source position
 * `offset + (i + 0.5) · scale` (scale = cropSize / outSize); the kernel is widened by `scale`
 * when shrinking; taps are cut at the image's edges (not the crop's) and the weights
 * renormalised.
 */
function cubicTaps(offset: number, cropSize: number, inSize: number, outSize: number): Taps {
  const scale = cropSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = CUBIC_SUPPORT * filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * stride);
  for (let i = 0; i < outSize; i++) {
    const centre = offset + (i + 0.5) * scale;
    const min = Math.max(Math.trunc(centre - support + 0.5), 0);
    const max = Math.min(Math.trunc(centre + support + 0.5), inSize);
    let sum = 0;
    for (let x = min; x < max; x++) {
      const w = cubic((x - centre + 0.5) / filterScale);
      weights[i * stride + x - min] = w;
      sum += w;
    }
    for (let k = 0; k < max - min; k++) {
      weights[i * stride + k] = sum === 0 ? 0 : weights[i * stride + k] / sum;
    }
    start[i] = min;
    count[i] = max - min;
  }
  return { start, count, stride, weights };
}

/** Keys cubic kernel with a = −0.5 (PIL `bicubic_filter`). */
function cubic(x: number): number {
  const t = Math.abs(x);
  if (t < 1) return ((CUBIC_A + 2) * t - (CUBIC_A + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * CUBIC_A;
  return 0;
}

function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}
