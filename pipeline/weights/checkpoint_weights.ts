/**
 * Weights read lazily from one or more safetensors files.
 *
 * @module
 */

import { SafetensorsFile } from "../safetensors/reader.ts";
import type { WeightSource } from "./weight_source.ts";

/** A {@linkcode WeightSource} over safetensors files; keys may be renamed by `rename`. */
export class CheckpointWeights implements WeightSource, Disposable {
  readonly description: string;
  readonly #files: SafetensorsFile[];
  /** Our key → [file, key in that file]. */
  readonly #index = new Map<string, [SafetensorsFile, string]>();

  private constructor(files: SafetensorsFile[], rename: (fileKey: string, file: number) => string) {
    this.#files = files;
    this.description = files.map((f) => f.path).join(", ");
    files.forEach((file, i) => {
      for (const key of file.keys()) this.#index.set(rename(key, i), [file, key]);
    });
  }

  /**
   * Opens `paths`. `rename` maps a file's key to the sgm key the builders ask for (identity for
   * sgm checkpoints; the diffusers mapping for diffusers folders).
   */
  static async open(
    paths: readonly string[],
    rename: (fileKey: string, file: number) => string = (k) => k,
  ): Promise<CheckpointWeights> {
    const files: SafetensorsFile[] = [];
    try {
      for (const path of paths) files.push(await SafetensorsFile.open(path));
    } catch (error) {
      for (const f of files) f.close();
      throw error;
    }
    return new CheckpointWeights(files, rename);
  }

  keys(): readonly string[] {
    return [...this.#index.keys()];
  }

  dims(key: string): readonly number[] | undefined {
    const hit = this.#index.get(key);
    return hit ? hit[0].info(hit[1]).dims : undefined;
  }

  async read(key: string): Promise<Float32Array> {
    const hit = this.#index.get(key);
    if (!hit) throw new RangeError(`Tensor "${key}" is not in ${this.description}`);
    return (await hit[0].readFloat32(hit[1])).data;
  }

  close(): void {
    for (const f of this.#files) f.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
