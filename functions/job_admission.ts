/**
 * Admission by cost at the door: the shape a submission will be generated at — frames, the size
 * its size policy makes of the uploaded image (known once the image's size is, for every policy:
 * `native` and `contain` change it), steps, `decoding_t` — handed to the service's check of cost
 * and planned memory (`main.ts` wires `checkJobCost` of `pipeline/service/job_cost.ts`), which
 * throws for a job over a limit (422 `job_too_large`, naming the limit and the request's value).
 * One place, right after the image is validated and before anything is queued.
 *
 * @example
 * ```ts
 * import { jobShape } from "./job_admission.ts";
 * jobShape(request, { width: 4000, height: 4000 }); // { frames: 14, width: 2048, height: 2048, … } for size=native
 * ```
 *
 * @module
 */

import { planResize } from "../pipeline/image/mod.ts";
import type { JobShape } from "../pipeline/service/job_cost.ts";
import type { JobRequest } from "./jobs/job_queue.ts";

export type { JobShape };

/** Throws for a job over the service's limits (a `JobLimitError`: 422 `job_too_large`). */
export type JobAdmission = (shape: JobShape) => void;

/**
 * The shape `request` generates at for an image of `image`'s size: the size policy's plan, as
 * the job applies it (`prepareImage`).
 */
export function jobShape(
  request: JobRequest,
  image: { readonly width: number; readonly height: number },
): JobShape {
  const { params } = request;
  const plan = planResize(image, {
    targetWidth: params.width,
    targetHeight: params.height,
    policy: request.size,
  });
  return {
    frames: params.numFrames,
    width: plan.width,
    height: plan.height,
    steps: params.numSteps,
    decodingT: params.decodingT,
  };
}
