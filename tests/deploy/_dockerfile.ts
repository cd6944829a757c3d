/**
 * A small reader of deploy/Dockerfile for the tests: instructions joined across `\` continuations,
 * comments dropped, grouped into stages. Only what the tests ask about (FROM … AS, USER, CMD,
 * ENTRYPOINT, HEALTHCHECK, ENV, RUN); the linting itself is dockerfile-utils' job.
 *
 * @module
 */

/** The repository's Dockerfile. */
export const DOCKERFILE = new URL("../../deploy/Dockerfile", import.meta.url).pathname;

/** One instruction: its keyword in upper case and the rest of its (joined) line. */
export interface Instruction {
  readonly keyword: string;
  readonly args: string;
  /** 1-based line of the keyword. */
  readonly line: number;
}

/** A build stage: `FROM <image> [AS <name>]` and what follows it. */
export interface Stage {
  readonly name: string | undefined;
  readonly from: string;
  readonly instructions: readonly Instruction[];
}

/** Instructions of `text` in order, continuations joined, comments and blank lines dropped. */
export function parseInstructions(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let current: { text: string; line: number } | undefined;
  for (const [index, raw] of text.split("\n").entries()) {
    const trimmed = raw.trim();
    if (current === undefined && (trimmed === "" || trimmed.startsWith("#"))) continue;
    if (current !== undefined && trimmed.startsWith("#")) continue;
    const continued = trimmed.endsWith("\\");
    const piece = continued ? trimmed.slice(0, -1).trim() : trimmed;
    current = current === undefined
      ? { text: piece, line: index + 1 }
      : { text: `${current.text} ${piece}`.trim(), line: current.line };
    if (!continued) {
      const match = /^(\S+)\s*(.*)$/s.exec(current.text)!;
      instructions.push({ keyword: match[1].toUpperCase(), args: match[2], line: current.line });
      current = undefined;
    }
  }
  return instructions;
}

/** The stages of `text`; instructions before the first FROM (global ARGs) are left out. */
export function parseStages(text: string): Stage[] {
  const stages: { name: string | undefined; from: string; instructions: Instruction[] }[] = [];
  for (const instruction of parseInstructions(text)) {
    if (instruction.keyword === "FROM") {
      const words = instruction.args.split(/\s+/).filter((w) => !w.startsWith("--"));
      const as = words.findIndex((w) => w.toUpperCase() === "AS");
      stages.push({ from: words[0], name: as >= 0 ? words[as + 1] : undefined, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** Global `ARG NAME=value` defaults (before the first FROM). */
export function globalArgs(text: string): Record<string, string> {
  const args: Record<string, string> = {};
  for (const instruction of parseInstructions(text)) {
    if (instruction.keyword === "FROM") break;
    const match = /^(\w+)=(.*)$/.exec(instruction.args);
    if (instruction.keyword === "ARG" && match) args[match[1]] = match[2].replace(/^"|"$/g, "");
  }
  return args;
}

/** The last instruction with `keyword` in `stage`, if any. */
export function last(stage: Stage, keyword: string): Instruction | undefined {
  return stage.instructions.findLast((i) => i.keyword === keyword);
}

/**
 * The argv a container runs for `CMD`/`ENTRYPOINT` arguments: the JSON (exec) form as is, the shell
 * form through `/bin/sh -c`, as Docker does.
 */
export function execForm(args: string): string[] {
  const trimmed = args.trim();
  if (trimmed.startsWith("[")) {
    const parsed = JSON.parse(trimmed);
    if (Array.isArray(parsed) && parsed.every((a) => typeof a === "string")) return parsed;
  }
  return ["/bin/sh", "-c", trimmed];
}

/**
 * What a container of `stage` starts: ENTRYPOINT followed by CMD (CMD alone when there is no
 * ENTRYPOINT), as Docker combines them.
 */
export function startCommand(stage: Stage): string[] {
  const entrypoint = last(stage, "ENTRYPOINT");
  const cmd = last(stage, "CMD");
  return [
    ...(entrypoint ? execForm(entrypoint.args) : []),
    ...(cmd ? execForm(cmd.args) : []),
  ];
}

/** The command of `HEALTHCHECK [OPTIONS] CMD …` (undefined for `HEALTHCHECK NONE` or none). */
export function healthcheckCommand(stage: Stage): string[] | undefined {
  const healthcheck = last(stage, "HEALTHCHECK");
  const match = healthcheck && /(?:^|\s)CMD\s+(.*)$/s.exec(healthcheck.args);
  return match ? execForm(match[1]) : undefined;
}
