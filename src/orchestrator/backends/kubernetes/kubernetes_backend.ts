/**
 * The `kubernetes` backend: runs task pods through the Kubernetes API with the least privilege
 * of `k8s/rbac/task-role.yaml` (pods, pods/log and configmaps in one namespace).
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import type { RequestOptions } from "node:https";
import type { ConfigMap, Pod } from "../../../pod/kubernetes_types.ts";
import { LABEL_MANAGED_BY, MANAGED_BY_VALUE } from "../../../pod/layout.ts";
import type { Backend, PodEvent, ReadLogOptions, TaskPodObjects } from "../../backend.ts";
import { KubernetesBackendError, statusOf, toBackendError } from "./kubernetes_backend_error.ts";
import { PodWatch, type PodWatchStats } from "./pod_watch.ts";
import { retry, type RetryOptions, transientError } from "./retry.ts";
import { errorText } from "../../_util.ts";
export type { Backend, PodEvent, ReadLogOptions, TaskPodObjects } from "../../backend.ts";
export type { ConfigMap, Pod } from "../../../pod/kubernetes_types.ts";
export type { RetryDecision, RetryOptions } from "./retry.ts";
export type { PodWatchStats } from "./pod_watch.ts";

/** The API verbs the backend uses, as RBAC names them. */
export type ApiVerb = "create" | "get" | "list" | "watch" | "delete";

/** One structured log entry of the backend. */
export type KubernetesBackendLogEntry = Record<string, unknown> & { msg: string };

/** Options of {@linkcode KubernetesBackend}. */
export interface KubernetesBackendOptions {
  /** Namespace of the task pods and ConfigMaps. */
  namespace: string;
  /** Kubeconfig file to load. @default {the default loading rules (KUBECONFIG, ~/.kube/config, in-cluster)} */
  kubeconfigPath?: string;
  /** Use the pod's service account (`KubeConfig.loadFromCluster`). @default {false} */
  inCluster?: boolean;
  /** Field manager of the objects the backend creates. @default {"planetary"} */
  fieldManager?: string;
  /** Retries of every call except the watch (which retries forever). @default {see RetryOptions} */
  retry?: Omit<RetryOptions, "signal" | "retryable">;
  /**
   * Grace period of pod deletions, in seconds. Undefined leaves the pod's own
   * (`terminationGracePeriodSeconds`, 30 by default); 0 deletes at once without waiting for
   * the kubelet.
   * @default {undefined}
   */
  deleteGracePeriodSeconds?: number;
  /** Largest container log read by `readLog`, in bytes (the head of the log). @default {1048576} */
  logLimitBytes?: number;
  /**
   * Server-side timeout of each watch request, in seconds; the loop then reconnects from the
   * last resourceVersion. @default {a random value in [300, 600), like client-go}
   */
  watchTimeoutSeconds?: number;
  /** Receives structured log entries. @default {one JSON line on stderr} */
  log?: (entry: KubernetesBackendLogEntry) => void;
}

