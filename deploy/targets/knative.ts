/**
 * Knative Serving on a Kubernetes cluster with NVIDIA GPU nodes: the Cloud Run service's twin,
 * scheduled onto GPU nodes with a node selector and a toleration, the model on a read-only
 * PersistentVolumeClaim. The cluster must enable Knative's `kubernetes.podspec-nodeselector`,
 * `kubernetes.podspec-tolerations`, `kubernetes.podspec-persistent-volume-claim` (and, for
 * `init:NAME`, `kubernetes.podspec-init-containers`) features, and allow `timeoutSeconds` up to
 * the request timeout (`max-revision-timeout-seconds`).
 *
 * @module
 */

import type { IService } from "@kubernetes-models/knative/serving.knative.dev/v1/Service";
import type { KubeObject, ResolvedRenderOptions } from "../render.ts";
import { GPU_RESOURCE, labels, modelVolume, serverContainer } from "./_container.ts";

/** Renders the Knative Service. */
export function renderKnative(options: ResolvedRenderOptions): KubeObject[] {
  const model = modelVolume(options);
  const gpu = options.limits.gpu > 0;
  const service: IService = {
    apiVersion: "serving.knative.dev/v1",
    kind: "Service",
    metadata: {
      name: options.name,
      ...(options.namespace ? { namespace: options.namespace } : {}),
      labels: labels(options),
    },
    spec: {
      template: {
        metadata: {
          labels: labels(options),
          annotations: {
            "autoscaling.knative.dev/minScale": String(options.minInstances),
            "autoscaling.knative.dev/maxScale": String(options.maxInstances),
            // Scale out as soon as requests queue: a queued request waits a whole generation.
            "autoscaling.knative.dev/metric": "concurrency",
            "autoscaling.knative.dev/target": String(options.slots),
          },
        },
        spec: {
          // Hard limit: slots + queue streaming requests (+ a few short ones), see cloudrun.ts.
          containerConcurrency: options.slots + options.queueSize + options.extraConnections,
          timeoutSeconds: options.requestTimeoutSeconds,
          ...(options.serviceAccount ? { serviceAccountName: options.serviceAccount } : {}),
          ...(Object.keys(options.nodeSelector).length > 0
            ? { nodeSelector: { ...options.nodeSelector } }
            : {}),
          ...(gpu
            ? { tolerations: [{ key: GPU_RESOURCE, operator: "Exists", effect: "NoSchedule" }] }
            : {}),
          ...(model.initContainers.length > 0 ? { initContainers: model.initContainers } : {}),
          containers: [
            serverContainer(options, {
              portName: "http1",
              setPort: false,
              readiness: true,
              requests: true,
              security: true,
            }, model.mounts),
          ],
          ...(model.volumes.length > 0 ? { volumes: model.volumes } : {}),
        },
      },
    },
  };
  return [service as KubeObject];
}
