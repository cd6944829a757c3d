/**
 * Choosing the execution provider at start from one setting, `ORT_PROVIDER=auto|cuda|webgpu|cpu`.
 *
 * An explicit provider is used or the start fails, naming it: a deployment that asked for CUDA
 * never ends up on the CPU without anyone noticing. `auto` tries CUDA, then the CPU, and keeps the
 * reason each skipped candidate could not be used, so that the log, `/readyz` and `/metrics` can
 * show why a GPU machine is computing on its CPU.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "./pipeline/runtime/mod.ts";
 * import { describeProviderChoice, parseProviderSetting, resolveProvider } from "./pipeline/runtime/provider.ts";
 * const choice = await resolveProvider(
 *   parseProviderSetting(Deno.env.get("ORT_PROVIDER")),
 *   (provider) => InferenceClient.start({ modelDir: "models/svd_xt", provider }),
 *   { log: console.log },
 * );
 * console.log(describeProviderChoice(choice)); // "ORT provider: cuda (ORT_PROVIDER=auto)"
 * const client = choice.value;
 * ```
 *
 * @module
 */

import type { Provider } from "./onnx_session.ts";

/** The values `ORT_PROVIDER` takes; `auto` tries {@linkcode AUTO_CANDIDATES} in order. */
export const PROVIDER_SETTINGS = ["auto", "cuda", "webgpu", "cpu"] as const;

/** One value of `ORT_PROVIDER`. */
export type ProviderSetting = typeof PROVIDER_SETTINGS[number];

/**
 * What `auto` tries, in order. WebGPU is left out: it needs a Vulkan driver set up by hand and
 * trails CUDA on large convolutions, so it is used only when asked for by name.
 */
export const AUTO_CANDIDATES: readonly Provider[] = ["cuda", "cpu"];

/** A candidate provider that could not be used, and why. */
export interface SkippedProvider {
  readonly provider: Provider;
  /** The loader's error message. */
  readonly reason: string;
}

/** The outcome of {@linkcode resolveProvider}. */
export interface ProviderChoice<T> {
  /** The setting as given (after parsing). */
  readonly setting: ProviderSetting;
  /** The provider in use. */
  readonly provider: Provider;
  /** What `tryLoad` returned for it, e.g. the started `InferenceClient`. */
  readonly value: T;
  /** Candidates tried before it, in order (empty unless the setting is `auto`). */
  readonly skipped: readonly SkippedProvider[];
}

/** Options of {@linkcode resolveProvider}. */
export interface ResolveProviderOptions {
  /**
   * Receives the choice as one line, once, skipped candidates and their reasons included (e.g.
   * `console.log`).
   */
  readonly log?: (line: string) => void;
  /** Called for each candidate that could not be used, before the next one is tried. */
  readonly onSkip?: (skipped: SkippedProvider, next: Provider) => void;
}

/**
 * No provider allowed by the setting could be loaded. For an explicit setting, `cause` is the
 * loader's error; for `auto`, it is the last candidate's and `skipped` lists every reason.
 */
export class ProviderUnavailableError extends Error {
  /** The setting that could not be satisfied. */
  readonly setting: ProviderSetting;
  /** Every candidate tried, with its reason. */
  readonly skipped: readonly SkippedProvider[];
  constructor(
    setting: ProviderSetting,
    skipped: readonly SkippedProvider[],
    options?: ErrorOptions,
  ) {
    const reasons = skipped.map((s) => `${s.provider}: ${s.reason}`).join("; ");
    super(
      setting === "auto"
        ? `ORT_PROVIDER=auto: no execution provider could be loaded (tried ${
          AUTO_CANDIDATES.join(", then ")
        }): ${reasons}`
        : `ORT_PROVIDER=${setting} was asked for and cannot be used (an explicit provider never ` +
          `falls back; set ORT_PROVIDER=auto or cpu to run without it): ${skipped[0]?.reason}`,
      options,
    );
    this.name = "ProviderUnavailableError";
    this.setting = setting;
    this.skipped = skipped;
  }
}

/**
 * Reads `ORT_PROVIDER`: unset or empty means `auto`; case and surrounding spaces are ignored.
 *
 * @throws {RangeError} for any other value, quoting it and the allowed ones.
 */
export function parseProviderSetting(value: string | undefined): ProviderSetting {
  const normalized = (value ?? "").trim().toLowerCase();
  if (normalized === "") return "auto";
  const setting = PROVIDER_SETTINGS.find((s) => s === normalized);
  if (setting === undefined) {
    throw new RangeError(
      `ORT_PROVIDER = "${value}" is not a provider: allowed ${PROVIDER_SETTINGS.join(", ")}`,
    );
  }
  return setting;
}

/** The providers a setting allows, in the order they are tried. */
export function providerCandidates(setting: ProviderSetting): readonly Provider[] {
  return setting === "auto" ? AUTO_CANDIDATES : [setting];
}

/**
 * Tries the setting's candidates in order with `tryLoad` (which should create a real session, e.g.
 * `InferenceClient.start({ modelDir, provider })`: only a session proves that a provider's
 * libraries and device work) and returns the first that loads.
 *
 * @param tryLoad creates whatever the caller needs on `provider`; a rejection means "cannot use".
 * @throws {ProviderUnavailableError} when no allowed candidate loads; never falls back from an
 * explicit provider.
 */
export async function resolveProvider<T>(
  setting: ProviderSetting,
  tryLoad: (provider: Provider) => Promise<T>,
  options: ResolveProviderOptions = {},
): Promise<ProviderChoice<T>> {
  const skipped: SkippedProvider[] = [];
  const candidates = providerCandidates(setting);
  let lastError: unknown;
  for (const [index, provider] of candidates.entries()) {
    try {
      const value = await tryLoad(provider);
      const choice = { setting, provider, value, skipped };
      options.log?.(describeProviderChoice(choice));
      return choice;
    } catch (error) {
      lastError = error;
      const reason = error instanceof Error ? error.message : String(error);
      skipped.push({ provider, reason });
      const next = candidates[index + 1];
      if (next !== undefined) options.onSkip?.({ provider, reason }, next);
    }
  }
  throw new ProviderUnavailableError(setting, skipped, { cause: lastError });
}

/** One line for the start log: `ORT provider: cpu (ORT_PROVIDER=auto; skipped cuda: …)`. */
export function describeProviderChoice(choice: Omit<ProviderChoice<unknown>, "value">): string {
  const skipped = choice.skipped.map((s) => `; skipped ${s.provider}: ${s.reason}`).join("");
  return `ORT provider: ${choice.provider} (ORT_PROVIDER=${choice.setting}${skipped})`;
}
