/**
 * Smoke test of the Helm chart's own container settings: `helm template` with this test's
 * values, the chart's non-workload objects created in the real test apiserver, then the
 * migration Job and the api, orchestrator and monitor Deployments run EXACTLY as their
 * rendered pod specs say (tests/_harness/chart_services.ts): the image's compiled binary as
 * `deno run` with its compile task's flags, the env resolved from the Secrets and ConfigMaps,
 * the ConfigMap and emptyDir volumes, a real service account token for the orchestrator and
 * monitor, the chart's user on a READ-ONLY root. Then a task submitted over HTTP runs as a pod
 * on the test cluster (node agent), the task pod built from the chart's pod config (its
 * transporter image run as the image would), and the monitor's cycle deletes the finished pod.
 *
 * Values set here: the namespaces, the database Secret's name, ports that do not collide on
 * the host network, a 1 s monitor interval, a storage Secret for the transporter
 * (`tasks.storageSecrets`, holding the `file://` allow list), and
 * `orchestrator.extraEnv: PLANETARY_KEEP_FINISHED_PODS=true`, so that the finished pod is left
 * for the monitor to delete (the observable outcome of a cycle).
 *
 * @module
 */
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { API_PERMISSIONS } from "../cli/api.ts";
import { MONITOR_PERMISSIONS } from "../cli/monitor.ts";
import { ORCHESTRATOR_PERMISSIONS } from "../cli/orchestrator.ts";
import { TRANSPORTER_PERMISSIONS } from "../transporter/main.ts";
import { findHelm } from "../k8s/tools/render.ts";
import { TesClient } from "../src/client/mod.ts";
import { podName } from "../src/pod/pod_name.ts";
import {
  type ChartDeployment,
  imageRuntime,
  SERVICE_ACCOUNT_DIR,
  startChartDeployment,
} from "./_harness/chart_services.ts";
import {
  type ClusterInfra,
  CONTAINER_SOURCE_DIR,
  HOST_FILES_ROOT,
  requirePlanetaryCluster,
  startClusterInfra,
} from "./_harness/cluster.ts";
import { requireComponent, which } from "./_harness/component.ts";
import { loadImageCatalog } from "./_harness/images.ts";
import { runSandboxed } from "./_harness/pod_sandbox.ts";

const HELM = findHelm();
const ENABLED =
  requireComponent(HELM !== undefined, "helm not found: run k8s/tools/install_helm.sh") &&
  requireComponent(
    Deno.uid() === 0 && which("unshare") !== undefined && which("setpriv") !== undefined,
    "running the chart's pods needs root and util-linux unshare and setpriv",
  ) &&
  await requirePlanetaryCluster();

const RELEASE_NAMESPACE = "chart-smoke";
const TASKS_NAMESPACE = "chart-smoke-tasks";
const DATABASE_SECRET = "chart-smoke-database";
const STORAGE_SECRET = "chart-smoke-storage";
const TASK_DEADLINE_MS = 120_000;
/** The user of the chart's pods (and of the distroless images). */
const CHART_UID = 65532;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The mount options of `/` as a process sees it (its `/proc/<pid>/mountinfo`). */
function rootMountOptions(pid: number): string[] {
  const lines = Deno.readTextFileSync(`/proc/${pid}/mountinfo`).trim().split("\n");
  const root = lines.map((line) => line.split(" ")).filter((fields) => fields[4] === "/").at(-1);
  assert.ok(root, `process ${pid} has a / mount`);
  return root[5]!.split(",");
}

/** A field of `/proc/<pid>/status` (`Uid`, `NoNewPrivs`, `CapBnd`…). */
function procStatus(pid: number, field: string): string {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  const value = new RegExp(`^${field}:\\s+(.*)$`, "m").exec(text)?.[1];
  assert.ok(value !== undefined, `/proc/${pid}/status has ${field}`);
  return value;
}

/** Records the first version of each pod of a namespace and its deletion, from a watch started now. */
async function watchPods(
  infra: ClusterInfra,
  namespace: string,
): Promise<{ seen: Map<string, { pod: k8s.V1Pod; deleted: boolean }>; stop: () => void }> {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(infra.controlPlane.adminKubeconfigPath);
  const seen = new Map<string, { pod: k8s.V1Pod; deleted: boolean }>();
  const controller = await new k8s.Watch(kc).watch(
    `/api/v1/namespaces/${namespace}/pods`,
    {},
    (type: string, pod: k8s.V1Pod) => {
      const name = pod.metadata?.name ?? "";
      const first = seen.get(name)?.pod ?? pod;
      seen.set(name, {
        pod: first,
        deleted: type === "DELETED" || seen.get(name)?.deleted === true,
      });
    },
    () => {},
  );
  return { seen, stop: () => controller.abort() };
}

