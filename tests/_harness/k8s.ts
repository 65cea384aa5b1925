/**
 * A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver (RBAC, token
 * auth), kube-scheduler and kube-controller-manager, built once by `k8s/testenv/build.sh`
 * from the Go module proxy, plus fake Nodes that the scheduler can bind pods to (nothing runs
 * the pods: a node agent does that in later suites).
 *
 * ```ts ignore
 * import { requireControlPlane, startControlPlane } from "./_harness/k8s.ts";
 *
 * Deno.test({
 *   name: "something against a real apiserver",
 *   ignore: !requireControlPlane(),
 *   async fn() {
 *     const cp = await startControlPlane();
 *     try {
 *       // use cp.userKubeconfigPath with @kubernetes/client-node
 *     } finally {
 *       await cp.stop();
 *     }
 *   },
 * });
 * ```
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { stringify as stringifyYaml } from "yaml";
import { requireComponent, which } from "./component.ts";
import { killWithGrace } from "./process.ts";

/** The command that builds the control-plane binaries (run from the repository root). */
export const K8S_BUILD_COMMAND = "k8s/testenv/build.sh";

/** The user the project's server runs as: token-authenticated, in NO group. */
export const PLANETARY_USER = "planetary";

const REPO_ROOT = new URL("../../", import.meta.url);
const TESTENV_GO_MOD = new URL("k8s/testenv/go.mod", REPO_ROOT);

/** Why a control plane could not start; `code` is stable for callers that branch on it. */
export class ControlPlaneError extends Error {
  /** Stable error code. */
  readonly code: "K8S_BINARIES_MISSING" | "K8S_START_FAILED";

  /**
   * @param code Stable error code.
   * @param message What failed, then the current state.
   * @param options The underlying error, if any.
   */
  constructor(
    code: ControlPlaneError["code"],
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ControlPlaneError";
    this.code = code;
  }
}

/** Where the control-plane binaries live. */
export interface ControlPlaneBinaries {
  /** etcd (our build, or Debian's `etcd-server` on PATH as a fallback). */
  etcd: string;
  /** kube-apiserver. */
  apiserver: string;
  /** kube-scheduler. */
  scheduler: string;
  /** kube-controller-manager. */
  controllerManager: string;
}

/**
 * The Kubernetes version locked in `k8s/testenv/go.mod` (e.g. `1.33.13`).
 *
 * @returns The version without the leading `v`.
 * @throws {Error} When the wrapper module has no `k8s.io/kubernetes` requirement.
 */
export function k8sVersion(): string {
  const goMod = Deno.readTextFileSync(TESTENV_GO_MOD);
  const match = goMod.match(/\sk8s\.io\/kubernetes v(\d+\.\d+\.\d+)/);
  if (!match?.[1]) throw new Error(`no k8s.io/kubernetes requirement in ${TESTENV_GO_MOD}`);
  return match[1];
}

/**
 * The directory `k8s/testenv/build.sh` writes binaries to:
 * `${PLANETARY_CACHE:-$HOME/.cache/planetary}/k8s-<version>/bin`.
 *
 * @returns Absolute path of the bin directory (it may not exist).
 */
export function k8sBinDir(): string {
  const cache = Deno.env.get("PLANETARY_CACHE") ??
    `${Deno.env.get("HOME") ?? "/root"}/.cache/planetary`;
  return `${cache}/k8s-${k8sVersion()}/bin`;
}

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * Finds the control-plane binaries.
 *
 * @returns Their paths, or undefined when one is missing.
 */
export function findControlPlaneBinaries(): ControlPlaneBinaries | undefined {
  const bin = k8sBinDir();
  const built = (name: string): string | undefined =>
    isExecutable(`${bin}/${name}`) ? `${bin}/${name}` : undefined;
  const etcd = built("etcd") ?? which("etcd");
  const apiserver = built("kube-apiserver");
  const scheduler = built("kube-scheduler");
  const controllerManager = built("kube-controller-manager");
  if (!etcd || !apiserver || !scheduler || !controllerManager || !which("openssl")) {
    return undefined;
  }
  return { etcd, apiserver, scheduler, controllerManager };
}

/**
 * Whether tests needing a control plane run: true when the binaries exist; otherwise skips
 * locally and fails under `CI=true` (see `requireComponent`).
 *
 * @returns Whether the control plane can start.
 */
