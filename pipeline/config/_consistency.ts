/**
 * Cross-field checks of a resolved config: the constraints that no single field's range can
 * express, each reported at the field to change.
 *
 * @module
 */

import type { FieldReader } from "./_field_reader.ts";
import { guidanceOrder } from "../request/parse_request.ts";
import type { SvdConfig } from "./svd_config.ts";

/**
 * @throws {ConfigError} at the offending field when the networks do not fit together or the
 * sampling defaults contradict each other.
 */
export function checkConsistency(config: SvdConfig, reader: FieldReader): void {
  const { unet, vae, imageEncoder, sampling } = config;
  const name = (key: string) => reader.locate(key).field;

  // Latents: the UNet sees [noisy latent | concat latent] and predicts one latent.
  if (unet.inChannels !== 2 * unet.outChannels) {
    reader.fail(
      "model.unet.in_channels",
      unet.inChannels,
      `is not twice ${name("model.unet.out_channels")} (noisy latent + conditioning latent)`,
      String(2 * unet.outChannels),
    );
  }
  if (vae.decoder === "temporal" && vae.embedDim !== vae.zChannels) {
    // The temporal first stage has no quant_conv: its latent is z_channels wide.
    reader.fail(
      "model.vae.embed_dim",
      vae.embedDim,
      `differs from ${name("model.vae.z_channels")} (a temporal decoder has no quant_conv)`,
      String(vae.zChannels),
    );
  }
  if (unet.outChannels !== vae.embedDim) {
    reader.fail(
      "model.unet.out_channels",
      unet.outChannels,
      `differs from the VAE's latent width ${name("model.vae.embed_dim")}`,
      String(vae.embedDim),
    );
  }

  // UNet levels: attention heads split every level's width.
  const widths = unet.channelMult.map((m) => unet.modelChannels * m);
  if (widths.some((w) => w % unet.numHeadChannels !== 0)) {
    const common = widths.reduce(gcd);
    reader.fail(
      "model.unet.num_head_channels",
      unet.numHeadChannels,
      `does not divide every level width (${widths.join(", ")})`,
      `a divisor of ${common}: ${divisors(common).join(", ")}`,
    );
  }
  const deepest = 2 ** (unet.channelMult.length - 1);
  unet.attentionResolutions.forEach((factor, i) => {
    if (factor > deepest) {
      reader.failAt(
        [...reader.pathOf("model.unet.attention_resolutions"), i],
        factor,
        `is deeper than the ${unet.channelMult.length} levels of channel_mult`,
        divisors(deepest).filter(isPowerOfTwo).join(" | "),
      );
    }
  });

  // Image encoder: heads split the width, patches tile the image, the projection feeds the UNet.
  if (imageEncoder.width % imageEncoder.headWidth !== 0) {
    reader.fail(
      "model.image_encoder.head_width",
      imageEncoder.headWidth,
      `does not divide ${name("model.image_encoder.width")} (${imageEncoder.width})`,
      `a divisor of ${imageEncoder.width}: ${divisors(imageEncoder.width).join(", ")}`,
    );
  }
  if (imageEncoder.imageSize % imageEncoder.patchSize !== 0) {
    reader.fail(
      "model.image_encoder.patch_size",
      imageEncoder.patchSize,
      `does not divide ${name("model.image_encoder.image_size")} (${imageEncoder.imageSize})`,
      `a divisor of ${imageEncoder.imageSize}: ${divisors(imageEncoder.imageSize).join(", ")}`,
    );
  }
  if (!Number.isInteger(imageEncoder.width * imageEncoder.mlpRatio)) {
    reader.fail(
      "model.image_encoder.mlp_ratio",
      imageEncoder.mlpRatio,
      `gives a fractional MLP width (${imageEncoder.width * imageEncoder.mlpRatio})`,
      `a multiple of 1/${imageEncoder.width}`,
    );
  }
  if (imageEncoder.embedDim !== unet.contextDim) {
    reader.fail(
      "model.image_encoder.embed_dim",
      imageEncoder.embedDim,
      `differs from ${name("model.unet.context_dim")} (the CLIP embedding is the UNet's context)`,
      String(unet.contextDim),
    );
  }

  // Sampling: scales and noise levels in order. Blame the field that was written.
  const guidance = guidanceOrder(
    sampling.minGuidance,
    sampling.maxGuidance,
    reader.raw.sampling?.min_guidance !== undefined,
    (key) => name(`sampling.${key}`),
  );
  if (guidance) {
    reader.fail(`sampling.${guidance.field}`, guidance.value, guidance.problem, guidance.allowed);
  }
  if (sampling.sigmaMin >= sampling.sigmaMax) {
    reader.fail(
      "sampling.sigma_min",
      sampling.sigmaMin,
      `is not below ${name("sampling.sigma_max")} (${sampling.sigmaMax})`,
      `greater than 0, less than ${sampling.sigmaMax}`,
    );
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

function isPowerOfTwo(n: number): boolean {
  return (n & (n - 1)) === 0;
}
