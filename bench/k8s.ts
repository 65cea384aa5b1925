/**
 * Kubernetes benchmark: `N` trivial tasks (`true`) submitted at once to Planetary on the test
 * cluster (tests/_harness/cluster.ts: real kube-apiserver, scheduler, controller-manager, etcd,
 * PostgreSQL, the API, orchestrator(s) and monitor as subprocesses), on one of two nodes:
 * - `--node real` (default): a real kubelet with containerd (tests/_harness/real_node.ts); each
 *   task pod runs the transporter image twice (`inputs`, `outputs`) and the busybox executor;
 * - `--node agent`: the node agent's fake Node, pods run with the host runtime (two `deno run`
 *   transporters from this source tree plus `true`), at most `--node-concurrency` containers at
 *   once.
 *
 * The run stops at `N` final tasks or after `--max-seconds` (default 600: "1,000 tasks or as
 * many as fit in 10 minutes"), whichever comes first; the report says which.
 *
 * Printed figures, with their definitions:
 * - **submit**: time to POST all tasks (concurrency 64).
 * - **submit to done**: from the first POST until every task is final (list polled every
 *   500 ms, so up to about 500 ms late), or until the time limit.
 * - **tasks final per minute**: final tasks divided by that time (each task is one pod).
 * - **apiserver writes / task**: the delta of the apiserver's `apiserver_request_total` for the
 *   write verbs (POST, PUT, PATCH, DELETE, APPLY; its own `/metrics`, read as admin) over the
 *   run, divided by the final tasks. All clients count: the orchestrator, the monitor, the
 *   scheduler (bindings), the kubelet or node agent (status), the garbage collector (the metric
 *   has no user label). The same for all verbs.
 * - **orchestrator requests / task**: the orchestrator's own count of apiserver requests (each
 *   retry counts; so does each watch connection), logged at its shutdown.
 * - **orchestrator CPU / task**: user + system CPU time of the orchestrator subprocess over the
 *   run (`/proc/<pid>/stat`), divided by the final tasks.
 * - **orchestrator VmHWM**: its peak resident set size at the end.
 *
 * ```sh
 * deno run -A bench/k8s.ts                           # real node, 1,000 tasks or 10 minutes
 * deno run -A bench/k8s.ts --node agent              # the same on the node agent
 * deno run -A bench/k8s.ts --tasks 200 --max-seconds 300
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  type ClusterNode,
  clusterNodeMissing,
  startPlanetaryCluster,
} from "../tests/_harness/cluster.ts";
import type { ContainerRuntime } from "../tests/_harness/node_agent.ts";
import { findControlPlaneBinaries } from "../tests/_harness/k8s.ts";
import { postgresInstalled } from "../tests/_harness/postgres.ts";
import type { TesState } from "../src/tes/model.ts";
import { fixed, formatTable } from "./_load.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    node: { type: "string", default: "real" },
    tasks: { type: "string", default: "1000" },
    orchestrators: { type: "string", default: "1" },
    "node-concurrency": { type: "string", default: "16" },
    "max-seconds": { type: "string", default: "600" },
  },
});
const NODE = values.node as ClusterNode;
const TASKS = Number(values.tasks);
const ORCHESTRATORS = Number(values.orchestrators);
const NODE_CONCURRENCY = Number(values["node-concurrency"]);
const MAX_MS = Number(values["max-seconds"]) * 1000;

if (NODE !== "real" && NODE !== "agent") {
  console.error(`--node must be real or agent, not ${NODE}`);
  Deno.exit(2);
}
const missing = !findControlPlaneBinaries() || !postgresInstalled()
  ? "the control plane (k8s/testenv/build.sh) and PostgreSQL 15"
  : await clusterNodeMissing(NODE);
if (missing) {
  console.error(`bench/k8s.ts --node ${NODE} needs ${missing}`);
  Deno.exit(2);
}

/** Runs at most `limit` containers at once (the node's CPUs); the others wait their turn. */
function bounded(inner: ContainerRuntime, limit: number): ContainerRuntime {
  let running = 0;
  const waiting: (() => void)[] = [];
  return {
    name: inner.name,
    ensureAvailable: () => inner.ensureAvailable(),
    async run(spec, signal, onStarted) {
      if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
      running++;
      try {
        return await inner.run(spec, signal, onStarted);
      } finally {
        running--;
        waiting.shift()?.();
      }
    },
  };
}

const WRITE_VERBS = new Set(["POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"]);

/** `apiserver_request_total` summed over all series, and over the write verbs. */
async function apiserverRequests(
  server: string,
  caPem: string,
  token: string,
): Promise<{ all: number; writes: number }> {
  const client = Deno.createHttpClient({ caCerts: [caPem] });
  try {
    const response = await fetch(`${server}/metrics`, {
      client,
      headers: { authorization: `Bearer ${token}` },
    });
    const text = await response.text();
    let all = 0;
    let writes = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith("apiserver_request_total{")) continue;
      const n = Number(line.slice(line.lastIndexOf(" ") + 1));
      all += n;
      const verb = /verb="([A-Z]+)"/.exec(line)?.[1] ?? "";
      if (WRITE_VERBS.has(verb)) writes += n;
    }
    return { all, writes };
  } finally {
    client.close();
  }
}

