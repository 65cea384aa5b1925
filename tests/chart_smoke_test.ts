/**
 * The Helm chart, installed for real: the `deno run` images of the api, orchestrator, monitor
 * and transporter (tests/_harness/service_images.ts) imported into a real node's containerd,
 * `helm install` of k8s/chart/planetary into the test cluster (tests/_harness/chart_cluster.ts:
 * control plane, real kubelet, the test's PostgreSQL reachable from the pods), the Deployments
 * Available, tasks submitted from the host through the apiserver's service proxy to the api
 * Service and run to COMPLETE on the node, `helm upgrade` to another image tag while tasks run
 * (none lost), and `helm uninstall` leaving nothing of the release behind.
 *
 * Values set here, and why: the database Secret (the test's PostgreSQL), the tasks namespace,
 * `tasks.transporter.command` (these images have no compiled binary: the transporter's command
 * is the `transporter-run` ENTRYPOINT), a 5 s monitor interval. Everything else is the
 * chart's default: 2 api and 2 orchestrator replicas, the security contexts, RBAC and
 * NetworkPolicies (stored, not enforced: the node's bridge CNI enforces none).
 *
 * End states only; the phase times are printed for the notes.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { TesClient } from "../src/client/mod.ts";
import { ANNOTATION_TASK_ID } from "../src/pod/pod_name.ts";
import type { TesTask } from "../src/tes/mod.ts";
import {
  type ChartCluster,
  requireChartCluster,
  startChartCluster,
} from "./_harness/chart_cluster.ts";
import { SERVICE_REPOSITORIES, serviceEntrypoint } from "./_harness/service_images.ts";

const ENABLED = await requireChartCluster();

const CHART_DIR = new URL("../k8s/chart/planetary", import.meta.url).pathname;
const RELEASE = "planetary";
const NAMESPACE = "chart-smoke";
const TASKS_NAMESPACE = "chart-smoke-tasks";
const DATABASE_SECRET = "chart-smoke-database";
/** The tag `helm upgrade` moves to (the same images, tagged again in the node's containerd). */
const UPGRADE_TAG = "0.1.0-upgrade";
/** Generous: two shared cores, five deno services and task pods on one node. */
const WAIT_MS = 300_000;
const DEPLOYMENTS = ["api", "orchestrator", "monitor"] as const;
/** The chart's user (the distroless nonroot uid). */
const CHART_UID = "65532";

interface PodRecord {
  nodeName?: string;
  transporterImage?: string;
  phase?: string;
}

/** Polls `read` until it returns a value (not undefined); errors count as "not yet". */
async function eventually<T>(
  what: string,
  read: () => Promise<T | undefined>,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await read();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
}

/** A TES client of the api Service through the apiserver's service proxy (admin token). */
function apiClient(cluster: ChartCluster): TesClient {
  const client = Deno.createHttpClient({ caCerts: [cluster.controlPlane.caPem] });
  const proxy = `${cluster.controlPlane.server}/api/v1/namespaces/${NAMESPACE}/services/` +
    `${RELEASE}-api:http/proxy/ga4gh/tes/v1`;
  return new TesClient(proxy, {
    token: cluster.controlPlane.adminToken,
    fetch: (input, init) => fetch(input, { ...init, client }),
    retries: 0,
  });
}

/** Submits a task; a proxy answer without the api (no ready endpoint, 502/503) is retried. */
async function submit(client: TesClient, task: TesTask): Promise<string> {
  return await eventually(`the api accepts task "${task.name}"`, async () => {
    try {
      return await client.createTask(task);
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status !== undefined && status !== 502 && status !== 503) throw error;
      return undefined;
    }
  });
}

/** Waits for a task to end (errors of single polls, e.g. during a rollout, are retried). */
function finished(client: TesClient, id: string): Promise<TesTask> {
  return eventually(`task ${id} ends`, async () => {
    const task = await client.getTask(id, "MINIMAL");
    const state = task.state ?? "UNKNOWN";
    if (!["COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"].includes(state)) {
      return undefined;
    }
    return await client.getTask(id, "FULL");
  });
}

