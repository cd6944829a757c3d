/**
 * Cloud Run: one Knative-style Service as `gcloud run services replace FILE --region R` takes it,
 * on an instance with one NVIDIA L4.
 *
 * @module
 */

import type { IService } from "@kubernetes-models/knative/serving.knative.dev/v1/Service";
import type { KubeObject, ResolvedRenderOptions } from "../render.ts";
import { modelVolume, quantityBytes, quantityCpus, serverContainer } from "./_container.ts";

/** Cloud Run's floor for an instance with a GPU. */
const GPU_MIN_CPUS = 4;
const GPU_MIN_MEMORY = "16Gi";

/** Renders the Cloud Run service. @throws {RangeError} for resources Cloud Run refuses. */
export function renderCloudRun(options: ResolvedRenderOptions): KubeObject[] {
  const { gpu, cpu, memory } = options.limits;
  if (gpu > 1) {
    throw new RangeError(`limits.gpu = ${gpu}: a Cloud Run instance has at most one GPU`);
  }
  if (
    gpu > 0 &&
    (quantityCpus(cpu) < GPU_MIN_CPUS || quantityBytes(memory) < quantityBytes(GPU_MIN_MEMORY))
  ) {
    throw new RangeError(
      `limits.cpu = ${cpu}, limits.memory = ${memory}: Cloud Run needs at least ${GPU_MIN_CPUS} CPUs ` +
        `and ${GPU_MIN_MEMORY} with a GPU`,
    );
  }
  const model = modelVolume(options);
  // Cloud Run labels are Google Cloud labels: no "/" or "." in keys, so no app.kubernetes.io/*.
  const labels = { app: options.name, component: "server" };
  const service: IService = {
    apiVersion: "serving.knative.dev/v1",
    kind: "Service",
    metadata: {
      name: options.name,
      labels,
      annotations: { "run.googleapis.com/ingress": "all" },
    },
    spec: {
      template: {
        metadata: {
          labels,
          annotations: {
            "autoscaling.knative.dev/minScale": String(options.minInstances),
            "autoscaling.knative.dev/maxScale": String(options.maxInstances),
            // CPU always allocated (instance-based billing): Cloud Run requires it with a GPU, and
            // work outlives requests (a job whose client left, encoding, expiring old videos).
            "run.googleapis.com/cpu-throttling": "false",
            "run.googleapis.com/startup-cpu-boost": "true",
            // Cloud Storage volumes need the second-generation execution environment.
            "run.googleapis.com/execution-environment": "gen2",
            ...(gpu > 0 ? { "run.googleapis.com/gpu-zonal-redundancy-disabled": "true" } : {}),
          },
        },
        spec: {
          // Each streaming request holds its connection from admission to the last byte, queue
          // wait included: the instance takes slots + queue of them (+ a few short requests);
          // past that Cloud Run sends new requests to another instance instead of a 429.
          containerConcurrency: options.slots + options.queueSize + options.extraConnections,
          timeoutSeconds: options.requestTimeoutSeconds,
          ...(options.serviceAccount ? { serviceAccountName: options.serviceAccount } : {}),
          ...(gpu > 0
            ? { nodeSelector: { "run.googleapis.com/accelerator": options.gpuType } }
            : {}),
          containers: [
            serverContainer(options, {
              portName: "http1",
              setPort: false,
              readiness: false,
              requests: false,
              security: false,
            }, model.mounts),
          ],
          ...(model.volumes.length > 0 ? { volumes: model.volumes } : {}),
        },
      },
    },
  };
  return [service as KubeObject];
}
