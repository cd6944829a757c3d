/**
 * Seeded random weights of whatever shape a builder asks for: the same values on every machine.
 *
 * Distribution (as the reference fixtures): Linear/Conv weights N(0,1)/sqrt(fan_in); norm weights
 * 1 + 0.2 N(0,1), norm biases 0.1 N(0,1); other biases 0.05 N(0,1); `mix_factor` 0.8 N(0,1);
 * embeddings 0.5 N(0,1)/sqrt(width). Full-size graphs built from them have realistic activation
 * ranges, which keeps fp16 runs finite.
 *
 * @module
 */

import { numel } from "../tensor.ts";
import type { WeightSource } from "./weight_source.ts";

/** A {@linkcode WeightSource} that invents every key it is asked for. */
export class RandomWeights implements WeightSource {
  readonly description: string;
  readonly seed: number;

  constructor(seed = 0) {
    this.seed = seed;
    this.description = `random(seed=${seed})`;
  }

  keys(): undefined {
    return undefined;
  }

  dims(_key: string, expected: readonly number[]): readonly number[] {
    return expected;
  }

  read(key: string, dims: readonly number[]): Promise<Float32Array> {
    return Promise.resolve(randomWeight(key, dims, this.seed));
  }
}

/** The random values {@linkcode RandomWeights} gives `key` with shape `dims`. */
export function randomWeight(key: string, dims: readonly number[], seed: number): Float32Array {
  const out = new Float32Array(numel(dims));
  const normal = gaussian(hashString(`${seed}:${key}`));
  const leaf = key.slice(key.lastIndexOf(".") + 1);
  const isNorm =
    /(^|\.)(norm|ln_|layer_norm|group_norm|norm_out|norm\d|in_layers\.0|out_layers\.0|out\.0)/
      .test(key) && dims.length === 1;
  let mean = 0;
  let scale: number;
  if (leaf === "mix_factor") scale = 0.8;
  else if (isNorm && leaf === "weight") [mean, scale] = [1, 0.2];
  else if (isNorm && leaf === "bias") scale = 0.1;
  else if (leaf.endsWith("bias")) scale = 0.05;
  else if (dims.length >= 2 && !/embedding|class_embedding/.test(leaf)) {
    const fanIn = numel(dims.slice(1));
    scale = 1 / Math.sqrt(fanIn);
  } else scale = 0.5 / Math.sqrt(dims[dims.length - 1] ?? 1);
  if (leaf === "proj" && dims.length === 2) scale = 1 / Math.sqrt(dims[0]); // used as x @ proj
  for (let i = 0; i < out.length; i++) out[i] = mean + scale * normal();
  return out;
}

/** 32-bit FNV-1a hash of a string. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Standard normal draws (Box–Muller over mulberry32), deterministic for a seed. */
export function gaussian(seed: number): () => number {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const u = 1 - uniform();
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}
