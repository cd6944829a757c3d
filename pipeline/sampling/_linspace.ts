/**
 * `torch.linspace(start, end, steps)` in float32, rounded exactly as PyTorch's CPU kernel does, so
 * schedules built on it (sigmas, guidance scales) match sgm to the bit.
 *
 * PyTorch computes `step = (end - start) / (steps - 1)` in float32, then fills the first half
 * forwards (`start + step * i`) and the second half backwards (`end - step * (steps - 1 - i)`), so
 * both ends are exact.
 *
 * @module
 */

const f32 = Math.fround;

/** Float32 `torch.linspace(start, end, steps)`; `start` and `end` are rounded to float32 first. */
export function linspaceFloat32(start: number, end: number, steps: number): Float32Array {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`linspace needs a whole number of steps >= 1, got ${steps}`);
  }
  const a = f32(start);
  const b = f32(end);
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = a;
    return out;
  }
  const step = f32(f32(b - a) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < halfway ? f32(a + f32(step * i)) : f32(b - f32(step * (steps - 1 - i)));
  }
  return out;
}
