/**
 * Shared entry for the command-line tools: one clear line on stderr and a non-zero exit for any
 * failure, never a stack trace (set `SVD_DEBUG=1` to see one). Exit 2 for a mistake in what was
 * typed (an unknown flag, a value out of range, a file named that is not there), 1 for a failure
 * while running.
 *
 * @module
 */

import { ParameterError } from "../request/parameter_error.ts";

/** A mistake in the command line itself (exit code 2, as a `ParameterError`). */
export class UsageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}

/**
 * Runs `main(Deno.args)`, exiting with the code it returns (if any), printing failures as one line
 * and exiting `failureCode` (default 1; 2 for usage errors).
 */
export async function runCli(
  main: (args: string[]) => Promise<void | number>,
  options: { readonly failureCode?: number } = {},
): Promise<void> {
  let code: void | number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    if (Deno.env.get("SVD_DEBUG")) console.error(error);
    const message = error instanceof Error ? error.message : String(error);
    console.error(`error: ${message}`);
    const usage = error instanceof UsageError || error instanceof ParameterError ||
      (error as { code?: string })?.code?.startsWith("ERR_PARSE_ARGS");
    Deno.exit(usage ? 2 : options.failureCode ?? 1);
  }
  if (code) Deno.exit(code);
}
