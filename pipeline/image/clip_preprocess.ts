/**
 * sgm's CLIP image preprocessing (`FrozenOpenCLIPImageEmbedder.preprocess`) in plain TypeScript:
 * kornia's antialiased bicubic resize to 224×224, `(x + 1) / 2`, then CLIP mean/std
 * normalisation. diffusers: `_resize_with_antialiasing` + `CLIPImageProcessor(do_resize=False)`.
 *
 * Values are stored as float32 between stages, as torch does; sums are accumulated in float64.
 * Every function takes and returns NCHW {@linkcode Tensor}s and is pure.
 *
 * @module
 */

import { formatDims, type Tensor, tensor } from "../tensor.ts";

/** CLIP's per-channel mean (OpenAI CLIP, used by open_clip and sgm). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
/** CLIP's per-channel standard deviation. */
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** torch's bicubic coefficient (`upsample_bicubic2d`, as in OpenCV); PIL uses -0.5. */
const CUBIC_A = -0.75;

/**
 * kornia `get_gaussian_kernel1d(size, sigma)`: weights `exp(-x²/(2σ²))` for
 * `x = -⌊size/2⌋ … ⌊size/2⌋`, normalised to sum 1.
 *
 * @param size odd, ≥ 1
 */
export function gaussianKernel1d(size: number, sigma: number): Float64Array {
  if (!Number.isInteger(size) || size < 1 || size % 2 === 0) {
    throw new RangeError(`Gaussian kernel size must be an odd positive integer, got ${size}`);
  }
  if (!(sigma > 0)) throw new RangeError(`Gaussian sigma must be positive, got ${sigma}`);
  const half = Math.floor(size / 2);
  const weights = new Float64Array(size);
  let sum = 0;
  for (let i = 0; i < size; i++) {
    const x = i - half;
    weights[i] = Math.exp(-(x * x) / (2 * sigma * sigma));
    sum += weights[i];
  }
  for (let i = 0; i < size; i++) weights[i] /= sum;
  return weights;
}

/**
 * kornia `gaussian_blur2d(x, kernelSize, sigma, border_type="reflect", separable=True)`: a
 * separable Gaussian blur, first along the width, then along the height, each pass with
 * reflect padding (mirror without repeating the edge: `… x2 x1 | x0 x1 x2 …`).
 *
 * @param x [N, C, H, W]
 * @param kernelSize [height, width] kernel sizes, odd
 * @param sigma [height, width] standard deviations, in pixels
 * @returns [N, C, H, W]
 */
export function gaussianBlur2d(
  x: Tensor,
  kernelSize: readonly [number, number],
  sigma: readonly [number, number],
): Tensor {
  const [n, c, h, w] = nchw(x, "gaussianBlur2d");
  const kernelY = gaussianKernel1d(kernelSize[0], sigma[0]);
  const kernelX = gaussianKernel1d(kernelSize[1], sigma[1]);
  const out = new Float32Array(x.data.length);
  const rows = new Float32Array(h * w);
  for (let plane = 0; plane < n * c; plane++) {
    const src = x.data.subarray(plane * h * w, (plane + 1) * h * w);
    const dst = out.subarray(plane * h * w, (plane + 1) * h * w);
    // along the width: row stride 1
    for (let y = 0; y < h; y++) {
      convolve1d(src, rows, y * w, 1, w, kernelX);
    }
    // along the height: stride w
    for (let xi = 0; xi < w; xi++) {
      convolve1d(rows, dst, xi, w, h, kernelY);
    }
  }
  return tensor(x.dims, out);
}

/** Correlates one line of `length` values (start `offset`, step `stride`) with `kernel`. */
function convolve1d(
  src: Float32Array,
  dst: Float32Array,
  offset: number,
  stride: number,
  length: number,
  kernel: Float64Array,
): void {
  const half = (kernel.length - 1) / 2;
  for (let i = 0; i < length; i++) {
    let sum = 0;
    for (let k = 0; k < kernel.length; k++) {
      sum += kernel[k] * src[offset + stride * reflectIndex(i + k - half, length)];
    }
    dst[offset + stride * i] = sum;
  }
}