function shellTask(name: string, script: string): TesTask {
  return { name, executors: [{ image: "alpine:3.20", command: ["sh", "-c", script] }] };
}

/** The Deployment is rolled out: every replica updated and available, none of another version. */
function rolledOut(d: k8s.V1Deployment, image: string): boolean {
  const want = d.spec?.replicas ?? 1;
  const s = d.status;
  return d.spec?.template.spec?.containers[0]?.image === image &&
    (s?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) &&
    s?.updatedReplicas === want && s?.availableReplicas === want && s?.replicas === want &&
    s?.conditions?.some((c) => c.type === "Available" && c.status === "True") === true;
}

async function waitRolledOut(cluster: ChartCluster, tag: string): Promise<void> {
  const apps = cluster.kubeConfig.makeApiClient(k8s.AppsV1Api);
  for (const component of DEPLOYMENTS) {
    const image = `ghcr.io/planetary/${SERVICE_REPOSITORIES[component]}:${tag}`;
    await eventually(`Deployment ${RELEASE}-${component} Available on ${image}`, async () => {
      const d = await apps.readNamespacedDeployment({
        name: `${RELEASE}-${component}`,
        namespace: NAMESPACE,
      });
      return rolledOut(d, image) ? true : undefined;
    });
  }
  // and no pod of another version is left (terminating ones included)
  const core = cluster.kubeConfig.makeApiClient(k8s.CoreV1Api);
  await eventually(`every pod of the release runs ${tag}`, async () => {
    const pods = await core.listNamespacedPod({
      namespace: NAMESPACE,
      labelSelector: `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component!=migrate`,
    });
    const stale = pods.items.filter((p) =>
      !p.spec?.containers.every((c) => c.image?.endsWith(`:${tag}`))
    );
    return stale.length === 0 ? true : undefined;
  });
}

