/**
 * A weight source with one key hidden or reported with other dims, for the builders' key checks.
 *
 * @module
 */

import type { WeightSource } from "../pipeline/weights/weight_source.ts";

/** Wraps a source, hiding `missing` and reporting `reshaped` with other dims. */
export function tampered(
  source: WeightSource,
  change: { missing?: string; reshaped?: [string, number[]] },
): WeightSource {
  return {
    description: `${source.description} (tampered)`,
    keys: () => source.keys()?.filter((k) => k !== change.missing),
    dims: (key, expected) => {
      if (key === change.missing) return undefined;
      if (change.reshaped && key === change.reshaped[0]) return change.reshaped[1];
      return source.dims(key, expected);
    },
    read: (key, dims) => source.read(key, dims),
  };
}
