/**
 * Which execution provider ONNX Runtime assigns each node of a graph to.
 *
 * The Node binding has no API for this. At log level "verbose", ORT lists every node's placement
 * while it creates the session (`session_state.cc VerifyEachNodeIsAssignedToAnEp`), on the
 * process's stderr. So {@linkcode readNodePlacement} creates the session in a child Deno process
 * (`_placement_child.ts`) and parses its stderr ({@linkcode parsePlacementLog}). Nothing is run:
 * this works for a full-size graph on a GPU without activation memory, and the result is the
 * placement after ORT's graph optimisations (fusions included).
 *
 * @example
 * ```ts
 * import { readNodePlacement, computeOnCpu } from "./tests/bench/node_placement.ts";
 * const placement = await readNodePlacement("models/svd_xt/unet.onnx", "cuda");
 * computeOnCpu(placement); // [] when every Conv, MatMul, attention and norm runs on the GPU
 * ```
 *
 * @module
 */

import type { Provider } from "../../pipeline/runtime/onnx_session.ts";

/** ORT's name of each provider in its logs. */
export const ORT_PROVIDER_NAMES: Record<Provider, string> = {
  cpu: "CPUExecutionProvider",
  cuda: "CUDAExecutionProvider",
  webgpu: "WebGpuExecutionProvider",
};

/** One graph's placement: for each ORT provider name, how many nodes of each op type it runs. */
export interface NodePlacement {
  /** provider name → op type → node count, e.g. `{ WebGpuExecutionProvider: { Conv: 109 } }`. */
  readonly byProvider: Record<string, Record<string, number>>;
  /** Every node ORT placed on the CPU provider, as `OpType (node name)`. */
  readonly cpuNodes: readonly string[];
}

/**
 * Op types that must never run on the CPU when a GPU provider was asked for: the compute of SVD's
 * networks (convolutions, matrix products, attention, normalisation, the softmax of decomposed
 * attention) and the fused forms ORT makes of them.
 */
export const COMPUTE_HEAVY =
  /^(Conv|ConvTranspose|FusedConv|NhwcConv|MatMul|FusedMatMul|Gemm|Softmax)$|Attention|Norm/;

/**
 * Op types ORT places on the CPU provider for shape arithmetic (it keeps small int64 shape
 * computations off the GPU on purpose). A CPU node of another type is reported as unexpected.
 */
export const SHAPE_OPS = new Set([
  "Shape",
  "Gather",
  "Concat",
  "Slice",
  "Cast",
  "Unsqueeze",
  "Squeeze",
  "Reshape",
  "Range",
  "Expand",
  "ConstantOfShape",
  "Size",
]);

/**
 * Parses ORT's verbose "Node placements" section: blocks headed
 * `Node(s) placed on [XExecutionProvider]. Number of nodes: N` followed by one `Op (name)` line
 * per node, or a single `All nodes placed on [X]. Number of nodes: N` line.
 *
 * @throws {SyntaxError} when the log has no placement section, or a block's node count differs
 * from the lines that follow it.
 */
export function parsePlacementLog(log: string): NodePlacement {
  const byProvider: Record<string, Record<string, number>> = {};
  const cpuNodes: string[] = [];
  let current: { provider: string; expected: number; seen: number } | undefined;
  let found = false;
  const close = () => {
    if (current && current.seen !== current.expected) {
      throw new SyntaxError(
        `ORT's log announces ${current.expected} nodes on ${current.provider} but lists ${current.seen}`,
      );
    }
    current = undefined;
  };
  for (const line of log.split("\n")) {
    // ORT colours its log lines with ANSI escapes (ESC [ … m).
    // deno-lint-ignore no-control-regex
    const text = line.replace(/\x1b\[[0-9;]*m/g, "");
    const all = text.match(/All nodes placed on \[(\w+)\]\. Number of nodes: (\d+)/);
    if (all) {
      close();
      found = true;
      // No per-node list in this case: the counts are known, not the op types.
      byProvider[all[1]] = { [ALL]: Number(all[2]) };
      if (all[1] === ORT_PROVIDER_NAMES.cpu) cpuNodes.push(`${ALL} (${all[2]} nodes)`);
      continue;
    }
    const block = text.match(/Node\(s\) placed on \[(\w+)\]\. Number of nodes: (\d+)/);
    if (block) {
      close();
      found = true;
      current = { provider: block[1], expected: Number(block[2]), seen: 0 };
      byProvider[current.provider] ??= {};
      continue;
    }
    const node = current && text.match(/VerifyEachNodeIsAssignedToAnEp\]\s{2,}(\S+) \((.*)\)\s*$/);
    if (current && node) {
      const ops = byProvider[current.provider];
      ops[node[1]] = (ops[node[1]] ?? 0) + 1;
      current.seen++;
      if (current.provider === ORT_PROVIDER_NAMES.cpu) cpuNodes.push(`${node[1]} (${node[2]})`);
      continue;
    }
    if (current && current.seen === current.expected) close();
  }
  close();
  if (!found) {
    throw new SyntaxError(
      "ORT's log has no node placements (was the session created at log level verbose?)",
    );
  }
  return { byProvider, cpuNodes };
}

/** The op type ORT's log leaves unknown when one provider runs every node. */
const ALL = "(all)";

/**
 * CPU-placed nodes whose op type is in {@linkcode COMPUTE_HEAVY}, or the whole graph when ORT
 * placed every node on the CPU.
 */
export function computeOnCpu(placement: NodePlacement): string[] {
  return placement.cpuNodes.filter((n) => {
    const op = n.slice(0, n.indexOf(" "));
    return op === ALL || COMPUTE_HEAVY.test(op);
  });
}

/** CPU-placed nodes whose op type is not in {@linkcode SHAPE_OPS}. */
export function unexpectedOnCpu(placement: NodePlacement): string[] {
  return placement.cpuNodes.filter((n) => !SHAPE_OPS.has(n.slice(0, n.indexOf(" "))));
}

/**
 * Creates a session for `modelPath` on `provider` in a child process at verbose log level and
 * returns the placement ORT logged. The child inherits this process's environment (for WebGPU
 * over SwiftShader: `VK_ICD_FILENAMES`).
 *
 * @throws {Error} with the child's stderr tail when the session cannot be created.
 */
export async function readNodePlacement(
  modelPath: string,
  provider: Provider,
): Promise<NodePlacement> {
  const child = new URL("./_placement_child.ts", import.meta.url).pathname;
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      child,
      modelPath,
      provider,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  if (!output.success) {
    throw new Error(
      `Cannot create a ${provider} session for "${modelPath}" to read its node placement: ${
        stderr.trim().split("\n").slice(-5).join("\n")
      }`,
    );
  }
  return parsePlacementLog(stderr);
}
