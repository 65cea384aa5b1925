/**
 * The Helm chart's own workloads, run on the test cluster (`./cluster.ts`) as a kubelet would
 * run them, minus the container engine: `helm template` with the test's values, every
 * non-workload object (Namespaces, ServiceAccounts, Roles, RoleBindings, ConfigMaps, Services…)
 * created in the real apiserver, then each Job (the migration hook) and each Deployment's pod
 * template run from its rendered spec:
 *
 * - **argv**: the image's ENTRYPOINT/CMD from `k8s/Dockerfile` (`./images.ts`), replaced by the
 *   container's `command`/`args`, `$(VAR)` expanded; the compiled binary it names becomes
 *   `deno run` of its entry file with exactly its deno.json `compile:*` permission flags;
 * - **env**: the image's ENV, `HOSTNAME`, `KUBERNETES_SERVICE_HOST`/`_PORT` (the apiserver),
 *   then the container's `env` with `value`, `secretKeyRef`, `configMapKeyRef` and `fieldRef`
 *   resolved from the objects in the apiserver;
 * - **volumes**: `configMap`/`secret` written as files (read-only, as a kubelet mounts them),
 *   `emptyDir` as a fresh world-writable directory; the service account token (a real
 *   TokenRequest for the pod's `serviceAccountName`), the apiserver CA and the namespace at
 *   `/var/run/secrets/kubernetes.io/serviceaccount`, only when the pod (or else its
 *   ServiceAccount) automounts it;
 * - **securityContext**: `readOnlyRootFilesystem`, `runAsUser`/`runAsGroup` (else the image's
 *   USER), `fsGroup`/`supplementalGroups`, `runAsNonRoot`, `allowPrivilegeEscalation: false`,
 *   `capabilities.drop: [ALL]`, through `./pod_sandbox.ts`;
 * - **probes**: `startupProbe` then `readinessProbe` (`httpGet` on the pod IP 127.0.0.1) must
 *   pass before the workload counts as started.
 *
 * What a compiled binary would not need, and `deno run` does: the source tree, read-only at
 * `/planetary/source`, and the Deno cache (the dependencies a binary embeds), read-only at the
 * container's `DENO_DIR`. Nothing else is added to the pod spec.
 *
 * One pod per Deployment (the host network has one of each port); seccomp profiles,
 * resources and network policies are not enforced.
 *
 * The node agent runs task pods with the host runtime; {@linkcode imageRuntime} makes it run the
 * chart's transporter image the same way (its binary → `deno run`).
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import type { V1Container, V1EnvVar, V1PodSpec, V1Probe } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { helmTemplate } from "../../k8s/tools/render.ts";
import { expandVariables } from "../../src/orchestrator/backends/local/pod_runner.ts";
import { type ClusterInfra, CONTAINER_DENO_DIR, CONTAINER_SOURCE_DIR } from "./cluster.ts";
import { createDatabase } from "./postgres.ts";
import {
  containerArgv,
  denoRunCommand,
  type Image,
  type ImageCatalog,
  loadImageCatalog,
} from "./images.ts";
import type { ContainerRuntime } from "./node_agent.ts";
import {
  type SandboxedProcess,
  type SandboxMount,
  type SandboxSpec,
  startSandboxed,
} from "./pod_sandbox.ts";

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
/** Where a kubelet mounts the service account token, CA and namespace. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** Kinds this harness runs itself instead of creating them in the apiserver. */
const WORKLOAD_KINDS = new Set(["Deployment", "Job", "StatefulSet", "DaemonSet", "ReplicaSet"]);

/** A Kubernetes object as `helm template` rendered it. */
export interface RenderedObject {
  /** API group and version. */
  apiVersion: string;
  /** Kind. */
  kind: string;
  /** Name, namespace, labels, annotations. */
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  /** The rest. */
  [field: string]: unknown;
}