/**
 * Index of a reflect-padded position (torch `F.pad(mode="reflect")`, numpy "reflect"): the edge
 * is the mirror axis and is not repeated. torch needs padding < length; beyond that the mirror
 * folds again (period 2·(length − 1)), and a line of one value repeats it.
 */
export function reflectIndex(i: number, length: number): number {
  if (length === 1) return 0;
  const period = 2 * (length - 1);
  const m = ((i % period) + period) % period;
  return m < length ? m : period - m;
}

/**
 * torch `F.interpolate(x, (height, width), mode="bicubic", align_corners=True)`: Keys cubic
 * convolution with A = -0.75, source position `i · (in − 1)/(out − 1)` in float32, the four
 * taps' indices clamped to the image (replicated border).
 *
 * @param x [N, C, H, W]
 * @returns [N, C, height, width]
 */
export function resizeBicubicAlignCorners(x: Tensor, height: number, width: number): Tensor {
  const [n, c, h, w] = nchw(x, "resizeBicubicAlignCorners");
  positiveSize(height, width, "resizeBicubicAlignCorners");
  const tapsX = cubicTaps(w, width);
  const tapsY = cubicTaps(h, height);
  const out = new Float32Array(n * c * height * width);
  const rows = new Float64Array(h * width); // width pass result, before the height pass
  for (let plane = 0; plane < n * c; plane++) {
    const src = x.data.subarray(plane * h * w, (plane + 1) * h * w);
    const dst = out.subarray(plane * height * width, (plane + 1) * height * width);
    for (let y = 0; y < h; y++) {
      for (let j = 0; j < width; j++) {
        let sum = 0;
        for (let t = 0; t < 4; t++) {
          sum += tapsX.weights[4 * j + t] * src[y * w + tapsX.indices[4 * j + t]];
        }
        rows[y * width + j] = sum;
      }
    }
    for (let i = 0; i < height; i++) {
      for (let j = 0; j < width; j++) {
        let sum = 0;
        for (let t = 0; t < 4; t++) {
          sum += tapsY.weights[4 * i + t] * rows[tapsY.indices[4 * i + t] * width + j];
        }
        dst[i * width + j] = sum;
      }
    }
  }
  return tensor([n, c, height, width], out);
}

/**
 * The four source indices (clamped) and weights of every output position along one axis, as
 * torch's `compute_indices_weights_cubic` computes them with `align_corners=True`.
 *
 * The scale `(in − 1)/(out − 1)` is rounded to float32 as torch computes it; the source position
 * `scale · i` is kept exact. Against the fixture's 64×128 → 224×224 resize this is the closest
 * model (max 0.9e-6; rounding the position to float32 too gives 5.5e-6, all-float64 5.7e-6):
 * the float32 scale error grows with `i`, the product's rounding does not show.
 */
function cubicTaps(
  inSize: number,
  outSize: number,
): { indices: Int32Array; weights: Float64Array } {
  const scale = outSize > 1 ? Math.fround((inSize - 1) / (outSize - 1)) : 0;
  const indices = new Int32Array(4 * outSize);
  const weights = new Float64Array(4 * outSize);
  for (let i = 0; i < outSize; i++) {
    const real = scale * i;
    const index = Math.min(Math.floor(real), inSize - 1);
    const t = Math.min(Math.max(real - index, 0), 1);
    const coefficients = [
      cubicOuter(t + 1),
      cubicInner(t),
      cubicInner(1 - t),
      cubicOuter(2 - t),
    ];
    for (let k = 0; k < 4; k++) {
      indices[4 * i + k] = Math.min(Math.max(index - 1 + k, 0), inSize - 1);
      weights[4 * i + k] = coefficients[k];
    }
  }
  return { indices, weights };
}

/** Keys cubic kernel for |x| ≤ 1 (torch `cubic_convolution1`). */
function cubicInner(x: number): number {
  return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
}

/** Keys cubic kernel for 1 < |x| < 2 (torch `cubic_convolution2`). */
function cubicOuter(x: number): number {
  return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
}

