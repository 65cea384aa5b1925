/**
 * Kubernetes benchmark: `N` trivial tasks (`true`) submitted at once to Planetary on the test
 * cluster (tests/_harness/cluster.ts: real kube-apiserver, scheduler, controller-manager, etcd,
 * PostgreSQL, the API, orchestrator(s) and monitor as subprocesses, the node agent running the
 * pods with the host runtime).
 *
 * Printed figures, with their definitions:
 * - **submit**: time to POST all tasks (concurrency 64).
 * - **all pods exist**: from the first POST until the apiserver lists `N` task pods (a
 *   metadata-only list as admin every 500 ms, so up to about 500 ms late). Meanwhile the node
 *   agent holds every container (the pods wait in ContainerCreating), so that the orchestrator
 *   has all `N` tasks active at once; the orchestrators keep finished pods. The orchestrator creates a pod as soon as it claims
 *   a task: this is the Kubernetes-side throughput of the orchestrator.
 * - **all final after release**: from the moment the node agent starts running containers until
 *   every task is final (list polled every 500 ms). Bounded by the node agent: at most `--node-concurrency` containers run at once on
 *   this machine (each task runs two `deno run` transporters plus `true`).
 * - **orchestrator requests / task**: the orchestrator's own count of apiserver requests (each
 *   retry counts; so does each watch connection), logged at its shutdown, divided by `N`.
 * - **apiserver requests / task**: the delta of the apiserver's `apiserver_request_total`
 *   (its own `/metrics`, read as admin) over the run, divided by `N`. All clients count: the
 *   orchestrator, the monitor, the scheduler, the garbage collector and the node agent (the
 *   metric has no user label).
 * - **orchestrator peak RSS**: VmHWM of the orchestrator subprocess once all `N` tasks are
 *   active (their pods exist), and at the end.
 *
 * ```sh
 * deno run -A bench/k8s.ts                      # 1,000 tasks
 * deno run -A bench/k8s.ts --tasks 200 --node-concurrency 8
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startPlanetaryCluster } from "../tests/_harness/cluster.ts";
import type {
  ContainerExit,
  ContainerRunSpec,
  ContainerRuntime,
} from "../tests/_harness/node_agent.ts";
import { findControlPlaneBinaries } from "../tests/_harness/k8s.ts";
import { postgresInstalled } from "../tests/_harness/postgres.ts";
import type { TesState } from "../src/tes/model.ts";
import { fixed, formatTable } from "./_load.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    tasks: { type: "string", default: "1000" },
    orchestrators: { type: "string", default: "1" },
    "node-concurrency": { type: "string", default: "16" },
    "complete-timeout-s": { type: "string", default: "1800" },
  },
});
const TASKS = Number(values.tasks);
const ORCHESTRATORS = Number(values.orchestrators);
const NODE_CONCURRENCY = Number(values["node-concurrency"]);
const COMPLETE_TIMEOUT_MS = Number(values["complete-timeout-s"]) * 1000;

if (!findControlPlaneBinaries() || !postgresInstalled()) {
  console.error("bench/k8s.ts needs the control plane (k8s/testenv/build.sh) and PostgreSQL 15");
  Deno.exit(2);
}

/**
 * Holds every container until `gate` opens, then runs at most `limit` at once (the node's
 * CPUs); the others wait their turn.
 */
function gated(inner: ContainerRuntime, gate: Promise<void>, limit: number): ContainerRuntime {
  let running = 0;
  const waiting: (() => void)[] = [];
  return {
    name: inner.name,
    ensureAvailable: () => inner.ensureAvailable(),
    async run(spec: ContainerRunSpec, signal: AbortSignal, onStarted: () => void) {
      await gate;
      if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
      running++;
      try {
        return await inner.run(spec, signal, onStarted) as ContainerExit;
      } finally {
        running--;
        waiting.shift()?.();
      }
    },
  };
}

async function apiserverRequestTotal(server: string, caPem: string, token: string) {
  const client = Deno.createHttpClient({ caCerts: [caPem] });
  try {
    const response = await fetch(`${server}/metrics`, {
      client,
      headers: { authorization: `Bearer ${token}` },
    });
    const text = await response.text();
    let total = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith("apiserver_request_total{")) continue;
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
    return total;
  } finally {
    client.close();
  }
}

/**
 * Counts the task pods with a metadata-only list (a full list of 1,000 pods every few hundred
 * ms would itself overload the apiserver on 2 cores).
 */
