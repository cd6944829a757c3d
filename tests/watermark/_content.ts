/**
 * Natural-looking test clips for the watermark tests and benchmark, made here rather than read
 * from disk: a fractal "landscape" (1/f-like value noise in luma and, coarser, in chroma, a sky
 * gradient and a few soft-edged objects) that the camera pans across, so x264 and VP9 see the
 * smooth areas, edges and motion they see in SVD's output — not noise, which no codec keeps.
 *
 * @module
 */

import { decodePng } from "../../pipeline/image/png_decode.ts";
import { fixturePath } from "../_fixtures.ts";

/** Options of {@linkcode panningClip}. */
export interface ClipOptions {
  readonly seed?: number;
  /** Pixels the camera moves right per frame (default 4). */
  readonly panPerFrame?: number;
}

/**
 * `frames` RGB frames of a scene panned `panPerFrame` pixels per frame.
 *
 * @returns `[height, width, 3]` bytes per frame
 */
export function panningClip(
  width: number,
  height: number,
  frames: number,
  options: ClipOptions = {},
): Uint8Array[] {
  const pan = options.panPerFrame ?? 4;
  const sceneWidth = width + pan * (frames - 1);
  const scene = landscape(sceneWidth, height, options.seed ?? 1);
  return Array.from({ length: frames }, (_, t) => crop(scene, sceneWidth, t * pan, width, height));
}

/**
 * The fixture's 128×64 input scaled up (bilinear) to `width` × `height`, panned and zoomed a
 * little per frame: very smooth content, the hardest case for a mark that rides on the strongest
 * coefficient of flat blocks.
 */
export async function fixtureClip(
  width: number,
  height: number,
  frames: number,
): Promise<Uint8Array[]> {
  const image = decodePng(await Deno.readFile(fixturePath("input.png")));
  return Array.from({ length: frames }, (_, t) => {
    const zoom = 1 - 0.004 * t;
    return resample(image.rgb, image.width, image.height, width, height, zoom, 0.3 * t);
  });
}

/**
 * Coloured noise pushed past the byte range (about 10 % of samples at 0 or 255), like the tiny
 * demo model's output: the case where blue cannot move.
 */
export function saturatedNoise(width: number, height: number, frames: number): Uint8Array[] {
  const random = mulberry32(7);
  return Array.from(
    { length: frames },
    () =>
      Uint8Array.from({ length: width * height * 3 }, () => clamp(128 + 300 * (random() - 0.5))),
  );
}

/** Peak signal-to-noise ratio of `b` against `a` over all bytes, in dB (Infinity when equal). */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return sum === 0 ? Infinity : 10 * Math.log10((255 * 255) / (sum / a.length));
}

function landscape(width: number, height: number, seed: number): Uint8Array {
  const luma = fractal(width, height, seed, [256, 128, 64, 32, 16, 8, 4, 2], 0.9);
  const warm = fractal(width, height, seed + 1, [512, 256, 128, 64, 32, 16], 0.7);
  const green = fractal(width, height, seed + 2, [512, 256, 128, 64, 32], 0.7);
  const random = mulberry32(seed + 3);
  const discs = Array.from({ length: 12 }, () => ({
    x: random() * width,
    y: height * (0.3 + 0.7 * random()),
    r: 20 + random() * 90,
    rgb: [random() * 255, random() * 255, random() * 255],
  }));
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sky = Math.max(0, 1 - y / (0.45 * height)); // bright blue above the horizon
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const l = 110 + 70 * luma[i];
      let r = l + 45 * warm[i] - 10 * green[i] - 25 * sky;
      let g = l + 35 * green[i] + 5 * sky;
      let b = l - 40 * warm[i] - 10 * green[i] + 70 * sky;
      for (const disc of discs) {
        const d = Math.hypot(x - disc.x, y - disc.y);
        const alpha = Math.min(1, Math.max(0, (disc.r - d) / 3)); // 3-pixel soft edge
        if (alpha > 0) {
          const shade = 0.75 + 0.25 * luma[i];
          r = r * (1 - alpha) + alpha * disc.rgb[0] * shade;
          g = g * (1 - alpha) + alpha * disc.rgb[1] * shade;
          b = b * (1 - alpha) + alpha * disc.rgb[2] * shade;
        }
      }
      rgb[3 * i] = clamp(r);
      rgb[3 * i + 1] = clamp(g);
      rgb[3 * i + 2] = clamp(b);
    }
  }
  return rgb;
}

/** Sum of value-noise octaves (cell sizes `cells`), amplitude ∝ cell^`exponent`, about [-1, 1]. */
function fractal(
  width: number,
  height: number,
  seed: number,
  cells: readonly number[],
  exponent: number,
): Float32Array {
  const out = new Float32Array(width * height);
  const norm = cells.reduce((sum, cell) => sum + cell ** exponent, 0);
  for (const [octave, cell] of cells.entries()) {
    const amplitude = cell ** exponent / norm;
    const gw = Math.ceil(width / cell) + 2;
    const gh = Math.ceil(height / cell) + 2;
    const random = mulberry32(seed * 1000 + octave);
    const grid = Float32Array.from({ length: gw * gh }, () => 2 * random() - 1);
    for (let y = 0; y < height; y++) {
      const gy = y / cell;
      const y0 = Math.floor(gy);
      const fy = smooth(gy - y0);
      for (let x = 0; x < width; x++) {
        const gx = x / cell;
        const x0 = Math.floor(gx);
        const fx = smooth(gx - x0);
        const a = grid[y0 * gw + x0] + (grid[y0 * gw + x0 + 1] - grid[y0 * gw + x0]) * fx;
        const b = grid[(y0 + 1) * gw + x0] +
          (grid[(y0 + 1) * gw + x0 + 1] - grid[(y0 + 1) * gw + x0]) * fx;
        out[y * width + x] += amplitude * (a + (b - a) * fy);
      }
    }
  }
  return out;
}

function resample(
  rgb: Uint8Array,
  sw: number,
  sh: number,
  width: number,
  height: number,
  zoom: number,
  shift: number,
): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  const scale = Math.max(sw / width, sh / height) * zoom; // cover
  for (let y = 0; y < height; y++) {
    const sy = Math.min(sh - 1.001, Math.max(0, (y + 0.5 - height / 2) * scale + sh / 2 - 0.5));
    const y0 = Math.floor(sy);
    const fy = sy - y0;
    for (let x = 0; x < width; x++) {
      const sx = Math.min(
        sw - 1.001,
        Math.max(0, (x + 0.5 - width / 2) * scale + sw / 2 - 0.5 + shift),
      );
      const x0 = Math.floor(sx);
      const fx = sx - x0;
      for (let c = 0; c < 3; c++) {
        const p = (y0 * sw + x0) * 3 + c;
        const top = rgb[p] + (rgb[p + 3] - rgb[p]) * fx;
        const bottom = rgb[p + sw * 3] + (rgb[p + sw * 3 + 3] - rgb[p + sw * 3]) * fx;
        out[(y * width + x) * 3 + c] = clamp(top + (bottom - top) * fy);
      }
    }
  }
  return out;
}

function crop(rgb: Uint8Array, sourceWidth: number, left: number, width: number, height: number) {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const start = (y * sourceWidth + left) * 3;
    out.set(rgb.subarray(start, start + width * 3), y * width * 3);
  }
  return out;
}

function smooth(t: number): number {
  return t * t * (3 - 2 * t);
}

function clamp(value: number): number {
  return Math.min(255, Math.max(0, Math.round(value)));
}

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
