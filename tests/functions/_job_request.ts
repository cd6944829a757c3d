/**
 * A valid `JobRequest` for queue and worker-loop tests, with the fields a test cares about
 * overridden.
 *
 * @module
 */

import type { JobRequest } from "../../functions/jobs/job_queue.ts";
import type { SamplingParams } from "../../pipeline/config/mod.ts";

/** The tiny model's request (4 frames, 128×64, seed 23) with `overrides` and `params` applied. */
export function jobRequest(
  params: Partial<SamplingParams> = {},
  overrides: Partial<Omit<JobRequest, "params">> = {},
): JobRequest {
  return {
    model: "tiny",
    params: {
      numFrames: 4,
      numSteps: 2,
      minGuidance: 1,
      maxGuidance: 2.5,
      guider: "linear",
      fps: 7,
      motionBucketId: 127,
      condAug: 0.02,
      decodingT: 3,
      width: 128,
      height: 64,
      seed: 23,
      ...params,
    },
    format: "mp4",
    size: "cover",
    preview: "none",
    keepRunning: false,
    watermark: true,
    ...overrides,
  };
}