async function countTaskPods(
  server: string,
  caPem: string,
  token: string,
  namespace: string,
): Promise<number> {
  const client = Deno.createHttpClient({ caCerts: [caPem] });
  try {
    const response = await fetch(
      `${server}/api/v1/namespaces/${namespace}/pods?labelSelector=${
        encodeURIComponent("app.kubernetes.io/managed-by=planetary")
      }`,
      {
        client,
        headers: {
          authorization: `Bearer ${token}`,
          accept: "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        },
        signal: AbortSignal.timeout(30_000),
      },
    );
    if (!response.ok) throw new Error(`list pods: HTTP ${response.status}`);
    const body = await response.json() as { items?: unknown[] };
    return body.items?.length ?? 0;
  } finally {
    client.close();
  }
}

const FAILED: readonly TesState[] = ["EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"];

const gate = Promise.withResolvers<void>();
const t0 = performance.now();
const cluster = await startPlanetaryCluster({
  nodePods: String(TASKS + 100),
  orchestrators: ORCHESTRATORS,
  maxTasks: Math.ceil(TASKS / ORCHESTRATORS) + 10,
  leaseMs: 30_000,
  statusIntervalMs: 250,
  // finished pods stay (deleted at the end), so that "all pods exist" is exact
  orchestratorArgs: ["--keep-finished-pods"],
  monitorArgs: ["--interval-s", "15", "--pending-timeout-s", "86400", "--keep-finished-s", "86400"],
  wrapRuntime: (inner) => gated(inner, gate.promise, NODE_CONCURRENCY),
});
// Ctrl-C or SIGTERM: stop every process the cluster started before exiting
const SIGNALS = ["SIGINT", "SIGTERM"] as const;
const onSignal = (): void => void cluster.stop().finally(() => Deno.exit(130));
for (const signal of SIGNALS) Deno.addSignalListener(signal, onSignal);
console.error(`cluster up in ${fixed((performance.now() - t0) / 1000)} s`);
const cp = cluster.controlPlane;

try {
  const requestsBefore = await apiserverRequestTotal(cp.server, cp.caPem, cp.adminToken);
  const start = performance.now();
  const ids: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < TASKS) {
      next++;
      ids.push(
        await cluster.client.createTask({
          executors: [{ image: "alpine:3.20", command: ["true"] }],
        }),
      );
    }
  }));
  const submitMs = performance.now() - start;

  let podsMs = NaN;
  for (;;) {
    const pods = await countTaskPods(cp.server, cp.caPem, cp.adminToken, cluster.namespace)
      .catch(() => 0);
    const now = performance.now();
    if (pods >= TASKS) {
      podsMs = now - start;
      break;
    }
    if (now - start > COMPLETE_TIMEOUT_MS) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const rssAtPeak = cluster.orchestrators.map((p) => p?.peakRssKib() ?? 0);
  console.error(`all ${TASKS} pods exist after ${fixed(podsMs / 1000)} s`);
  // now run them
  const released = performance.now();
  gate.resolve();

  let completeMs = NaN;
  let complete = 0;
  let failed = 0;
  for (;;) {
    complete = 0;
    failed = 0;
    for await (const task of cluster.client.listAllTasks({ view: "MINIMAL", pageSize: 2000 })) {
      if (task.state === "COMPLETE") complete++;
      else if (FAILED.includes(task.state ?? "UNKNOWN")) failed++;
    }
    const now = performance.now();
    if (complete + failed >= TASKS) {
      completeMs = now - released;
      break;
    }
    if (now - start > COMPLETE_TIMEOUT_MS) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const requestsAfter = await apiserverRequestTotal(cp.server, cp.caPem, cp.adminToken);
  const rssEnd = cluster.orchestrators.map((p) => p?.peakRssKib() ?? 0);

  // the orchestrators log their own request counts when they stop
  const orchestratorRequests: Record<string, number> = {};
  for (let i = 0; i < ORCHESTRATORS; i++) {
    await cluster.killOrchestrator(i, "SIGTERM");
    const line = cluster.orchestrators[i]!.log().split("\n").find((l) =>
      l.includes('"msg":"orchestrator stopped"')
    );
    const counts = line
      ? (JSON.parse(line) as { kubernetes_requests: Record<string, number> }).kubernetes_requests
      : {};
    for (const [key, n] of Object.entries(counts)) {
      orchestratorRequests[key] = (orchestratorRequests[key] ?? 0) + n;
    }
  }
  const orchestratorTotal = Object.values(orchestratorRequests).reduce((a, b) => a + b, 0);

  const mib = (kib: number): string => fixed(kib / 1024, 0);
  console.log(
    `\nPlanetary on the test cluster: ${TASKS} tasks (true), ${ORCHESTRATORS} orchestrator(s), ` +
      `node agent running ${NODE_CONCURRENCY} containers at once, ${navigator.hardwareConcurrency} cores\n`,
  );
  console.log(formatTable(["figure", "value"], [
    ["submit (s)", fixed(submitMs / 1000)],
    ["all pods exist (s)", fixed(podsMs / 1000)],
    ["pods created / s", fixed(TASKS / (podsMs / 1000))],
    [
      `all final after release (s): ${complete} COMPLETE, ${failed} failed`,
      fixed(completeMs / 1000),
    ],
    ["tasks / s once released", fixed(TASKS / (completeMs / 1000), 2)],
    ["orchestrator requests / task", fixed(orchestratorTotal / TASKS, 2)],
    ["apiserver requests / task (all clients)", fixed((requestsAfter - requestsBefore) / TASKS, 2)],
    [`orchestrator VmHWM at ${TASKS} active (MiB)`, rssAtPeak.map(mib).join(" / ")],
    ["orchestrator VmHWM at the end (MiB)", rssEnd.map(mib).join(" / ")],
  ]));
  console.log(
    `\norchestrator requests by verb and resource: ${JSON.stringify(orchestratorRequests)}`,
  );
} finally {
  for (const signal of SIGNALS) Deno.removeSignalListener(signal, onSignal);
  await cluster.stop();
}
