/**
 * Integer fixture tensors (I64, U8) as plain numbers.
 *
 * @module
 */

import { SafetensorsFile } from "../pipeline/safetensors/reader.ts";
import { fixturePath } from "./_fixtures.ts";

/** Reads integer tensor `name` from fixture file `file`. */
export async function readIntegers(file: string, name: string): Promise<number[]> {
  using st = await SafetensorsFile.open(fixturePath(file));
  return (await st.readIntegers(name)).data;
}
