/**
 * "Planetary on the test cluster": the Kubernetes deployment of Planetary, run for real on
 * loopback. PostgreSQL, the control plane of `./k8s.ts`, a node that runs the pods, and the
 * three services as `deno run` SUBPROCESSES with exactly their exported permission flags:
 * `planetary-api migrate`, then the API, N orchestrators (`--owner orch-1`, `orch-2`, …) and
 * the monitor, each talking to the apiserver as the least-privilege `planetary` user bound by
 * `k8s/rbac/task-role.yaml` in a namespace that enforces the `baseline` Pod Security level.
 *
 * The node (option `node`):
 * - `"real"` (the default): a real kubelet with a private containerd (`./real_node.ts`). The
 *   transporter runs from its image (the `transporter-run` target of `k8s/Dockerfile`, built by
 *   `./service_images.ts` and imported with `ctr`), the executor images of the suites
 *   (`alpine:3.20`, `alpine:latest`, `busybox:latest`) are static busybox images imported under
 *   those names. `file://` storage: each deployment's storage folder reaches the transporter
 *   containers (never an executor) as a pre-bound hostPath PersistentVolume, added to every
 *   task pod of its namespace by a MutatingAdmissionPolicy (1.33's admission plugin reads the
 *   `v1alpha1` API: feature gate and runtime-config set on the apiserver) at `/planetary/host<folder>`, as `planetary serve` shares `--file-allow`
 *   folders; the pod builder itself has no volume setting, and a PVC volume keeps the
 *   namespace's `baseline` level (which refuses hostPath volumes). The transporter runs as uid
 *   65532, so the test process runs with umask 0 while the infrastructure lives (folders the
 *   cases make are writable by it). The node-lifecycle and taint-eviction controllers run, with
 *   short default tolerations, so that a node that stops reporting has its pods evicted (an
 *   unschedulable witness Node in another zone stays Ready meanwhile: with every Node lost the
 *   controller assumes a control-plane outage and evicts nothing). Task pods ask for little
 *   (10m CPU, 256 MB, see `REAL_NODE_POD_DEFAULTS`): the node has 2 CPUs.
 * - `"agent"`: the node agent of `./node_agent.ts` (a fake Node; the pods run with the host
 *   runtime, the transporter from this source tree), for the comparison run of
 *   `bench/k8s.ts --node agent`.
 *
 * The infrastructure (database server, control plane, node) can be shared by several
 * deployments (each with its own database, namespace and storage folder):
 * {@linkcode startClusterInfra} once, then {@linkcode startPlanetary} per deployment;
 * {@linkcode startPlanetaryCluster} does both for one deployment.
 *
 * ```ts ignore
 * const cluster = await startPlanetaryCluster();
 * try {
 *   const id = await cluster.client.createTask({ executors: [{ image: "alpine", command: ["true"] }] });
 * } finally {
 *   await cluster.stop();
 * }
 * ```
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { API_PERMISSIONS } from "../../cli/api.ts";
import { MONITOR_PERMISSIONS } from "../../cli/monitor.ts";
import { ORCHESTRATOR_PERMISSIONS } from "../../cli/orchestrator.ts";
import { TesClient } from "../../src/client/mod.ts";
import type { PodBuilderConfig } from "../../src/pod/pod_builder_config.ts";
import process from "node:process";
import { localTransporterCommand } from "../../src/server/execution.ts";
import { requireComponent, which } from "./component.ts";
import {
  type ControlPlane,
  type ControlPlaneOptions,
  requireControlPlane,
  startControlPlane,
} from "./k8s.ts";
import {
  type ContainerRuntime,
  type NodeAgent,
  type NodeAgentFault,
  type SharedHostPath,
  startNodeAgent,
} from "./node_agent.ts";
import {
  createDatabase,
  type PostgresCluster,
  requirePostgres,
  startPostgres,
} from "./postgres.ts";
import { HostRuntime } from "../../src/orchestrator/backends/local/host_runtime.ts";
import { killWithGrace } from "./process.ts";
import {
  importBusyboxImagesIntoNode,
  type RealNode,
  realNodeMissing,
  requireRealNode,
  startRealNode,
} from "./real_node.ts";
import { buildServiceImages, serviceEntrypoint, serviceImagesMissing } from "./service_images.ts";

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const CONFIG = `${REPO}/deno.json`;
const ROLE_FILE = `${REPO}/k8s/rbac/task-role.yaml`;
/** Where the node agent shows the shared storage folders inside task containers. */
export const HOST_FILES_ROOT = "/planetary/host";
/**
 * Where task containers see Planetary's source tree (read-only) and the Deno cache, for the
 * transporter: under `/planetary`, which no task path may use, so that a task using `/work` or
 * `/root` paths cannot mount its data volume over them (as `planetary serve` does).
 */
