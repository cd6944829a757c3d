/**
 * Model configs: `loadConfig` turns a YAML file (ours in `configs/`, or sgm's own structure) into
 * one validated `SvdConfig`; `parseEmbeddedConfig` checks a resolved config stored in JSON (a model
 * directory's `model.json`) by the same rules; `resolveSamplingParams` checks a run's overrides
 * against `SAMPLING_LIMITS`, the one table of allowed run-time values.
 *
 * @example
 * ```ts
 * import { loadConfig, resolveSamplingParams } from "./pipeline/config/mod.ts";
 * const config = await loadConfig("configs/svd_xt.yaml");
 * const params = resolveSamplingParams({ numSteps: 20 }, config.sampling);
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
export {
  type FieldLimit,
  type GuiderKind,
  ParameterError,
  parseSamplingOverrides,
  randomSeed,
  resolveSamplingParams,
  SAMPLING_LIMITS,
  type SamplingDefaults,
  type SamplingParams,
  SCHEDULE_LIMITS,
} from "./sampling_params.ts";
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
