/**
 * A test cluster for installing the Helm chart for real: the loopback control plane of
 * `./k8s.ts` with the controllers a chart needs (Deployments, ReplicaSets, Jobs, Endpoints, the
 * `kube-root-ca.crt` publisher), one real node (`./real_node.ts`) holding the service images
 * (`./service_images.ts`) and the busybox executor images, and a PostgreSQL of the test that the
 * pods reach.
 *
 * How the pods reach what lives on the host (the node's pods sit in a network namespace of the
 * harness whose only way out is a veth to the host's `nodeIp`):
 * - PostgreSQL listens on 127.0.0.1 (the test) and on `nodeIp` (the pods), and lets the pod
 *   CIDR in without a password ({@linkcode ChartCluster.databaseUrl} is the pods' URL).
 * - The apiserver listens on 127.0.0.1 only, so a TCP relay of this process listens on
 *   `nodeIp` and forwards to it. In-cluster clients (the orchestrator and monitor through
 *   `@kubernetes/client-node`'s `loadFromCluster`) dial `KUBERNETES_SERVICE_HOST:PORT`, the
 *   ClusterIP of the `kubernetes` Service, which the kubelet puts in every pod's environment.
 *   No kube-proxy runs here, so one DNAT rule in the node's own network namespace (never the
 *   host's tables; it vanishes with the namespace) sends that ClusterIP and port to the relay,
 *   which is what kube-proxy would do. This keeps the chart's pods exactly as on a real
 *   cluster (no env override), and TLS still verifies: the apiserver's self-signed serving
 *   certificate names the first IP of the service range, and the pods trust the CA published
 *   in `kube-root-ca.crt`.
 *
 * ```ts ignore
 * const cluster = await startChartCluster();
 * try {
 *   await cluster.helm(["install", "planetary", CHART_DIR, "--namespace", "planetary"]);
 * } finally {
 *   await cluster.stop();
 * }
 * ```
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { findHelm } from "../../k8s/tools/render.ts";
import { requireComponent, which } from "./component.ts";
import {
  type ControlPlane,
  findControlPlaneBinaries,
  K8S_BUILD_COMMAND,
  startControlPlane,
} from "./k8s.ts";
import {
  createDatabase,
  type PostgresCluster,
  postgresInstalled,
  startPostgres,
} from "./postgres.ts";
import {
  importBusyboxImagesIntoNode,
  type RealNode,
  realNodeMissing,
  startRealNode,
} from "./real_node.ts";
import { buildServiceImages, type ServiceImages, serviceImagesMissing } from "./service_images.ts";

/** The controllers a chart install needs besides the control plane's defaults. */
export const CHART_CONTROLLERS: readonly string[] = Object.freeze([
  "deployment-controller",
  "replicaset-controller",
  "job-controller",
  "endpoints-controller",
  "endpointslice-controller",
  "disruption-controller",
  "ttl-after-finished-controller",
  "root-ca-certificate-publisher-controller",
]);

/**
 * Why the chart cluster cannot start here (helm, the control plane and kubelet builds, root and
 * the node's packages, PostgreSQL, iptables for the DNAT rule, the service images), or
 * undefined when it can.
 *
 * @returns A one-line reason, or undefined.
 */
export async function chartClusterMissing(): Promise<string | undefined> {
  if (!findHelm()) return "helm not found: run k8s/tools/install_helm.sh";
  if (!findControlPlaneBinaries()) {
    return `Kubernetes control-plane binaries missing: run \`${K8S_BUILD_COMMAND}\``;
  }
  const node = realNodeMissing();
  if (node) return node;
  if (!postgresInstalled()) {
    return "PostgreSQL 15 server binaries missing (apt-get install postgresql-15)";
  }
  if (!which("iptables")) return "no iptables (apt-get install iptables) for the ClusterIP DNAT";
  return await serviceImagesMissing();
}

/**
 * Whether tests needing the chart cluster run: skips with one line locally, fails under
 * `CI=true` (see `requireComponent`).
 *
 * @returns Whether it can start.
 */
export async function requireChartCluster(): Promise<boolean> {
  const missing = await chartClusterMissing();
  return requireComponent(missing === undefined, missing ?? "");
}

/** How long each phase of the start took, in milliseconds (for reports only). */
export interface ChartClusterTimings {
  /** Building (or taking from the cache) the service images. */
  imagesMs: number;
  /** Control plane and Node Ready. */
  clusterMs: number;
  /** `ctr images import` of the service images and the busybox images. */
  importMs: number;
}