const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE}`;
const LIST_PAGE = 500;

function loadKubeConfig(options: KubernetesBackendOptions): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  try {
    if (options.kubeconfigPath !== undefined) kc.loadFromFile(options.kubeconfigPath);
    else if (options.inCluster) kc.loadFromCluster();
    else kc.loadFromDefault();
  } catch (error) {
    throw new KubernetesBackendError(
      "CONFIG",
      `Cannot load the Kubernetes configuration: ${errorText(error)}`,
      0,
      { cause: error },
    );
  }
  return kc;
}

function pemText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) return value.map((v) => pemText(v) ?? "").join("\n") || undefined;
  if (value instanceof Uint8Array) return new TextDecoder().decode(value);
  return typeof value === "string" ? value : undefined;
}

/**
 * Runs task pods in one namespace of a Kubernetes cluster.
 *
 * - `createPod` creates the pod, then its ConfigMap owned by the pod (ownerReference with the
 *   pod's uid, `blockOwnerDeletion: false`, which needs no `pods/finalizers` permission), so
 *   garbage collection removes the ConfigMap with the pod. The pod's containers mount the
 *   ConfigMap: a kubelet that sees the pod first keeps it in ContainerCreating and retries the
 *   mount until the ConfigMap exists (seconds later at most), so this order is safe, and it is
 *   the only order that gives the ConfigMap its owner's uid.
 * - A pod that already exists (409) is adopted: no error, and its ConfigMap is ensured.
 * - `deletePod` deletes the pod (background propagation) and the ConfigMap explicitly (so it
 *   also goes where no garbage collector runs); what is already gone is no error.
 * - `watchPods` shares one list+watch (see `PodWatch`) among all its callers.
 * - Every call except the watch is retried on 429, 5xx and network errors; failures surface as
 *   {@linkcode KubernetesBackendError} with the apiserver's message (403 names RBAC/Pod Security).
 * - The watch uses Deno's `fetch` with the kubeconfig's CA, client certificate and token (read
 *   again for each connection, so rotated tokens are picked up). `insecure-skip-tls-verify` is
 *   not supported: put the CA in the kubeconfig.
 *
 * @example
 * ```ts ignore
 * import { KubernetesBackend } from "./kubernetes_backend.ts";
 * const backend = new KubernetesBackend({ namespace: "planetary-tasks", inCluster: true });
 * await backend.createPod(buildTaskPod(task, config));
 * const pod = await backend.getPod("task-abc");
 * await backend.close();
 * ```
 */
export class KubernetesBackend implements Backend {
  /** Short name for logs and service-info. */
  readonly name = "kubernetes";
  /** Namespace of the task pods. */
  readonly namespace: string;
  #kc: k8s.KubeConfig;
  #core: k8s.CoreV1Api;
  #fieldManager: string;
  #retry: Omit<RetryOptions, "signal" | "retryable">;
  #graceSeconds: number | undefined;
  #logLimitBytes: number;
  #watchTimeoutSeconds: number | undefined;
  #log: (entry: KubernetesBackendLogEntry) => void;
  #counts = new Map<string, number>();
  #watch: PodWatch;
  #httpClient: { key: string; client: Deno.HttpClient } | undefined;
  #closed = new AbortController();

  /**
   * Loads the configuration; no request is made until a method is called.
   *
   * @param options Namespace, configuration source, retries and limits.
   * @throws {KubernetesBackendError} `CONFIG` when the configuration cannot be loaded or asks
   * for `insecure-skip-tls-verify`.
   */
  constructor(options: KubernetesBackendOptions) {
    const {
      namespace,
      fieldManager = "planetary",
      retry: retryOptions = {},
      deleteGracePeriodSeconds,
      logLimitBytes = 1024 * 1024,
      watchTimeoutSeconds,
      log = (entry) => console.error(JSON.stringify({ time: new Date().toISOString(), ...entry })),
    } = options;
    this.namespace = namespace;
    this.#kc = loadKubeConfig(options);
    const cluster = this.#kc.getCurrentCluster();
    if (!cluster) {
      throw new KubernetesBackendError("CONFIG", "Cannot use the kubeconfig: it has no cluster");
    }
    if (cluster.skipTLSVerify) {
      throw new KubernetesBackendError(
        "CONFIG",
        `Cannot use cluster "${cluster.name}": insecure-skip-tls-verify is not supported; ` +
          "put the cluster's CA in the kubeconfig",
      );
    }
    this.#core = this.#kc.makeApiClient(k8s.CoreV1Api);
    this.#fieldManager = fieldManager;
    this.#retry = retryOptions;
    this.#graceSeconds = deleteGracePeriodSeconds;
    this.#logLimitBytes = logLimitBytes;
    this.#watchTimeoutSeconds = watchTimeoutSeconds;
    this.#log = log;
    const maxDelayMs = retryOptions.maxDelayMs ?? 5000;
    this.#watch = new PodWatch({
      list: (signal) => this.#listAll(signal, false),
      openWatch: (rv, signal) => this.#openWatch(rv, signal),
      initialDelayMs: retryOptions.initialDelayMs ?? 200,
      maxDelayMs,
      idleTimeoutMs: ((watchTimeoutSeconds ?? 600) + 60) * 1000,
      log,
    });
  }

  /**
   * API requests made so far, per verb (each retry attempt counts; so does each watch
   * connection).
   *
   * @returns A fresh object `{ create, get, list, watch, delete }`.
   */
  requestCounts(): Record<ApiVerb, number> {
    const byVerb: Record<ApiVerb, number> = { create: 0, get: 0, list: 0, watch: 0, delete: 0 };
    for (const [key, n] of this.#counts) byVerb[key.split(" ")[0] as ApiVerb] += n;
    return byVerb;
  }

  /**
   * API requests made so far, per verb and resource (`"create pods"`, `"get pods/log"`, …).
   *
   * @returns A fresh object.
   */
  requestCountsByResource(): Record<string, number> {
    return Object.fromEntries(this.#counts);
  }

  /** What the pod watch did so far (lists, watch requests, 410s, failures). */
  get watchStats(): PodWatchStats {
    return this.#watch.stats;
  }

  #count(verb: ApiVerb, resource: string): void {
    const key = `${verb} ${resource}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  /** One API call with retries; throws the last raw error. */
  #call<T>(verb: ApiVerb, resource: string, fn: () => Promise<T>): Promise<T> {
    return retry(() => {
      this.#count(verb, resource);
      return fn();
    }, {
      ...this.#retry,
      signal: this.#closed.signal,
      onRetry: (error, attempt, delayMs) =>
        this.#log({
          msg: "kubernetes call failed, retrying",
          call: `${verb} ${resource}`,
          attempt,
          delay_ms: delayMs,
          error: errorText(error),
        }),
    });
  }

  #where(kind: string, name: string): string {
    return `${kind} "${name}" in namespace "${this.namespace}"`;
  }

  /**
   * Creates the pod, then its ConfigMap owned by it. An existing pod is adopted (no error) and
   * its ConfigMap ensured; an existing ConfigMap of an older pod of the same name is replaced.
   *
   * @param objects The pod and ConfigMap from the pod builder (their namespace is replaced by
   * the backend's).
   * @returns When both exist.
   * @throws {KubernetesBackendError} `FORBIDDEN` (RBAC, Pod Security), `INVALID` (validation),
   * `UNAVAILABLE` (after retries), …
   */
  async createPod(objects: TaskPodObjects): Promise<void> {
    const { pod, configMap } = objects;
    const name = pod.metadata?.name;
    if (!name) throw new KubernetesBackendError("INVALID", "Cannot create a pod without a name");
    const body: Pod = { ...pod, metadata: { ...pod.metadata, namespace: this.namespace } };
    let uid: string | undefined;
    for (let attempt = 1; uid === undefined; attempt++) {
      try {
        const created = await this.#call("create", "pods", () =>
          this.#core.createNamespacedPod({
            namespace: this.namespace,
            body,
            fieldManager: this.#fieldManager,
          }));
        uid = created.metadata?.uid;
        if (!uid) throw new Error("the apiserver answered without a uid");
      } catch (error) {
        if (statusOf(error) !== 409) {
          throw toBackendError(error, `create ${this.#where("pod", name)}`);
        }
        const existing = await this.getPod(name);
        uid = existing?.metadata?.uid;
        // deleted between our create and get: create again, once
        if (uid === undefined && attempt >= 2) {
          throw new KubernetesBackendError(
            "CONFLICT",
            `Cannot create ${this.#where("pod", name)}: it exists, then vanished`,
            409,
          );
        }
      }
    }
    await this.#ensureConfigMap(configMap, name, uid);
  }

  async #ensureConfigMap(configMap: ConfigMap, podName: string, podUid: string): Promise<void> {
    const name = configMap.metadata?.name ?? podName;
    const body: ConfigMap = {
      ...configMap,
      metadata: {
        ...configMap.metadata,
        name,
        namespace: this.namespace,
        ownerReferences: [{
          apiVersion: "v1",
          kind: "Pod",
          name: podName,
          uid: podUid,
          controller: true,
          blockOwnerDeletion: false,
        }],
      },
    };
    const what = `create ${this.#where("configmap", name)}`;
    for (let attempt = 1;; attempt++) {
      try {
        await this.#call("create", "configmaps", () =>
          this.#core.createNamespacedConfigMap({
            namespace: this.namespace,
            body,
            fieldManager: this.#fieldManager,
          }));
        return;
      } catch (error) {
        if (statusOf(error) !== 409) throw toBackendError(error, what);
      }
      const existing = await this.#readConfigMap(name);
      if (!existing) continue; // deleted meanwhile: create again
      const owners = existing.metadata?.ownerReferences ?? [];
      if (owners.some((o) => o.uid === podUid)) return;
      if (attempt >= 3) {
        throw new KubernetesBackendError(
          "CONFLICT",
          `Cannot ${what}: it exists and belongs to another owner`,
          409,
        );
      }
      // left by an older pod of the same name: its garbage collection would delete it under the
      // new pod, so replace it now
      await this.#deleteConfigMap(name, existing.metadata?.uid);
    }
  }

  async #readConfigMap(name: string): Promise<ConfigMap | undefined> {
    try {
      return await this.#call(
        "get",
        "configmaps",
        () => this.#core.readNamespacedConfigMap({ name, namespace: this.namespace }),
      );
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw toBackendError(error, `get ${this.#where("configmap", name)}`);
    }
  }

  async #deleteConfigMap(name: string, uid?: string): Promise<void> {
    try {
      await this.#call("delete", "configmaps", () =>
        this.#core.deleteNamespacedConfigMap({
          name,
          namespace: this.namespace,
          ...(uid ? { body: { preconditions: { uid } } } : {}),
        }));
    } catch (error) {
      const status = statusOf(error);
      // 404: already gone; 409: the precondition failed, someone replaced it
      if (status !== 404 && status !== 409) {
        throw toBackendError(error, `delete ${this.#where("configmap", name)}`);
      }
    }
  }

  /**
   * Deletes the pod (background propagation) and its ConfigMap (named like the pod, as the pod
   * builder names it); either being gone already is no error.
   *
   * @param name The pod's name.
   * @returns When both deletions were accepted (the pod may still be terminating).
   * @throws {KubernetesBackendError} When the apiserver refuses.
   */
  async deletePod(name: string): Promise<void> {
    try {
      await this.#call("delete", "pods", () =>
        this.#core.deleteNamespacedPod({
          name,
          namespace: this.namespace,
          propagationPolicy: "Background",
          ...(this.#graceSeconds !== undefined ? { gracePeriodSeconds: this.#graceSeconds } : {}),
        }));
    } catch (error) {
      if (statusOf(error) !== 404) {
        throw toBackendError(error, `delete ${this.#where("pod", name)}`);
      }
    }
    await this.#deleteConfigMap(name);
  }

  /**
   * Reads one pod.
   *
   * @param name The pod's name.
   * @returns The pod, or undefined when it does not exist.
   * @throws {KubernetesBackendError} When the apiserver refuses.
   */
  async getPod(name: string): Promise<Pod | undefined> {
    try {
      return await this.#call(
        "get",
        "pods",
        () => this.#core.readNamespacedPod({ name, namespace: this.namespace }),
      );
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw toBackendError(error, `get ${this.#where("pod", name)}`);
    }
  }

  /**
   * Lists every pod labelled `app.kubernetes.io/managed-by=planetary` in the namespace.
   *
   * @returns The pods (all pages).
   * @throws {KubernetesBackendError} When the apiserver refuses.
   */
  async listPods(): Promise<Pod[]> {
    return (await this.#listAll(this.#closed.signal, true)).items;
  }

  async #listAll(
    signal: AbortSignal,
    withRetry: boolean,
  ): Promise<{ items: Pod[]; resourceVersion: string }> {
    const items: Pod[] = [];
    let resourceVersion = "";
    let next: string | undefined;
    do {
      const page = (): Promise<k8s.V1PodList> =>
        this.#core.listNamespacedPod({
          namespace: this.namespace,
          labelSelector: MANAGED_SELECTOR,
          limit: LIST_PAGE,
          ...(next ? { _continue: next } : {}),
        });
      let list: k8s.V1PodList;
      try {
        list = withRetry ? await this.#call("list", "pods", page) : await (() => {
          this.#count("list", "pods");
          return page();
        })();
      } catch (error) {
        throw toBackendError(error, `list pods in namespace "${this.namespace}"`);
      }
      if (signal.aborted) break;
      items.push(...list.items);
      // every page carries the snapshot's resourceVersion; keep the first
      resourceVersion ||= list.metadata?.resourceVersion ?? "";
      next = list.metadata?._continue || undefined;
    } while (next);
    return { items, resourceVersion };
  }

  async #fetchClient(): Promise<{ client: Deno.HttpClient; headers: Headers }> {
    const options: RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(options);
    const ca = pemText(options.ca);
    const cert = pemText(options.cert);
    const key = pemText(options.key);
    const cacheKey = `${ca}\0${cert}\0${key}`;
    if (this.#httpClient?.key !== cacheKey) {
      this.#httpClient?.client.close();
      const client = Deno.createHttpClient({
        ...(ca ? { caCerts: [ca] } : {}),
        ...(cert && key ? { cert, key } : {}),
      });
      this.#httpClient = { key: cacheKey, client };
    }
    const headers = new Headers({ accept: "application/json" });
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (value === undefined) continue;
      headers.set(name, Array.isArray(value) ? value.join(", ") : String(value));
    }
    if (options.auth) headers.set("authorization", `Basic ${btoa(options.auth)}`);
    return { client: this.#httpClient.client, headers };
  }

  async #openWatch(resourceVersion: string, signal: AbortSignal): Promise<Response> {
    const cluster = this.#kc.getCurrentCluster()!;
    const url = new URL(
      `${cluster.server.replace(/\/$/, "")}/api/v1/namespaces/${
        encodeURIComponent(this.namespace)
      }/pods`,
    );
    const timeout = this.#watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300);
    url.searchParams.set("watch", "1");
    url.searchParams.set("labelSelector", MANAGED_SELECTOR);
    url.searchParams.set("allowWatchBookmarks", "true");
    url.searchParams.set("resourceVersion", resourceVersion);
    url.searchParams.set("timeoutSeconds", String(timeout));
    const { client, headers } = await this.#fetchClient();
    this.#count("watch", "pods");
    return await fetch(url, { client, headers, signal });
  }

  /**
   * Calls `onEvent` for every change to a managed pod until `signal` aborts: ADDED for each pod
   * listed first, then the watch's events; after a `410 Gone` the differences found by a new
   * list. One list+watch serves every caller. Never rejects.
   *
   * @param onEvent Receives each event.
   * @param signal Ends the watch.
   * @returns When `signal` aborted or the backend closed.
   */
  async watchPods(onEvent: (event: PodEvent) => void, signal: AbortSignal): Promise<void> {
    await this.#watch.subscribe(onEvent, AbortSignal.any([signal, this.#closed.signal]));
  }

  /**
   * Reads the log of one container: its first `logLimitBytes` bytes, or with `tailLines` the
   * first `logLimitBytes` bytes of its last lines.
   *
   * @param podName The pod.
   * @param container The container.
   * @param options `tailLines`: read only the end of the log.
   * @returns The log; "" when the pod, the container or its log does not exist (yet), or the
   * pod's node has no kubelet address (the apiserver's "no preferred addresses found").
   * @throws {KubernetesBackendError} When the apiserver refuses (403) or stays unavailable.
   */
  async readLog(
    podName: string,
    container: string,
    options: ReadLogOptions = {},
  ): Promise<string> {
    try {
      const text = await retry(() => {
        this.#count("get", "pods/log");
        return this.#core.readNamespacedPodLog({
          name: podName,
          namespace: this.namespace,
          container,
          limitBytes: this.#logLimitBytes,
          ...(options.tailLines === undefined ? {} : { tailLines: options.tailLines }),
        });
      }, {
        ...this.#retry,
        signal: this.#closed.signal,
        retryable: (error) => noKubelet(error) ? false : transientError(error),
      });
      return typeof text === "string" ? text : String(text ?? "");
    } catch (error) {
      const status = statusOf(error);
      if (status === 404 || status === 400) return "";
      if (noKubelet(error)) {
        this.#log({ msg: "no kubelet can serve the log", pod: podName, container });
        return "";
      }
      throw toBackendError(
        error,
        `read the log of container "${container}" of ${this.#where("pod", podName)}`,
      );
    }
  }

  /** Stops the watch and pending retries, and releases the HTTP client. */
  async close(): Promise<void> {
    this.#closed.abort();
    await this.#watch.stop();
    this.#httpClient?.client.close();
    this.#httpClient = undefined;
  }
}

/**
 * Whether the apiserver answered that the pod's node has no address to reach a kubelet at
 * (a Node object without a kubelet behind it): nothing will ever serve that log, so retrying is
 * pointless. Other 5xx answers (a kubelet briefly unreachable) are retried, then thrown, so the
 * caller tries again later instead of losing the report.
 */
function noKubelet(error: unknown): boolean {
  if (statusOf(error) !== 500 || !(error instanceof k8s.ApiException)) return false;
  return /no preferred addresses found/.test(String((error as k8s.ApiException<unknown>).body));
}