export const CONTAINER_SOURCE_DIR = "/planetary/source";
/** Where task containers see the host's Deno cache (see {@linkcode CONTAINER_SOURCE_DIR}). */
export const CONTAINER_DENO_DIR = "/planetary/deno";

function hostDenoDir(): string | undefined {
  const home = Deno.env.get("HOME");
  return Deno.env.get("DENO_DIR") ?? (home ? `${home}/.cache/deno` : undefined);
}

/** The namespace of task pods. */
export const TASK_NAMESPACE = "planetary-tasks";

/** Which node runs the task pods (see the module doc). */
export type ClusterNode = "real" | "agent";

/**
 * Why a cluster with a `node` cannot run here, or undefined when it can (for a benchmark that
 * exits instead of skipping).
 *
 * @param node The node.
 * @returns A one-line reason, or undefined.
 */
export async function clusterNodeMissing(node: ClusterNode): Promise<string | undefined> {
  if (node === "agent") {
    if (!which("unshare")) return "host runtime: needs util-linux `unshare`";
    return await new HostRuntime().ensureAvailable().then(
      () => undefined,
      () => "host runtime: needs root or user namespaces with overlayfs",
    );
  }
  return realNodeMissing() ?? await serviceImagesMissing();
}

/**
 * Whether the cluster can run here: control-plane binaries, PostgreSQL, and the node: the real
 * node's parts and the service images (or a way to build them), or the host runtime for the
 * node agent. Skips locally, FAILS under `CI=true` when one is missing.
 *
 * @param node The node. @default {"real"}
 * @returns Whether tests of the cluster run.
 */
