/**
 * A kubelet stand-in for tests against the loopback control plane (`./k8s.ts`): it watches the
 * pods bound to its fake Nodes, runs them for real on this machine with the local backend's
 * pod runner and host runtime, and mirrors the status they produce to the apiserver through
 * `pods/status`, like a kubelet.
 *
 * **Retired from the Kubernetes end-to-end suite**: tests/k8s_e2e_test.ts runs every case on a
 * real kubelet with containerd (`./real_node.ts`), whose failures (image pulls, OOMKilled,
 * DeadlineExceeded, Unschedulable, the node going away) are the kubelet's own. The agent stays
 * for what the real node cannot give here:
 * - **node-pressure eviction** (`Evicted` with the kubelet's message, the `Evicted` fault):
 *   the real kubelet evicts only when this shared machine itself runs short of memory or disk,
 *   which a test must not cause; tests/node_agent_test.ts covers the agent's fault, and
 *   `taskStatusFromPod()`'s unit tests the mapping (PREEMPTED, or EXECUTOR_ERROR for a pod over
 *   its own ephemeral-storage limit);
 * - **the comparison run of `bench/k8s.ts --node agent`** (a fake Node with room for 1,000
 *   pods, pods run with the host runtime);
 * - its own tests (tests/node_agent_test.ts).
 *
 * - **ConfigMaps and Secrets**: before starting a pod it fetches every ConfigMap the pod
 *   references (volumes, `configMapKeyRef`, `envFrom`) and every Secret its environment reads
 *   (`secretKeyRef`, `envFrom`), retrying until they exist; meanwhile the pod is Pending with
 *   its containers waiting (`PodInitializing`/`ContainerCreating`).
 * - **Status**: every status the pod runner produces goes through a {@linkcode StatusCoalescer}:
 *   written with a JSON merge patch of `pods/status`, only when it changed, at most once per
 *   `statusIntervalMs` (intermediate statuses may be skipped, the latest always lands).
 * - **Logs**: the apiserver serves `pods/log` by proxying to
 *   `https://<node InternalIP>:<node kubeletEndpoint port>/containerLogs/<ns>/<pod>/<container>`.
 *   The agent serves that path over HTTPS (a self-signed certificate made with openssl) on a
 *   free loopback port and registers each Node with `status.addresses = [InternalIP 127.0.0.1]`
 *   and `status.daemonEndpoints.kubeletEndpoint.Port = <port>`. The apiserver has no
 *   `--kubelet-certificate-authority`, so it does not verify the certificate. Supported query
 *   parameters: `tailLines`, `limitBytes` (`follow` returns what is there now).
 * - **Deletion**: a pod with a `deletionTimestamp` is killed, its directory removed, then it is
 *   deleted with `gracePeriodSeconds: 0` (how a kubelet confirms); a pod deleted outright is
 *   killed.
 * - **Faults** ({@linkcode NodeAgentFault}), from `options.faults`, {@linkcode NodeAgent.injectFault}
 *   or the pod annotation {@linkcode FAULT_ANNOTATION} (`Kind` or `Kind:container`).
 *
 * ```ts ignore
 * const cp = await startControlPlane();
 * const agent = await startNodeAgent({
 *   kubeconfigPath: cp.adminKubeconfigPath,
 *   nodeNames: cp.nodeNames,
 *   workDir: `${cp.dir}/node-agent`,
 * });
 * try {
 *   // create pods; they run here; GET …/pods/P/log?container=C works through the apiserver
 * } finally {
 *   await agent.stop();
 *   await cp.stop();
 * }
 * ```
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import type {
  V1ConfigMap,
  V1Container,
  V1ContainerStatus,
  V1Pod,
  V1PodStatus,
} from "@kubernetes/client-node";
import {
  type ContainerExit,
  type ContainerRunSpec,
  type ContainerRuntime,
  HostRuntime,
  type SharedHostPath,
} from "../../src/orchestrator/backends/local/host_runtime.ts";
export type {
  ContainerExit,
  ContainerRunSpec,
  ContainerRuntime,
  ResolvedMount,
  SharedHostPath,
} from "../../src/orchestrator/backends/local/host_runtime.ts";
import { containerLogPath, runPod } from "../../src/orchestrator/backends/local/pod_runner.ts";

/** Pod annotation that injects a fault: `Kind` or `Kind:container` (e.g. `OOMKilled:executor-1`). */
export const FAULT_ANNOTATION = "planetary.test/fault";