/** Kernel sizes and sigmas of kornia's antialias blur, [height, width] each. */
export interface AntialiasBlur {
  readonly kernelSize: [number, number];
  readonly sigma: [number, number];
}

/**
 * The blur `kornia.geometry.resize(..., antialias=True)` applies before resizing [H, W] to
 * [height, width], or undefined when it applies none (no axis shrinks). With
 * `factor = in / out` per axis: `sigma = max((factor − 1)/2, 0.001)`,
 * `size = int(max(4·sigma, 3))`, plus 1 when even (skimage's sigma, "2 sigmas" each side).
 */
export function antialiasBlur(
  inHeight: number,
  inWidth: number,
  height: number,
  width: number,
): AntialiasBlur | undefined {
  const factors = [inHeight / height, inWidth / width];
  if (!(Math.max(...factors) > 1)) return undefined;
  const sigma = factors.map((factor) => Math.max((factor - 1) / 2, 0.001)) as [number, number];
  const kernelSize = sigma.map((s) => {
    const size = Math.trunc(Math.max(2 * 2 * s, 3));
    return size % 2 === 0 ? size + 1 : size;
  }) as [number, number];
  return { kernelSize, sigma };
}

/**
 * `kornia.geometry.resize(x, (height, width), interpolation="bicubic", align_corners=True,
 * antialias=True)` (kornia 0.6.9): returns `x` itself when the size is unchanged; blurs with
 * {@linkcode antialiasBlur} when some axis shrinks; then {@linkcode resizeBicubicAlignCorners}.
 *
 * @param x [N, C, H, W]
 * @returns [N, C, height, width]
 */
export function antialiasedResize(x: Tensor, height: number, width: number): Tensor {
  const [, , h, w] = nchw(x, "antialiasedResize");
  positiveSize(height, width, "antialiasedResize");
  if (h === height && w === width) return x;
  const blur = antialiasBlur(h, w, height, width);
  const blurred = blur ? gaussianBlur2d(x, blur.kernelSize, blur.sigma) : x;
  return resizeBicubicAlignCorners(blurred, height, width);
}

/**
 * sgm `FrozenOpenCLIPImageEmbedder.preprocess`: antialiased bicubic resize to size × size
 * (aspect ratio not kept), `(x + 1) / 2`, then `(x − mean) / std` per channel with
 * {@linkcode CLIP_MEAN} and {@linkcode CLIP_STD}, each stage rounded to float32.
 *
 * @param image [N, 3, H, W] in [-1, 1]
 * @returns [N, 3, size, size], the `pixel_values` of the image encoder
 */
export function clipPreprocess(image: Tensor, size = 224): Tensor {
  const [n, c] = nchw(image, "clipPreprocess");
  if (c !== 3) {
    throw new RangeError(
      `clipPreprocess needs 3 channels, got image of shape ${formatDims(image.dims)}`,
    );
  }
  const resized = antialiasedResize(image, size, size);
  const f = Math.fround;
  const mean = CLIP_MEAN.map(f);
  const std = CLIP_STD.map(f);
  const plane = size * size;
  const out = new Float32Array(resized.data.length);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < 3; ch++) {
      const base = (b * 3 + ch) * plane;
      for (let i = base; i < base + plane; i++) {
        const unit = f(f(resized.data[i] + 1) / 2); // [-1, 1] -> [0, 1]
        out[i] = f(unit - mean[ch]) / std[ch];
      }
    }
  }
  return tensor(resized.dims, out);
}

function nchw(x: Tensor, what: string): [number, number, number, number] {
  if (x.dims.length !== 4 || x.dims.some((d) => !(d >= 1))) {
    throw new RangeError(
      `${what} needs a non-empty [N, C, H, W] tensor, got ${formatDims(x.dims)}`,
    );
  }
  return x.dims as unknown as [number, number, number, number];
}

function positiveSize(height: number, width: number, what: string): void {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new RangeError(`${what}: output size must be positive integers, got ${height}×${width}`);
  }
}
