/**
 * Reads rows of ONNX Runtime's `docs/OperatorKernels.md` (the registered kernels of one execution
 * provider: op, parameters with their type variables, opset range, allowed types) and answers
 * whether a node signature has a kernel.
 *
 * @module
 */

import type { ElementType } from "../../pipeline/onnx/graph.ts";
import type { OpSignature } from "../../pipeline/onnx/op_signatures.ts";

/** One formal parameter: its name and its type (a variable like `T`, or `tensor(int64)`). */
interface Formal {
  readonly name: string;
  readonly type: string;
}

/** One input/output list of an op (a row may list several, separated by "or"). */
interface Form {
  readonly inputs: readonly Formal[];
  readonly outputs: readonly Formal[];
}

/** One registered kernel (row) of the table. */
export interface KernelRow {
  readonly domain: string;
  readonly op: string;
  readonly since: number;
  /** Inclusive; Infinity for `N+`. */
  readonly until: number;
  readonly forms: readonly Form[];
  /** Type variable → allowed tensor element types (`float`, `float16`, …). */
  readonly types: ReadonlyMap<string, ReadonlySet<string>>;
}

/** Parses the table rows of an `OperatorKernels.md` excerpt. */
export function parseOperatorKernels(markdown: string): KernelRow[] {
  const rows: KernelRow[] = [];
  let domain = "";
  let op = "";
  let forms: Form[] = [];
  for (const line of markdown.split("\n")) {
    const domainMatch = /^\|\*\*Operator Domain:\*\* \*([^*]+)\*\|/.exec(line);
    if (domainMatch) {
      domain = domainMatch[1];
      continue;
    }
    const cells = line.split("|");
    if (cells.length !== 6 || !domain) continue; // "|a|b|c|d|" splits into 6
    const [, name, params, versions, types] = cells;
    if (name) {
      op = name;
      forms = params.split("<br><br>or<br><br>").map(parseForm);
    }
    if (!op || !versions) continue;
    const [since, until] = parseVersions(versions);
    rows.push({ domain, op, since, until, forms, types: parseTypes(types) });
  }
  return rows;
}

function parseForm(params: string): Form {
  const inputs: Formal[] = [];
  const outputs: Formal[] = [];
  for (const entry of params.split("<br>")) {
    const m = /\*(in|out)\* ([^:]+):\*\*([^*]+)\*\*/.exec(entry.trim());
    if (!m) continue;
    (m[1] === "in" ? inputs : outputs).push({ name: m[2], type: m[3] });
  }
  return { inputs, outputs };
}

function parseVersions(text: string): [number, number] {
  const plus = /^(\d+)\+$/.exec(text);
  if (plus) return [Number(plus[1]), Infinity];
  const range = /^\[(\d+), (\d+)\]$/.exec(text);
  if (range) return [Number(range[1]), Number(range[2])];
  if (/^\d+$/.test(text)) return [Number(text), Number(text)];
  throw new SyntaxError(`Cannot read opset range "${text}"`);
}

function parseTypes(text: string): Map<string, Set<string>> {
  const types = new Map<string, Set<string>>();
  for (const part of text.split("<br/>")) {
    const m = /\*\*([^*]+)\*\* = (.*)$/.exec(part.trim());
    if (!m) continue;
    const allowed = [...m[2].matchAll(/(?<!seq\()tensor\(([a-z0-9]+)\)/g)].map((x) => x[1]);
    types.set(m[1], new Set(allowed));
  }
  return types;
}

/** Our element types in the table's spelling. */
const TABLE_TYPE: Record<ElementType, string> = {
  float32: "float",
  float16: "float16",
  int64: "int64",
  bool: "bool",
};

/**
 * Why `signature` has no kernel among `rows`, or undefined when one matches: a row of its domain
 * and op whose opset range holds the graph's opset, with a parameter list whose type variables
 * admit every present input and output type.
 */
export function missingKernel(
  rows: readonly KernelRow[],
  signature: OpSignature,
): string | undefined {
  const candidates = rows.filter((r) => r.domain === signature.domain && r.op === signature.op);
  if (candidates.length === 0) return "no kernel for this op at all";
  const inRange = candidates.filter((r) =>
    r.since <= signature.opset && signature.opset <= r.until
  );
  if (inRange.length === 0) {
    const ranges = candidates.map((
      r,
    ) => (r.until === Infinity ? `${r.since}+` : `[${r.since}, ${r.until}]`));
    return `no kernel for opset ${signature.opset} (registered: ${ranges.join(", ")})`;
  }
  const reasons: string[] = [];
  for (const row of inRange) {
    for (const form of row.forms) {
      const problem = formProblem(row, form, signature);
      if (!problem) return undefined;
      reasons.push(problem);
    }
  }
  return reasons.join("; ");
}

function formProblem(row: KernelRow, form: Form, s: OpSignature): string | undefined {
  const check = (
    formals: readonly Formal[],
    actual: readonly (ElementType | undefined)[],
    kind: string,
  ) => {
    for (let i = 0; i < actual.length; i++) {
      const type = actual[i];
      if (type === undefined) continue;
      if (formals.length === 0) return `${kind} ${i} has no parameter`;
      // Past the last parameter: the last one is variadic (Concat's inputs, Split's outputs).
      const formal = formals[Math.min(i, formals.length - 1)];
      const want = TABLE_TYPE[type];
      const literal = /^tensor\(([a-z0-9]+)\)$/.exec(formal.type);
      if (literal) {
        if (literal[1] !== want) {
          return `${kind} ${formal.name} is ${want}, kernel takes ${literal[1]}`;
        }
        continue;
      }
      const allowed = row.types.get(formal.type);
      if (!allowed) {
        return `${kind} ${formal.name}: type ${formal.type} is not constrained in this row`;
      }
      if (!allowed.has(want)) {
        return `${kind} ${formal.name} is ${want}, ${formal.type} allows ${
          [...allowed].join(", ")
        }`;
      }
    }
    return undefined;
  };
  return check(form.inputs, s.inputs, "input") ?? check(form.outputs, s.outputs, "output");
}
