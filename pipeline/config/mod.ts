/**
 * Model configs: `loadConfig` turns a YAML file (ours in `configs/`, or sgm's own structure) into
 * one validated `SvdConfig`; `parseEmbeddedConfig` checks a resolved config stored in JSON (a model
 * directory's `model.json`) by the same rules. Its `sampling` block holds the defaults of the
 * request's sampling fields, which are declared (with their ranges) in `pipeline/request/`.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./pipeline/config/mod.ts";
 * const config = await loadConfig("configs/svd_xt.yaml");
 * config.sampling.numSteps; // 30
 * ```
 *
 * @module
 */

export { ConfigError, type ConfigErrorDetails } from "./config_error.ts";
export { loadConfig, parseConfig, parseEmbeddedConfig } from "./load_config.ts";
export {
  checkLimit,
  type ChoiceLimit,
  describeLimit,
  type IntegerLimit,
  type Limit,
  type NumberLimit,
  showValue,
} from "./limits.ts";
export {
  FULL,
  type ImageEncoderConfig,
  type Precision,
  TINY,
  type VaeConfig,
  type VideoUnetConfig,
} from "./network_configs.ts";
export { type FieldLimit, type SamplingDefaults, SCHEDULE_LIMITS } from "./sampling_params.ts";
// The request's types, for the pipeline's users of a config's sampling block.
export type { GuiderKind, SamplingParams } from "../request/fields.ts";
export type {
  DecoderKind,
  RawImageEncoderConfig,
  RawSamplingConfig,
  RawSvdConfig,
  RawUnetConfig,
  RawVaeConfig,
  SvdConfig,
} from "./svd_config.ts";
export { formatPath, type YamlPath, YamlSource } from "./yaml_source.ts";