/** User + system CPU seconds of a process, or NaN once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state): utime and stime are fields 14 and 15, in clock ticks (100/s)
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

const FAILED: readonly TesState[] = ["EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"];

const t0 = performance.now();
const cluster = await startPlanetaryCluster({
  node: NODE,
  nodePods: String(Math.min(TASKS + 100, NODE === "real" ? 500 : TASKS + 100)),
  orchestrators: ORCHESTRATORS,
  maxTasks: Math.ceil(TASKS / ORCHESTRATORS) + 10,
  leaseMs: 30_000,
  statusIntervalMs: 250,
  monitorArgs: ["--interval-s", "15", "--pending-timeout-s", "86400"],
  ...(NODE === "agent" ? { wrapRuntime: (inner) => bounded(inner, NODE_CONCURRENCY) } : {}),
});
// Ctrl-C or SIGTERM: stop every process the cluster started before exiting
const SIGNALS = ["SIGINT", "SIGTERM"] as const;
const onSignal = (): void => void cluster.stop().finally(() => Deno.exit(130));
for (const signal of SIGNALS) Deno.addSignalListener(signal, onSignal);
console.error(`cluster (${NODE} node) up in ${fixed((performance.now() - t0) / 1000)} s`);
const cp = cluster.controlPlane;

try {
  const before = await apiserverRequests(cp.server, cp.caPem, cp.adminToken);
  const cpuBefore = cluster.orchestrators.map((p) => cpuSeconds(p!.pid));
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < TASKS) {
      next++;
      await cluster.client.createTask({ executors: [{ image: "alpine:3.20", command: ["true"] }] });
    }
  }));
  const submitMs = performance.now() - start;
  console.error(`${TASKS} tasks submitted in ${fixed(submitMs / 1000)} s`);

  let doneMs = NaN;
  let complete = 0;
  let failed = 0;
  let timedOut = false;
  let lastPrint = 0;
  for (;;) {
    complete = 0;
    failed = 0;
    for await (const task of cluster.client.listAllTasks({ view: "MINIMAL", pageSize: 2000 })) {
      if (task.state === "COMPLETE") complete++;
      else if (FAILED.includes(task.state ?? "UNKNOWN")) failed++;
    }
    const now = performance.now();
    doneMs = now - start;
    if (complete + failed >= TASKS) break;
    if (now - start > MAX_MS) {
      timedOut = true;
      break;
    }
    if (now - lastPrint > 30_000) {
      lastPrint = now;
      console.error(`${fixed(doneMs / 1000, 0)} s: ${complete} COMPLETE, ${failed} failed`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const final = complete + failed;
  const after = await apiserverRequests(cp.server, cp.caPem, cp.adminToken);
  const cpu = cluster.orchestrators.map((p, i) => cpuSeconds(p!.pid) - cpuBefore[i]!);
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
  const nodeText = NODE === "real"
    ? "real node (kubelet + containerd)"
    : `node agent running ${NODE_CONCURRENCY} containers at once`;
  console.log(
    `\nPlanetary on the test cluster: ${TASKS} tasks (true) submitted, ${final} final ` +
      `${timedOut ? `when the ${MAX_MS / 1000} s limit passed` : "(all)"}, ` +
      `${ORCHESTRATORS} orchestrator(s), ${nodeText}, ${navigator.hardwareConcurrency} cores\n`,
  );
  console.log(formatTable(["figure", "value"], [
    ["submit (s)", fixed(submitMs / 1000)],
    [
      `submit to done (s): ${complete} COMPLETE, ${failed} failed${
        timedOut ? " (time limit)" : ""
      }`,
      fixed(doneMs / 1000),
    ],
    ["tasks (pods) final per minute", fixed(final / (doneMs / 60_000), 1)],
    ["apiserver writes / task (all clients)", fixed((after.writes - before.writes) / final, 2)],
    ["apiserver requests / task (all clients)", fixed((after.all - before.all) / final, 2)],
    ["orchestrator requests / task", fixed(orchestratorTotal / final, 2)],
    ["orchestrator CPU / task (ms)", cpu.map((s) => fixed((s * 1000) / final, 1)).join(" / ")],
    ["orchestrator VmHWM at the end (MiB)", rssEnd.map(mib).join(" / ")],
  ]));
  console.log(
    `\norchestrator requests by verb and resource: ${JSON.stringify(orchestratorRequests)}`,
  );
} finally {
  for (const signal of SIGNALS) Deno.removeSignalListener(signal, onSignal);
  await cluster.stop();
}