export function requireControlPlane(): boolean {
  return requireComponent(
    findControlPlaneBinaries() !== undefined,
    `Kubernetes control-plane binaries (and openssl) not found in ${k8sBinDir()}: ` +
      `run \`${K8S_BUILD_COMMAND}\` (cold build ~20 min on 2 cores)`,
  );
}

/** Options for {@linkcode startControlPlane}. */
export interface ControlPlaneOptions {
  /**
   * Names of the fake Nodes to create (schedulable, Ready, no taints).
   * @default {["node-1"]}
   */
  nodes?: string[];
  /**
   * Allocatable CPU of each fake Node.
   * @default {"4"}
   */
  nodeCpu?: string;
  /**
   * Allocatable memory of each fake Node.
   * @default {"8Gi"}
   */
  nodeMemory?: string;
  /**
   * Allocatable pod count of each fake Node.
   * @default {"110"}
   */
  nodePods?: string;
  /**
   * How long to wait for each component to become ready, in milliseconds.
   * @default {90000}
   */
  readyTimeoutMs?: number;
  /**
   * Extra kube-apiserver flags (for example `--storage-media-type=application/json`, so that a
   * test can read and write objects in etcd directly).
   * @default {[]}
   */
  apiserverArgs?: string[];
  /**
   * kube-controller-manager controllers to run besides the garbage collector, namespace and
   * service account controllers (for example `deployment-controller`, `replicaset-controller`,
   * `job-controller`, `endpoints-controller`, and `root-ca-certificate-publisher-controller`,
   * without which a pod that mounts a service account token waits forever for the
   * `kube-root-ca.crt` ConfigMap).
   * @default {[]}
   */
  extraControllers?: string[];
}

/** How long startup took, in milliseconds (for reports, never for assertions). */
export interface ControlPlaneTimings {
  /** From the start of etcd to kube-apiserver answering `/readyz`. */
  apiserverReadyMs: number;
  /** From the start of etcd to every component healthy and the Nodes Ready. */
  totalMs: number;
}

/** A running control plane; call `stop()` when done. */
export interface ControlPlane {
  /** The apiserver URL, `https://127.0.0.1:<port>`. */
  server: string;
  /** The apiserver's CA certificate (PEM), also embedded in the kubeconfigs. */
  caPem: string;
  /** Kubeconfig of the admin (group `system:masters`). */
  adminKubeconfigPath: string;
  /** Kubeconfig of the `planetary` user (no groups: it can do only what a Role grants). */
  userKubeconfigPath: string;
  /** Bearer token of the admin. */
  adminToken: string;
  /** Bearer token of the `planetary` user. */
  userToken: string;
  /**
   * The CA (PEM file) that signed the client certificate the apiserver presents to kubelets
   * (user `kube-apiserver-kubelet-client`, group `system:masters`): a real kubelet's
   * `authentication.x509.clientCAFile`, so that logs, exec and port-forward reach it.
   */
  kubeletClientCaPath: string;
  /** Names of the fake Nodes. */
  nodeNames: string[];
  /** The etcd client URL, `http://127.0.0.1:<port>` (its v3 JSON gateway is at `/v3/`). */
  etcdUrl: string;
  /**
   * Stops kube-apiserver, runs `whileDown` (e.g. writes to etcd directly), starts it again on
   * the same port with the same flags and waits for `/readyz`. Clients see their connections
   * drop and watches end.
   */
  restartApiserver(options?: { whileDown?: () => Promise<void> }): Promise<void>;
  /** The temp dir holding data, certificates and logs (`<name>.log` per process). */
  dir: string;
  /** Startup timings. */
  timings: ControlPlaneTimings;
  /** The last lines of every process log, for a failing test to print. */
  logTails(lines?: number): string;
  /**
   * Stops every process this control plane started (by pid) and removes its temp dir (kept,
   * with its logs, when `PLANETARY_KEEP_K8S_DIR=1`).
   */
  stop(): Promise<void>;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The last PEM certificate of a bundle (the CA in a self-signed `cert + CA` file). */
function lastCertificate(bundle: string): string {
  const blocks = bundle.match(
    /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
  );
  const last = blocks?.at(-1);
  if (!last) throw new Error("no PEM certificate in bundle");
  return `${last}\n`;
}

class Proc {
  readonly name: string;
  readonly logPath: string;
  readonly #child: Deno.ChildProcess;
  readonly #piping: Promise<unknown>;
  exited = false;
  readonly status: Promise<Deno.CommandStatus>;

