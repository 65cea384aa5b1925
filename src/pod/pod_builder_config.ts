/**
 * The settings of the pod builder: the transporter, defaults for resources, scheduling, and the
 * table of supported `backend_parameters`.
 *
 * @module
 */

/** A Kubernetes toleration (the shape of `Toleration`). */
export interface Toleration {
  /** Taint key; empty with `Exists` matches every taint. */
  key?: string;
  /** `Exists` or `Equal` (the default). */
  operator?: string;
  /** Taint value, for `Equal`. */
  value?: string;
  /** `NoSchedule`, `PreferNoSchedule` or `NoExecute`; empty matches all. */
  effect?: string;
  /** For `NoExecute`: how long the pod stays after the taint appears. */
  tolerationSeconds?: number;
}

/** Container resources (the shape of `ResourceRequirements`), as Kubernetes quantities. */
export interface ResourceRequirements {
  /** Guaranteed amounts (`cpu`, `memory`, `ephemeral-storage`). */
  requests?: Record<string, string>;
  /** Maximum amounts. */
  limits?: Record<string, string>;
}

/**
 * Where the value of one supported `backend_parameters` key goes in the pod:
 * - `nodeSelector`: `spec.nodeSelector[key] = value` (value must be a valid label value);
 * - `label`: pod label `key = value` (valid label value);
 * - `annotation`: pod annotation `key = value` (any string);
 * - `priorityClassName`, `runtimeClassName`, `serviceAccountName`: that pod field (value must be
 *   a DNS-1123 subdomain). Give `serviceAccountName` an `allowed` list: an account is a set of
 *   permissions.
 *
 * With `allowed`, any other value is refused.
 */
export type BackendParameterTarget =
  | { kind: "nodeSelector" | "label" | "annotation"; key: string; allowed?: readonly string[] }
  | {
    kind: "priorityClassName" | "runtimeClassName" | "serviceAccountName";
    allowed?: readonly string[];
  };

/**
 * The `backend_parameters` keys supported out of the box:
 * - `machine_type`: node selector `node.kubernetes.io/instance-type` (for example
 *   `n2-highmem-8`, `m6i.2xlarge`).
 */
export const DEFAULT_BACKEND_PARAMETERS: Readonly<Record<string, BackendParameterTarget>> = Object
  .freeze({
    machine_type: { kind: "nodeSelector", key: "node.kubernetes.io/instance-type" },
  });

/** How preemptible (spot) tasks are placed. */
export interface PreemptibleScheduling {
  /** Node selector added to preemptible tasks. @default {} */
  nodeSelector?: Record<string, string>;
  /** Tolerations added to preemptible tasks. @default [] */
  tolerations?: Toleration[];
}

