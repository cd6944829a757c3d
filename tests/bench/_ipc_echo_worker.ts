/**
 * The `bench ipc` Worker: what the inference Worker did before the child process — receive the
 * feeds (transferred) and post back one tensor of the dims asked for, its buffer transferred.
 *
 * @module
 */

interface Scope {
  onmessage: ((event: MessageEvent<{ id: number; dims: number[] }>) => void) | null;
  postMessage(message: unknown, transfer: Transferable[]): void;
}
const scope = self as unknown as Scope;
scope.onmessage = ({ data: { id, dims } }) => {
  const out = new Float32Array(dims.reduce((a, b) => a * b, 1));
  scope.postMessage({ id, out: { dims, data: out } }, [out.buffer]);
};
