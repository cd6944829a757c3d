/**
 * A diffusers-format SVD folder read as sgm-keyed weights, so the graph builders can convert
 * `stabilityai/stable-video-diffusion-img2vid(-xt)` folders as they convert the single-file
 * checkpoints.
 *
 * Each sgm key has a recipe: its file, the diffusers key(s) and a transform (see
 * `diffusers_keys.ts`). Every tensor of the three files must have a recipe: a name the mapping does
 * not know fails when the folder is opened, so a mapping gap cannot silently drop weights.
 *
 * @module
 */

import { SafetensorsFile } from "../safetensors/reader.ts";
import { formatDims, sameDims } from "../tensor.ts";
import { WeightsMismatchError, type WeightSource } from "../weights/weight_source.ts";
import {
  type DiffusersComponent,
  type DiffusersLayout,
  diffusersToSgm,
  IGNORED_DIFFUSERS_KEYS,
  sgmToDiffusers,
  SVD_LAYOUT,
  type Transform,
} from "./diffusers_keys.ts";

/** Candidate files of each component, preferred (float32) first. */
export const DIFFUSERS_FILES: Readonly<Record<DiffusersComponent, readonly string[]>> = {
  unet: [
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
  ],
  vae: ["vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors"],
  image_encoder: ["image_encoder/model.safetensors", "image_encoder/model.fp16.safetensors"],
};

const COMPONENTS = ["unet", "vae", "image_encoder"] as const;

/** How one sgm tensor is made. */
interface Recipe {
  readonly file: SafetensorsFile;
  /** diffusers keys in `file`: one, or q, k, v for `concatRows`. */
  readonly sources: readonly string[];
  readonly transform: Transform;
  /** sgm shape. */
  readonly dims: readonly number[];
}

/**
 * Opens the diffusers folder `dir` (`unet/`, `vae/`, `image_encoder/`, float32 files preferred over
 * `.fp16` ones) as a {@linkcode WeightSource} with sgm keys: `model.diffusion_model.*`,
 * `first_stage_model.decoder.*`, `conditioner.embedders.3.encoder.{encoder,quant_conv}.*` and
 * `conditioner.embedders.0.open_clip.model.visual.*`, with sgm shapes and values (F16/BF16 widened).
 *
 * Throws `Deno.errors.NotFound` naming the expected path when a component file is missing, and
 * {@linkcode WeightsMismatchError} naming the key when a file holds a tensor the mapping does not
 * know, two tensors land on one sgm key, or parts of a merged tensor are missing or disagree.
 *
 * @example
 * ```ts
 * const source = await openDiffusersFolder("models/stable-video-diffusion-img2vid-xt");
 * try {
 *   source.dims("model.diffusion_model.input_blocks.1.0.in_layers.2.weight", []); // [320, 320, 3, 3]
 * } finally {
 *   source.close();
 * }
 * ```
 */
export async function openDiffusersFolder(dir: string): Promise<WeightSource & { close(): void }> {
  const files: Partial<Record<DiffusersComponent, SafetensorsFile>> = {};
  try {
    for (const component of COMPONENTS) files[component] = await openComponent(dir, component);
    return DiffusersFolderWeights.index(dir, files as Record<DiffusersComponent, SafetensorsFile>);
  } catch (error) {
    for (const file of Object.values(files)) file.close();
    throw error;
  }
}

