/**
 * Turns the converter's `--checkpoint` argument into a {@linkcode WeightSource}.
 *
 * @module
 */

import { CheckpointWeights } from "../weights/checkpoint_weights.ts";
import { RandomWeights } from "../weights/random_weights.ts";
import type { WeightSource } from "../weights/weight_source.ts";
import { openDiffusersFolder } from "./diffusers_folder.ts";

/**
 * Opens `spec`: `random` or `random:SEED` (seeded random weights of the real shapes), a folder in
 * diffusers layout (`unet/`, `vae/`, `image_encoder/`), or an sgm single-file `.safetensors`
 * checkpoint. Close the result with `close()` when it has one.
 */
export async function openWeightSource(
  spec: string,
): Promise<WeightSource & { close?: () => void }> {
  const random = /^random(?::(\d+))?$/.exec(spec);
  if (random) return new RandomWeights(Number(random[1] ?? 0));
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(spec);
  } catch (cause) {
    throw new Deno.errors.NotFound(`Cannot open checkpoint "${spec}": no such file or folder`, {
      cause,
    });
  }
  if (info.isDirectory) return await openDiffusersFolder(spec);
  return await CheckpointWeights.open([spec]);
}
