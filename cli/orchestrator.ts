/**
 * `planetary-orchestrator`: claims queued tasks from PostgreSQL and runs them as pods in a
 * Kubernetes namespace. Run several replicas: each claim carries an owner and a lease.
 *
 * ```sh
 * DATABASE_URL=postgres://… PLANETARY_NAMESPACE=planetary-tasks planetary-orchestrator
 * ```
 *
 * Settings (flag, then environment):
 * - `--database-url` / `DATABASE_URL` (required);
 * - `--namespace` / `PLANETARY_NAMESPACE` (required): where task pods run;
 * - `--kubeconfig` / `KUBECONFIG`: else in-cluster when `KUBERNETES_SERVICE_HOST` is set;
 * - `--max-tasks` / `PLANETARY_MAX_TASKS` (default 64): tasks handled at once by this replica;
 * - `--max-running-per-owner` / `PLANETARY_MAX_RUNNING_PER_OWNER` (default 0, no limit): most
 *   live tasks of one task owner across all replicas (give every replica the same value);
 * - `--pod-config` / `PLANETARY_POD_CONFIG`: JSON file of pod builder settings (transporter
 *   image, storage Secrets, node selectors, …; see `PodBuilderConfig`);
 * - `--keep-finished-pods` / `PLANETARY_KEEP_FINISHED_PODS=true`: leave finished pods to the
 *   monitor's keep interval instead of deleting them at once;
 * - `--owner` / `POD_NAME`: this replica's identity in claims (default random);
 * - `--lease-ms` / `PLANETARY_LEASE_MS` (default 30000): how long a claim lasts unless renewed
 *   (another replica adopts the tasks of a dead one after this);
 * - `--health-port` / `PLANETARY_HEALTH_PORT` (default 8081): `/healthz` and `/readyz`.
 *
 * @module
 */
import { Orchestrator } from "../src/orchestrator/orchestrator.ts";
import { buildTaskPod } from "../src/pod/build_task_pod.ts";
import type { PodBuilderConfig } from "../src/pod/pod_builder_config.ts";
import { env, parseServiceArgs, runClusterService } from "./_service.ts";

/** The exact permission flags of the orchestrator service (`deno run`/`deno compile`). */
export const ORCHESTRATOR_PERMISSIONS: readonly string[] = Object.freeze([
  "--allow-net",
  "--allow-env",
  "--allow-read",
]);

const USAGE = `Usage: planetary-orchestrator [options]

Options (environment in parentheses):
  --database-url U     PostgreSQL URL (DATABASE_URL; required)
  --namespace NS       namespace of task pods (PLANETARY_NAMESPACE; required)
  --kubeconfig PATH    kubeconfig file (KUBECONFIG; default: in-cluster)
  --max-tasks N        tasks handled at once (PLANETARY_MAX_TASKS; default 64)
  --max-running-per-owner N
                       most claimed, unfinished tasks of one task owner, across every
                       replica; more stay QUEUED (PLANETARY_MAX_RUNNING_PER_OWNER;
                       default 0 = no limit)
  --pod-config FILE    JSON pod builder settings (PLANETARY_POD_CONFIG)
  --keep-finished-pods leave finished pods for the monitor to delete later
                       (PLANETARY_KEEP_FINISHED_PODS=true)
  --owner ID           identity in claims (POD_NAME; default random)
  --lease-ms N         claim lease in ms (PLANETARY_LEASE_MS; default 30000)
  --health-port P      /healthz and /readyz port, 0 = none (PLANETARY_HEALTH_PORT; default 8081)
  -h, --help           show this help
`;

/**
 * Runs the orchestrator service until SIGINT or SIGTERM.
 *
 * @param args Command-line arguments.
 * @returns The exit code: 0 success, 1 failure, 2 usage error.
 */
export async function main(args: readonly string[]): Promise<number> {
  const parsed = parseServiceArgs(
    args,
    {
      "max-tasks": { type: "string" },
      "max-running-per-owner": { type: "string" },
      "pod-config": { type: "string" },
      owner: { type: "string" },
      "lease-ms": { type: "string" },
      "keep-finished-pods": { type: "boolean" },
    },
    "planetary-orchestrator",
    USAGE,
  );
  if (typeof parsed === "number") return parsed;
  const { values, settings, usage } = parsed;
  const maxTasks = positiveInt(values["max-tasks"] ?? env("PLANETARY_MAX_TASKS") ?? "64");
  const perOwnerText = values["max-running-per-owner"] ??
    env("PLANETARY_MAX_RUNNING_PER_OWNER") ?? "0";
  const maxRunningPerOwner = /^[0-9]{1,7}$/.test(perOwnerText) ? Number(perOwnerText) : undefined;
  const podConfigPath = values["pod-config"] ?? env("PLANETARY_POD_CONFIG");
  const owner = values.owner ?? env("POD_NAME");
  const leaseText = values["lease-ms"] ?? env("PLANETARY_LEASE_MS");
  const leaseMs = leaseText === undefined ? undefined : positiveInt(leaseText);
  const keepFinished = values["keep-finished-pods"] ??
    env("PLANETARY_KEEP_FINISHED_PODS") === "true";
  if (maxTasks === undefined) return usage("--max-tasks: must be a positive integer");
  if (maxRunningPerOwner === undefined) {
    return usage(
      `--max-running-per-owner: must be a whole number, 0 for no limit, got "${perOwnerText}"`,
    );
  }
  if (leaseText !== undefined && leaseMs === undefined) {
    return usage("--lease-ms: must be a positive integer");
  }

  try {
    const podConfig = podConfigPath ? await readPodConfig(podConfigPath) : {};
    const { namespace } = settings;
    await runClusterService(settings, (store, backend) => {
      const orchestrator = new Orchestrator({
        store,
        backend,
        buildPod: (task) => buildTaskPod(task, { namespace, ...podConfig }),
        maxConcurrentTasks: maxTasks,
        maxRunningPerOwner,
        deleteFinishedPods: !keepFinished,
        ...(owner !== undefined ? { owner } : {}),
        ...(leaseMs !== undefined ? { leaseMs } : {}),
      });
      orchestrator.start();
      return {
        started: { msg: "orchestrator started", owner: orchestrator.owner },
        async stop() {
          await orchestrator.stop();
          // what this replica asked of the apiserver, for capacity planning and benchmarks
          console.error(JSON.stringify({
            msg: "orchestrator stopped",
            owner: orchestrator.owner,
            kubernetes_requests: backend.requestCountsByResource(),
            pod_watch: backend.watchStats,
          }));
        },
      };
    });
    return 0;
  } catch (error) {
    console.error(`planetary-orchestrator: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
}

async function readPodConfig(path: string): Promise<PodBuilderConfig> {
  const value: unknown = JSON.parse(await Deno.readTextFile(path));
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`${path}: pod config must be a JSON object`);
  }
  return value as PodBuilderConfig;
}

function positiveInt(text: string): number | undefined {
  const n = /^[0-9]{1,7}$/.test(text) ? Number(text) : 0;
  return n > 0 ? n : undefined;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