/**
 * A fault the agent plays instead of running a pod normally. `container` defaults to
 * `executor-0` when the pod has one, else its first container.
 *
 * - `ErrImagePull`: everything before `container` runs; `container` then waits with reason
 *   `ErrImagePull`, then `ImagePullBackOff` (with a message), and never runs; the pod stays
 *   Pending.
 * - `OOMKilled`: `container` is terminated with reason `OOMKilled`, exit code 137, without
 *   running; the pod fails.
 * - `Evicted`: when `container` starts, the pod is killed and marked Failed with reason
 *   `Evicted`, a message and a `DisruptionTarget` condition.
 * - `NodeLost`: when `container` starts (reported Running), its processes are killed and the
 *   agent never writes this pod's status again nor confirms its deletion.
 * - `StuckPending`: the pod is reported Pending with containers waiting and never starts.
 */
export type NodeAgentFault =
  | { kind: "ErrImagePull"; container?: string; message?: string }
  | { kind: "OOMKilled"; container?: string }
  | { kind: "Evicted"; container?: string; message?: string }
  | { kind: "NodeLost"; container?: string }
  | { kind: "StuckPending" };

const FAULT_KINDS: readonly NodeAgentFault["kind"][] = [
  "ErrImagePull",
  "OOMKilled",
  "Evicted",
  "NodeLost",
  "StuckPending",
];

/**
 * Parses the value of the {@linkcode FAULT_ANNOTATION} annotation.
 *
 * @param value `Kind` or `Kind:container`.
 * @returns The fault.
 * @throws {NodeAgentError} `BAD_FAULT` for an unknown kind.
 */
export function parseFault(value: string): NodeAgentFault {
  const [kind = "", container] = value.trim().split(":", 2);
  if (!(FAULT_KINDS as readonly string[]).includes(kind)) {
    throw new NodeAgentError(
      "BAD_FAULT",
      `Cannot parse fault "${value}": expected one of ${FAULT_KINDS.join(", ")}`,
    );
  }
  if (kind === "StuckPending") return { kind };
  return container
    ? { kind: kind as Exclude<NodeAgentFault["kind"], "StuckPending">, container }
    : { kind: kind as Exclude<NodeAgentFault["kind"], "StuckPending"> };
}

/** Why the node agent failed; `code` is stable. */
export class NodeAgentError extends Error {
  /** Stable error code. */
  readonly code: "START_FAILED" | "API_ERROR" | "BAD_FAULT";

  /**
   * Creates the error.
   *
   * @param code Stable error code.
   * @param message What failed, then the current state.
   * @param options The underlying error, if any.
   */
  constructor(code: NodeAgentError["code"], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NodeAgentError";
    this.code = code;
  }
}

/** Options of {@linkcode startNodeAgent}. */
export interface NodeAgentOptions {
  /** Kubeconfig with a bearer token allowed to read pods/ConfigMaps and write pod/node status. */
  kubeconfigPath: string;
  /** The existing Nodes this agent is the kubelet of. */
  nodeNames: string[];
  /** Directory for pod volumes, logs and the TLS key pair (created when missing). */
  workDir: string;
  /** Only pods of this namespace. @default {all namespaces} */
  namespace?: string;
  /** Faults by pod name. @default {{}} */
  faults?: Record<string, NodeAgentFault>;
  /** Host directories shared with every container (see `HostRuntimeOptions`). @default {the Deno cache} */
  sharedHostPaths?: SharedHostPath[];
  /** Host environment variables passed to containers. @default {["PATH", "HOME", "DENO_DIR"]} */
  hostEnv?: string[];
  /** What runs containers. @default {a HostRuntime} */
  runtime?: ContainerRuntime;
  /** Shortest time between two status writes of one pod, in ms. @default {100} */
  statusIntervalMs?: number;
  /** Time between `ErrImagePull` and `ImagePullBackOff`, in ms. @default {300} */
  imagePullBackOffMs?: number;
}

/** A running node agent. */
export interface NodeAgent {
  /** Port of the kubelet-style log server on 127.0.0.1 (registered in every Node). */
  readonly kubeletPort: number;
  /** Status writes made so far (for reports). */
  statusWrites(): number;
  /**
   * Makes a pod that has not started yet play a fault.
   *
   * @param podName Pod name (any namespace).
   * @param fault The fault.
   */
  injectFault(podName: string, fault: NodeAgentFault): void;
  /**
   * Plays the loss of a node: its pods are killed without any status write, the agent stops
   * watching it, and the Node's Ready condition becomes Unknown.
   *
   * @param nodeName One of the agent's nodes.
   */
  loseNode(nodeName: string): Promise<void>;
  /** Kills every pod, stops the watches and the log server. */
  stop(): Promise<void>;
}

/** Options of {@linkcode StatusCoalescer}. */
export interface StatusCoalescerOptions {
  /** Shortest time between two writes, in ms. @default {100} */
  intervalMs?: number;
  /** Called when a write fails (it is retried). @default {console.error} */
  onError?: (error: unknown) => void;
}