/** A Secret the test creates (after the chart's Namespaces, before anything runs). */
export interface TestSecret {
  /** Namespace. */
  namespace: string;
  /** Name. */
  name: string;
  /** Keys and (plain text) values. */
  data: Record<string, string>;
}

/** Options of {@linkcode startChartDeployment}. */
export interface ChartDeploymentOptions {
  /** The helm binary. */
  helm: string;
  /** Values (written to a values file). The database Secret's name and key are read here. */
  values: Record<string, unknown>;
  /** Release name. @default {"planetary"} */
  release?: string;
  /** Release namespace (created here, as `helm install --create-namespace` would). */
  namespace: string;
  /** Name of the database created for this deployment. @default {"planetary_chart"} */
  databaseName?: string;
  /** More Secrets to create. @default {[]} */
  secrets?: TestSecret[];
  /** How long a workload may take to pass its probes, ms. @default {120000} */
  startTimeoutMs?: number;
}

/** One running pod of a Deployment. */
export interface RunningWorkload {
  /** The Deployment. */
  deployment: RenderedObject;
  /** `app.kubernetes.io/component` of its pod template. */
  component: string;
  /** The pod's name (also `POD_NAME`/`HOSTNAME`). */
  podName: string;
  /** Its (single) container as rendered. */
  container: V1Container;
  /** How it runs. */
  sandbox: SandboxSpec;
  /** The running program. */
  process: SandboxedProcess;
}

/** A finished Job pod. */
export interface FinishedJob {
  /** The Job's name. */
  name: string;
  /** How its container ended. */
  status: Deno.CommandStatus;
  /** What it wrote. */
  log: string;
}

/** The chart, deployed on the test cluster. */
export interface ChartDeployment {
  /** Everything `helm template` rendered. */
  readonly objects: readonly RenderedObject[];
  /** The database URL (the value of the database Secret). */
  readonly databaseUrl: string;
  /** The Jobs, run to completion before the Deployments started. */
  readonly jobs: readonly FinishedJob[];
  /** The Deployments' pods, in start order. */
  readonly workloads: readonly RunningWorkload[];
  /**
   * The pod of a component.
   *
   * @param component `app.kubernetes.io/component` (`api`, `orchestrator`, `monitor`).
   * @returns Its running pod.
   * @throws {Error} When the chart has no such Deployment.
   */
  workload(component: string): RunningWorkload;
  /**
   * The `containerPort` of a named port of a component's container.
   *
   * @param component The component.
   * @param name The port's name.
   * @returns The port number.
   */
  port(component: string, name: string): number;
  /** Every workload's log, for a failing test. */
  logs(): string;
  /**
   * Sends SIGTERM to every workload (as a pod deletion does) and waits for their exits.
   *
   * @returns Exit status by component.
   */
  stop(): Promise<Map<string, Deno.CommandStatus>>;
}

/**
 * Parses a rendered YAML stream (empty documents dropped).
 *
 * @param text `helm template` output.
 * @returns The objects.
 * @throws {Error} On a YAML error.
 */
export function parseObjects(text: string): RenderedObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw doc.errors[0];
      return doc.toJS() as RenderedObject | null;
    })
    .filter((obj): obj is RenderedObject => obj !== null);
}

function randomName(length: number): string {
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  return Array.from(crypto.getRandomValues(new Uint8Array(length)), (b) => alphabet[b % 27])
    .join("");
}