  constructor(name: string, binary: string, args: string[], dir: string) {
    this.name = name;
    this.logPath = `${dir}/${name}.log`;
    const log = Deno.openSync(this.logPath, { write: true, create: true, append: true });
    this.#child = new Deno.Command(binary, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const encoder = new TextEncoder();
    log.writeSync(encoder.encode(`$ ${binary} ${args.join(" ")}\n`));
    const sink = (): WritableStream<Uint8Array> =>
      new WritableStream({ write: (chunk) => void log.writeSync(chunk) });
    this.#piping = Promise.allSettled([
      this.#child.stdout.pipeTo(sink()),
      this.#child.stderr.pipeTo(sink()),
    ]).finally(() => log.close());
    this.status = this.#child.status.then((s) => {
      this.exited = true;
      return s;
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; waits for the exit and the log flush. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.exited) {
      await killWithGrace(this.#child, this.status, "SIGTERM", graceMs);
    }
    await this.status;
    await this.#piping;
  }

  tail(lines = 30): string {
    try {
      const text = Deno.readTextFileSync(this.logPath).trimEnd().split("\n");
      return text.slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

/** Polls `check` until it returns a value (not undefined), the deadline passes or `proc` exits. */
async function pollUntil<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
  procs: Proc[] = [],
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (true) {
    for (const p of procs) {
      if (p.exited) throw new Error(`${p.name} exited while waiting for ${what}`);
    }
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, {
        cause: lastError,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** GET over HTTPS trusting `caPem`; returns the status and body. */
async function httpsGet(
  url: string,
  caPem: string,
  token?: string,
): Promise<{ status: number; body: string }> {
  const client = Deno.createHttpClient({ caCerts: [caPem] });
  try {
    const response = await fetch(url, {
      client,
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(5000),
    });
    return { status: response.status, body: await response.text() };
  } finally {
    client.close();
  }
}

/**
 * Writes a CA (`caPath`, its key beside it) and the client certificate the apiserver presents to
 * kubelets (`kubelet-client.crt`/`.key` in `dir`); EC keys, valid two days.
 */
async function writeKubeletClientCertificate(dir: string, caPath: string): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    `${dir}/kubelet-client-ca.key`,
    "-out",
    caPath,
    "-days",
    "2",
    "-subj",
    "/CN=planetary-test-kubelet-client-ca",
  ]);
  await run("openssl", [
    "req",
    ...ec,
    "-keyout",
    `${dir}/kubelet-client.key`,
    "-out",
    `${dir}/kubelet-client.csr`,
    "-subj",
    "/O=system:masters/CN=kube-apiserver-kubelet-client",
  ]);
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    `${dir}/kubelet-client.csr`,
    "-CA",
    caPath,
    "-CAkey",
    `${dir}/kubelet-client-ca.key`,
    "-set_serial",
    "1",
    "-days",
    "2",
    "-out",
    `${dir}/kubelet-client.crt`,
  ]);
}

function kubeconfigYaml(server: string, caPem: string, user: string, token: string): string {
  return stringifyYaml({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{
      name: "planetary-test",
      cluster: {
        server,
        "certificate-authority-data": btoa(caPem),
      },
    }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: user, context: { cluster: "planetary-test", user } }],
    "current-context": user,
  });
}

async function createReadyNode(
  core: k8s.CoreV1Api,
  name: string,
  allocatable: Record<string, string>,
): Promise<void> {
  await core.createNode({
    body: {
      metadata: {
        name,
        labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux" },
      },
    },
  });
  // The TaintNodesByCondition admission plugin taints new Nodes not-ready; the node lifecycle
  // controller that would lift it is not running, so lift it here.
  const node = await core.readNode({ name });
  node.spec = { ...node.spec, taints: [] };
  await core.replaceNode({ name, body: node });
  const fresh = await core.readNode({ name });
  const now = new Date();
  fresh.status = {
    capacity: allocatable,
    allocatable,
    conditions: [{
      type: "Ready",
      status: "True",
      reason: "KubeletReady",
      message: "fake node for tests",
      lastHeartbeatTime: now,
      lastTransitionTime: now,
    }],
    nodeInfo: {
      architecture: "amd64",
      bootID: "",
      containerRuntimeVersion: "fake://0",
      kernelVersion: "",
      kubeProxyVersion: "",
      kubeletVersion: `v${k8sVersion()}`,
      machineID: "",
      operatingSystem: "linux",
      osImage: "fake",
      systemUUID: "",
    },
  };
  await core.replaceNodeStatus({ name, body: fresh });
}