/**
 * Writes the latest of a stream of values, only when it differs (as JSON) from the last one
 * written, at most once per `intervalMs`; values set meanwhile replace each other.
 *
 * @example
 * ```ts
 * import { StatusCoalescer } from "./node_agent.ts";
 * const written: number[] = [];
 * const c = new StatusCoalescer<number>(async (v) => void written.push(v));
 * c.set(1);
 * c.set(2);
 * await c.flush();
 * // written: [2]
 * ```
 */
export class StatusCoalescer<T> {
  #write: (value: T) => Promise<void>;
  #intervalMs: number;
  #onError: (error: unknown) => void;
  #latest: { value: T } | undefined;
  #lastKey: string | undefined;
  #lastWriteAt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  #failures = 0;
  #closed = false;
  /** Writes done. */
  writes = 0;

  /**
   * Creates a coalescer; nothing is written before the first {@linkcode StatusCoalescer.set}.
   *
   * @param write Writes one value.
   * @param options Interval and error handler.
   */
  constructor(write: (value: T) => Promise<void>, options: StatusCoalescerOptions = {}) {
    const { intervalMs = 100, onError = (e) => console.error("node agent:", e) } = options;
    this.#write = write;
    this.#intervalMs = intervalMs;
    this.#onError = onError;
  }

  /**
   * Records the latest value and schedules its write.
   *
   * @param value The value (kept by reference; do not mutate it afterwards).
   */
  set(value: T): void {
    if (this.#closed) return;
    this.#latest = { value };
    this.#schedule(this.#lastWriteAt + this.#intervalMs - Date.now());
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined || this.#running || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#run();
    }, Math.max(0, delayMs));
  }

  #run(): Promise<void> {
    this.#running ??= (async () => {
      try {
        await this.#writeLatest();
      } finally {
        this.#running = undefined;
      }
      if (this.#pending()) {
        const backoff = this.#failures
          ? Math.min(5000, this.#intervalMs * 2 ** this.#failures)
          : this.#intervalMs;
        this.#schedule(this.#lastWriteAt + backoff - Date.now());
      }
    })();
    return this.#running;
  }

  #pending(): boolean {
    return !this.#closed && this.#latest !== undefined &&
      JSON.stringify(this.#latest.value) !== this.#lastKey;
  }

  async #writeLatest(): Promise<void> {
    if (!this.#pending() || !this.#latest) return;
    const value = this.#latest.value;
    const key = JSON.stringify(value);
    try {
      await this.#write(value);
      this.#lastKey = key;
      this.writes++;
      this.#failures = 0;
    } catch (error) {
      this.#failures++;
      this.#onError(error);
    } finally {
      this.#lastWriteAt = Date.now();
    }
  }

  /**
   * Writes the latest value now when it is not written yet (waits for a write in flight).
   *
   * @returns Resolves when the latest value is written (or the write failed).
   */
  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#running) await this.#running;
    if (this.#pending()) await this.#run();
  }

  /** Stops writing; a write in flight completes. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** A minimal authenticated REST client for the apiserver (bearer token, CA from the kubeconfig). */
class ApiClient {
  readonly server: string;
  readonly #token: string;
  readonly #client: Deno.HttpClient;

  constructor(kubeconfigPath: string) {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const cluster = kc.getCurrentCluster();
    const token = kc.getCurrentUser()?.token;
    if (!cluster || !token) {
      throw new NodeAgentError(
        "START_FAILED",
        `Cannot use kubeconfig ${kubeconfigPath}: it needs a current cluster and a bearer token`,
      );
    }
    const ca = cluster.caData
      ? atob(cluster.caData)
      : cluster.caFile
      ? Deno.readTextFileSync(cluster.caFile)
      : undefined;
    this.server = cluster.server.replace(/\/$/, "");
    this.#token = token;
    this.#client = Deno.createHttpClient(ca ? { caCerts: [ca] } : {});
  }

  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.server}${path}`, {
      ...init,
      client: this.#client,
      headers: { authorization: `Bearer ${this.#token}`, ...init.headers },
    });
  }

  /** JSON request; returns the status and the parsed body (undefined when not JSON). */
  async request(
    method: string,
    path: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<{ status: number; body: unknown }> {
    const response = await this.fetch(path, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": contentType } }),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { status: response.status, body: parsed };
  }

  async expect(method: string, path: string, body?: unknown, contentType?: string) {
    const result = await this.request(method, path, body, contentType);
    if (result.status >= 300) {
      const message = typeof result.body === "object" && result.body !== null &&
          "message" in result.body
        ? String(result.body.message)
        : String(result.body);
      throw new NodeAgentError(
        "API_ERROR",
        `${method} ${path} failed with HTTP ${result.status}: ${message}`,
      );
    }
    return result.body;
  }

  close(): void {
    this.#client.close();
  }
}

const MERGE_PATCH = "application/merge-patch+json";

interface PodEntry {
  key: string;
  namespace: string;
  name: string;
  uid: string;
  node: string;
  pod: V1Pod;
  dir: string;
  controller: AbortController;
  status: V1PodStatus | undefined;
  writer: StatusCoalescer<V1PodStatus>;
  fault: NodeAgentFault | undefined;
  faultTarget: string | undefined;
  imagePull: "ErrImagePull" | "ImagePullBackOff" | undefined;
  evicted: boolean;
  silent: boolean;
  done: Promise<void>;
  deleting?: Promise<void>;
}

interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: V1Pod & { code?: number };
}

