/**
 * A network's graph without its weights: the builders run over a source that only answers
 * shapes, so the full-size SVD-XT graphs are built in milliseconds and nothing is read or written
 * (writing them would stream 4.7–9 GB). The structure is what the memory plan and the CUDA
 * coverage check need: every node, every initializer's type and size.
 *
 * @module
 */

import type { UnetBatch } from "../conditioning/cfg_batch.ts";
import type { SvdConfig } from "../config/mod.ts";
import type { Precision } from "../config/network_configs.ts";
import { buildGraph } from "../convert/convert.ts";
import type { GraphName } from "../model_json/mod.ts";
import type { AttentionForm } from "../networks/layers.ts";
import { RecordingSource } from "../convert/random_checkpoint.ts";
import type { GraphBuilder } from "../onnx/graph.ts";

/** The run shape a generation gives each graph. */
export interface RunShape {
  /** Video frames (`num_frames`); the UNet sees 2× as many (the CFG batch). */
  readonly frames: number;
  /** Image width and height in pixels (multiples of 8; the UNet needs multiples of 64). */
  readonly width: number;
  readonly height: number;
  /** Frames per VAE decoder call. */
  readonly decodingT: number;
  /** The UNet's batch per call: the CFG batch of 2·frames (`cfg`, default) or one video (`split`). */
  readonly unetBatch?: UnetBatch;
}

/**
 * Builds graph `name` of `config` at `precision` (the converter's per-graph precision rule
 * applies: the VAE stays float32) with `attention` in the given form (default fused, as
 * `model.json` records it) without weights. Its initializers have no bytes to load: writing it
 * fails.
 */
export function buildGraphStructure(
  name: GraphName,
  config: SvdConfig,
  precision: Precision,
  attention: AttentionForm = "fused",
): GraphBuilder {
  return buildGraph(name, config, new RecordingSource(), precision, attention).graph;
}

/**
 * The input dims of graph `name` for one call during a generation of `run`: the image encoder and
 * the VAE encoder see one image, the UNet the CFG batch of 2·frames (one video of `frames` when
 * `unetBatch` is `split`), the decoder one chunk of `decodingT` frames (or all frames when fewer).
 */
export function graphInputDims(
  name: GraphName,
  config: SvdConfig,
  run: RunShape,
): Record<string, number[]> {
  const h = run.height / 8;
  const w = run.width / 8;
  switch (name) {
    case "image_encoder": {
      const size = config.imageEncoder.imageSize;
      return { pixel_values: [1, 3, size, size] };
    }
    case "vae_encoder":
      return { image: [1, config.vae.inChannels, run.height, run.width] };
    case "unet": {
      const videos = run.unetBatch === "split" ? 1 : 2;
      const n = videos * run.frames;
      const u = config.unet;
      return {
        x: [n, u.inChannels, h, w],
        timesteps: [n],
        context: [n, 1, u.contextDim],
        y: [n, u.admInChannels],
        image_only_indicator: [videos, run.frames],
      };
    }
    case "vae_decoder":
      return { z: [Math.min(run.decodingT, run.frames), config.vae.zChannels, h, w] };
  }
}