export async function requirePlanetaryCluster(node: ClusterNode = "real"): Promise<boolean> {
  if (!requireControlPlane() || !requirePostgres()) return false;
  if (node === "real") {
    if (!requireRealNode()) return false;
    const images = await serviceImagesMissing();
    return requireComponent(images === undefined, images ?? "");
  }
  let hostRuntime = false;
  if (which("unshare")) {
    try {
      await new HostRuntime().ensureAvailable();
      hostRuntime = true;
    } catch {
      hostRuntime = false;
    }
  }
  return requireComponent(
    hostRuntime,
    "host runtime: needs util-linux `unshare` and root or user namespaces with overlayfs",
  );
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function pollUntil<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A `deno run` subprocess whose stdout and stderr go to a log file. */
export class ServiceProcess {
  /** Short name (`api`, `orch-1`, …). */
  readonly name: string;
  /** Its log file. */
  readonly logPath: string;
  /** Process id. */
  readonly pid: number;
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;
  #piping: Promise<unknown>;
  #exited = false;

  /**
   * Spawns `deno run --quiet --config deno.json <permissions> <script> <args>`.
   *
   * @param name Short name.
   * @param script Path of the entrypoint.
   * @param permissions Its exact permission flags.
   * @param args Its arguments.
   * @param logDir Folder of the log file.
   */
  constructor(
    name: string,
    script: string,
    permissions: readonly string[],
    args: string[],
    logDir: string,
  ) {
    this.name = name;
    this.logPath = `${logDir}/${name}.log`;
    const log = Deno.openSync(this.logPath, { write: true, create: true, append: true });
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--config", CONFIG, ...permissions, script, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.pid = this.#child.pid;
    const sink = (): WritableStream<Uint8Array> =>
      new WritableStream({ write: (chunk) => void log.writeSync(chunk) });
    this.#piping = Promise.allSettled([
      this.#child.stdout.pipeTo(sink()),
      this.#child.stderr.pipeTo(sink()),
    ]).finally(() => log.close());
    this.status = this.#child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /** Whether the process ended. */
  get exited(): boolean {
    return this.#exited;
  }

  /**
   * What the process wrote so far.
   *
   * @returns The log text.
   */
  log(): string {
    try {
      return Deno.readTextFileSync(this.logPath);
    } catch {
      return "";
    }
  }

  /**
   * Sends `signal`, then SIGKILL after `graceMs`; waits for the exit and the log.
   *
   * @param signal The first signal.
   * @param graceMs How long to wait before SIGKILL.
   * @returns The exit status.
   */
  async kill(signal: Deno.Signal = "SIGTERM", graceMs = 15_000): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      await killWithGrace(this.#child, this.status, signal, graceMs);
    }
    const status = await this.status;
    await this.#piping;
    return status;
  }

  /**
   * Waits until the log contains `text`.
   *
   * @param text What to find.
   * @param timeoutMs Deadline.
   * @throws {Error} When the process exits first or the deadline passes (with the log).
   */
  async waitForLog(text: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.log().includes(text)) {
      if (this.#exited) {
        await this.#piping;
        throw new Error(`${this.name} exited before logging "${text}":\n${this.log()}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`${this.name} did not log "${text}" in ${timeoutMs} ms:\n${this.log()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /**
   * The peak resident set size of the process (`VmHWM`), in KiB, while it runs.
   *
   * @returns KiB, or undefined once the process is gone.
   */
  peakRssKib(): number | undefined {
    try {
      const status = Deno.readTextFileSync(`/proc/${this.pid}/status`);
      const match = status.match(/^VmHWM:\s+(\d+) kB/m);
      return match ? Number(match[1]) : undefined;
    } catch {
      return undefined;
    }
  }
}

/** Options of {@linkcode startClusterInfra}. */
export interface ClusterInfraOptions {
  /** Which node runs the task pods. @default {"real"} */
  node?: ClusterNode;
  /** Allocatable pods of the Node (the real kubelet's `maxPods`). @default {"500"} */
  nodePods?: string;
  /** Faults by pod name for the node agent (`node: "agent"` only). @default {{}} */
  faults?: Record<string, NodeAgentFault>;
  /**
   * Shortest time between two status writes of one pod by the node agent, ms (`node: "agent"`
   * only). @default {100}
   */
  statusIntervalMs?: number;
  /** More control plane options. @default {{}} */
  controlPlane?: Omit<ControlPlaneOptions, "nodes" | "nodePods">;
  /**
   * Wraps the node agent's host runtime (for example to bound how many containers run at once;
   * `node: "agent"` only).
   * @default {none}
   */
  wrapRuntime?: (inner: ContainerRuntime) => ContainerRuntime;
}

/** Database server, control plane and node, shared by deployments. */
export interface ClusterInfra {
  /** Which node runs the task pods. */
  readonly node: ClusterNode;
  /** The temp dir of everything (logs, storage). */
  readonly dir: string;
  /** The folder under which every deployment's `file://` storage lives (shared with pods). */
  readonly filesRoot: string;
  /** The PostgreSQL server. */
  readonly postgres: PostgresCluster;
  /** The control plane. */
  readonly controlPlane: ControlPlane;
  /** The node agent (`node: "agent"`), else undefined. */
  readonly nodeAgent: NodeAgent | undefined;
  /** The real node (`node: "real"`), else undefined. */
  readonly realNode: RealNode | undefined;
  /**
   * The address where task pods reach a server of the test process (a server must listen
   * there, not on 127.0.0.1): the real node's IP, or 127.0.0.1 for the node agent's pods.
   */
  readonly podReachableHost: string;
  /** The pod builder settings of this node (transporter, resources), under each deployment's. */
  readonly podDefaults: PodBuilderConfig;
  /** Admin clients of the apiserver. */
  readonly admin: {
    core: k8s.CoreV1Api;
    rbac: k8s.RbacAuthorizationV1Api;
    objects: k8s.KubernetesObjectApi;
  };
  /** Stops the node, the control plane, PostgreSQL; removes the temp dir. */
  stop(): Promise<void>;
}

/**
 * Default tolerations of the real-node control plane for a NotReady or unreachable node, in
 * seconds (DefaultTolerationSeconds admission): how long after the node-lifecycle controller
 * taints a node that stopped reporting its pods are evicted.
 */
export const NODE_LOST_TOLERATION_SECONDS = 5;

/**
 * Task pod resources for the real node (2 CPUs here): tasks that give none ask for 10m CPU
 * (no CPU limit) and 256 MB, the transporters for 10m and 64 MiB, so that a hundred pods fit
 * at once as they did on the node agent's roomy fake Node; a task's own `resources` still win.
 */
const REAL_NODE_POD_DEFAULTS: PodBuilderConfig = {
  defaultCpuCores: 0.01,
  cpuLimit: false,
  defaultRamGb: 0.256,
  transporterResources: { requests: { cpu: "10m", memory: "64Mi" }, limits: { memory: "1Gi" } },
};

/**
 * Starts PostgreSQL, the control plane and the node: a real kubelet with the images of the
 * suites imported (default), or one fake Node and the node agent. The storage root is shared
 * with the transporter of every pod at `/planetary/host<path>`, as `planetary serve` shares
 * `--file-allow` folders.
 *
 * @param options The node, its capacity and (node agent) faults.
 * @returns The running infrastructure.
 */
export async function startClusterInfra(options: ClusterInfraOptions = {}): Promise<ClusterInfra> {
  const {
    node = "real",
    nodePods = "500",
    faults = {},
    statusIntervalMs = 100,
    controlPlane = {},
    wrapRuntime,
  } = options;
  const dir = await Deno.makeTempDir({ prefix: "planetary-cluster-" });
  const filesRoot = `${dir}/files`;
  await Deno.mkdir(filesRoot);
  const stops: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const fn of stops.reverse()) await fn().catch((e) => console.error(e));
    stops.length = 0;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    if (node === "real") {
      // the transporter (uid 65532) writes into folders that the cases make as root
      const umask = process.umask(0);
      stops.push(() => Promise.resolve(void process.umask(umask)));
      await Deno.chmod(filesRoot, 0o777);
    }
    const [postgres, cp] = await Promise.all([
      startPostgres(),
      node === "real"
        ? startControlPlane({
          nodes: [],
          ...controlPlane,
          apiserverArgs: [
            // the MutatingAdmissionPolicy that shares the storage folders (see the module doc)
            "--feature-gates=MutatingAdmissionPolicy=true",
            "--runtime-config=admissionregistration.k8s.io/v1alpha1=true",
            `--default-not-ready-toleration-seconds=${NODE_LOST_TOLERATION_SECONDS}`,
            `--default-unreachable-toleration-seconds=${NODE_LOST_TOLERATION_SECONDS}`,
            ...(controlPlane.apiserverArgs ?? []),
          ],
          extraControllers: [
            "node-lifecycle-controller",
            "taint-eviction-controller",
            ...(controlPlane.extraControllers ?? []),
          ],
        })
        : startControlPlane({
          nodes: ["node-1"],
          // requests of every task pod fit many times over: only the pods count limits
          nodeCpu: "4000",
          nodeMemory: "16000Gi",
          nodePods,
          ...controlPlane,
        }),
    ]);
    stops.push(() => postgres.stop());
    stops.push(() => cp.stop());
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cp.adminKubeconfigPath);
    const admin = {
      core: kc.makeApiClient(k8s.CoreV1Api),
      rbac: kc.makeApiClient(k8s.RbacAuthorizationV1Api),
      objects: k8s.KubernetesObjectApi.makeApiClient(kc),
    };
    if (node === "real") {
      const stopWitness = await keepWitnessNodeReady(admin.core);
      stops.push(stopWitness);
      const [realNode, images] = await Promise.all([
        startRealNode({ controlPlane: cp, nodeName: "node-1", maxPods: Number(nodePods) }),
        buildServiceImages(),
      ]);
      stops.push(() => realNode.stop());
      await Promise.all([
        importBusyboxImagesIntoNode(realNode),
        realNode.importImage(images.archive),
      ]);
      return {
        node,
        dir,
        filesRoot,
        postgres,
        controlPlane: cp,
        nodeAgent: undefined,
        realNode,
        podReachableHost: realNode.nodeIp,
        podDefaults: {
          ...REAL_NODE_POD_DEFAULTS,
          transporterImage: images.images.transporter,
          transporterCommand: serviceEntrypoint("transporter"),
          transporterImagePullPolicy: "Never",
        },
        admin,
        stop,
      };
    }
    const denoDir = hostDenoDir();
    const sharedHostPaths: SharedHostPath[] = [
      ...(denoDir ? [{ hostPath: denoDir, containerPath: CONTAINER_DENO_DIR }] : []),
      { hostPath: REPO, containerPath: CONTAINER_SOURCE_DIR, readOnly: true },
      { hostPath: filesRoot, containerPath: `${HOST_FILES_ROOT}${filesRoot}` },
    ];
    const nodeAgent = await startNodeAgent({
      kubeconfigPath: cp.adminKubeconfigPath,
      nodeNames: cp.nodeNames,
      workDir: `${dir}/agent`,
      statusIntervalMs,
      faults,
      sharedHostPaths,
      ...(wrapRuntime
        ? {
          runtime: wrapRuntime(
            new HostRuntime({ probeDir: `${dir}/agent`, sharedHostPaths }),
          ),
        }
        : {}),
    });
    stops.push(() => nodeAgent.stop());
    return {
      node,
      dir,
      filesRoot,
      postgres,
      controlPlane: cp,
      nodeAgent,
      realNode: undefined,
      podReachableHost: "127.0.0.1",
      podDefaults: {
        transporterCommand: localTransporterCommand(CONTAINER_SOURCE_DIR),
        transporterEnv: hostDenoDir() ? { DENO_DIR: CONTAINER_DENO_DIR } : {},
      },
      admin,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The Node of {@linkcode keepWitnessNodeReady}. */
export const WITNESS_NODE = "zone-witness";

/**
 * Keeps a second, unschedulable Node Ready in another zone, renewing the heartbeat of its Ready
 * condition every 5 s (no Lease: the controller then reads the condition), for as long as the
 * infrastructure lives. Without it, the real node going away would put every
 * node of the cluster NotReady, which the node-lifecycle controller takes for a control-plane
 * outage ("master disruption mode"): it evicts nothing then, as on any one-node cluster.
 *
 * @returns Stops the renewals.
 */
async function keepWitnessNodeReady(core: k8s.CoreV1Api): Promise<() => Promise<void>> {
  await core.createNode({
    body: {
      metadata: {
        name: WITNESS_NODE,
        labels: {
          "kubernetes.io/hostname": WITNESS_NODE,
          "kubernetes.io/os": "linux",
          "topology.kubernetes.io/zone": "witness",
        },
      },
      spec: {
        unschedulable: true,
        taints: [{ key: "planetary.test/witness", effect: "NoSchedule" }],
      },
    },
  });
  const heartbeat = async (): Promise<void> => {
    const now = new Date();
    const node = await core.readNode({ name: WITNESS_NODE });
    node.status = {
      ...node.status,
      capacity: { cpu: "1", memory: "1Gi", pods: "0" },
      allocatable: { cpu: "1", memory: "1Gi", pods: "0" },
      conditions: [{
        type: "Ready",
        status: "True",
        reason: "KubeletReady",
        message: "witness node of the test cluster (runs nothing)",
        lastHeartbeatTime: now,
        lastTransitionTime: node.status?.conditions?.[0]?.lastTransitionTime ?? now,
      }],
    };
    await core.replaceNodeStatus({ name: WITNESS_NODE, body: node });
  };
  await pollUntil("the witness node's first heartbeat", 60_000, () => heartbeat().then(() => true));
  let stopped = false;
  let running = Promise.resolve();
  const timer = setInterval(() => {
    if (stopped) return;
    running = heartbeat().catch(() => {}); // an apiserver restart: the next one catches up
  }, 5000);
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}

/** Name of the PersistentVolumeClaim (and pod volume) of a deployment's storage folder. */
const FILES_VOLUME = "planetary-test-files";

/**
 * Shares a deployment's storage folder with the transporter containers of its task pods on the
 * real node: a hostPath PersistentVolume pre-bound to a claim in the namespace (both marked
 * Bound as admin: no volume controller runs), and a MutatingAdmissionPolicy bound to the
 * namespace that adds the claim to every pod and mounts it into `inputs` and `outputs` at
 * `/planetary/host<folder>`. Waits until a dry-run pod shows the mount (the policy reaches the
 * admission plugin through an informer).
 */
async function shareStorageWithPods(
  infra: ClusterInfra,
  namespace: string,
  storageDir: string,
): Promise<void> {
  const { core, objects } = infra.admin;
  const pvName = `${FILES_VOLUME}-${namespace}`;
  const claim = await core.createNamespacedPersistentVolumeClaim({
    namespace,
    body: {
      // the scheduler takes a claim for bound only with the binder's annotation
      metadata: { name: FILES_VOLUME, annotations: { "pv.kubernetes.io/bind-completed": "yes" } },
      spec: {
        accessModes: ["ReadWriteMany"],
        storageClassName: "",
        volumeName: pvName,
        resources: { requests: { storage: "1Gi" } },
      },
    },
  });
  const volume = await core.createPersistentVolume({
    body: {
      metadata: { name: pvName },
      spec: {
        accessModes: ["ReadWriteMany"],
        storageClassName: "",
        capacity: { storage: "1Gi" },
        persistentVolumeReclaimPolicy: "Retain",
        hostPath: { path: storageDir, type: "Directory" },
        claimRef: {
          apiVersion: "v1",
          kind: "PersistentVolumeClaim",
          namespace,
          name: FILES_VOLUME,
          uid: claim.metadata?.uid ?? "",
        },
      },
    },
  });
  await core.replacePersistentVolumeStatus({
    name: pvName,
    body: { ...volume, status: { phase: "Bound" } },
  });
  const current = await core.readNamespacedPersistentVolumeClaim({ name: FILES_VOLUME, namespace });
  await core.replaceNamespacedPersistentVolumeClaimStatus({
    name: FILES_VOLUME,
    namespace,
    body: {
      ...current,
      status: {
        phase: "Bound",
        accessModes: ["ReadWriteMany"],
        capacity: { storage: "1Gi" },
      },
    },
  });
  const mountPath = `${HOST_FILES_ROOT}${storageDir}`;
  const mount = (list: string): string =>
    `Object.spec.${list}.volumeMounts{name: "${FILES_VOLUME}", mountPath: "${mountPath}"}`;
  const transporters = (list: string, name: string): string =>
    `object.spec.${list}.filter(c, c.name == "${name}").map(c, ` +
    `Object.spec.${list}{name: c.name, volumeMounts: [${mount(list)}]})`;
  const policy = `planetary-test-files-${namespace}`;
  await objects.create({
    apiVersion: "admissionregistration.k8s.io/v1alpha1",
    kind: "MutatingAdmissionPolicy",
    metadata: { name: policy },
    spec: {
      matchConstraints: {
        resourceRules: [{
          apiGroups: [""],
          apiVersions: ["v1"],
          operations: ["CREATE"],
          resources: ["pods"],
        }],
      },
      failurePolicy: "Fail",
      reinvocationPolicy: "Never",
      mutations: [{
        patchType: "ApplyConfiguration",
        applyConfiguration: {
          expression: `Object{spec: Object.spec{` +
            `volumes: [Object.spec.volumes{name: "${FILES_VOLUME}", persistentVolumeClaim: ` +
            `Object.spec.volumes.persistentVolumeClaim{claimName: "${FILES_VOLUME}"}}], ` +
            `initContainers: ${transporters("initContainers", "inputs")}, ` +
            `containers: ${transporters("containers", "outputs")}}}`,
        },
      }],
    },
  } as k8s.KubernetesObject);
  await objects.create({
    apiVersion: "admissionregistration.k8s.io/v1alpha1",
    kind: "MutatingAdmissionPolicyBinding",
    metadata: { name: policy },
    spec: {
      policyName: policy,
      matchResources: {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } },
      },
    },
  } as k8s.KubernetesObject);
  await pollUntil(`the storage policy of ${namespace} to apply`, 60_000, async () => {
    const pod = await core.createNamespacedPod({
      namespace,
      dryRun: "All",
      body: {
        metadata: { name: "policy-probe" },
        spec: {
          automountServiceAccountToken: false,
          initContainers: [{ name: "inputs", image: "busybox:latest" }],
          containers: [{ name: "outputs", image: "busybox:latest" }],
        },
      },
    });
    const mounts = pod.spec?.containers[0]?.volumeMounts ?? [];
    return mounts.some((m) => m.mountPath === mountPath) ? true : undefined;
  });
}

/** Options of {@linkcode startPlanetary}. */
export interface PlanetaryOptions {
  /** Namespace of the task pods (created, labeled, Role bound). @default {"planetary-tasks"} */
  namespace?: string;
  /** Orchestrator replicas. @default {2} */
  orchestrators?: number;
  /** `--max-tasks` of each orchestrator. @default {64} */
  maxTasks?: number;
  /** `--lease-ms` of each orchestrator. @default {3000} */
  leaseMs?: number;
  /** More monitor flags. @default {short timeouts: interval 1 s, pull 2 s, pending 3 s} */
  monitorArgs?: string[];
  /** More pod builder settings. @default {{}} */
  podConfig?: PodBuilderConfig;
  /** More orchestrator flags (e.g. `--keep-finished-pods`). @default {[]} */
  orchestratorArgs?: string[];
}

/** One running deployment of Planetary on the test cluster. */
export interface PlanetaryCluster {
  /** The API's base URL. */
  readonly url: string;
  /** A client of the API. */
  readonly client: TesClient;
  /** The namespace of the task pods. */
  readonly namespace: string;
  /** The folder `file://` inputs and outputs of this deployment may use. */
  readonly storageDir: string;
  /**
   * The `file://` URL of a path inside the storage folder.
   *
   * @param relativePath Path relative to the storage folder.
   */
  fileUrl(relativePath: string): string;
  /** The database URL. */
  readonly databaseUrl: string;
  /** The current orchestrator processes (undefined while one is stopped). */
  readonly orchestrators: readonly (ServiceProcess | undefined)[];
  /** The API process. */
  readonly api: ServiceProcess;
  /** The monitor process. */
  readonly monitor: ServiceProcess;
  /**
   * Stops orchestrator `i` (0-based) with `signal` and waits for its exit.
   *
   * @param i Replica index.
   * @param signal The signal.
   */
  killOrchestrator(i: number, signal: "SIGTERM" | "SIGKILL"): Promise<Deno.CommandStatus>;
  /**
   * Starts orchestrator `i` again (same owner id) and waits until it runs.
   *
   * @param i Replica index.
   */
  startOrchestrator(i: number): Promise<void>;
  /** The control plane. */
  readonly controlPlane: ControlPlane;
  /** The node agent (`node: "agent"`), else undefined. */
  readonly nodeAgent: NodeAgent | undefined;
  /** The real node (`node: "real"`), else undefined. */
  readonly realNode: RealNode | undefined;
  /** The infrastructure. */
  readonly infra: ClusterInfra;
  /** The logs of every service of this deployment, for a failing test. */
  logs(): string;
  /** Stops the services (and the infrastructure when it was started for this deployment). */
  stop(): Promise<void>;
}

async function setUpNamespace(infra: ClusterInfra, namespace: string): Promise<void> {
  const { core, rbac } = infra.admin;
  await core.createNamespace({
    body: {
      metadata: {
        name: namespace,
        labels: { "pod-security.kubernetes.io/enforce": "baseline" },
      },
    },
  });
  const text = (await Deno.readTextFile(ROLE_FILE)).replaceAll("NAMESPACE", namespace);
  for (const doc of parseAllDocuments(text)) {
    const object = doc.toJS() as { kind: string };
    if (object.kind === "Role") {
      await rbac.createNamespacedRole({ namespace, body: object as k8s.V1Role });
    } else {
      await rbac.createNamespacedRoleBinding({ namespace, body: object as k8s.V1RoleBinding });
    }
  }
  // pods can be created once the namespace has its default ServiceAccount
  await pollUntil(`the default ServiceAccount of ${namespace}`, 60_000, async () => {
    await core.readNamespacedServiceAccount({ name: "default", namespace });
    return true;
  });
}

/**
 * Deploys Planetary on running infrastructure: a database, the namespace with its Role,
 * `planetary-api migrate`, the API, the orchestrators and the monitor.
 *
 * @param infra From {@linkcode startClusterInfra}.
 * @param options Namespace, replicas and limits.
 * @returns The running deployment; `stop()` stops its services only.
 * @throws {Error} When a service fails to start (with its log).
 */
export async function startPlanetary(
  infra: ClusterInfra,
  options: PlanetaryOptions = {},
): Promise<PlanetaryCluster> {
  const {
    namespace = TASK_NAMESPACE,
    orchestrators: replicas = 2,
    maxTasks = 64,
    leaseMs = 3000,
    monitorArgs = ["--interval-s", "1", "--image-pull-timeout-s", "2", "--pending-timeout-s", "3"],
    podConfig = {},
    orchestratorArgs: extraOrchestratorArgs = [],
  } = options;
  const cp = infra.controlPlane;
  const dir = `${infra.dir}/${namespace}`;
  const storageDir = `${infra.filesRoot}/${namespace}`;
  await Deno.mkdir(storageDir, { recursive: true });
  await Deno.mkdir(dir, { recursive: true });
  await setUpNamespace(infra, namespace);
  if (infra.node === "real") await shareStorageWithPods(infra, namespace, storageDir);
  const databaseUrl = await createDatabase(infra.postgres, `planetary_${namespace}`);
  const podConfigPath = `${dir}/pod-config.json`;
  await Deno.writeTextFile(
    podConfigPath,
    JSON.stringify(
      {
        ...infra.podDefaults,
        ...podConfig,
        transporterEnv: {
          ...infra.podDefaults.transporterEnv,
          PLANETARY_FILE_ALLOW_LIST: storageDir,
          PLANETARY_FILE_ROOT: HOST_FILES_ROOT,
          ...podConfig.transporterEnv,
        },
      } satisfies PodBuilderConfig,
    ),
  );

  const procs: ServiceProcess[] = [];
  const service = (
    name: string,
    script: string,
    permissions: readonly string[],
    args: string[],
  ): ServiceProcess => {
    const proc = new ServiceProcess(name, `${REPO}/cli/${script}`, permissions, args, dir);
    procs.push(proc);
    return proc;
  };
  const orchestrators: (ServiceProcess | undefined)[] = [];
  const orchestratorArgs = (i: number): string[] => [
    "--database-url",
    databaseUrl,
    "--namespace",
    namespace,
    "--kubeconfig",
    cp.userKubeconfigPath,
    "--owner",
    `orch-${i + 1}`,
    "--max-tasks",
    String(maxTasks),
    "--lease-ms",
    String(leaseMs),
    "--pod-config",
    podConfigPath,
    "--health-port",
    "0",
    ...extraOrchestratorArgs,
  ];
  const startOrchestrator = async (i: number): Promise<void> => {
    if (orchestrators[i] && !orchestrators[i].exited) {
      throw new Error(`orch-${i + 1} is still running`);
    }
    const proc = service(
      `orch-${i + 1}${orchestrators[i] ? `-${procs.length}` : ""}`,
      "orchestrator.ts",
      ORCHESTRATOR_PERMISSIONS,
      orchestratorArgs(i),
    );
    orchestrators[i] = proc;
    await proc.waitForLog('"msg":"orchestrator started"');
  };
  const stopServices = async (): Promise<void> => {
    await Promise.all(procs.map((p) => p.kill("SIGTERM")));
  };

  try {
    const migrate = service("migrate", "api.ts", API_PERMISSIONS, [
      "migrate",
      "--database-url",
      databaseUrl,
    ]);
    const migrated = await migrate.status;
    if (!migrated.success) throw new Error(`planetary-api migrate failed:\n${migrate.log()}`);
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    const api = service("api", "api.ts", API_PERMISSIONS, [
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--database-url",
      databaseUrl,
      "--log-requests=false",
    ]);
    const monitor = service("monitor", "monitor.ts", MONITOR_PERMISSIONS, [
      "--database-url",
      databaseUrl,
      "--namespace",
      namespace,
      "--kubeconfig",
      cp.userKubeconfigPath,
      "--health-port",
      "0",
      ...monitorArgs,
    ]);
    await Promise.all([
      ...Array.from({ length: replicas }, (_, i) => startOrchestrator(i)),
      monitor.waitForLog('"msg":"monitor started"'),
      (async () => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          if (api.exited) throw new Error(`the API exited:\n${api.log()}`);
          const ok = await fetch(`${url}/readyz`).then(async (r) => {
            await r.body?.cancel();
            return r.ok;
          }, () => false);
          if (ok) return;
          if (Date.now() > deadline) throw new Error(`the API is not ready:\n${api.log()}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })(),
    ]);
    const client = new TesClient(url);
    return {
      url,
      client,
      namespace,
      storageDir,
      fileUrl: (relativePath) => `file://${storageDir}/${relativePath}`,
      databaseUrl,
      orchestrators,
      api,
      monitor,
      async killOrchestrator(i, signal) {
        const proc = orchestrators[i];
        if (!proc) throw new Error(`no orchestrator ${i}`);
        return await proc.kill(signal);
      },
      startOrchestrator,
      controlPlane: cp,
      nodeAgent: infra.nodeAgent,
      realNode: infra.realNode,
      infra,
      logs: () => procs.map((p) => `--- ${p.name} ---\n${p.log()}`).join("\n"),
      stop: stopServices,
    };
  } catch (error) {
    console.error(procs.map((p) => `--- ${p.name} ---\n${p.log()}`).join("\n"));
    await stopServices();
    throw error;
  }
}

/** Options of {@linkcode startPlanetaryCluster}. */
export interface PlanetaryClusterOptions extends PlanetaryOptions, ClusterInfraOptions {}

/**
 * Starts the infrastructure and one deployment on it; `stop()` stops everything.
 *
 * @param options Deployment and infrastructure options.
 * @returns The running deployment.
 * @example
 * ```ts ignore
 * const cluster = await startPlanetaryCluster({ orchestrators: 2 });
 * await cluster.stop();
 * ```
 */
export async function startPlanetaryCluster(
  options: PlanetaryClusterOptions = {},
): Promise<PlanetaryCluster> {
  const infra = await startClusterInfra(options);
  try {
    const planetary = await startPlanetary(infra, options);
    return {
      ...planetary,
      get orchestrators() {
        return planetary.orchestrators;
      },
      async stop() {
        await planetary.stop();
        await infra.stop();
      },
    };
  } catch (error) {
    await infra.stop();
    throw error;
  }
}