/** A running chart cluster; call `stop()` when done. */
export interface ChartCluster {
  /** The control plane (admin kubeconfig, token, CA). */
  controlPlane: ControlPlane;
  /** The real node. */
  node: RealNode;
  /** The service images imported into the node. */
  images: ServiceImages;
  /** The test's PostgreSQL. */
  postgres: PostgresCluster;
  /** An empty database, as the pods reach it (`postgres://postgres@<nodeIp>:<port>/<db>`). */
  databaseUrl: string;
  /** The same database as this process reaches it (loopback). */
  localDatabaseUrl: string;
  /** An admin client of the cluster. */
  kubeConfig: k8s.KubeConfig;
  /** Phase timings. */
  timings: ChartClusterTimings;
  /**
   * Runs helm against the cluster (admin kubeconfig, helm's cache and config in a temp folder).
   *
   * @throws {Error} When helm exits non-zero, with its output.
   */
  helm(args: string[]): Promise<string>;
  /** The last lines of the control plane's and the node's logs. */
  logTails(lines?: number): string;
  /** Stops everything this started, in reverse order. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startChartCluster}. */
export interface ChartClusterOptions {
  /** Progress lines. @default console.error */
  log?: (line: string) => void;
}

/**
 * Starts the chart cluster (see the module doc for what and why).
 *
 * @param options Where progress goes.
 * @returns The running cluster.
 * @throws {Error} When a part does not start; what started is stopped first.
 */
export async function startChartCluster(options: ChartClusterOptions = {}): Promise<ChartCluster> {
  const { log = (line: string) => console.error(line) } = options;
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error) => log(`chart cluster: cleanup failed: ${error}`));
    }
  };
  try {
    let at = performance.now();
    const images = await buildServiceImages({ log });
    const imagesMs = performance.now() - at;

    at = performance.now();
    const controlPlane = await startControlPlane({
      nodes: [],
      extraControllers: [...CHART_CONTROLLERS],
    });
    cleanups.push(() => controlPlane.stop());
    const node = await startRealNode({ controlPlane });
    cleanups.push(() => node.stop());
    const clusterMs = performance.now() - at;

    at = performance.now();
    await node.importImage(images.archive);
    await importBusyboxImagesIntoNode(node);
    const importMs = performance.now() - at;

    const postgres = await startPostgres({
      extraListenAddresses: [node.nodeIp],
      trustedCidrs: [node.podCidr],
    });
    cleanups.push(() => postgres.stop());
    const localDatabaseUrl = await createDatabase(postgres, "chart");
    const podsUrl = new URL(localDatabaseUrl);
    podsUrl.hostname = node.nodeIp;

    const kubeConfig = new k8s.KubeConfig();
    kubeConfig.loadFromFile(controlPlane.adminKubeconfigPath);
    const relay = startTcpRelay(node.nodeIp, new URL(controlPlane.server));
    cleanups.push(() => relay.close());
    const service = await kubeConfig.makeApiClient(k8s.CoreV1Api).readNamespacedService({
      name: "kubernetes",
      namespace: "default",
    });
    const clusterIp = service.spec?.clusterIP;
    const servicePort = service.spec?.ports?.[0]?.port;
    if (!clusterIp || !servicePort) throw new Error("the kubernetes Service has no ClusterIP");
    // inside the node's own network namespace only: what kube-proxy would do for this Service
    await run("nsenter", [
      `--net=${node.netnsPath}`,
      "iptables",
      "-t",
      "nat",
      "-A",
      "PREROUTING",
      "-d",
      `${clusterIp}/32`,
      "-p",
      "tcp",
      "--dport",
      String(servicePort),
      "-j",
      "DNAT",
      "--to-destination",
      `${node.nodeIp}:${relay.port}`,
    ]);

    const helmHome = await Deno.makeTempDir({ prefix: "planetary-helm-" });
    cleanups.push(() => Deno.remove(helmHome, { recursive: true }));
    const helmBinary = findHelm();
    if (!helmBinary) throw new Error("helm not found: run k8s/tools/install_helm.sh");
    const helm = async (args: string[]): Promise<string> => {
      const out = await new Deno.Command(helmBinary, {
        args: ["--kubeconfig", controlPlane.adminKubeconfigPath, ...args],
        env: {
          HELM_CACHE_HOME: `${helmHome}/cache`,
          HELM_CONFIG_HOME: `${helmHome}/config`,
          HELM_DATA_HOME: `${helmHome}/data`,
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      if (!out.success) throw new Error(`helm ${args.join(" ")} failed (${out.code}):\n${text}`);
      return text;
    };

    return {
      controlPlane,
      node,
      images,
      postgres,
      databaseUrl: podsUrl.toString(),
      localDatabaseUrl,
      kubeConfig,
      timings: { imagesMs, clusterMs, importMs },
      helm,
      logTails: (lines = 30) => `${controlPlane.logTails(lines)}\n${node.logTails(lines)}`,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${text}`);
  }
}

/** A TCP relay from `hostname:<free port>` to `target` (bytes only: TLS passes through). */
function startTcpRelay(
  hostname: string,
  target: URL,
): { port: number; close: () => Promise<void> } {
  const listener = Deno.listen({ hostname, port: 0 });
  const open = new Set<Deno.Conn>();
  const pipes = new Set<Promise<unknown>>();
  const track = (conn: Deno.Conn): void => {
    open.add(conn);
  };
  const closeConn = (conn: Deno.Conn): void => {
    if (!open.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const serve = (async () => {
    for await (const inbound of listener) {
      track(inbound);
      const pipe = (async () => {
        let outbound: Deno.Conn | undefined;
        try {
          outbound = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
          track(outbound);
          await Promise.race([
            inbound.readable.pipeTo(outbound.writable, { preventClose: false }),
            outbound.readable.pipeTo(inbound.writable, { preventClose: false }),
          ]);
        } catch {
          // a side went away: close both
        } finally {
          closeConn(inbound);
          if (outbound) closeConn(outbound);
        }
      })();
      pipes.add(pipe);
      void pipe.finally(() => pipes.delete(pipe));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      listener.close();
      for (const conn of [...open]) closeConn(conn);
      await Promise.allSettled([serve, ...pipes]);
    },
  };
}
