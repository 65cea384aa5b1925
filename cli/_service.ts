/**
 * Helpers shared by the service entrypoints (`cli/api.ts`, `cli/orchestrator.ts`,
 * `cli/monitor.ts`).
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { KubernetesBackend } from "../src/orchestrator/backends/kubernetes/kubernetes_backend.ts";
import { startHealthServer } from "../src/server/health_server.ts";
import { openTaskStore } from "../src/store/open_store.ts";
import type { TaskStore } from "../src/store/task_store.ts";

/**
 * Resolves at the first SIGINT or SIGTERM.
 *
 * @returns A promise of the signal's arrival.
 */
export function waitForSignal(): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const onSignal = (): void => {
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
    resolve();
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  return promise;
}

/** Reads an environment variable; an empty value counts as unset. */
export function env(name: string): string | undefined {
  return Deno.env.get(name) || undefined;
}

/** What the orchestrator and monitor services both need to connect. */
export interface ClusterServiceSettings {
  /** PostgreSQL URL. */
  databaseUrl: string;
  /** Namespace of task pods. */
  namespace: string;
  /** Kubeconfig file; unset means in-cluster when `KUBERNETES_SERVICE_HOST` is set. */
  kubeconfig?: string;
  /** Port of `/healthz` and `/readyz`; 0 = none. */
  healthPort: number;
}

/**
 * Resolves the connection settings shared by the cluster services from their flags, then the
 * environment (`DATABASE_URL`, `PLANETARY_NAMESPACE`, `KUBECONFIG`, `PLANETARY_HEALTH_PORT`).
 *
 * @param values The parsed flags (`database-url`, `namespace`, `kubeconfig`, `health-port`).
 * @returns The settings, or a message saying what to set.
 */
export function clusterServiceSettings(
  values: Record<string, unknown>,
): ClusterServiceSettings | string {
  const flag = (name: string): string | undefined =>
    typeof values[name] === "string" ? values[name] as string : undefined;
  const databaseUrl = flag("database-url") ?? env("DATABASE_URL");
  const namespace = flag("namespace") ?? env("PLANETARY_NAMESPACE");
  const kubeconfig = flag("kubeconfig") ?? env("KUBECONFIG");
  const portText = flag("health-port") ?? env("PLANETARY_HEALTH_PORT") ?? "8081";
  const healthPort = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : -1;
  if (databaseUrl === undefined) return "set DATABASE_URL (or --database-url)";
  if (namespace === undefined) return "set PLANETARY_NAMESPACE (or --namespace)";
  if (healthPort < 0 || healthPort > 65535) return "--health-port: must be a port number";
  return { databaseUrl, namespace, healthPort, ...(kubeconfig ? { kubeconfig } : {}) };
}

/** A running cluster service, as {@linkcode runClusterService} needs it. */
export interface ClusterServiceParts {
  /** The line logged once it started. */
  started: Record<string, unknown>;
  /** Stops the service's loops (before the backend and store close). */
  stop(): Promise<void>;
}

/**
 * Opens the store and the Kubernetes backend, starts a service on them with `start`, serves
 * the health checks, and shuts everything down in order at SIGINT or SIGTERM.
 *
 * @param settings Connection settings.
 * @param start Builds and starts the service.
 * @returns Resolves when the service stopped.
 */
export async function runClusterService(
  settings: ClusterServiceSettings,
  start: (store: TaskStore, backend: KubernetesBackend) => ClusterServiceParts,
): Promise<void> {
  const { databaseUrl, namespace, kubeconfig, healthPort } = settings;
  const backend = new KubernetesBackend({
    namespace,
    ...(kubeconfig !== undefined
      ? { kubeconfigPath: kubeconfig }
      : { inCluster: env("KUBERNETES_SERVICE_HOST") !== undefined }),
  });
  const store = await openTaskStore({ databaseUrl, migrate: false });
  const service = start(store, backend);
  const health = healthPort > 0
    ? await startHealthServer({ port: healthPort, ready: () => store.ping() })
    : undefined;
  console.error(JSON.stringify({ ...service.started, namespace }));
  await waitForSignal();
  await health?.close();
  await service.stop();
  await backend.close();
  await store.close();
}

/** The flags every cluster service takes (see {@linkcode clusterServiceSettings}), and `--help`. */
const CLUSTER_SERVICE_OPTIONS = {
  "database-url": { type: "string" },
  namespace: { type: "string" },
  kubeconfig: { type: "string" },
  "health-port": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Parses a cluster service's arguments: the shared flags plus its own, no positionals; prints
 * the usage for `--help` and for a bad flag, and resolves the shared settings.
 *
 * @param args Command-line arguments.
 * @param options The service's own `parseArgs` options.
 * @param name The program name that starts error lines.
 * @param usageText The whole usage text.
 * @returns The flags and settings, or the exit code to end with (0 after `--help`, 2 on misuse).
 */
export function parseServiceArgs<O extends ParseArgsOptionsConfig>(
  args: readonly string[],
  options: O,
  name: string,
  usageText: string,
) {
  const usage = (message: string): number => {
    console.error(`${name}: ${message}\n\n${usageText}`);
    return 2;
  };
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...CLUSTER_SERVICE_OPTIONS, ...options },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    return usage(error instanceof Error ? error.message : String(error));
  }
  const { values } = parsed;
  if ((values as { help?: boolean }).help) {
    console.log(usageText);
    return 0;
  }
  const settings = clusterServiceSettings(values);
  if (typeof settings === "string") return usage(settings);
  return { values, settings, usage };
}
