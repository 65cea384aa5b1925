/**
 * The real node of `tests/_harness/real_node.ts` (containerd + kubelet registered to the
 * loopback control plane): the Node becomes Ready, and pod behaviour comes from the real
 * kubelet (init-container order, logs through the apiserver, ErrImageNeverPull, OOMKilled,
 * DeadlineExceeded); after `stop()` nothing is left on the machine. End states only, never
 * timings (the timings are printed for the notes).
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import assert from "node:assert/strict";
import { type ControlPlane, requireControlPlane, startControlPlane } from "./_harness/k8s.ts";
import {
  cleanupRealNodeLeftovers,
  importBusyboxImagesIntoNode,
  liveRealNodes,
  type RealNode,
  requireRealNode,
  startRealNode,
} from "./_harness/real_node.ts";

const NAMESPACE = "real-node";
const TIMEOUT_MS = 120_000;
const SYSCTLS = ["vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"];
const MACHINE_PATHS = [
  "/var/lib/kubelet",
  "/var/lib/kubelet/device-plugins",
  "/var/log/containers",
  "/var/lib/cni",
  "/run/netns",
  "/run/planetary-real-node",
];

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Polls `read` until `done` holds for its value; returns that value. */
async function eventually<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
): Promise<T> {
  const deadline = Date.now() + TIMEOUT_MS;
  let last: T | undefined;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      last = await read();
      if (done(last)) return last;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`, {
    cause: lastError,
  });
}

/** A pod of the busybox image, on the real node, never restarted, no service account token. */
function pod(name: string, spec: Partial<k8s.V1PodSpec>): k8s.V1Pod {
  return {
    metadata: { name, namespace: NAMESPACE },
    spec: {
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 1,
      containers: [],
      ...spec,
    },
  };
}

function container(name: string, script: string, extra: Partial<k8s.V1Container> = {}) {
  return {
    name,
    image: "busybox:latest",
    imagePullPolicy: "Never",
    command: ["sh", "-c", script],
    ...extra,
  };
}

/** `ip -o addr` of the host (one line per address). */
function hostAddresses(): string {
  const out = new Deno.Command("ip", { args: ["-o", "-4", "addr"], stdout: "piped" }).outputSync();
  return new TextDecoder().decode(out.stdout);
}

function machineState(): { sysctls: string[]; paths: boolean[] } {
  return {
    sysctls: SYSCTLS.map((s) => Deno.readTextFileSync(`/proc/sys/${s}`).trim()),
    paths: MACHINE_PATHS.map(exists),
  };
}

Deno.test({
  name: "startRealNode() runs pods on a real kubelet and leaves nothing behind",
  ignore: !(requireControlPlane() && requireRealNode()),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    // Machine-wide settings are compared only when no other real node ran meanwhile (the
    // last node to stop restores them; tests of other files may run nodes in parallel).
    const othersBefore = liveRealNodes();
    const before = machineState();
    const cp: ControlPlane = await startControlPlane({ nodes: [] });
    let node: RealNode | undefined;
    try {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(cp.adminKubeconfigPath);
      const core = kc.makeApiClient(k8s.CoreV1Api);
      node = await startRealNode({ controlPlane: cp });
      const theNode = node;
      console.error(
        `real node: containerd ready ${node.timings.containerdReadyMs} ms, ` +
          `Node Ready ${node.timings.readyMs} ms after the start`,
      );
      const importStart = Date.now();
      await importBusyboxImagesIntoNode(node);
      console.error(`real node: busybox images imported in ${Date.now() - importStart} ms`);
      await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
      await eventually(
        "the default ServiceAccount",
        () => core.readNamespacedServiceAccount({ name: "default", namespace: NAMESPACE }),
        () => true,
      );
      const phaseOf = (name: string) => core.readNamespacedPod({ name, namespace: NAMESPACE });
      const finished = (p: k8s.V1Pod) =>
        p.status?.phase === "Succeeded" || p.status?.phase === "Failed";

      await t.step("the Node is Ready, schedulable and runs containerd", async () => {
        const found = await core.readNode({ name: theNode.nodeName });
        const ready = found.status?.conditions?.find((c) => c.type === "Ready");
        assert.equal(ready?.status, "True");
        assert.deepEqual(found.spec?.taints ?? [], []);
        assert.match(found.status?.nodeInfo?.containerRuntimeVersion ?? "", /^containerd:\/\//);
        assert.equal(found.status?.nodeInfo?.kubeletVersion, "v1.33.13");
        const internal = found.status?.addresses?.find((a) => a.type === "InternalIP");
        assert.equal(internal?.address, theNode.nodeIp);
      });

      await t.step("init containers run in order, then the main container; Succeeded", async () => {
        const volumeMounts = [{ name: "work", mountPath: "/work" }];
        const created = Date.now();
        await core.createNamespacedPod({
          namespace: NAMESPACE,
          body: pod("ordered", {
            volumes: [{ name: "work", emptyDir: {} }],
            initContainers: [
              container("first", "echo first >> /work/order", { volumeMounts }),
              container("second", "echo second >> /work/order", { volumeMounts }),
            ],
            containers: [container("main", "echo main >> /work/order; cat /work/order", {
              volumeMounts,
            })],
          }),
        });
        const done = await eventually("pod ordered finished", () => phaseOf("ordered"), finished);
        console.error(`real node: 2 init + main pod create→Succeeded ${Date.now() - created} ms`);
        assert.equal(done.status?.phase, "Succeeded");
        assert.deepEqual(
          done.status?.initContainerStatuses?.map((s) => [s.name, s.state?.terminated?.exitCode]),
          [["first", 0], ["second", 0]],
        );
        const log = await core.readNamespacedPodLog({
          name: "ordered",
          namespace: NAMESPACE,
          container: "main",
        });
        assert.equal(log, "first\nsecond\nmain\n");
      });

      await t.step("a trivial pod: create→Succeeded", async () => {
        const created = Date.now();
        await core.createNamespacedPod({
          namespace: NAMESPACE,
          body: pod("trivial", { containers: [container("main", "true")] }),
        });
        const done = await eventually("pod trivial finished", () => phaseOf("trivial"), finished);
        console.error(`real node: trivial pod create→Succeeded ${Date.now() - created} ms`);
        assert.equal(done.status?.phase, "Succeeded");
      });

      await t.step("logs follow through the apiserver until the container ends", async () => {
        await core.createNamespacedPod({
          namespace: NAMESPACE,
          body: pod("follow", {
            containers: [
              container(
                "main",
                "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done; echo err >&2",
              ),
            ],
          }),
        });
        await eventually(
          "pod follow running",
          () => phaseOf("follow"),
          (p) => p.status?.phase !== "Pending",
        );
        const client = Deno.createHttpClient({ caCerts: [cp.caPem] });
        try {
          const response = await fetch(
            `${cp.server}/api/v1/namespaces/${NAMESPACE}/pods/follow/log?follow=true`,
            { client, headers: { authorization: `Bearer ${cp.adminToken}` } },
          );
          assert.equal(response.status, 200);
          // the stream ends when the container exits: reading it to the end is the assertion
          const text = await response.text();
          assert.equal(text, "line 1\nline 2\nline 3\nline 4\nline 5\nerr\n");
        } finally {
          client.close();
        }
        const done = await eventually("pod follow finished", () => phaseOf("follow"), finished);
        assert.equal(done.status?.phase, "Succeeded");
      });

      await t.step(
        "pods reach the host's node address, the host reaches pods, nothing else",
        async () => {
          const listener = Deno.serve(
            { hostname: theNode.nodeIp, port: 0, onListen: () => {} },
            () => new Response("hello from the host\n"),
          );
          try {
            const url = `http://${theNode.nodeIp}:${listener.addr.port}/`;
            await core.createNamespacedPod({
              namespace: NAMESPACE,
              body: pod("network", {
                containers: [container(
                  "main",
                  // the host's veth address answers
                  'wget -q -O - "$0" && ' +
                    "mkdir /www && echo hello from the pod > /www/index.html && " +
                    "exec httpd -f -p 8080 -h /www",
                  { args: [url] },
                )],
              }),
            });
            const running = await eventually(
              "pod network serving",
              () => phaseOf("network"),
              (p) => p.status?.phase !== "Pending" && p.status?.podIP !== undefined,
            );
            const podIp = running.status?.podIP ?? "";
            assert.ok(podIp.startsWith(theNode.podCidr.split(".").slice(0, 2).join(".")));
            const body = await eventually(
              "the pod's httpd",
              () => fetch(`http://${podIp}:8080/`).then((r) => r.text()),
              (text) => text.length > 0,
            );
            assert.equal(body, "hello from the pod\n");
            const log = await core.readNamespacedPodLog({ name: "network", namespace: NAMESPACE });
            assert.equal(log, "hello from the host\n");
            // the node's namespace routes nowhere beyond the host's veth address
            const route = await new Deno.Command("nsenter", {
              args: [`--net=${theNode.netnsPath}`, "ip", "route", "get", "192.0.2.1"],
              stdout: "null",
              stderr: "piped",
            }).output();
            assert.equal(route.success, false);
            assert.match(new TextDecoder().decode(route.stderr), /unreachable/i);
          } finally {
            await listener.shutdown();
          }
          await core.deleteNamespacedPod({ name: "network", namespace: NAMESPACE });
        },
      );

      await t.step("a missing image with imagePullPolicy Never: ErrImageNeverPull", async () => {
        await core.createNamespacedPod({
          namespace: NAMESPACE,
          body: pod("never-pull", {
            containers: [{
              name: "main",
              image: "planetary.invalid/no-such-image:1",
              imagePullPolicy: "Never",
            }],
          }),
        });
        const waiting = await eventually(
          "ErrImageNeverPull",
          () => phaseOf("never-pull"),
          (p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === "ErrImageNeverPull",
        );
        assert.equal(waiting.status?.phase, "Pending");
      });

      await t.step("an executor over its memory limit: reason OOMKilled", async () => {
        await core.createNamespacedPod({
          namespace: NAMESPACE,
          body: pod("oom", {
            containers: [
              container("main", "dd if=/dev/zero of=/dev/null bs=256M count=1", {
                resources: { limits: { memory: "32Mi" }, requests: { memory: "32Mi" } },
              }),
            ],
          }),
        });
        const done = await eventually("pod oom finished", () => phaseOf("oom"), finished);
        assert.equal(done.status?.phase, "Failed");
        assert.equal(done.status?.containerStatuses?.[0]?.state?.terminated?.reason, "OOMKilled");
      });

      await t.step("activeDeadlineSeconds: Failed with reason DeadlineExceeded", async () => {
        await core.createNamespacedPod({
          namespace: NAMESPACE,
          body: pod("deadline", {
            activeDeadlineSeconds: 2,
            terminationGracePeriodSeconds: 1,
            containers: [container("main", "sleep 600")],
          }),
        });
        const done = await eventually("pod deadline failed", () => phaseOf("deadline"), finished);
        assert.equal(done.status?.phase, "Failed");
        assert.equal(done.status?.reason, "DeadlineExceeded");
      });

      await t.step(
        "a running pod outlives a kubelet restart; the new kubelet deletes it",
        async () => {
          await core.createNamespacedPod({
            namespace: NAMESPACE,
            body: pod("survivor", { containers: [container("main", "sleep 600")] }),
          });
          const running = await eventually(
            "pod survivor running",
            () => phaseOf("survivor"),
            (p) => p.status?.phase === "Running",
          );
          const containerId = running.status?.containerStatuses?.[0]?.containerID;
          await theNode.stopKubelet();
          await theNode.startKubelet();
          const after = await eventually(
            "pod survivor still running",
            () => phaseOf("survivor"),
            (p) => p.status?.containerStatuses?.[0]?.ready === true,
          );
          assert.equal(after.status?.containerStatuses?.[0]?.containerID, containerId);
          await core.deleteNamespacedPod({ name: "survivor", namespace: NAMESPACE });
          // a graceful delete ends only when the kubelet confirms the containers stopped
          await eventually(
            "pod survivor gone",
            () =>
              core.listNamespacedPod({
                namespace: NAMESPACE,
                fieldSelector: "metadata.name=survivor",
              }),
            (list) => list.items.length === 0,
          );
        },
      );

      await t.step(
        "a node whose test process was killed is cleaned up by the next run",
        async () => {
          const harness = new URL("./_harness/real_node.ts", import.meta.url).href;
          const child = new Deno.Command(Deno.execPath(), {
            args: [
              "eval",
              `import { importBusyboxImagesIntoNode, startRealNode } from ${
                JSON.stringify(harness)
              };
            const node = await startRealNode({
              controlPlane: JSON.parse(Deno.env.get("CONTROL_PLANE") ?? ""),
              nodeName: "node-killed",
            });
            await importBusyboxImagesIntoNode(node);
            console.log(JSON.stringify({
              dir: node.dir,
              cgroup: node.cgroupName,
              nodeIp: node.nodeIp,
            }));
            await new Promise(() => {});`,
            ],
            env: {
              CONTROL_PLANE: JSON.stringify({
                adminKubeconfigPath: cp.adminKubeconfigPath,
                kubeletClientCaPath: cp.kubeletClientCaPath,
              }),
            },
            stdout: "piped",
            stderr: "inherit",
          }).spawn();
          const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
          let line = "";
          while (!line.includes("\n")) {
            const { value, done } = await reader.read();
            if (done) break;
            line += value;
          }
          const killed = JSON.parse(line) as { dir: string; cgroup: string; nodeIp: string };
          await core.createNamespacedPod({
            namespace: NAMESPACE,
            body: pod("on-killed-node", {
              nodeName: "node-killed",
              containers: [container("main", "sleep 600")],
            }),
          });
          await eventually(
            "pod on-killed-node running",
            () => phaseOf("on-killed-node"),
            (p) => p.status?.phase === "Running",
          );
          child.kill("SIGKILL");
          await child.status;
          await reader.cancel().catch(() => {});
          assert.ok(hostAddresses().includes(` ${killed.nodeIp}/`), "the killed run left its veth");
          const cleaned = await cleanupRealNodeLeftovers();
          assert.equal(cleaned.length, 1);
          const killedCgroup = killed.cgroup;
          for (const hierarchy of Deno.readDirSync("/sys/fs/cgroup")) {
            assert.ok(!exists(`/sys/fs/cgroup/${hierarchy.name}/${killedCgroup}`));
          }
          assert.ok(!Deno.readTextFileSync("/proc/self/mountinfo").includes(killed.dir));
          assert.ok(!exists(killed.dir));
          assert.ok(!hostAddresses().includes(` ${killed.nodeIp}/`));
          // the other node still runs, so the machine-wide settings stay until it stops
          const ready = await core.readNode({ name: theNode.nodeName });
          assert.equal(ready.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
        },
      );

      console.error(`real node: sysctls while running ${JSON.stringify(machineState())}`);
      const { dir, cgroupName: cgroup, nodeIp } = node;
      const stopStart = Date.now();
      await node.stop();
      console.error(`real node: stop() took ${Date.now() - stopStart} ms`);
      node = undefined;

      await t.step("after stop(): sysctls, cgroups, mounts, netns, paths as before", () => {
        if (othersBefore.length === 0 && liveRealNodes().length === 0) {
          assert.deepEqual(machineState(), before);
        } else {
          console.error(
            "real node: other real nodes ran meanwhile: machine-wide state not compared",
          );
        }
        for (const hierarchy of Deno.readDirSync("/sys/fs/cgroup")) {
          assert.ok(
            !exists(`/sys/fs/cgroup/${hierarchy.name}/${cgroup}`),
            `cgroup ${hierarchy.name}/${cgroup} left`,
          );
        }
        const mounts = Deno.readTextFileSync("/proc/self/mountinfo");
        assert.ok(!mounts.includes(dir), `mounts under ${dir} left`);
        assert.ok(!exists(dir), `${dir} left`);
        assert.ok(!hostAddresses().includes(` ${nodeIp}/`), `veth with ${nodeIp} left`);
      });
    } catch (error) {
      if (node) console.error(node.logTails(40));
      throw error;
    } finally {
      await node?.stop();
      await cp.stop();
    }
  },
});
