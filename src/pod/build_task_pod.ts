/**
 * Turns a TES task into its pod and ConfigMap, following `layout.ts`. Pure: no I/O.
 *
 * @module
 */
import type {
  V1Affinity,
  V1ConfigMap,
  V1Container,
  V1EnvVar,
  V1Pod,
  V1ResourceRequirements,
  V1SecurityContext,
  V1Toleration,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node";
import type { TesExecutor, TesTask } from "../tes/model.ts";
import type { TaskPodObjects } from "../orchestrator/backend.ts";
import {
  executorContainerName,
  INPUTS_CONTAINER,
  LABEL_MANAGED_BY,
  LABEL_TASK_ID,
  MANAGED_BY_VALUE,
  OUTPUTS_CONTAINER,
  SPEC_DIR,
  SPEC_FILE,
  STATE_DIR,
  stateFile,
  type TransferInput,
  type TransferOutput,
  type TransferSpec,
} from "./layout.ts";
import {
  ENV_EXECUTOR_INDEX,
  ENV_IGNORE_ERROR,
  ENV_STDERR,
  ENV_STDIN,
  ENV_STDOUT,
  ENV_WORKDIR,
  WRAPPER_ARGV0,
  WRAPPER_ENV_NAMES,
  WRAPPER_SCRIPT,
} from "./executor_wrapper.ts";
import { escapeKubernetesReferences } from "./kubernetes_expansion.ts";
import {
  ANNOTATION_TASK_ID,
  ANNOTATION_TASK_NAME,
  isLabelValue,
  labelValue,
  podName,
} from "./pod_name.ts";
import { PodBuildError } from "./pod_build_error.ts";
import {
  type BackendParameterTarget,
  type PodBuilderConfig,
  type ResolvedPodBuilderConfig,
  resolvePodBuilderConfig,
  TRANSPORTER_UID,
} from "./pod_builder_config.ts";
import {
  DATA_DIR,
  type DataMount,
  dataPath,
  isWithin,
  normalizePath,
  taskMounts,
} from "./task_mounts.ts";

/** Volume names of a task pod. */
export const VOLUME_NAMES: Readonly<{ state: "state"; spec: "spec"; data: "data"; tmp: "tmp" }> =
  Object.freeze({ state: "state", spec: "spec", data: "data", tmp: "tmp" });

/** Paths no task may use: the pod's own directories and the kernel's. */
export const RESERVED_PATHS: readonly string[] = Object.freeze([
  "/planetary",
  "/proc",
  "/sys",
  "/dev",
]);

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Path of the transfer spec in every container. */
export const SPEC_PATH = `${SPEC_DIR}/${SPEC_FILE}`;

const esc = escapeKubernetesReferences;

function cpuQuantity(cores: number): string {
  return Number.isInteger(cores) ? String(cores) : `${Math.round(cores * 1000)}m`;
}

/** GB as TES means it: 10^9 bytes, written as a plain byte count. */
function gbQuantity(gb: number): string {
  return String(Math.round(gb * 1e9));
}

function checkPath(path: string, what: string): void {
  if (!path.startsWith("/")) {
    throw new PodBuildError(
      "INVALID_PATH",
      `Cannot build the pod: ${what} "${path}" is not absolute`,
    );
  }
  const normal = normalizePath(path);
  for (const reserved of RESERVED_PATHS) {
    if (isWithin(normal, reserved)) {
      throw new PodBuildError(
        "RESERVED_PATH",
        `Cannot build the pod: ${what} "${path}" is inside the reserved directory ${reserved}`,
      );
    }
  }
}

function checkPaths(task: TesTask): void {
  for (const volume of task.volumes ?? []) checkPath(volume, "volume");
  for (const input of task.inputs ?? []) checkPath(input.path, "input path");
  for (const output of task.outputs ?? []) checkPath(output.path, "output path");
  task.executors.forEach((executor, i) => {
    for (const key of ["stdin", "stdout", "stderr", "workdir"] as const) {
      const path = executor[key];
      if (path !== undefined) checkPath(path, `executor ${i} ${key}`);
    }
  });
}

interface PodExtras {
  nodeSelector: Record<string, string>;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  fields: { priorityClassName?: string; runtimeClassName?: string; serviceAccountName?: string };
}

function applyBackendParameters(
  parameters: Record<string, string>,
  table: Readonly<Record<string, BackendParameterTarget>>,
  extras: PodExtras,
): void {
  for (const [key, value] of Object.entries(parameters)) {
    if (!Object.hasOwn(table, key)) continue; // unsupported keys were dropped or refused by the API
    const target = table[key]!;
    const refuse = (why: string): never => {
      throw new PodBuildError(
        "INVALID_BACKEND_PARAMETER",
        `Cannot build the pod: backend parameter "${key}" has value "${value}", ${why}`,
      );
    };
    if (target.allowed && !target.allowed.includes(value)) {
      refuse(`expected one of ${target.allowed.join(", ")}`);
    }
    switch (target.kind) {
      case "nodeSelector":
      case "label":
        if (!isLabelValue(value)) refuse("which is not a valid Kubernetes label value");
        (target.kind === "label" ? extras.labels : extras.nodeSelector)[target.key] = value;
        break;
      case "annotation":
        extras.annotations[target.key] = value;
        break;
      default:
        if (value.length > 253 || !DNS_SUBDOMAIN.test(value)) {
          refuse("which is not a valid Kubernetes object name");
        }
        extras.fields[target.kind] = value;
    }
  }
}

function executorResources(
  task: TesTask,
  config: ResolvedPodBuilderConfig,
): V1ResourceRequirements {
  const cpu = cpuQuantity(task.resources?.cpu_cores ?? config.defaultCpuCores);
  const memory = gbQuantity(task.resources?.ram_gb ?? config.defaultRamGb);
  const disk = task.resources?.disk_gb ?? config.defaultDiskGb;
  const requests: Record<string, string> = { cpu, memory };
  const limits: Record<string, string> = {};
  if (config.cpuLimit) limits.cpu = cpu;
  if (config.memoryLimit) limits.memory = memory;
  if (disk > 0) requests["ephemeral-storage"] = gbQuantity(disk);
  return Object.keys(limits).length ? { requests, limits } : { requests };
}

const TRANSPORTER_SECURITY: V1SecurityContext = Object.freeze({
  runAsNonRoot: true,
  runAsUser: TRANSPORTER_UID,
  runAsGroup: TRANSPORTER_UID,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
});

const EXECUTOR_SECURITY: V1SecurityContext = Object.freeze({
  allowPrivilegeEscalation: false,
  seccompProfile: { type: "RuntimeDefault" },
});

function executorEnv(executor: TesExecutor, index: number): V1EnvVar[] {
  const env: V1EnvVar[] = [];
  for (const [name, value] of Object.entries(executor.env ?? {})) {
    if (!WRAPPER_ENV_NAMES.includes(name)) env.push({ name, value: esc(value) });
  }
  const control: [string, string | undefined][] = [
    [ENV_EXECUTOR_INDEX, String(index)],
    [ENV_IGNORE_ERROR, executor.ignore_error ? "true" : "false"],
    [ENV_WORKDIR, executor.workdir],
    [ENV_STDIN, executor.stdin],
    [ENV_STDOUT, executor.stdout],
    [ENV_STDERR, executor.stderr],
  ];
  for (const [name, value] of control) {
    if (value !== undefined) env.push({ name, value: esc(value) });
  }
  return env;
}

function transferSpec(
  task: TesTask & { id: string },
  fileMounts: DataMount[],
  tailBytes: number,
): TransferSpec {
  const fileMounted = new Set(fileMounts.map((m) => m.mountPath));
  // The inputs container does not mount file mounts: it writes them into the data volume.
  const where = (path: string): string => {
    const normal = normalizePath(path);
    return fileMounted.has(normal) ? dataPath(normal) : path;
  };
  const inputs: TransferInput[] = (task.inputs ?? []).map((input) => {
    const type = input.type ?? "FILE";
    const path = type === "FILE" ? where(input.path) : input.path;
    if (input.content !== undefined) return { path, type, content: input.content };
    return input.url !== undefined ? { url: input.url, path, type } : { path, type, content: "" };
  });
  // A file mount must exist before the first executor starts (or the kubelet makes it a
  // directory): the transporter creates an empty file for each one no input fills.
  const filled = new Set(inputs.map((input) => input.path));
  for (const { mountPath } of fileMounts) {
    const path = dataPath(mountPath);
    if (!filled.has(path)) inputs.push({ path, type: "FILE", content: "" });
  }
  const outputs: TransferOutput[] = (task.outputs ?? []).map((output) => ({
    url: output.url,
    path: output.path,
    ...(output.path_prefix !== undefined ? { path_prefix: output.path_prefix } : {}),
    type: output.type ?? "FILE",
  }));
  return {
    version: 1,
    taskId: task.id,
    inputs,
    outputs,
    executors: task.executors.map((executor, i) => ({
      stdout: executor.stdout ?? stateFile(i, "stdout"),
      stderr: executor.stderr ?? stateFile(i, "stderr"),
    })),
    tailBytes,
  };
}

/**
 * Builds the pod and ConfigMap of a task, following `layout.ts`:
 * - init container `inputs` (the transporter: `<transporterCommand> inputs <spec>`);
 * - one init container `executor-<i>` per executor: the user's image running
 *   `/bin/sh -c WRAPPER_SCRIPT planetary-executor <argv…>`; the argv are ARGUMENTS of the
 *   script, the workdir, stdio paths, index and `ignore_error` reach it as `PLANETARY_*` env,
 *   the user's env as container env (a user variable named like a `PLANETARY_*` control
 *   variable is dropped);
 * - main container `outputs` (the transporter: `<transporterCommand> outputs <spec>`).
 *
 * Every `$` of a user value is doubled so that Kubernetes' `$(VAR)` expansion gives it back
 * literally. Memory: TES GB are 10^9 bytes, written as a plain byte count (`ram_gb: 2` →
 * `"2000000000"`); `disk_gb` becomes the executors' `ephemeral-storage` request and the data
 * volume's `sizeLimit`. CPU, memory and disk go to the executor containers (init containers run
 * one at a time, so the pod asks for the largest, not the sum); transporter containers get
 * `config.transporterResources`.
 *
 * The data volume (an emptyDir) is mounted at every directory the task uses (see
 * `taskMounts()`), with the same mounts in every container except that file mounts are not
 * mounted in `inputs`, which writes those files into the volume at `DATA_DIR` instead.
 *
 * @param task The task, with its id.
 * @param config Settings; every field has a default.
 * @returns The pod and its ConfigMap (named alike: `podName(task.id)`).
 * @throws {PodBuildError} When a path is relative or reserved, a backend parameter value is
 * refused, or the transfer spec is larger than `config.maxSpecBytes`.
 * @example
 * ```ts
 * import { buildTaskPod } from "./build_task_pod.ts";
 * const { pod, configMap } = buildTaskPod(
 *   { id: "abc", executors: [{ image: "alpine", command: ["echo", "hi"] }] },
 *   { transporterImage: "planetary-transporter:1" },
 * );
 * pod.metadata?.name; // "task-abc"
 * configMap.metadata?.name; // "task-abc"
 * ```
 */
export function buildTaskPod(
  task: TesTask & { id: string },
  config: PodBuilderConfig = {},
): TaskPodObjects {
  const resolved = resolvePodBuilderConfig(config);
  checkPaths(task);
  const name = podName(task.id);
  const mounts = taskMounts(task);

  const spec = transferSpec(task, mounts.files, resolved.tailBytes);
  const specText = JSON.stringify(spec);
  const specBytes = new TextEncoder().encode(specText).length;
  if (specBytes > resolved.maxSpecBytes) {
    throw new PodBuildError(
      "SPEC_TOO_LARGE",
      `Cannot build the pod: the transfer spec is ${specBytes} bytes (inline input content ` +
        `included), more than the limit of ${resolved.maxSpecBytes}`,
    );
  }

  const extras: PodExtras = { nodeSelector: {}, labels: {}, annotations: {}, fields: {} };
  applyBackendParameters(
    task.resources?.backend_parameters ?? {},
    resolved.backendParameters,
    extras,
  );

  const labels: Record<string, string> = {
    ...resolved.labels,
    ...extras.labels,
    [LABEL_TASK_ID]: labelValue(task.id),
    [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
  };
  const annotations: Record<string, string> = {
    ...extras.annotations,
    [ANNOTATION_TASK_ID]: task.id,
    ...(task.name !== undefined ? { [ANNOTATION_TASK_NAME]: task.name } : {}),
  };

  const dataMounts = (withFiles: boolean): V1VolumeMount[] => [
    { name: VOLUME_NAMES.state, mountPath: STATE_DIR },
    { name: VOLUME_NAMES.spec, mountPath: SPEC_DIR, readOnly: true },
    { name: VOLUME_NAMES.data, mountPath: DATA_DIR },
    ...[...mounts.directories, ...(withFiles ? mounts.files : [])].map((m) => ({
      name: VOLUME_NAMES.data,
      mountPath: m.mountPath,
      subPath: m.subPath,
    })),
  ];
  const tmpIsData = mounts.directories.some((m) => m.mountPath === "/tmp");
  const transporter = (mode: "inputs" | "outputs"): V1Container => ({
    name: mode === "inputs" ? INPUTS_CONTAINER : OUTPUTS_CONTAINER,
    image: resolved.transporterImage,
    imagePullPolicy: resolved.transporterImagePullPolicy,
    command: resolved.transporterCommand.map(esc),
    args: [mode, SPEC_PATH],
    resources: resolved.transporterResources,
    securityContext: TRANSPORTER_SECURITY,
    // Not the default /dev/termination-log: Deno refuses writes under /dev without
    // --allow-all. Must equal DEFAULT_TERMINATION_LOG of transporter/termination.ts.
    terminationMessagePath: "/planetary/termination-log",
    terminationMessagePolicy: "FallbackToLogsOnError",
    ...(Object.keys(resolved.transporterEnv).length
      ? {
        env: Object.entries(resolved.transporterEnv).map(([name, value]) => ({
          name,
          value: esc(value),
        })),
      }
      : {}),
    ...(resolved.storageSecrets.length
      ? { envFrom: resolved.storageSecrets.map((secret) => ({ secretRef: { name: secret } })) }
      : {}),
    volumeMounts: [
      ...dataMounts(mode === "outputs"),
      ...(tmpIsData ? [] : [{ name: VOLUME_NAMES.tmp, mountPath: "/tmp" }]),
    ],
  });
  const resources = executorResources(task, resolved);
  const executors: V1Container[] = task.executors.map((executor, i) => ({
    name: executorContainerName(i),
    image: executor.image,
    command: ["/bin/sh", "-c", WRAPPER_SCRIPT, WRAPPER_ARGV0, ...executor.command].map(esc),
    env: executorEnv(executor, i),
    resources,
    securityContext: EXECUTOR_SECURITY,
    volumeMounts: dataMounts(true),
  }));

  const disk = task.resources?.disk_gb ?? resolved.defaultDiskGb;
  const volumes: V1Volume[] = [
    { name: VOLUME_NAMES.state, emptyDir: {} },
    {
      name: VOLUME_NAMES.spec,
      configMap: { name, items: [{ key: SPEC_FILE, path: SPEC_FILE }], defaultMode: 0o444 },
    },
    { name: VOLUME_NAMES.data, emptyDir: disk > 0 ? { sizeLimit: gbQuantity(disk) } : {} },
    ...(tmpIsData ? [] : [{ name: VOLUME_NAMES.tmp, emptyDir: {} }]),
  ];

  const preemptible = task.resources?.preemptible === true;
  const nodeSelector = {
    ...resolved.nodeSelector,
    ...(preemptible ? resolved.preemptible.nodeSelector ?? {} : {}),
    ...extras.nodeSelector,
  };
  const tolerations: V1Toleration[] = [
    ...resolved.tolerations,
    ...(preemptible ? resolved.preemptible.tolerations ?? [] : []),
  ];
  const zones = task.resources?.zones ?? [];
  const affinity: V1Affinity | undefined = zones.length
    ? {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{
            matchExpressions: [{ key: resolved.zoneLabel, operator: "In", values: [...zones] }],
          }],
        },
      },
    }
    : undefined;

  const serviceAccountName = extras.fields.serviceAccountName ?? resolved.serviceAccountName;
  const priorityClassName = extras.fields.priorityClassName ?? resolved.priorityClassName;
  const runtimeClassName = extras.fields.runtimeClassName ?? resolved.runtimeClassName;
  const namespace = resolved.namespace !== undefined ? { namespace: resolved.namespace } : {};

  const pod: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, ...namespace, labels, annotations },
    spec: {
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: resolved.terminationGracePeriodSeconds,
      initContainers: [transporter("inputs"), ...executors],
      containers: [transporter("outputs")],
      volumes,
      ...(resolved.fsGroup !== null ? { securityContext: { fsGroup: resolved.fsGroup } } : {}),
      ...(Object.keys(nodeSelector).length ? { nodeSelector } : {}),
      ...(tolerations.length ? { tolerations } : {}),
      ...(affinity ? { affinity } : {}),
      ...(serviceAccountName !== undefined ? { serviceAccountName } : {}),
      ...(priorityClassName !== undefined ? { priorityClassName } : {}),
      ...(runtimeClassName !== undefined ? { runtimeClassName } : {}),
      ...(resolved.activeDeadlineSeconds !== undefined
        ? { activeDeadlineSeconds: resolved.activeDeadlineSeconds }
        : {}),
      ...(resolved.imagePullSecrets.length
        ? { imagePullSecrets: resolved.imagePullSecrets.map((secret) => ({ name: secret })) }
        : {}),
    },
  };
  const configMap: V1ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name,
      ...namespace,
      labels: { ...labels },
      annotations: { [ANNOTATION_TASK_ID]: task.id },
    },
    data: { [SPEC_FILE]: specText },
  };
  return { pod, configMap };
}