/** Processes of this node's pods whose argv holds `entry`, with their `/proc` status. */
function nodeProcesses(cluster: ChartCluster, entry: string): { pid: number; status: string }[] {
  const found: { pid: number; status: string }[] = [];
  for (const item of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(item.name)) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${item.name}/cmdline`).split("\0");
      if (!argv.includes(entry)) continue;
      const cgroup = Deno.readTextFileSync(`/proc/${item.name}/cgroup`);
      if (!cgroup.includes(`${cluster.node.cgroupName}/kubepods`)) continue;
      found.push({
        pid: Number(item.name),
        status: Deno.readTextFileSync(`/proc/${item.name}/status`),
      });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function statusField(status: string, field: string): string {
  return new RegExp(`^${field}:\\s+(.*)$`, "m").exec(status)?.[1] ?? "";
}

/** The mount options of `/` as a process sees it. */
function rootMountOptions(pid: number): string[] {
  const lines = Deno.readTextFileSync(`/proc/${pid}/mountinfo`).trim().split("\n");
  const root = lines.map((line) => line.split(" ")).filter((fields) => fields[4] === "/").at(-1);
  return root?.[5]?.split(",") ?? [];
}

/** Records, per task pod, the node it ran on and its transporter image (a watch from now). */
async function watchTaskPods(
  kc: k8s.KubeConfig,
): Promise<{ pods: Map<string, PodRecord>; stop: () => void }> {
  const pods = new Map<string, PodRecord>();
  const controller = await new k8s.Watch(kc).watch(
    `/api/v1/namespaces/${TASKS_NAMESPACE}/pods`,
    {},
    (_type: string, pod: k8s.V1Pod) => {
      const taskId = pod.metadata?.annotations?.[ANNOTATION_TASK_ID];
      if (!taskId) return;
      const seen = pods.get(taskId) ?? {};
      const nodeName = pod.spec?.nodeName ?? seen.nodeName;
      const transporterImage = pod.spec?.initContainers?.find((c) => c.name === "inputs")?.image;
      pods.set(taskId, {
        ...(nodeName ? { nodeName } : {}),
        ...(transporterImage ? { transporterImage } : {}),
        ...(pod.status?.phase ? { phase: pod.status.phase } : {}),
      });
    },
    () => {},
  );
  return { pods, stop: () => controller.abort() };
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

Deno.test({
  name:
    "the chart installs on a real node, runs tasks, upgrades without losing one, uninstalls clean",
  ignore: !ENABLED,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const cluster = await startChartCluster();
    const figures: string[] = [
      `images ${seconds(cluster.timings.imagesMs)} s (cached: ${cluster.images.cached})`,
      `control plane + Node Ready ${seconds(cluster.timings.clusterMs)} s`,
      `image import ${seconds(cluster.timings.importMs)} s`,
    ];
    let stopWatch = (): void => {};
    try {
      const kc = cluster.kubeConfig;
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const client = apiClient(cluster);
      const watch = await watchTaskPods(kc);
      stopWatch = watch.stop;

      await t.step("helm install: the Deployments become Available", async () => {
        await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
        await core.createNamespacedSecret({
          namespace: NAMESPACE,
          body: {
            metadata: { name: DATABASE_SECRET },
            stringData: { url: cluster.databaseUrl },
          },
        });
        const values = {
          database: { existingSecret: DATABASE_SECRET, secretKey: "url" },
          monitor: { intervalSeconds: 5 },
          tasks: {
            namespace: TASKS_NAMESPACE,
            transporter: { command: serviceEntrypoint("transporter") },
          },
        };
        const valuesPath = `${cluster.node.dir}/chart-values.json`;
        await Deno.writeTextFile(valuesPath, JSON.stringify(values));
        const started = performance.now();
        await cluster.helm([
          "install",
          RELEASE,
          CHART_DIR,
          "--namespace",
          NAMESPACE,
          "--values",
          valuesPath,
          "--timeout",
          "10m",
        ]);
        const installed = performance.now();
        await waitRolledOut(cluster, "0.1.0");
        const available = performance.now();
        figures.push(
          `helm install (migration hook included) ${seconds(installed - started)} s, ` +
            `install to every Deployment Available ${seconds(available - started)} s`,
        );
      });

      await t.step("the chart's pods run as its user, read-only, without privileges", async () => {
        const pods = await core.listNamespacedPod({
          namespace: NAMESPACE,
          labelSelector: `app.kubernetes.io/instance=${RELEASE}`,
        });
        for (const pod of pods.items.filter((p) => p.status?.phase === "Running")) {
          assert.equal(pod.spec?.nodeName, cluster.node.nodeName);
          for (const c of pod.spec?.containers ?? []) {
            assert.equal(c.securityContext?.readOnlyRootFilesystem, true, pod.metadata?.name);
            assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
            assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"]);
          }
          const api = pod.metadata?.labels?.["app.kubernetes.io/component"] === "api";
          assert.equal(pod.spec?.automountServiceAccountToken, !api, "a token only for workers");
        }
        // the processes themselves, as the kernel sees them
        for (
          const entry of ["/app/cli/api.ts", "/app/cli/orchestrator.ts", "/app/cli/monitor.ts"]
        ) {
          const processes = nodeProcesses(cluster, entry);
          assert.ok(processes.length > 0, `a process runs ${entry} on the node`);
          for (const { pid, status } of processes) {
            assert.equal(statusField(status, "Uid").split(/\s+/)[0], CHART_UID, entry);
            assert.equal(statusField(status, "NoNewPrivs"), "1", entry);
            assert.equal(statusField(status, "CapEff"), "0000000000000000", entry);
            assert.ok(rootMountOptions(pid).includes("ro"), `${entry}: / is read-only`);
          }
        }
      });

      await t.step("a task submitted to the api Service runs to COMPLETE on the node", async () => {
        const started = performance.now();
        const id = await submit(client, shellTask("chart hello", "echo hello from the chart"));
        const task = await finished(client, id);
        figures.push(`task submit to COMPLETE ${seconds(performance.now() - started)} s`);
        assert.equal(task.state, "COMPLETE", JSON.stringify(task.logs));
        assert.equal(task.logs?.[0]?.logs[0]?.stdout, "hello from the chart\n");
        assert.equal(task.logs?.[0]?.logs[0]?.exit_code, 0);
        const pod = await eventually(
          "the watch saw the task pod",
          async () =>
            await Promise.resolve(watch.pods.get(id)?.nodeName ? watch.pods.get(id) : undefined),
        );
        assert.equal(pod.nodeName, cluster.node.nodeName);
        assert.equal(pod.transporterImage, "ghcr.io/planetary/planetary-transporter:0.1.0");
      });

      await t.step("helm upgrade to a new tag while tasks run loses no task", async () => {
        for (const repository of Object.values(SERVICE_REPOSITORIES)) {
          const from = `ghcr.io/planetary/${repository}:0.1.0`;
          const tagged = await cluster.node.ctr([
            "images",
            "tag",
            "--force",
            from,
            `ghcr.io/planetary/${repository}:${UPGRADE_TAG}`,
          ]);
          assert.equal(tagged.code, 0, tagged.stderr);
        }
        const before: string[] = [];
        for (let i = 0; i < 3; i++) {
          before.push(
            await submit(client, shellTask(`before ${i}`, `sleep 6; echo before ${i}`)),
          );
        }
        await eventually("a task runs before the upgrade", async () => {
          const states = await Promise.all(
            before.map(async (id) => (await client.getTask(id, "MINIMAL")).state),
          );
          return states.some((s) => s === "RUNNING" || s === "INITIALIZING") ? true : undefined;
        });
        const started = performance.now();
        const upgrade = cluster.helm([
          "upgrade",
          RELEASE,
          CHART_DIR,
          "--namespace",
          NAMESPACE,
          "--reuse-values",
          "--set",
          `image.tag=${UPGRADE_TAG}`,
          "--timeout",
          "10m",
        ]);
        const during: string[] = [];
        for (let i = 0; i < 2; i++) {
          during.push(await submit(client, shellTask(`during ${i}`, `sleep 2; echo during ${i}`)));
        }
        await upgrade;
        const upgraded = performance.now();
        await waitRolledOut(cluster, UPGRADE_TAG);
        const rolled = performance.now();
        // for the notes: how many of them the new version had to finish (not asserted: timing)
        const open = await Promise.all([...before, ...during].map(async (id) => {
          const state = (await client.getTask(id, "MINIMAL").catch(() => undefined))?.state;
          return state !== "COMPLETE";
        }));
        figures.push(
          `helm upgrade ${seconds(upgraded - started)} s, ` +
            `upgrade to every Deployment rolled out ${seconds(rolled - started)} s ` +
            `(${open.filter(Boolean).length} of ${open.length} tasks not yet COMPLETE then)`,
        );
        const after = await submit(client, shellTask("after", "echo after"));

        const all = [...before, ...during, after];
        const tasks = await Promise.all(all.map((id) => finished(client, id)));
        figures.push(
          `${all.length} tasks across the upgrade all ended in ` +
            `${seconds(performance.now() - started)} s from its start`,
        );
        for (const task of tasks) {
          assert.equal(task.state, "COMPLETE", `${task.name}: ${JSON.stringify(task.logs)}`);
          assert.equal(task.logs?.at(-1)?.logs[0]?.stdout, `${task.name}\n`, task.name);
        }
        const last = await eventually(
          "the watch saw the last task's pod",
          () =>
            Promise.resolve(
              watch.pods.get(after)?.transporterImage ? watch.pods.get(after) : undefined,
            ),
        );
        assert.equal(
          last.transporterImage,
          `ghcr.io/planetary/planetary-transporter:${UPGRADE_TAG}`,
          "a task after the upgrade uses the new transporter image",
        );
      });

      await t.step("helm uninstall leaves nothing of the release behind", async () => {
        // every task has ended: its pod goes once the orchestrator has written its result
        await eventually("no task pods left", async () => {
          const pods = await core.listNamespacedPod({ namespace: TASKS_NAMESPACE });
          return pods.items.length === 0 ? true : undefined;
        });
        stopWatch();
        await cluster.helm(["uninstall", RELEASE, "--namespace", NAMESPACE, "--wait"]);
        const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
        const apps = kc.makeApiClient(k8s.AppsV1Api);
        const batch = kc.makeApiClient(k8s.BatchV1Api);
        const networking = kc.makeApiClient(k8s.NetworkingV1Api);
        const policy = kc.makeApiClient(k8s.PolicyV1Api);
        const names = (list: { items: { metadata?: k8s.V1ObjectMeta }[] }): string[] =>
          list.items.map((o) => o.metadata?.name ?? "").sort();
        const leftovers = async (): Promise<Record<string, string[]>> => {
          const [ns, tasks] = [{ namespace: NAMESPACE }, { namespace: TASKS_NAMESPACE }];
          return {
            tasksPods: names(await core.listNamespacedPod(tasks)),
            tasksConfigMaps: names(await core.listNamespacedConfigMap(tasks)),
            tasksSecrets: names(await core.listNamespacedSecret(tasks)),
            tasksServiceAccounts: names(await core.listNamespacedServiceAccount(tasks)),
            tasksRoles: names(await rbac.listNamespacedRole(tasks)),
            tasksRoleBindings: names(await rbac.listNamespacedRoleBinding(tasks)),
            tasksNetworkPolicies: names(await networking.listNamespacedNetworkPolicy(tasks)),
            pods: names(await core.listNamespacedPod(ns)),
            deployments: names(await apps.listNamespacedDeployment(ns)),
            replicaSets: names(await apps.listNamespacedReplicaSet(ns)),
            jobs: names(await batch.listNamespacedJob(ns)),
            services: names(await core.listNamespacedService(ns)),
            configMaps: names(await core.listNamespacedConfigMap(ns)),
            secrets: names(await core.listNamespacedSecret(ns)),
            serviceAccounts: names(await core.listNamespacedServiceAccount(ns)),
            networkPolicies: names(await networking.listNamespacedNetworkPolicy(ns)),
            podDisruptionBudgets: names(await policy.listNamespacedPodDisruptionBudget(ns)),
          };
        };
        const expected = {
          tasksPods: [],
          // what Kubernetes itself keeps in every namespace
          tasksConfigMaps: ["kube-root-ca.crt"],
          tasksSecrets: [],
          tasksServiceAccounts: ["default"],
          tasksRoles: [],
          tasksRoleBindings: [],
          tasksNetworkPolicies: [],
          pods: [],
          deployments: [],
          replicaSets: [],
          jobs: [],
          services: [],
          configMaps: ["kube-root-ca.crt"],
          // the test's own Secret; helm's release records are gone
          secrets: [DATABASE_SECRET],
          serviceAccounts: ["default"],
          networkPolicies: [],
          podDisruptionBudgets: [],
        };
        let last: Record<string, string[]> = {};
        await eventually("the release's objects are gone", async () => {
          last = await leftovers();
          return JSON.stringify(last) === JSON.stringify(expected) ? true : undefined;
        }).catch((error) => {
          throw new Error(`left behind: ${JSON.stringify(last)}`, { cause: error });
        });
        assert.deepEqual(last, expected);
        // the tasks namespace itself is kept on purpose (helm.sh/resource-policy: keep)
        const kept = await core.readNamespace({ name: TASKS_NAMESPACE });
        assert.equal(kept.metadata?.annotations?.["helm.sh/resource-policy"], "keep");
      });
    } catch (error) {
      console.error(cluster.logTails(40));
      throw error;
    } finally {
      stopWatch();
      console.error(`chart smoke figures:\n  ${figures.join("\n  ")}`);
      await cluster.stop();
    }
  },
});
