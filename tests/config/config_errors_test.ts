/**
 * Bad configs in our format are reported with file, line, dotted field, value and the allowed
 * values; bad YAML with its line.
 *
 * Run: deno test --allow-read tests/config/
 */

import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../pipeline/config/mod.ts";

const TINY_YAML = new URL("../../configs/tiny.yaml", import.meta.url);
const FILE = "configs/tiny.yaml";

/** configs/tiny.yaml with the first `from` replaced by `to`, and the 1-based line where `to` starts. */
function edited(from: string, to: string): { text: string; line: number } {
  const original = Deno.readTextFileSync(TINY_YAML);
  const at = original.indexOf(from);
  if (at < 0) throw new Error(`configs/tiny.yaml has no ${JSON.stringify(from)}`);
  const text = original.slice(0, at) + to + original.slice(at + from.length);
  return { text, line: original.slice(0, at).split("\n").length };
}

/** Asserts that `text` is rejected at `line`, naming `field`, with `message` in the text. */
function assertRejected(
  text: string,
  expected: { line: number; field: string | null; message: RegExp },
): ConfigError {
  let error: unknown;
  try {
    parseConfig(text, FILE);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
  assert.equal(error.file, FILE);
  assert.equal(error.line, expected.line, error.message);
  assert.equal(error.field, expected.field, error.message);
  assert.ok(error.message.startsWith(`${FILE}:${expected.line}: `), error.message);
  assert.match(error.message, expected.message);
  return error;
}

const VALUE_CASES: {
  name: string;
  from: string;
  to: string;
  field: string;
  message: RegExp;
  /** Lines from the start of `to` to the bad value. */
  offset?: number;
}[] = [
  {
    name: "an out-of-range value",
    from: "  steps: 3",
    to: "  steps: 0",
    field: "sampling.steps",
    message: /sampling\.steps = 0 is out of range: allowed 1\.\.200$/,
  },
  {
    name: "a value of the wrong type",
    from: "  motion_bucket_id: 127",
    to: "  motion_bucket_id: lots",
    field: "sampling.motion_bucket_id",
    message: /sampling\.motion_bucket_id = "lots" is not a number: allowed 0\.\.1023$/,
  },
  {
    name: "a fractional integer",
    from: "  num_frames: 4",
    to: "  num_frames: 4.5",
    field: "sampling.num_frames",
    message: /= 4\.5 is not an integer: allowed 1\.\.64$/,
  },
  {
    name: "an unknown key",
    from: "    num_head_channels: 16",
    to: "    num_heads: 16",
    field: "model.unet.num_heads",
    message: /model\.unet\.num_heads is not a known key: allowed in_channels, .*num_head_channels/,
  },
  {
    name: "a width that is not a multiple of 64",
    from: "  width: 128",
    to: "  width: 100",
    field: "sampling.width",
    message: /sampling\.width = 100 is not a multiple of 64: allowed 64\.\.2048, a multiple of 64$/,
  },
  {
    name: "an image-encoder embed_dim that is not the UNet's context_dim",
    from: "    embed_dim: 64",
    to: "    embed_dim: 32",
    field: "model.image_encoder.embed_dim",
    message: /= 32 differs from model\.unet\.context_dim .*: allowed 64$/,
  },
  {
    name: "a list entry out of range",
    from: "    channel_mult: [1, 1, 1, 2]",
    to: "    channel_mult:\n      - 1\n      - 0\n      - 1\n      - 2",
    field: "model.unet.channel_mult[1]",
    offset: 2,
    message: /channel_mult\[1\] = 0 is out of range: allowed 1\.\.16$/,
  },
  {
    name: "head channels that do not divide a level width",
    from: "    num_head_channels: 16",
    to: "    num_head_channels: 24",
    field: "model.unet.num_head_channels",
    message:
      /does not divide every level width \(32, 32, 32, 64\): allowed a divisor of 32: 1, 2, 4, 8, 16, 32$/,
  },
  {
    name: "a UNet width GroupNorm cannot split",
    from: "    model_channels: 32",
    to: "    model_channels: 48",
    field: "model.unet.model_channels",
    message: /= 48 is not a multiple of 32: allowed 32\.\.4096, a multiple of 32 \(GroupNorm/,
  },
  {
    name: "a CLIP width the heads do not divide",
    from: "    head_width: 32",
    to: "    head_width: 48",
    field: "model.image_encoder.head_width",
    message: /does not divide model\.image_encoder\.width \(64\): allowed a divisor of 64/,
  },
  {
    name: "adm_in_channels that is not three equal embedding widths",
    from: "    adm_in_channels: 768",
    to: "    adm_in_channels: 512",
    field: "model.unet.adm_in_channels",
    message: /= 512 is not a multiple of 3: allowed 3\.\.12288, a multiple of 3 \(3 × outdim/,
  },
  {
    name: "min_guidance above max_guidance",
    from: "  min_guidance: 1.0",
    to: "  min_guidance: 3.0",
    field: "sampling.min_guidance",
    message: /= 3 is above sampling\.max_guidance \(2\.5\): allowed 0\.\.2\.5$/,
  },
  {
    name: "decoding_t of 0",
    from: "  decoding_t: 3",
    to: "  decoding_t: 0",
    field: "sampling.decoding_t",
    message: /allowed 1\.\.64$/,
  },
  {
    name: "an unknown decoder",
    from: "    decoder: temporal",
    to: "    decoder: video",
    field: "model.vae.decoder",
    message: /= "video" is not an allowed value: allowed temporal \| image$/,
  },
];

for (const c of VALUE_CASES) {
  Deno.test({
    name: `a config with ${c.name} is rejected at its line, naming field and allowed values`,
    permissions: { read: true },
    fn() {
      const { text, line } = edited(c.from, c.to);
      assertRejected(text, { line: line + (c.offset ?? 0), field: c.field, message: c.message });
    },
  });
}

Deno.test({
  name: "a section that is not a mapping is rejected, listing its keys",
  permissions: "none",
  fn() {
    assertRejected("name: tiny\ncheckpoint: tiny\n\nmodel: [1, 2]\n", {
      line: 4,
      field: "model",
      message:
        /model = \[1,2\] is not a mapping: allowed a mapping with keys scale_factor, unet, vae, image_encoder$/,
    });
  },
});

Deno.test({
  name: "a decoding_t larger than num_frames is allowed (the last chunk is shorter)",
  permissions: { read: true },
  fn() {
    const { text } = edited("  decoding_t: 3", "  decoding_t: 14");
    assert.equal(parseConfig(text, FILE).sampling.decodingT, 14);
  },
});

Deno.test({
  name: "a missing required field is reported at its section with the allowed range",
  permissions: { read: true },
  fn() {
    const original = Deno.readTextFileSync(TINY_YAML).split("\n");
    const text = original.filter((line) => !line.startsWith("    context_dim:")).join("\n");
    const unetLine = original.findIndex((line) => line.startsWith("  unet:")) + 1;
    assertRejected(text, {
      line: unetLine,
      field: "model.unet.context_dim",
      message: /model\.unet\.context_dim is missing: allowed 1\.\.8192$/,
    });
  },
});

Deno.test({
  name: "optional sampling fields take the SVD defaults",
  permissions: "none",
  fn() {
    const text = [
      "name: mini",
      "checkpoint: svd",
      "model:",
      "  unet: {in_channels: 8, out_channels: 4, model_channels: 320, channel_mult: [1, 2, 4, 4],",
      "         num_res_blocks: 2, attention_resolutions: [4, 2, 1], num_head_channels: 64,",
      "         context_dim: 1024, adm_in_channels: 768}",
      "  vae: {ch: 128, ch_mult: [1, 2, 4, 4], num_res_blocks: 2, z_channels: 4, embed_dim: 4,",
      "        decoder: temporal}",
      "  image_encoder: {image_size: 224, patch_size: 14, width: 1280, layers: 32, head_width: 80,",
      "                  mlp_ratio: 4, embed_dim: 1024}",
    ].join("\n");
    const config = parseConfig(text, "mini.yaml");
    assert.equal(config.scaleFactor, 0.18215);
    assert.deepEqual(config.unet.videoKernelSize, [3, 1, 1]);
    assert.equal(config.unet.transformerDepth, 1);
    assert.equal(config.vae.inChannels, 3);
    assert.equal(config.sampling.numFrames, 14);
    assert.equal(config.sampling.numSteps, 25);
    assert.equal(config.sampling.fps, 7);
    assert.equal(config.sampling.sigmaMax, 700);
    assert.equal(config.sampling.seed, null);
  },
});

Deno.test({
  name: "bad YAML syntax is a ConfigError with the parser's line and no field",
  permissions: "none",
  fn() {
    const text = "name: tiny\ncheckpoint: tiny\nmodel:\n  scale_factor: 0.18215\n  unet: a: b\n";
    const error = assertRejected(text, { line: 5, field: null, message: /invalid YAML: / });
    assert.ok(error.cause instanceof Error, "keeps the parser's error as cause");
  },
});

Deno.test({
  name: "a duplicate key is a YAML error at the second occurrence",
  permissions: "none",
  fn() {
    const text = "name: tiny\ncheckpoint: tiny\nname: again\n";
    assertRejected(text, {
      line: 3,
      field: null,
      message: /invalid YAML: Map keys must be unique/,
    });
  },
});

Deno.test({
  name: "a tab used as indentation is a YAML error at its line",
  permissions: "none",
  fn() {
    const text = "name: tiny\ncheckpoint: tiny\nmodel:\n\tscale_factor: 0.18215\n";
    assertRejected(text, { line: 4, field: null, message: /invalid YAML: / });
  },
});