function get(value: unknown, path: string): unknown {
  let current = value;
  for (const key of path.split(".")) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function decode(base64: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
}

/** Reads Secrets and ConfigMaps from the apiserver, once each. */
class ObjectReader {
  #core: k8s.CoreV1Api;
  #secrets = new Map<string, Record<string, string>>();
  #configMaps = new Map<string, Record<string, string>>();

  constructor(core: k8s.CoreV1Api) {
    this.#core = core;
  }

  async secret(namespace: string, name: string): Promise<Record<string, string>> {
    const key = `${namespace}/${name}`;
    let data = this.#secrets.get(key);
    if (!data) {
      const secret = await this.#core.readNamespacedSecret({ name, namespace });
      data = Object.fromEntries(
        Object.entries(secret.data ?? {}).map(([k, v]) => [k, decode(v)]),
      );
      this.#secrets.set(key, data);
    }
    return data;
  }

  async configMap(namespace: string, name: string): Promise<Record<string, string>> {
    const key = `${namespace}/${name}`;
    let data = this.#configMaps.get(key);
    if (!data) {
      const configMap = await this.#core.readNamespacedConfigMap({ name, namespace });
      data = { ...configMap.data };
      this.#configMaps.set(key, data);
    }
    return data;
  }
}

/** What a pod needs to be run: where it is, who it is, what the apiserver holds. */
interface PodContext {
  namespace: string;
  podName: string;
  labels: Record<string, string>;
  spec: V1PodSpec;
  dir: string;
  reader: ObjectReader;
  core: k8s.CoreV1Api;
  infra: ClusterInfra;
  catalog: ImageCatalog;
}

async function resolveEnv(
  c: V1Container,
  image: Image,
  ctx: PodContext,
): Promise<[string, string][]> {
  const apiserver = new URL(ctx.infra.controlPlane.server);
  const env = new Map<string, string>(image.env);
  env.set("HOSTNAME", ctx.podName);
  env.set("KUBERNETES_SERVICE_HOST", apiserver.hostname);
  env.set("KUBERNETES_SERVICE_PORT", apiserver.port);
  if (c.envFrom?.length) throw new Error(`container ${c.name}: envFrom is not supported here`);
  for (const e of c.env ?? []) env.set(e.name, await envValue(e, env, ctx));
  return [...env];
}

async function envValue(e: V1EnvVar, env: Map<string, string>, ctx: PodContext): Promise<string> {
  const from = e.valueFrom;
  if (!from) return expandVariables(e.value ?? "", env);
  if (from.secretKeyRef) {
    const { name = "", key } = from.secretKeyRef;
    const value = (await ctx.reader.secret(ctx.namespace, name))[key];
    if (value === undefined) throw new Error(`env ${e.name}: secret ${name} has no key ${key}`);
    return value;
  }
  if (from.configMapKeyRef) {
    const { name = "", key } = from.configMapKeyRef;
    const value = (await ctx.reader.configMap(ctx.namespace, name))[key];
    if (value === undefined) throw new Error(`env ${e.name}: configmap ${name} has no key ${key}`);
    return value;
  }
  if (from.fieldRef) {
    const path = from.fieldRef.fieldPath;
    const label = /^metadata\.labels\['(.+)'\]$/.exec(path)?.[1];
    if (label !== undefined) return ctx.labels[label] ?? "";
    const fields: Record<string, string> = {
      "metadata.name": ctx.podName,
      "metadata.namespace": ctx.namespace,
      "spec.serviceAccountName": ctx.spec.serviceAccountName ?? "default",
      "spec.nodeName": "localhost",
      "status.podIP": "127.0.0.1",
      "status.hostIP": "127.0.0.1",
    };
    const value = fields[path];
    if (value === undefined) throw new Error(`env ${e.name}: fieldPath ${path} is not supported`);
    return value;
  }
  throw new Error(`env ${e.name}: this valueFrom is not supported here`);
}

async function writeFiles(dir: string, files: Record<string, string>, mode: number) {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const path = `${dir}/${name}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, content, { mode });
    await Deno.chmod(path, mode);
  }
  await Deno.chmod(dir, 0o755);
}

function selectItems(
  data: Record<string, string>,
  items: { key: string; path: string }[] | undefined,
): Record<string, string> {
  if (!items?.length) return data;
  return Object.fromEntries(items.map((item) => {
    const value = data[item.key];
    if (value === undefined) throw new Error(`volume item: no key ${item.key}`);
    return [item.path, value];
  }));
}

/** Materializes the pod's volumes; returns the host directory of each by name. */
async function materializeVolumes(ctx: PodContext): Promise<Map<string, SandboxMount["source"]>> {
  const sources = new Map<string, string>();
  for (const volume of ctx.spec.volumes ?? []) {
    const path = `${ctx.dir}/volumes/${volume.name}`;
    if (volume.emptyDir) {
      // a kubelet creates emptyDir volumes world-writable
      await Deno.mkdir(path, { recursive: true });
      await Deno.chmod(path, 0o777);
    } else if (volume.configMap) {
      const data = await ctx.reader.configMap(ctx.namespace, volume.configMap.name ?? "");
      await writeFiles(
        path,
        selectItems(data, volume.configMap.items),
        volume.configMap.defaultMode ?? 0o644,
      );
    } else if (volume.secret) {
      const data = await ctx.reader.secret(ctx.namespace, volume.secret.secretName ?? "");
      await writeFiles(
        path,
        selectItems(data, volume.secret.items),
        volume.secret.defaultMode ?? 0o644,
      );
    } else {
      throw new Error(`volume ${volume.name}: only emptyDir, configMap and secret are supported`);
    }
    sources.set(volume.name, path);
  }
  return sources;
}

/** Reads a ServiceAccount, waiting for one the serviceaccount controller has yet to make. */
async function readServiceAccount(ctx: PodContext, name: string): Promise<k8s.V1ServiceAccount> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await ctx.core.readNamespacedServiceAccount({ name, namespace: ctx.namespace });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** The service account files a kubelet projects, from a real TokenRequest; undefined when off. */
async function serviceAccountMount(ctx: PodContext): Promise<SandboxMount | undefined> {
  const name = ctx.spec.serviceAccountName ?? "default";
  const automount = ctx.spec.automountServiceAccountToken ??
    (await readServiceAccount(ctx, name)).automountServiceAccountToken ?? true;
  if (!automount) return undefined;
  const request = await ctx.core.createNamespacedServiceAccountToken({
    name,
    namespace: ctx.namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = request.status?.token;
  if (!token) throw new Error(`TokenRequest for ${ctx.namespace}/${name} returned no token`);
  const path = `${ctx.dir}/serviceaccount`;
  await writeFiles(path, {
    token,
    "ca.crt": ctx.infra.controlPlane.caPem,
    namespace: ctx.namespace,
  }, 0o644);
  return { source: path, target: SERVICE_ACCOUNT_DIR, readOnly: true, kind: "dir" };
}

function parseUser(user: string | undefined): { uid?: number; gid?: number } {
  if (!user) return {};
  const [uid, gid] = user.split(":");
  if (!/^\d+$/.test(uid ?? "") || (gid !== undefined && !/^\d+$/.test(gid))) {
    throw new Error(`image USER ${user}: only numeric uid[:gid] is supported`);
  }
  return { uid: Number(uid), ...(gid !== undefined ? { gid: Number(gid) } : {}) };
}

/**
 * Builds how one container of a pod runs: argv, env, mounts and security settings.
 *
 * @param c The container.
 * @param ctx The pod.
 * @param logPath Its log file.
 * @returns The sandbox spec.
 */
async function containerSandbox(
  c: V1Container,
  ctx: PodContext,
  logPath: string,
): Promise<SandboxSpec> {
  const image = ctx.catalog.find(c.image ?? "");
  if (!image) throw new Error(`container ${c.name}: k8s/Dockerfile builds no image ${c.image}`);
  const env = await resolveEnv(c, image, ctx);
  const lookup = new Map(env);
  const argv = containerArgv(
    image,
    c.command?.map((s) => expandVariables(s, lookup)),
    c.args?.map((s) => expandVariables(s, lookup)),
  );
  const command = denoRunCommand(image, argv, { sourceDir: CONTAINER_SOURCE_DIR });

  const volumes = await materializeVolumes(ctx);
  const mounts: SandboxMount[] = [];
  for (const m of c.volumeMounts ?? []) {
    if (m.subPath || m.subPathExpr) throw new Error(`mount ${m.name}: subPath is not supported`);
    const source = volumes.get(m.name);
    if (!source) throw new Error(`container ${c.name}: no volume ${m.name}`);
    const volume = ctx.spec.volumes?.find((v) => v.name === m.name);
    // configMap and secret volumes are always read-only
    const readOnly = m.readOnly === true || volume?.configMap !== undefined ||
      volume?.secret !== undefined;
    mounts.push({ source, target: m.mountPath, readOnly, kind: "dir" });
  }
  if (!mounts.some((m) => m.target === SERVICE_ACCOUNT_DIR)) {
    const token = await serviceAccountMount(ctx);
    if (token) mounts.push(token);
  }
  // The only extras: what `deno run` needs and a compiled binary carries inside itself.
  mounts.push({ source: REPO, target: CONTAINER_SOURCE_DIR, readOnly: true, kind: "dir" });
  const denoDir = lookup.get("DENO_DIR");
  const hostDenoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
  mounts.push({
    source: hostDenoDir,
    target: denoDir ?? CONTAINER_DENO_DIR,
    readOnly: true,
    kind: "dir",
  });
  if (denoDir === undefined) env.push(["DENO_DIR", CONTAINER_DENO_DIR]);

  const pod = ctx.spec.securityContext ?? {};
  const sc = c.securityContext ?? {};
  if (sc.privileged) throw new Error(`container ${c.name}: privileged is not supported here`);
  if (sc.capabilities?.add?.length) {
    throw new Error(`container ${c.name}: capabilities.add is not supported here`);
  }
  const fromImage = parseUser(image.user);
  const uid = sc.runAsUser ?? pod.runAsUser ?? fromImage.uid ?? 0;
  const gid = sc.runAsGroup ?? pod.runAsGroup ?? fromImage.gid ?? 0;
  if ((sc.runAsNonRoot ?? pod.runAsNonRoot) && uid === 0) {
    throw new Error(`container ${c.name}: runAsNonRoot is set and it would run as root`);
  }
  const groups = [
    ...(pod.fsGroup !== undefined ? [pod.fsGroup] : []),
    ...(pod.supplementalGroups ?? []),
  ];
  return {
    name: `${ctx.podName}-${c.name}`,
    argv: command,
    env,
    mounts,
    readOnlyRoot: sc.readOnlyRootFilesystem === true,
    user: { uid, gid, groups: [...new Set(groups)] },
    noNewPrivileges: sc.allowPrivilegeEscalation === false,
    dropAllCapabilities: sc.capabilities?.drop?.includes("ALL") === true,
    workingDir: c.workingDir ?? image.workingDir,
    scratchDir: `${ctx.dir}/scratch-${c.name}`,
    logPath,
  };
}

function probePort(port: number | string, c: V1Container): number {
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  const found = c.ports?.find((p) => p.name === port);
  if (!found) throw new Error(`container ${c.name}: a probe names port ${port}, which it lacks`);
  return found.containerPort;
}

/** Waits until `probe` passes, as a kubelet's prober would (polled faster than periodSeconds). */
async function waitForProbe(
  what: string,
  probe: V1Probe,
  c: V1Container,
  proc: SandboxedProcess,
  timeoutMs: number,
): Promise<void> {
  const get = probe.httpGet;
  if (!get) throw new Error(`${what}: only httpGet probes are supported`);
  const scheme = (get.scheme ?? "HTTP").toLowerCase();
  const url = `${scheme}://127.0.0.1:${probePort(get.port, c)}${get.path ?? "/"}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exited) throw new Error(`${what}: ${proc.name} exited:\n${proc.log()}`);
    const status = await fetch(url, {
      signal: AbortSignal.timeout((probe.timeoutSeconds ?? 1) * 1000),
    }).then(async (r) => {
      await r.body?.cancel();
      return r.status;
    }, () => 0);
    if (status >= 200 && status < 400) return;
    if (Date.now() > deadline) {
      throw new Error(`${what}: ${url} did not pass in ${timeoutMs} ms:\n${proc.log()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Creates objects in the apiserver (AlreadyExists tolerated for Namespaces). */
async function createObjects(kc: k8s.KubeConfig, objects: RenderedObject[]): Promise<void> {
  const client = k8s.KubernetesObjectApi.makeApiClient(kc);
  for (const obj of objects) {
    try {
      await client.create(obj as k8s.KubernetesObject);
    } catch (error) {
      const where = `${obj.kind} ${obj.metadata.namespace ?? ""}/${obj.metadata.name}`;
      throw new Error(`Cannot create ${where}: ${error instanceof Error ? error.message : error}`);
    }
  }
}

function podTemplate(obj: RenderedObject): { labels: Record<string, string>; spec: V1PodSpec } {
  const spec = get(obj, "spec.template.spec") as V1PodSpec | undefined;
  if (!spec) throw new Error(`${obj.kind}/${obj.metadata.name}: no pod template`);
  const labels = (get(obj, "spec.template.metadata.labels") ?? {}) as Record<string, string>;
  return { labels, spec };
}

/**
 * Renders the chart, creates its objects, runs its Jobs to completion and starts its
 * Deployments, each from its rendered pod spec (see the module doc).
 *
 * @param infra The test cluster (`startClusterInfra`).
 * @param options Values, namespaces, Secrets.
 * @returns The running deployment; `stop()` stops its workloads only.
 * @throws {Error} When a Job fails or a workload does not pass its probes (with its log).
 */
export async function startChartDeployment(
  infra: ClusterInfra,
  options: ChartDeploymentOptions,
): Promise<ChartDeployment> {
  const {
    helm,
    values,
    release = "planetary",
    namespace,
    databaseName = "planetary_chart",
    secrets = [],
    startTimeoutMs = 120_000,
  } = options;
  const catalog = loadImageCatalog();
  const dir = `${infra.dir}/chart-${namespace}`;
  await Deno.mkdir(dir, { recursive: true });
  const valuesFile = `${dir}/values.json`;
  await Deno.writeTextFile(valuesFile, JSON.stringify(values, null, 2));
  const objects = parseObjects(
    await helmTemplate({ helm, valuesFiles: [valuesFile], release, namespace }),
  );

  const kc = new k8s.KubeConfig();
  kc.loadFromFile(infra.controlPlane.adminKubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const databaseUrl = await createDatabase(infra.postgres, databaseName);
  const secretName = String(get(values, "database.existingSecret") ?? "planetary-database");
  const secretKey = String(get(values, "database.secretKey") ?? "url");
  await createObjects(kc, [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } },
    ...objects.filter((o) => o.kind === "Namespace"),
  ]);
  await createObjects(kc, [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: secretName, namespace },
      stringData: { [secretKey]: databaseUrl },
    },
    ...secrets.map((s): RenderedObject => ({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: s.name, namespace: s.namespace },
      stringData: s.data,
    })),
    ...objects.filter((o) => o.kind !== "Namespace" && !WORKLOAD_KINDS.has(o.kind)),
  ]);

  const reader = new ObjectReader(core);
  const podContext = (
    obj: RenderedObject,
    podName: string,
  ): PodContext => {
    const { labels, spec } = podTemplate(obj);
    if ((spec.containers ?? []).length !== 1 || spec.initContainers?.length) {
      throw new Error(`${obj.kind}/${obj.metadata.name}: one container per pod is supported`);
    }
    return {
      namespace: obj.metadata.namespace ?? namespace,
      podName,
      labels,
      spec,
      dir: `${dir}/pods/${podName}`,
      reader,
      core,
      infra,
      catalog,
    };
  };

  const jobs: FinishedJob[] = [];
  for (const job of objects.filter((o) => o.kind === "Job")) {
    const podName = `${job.metadata.name}-${randomName(5)}`.slice(0, 63);
    const ctx = podContext(job, podName);
    const sandbox = await containerSandbox(ctx.spec.containers[0]!, ctx, `${dir}/${podName}.log`);
    const proc = startSandboxed(sandbox);
    const status = await proc.status;
    jobs.push({ name: job.metadata.name, status, log: proc.log() });
    if (!status.success) throw new Error(`Job ${job.metadata.name} failed:\n${proc.log()}`);
  }

  const workloads: RunningWorkload[] = [];
  const logs = (): string =>
    [
      ...jobs.map((j) => `--- job ${j.name} ---\n${j.log}`),
      ...workloads.map((w) => `--- ${w.podName} ---\n${w.process.log()}`),
    ].join("\n");
  const stop = async (): Promise<Map<string, Deno.CommandStatus>> => {
    const statuses = await Promise.all(workloads.map((w) => w.process.kill("SIGTERM")));
    return new Map(workloads.map((w, i) => [w.component, statuses[i]!]));
  };
  try {
    for (const deployment of objects.filter((o) => o.kind === "Deployment")) {
      const podName = `${deployment.metadata.name}-${randomName(10)}-${randomName(5)}`;
      const ctx = podContext(deployment, podName);
      const container = ctx.spec.containers[0]!;
      const sandbox = await containerSandbox(container, ctx, `${dir}/${podName}.log`);
      const process = startSandboxed(sandbox);
      workloads.push({
        deployment,
        component: ctx.labels["app.kubernetes.io/component"] ?? deployment.metadata.name,
        podName,
        container,
        sandbox,
        process,
      });
    }
    await Promise.all(workloads.map(async (w) => {
      for (const kind of ["startupProbe", "readinessProbe"] as const) {
        const probe = w.container[kind];
        if (probe) {
          await waitForProbe(`${w.podName} ${kind}`, probe, w.container, w.process, startTimeoutMs);
        }
      }
    }));
  } catch (error) {
    console.error(logs());
    await stop();
    throw error;
  }

  const workload = (component: string): RunningWorkload => {
    const found = workloads.find((w) => w.component === component);
    if (!found) throw new Error(`the chart has no Deployment of component ${component}`);
    return found;
  };
  return {
    objects,
    databaseUrl,
    jobs,
    workloads,
    workload,
    port(component, name) {
      const { container } = workload(component);
      return probePort(name, container);
    },
    logs,
    stop,
  };
}

/**
 * Wraps the node agent's runtime so that a container of an image that `k8s/Dockerfile` builds
 * runs what that image would: its compiled binary (named by the container's command, else the
 * image's ENTRYPOINT) as `deno run` of the entry file with the compile task's flags, under the
 * image's ENV, with `DENO_DIR` pointing at the Deno cache the node agent shares (the extras of
 * `deno run`). Other images (the executors' `alpine`…) run as before.
 *
 * @param inner The node agent's runtime.
 * @param catalog The images. @default loadImageCatalog()
 * @returns The wrapped runtime.
 */
export function imageRuntime(
  inner: ContainerRuntime,
  catalog: ImageCatalog = loadImageCatalog(),
): ContainerRuntime {
  return {
    name: inner.name,
    ensureAvailable: () => inner.ensureAvailable(),
    run(spec, signal, onStarted) {
      const image = catalog.find(spec.image);
      if (!image) return inner.run(spec, signal, onStarted);
      const argv = containerArgv(image, spec.command, spec.command.length ? [] : spec.args);
      const env = new Map([...image.env, ...spec.env]);
      env.set("DENO_DIR", CONTAINER_DENO_DIR);
      return inner.run(
        {
          ...spec,
          command: denoRunCommand(image, argv, { sourceDir: CONTAINER_SOURCE_DIR }),
          args: [],
          env: [...env],
          workingDir: spec.workingDir || image.workingDir,
        },
        signal,
        onStarted,
      );
    },
  };
}