/** Settings of {@linkcode buildTaskPod}; every field is optional. */
export interface PodBuilderConfig {
  /** Image of the transporter (`inputs` and `outputs` containers). @default "planetary-transporter:latest" */
  transporterImage?: string;
  /** Command of the transporter, before its `inputs`/`outputs` arguments. @default ["/usr/local/bin/planetary-transporter"] */
  transporterCommand?: string[];
  /** Pull policy of the transporter image. @default "IfNotPresent" */
  transporterImagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** Resources of each transporter container. @default requests cpu 100m, memory 128Mi; limit memory 1Gi */
  transporterResources?: ResourceRequirements;
  /**
   * Plain (non-secret) environment of the transporter containers, for example
   * `PLANETARY_FILE_ALLOW_LIST`. Credentials belong in {@linkcode PodBuilderConfig.storageSecrets}.
   * @default {}
   */
  transporterEnv?: Record<string, string>;
  /** Names of Secrets whose keys become the transporter's environment (storage credentials). @default [] */
  storageSecrets?: string[];
  /** CPU cores of a task that gives none. @default 1 */
  defaultCpuCores?: number;
  /** Memory in GB (10^9 bytes) of a task that gives none. @default 2 */
  defaultRamGb?: number;
  /** Scratch disk in GB of a task that gives none; 0 asks for nothing. @default 0 */
  defaultDiskGb?: number;
  /** Whether the CPU request is also a limit. @default true */
  cpuLimit?: boolean;
  /** Whether the memory request is also a limit. @default true */
  memoryLimit?: boolean;
  /** Bytes of each executor's stdout/stderr tail the transporter reports. @default 65536 */
  tailBytes?: number;
  /** Namespace of the pod and ConfigMap (unset: the backend's). @default undefined */
  namespace?: string;
  /** Service account of task pods (its token is never mounted). @default undefined (the namespace's default) */
  serviceAccountName?: string;
  /** Names of image pull Secrets. @default [] */
  imagePullSecrets?: string[];
  /** Seconds after which a task pod is stopped (`activeDeadlineSeconds`). @default undefined (no limit) */
  activeDeadlineSeconds?: number;
  /**
   * Seconds the kubelet waits after SIGTERM before it kills a task pod's containers
   * (`terminationGracePeriodSeconds`), on cancel, deadline and node drain. Short, because an
   * executor whose PID 1 is a shell ignores SIGTERM and a cancel would otherwise wait the
   * Kubernetes default of 30 s; the transporter of outputs needs no grace (a stopped pod
   * uploads nothing).
   * @default 5
   */
  terminationGracePeriodSeconds?: number;
  /** Priority class of task pods. @default undefined */
  priorityClassName?: string;
  /** Runtime class of task pods (for example `gvisor`). @default undefined */
  runtimeClassName?: string;
  /** Node selector of every task pod. @default {} */
  nodeSelector?: Record<string, string>;
  /** Tolerations of every task pod. @default [] */
  tolerations?: Toleration[];
  /** Placement of preemptible tasks. @default {} (no change) */
  preemptible?: PreemptibleScheduling;
  /** Node label holding the zone, for TES `zones`. @default "topology.kubernetes.io/zone" */
  zoneLabel?: string;
  /** Supported `backend_parameters` keys. @default {@linkcode DEFAULT_BACKEND_PARAMETERS} */
  backendParameters?: Readonly<Record<string, BackendParameterTarget>>;
  /**
   * Pod `fsGroup`: the data volume belongs to this group and every container gets it as a
   * supplementary group, so executors running as any user can share files; `null` omits it.
   * @default 65532
   */
  fsGroup?: number | null;
  /** Extra labels on every task object. @default {} */
  labels?: Record<string, string>;
  /** Largest transfer spec (ConfigMap data), in UTF-8 bytes. @default 1000000 */
  maxSpecBytes?: number;
}

/** {@linkcode PodBuilderConfig} with every default applied. */
export type ResolvedPodBuilderConfig =
  & Required<
    Omit<
      PodBuilderConfig,
      | "namespace"
      | "serviceAccountName"
      | "activeDeadlineSeconds"
      | "priorityClassName"
      | "runtimeClassName"
    >
  >
  & Pick<
    PodBuilderConfig,
    | "namespace"
    | "serviceAccountName"
    | "activeDeadlineSeconds"
    | "priorityClassName"
    | "runtimeClassName"
  >;

/** User id of the transporter containers (the distroless `nonroot` user). */
export const TRANSPORTER_UID = 65532;

/**
 * Applies the defaults of {@linkcode PodBuilderConfig}.
 *
 * @param config Partial settings.
 * @returns Complete settings.
 */
export function resolvePodBuilderConfig(config: PodBuilderConfig = {}): ResolvedPodBuilderConfig {
  const defaults: ResolvedPodBuilderConfig = {
    transporterImage: "planetary-transporter:latest",
    transporterCommand: ["/usr/local/bin/planetary-transporter"],
    transporterImagePullPolicy: "IfNotPresent",
    transporterResources: {
      requests: { cpu: "100m", memory: "128Mi" },
      limits: { memory: "1Gi" },
    },
    transporterEnv: {},
    storageSecrets: [],
    defaultCpuCores: 1,
    defaultRamGb: 2,
    defaultDiskGb: 0,
    cpuLimit: true,
    memoryLimit: true,
    tailBytes: 65536,
    imagePullSecrets: [],
    nodeSelector: {},
    tolerations: [],
    preemptible: {},
    zoneLabel: "topology.kubernetes.io/zone",
    backendParameters: DEFAULT_BACKEND_PARAMETERS,
    fsGroup: TRANSPORTER_UID,
    labels: {},
    maxSpecBytes: 1_000_000,
    terminationGracePeriodSeconds: 5,
  };
  const resolved: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(config)) {
    if (value !== undefined) resolved[key] = value;
  }
  return resolved as ResolvedPodBuilderConfig;
}

/**
 * The `backend_parameters` keys a configuration supports (for service-info and validation).
 *
 * @param config The pod builder settings.
 * @returns The keys, sorted.
 */
export function supportedBackendParameters(config: PodBuilderConfig = {}): string[] {
  return Object.keys(config.backendParameters ?? DEFAULT_BACKEND_PARAMETERS).sort();
}
