/**
 * Plain Kubernetes: a Deployment of GPU pods, a ClusterIP Service in front of them, and a
 * PodDisruptionBudget so that node drains take one pod at a time.
 *
 * @module
 */

import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IService } from "kubernetes-models/v1/Service";
import type { KubeObject, ResolvedRenderOptions } from "../render.ts";
import {
  CONTAINER_UID,
  GPU_RESOURCE,
  labels,
  modelVolume,
  rolloutStrategy,
  serverContainer,
} from "./_container.ts";

/** Time between the end of draining and SIGKILL: the process exits, logs flush. */
export const GRACE_MARGIN_SECONDS = 30;

/** Renders the Deployment, Service and PodDisruptionBudget. */
export function renderK8s(options: ResolvedRenderOptions): KubeObject[] {
  const selector = { "app.kubernetes.io/name": options.name };
  const metadata = {
    name: options.name,
    ...(options.namespace ? { namespace: options.namespace } : {}),
    labels: labels(options),
  };
  const model = modelVolume(options);
  const container = serverContainer(options, {
    portName: "http",
    setPort: true,
    readiness: true,
    requests: true,
    security: true,
  }, [...model.mounts, { name: "scratch", mountPath: "/tmp" }]);

  const deployment: IDeployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata,
    spec: {
      // No autoscaler here: minInstances replicas, at least one.
      replicas: Math.max(1, options.minInstances),
      selector: { matchLabels: selector },
      // An old pod frees its GPU before its successor starts (no spare GPU needed).
      strategy: rolloutStrategy(options, { gpu: true }),
      template: {
        metadata: { labels: labels(options) },
        spec: {
          // SIGTERM starts draining (readiness fails, running videos finish for DRAIN_SECONDS).
          terminationGracePeriodSeconds: options.drainSeconds + GRACE_MARGIN_SECONDS,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: CONTAINER_UID,
            runAsGroup: CONTAINER_UID,
            fsGroup: CONTAINER_UID,
            seccompProfile: { type: "RuntimeDefault" },
          },
          ...(options.serviceAccount ? { serviceAccountName: options.serviceAccount } : {}),
          ...(Object.keys(options.nodeSelector).length > 0
            ? { nodeSelector: { ...options.nodeSelector } }
            : {}),
          ...(options.limits.gpu > 0
            ? { tolerations: [{ key: GPU_RESOURCE, operator: "Exists", effect: "NoSchedule" }] }
            : {}),
          ...(model.initContainers.length > 0 ? { initContainers: model.initContainers } : {}),
          containers: [container],
          volumes: [...model.volumes, { name: "scratch", emptyDir: { sizeLimit: "20Gi" } }],
        },
      },
    },
  };

  const service: IService = {
    apiVersion: "v1",
    kind: "Service",
    metadata,
    spec: {
      type: "ClusterIP",
      selector,
      ports: [{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }],
    },
  };

  const budget: IPodDisruptionBudget = {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata,
    spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
  };

  return [deployment, service, budget] as KubeObject[];
}