async function openComponent(dir: string, component: DiffusersComponent): Promise<SafetensorsFile> {
  const candidates = DIFFUSERS_FILES[component];
  for (const name of candidates) {
    const path = `${dir}/${name}`;
    try {
      return await SafetensorsFile.open(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  throw new Deno.errors.NotFound(
    `Cannot open diffusers folder "${dir}": missing ${candidates[0]} (or ${
      candidates.slice(1).join(", ")
    })`,
  );
}

/** Layout facts read from the folder's names (SVD's values when a name is absent). */
function inferLayout(files: Record<DiffusersComponent, SafetensorsFile>): DiffusersLayout {
  const withAttention = new Set<number>();
  for (const key of files.unet.keys()) {
    const m = /^up_blocks\.(\d+)\.attentions\./.exec(key);
    if (m) withAttention.add(Number(m[1]));
  }
  let levels = 0;
  for (const key of files.vae.keys()) {
    const m = /^decoder\.up_blocks\.(\d+)\./.exec(key);
    if (m) levels = Math.max(levels, Number(m[1]) + 1);
  }
  return {
    unetUpBlocksWithAttention: withAttention.size > 0
      ? [...withAttention]
      : SVD_LAYOUT.unetUpBlocksWithAttention,
    vaeLevels: levels > 0 ? levels : SVD_LAYOUT.vaeLevels,
  };
}

class DiffusersFolderWeights implements WeightSource, Disposable {
  readonly description: string;
  readonly #files: readonly SafetensorsFile[];
  readonly #recipes: ReadonlyMap<string, Recipe>;

  private constructor(
    description: string,
    files: readonly SafetensorsFile[],
    recipes: ReadonlyMap<string, Recipe>,
  ) {
    this.description = description;
    this.#files = files;
    this.#recipes = recipes;
  }

  /** Builds the recipe of every sgm key, checking that every tensor of the folder has one. */
  static index(
    dir: string,
    files: Record<DiffusersComponent, SafetensorsFile>,
  ): DiffusersFolderWeights {
    const where = `diffusers folder "${dir}"`;
    const layout = inferLayout(files);
    // sgm key → component and the diffusers key of each part.
    const slots = new Map<
      string,
      { component: DiffusersComponent; transform: Transform; parts: string[] }
    >();
    const unknown: { key: string; file: string }[] = [];
    for (const component of COMPONENTS) {
      const file = files[component];
      for (const key of file.keys()) {
        if (IGNORED_DIFFUSERS_KEYS[component].includes(key)) continue;
        const target = diffusersToSgm(component, key, layout);
        if (!target) {
          unknown.push({ key, file: relative(dir, file.path) });
          continue;
        }
        const slot = slots.get(target.key) ??
          { component, transform: target.transform, parts: [] as string[] };
        slots.set(target.key, slot);
        const part = target.part ?? 0;
        const taken = slot.parts[part];
        if (taken !== undefined) {
          throw new WeightsMismatchError(
            key,
            `Cannot open ${where}: "${key}" and "${taken}" both map to sgm key "${target.key}"`,
          );
        }
        slot.parts[part] = key;
      }
    }
    if (unknown.length > 0) {
      const shown = unknown.slice(0, 5).map((u) => `"${u.key}" (${u.file})`).join(", ");
      const more = unknown.length > 5 ? ` and ${unknown.length - 5} more` : "";
      throw new WeightsMismatchError(
        unknown[0].key,
        `Cannot open ${where}: ${unknown.length} tensor(s) have no sgm counterpart in the diffusers→sgm mapping: ${shown}${more}`,
      );
    }

    const recipes = new Map<string, Recipe>();
    for (const [sgmKey, slot] of slots) {
      const file = files[slot.component];
      const sources = slot.transform === "concatRows"
        ? [0, 1, 2].map((i) => slot.parts[i])
        : slot.parts;
      const missing = sources.findIndex((k) => k === undefined);
      if (missing >= 0) {
        const expected = sgmToDiffusers(sgmKey, layout)?.keys[missing] ?? `part ${missing}`;
        throw new WeightsMismatchError(
          expected,
          `Cannot open ${where}: "${expected}" is missing from ${
            relative(dir, file.path)
          }; sgm key "${sgmKey}" needs it`,
        );
      }
      const dims = sgmDims(file, sources, slot.transform, sgmKey, where);
      recipes.set(sgmKey, { file, sources, transform: slot.transform, dims });
    }

    const names = COMPONENTS.map((c) => relative(dir, files[c].path)).join(", ");
    return new DiffusersFolderWeights(`${where} (${names})`, Object.values(files), recipes);
  }

  keys(): readonly string[] {
    return [...this.#recipes.keys()];
  }

  dims(key: string): readonly number[] | undefined {
    return this.#recipes.get(key)?.dims;
  }

  async read(key: string, dims: readonly number[]): Promise<Float32Array> {
    const recipe = this.#recipes.get(key);
    if (!recipe) throw new RangeError(`Tensor "${key}" is not in ${this.description}`);
    if (!sameDims(recipe.dims, dims)) {
      throw new WeightsMismatchError(
        key,
        `Weight "${key}" has shape ${formatDims(recipe.dims)} in ${this.description}, asked for ${
          formatDims(dims)
        }`,
      );
    }
    const { file, sources } = recipe;
    switch (recipe.transform) {
      case "copy":
      case "linearToConv1x1": // same values, the shape gains two trailing 1s
        return (await file.readFloat32(sources[0])).data;
      case "transpose": {
        const t = await file.readFloat32(sources[0]);
        return transpose2d(t.data, t.dims[0], t.dims[1]);
      }
      case "concatRows": {
        // [w, ...] × 3 (q, k, v) → [3w, ...]
        const out = new Float32Array(recipe.dims.reduce((a, b) => a * b, 1));
        let offset = 0;
        for (const source of sources) {
          const part = (await file.readFloat32(source)).data;
          out.set(part, offset);
          offset += part.length;
        }
        return out;
      }
    }
  }

  close(): void {
    for (const file of this.#files) file.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The sgm shape `transform` makes of `sources`, checking that they fit it. */
function sgmDims(
  file: SafetensorsFile,
  sources: readonly string[],
  transform: Transform,
  sgmKey: string,
  where: string,
): readonly number[] {
  const dims = file.info(sources[0]).dims;
  const fail = (why: string) =>
    new WeightsMismatchError(
      sources[0],
      `Cannot open ${where}: "${sources[0]}" ${formatDims(dims)} ${why}`,
    );
  switch (transform) {
    case "copy":
      return dims;
    case "linearToConv1x1":
      // Linear [o, i] → 1×1 conv [o, i, 1, 1]; a file that already stores the conv shape is accepted.
      if (dims.length === 2) return [...dims, 1, 1];
      if (dims.length === 4 && dims[2] === 1 && dims[3] === 1) return dims;
      throw fail(`cannot become the 1×1 convolution "${sgmKey}"`);
    case "transpose":
      if (dims.length !== 2) throw fail(`cannot be transposed into "${sgmKey}"`);
      return [dims[1], dims[0]];
    case "concatRows": {
      for (const other of sources.slice(1)) {
        const otherDims = file.info(other).dims;
        if (!sameDims(otherDims, dims)) {
          throw new WeightsMismatchError(
            other,
            `Cannot open ${where}: "${other}" ${formatDims(otherDims)} does not match "${
              sources[0]
            }" ${formatDims(dims)}; both are rows of "${sgmKey}"`,
          );
        }
      }
      if (dims.length === 0) throw fail(`cannot be stacked into "${sgmKey}"`);
      return [dims[0] * sources.length, ...dims.slice(1)];
    }
  }
}

/** `[rows, cols]` → `[cols, rows]`. */
function transpose2d(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  }
  return out;
}

function relative(dir: string, path: string): string {
  return path.startsWith(`${dir}/`) ? path.slice(dir.length + 1) : path;
}