/**
 * Starts etcd, kube-apiserver, kube-scheduler and kube-controller-manager on free loopback
 * ports, creates the fake Nodes and writes the admin and `planetary` kubeconfigs. On failure it
 * prints the tail of every process log, stops what it started and throws.
 *
 * @param options Nodes and timeouts.
 * @returns The running control plane.
 * @throws {ControlPlaneError} `K8S_BINARIES_MISSING` when `k8s/testenv/build.sh` has not run;
 * `K8S_START_FAILED` when a component does not become ready.
 * @example
 * ```ts ignore
 * const cp = await startControlPlane({ nodes: ["node-1", "node-2"] });
 * try {
 *   const kc = new k8s.KubeConfig();
 *   kc.loadFromFile(cp.userKubeconfigPath);
 * } finally {
 *   await cp.stop();
 * }
 * ```
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const {
    nodes = ["node-1"],
    nodeCpu = "4",
    nodeMemory = "8Gi",
    nodePods = "110",
    readyTimeoutMs = 90_000,
    apiserverArgs = [],
    extraControllers = [],
  } = options;
  const bins = findControlPlaneBinaries();
  if (!bins) {
    throw new ControlPlaneError(
      "K8S_BINARIES_MISSING",
      `Cannot start a control plane: binaries missing in ${k8sBinDir()}; run ${K8S_BUILD_COMMAND}`,
    );
  }
  const started = Date.now();
  const dir = await Deno.makeTempDir({ prefix: "planetary-k8s-" });
  const procs: Proc[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // reverse order: controllers first, etcd last
    for (const p of [...procs].reverse()) await p.stop();
    if (Deno.env.get("PLANETARY_KEEP_K8S_DIR") === "1") {
      console.error(`control plane dir kept: ${dir}`);
    } else {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  };
  const logTails = (lines = 30): string =>
    procs.map((p) => `--- ${p.name} (${p.logPath}), last lines ---\n${p.tail(lines)}`).join("\n");

  try {
    const adminToken = randomToken();
    const userToken = randomToken();
    await Deno.writeTextFile(
      `${dir}/tokens.csv`,
      `${adminToken},admin,admin-uid,"system:masters"\n` +
        `${userToken},${PLANETARY_USER},${PLANETARY_USER}-uid\n`,
    );
    await run("openssl", ["genrsa", "-out", `${dir}/sa.key`, "2048"]);
    await run("openssl", ["rsa", "-in", `${dir}/sa.key`, "-pubout", "-out", `${dir}/sa.pub`]);
    const kubeletClientCaPath = `${dir}/kubelet-client-ca.crt`;
    await writeKubeletClientCertificate(dir, kubeletClientCaPath);

    // etcd
    const etcdPort = freePort();
    const peerUrl = `http://127.0.0.1:${freePort()}`;
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = new Proc("etcd", bins.etcd, [
      "--name=default",
      `--data-dir=${dir}/etcd`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      "--unsafe-no-fsync",
    ], dir);
    procs.push(etcd);
    await pollUntil("etcd /health", readyTimeoutMs, async () => {
      const response = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2000) });
      const body = await response.json() as { health?: string };
      return body.health === "true" ? true : undefined;
    }, [etcd]);

    // kube-apiserver
    const apiPort = freePort();
    const server = `https://127.0.0.1:${apiPort}`;
    const apiserverFlags = [
      `--etcd-servers=${etcdUrl}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--cert-dir=${dir}/apiserver-certs`,
      `--token-auth-file=${dir}/tokens.csv`,
      "--authorization-mode=RBAC",
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${dir}/sa.pub`,
      `--service-account-signing-key-file=${dir}/sa.key`,
      "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true",
      "--anonymous-auth=false",
      // the "kubernetes" Service cannot point at a loopback address; nothing here needs it
      "--endpoint-reconciler-type=none",
      // a real kubelet (tests/_harness/real_node.ts) is reached at its InternalIP: its Hostname
      // address is a node name that no resolver knows
      "--kubelet-preferred-address-types=InternalIP,Hostname",
      `--kubelet-client-certificate=${dir}/kubelet-client.crt`,
      `--kubelet-client-key=${dir}/kubelet-client.key`,
      ...apiserverArgs,
    ];
    let apiserver = new Proc("kube-apiserver", bins.apiserver, apiserverFlags, dir);
    procs.push(apiserver);
    const caPem = await pollUntil(
      "the apiserver's self-signed certificate",
      readyTimeoutMs,
      () => Deno.readTextFile(`${dir}/apiserver-certs/apiserver.crt`).then(lastCertificate),
      [
        apiserver,
      ],
    );
    await pollUntil("kube-apiserver /readyz", readyTimeoutMs, async () => {
      const { status } = await httpsGet(`${server}/readyz`, caPem, adminToken);
      return status === 200 ? true : undefined;
    }, [apiserver]);
    const apiserverReadyMs = Date.now() - started;

    const adminKubeconfigPath = `${dir}/admin.kubeconfig`;
    const userKubeconfigPath = `${dir}/planetary.kubeconfig`;
    await Deno.writeTextFile(
      adminKubeconfigPath,
      kubeconfigYaml(server, caPem, "admin", adminToken),
    );
    await Deno.writeTextFile(
      userKubeconfigPath,
      kubeconfigYaml(server, caPem, PLANETARY_USER, userToken),
    );

    // kube-scheduler and kube-controller-manager
    const component = (name: string, binary: string, extra: string[]): [Proc, number] => {
      const port = freePort();
      const proc = new Proc(name, binary, [
        `--kubeconfig=${adminKubeconfigPath}`,
        `--authentication-kubeconfig=${adminKubeconfigPath}`,
        `--authorization-kubeconfig=${adminKubeconfigPath}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${port}`,
        `--cert-dir=${dir}/${name}-certs`,
        "--leader-elect=false",
        ...extra,
      ], dir);
      procs.push(proc);
      return [proc, port];
    };
    const components = [
      component("kube-scheduler", bins.scheduler, []),
      component("kube-controller-manager", bins.controllerManager, [
        "--controllers=" + [
          "garbage-collector-controller",
          "namespace-controller",
          "serviceaccount-controller",
          ...extraControllers,
        ].join(","),
        `--service-account-private-key-file=${dir}/sa.key`,
      ]),
    ] as const;
    for (const [proc, port] of components) {
      const certPath = `${dir}/${proc.name}-certs/${proc.name}.crt`;
      await pollUntil(`${proc.name} /healthz`, readyTimeoutMs, async () => {
        const ca = lastCertificate(await Deno.readTextFile(certPath));
        const { status } = await httpsGet(`https://127.0.0.1:${port}/healthz`, ca);
        return status === 200 ? true : undefined;
      }, [proc]);
    }

    // fake Nodes
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(adminKubeconfigPath);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const allocatable = { cpu: nodeCpu, memory: nodeMemory, pods: nodePods };
    for (const name of nodes) await createReadyNode(core, name, allocatable);
    // the serviceaccount controller is live once the default namespace has its ServiceAccount
    await pollUntil("the default ServiceAccount", readyTimeoutMs, async () => {
      await core.readNamespacedServiceAccount({ name: "default", namespace: "default" });
      return true;
    }, procs);

    let restarts = 0;
    const restartApiserver = async (
      restartOptions: { whileDown?: () => Promise<void> } = {},
    ): Promise<void> => {
      await apiserver.stop();
      await restartOptions.whileDown?.();
      restarts++;
      const next = new Proc(
        `kube-apiserver-${restarts}`,
        bins.apiserver,
        apiserverFlags,
        dir,
      );
      procs[procs.indexOf(apiserver)] = next;
      apiserver = next;
      await pollUntil("kube-apiserver /readyz after a restart", readyTimeoutMs, async () => {
        const { status } = await httpsGet(`${server}/readyz`, caPem, adminToken);
        return status === 200 ? true : undefined;
      }, [next]);
    };

    return {
      server,
      caPem,
      etcdUrl,
      restartApiserver,
      adminKubeconfigPath,
      userKubeconfigPath,
      adminToken,
      userToken,
      kubeletClientCaPath,
      nodeNames: [...nodes],
      dir,
      timings: { apiserverReadyMs, totalMs: Date.now() - started },
      logTails,
      stop,
    };
  } catch (error) {
    console.error(logTails());
    await stop();
    throw new ControlPlaneError(
      "K8S_START_FAILED",
      `Cannot start the control plane: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
}