/** The orchestrator's pod builder settings from the chart's ConfigMap. */
function chartPodConfig(chart: ChartDeployment): { transporterImage: string } {
  const configMap = chart.objects.find((o) =>
    o.kind === "ConfigMap" && (o.data as Record<string, string> | undefined)?.["pod-config.json"]
  );
  assert.ok(configMap, "the chart renders a ConfigMap with pod-config.json");
  return JSON.parse((configMap.data as Record<string, string>)["pod-config.json"]!);
}

async function poll<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const deadline = Date.now() + TASK_DEADLINE_MS;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${TASK_DEADLINE_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

Deno.test({
  name: "the chart's api, orchestrator and monitor, run from their rendered pod specs, run a task",
  ignore: !ENABLED,
  async fn(t) {
    const catalog = loadImageCatalog();
    const infra = await startClusterInfra({
      // the node agent runs the chart's transporter image as the image would
      wrapRuntime: (inner) => imageRuntime(inner, catalog),
    });
    let chart: ChartDeployment | undefined;
    let stopWatch = (): void => {};
    try {
      const storageDir = `${infra.filesRoot}/chart`;
      await Deno.mkdir(storageDir, { recursive: true });
      chart = await startChartDeployment(infra, {
        helm: HELM!,
        namespace: RELEASE_NAMESPACE,
        values: {
          database: { existingSecret: DATABASE_SECRET, secretKey: "url" },
          api: { port: freePort() },
          orchestrator: {
            healthPort: freePort(),
            extraEnv: [{ name: "PLANETARY_KEEP_FINISHED_PODS", value: "true" }],
          },
          monitor: { healthPort: freePort(), intervalSeconds: 1 },
          tasks: { namespace: TASKS_NAMESPACE, storageSecrets: [STORAGE_SECRET] },
        },
        secrets: [{
          namespace: TASKS_NAMESPACE,
          name: STORAGE_SECRET,
          // the transporter's storage settings; file:// paths are shared by the node agent
          data: { PLANETARY_FILE_ALLOW_LIST: storageDir, PLANETARY_FILE_ROOT: HOST_FILES_ROOT },
        }],
      });
      const deployment = chart;

      await t.step("the migration Job ran its container to a successful end", () => {
        assert.equal(deployment.jobs.length, 1, "one Job is rendered");
        const [job] = deployment.jobs;
        assert.equal(job!.status.code, 0, job!.log);
        assert.match(job!.log, /migrations applied/);
      });

      await t.step("each service runs its compiled binary's entry with exactly its flags", () => {
        const expected: Record<string, [string, readonly string[]]> = {
          api: ["cli/api.ts", API_PERMISSIONS],
          orchestrator: ["cli/orchestrator.ts", ORCHESTRATOR_PERMISSIONS],
          monitor: ["cli/monitor.ts", MONITOR_PERMISSIONS],
        };
        assert.deepEqual(deployment.workloads.map((w) => w.component).sort(), [
          "api",
          "monitor",
          "orchestrator",
        ]);
        for (const w of deployment.workloads) {
          const [entry, permissions] = expected[w.component]!;
          const argv = w.sandbox.argv;
          const at = argv.indexOf(`${CONTAINER_SOURCE_DIR}/${entry}`);
          assert.ok(at > 0, `${w.component} runs ${entry}: ${argv.join(" ")}`);
          assert.deepEqual(
            argv.slice(0, at).filter((a) => /^--(allow|deny)-/.test(a)).sort(),
            [...permissions].sort(),
            `${w.component} runs with its exported permissions`,
          );
          assert.deepEqual(argv.slice(at + 1), w.container.args ?? [], "the container's args");
        }
        const transporter = catalog.find("planetary-transporter");
        assert.deepEqual(
          [...transporter!.binaries[0]!.permissions].sort(),
          [...TRANSPORTER_PERMISSIONS].sort(),
        );
      });

      await t.step("each service runs as the chart's user on a read-only root", async () => {
        for (const w of deployment.workloads) {
          const pid = w.process.pid;
          assert.ok(!w.process.exited, `${w.component} runs`);
          assert.ok(w.sandbox.readOnlyRoot, `${w.component} asks for a read-only root`);
          assert.ok(rootMountOptions(pid).includes("ro"), `${w.component}: / is mounted ro`);
          assert.equal(procStatus(pid, "Uid").split(/\s+/)[0], String(CHART_UID));
          assert.equal(procStatus(pid, "Gid").split(/\s+/)[0], String(CHART_UID));
          assert.equal(procStatus(pid, "NoNewPrivs"), "1", `${w.component}: no_new_privs`);
          assert.equal(procStatus(pid, "CapBnd"), "0000000000000000", `${w.component}: no caps`);
          const token = w.sandbox.mounts.some((m) => m.target === SERVICE_ACCOUNT_DIR);
          assert.equal(
            token,
            w.component !== "api",
            `${w.component}: a service account token only where the chart automounts it`,
          );
        }
        // The same sandbox as the api's: a write to / fails, one to the emptyDir /tmp works.
        const api = deployment.workload("api").sandbox;
        const probe = await runSandboxed({
          ...api,
          name: "api-write-probe",
          argv: [
            "/bin/sh",
            "-c",
            "id -u; echo ok > /tmp/probe && cat /tmp/probe; echo x > /probe || exit 3",
          ],
          scratchDir: `${infra.dir}/api-write-probe`,
          logPath: `${infra.dir}/api-write-probe.log`,
        });
        assert.equal(probe.status.code, 3, probe.log);
        assert.match(probe.log, new RegExp(`^${CHART_UID}\nok\n`), probe.log);
        assert.match(probe.log, /Read-only file system/, probe.log);
      });

      const apiUrl = `http://127.0.0.1:${deployment.port("api", "http")}`;
      await t.step("the api answers /healthz and /readyz", async () => {
        for (const path of ["/healthz", "/readyz"]) {
          const response = await fetch(`${apiUrl}${path}`);
          await response.body?.cancel();
          assert.equal(response.status, 200, `${path}`);
        }
      });

      await t.step("the orchestrator and the monitor answer their health probes", async () => {
        for (const component of ["orchestrator", "monitor"]) {
          for (const path of ["/healthz", "/readyz"]) {
            const port = deployment.port(component, "health");
            const response = await fetch(`http://127.0.0.1:${port}${path}`);
            await response.body?.cancel();
            assert.equal(response.status, 200, `${component} ${path}`);
          }
        }
      });

      const pods = await watchPods(infra, TASKS_NAMESPACE);
      stopWatch = pods.stop;
      let taskPod = "";
      await t.step(
        "a task submitted over HTTP runs as a pod built from the chart's pod config",
        async () => {
          const response = await fetch(`${apiUrl}/ga4gh/tes/v1/tasks`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              name: "chart smoke",
              executors: [{
                image: "alpine:3.20",
                command: ["sh", "-c", "echo hello from the chart; echo 42 > /data/answer.txt"],
              }],
              outputs: [{ url: `file://${storageDir}/answer.txt`, path: "/data/answer.txt" }],
            }),
          });
          assert.equal(response.status, 200, await response.clone().text());
          const { id } = await response.json() as { id: string };
          const task = await new TesClient(apiUrl).waitForTask(id, {
            intervalMs: 200,
            signal: AbortSignal.timeout(TASK_DEADLINE_MS),
          });
          assert.equal(task.state, "COMPLETE", JSON.stringify(task.logs) + deployment.logs());
          const log = task.logs?.[0];
          assert.equal(log?.logs[0]?.stdout, "hello from the chart\n");
          assert.equal(log?.logs[0]?.exit_code, 0);
          assert.deepEqual(log?.outputs, [{
            url: `file://${storageDir}/answer.txt`,
            path: "/data/answer.txt",
            size_bytes: "3",
          }]);
          assert.equal(await Deno.readTextFile(`${storageDir}/answer.txt`), "42\n");

          taskPod = podName(id);
          const seen = await poll("the watch saw the task pod", () => pods.seen.get(taskPod));
          const spec = seen.pod.spec!;
          assert.equal(spec.serviceAccountName, "planetary-task", "the chart's task account");
          const inputs = spec.initContainers?.find((c) => c.name === "inputs");
          const podConfig = chartPodConfig(deployment);
          assert.equal(inputs?.image, podConfig.transporterImage, "the chart's transporter image");
          assert.equal(catalog.find(podConfig.transporterImage)?.target, "transporter");
          assert.equal(inputs?.command?.[0], "/usr/local/bin/planetary-transporter");
          assert.deepEqual(inputs?.envFrom, [{ secretRef: { name: STORAGE_SECRET } }]);
        },
      );

      await t.step("the monitor runs a cycle that deletes the finished pod", async () => {
        const monitor = deployment.workload("monitor").process;
        const line = await monitor.waitForLog(
          /"msg":"monitor cycle".*"podsDeleted":[1-9]/,
          TASK_DEADLINE_MS,
        );
        const report = JSON.parse(line) as { podsDeleted: number; errors: number };
        assert.equal(report.podsDeleted, 1, line);
        assert.equal(report.errors, 0, line);
        assert.doesNotMatch(monitor.log(), /"level":"error"/, monitor.log());
        await poll("the task pod is deleted", () => pods.seen.get(taskPod)?.deleted || undefined);
      });

      await t.step("SIGTERM stops every service with exit code 0", async () => {
        stopWatch();
        const statuses = await deployment.stop();
        for (const [component, status] of statuses) {
          assert.equal(
            status.code,
            0,
            `${component}:\n${deployment.workload(component).process.log()}`,
          );
        }
      });
    } catch (error) {
      console.error(chart?.logs());
      throw error;
    } finally {
      stopWatch();
      await chart?.stop();
      await infra.stop();
    }
  },
});
