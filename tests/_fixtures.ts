/**
 * Access to the reference fixtures in tests/fixtures/tiny (produced by sgm, float32, CPU) and the
 * comparisons the fixture README prescribes.
 *
 * @module
 */

import { SafetensorsFile } from "../pipeline/safetensors/reader.ts";
import { formatDims, maxAbsDiff, sameDims, type Tensor } from "../pipeline/tensor.ts";

/** Folder of the tiny fixtures; `SVD_FIXTURES` overrides it. */
export const FIXTURES = realPath(
  fixturesOverride() ?? new URL("./fixtures/tiny", import.meta.url).pathname,
);

/** Symlinks resolved, so that tests granted `read: [FIXTURES]` can read the files. */
function realPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

/** `SVD_FIXTURES`, read only where env access is granted (tests run with least permissions). */
function fixturesOverride(): string | undefined {
  const access = Deno.permissions.querySync({ name: "env", variable: "SVD_FIXTURES" });
  return access.state === "granted" ? Deno.env.get("SVD_FIXTURES") : undefined;
}

/** Path of a fixture file. */
export function fixturePath(name: string): string {
  return `${FIXTURES}/${name}`;
}

/** Reads float32 tensors `names` from fixture file `file`. */
export async function readFixture(
  file: string,
  names: readonly string[],
): Promise<Record<string, Tensor>> {
  using st = await SafetensorsFile.open(fixturePath(file));
  const out: Record<string, Tensor> = {};
  for (const name of names) out[name] = await st.readFloat32(name);
  return out;
}

/**
 * Asserts `max |actual - expected| <= tolerance`, with a message naming the tensor, the measured
 * difference and where it is largest.
 */
export function assertClose(
  actual: Tensor,
  expected: Tensor,
  tolerance: number,
  what: string,
): number {
  if (!sameDims(actual.dims, expected.dims)) {
    throw new Error(
      `${what}: shape ${formatDims(actual.dims)}, expected ${formatDims(expected.dims)}`,
    );
  }
  const diff = maxAbsDiff(actual, expected);
  if (!(diff <= tolerance)) {
    let worst = 0;
    for (let i = 0; i < actual.data.length; i++) {
      if (
        !(Math.abs(actual.data[i] - expected.data[i]) <=
          Math.abs(actual.data[worst] - expected.data[worst]))
      ) worst = i;
    }
    throw new Error(
      `${what}: max |diff| = ${diff.toExponential(3)} > ${tolerance} (at flat index ${worst}: got ${
        actual.data[worst]
      }, expected ${expected.data[worst]})`,
    );
  }
  return diff;
}