interface PodList {
  metadata?: { resourceVersion?: string };
  items: V1Pod[];
}

function isTerminal(status: V1PodStatus | undefined): boolean {
  return status?.phase === "Succeeded" || status?.phase === "Failed";
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** The names of the ConfigMaps a pod needs before it can start (optional ones excluded). */
function requiredConfigMaps(pod: V1Pod): string[] {
  const names = new Set<string>();
  for (const v of pod.spec?.volumes ?? []) {
    if (v.configMap?.name && !v.configMap.optional) names.add(v.configMap.name);
  }
  const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  for (const c of containers) {
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.configMapKeyRef;
      if (ref?.name && !ref.optional) names.add(ref.name);
    }
    for (const e of c.envFrom ?? []) {
      if (e.configMapRef?.name && !e.configMapRef.optional) names.add(e.configMapRef.name);
    }
  }
  return [...names];
}

/** The names of the Secrets a pod's environment needs before it can start (optional ones excluded). */
function requiredSecrets(pod: V1Pod): string[] {
  const names = new Set<string>();
  const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  for (const c of containers) {
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref?.name && !ref.optional) names.add(ref.name);
    }
    for (const e of c.envFrom ?? []) {
      if (e.secretRef?.name && !e.secretRef.optional) names.add(e.secretRef.name);
    }
  }
  return [...names];
}

/** A Secret's `data` (base64) as text values. */
function decodeSecretData(secret: { data?: Record<string, string> }): Record<string, string> {
  const decoder = new TextDecoder();
  return Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([key, value]) => [
      key,
      decoder.decode(Uint8Array.from(atob(value), (c) => c.charCodeAt(0))),
    ]),
  );
}

/** The status of a pod whose containers wait to be created (as a kubelet reports it). */
function creatingStatus(pod: V1Pod, startTime: Date): V1PodStatus {
  const init = pod.spec?.initContainers ?? [];
  const waiting = (c: V1Container, reason: string): V1ContainerStatus => ({
    name: c.name,
    image: c.image ?? "",
    imageID: "",
    ready: false,
    restartCount: 0,
    started: false,
    state: { waiting: { reason } },
  });
  const notReady = (type: string, reason: string) => ({
    type,
    status: "False",
    reason,
    lastTransitionTime: startTime,
  });
  return {
    phase: "Pending",
    startTime,
    hostIP: "127.0.0.1",
    podIP: "127.0.0.1",
    conditions: [
      { type: "PodScheduled", status: "True", lastTransitionTime: startTime },
      init.length
        ? notReady("Initialized", "ContainersNotInitialized")
        : { type: "Initialized", status: "True", lastTransitionTime: startTime },
      notReady("ContainersReady", "ContainersNotReady"),
      notReady("Ready", "ContainersNotReady"),
    ],
    initContainerStatuses: init.map((c) => waiting(c, "PodInitializing")),
    containerStatuses: (pod.spec?.containers ?? []).map((c) =>
      waiting(c, init.length ? "PodInitializing" : "ContainerCreating")
    ),
  };
}

/** The container a fault applies to by default: `executor-0`, else the first container. */
function defaultFaultTarget(pod: V1Pod): string | undefined {
  const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  return (all.find((c) => c.name === "executor-0") ?? all[0])?.name;
}

function generateCertificate(dir: string): { cert: string; key: string } {
  const out = new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${dir}/kubelet.key`,
      "-out",
      `${dir}/kubelet.crt`,
      "-days",
      "2",
      "-subj",
      "/CN=planetary-node-agent",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    stdout: "null",
    stderr: "piped",
  }).outputSync();
  if (!out.success) {
    throw new NodeAgentError(
      "START_FAILED",
      `Cannot make the kubelet certificate: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return {
    cert: Deno.readTextFileSync(`${dir}/kubelet.crt`),
    key: Deno.readTextFileSync(`${dir}/kubelet.key`),
  };
}

class NodeAgentImpl implements NodeAgent {
  kubeletPort = 0;
  readonly #api: ApiClient;
  readonly #nodes: string[];
  readonly #workDir: string;
  readonly #namespace: string | undefined;
  readonly #faults: Map<string, NodeAgentFault>;
  readonly #runtime: ContainerRuntime;
  readonly #statusIntervalMs: number;
  readonly #imagePullBackOffMs: number;
  readonly #pods = new Map<string, PodEntry>();
  readonly #watches = new Map<string, { controller: AbortController; done: Promise<void> }>();
  readonly #stopping = new AbortController();
  #server: Deno.HttpServer | undefined;
  #writes = 0;

