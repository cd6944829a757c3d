/**
 * The 2-D building blocks of the KL-f8 autoencoder (sgm `sgm/modules/diffusionmodules/model.py`):
 * `ResnetBlock`, the single-head `AttnBlock`, `Downsample` and `Upsample`. Shared by the encoder,
 * the temporal decoder (whose `VideoResBlock` starts with a 2-D `ResnetBlock`) and the 2-D image
 * decoder. Keys are relative to the block's checkpoint key, e.g. `${key}.norm1.weight`.
 *
 * Every block works on `[N, C, H, W]` (a video is a batch of frames, `(b t) c h w`).
 *
 * @module
 */

import { attention, conv2d, groupNorm, type Net, silu } from "./layers.ts";

/** sgm `Normalize(C)`: GroupNorm with 32 groups and eps 1e-6 in every spatial VAE block. */
export const VAE_NORM_EPS = 1e-6;

/**
 * sgm `ResnetBlock(in, out, temb_channels=0)`: GN → SiLU → conv3×3 → GN → SiLU → (dropout) →
 * conv3×3, plus the input, through a 1×1 `nin_shortcut` when the channel count changes.
 * diffusers `ResnetBlock2D`.
 *
 * @param x [N, inChannels, H, W]
 * @returns [N, outChannels, H, W]
 */
export function resnetBlock(
  net: Net,
  x: string,
  key: string,
  inChannels: number,
  outChannels: number,
): string {
  let h = silu(net, groupNorm(net, x, `${key}.norm1`, inChannels, VAE_NORM_EPS, 4));
  h = conv2d(net, h, `${key}.conv1`, inChannels, outChannels, 3);
  h = silu(net, groupNorm(net, h, `${key}.norm2`, outChannels, VAE_NORM_EPS, 4));
  h = conv2d(net, h, `${key}.conv2`, outChannels, outChannels, 3);
  const skip = inChannels === outChannels
    ? x
    : conv2d(net, x, `${key}.nin_shortcut`, inChannels, outChannels, 1);
  return net.g.op("Add", [skip, h]);
}

/**
 * sgm `AttnBlock` ("vanilla"): single-head self-attention over the H·W pixels with scale C^-0.5,
 * q/k/v/proj_out being 1×1 convolutions, plus the input. Run on tokens: the 1×1 kernels
 * `[C, C, 1, 1]` are the `[out, in]` matrices of a Linear, stored transposed for MatMul.
 * diffusers `Attention` in the VAE mid block.
 *
 * @param x [N, C, H, W]
 * @returns [N, C, H, W]
 */
export function attnBlock(net: Net, x: string, key: string, channels: number): string {
  const g = net.g;
  const h = groupNorm(net, x, `${key}.norm`, channels, VAE_NORM_EPS, 4);
  // [N, C, H, W] -> [N, C, H·W] -> [N, H·W, C]
  const tokens = g.op("Transpose", [g.op("Reshape", [h, g.constInt([0, 0, -1])])], {
    perm: [0, 2, 1],
  });
  const q = pointwise(net, tokens, `${key}.q`, channels);
  const k = pointwise(net, tokens, `${key}.k`, channels);
  const v = pointwise(net, tokens, `${key}.v`, channels);
  // one head of width C: MultiHeadAttention's default scale 1/√C is sgm's C^-0.5
  const attended = attention(net, q, k, v, 1, channels);
  const projected = pointwise(net, attended, `${key}.proj_out`, channels);
  // [N, H·W, C] -> [N, C, H·W] -> [N, C, H, W]
  const back = g.op("Reshape", [
    g.op("Transpose", [projected], { perm: [0, 2, 1] }),
    g.op("Shape", [x]),
  ]);
  return g.op("Add", [x, back]);
}

/**
 * A 1×1 Conv2d applied to tokens: `y = x Wᵀ + b` with the checkpoint's `[C, C, 1, 1]` kernel read
 * as its `[out, in]` matrix and stored transposed.
 *
 * @param x [N, S, C]
 * @returns [N, S, C]
 */
function pointwise(net: Net, x: string, key: string, channels: number): string {
  const weight = net.w.take(`${key}.weight`, [channels, channels, 1, 1], { transpose: true });
  const y = net.g.op("MatMul", [x, weight]);
  return net.g.op("Add", [y, net.w.take(`${key}.bias`, [channels])]);
}

/**
 * sgm `Downsample(C, with_conv=True)` of the encoder: zero-pad right and bottom by one
 * (torch `pad(x, (0, 1, 0, 1))`, asymmetric), then a 3×3 conv with stride 2 and no padding.
 *
 * @param x [N, C, H, W]
 * @returns [N, C, ⌊(H-2)/2⌋+1, ⌊(W-2)/2⌋+1] (H/2, W/2 for even sizes)
 */
export function downsample(net: Net, x: string, key: string, channels: number): string {
  return conv2d(net, x, `${key}.conv`, channels, channels, 3, { stride: 2, pads: [0, 0, 1, 1] });
}

/**
 * sgm `Upsample(C, with_conv=True)`: nearest ×2 (torch `interpolate(scale_factor=2.0,
 * mode="nearest")`, bit-exact as ONNX `Resize` nearest/asymmetric/floor), then a 3×3 conv.
 *
 * @param x [N, C, H, W]
 * @returns [N, C, 2H, 2W]
 */
export function upsample(net: Net, x: string, key: string, channels: number): string {
  const g = net.g;
  const doubled = g.op("Resize", [x, "", g.constFloat([1, 1, 2, 2])], {
    mode: "nearest",
    coordinate_transformation_mode: "asymmetric",
    nearest_mode: "floor",
  });
  return conv2d(net, doubled, `${key}.conv`, channels, channels, 3);
}
