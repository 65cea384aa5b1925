/**
 * `planetary-monitor`: the housekeeping service of a Kubernetes deployment. Every cycle it warns
 * about leases no orchestrator took over, fails tasks whose pod vanished or is stuck (Pending,
 * image pull errors) with the reason, and deletes finished pods after a keep interval.
 *
 * ```sh
 * DATABASE_URL=postgres://… PLANETARY_NAMESPACE=planetary-tasks planetary-monitor
 * ```
 *
 * Settings (flag, then environment): `--database-url`/`DATABASE_URL` and
 * `--namespace`/`PLANETARY_NAMESPACE` (required), `--kubeconfig`/`KUBECONFIG` (else in-cluster),
 * `--interval-s`/`PLANETARY_MONITOR_INTERVAL_S` (15), `--pending-timeout-s` (600),
 * `--image-pull-timeout-s` (300), `--keep-finished-s` (0), `--health-port`/`PLANETARY_HEALTH_PORT`
 * (8081).
 *
 * @module
 */
import { Monitor } from "../src/monitor/monitor.ts";
import { env, parseServiceArgs, runClusterService } from "./_service.ts";

/** The exact permission flags of the monitor service (`deno run`/`deno compile`). */
export const MONITOR_PERMISSIONS: readonly string[] = Object.freeze([
  "--allow-net",
  "--allow-env",
  "--allow-read",
]);

const USAGE = `Usage: planetary-monitor [options]

Options (environment in parentheses):
  --database-url U          PostgreSQL URL (DATABASE_URL; required)
  --namespace NS            namespace of task pods (PLANETARY_NAMESPACE; required)
  --kubeconfig PATH         kubeconfig file (KUBECONFIG; default: in-cluster)
  --interval-s N            seconds between cycles (PLANETARY_MONITOR_INTERVAL_S; default 15)
  --pending-timeout-s N     fail a task whose pod is Pending this long (default 600)
  --image-pull-timeout-s N  fail a task whose image cannot be pulled this long (default 300)
  --keep-finished-s N       keep finished pods this long before deleting them (default 0)
  --health-port P           /healthz and /readyz port, 0 = none (PLANETARY_HEALTH_PORT; default 8081)
  -h, --help                show this help
`;

/**
 * Runs the monitor service until SIGINT or SIGTERM.
 *
 * @param args Command-line arguments.
 * @returns The exit code: 0 success, 1 failure, 2 usage error.
 */
export async function main(args: readonly string[]): Promise<number> {
  const parsed = parseServiceArgs(
    args,
    {
      "interval-s": { type: "string" },
      "pending-timeout-s": { type: "string" },
      "image-pull-timeout-s": { type: "string" },
      "keep-finished-s": { type: "string" },
    },
    "planetary-monitor",
    USAGE,
  );
  if (typeof parsed === "number") return parsed;
  const { values, settings, usage } = parsed;
  const seconds = {
    interval: values["interval-s"] ?? env("PLANETARY_MONITOR_INTERVAL_S") ?? "15",
    pending: values["pending-timeout-s"] ?? env("PLANETARY_PENDING_TIMEOUT_S") ?? "600",
    pull: values["image-pull-timeout-s"] ?? env("PLANETARY_IMAGE_PULL_TIMEOUT_S") ?? "300",
    keep: values["keep-finished-s"] ?? env("PLANETARY_KEEP_FINISHED_S") ?? "0",
  };
  for (const [name, text] of Object.entries(seconds)) {
    if (!/^[0-9]{1,7}$/.test(text)) return usage(`${name}: must be a whole number of seconds`);
  }
  try {
    await runClusterService(settings, (store, backend) => {
      const monitor = new Monitor({
        store,
        backend,
        intervalMs: Math.max(1, Number(seconds.interval)) * 1000,
        pendingTimeoutMs: Number(seconds.pending) * 1000,
        imagePullTimeoutMs: Number(seconds.pull) * 1000,
        keepFinishedPodsMs: Number(seconds.keep) * 1000,
      });
      monitor.start();
      return { started: { msg: "monitor started" }, stop: () => monitor.stop() };
    });
    return 0;
  } catch (error) {
    console.error(`planetary-monitor: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