  constructor(options: NodeAgentOptions) {
    const {
      kubeconfigPath,
      nodeNames,
      workDir,
      namespace,
      faults = {},
      sharedHostPaths,
      hostEnv,
      runtime,
      statusIntervalMs = 100,
      imagePullBackOffMs = 300,
    } = options;
    this.#api = new ApiClient(kubeconfigPath);
    this.#nodes = [...nodeNames];
    this.#workDir = workDir;
    this.#namespace = namespace;
    this.#faults = new Map(Object.entries(faults));
    this.#runtime = runtime ?? new HostRuntime({
      probeDir: workDir,
      ...(sharedHostPaths ? { sharedHostPaths } : {}),
      ...(hostEnv ? { hostEnv } : {}),
    });
    this.#statusIntervalMs = statusIntervalMs;
    this.#imagePullBackOffMs = imagePullBackOffMs;
  }

  async start(): Promise<void> {
    await Deno.mkdir(`${this.#workDir}/pods`, { recursive: true });
    await this.#runtime.ensureAvailable();
    const { cert, key } = generateCertificate(this.#workDir);
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      cert,
      key,
      onListen: () => {},
    }, (request) => this.#serveLog(request));
    this.kubeletPort = (this.#server.addr as Deno.NetAddr).port;
    for (const node of this.#nodes) await this.#registerNode(node);
    for (const node of this.#nodes) {
      const controller = new AbortController();
      this.#watches.set(node, { controller, done: this.#watchNode(node, controller.signal) });
    }
  }

  statusWrites(): number {
    return this.#writes;
  }

  injectFault(podName: string, fault: NodeAgentFault): void {
    this.#faults.set(podName, fault);
  }

  async #registerNode(node: string): Promise<void> {
    const now = new Date().toISOString();
    await this.#api.expect("PATCH", `/api/v1/nodes/${node}/status`, {
      status: {
        addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
        daemonEndpoints: { kubeletEndpoint: { Port: this.kubeletPort } },
        conditions: [{
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "planetary node agent is posting ready status",
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        }],
      },
    }, MERGE_PATCH);
  }

  #podsPath(): string {
    return this.#namespace ? `/api/v1/namespaces/${this.#namespace}/pods` : "/api/v1/pods";
  }

  async #watchNode(node: string, signal: AbortSignal): Promise<void> {
    const selector = encodeURIComponent(`spec.nodeName=${node}`);
    let resourceVersion: string | undefined;
    let backoff = 100;
    while (!signal.aborted) {
      try {
        if (resourceVersion === undefined) {
          const list = await this.#api.expect(
            "GET",
            `${this.#podsPath()}?fieldSelector=${selector}`,
          ) as PodList;
          resourceVersion = list.metadata?.resourceVersion ?? "0";
          this.#reconcileList(node, list.items);
        }
        const response = await this.#api.fetch(
          `${this.#podsPath()}?watch=1&allowWatchBookmarks=true&timeoutSeconds=300` +
            `&fieldSelector=${selector}&resourceVersion=${resourceVersion}`,
          { signal },
        );
        if (response.status === 410) {
          await response.body?.cancel();
          resourceVersion = undefined;
          continue;
        }
        if (!response.ok || !response.body) {
          throw new Error(`watch of ${node} failed: HTTP ${response.status} ${await response
            .text()}`);
        }
        let buffer = "";
        for await (const chunk of response.body.pipeThrough(new TextDecoderStream())) {
          buffer += chunk;
          let newline: number;
          while ((newline = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, newline).trim();
            buffer = buffer.slice(newline + 1);
            if (!line) continue;
            const event = JSON.parse(line) as WatchEvent;
            if (event.type === "ERROR") {
              if (event.object.code === 410) resourceVersion = undefined;
              throw new Error(`watch of ${node}: ${JSON.stringify(event.object)}`);
            }
            resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
            if (event.type === "BOOKMARK") continue;
            if (event.type === "DELETED") this.#podGone(event.object);
            else this.#podSeen(node, event.object);
          }
        }
        backoff = 100;
      } catch (error) {
        if (signal.aborted) return;
        if (!(error instanceof Error && error.message.includes("410"))) {
          console.error(`node agent: ${error instanceof Error ? error.message : error}`);
        }
        await abortableDelay(backoff, signal);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  #reconcileList(node: string, pods: V1Pod[]): void {
    const seen = new Set(pods.map((p) => p.metadata?.uid));
    for (const entry of [...this.#pods.values()]) {
      if (entry.node === node && !seen.has(entry.uid)) this.#podGone(entry.pod);
    }
    for (const pod of pods) this.#podSeen(node, pod);
  }

  #podSeen(node: string, pod: V1Pod): void {
    if (this.#stopping.signal.aborted) return;
    const namespace = pod.metadata?.namespace ?? "default";
    const name = pod.metadata?.name ?? "";
    const uid = pod.metadata?.uid ?? "";
    const key = `${namespace}/${name}`;
    let entry = this.#pods.get(key);
    if (entry && entry.uid !== uid) {
      this.#podGone(entry.pod);
      entry = undefined;
    }
    if (pod.metadata?.deletionTimestamp) {
      if (entry) {
        entry.pod = pod;
        if (!entry.silent) void this.#confirmDeletion(entry);
      } else void this.#forceDelete(namespace, name, uid);
      return;
    }
    if (entry) {
      entry.pod = pod;
      return;
    }
    if (isTerminal(pod.status) || pod.status?.startTime) return; // not ours to run (again)
    this.#startPod(node, pod, key, namespace, name, uid);
  }

  #podGone(pod: V1Pod): void {
    const key = `${pod.metadata?.namespace ?? "default"}/${pod.metadata?.name ?? ""}`;
    const entry = this.#pods.get(key);
    if (!entry || entry.uid !== pod.metadata?.uid) return;
    void this.#kill(entry);
  }

  #faultOf(pod: V1Pod): NodeAgentFault | undefined {
    const annotation = pod.metadata?.annotations?.[FAULT_ANNOTATION];
    if (annotation) return parseFault(annotation);
    return this.#faults.get(pod.metadata?.name ?? "");
  }

  #startPod(
    node: string,
    pod: V1Pod,
    key: string,
    namespace: string,
    name: string,
    uid: string,
  ): void {
    let fault: NodeAgentFault | undefined;
    try {
      fault = this.#faultOf(pod);
    } catch (error) {
      console.error(`node agent: pod ${key}: ${error}`);
    }
    const entry: PodEntry = {
      key,
      namespace,
      name,
      uid,
      node,
      pod,
      dir: `${this.#workDir}/pods/${namespace}/${name}-${uid}`,
      controller: new AbortController(),
      status: undefined,
      writer: new StatusCoalescer<V1PodStatus>(async (status) => {
        const { status: code, body } = await this.#api.request(
          "PATCH",
          `/api/v1/namespaces/${namespace}/pods/${name}/status`,
          { metadata: { uid }, status },
          MERGE_PATCH,
        );
        if (code === 404 || code === 409) {
          entry.writer.close(); // gone or replaced: nothing more to write
          return;
        }
        if (code >= 300) {
          throw new NodeAgentError(
            "API_ERROR",
            `Cannot write the status of pod ${key}: HTTP ${code} ${JSON.stringify(body)}`,
          );
        }
        this.#writes++;
      }, { intervalMs: this.#statusIntervalMs }),
      fault,
      faultTarget: fault && fault.kind !== "StuckPending"
        ? fault.container ?? defaultFaultTarget(pod)
        : undefined,
      imagePull: undefined,
      evicted: false,
      silent: false,
      done: Promise.resolve(),
    };
    this.#pods.set(key, entry);
    entry.done = this.#run(entry).catch((error) => {
      console.error(`node agent: pod ${key} failed to run:`, error);
    });
  }

  #publish(entry: PodEntry, status: V1PodStatus): void {
    entry.status = status;
    this.#republish(entry);
  }

  #republish(entry: PodEntry): void {
    if (entry.silent || !entry.status) return;
    entry.writer.set(this.#effectiveStatus(entry, entry.status));
  }

  /** The status to write: what the pod runner reported, with the fault's changes on top. */
  #effectiveStatus(entry: PodEntry, raw: V1PodStatus): V1PodStatus {
    const status = structuredClone(raw);
    // the apiserver computed qosClass at creation and refuses to change it
    delete status.qosClass;
    const all = [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])];
    const target = all.find((s) => s.name === entry.faultTarget);
    if (entry.imagePull && target) {
      const image = target.image;
      const pullMessage =
        (entry.fault?.kind === "ErrImagePull" ? entry.fault.message : undefined) ??
          `failed to pull and unpack image "${image}": ${image}: not found (injected fault)`;
      target.state = {
        waiting: entry.imagePull === "ErrImagePull"
          ? { reason: "ErrImagePull", message: pullMessage }
          : {
            reason: "ImagePullBackOff",
            message: `Back-off pulling image "${image}": ErrImagePull: ${pullMessage}`,
          },
      };
      target.ready = false;
      target.started = false;
      if ((status.containerStatuses ?? []).every((s) => s.state?.waiting)) {
        status.phase = "Pending";
      }
    }
    if (entry.fault?.kind === "OOMKilled" && target?.state?.terminated?.exitCode === 137) {
      target.state.terminated.reason = "OOMKilled";
    }
    if (entry.evicted) {
      const now = new Date();
      status.phase = "Failed";
      status.reason = "Evicted";
      status.message = (entry.fault?.kind === "Evicted" ? entry.fault.message : undefined) ??
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 12Mi.";
      for (const s of all) {
        s.ready = false;
        s.started = false;
        if (s.state?.terminated) continue;
        const startedAt = s.state?.running?.startedAt;
        s.state = {
          terminated: s.state?.running
            ? {
              exitCode: 137,
              reason: "Error",
              finishedAt: now,
              ...(startedAt ? { startedAt } : {}),
            }
            : {
              exitCode: 137,
              reason: "ContainerStatusUnknown",
              message: "The container could not be located when the pod was terminated",
            },
        };
      }
      status.conditions = [
        ...(status.conditions ?? []).filter((c) => c.type !== "DisruptionTarget"),
        {
          type: "DisruptionTarget",
          status: "True",
          reason: "TerminationByKubelet",
          message: status.message,
          lastTransitionTime: now,
        },
      ].map((c) =>
        c.type === "Ready" || c.type === "ContainersReady"
          ? { ...c, status: "False", reason: "PodFailed" }
          : c
      );
    }
    return status;
  }

  /** Wraps the runtime to play the pod's fault when its target container comes. */
  #faultyRuntime(entry: PodEntry): ContainerRuntime {
    const inner = this.#runtime;
    return {
      name: inner.name,
      ensureAvailable: () => inner.ensureAvailable(),
      run: async (
        spec: ContainerRunSpec,
        signal: AbortSignal,
        onStarted: () => void,
      ): Promise<ContainerExit> => {
        const fault = entry.fault;
        if (!fault || spec.containerName !== entry.faultTarget) {
          return inner.run(spec, signal, onStarted);
        }
        switch (fault.kind) {
          case "ErrImagePull": {
            entry.imagePull = "ErrImagePull";
            this.#republish(entry);
            await abortableDelay(this.#imagePullBackOffMs, signal);
            entry.imagePull = "ImagePullBackOff";
            this.#republish(entry);
            await abortableDelay(2 ** 31 - 1, signal);
            return { exitCode: 137 };
          }
          case "OOMKilled":
            onStarted();
            return { exitCode: 137 };
          case "Evicted":
            onStarted();
            entry.evicted = true;
            entry.controller.abort();
            this.#republish(entry);
            return { exitCode: 137 };
          case "NodeLost":
          default:
            onStarted();
            await entry.writer.flush();
            entry.silent = true;
            entry.writer.close();
            entry.controller.abort();
            return { exitCode: 137 };
        }
      },
    };
  }

  async #run(entry: PodEntry): Promise<void> {
    const signal = entry.controller.signal;
    this.#publish(entry, creatingStatus(entry.pod, new Date()));
    if (entry.fault?.kind === "StuckPending") return;
    const configMaps = new Map<string, V1ConfigMap>();
    for (const name of requiredConfigMaps(entry.pod)) {
      while (!signal.aborted) {
        const { status, body } = await this.#api.request(
          "GET",
          `/api/v1/namespaces/${entry.namespace}/configmaps/${name}`,
        ).catch(() => ({ status: 0, body: undefined }));
        if (status === 200) {
          configMaps.set(name, body as V1ConfigMap);
          break;
        }
        await abortableDelay(200, signal);
      }
    }
    // Secrets for envFrom/secretKeyRef, like the ConfigMaps: waited for, values decoded
    const secrets = new Map<string, Record<string, string>>();
    for (const name of requiredSecrets(entry.pod)) {
      while (!signal.aborted) {
        const { status, body } = await this.#api.request(
          "GET",
          `/api/v1/namespaces/${entry.namespace}/secrets/${name}`,
        ).catch(() => ({ status: 0, body: undefined }));
        if (status === 200) {
          secrets.set(name, decodeSecretData(body as { data?: Record<string, string> }));
          break;
        }
        await abortableDelay(200, signal);
      }
    }
    if (signal.aborted) return;
    await Deno.remove(entry.dir, { recursive: true }).catch(() => {});
    await Deno.mkdir(entry.dir, { recursive: true });
    await runPod({
      pod: entry.pod,
      configMaps,
      secrets,
      podDir: entry.dir,
      runtime: this.#faultyRuntime(entry),
      signal,
      onStatus: (status) => {
        if (!entry.evicted) this.#publish(entry, status);
      },
    });
  }

  /** Kills the pod's processes and forgets it; no more status writes. */
  #kill(entry: PodEntry): Promise<void> {
    entry.deleting ??= (async () => {
      entry.writer.close();
      entry.controller.abort();
      await entry.done;
      await Deno.remove(entry.dir, { recursive: true }).catch(() => {});
      if (this.#pods.get(entry.key) === entry) this.#pods.delete(entry.key);
    })();
    return entry.deleting;
  }

  async #confirmDeletion(entry: PodEntry): Promise<void> {
    await this.#kill(entry);
    await this.#forceDelete(entry.namespace, entry.name, entry.uid);
  }

  async #forceDelete(namespace: string, name: string, uid: string): Promise<void> {
    if (this.#stopping.signal.aborted) return;
    try {
      const { status, body } = await this.#api.request(
        "DELETE",
        `/api/v1/namespaces/${namespace}/pods/${name}`,
        { kind: "DeleteOptions", apiVersion: "v1", gracePeriodSeconds: 0, preconditions: { uid } },
      );
      if (status >= 300 && status !== 404 && status !== 409) {
        console.error(
          `node agent: cannot delete pod ${namespace}/${name}: ${JSON.stringify(body)}`,
        );
      }
    } catch (error) {
      console.error(`node agent: cannot delete pod ${namespace}/${name}:`, error);
    }
  }

  async #serveLog(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const match = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (request.method !== "GET" || !match) return new Response("not found\n", { status: 404 });
    const [, namespace, podName, container] = match.map(decodeURIComponent) as [
      string,
      string,
      string,
      string,
    ];
    const entry = this.#pods.get(`${namespace}/${podName}`);
    if (!entry) return new Response(`pod "${podName}" not found\n`, { status: 404 });
    const known = [
      ...(entry.pod.spec?.initContainers ?? []),
      ...(entry.pod.spec?.containers ?? []),
    ].some((c) => c.name === container);
    if (!known) {
      return new Response(`container "${container}" not found in pod "${podName}"\n`, {
        status: 404,
      });
    }
    let text: string;
    try {
      text = await Deno.readTextFile(containerLogPath(entry.dir, container));
    } catch {
      return new Response(
        `container "${container}" in pod "${podName}" is waiting to start: ContainerCreating\n`,
        { status: 400 },
      );
    }
    const tailLines = Number(url.searchParams.get("tailLines") ?? NaN);
    if (Number.isInteger(tailLines) && tailLines >= 0) {
      const lines = text.split(/(?<=\n)/);
      text = tailLines === 0 ? "" : lines.slice(-tailLines).join("");
    }
    let bytes = new TextEncoder().encode(text);
    const limitBytes = Number(url.searchParams.get("limitBytes") ?? NaN);
    if (Number.isInteger(limitBytes) && limitBytes > 0) bytes = bytes.slice(0, limitBytes);
    return new Response(bytes, { headers: { "content-type": "text/plain" } });
  }

  async loseNode(nodeName: string): Promise<void> {
    const watch = this.#watches.get(nodeName);
    if (watch) {
      watch.controller.abort();
      await watch.done;
      this.#watches.delete(nodeName);
    }
    const lost = [...this.#pods.values()].filter((e) => e.node === nodeName);
    for (const entry of lost) entry.silent = true;
    await Promise.all(lost.map((e) => this.#kill(e)));
    const now = new Date().toISOString();
    await this.#api.expect("PATCH", `/api/v1/nodes/${nodeName}/status`, {
      status: {
        conditions: [{
          type: "Ready",
          status: "Unknown",
          reason: "NodeStatusUnknown",
          message: "Kubelet stopped posting node status.",
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        }],
      },
    }, MERGE_PATCH);
  }

  async stop(): Promise<void> {
    if (this.#stopping.signal.aborted) return;
    this.#stopping.abort();
    for (const watch of this.#watches.values()) watch.controller.abort();
    await Promise.all([...this.#watches.values()].map((w) => w.done));
    this.#watches.clear();
    await Promise.all([...this.#pods.values()].map((e) => this.#kill(e)));
    await this.#server?.shutdown();
    this.#api.close();
  }
}

/**
 * Starts a node agent for existing fake Nodes: registers them (InternalIP 127.0.0.1, kubelet
 * port of its log server, Ready), then runs every pod bound to them.
 *
 * @param options Nodes, kubeconfig, work directory, faults.
 * @returns The running agent; call `stop()` when done.
 * @throws {NodeAgentError} `START_FAILED` when the kubeconfig, certificate or runtime does not
 * work; `API_ERROR` when a Node cannot be registered.
 * @throws {LocalBackendError} `RUNTIME_UNAVAILABLE` when the host runtime cannot work here.
 * @example
 * ```ts ignore
 * const agent = await startNodeAgent({
 *   kubeconfigPath: cp.adminKubeconfigPath,
 *   nodeNames: cp.nodeNames,
 *   workDir: "/tmp/agent",
 *   faults: { "task-oom": { kind: "OOMKilled" } },
 * });
 * await agent.stop();
 * ```
 */
export async function startNodeAgent(options: NodeAgentOptions): Promise<NodeAgent> {
  const agent = new NodeAgentImpl(options);
  try {
    await agent.start();
  } catch (error) {
    await agent.stop();
    throw error;
  }
  return agent;
}
