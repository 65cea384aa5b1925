/**
 * Integration tests of the local backend with the host runtime: real processes in private
 * mount + PID namespaces (needs `unshare` and root or user namespaces).
 */
import assert from "node:assert/strict";
import type { V1Container, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { DiskUsageWalk, LocalBackend } from "../src/orchestrator/backends/local/mod.ts";
import { taskStatusFromPod } from "../src/pod/task_status_from_pod.ts";
import type { PodEvent } from "../src/orchestrator/backend.ts";
import { requireHostRuntime } from "./_harness/host_runtime.ts";

const ENABLED = await requireHostRuntime();

/** Polls `check` until it returns a value other than undefined (hang guard: 120 s). */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function finished(backend: LocalBackend, name: string): Promise<V1PodStatus> {
  return waitFor(`pod ${name} to finish`, async () => {
    const status = (await backend.getPod(name))?.status;
    return status?.phase === "Succeeded" || status?.phase === "Failed" ? status : undefined;
  });
}

function pod(
  name: string,
  spec: { init?: V1Container[]; main: V1Container[]; configMap?: string },
): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: { "app.kubernetes.io/managed-by": "planetary" } },
    spec: {
      restartPolicy: "Never",
      volumes: [
        { name: "data", emptyDir: {} },
        { name: "state", emptyDir: {} },
        ...(spec.configMap ? [{ name: "spec", configMap: { name: spec.configMap } }] : []),
      ],
      initContainers: spec.init ?? [],
      containers: spec.main,
    },
  };
}

function sh(name: string, script: string, extra: Partial<V1Container> = {}): V1Container {
  return {
    name,
    image: "debian:12",
    command: ["/bin/sh", "-c", script],
    volumeMounts: [{ name: "data", mountPath: "/data" }],
    ...extra,
  };
}

async function withBackend(
  fn: (backend: LocalBackend, tmp: string) => Promise<void>,
  options: {
    maxConcurrentPods?: number;
    shared?: boolean;
    secrets?: Record<string, Record<string, string>>;
    storageCheckIntervalMs?: number;
  } = {},
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "planetary-local-test-" });
  const backend = new LocalBackend({
    workDir: `${tmp}/work`,
    runtime: "host",
    maxConcurrentPods: options.maxConcurrentPods ?? 4,
    ...(options.storageCheckIntervalMs
      ? { storageCheckIntervalMs: options.storageCheckIntervalMs }
      : {}),
    ...(options.shared ? { sharedHostPaths: [`${tmp}/shared`] } : {}),
    ...(options.secrets ? { secrets: options.secrets } : {}),
  });
  await Deno.mkdir(`${tmp}/shared`);
  try {
    await fn(backend, tmp);
  } finally {
    await backend.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "LocalBackend.createPod() runs init containers in order, then main, through an emptyDir",
  ignore: !ENABLED,
  async fn() {
    assert(!await exists("/data"), "this test needs /data to be absent on the host");
    const marker = `/work/planetary-test-${crypto.randomUUID()}`;
    await withBackend(async (backend) => {
      const work = { name: "state", mountPath: "/work" };
      await backend.createPod({
        pod: pod("ordered", {
          init: [
            sh("inputs", "echo one > /data/log && echo w > /work/$(basename $MARKER)", {
              volumeMounts: [{ name: "data", mountPath: "/data" }, work],
              env: [{ name: "MARKER", value: marker }],
            }),
            sh("executor-0", "echo two >> /data/log"),
            sh("executor-1", "echo three >> /data/log"),
          ],
          main: [
            sh("outputs", "cat /data/log; ls /work", {
              volumeMounts: [{ name: "data", mountPath: "/data" }, work],
            }),
          ],
        }),
        configMap: { metadata: { name: "ordered-spec" }, data: {} },
      });
      const status = await finished(backend, "ordered");
      assert.deepStrictEqual(status.phase, "Succeeded");
      assert.deepStrictEqual(
        status.initContainerStatuses?.map((s) => [s.name, s.state?.terminated?.reason]),
        [["inputs", "Completed"], ["executor-0", "Completed"], ["executor-1", "Completed"]],
      );
      assert.deepStrictEqual(status.containerStatuses?.[0]?.state?.terminated?.exitCode, 0);
      const log = await backend.readLog("ordered", "outputs");
      assert.deepStrictEqual(log, `one\ntwo\nthree\n${marker.slice("/work/".length)}\n`);
      assert.deepStrictEqual(
        status.conditions?.find((c) => c.type === "Initialized")?.status,
        "True",
      );
    });
    assert(!await exists("/data"), "/data appeared on the host");
    assert(!await exists(marker), `${marker} appeared on the host`);
    assert(await exists("/work/main/deno.json"), "the host's /work was disturbed");
  },
});

Deno.test({
  name: "LocalBackend.createPod() mounts the ConfigMap read-only, whole and by subPath",
  ignore: !ENABLED,
  async fn() {
    await withBackend(async (backend) => {
      const script = "cat /planetary/spec/transfer.json; echo; cat /one.json; echo; " +
        "if (echo x > /planetary/spec/transfer.json) 2>/dev/null; then echo writable; " +
        "else echo readonly; fi; " +
        "if (echo x > /one.json) 2>/dev/null; then echo writable; else echo readonly; fi";
      await backend.createPod({
        pod: pod("cm", {
          configMap: "cm-spec",
          main: [sh("outputs", script, {
            volumeMounts: [
              { name: "spec", mountPath: "/planetary/spec" },
              { name: "spec", mountPath: "/one.json", subPath: "transfer.json" },
            ],
          })],
        }),
        configMap: { metadata: { name: "cm-spec" }, data: { "transfer.json": '{"version":1}' } },
      });
      assert.deepStrictEqual((await finished(backend, "cm")).phase, "Succeeded");
      assert.deepStrictEqual(
        await backend.readLog("cm", "outputs"),
        '{"version":1}\n{"version":1}\nreadonly\nreadonly\n',
      );
    });
  },
});

Deno.test({
  name: "LocalBackend.createPod() passes env, args and workingDir literally, hostile or not",
  ignore: !ENABLED,
  async fn() {
    const hostile = `it's "quoted" $(touch /tmp/pwned) \`id\` $HOME ;| & \n second line\\`;
    await withBackend(async (backend) => {
      await backend.createPod({
        pod: pod("env", {
          main: [{
            name: "outputs",
            image: "debian:12",
            command: ["/bin/sh", "-c", 'printf "[%s]\\n" "$HOSTILE" "$1" "$PWD" "$PATH" "$ONLY"'],
            args: ["sh-name", hostile],
            workingDir: "/somewhere/deep",
            env: [
              { name: "HOSTILE", value: hostile },
              { name: "PATH", value: "/usr/bin:/bin" },
              { name: "ONLY", value: "x$(ONLY_MISSING)$$y" },
            ],
          }],
        }),
        configMap: { metadata: { name: "env-spec" }, data: {} },
      });
      assert.deepStrictEqual((await finished(backend, "env")).phase, "Succeeded");
      assert.deepStrictEqual(
        await backend.readLog("env", "outputs"),
        `[${hostile}]\n[${hostile}]\n[/somewhere/deep]\n[/usr/bin:/bin]\n[x$(ONLY_MISSING)$y]\n`,
      );
    });
    assert(!await exists("/tmp/pwned"));
    assert(!await exists("/somewhere"), "workingDir was created on the host");
  },
});

Deno.test({
  name: "LocalBackend.createPod() fails the pod on a failed init container and skips the rest",
  ignore: !ENABLED,
  async fn() {
    await withBackend(async (backend) => {
      await backend.createPod({
        pod: pod("initfail", {
          init: [
            sh("inputs", "echo fetched"),
            sh("executor-0", "echo 'disk full' > /dev/termination-log; exit 3"),
            sh("executor-1", "echo never > /data/never"),
          ],
          main: [sh("outputs", "echo never")],
        }),
        configMap: { metadata: { name: "initfail-spec" }, data: {} },
      });
      const status = await finished(backend, "initfail");
      assert.deepStrictEqual(status.phase, "Failed");
      const [inputs, executor0, executor1] = status.initContainerStatuses ?? [];
      assert.deepStrictEqual(inputs?.state?.terminated?.reason, "Completed");
      assert.deepStrictEqual(executor0?.state?.terminated?.exitCode, 3);
      assert.deepStrictEqual(executor0?.state?.terminated?.reason, "Error");
      assert.deepStrictEqual(executor0?.state?.terminated?.message, "disk full\n");
      assert(executor0?.state?.terminated?.startedAt instanceof Date);
      assert(executor0?.state?.terminated?.finishedAt instanceof Date);
      assert.deepStrictEqual(executor1?.state?.waiting?.reason, "PodInitializing");
      assert.deepStrictEqual(
        status.containerStatuses?.[0]?.state?.waiting?.reason,
        "PodInitializing",
      );
      const initialized = status.conditions?.find((c) => c.type === "Initialized");
      assert.deepStrictEqual(initialized?.status, "False");
      assert.deepStrictEqual(await backend.readLog("initfail", "inputs"), "fetched\n");
      assert.deepStrictEqual(await backend.readLog("initfail", "executor-1"), "");
    });
  },
});

Deno.test({
  name: "LocalBackend.createPod() falls back to the log tail for the message when asked",
  ignore: !ENABLED,
  async fn() {
    await withBackend(async (backend) => {
      await backend.createPod({
        pod: pod("fallback", {
          main: [
            sh("outputs", "seq 1 200; echo boom >&2; exit 1", {
              terminationMessagePolicy: "FallbackToLogsOnError",
              terminationMessagePath: "/var/run/planetary/report",
            }),
            sh("sidecar", "echo quiet; exit 2"),
          ],
        }),
        configMap: { metadata: { name: "fallback-spec" }, data: {} },
      });
      const status = await finished(backend, "fallback");
      assert.deepStrictEqual(status.phase, "Failed");
      const message = status.containerStatuses?.[0]?.state?.terminated?.message ?? "";
      const lines = message.split("\n");
      assert.deepStrictEqual(lines.length, 80);
      assert.deepStrictEqual(lines.at(-1), "boom");
      assert.deepStrictEqual(lines[0], "122");
      assert.deepStrictEqual(status.containerStatuses?.[1]?.state?.terminated?.exitCode, 2);
      assert.deepStrictEqual(status.containerStatuses?.[1]?.state?.terminated?.message, undefined);
    });
  },
});

/** Host pids of processes whose environment holds `marker`. */
async function pidsWithMarker(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const environ = await Deno.readTextFile(`/proc/${entry.name}/environ`);
      if (environ.split("\0").includes(marker)) pids.push(Number(entry.name));
    } catch {
      // gone or not ours
    }
  }
  return pids;
}

Deno.test({
  name: "LocalBackend.deletePod() kills the whole process tree and removes the pod",
  ignore: !ENABLED,
  async fn() {
    const marker = `PLANETARY_TEST_MARKER=${crypto.randomUUID()}`;
    await withBackend(async (backend, tmp) => {
      const events: PodEvent[] = [];
      const watch = new AbortController();
      const watching = backend.watchPods((e) => events.push(e), watch.signal);
      await backend.createPod({
        pod: pod("tree", {
          main: [sh(
            "outputs",
            // a child, a grandchild, and one that leaves the process group with setsid
            'sleep 1000 & sh -c "sleep 1000 & wait" & setsid sleep 1000 & echo started; wait',
            { env: [{ name: marker.split("=")[0]!, value: marker.split("=")[1]! }] },
          )],
        }),
        configMap: { metadata: { name: "tree-spec" }, data: {} },
      });
      const pids = await waitFor("the process tree", async () => {
        const found = await pidsWithMarker(marker);
        return found.length >= 5 ? found : undefined;
      });
      assert.deepStrictEqual((await backend.getPod("tree"))?.status?.phase, "Running");
      assert.deepStrictEqual(await backend.readLog("tree", "outputs"), "started\n");
      await backend.deletePod("tree");
      assert.deepStrictEqual(await pidsWithMarker(marker), []);
      for (const pid of pids) {
        const environ = await Deno.readTextFile(`/proc/${pid}/environ`).catch(() => "");
        assert(!environ.includes(marker), `process ${pid} survived`);
      }
      assert.deepStrictEqual(await backend.getPod("tree"), undefined);
      assert.deepStrictEqual(await backend.listPods(), []);
      assert(!await exists(`${tmp}/work/pods/tree`), "pod directory left behind");
      assert.deepStrictEqual(events.at(-1)?.type, "DELETED");
      await backend.deletePod("tree"); // already gone: no error
      watch.abort();
      await watching;
    });
  },
});

Deno.test({
  name: "LocalBackend.watchPods() sees ADDED, then MODIFIED up to Succeeded",
  ignore: !ENABLED,
  async fn() {
    await withBackend(async (backend) => {
      const events: PodEvent[] = [];
      const watch = new AbortController();
      const watching = backend.watchPods((e) => events.push(e), watch.signal);
      await backend.createPod({
        pod: pod("watched", { init: [sh("inputs", "true")], main: [sh("outputs", "true")] }),
        configMap: { metadata: { name: "watched-spec" }, data: {} },
      });
      await finished(backend, "watched");
      watch.abort();
      await watching;
      assert.deepStrictEqual(events[0]?.type, "ADDED");
      assert.deepStrictEqual(events[0]?.pod.status?.phase, "Pending");
      assert(events.slice(1).every((e) => e.type === "MODIFIED"));
      const phases = events.map((e) => e.pod.status?.phase);
      assert.deepStrictEqual([...new Set(phases)], ["Pending", "Running", "Succeeded"]);
      const versions = events.map((e) => Number(e.pod.metadata?.resourceVersion));
      assert.deepStrictEqual(versions, [...versions].sort((a, b) => a - b));

      const late: PodEvent[] = [];
      const again = new AbortController();
      const second = backend.watchPods((e) => late.push(e), again.signal);
      again.abort();
      await second;
      assert.deepStrictEqual(late.map((e) => [e.type, e.pod.status?.phase]), [[
        "ADDED",
        "Succeeded",
      ]]);
    });
  },
});

Deno.test({
  name: "LocalBackend.createPod() is idempotent by pod name",
  ignore: !ENABLED,
  async fn() {
    await withBackend(async (backend, tmp) => {
      const objects = {
        pod: pod("twice", {
          main: [sh("outputs", 'echo run >> "$SHARED/runs"', {
            env: [{ name: "SHARED", value: `${tmp}/shared` }],
          })],
        }),
        configMap: { metadata: { name: "twice-spec" }, data: {} },
      };
      await Promise.all([backend.createPod(objects), backend.createPod(objects)]);
      const uid = (await backend.getPod("twice"))?.metadata?.uid;
      await finished(backend, "twice");
      await backend.createPod(objects);
      assert.deepStrictEqual((await backend.getPod("twice"))?.metadata?.uid, uid);
      assert.deepStrictEqual((await backend.listPods()).length, 1);
      assert.deepStrictEqual(await Deno.readTextFile(`${tmp}/shared/runs`), "run\n");
    }, { shared: true });
  },
});

Deno.test({
  name: "LocalBackend keeps extra pods Pending beyond maxConcurrentPods",
  ignore: !ENABLED,
  async fn() {
    await withBackend(async (backend, tmp) => {
      let running = 0;
      let maxRunning = 0;
      const phases = new Map<string, string>();
      const watch = new AbortController();
      const watching = backend.watchPods((e) => {
        phases.set(e.pod.metadata!.name!, e.pod.status?.phase ?? "");
        running = [...phases.values()].filter((p) => p === "Running").length;
        maxRunning = Math.max(maxRunning, running);
      }, watch.signal);
      const gated = (name: string): V1Pod =>
        pod(name, {
          main: [sh(
            "outputs",
            'echo "$NAME" > "$SHARED/started-$NAME"; ' +
              'while [ ! -e "$SHARED/go" ]; do sleep 0.05; done',
            {
              env: [{ name: "SHARED", value: `${tmp}/shared` }, { name: "NAME", value: name }],
            },
          )],
        });
      for (const name of ["slot-a", "slot-b", "slot-c"]) {
        await backend.createPod({
          pod: gated(name),
          configMap: { metadata: { name: `${name}-spec` }, data: {} },
        });
      }
      await waitFor(
        "slot-a to start",
        async () => await exists(`${tmp}/shared/started-slot-a`) ? true : undefined,
      );
      const waiting = await backend.getPod("slot-b");
      assert.deepStrictEqual(waiting?.status?.phase, "Pending");
      const scheduled = waiting?.status?.conditions?.find((c) => c.type === "PodScheduled");
      assert.deepStrictEqual(scheduled?.status, "False");
      assert.match(scheduled?.message ?? "", /maxConcurrentPods/);
      assert(!await exists(`${tmp}/shared/started-slot-b`));
      await Deno.writeTextFile(`${tmp}/shared/go`, "");
      for (const name of ["slot-a", "slot-b", "slot-c"]) {
        assert.deepStrictEqual((await finished(backend, name)).phase, "Succeeded");
      }
      watch.abort();
      await watching;
      assert.deepStrictEqual(maxRunning, 1);
    }, { maxConcurrentPods: 1, shared: true });
  },
});

Deno.test({
  name: "LocalBackend.close() kills running pods and refuses new ones",
  ignore: !ENABLED,
  async fn() {
    const marker = `PLANETARY_TEST_MARKER=${crypto.randomUUID()}`;
    await withBackend(async (backend) => {
      await backend.createPod({
        pod: pod("closing", {
          main: [sh("outputs", "sleep 1000 & wait", {
            env: [{ name: marker.split("=")[0]!, value: marker.split("=")[1]! }],
          })],
        }),
        configMap: { metadata: { name: "closing-spec" }, data: {} },
      });
      await waitFor(
        "the process",
        async () => (await pidsWithMarker(marker)).length >= 2 ? true : undefined,
      );
      await backend.close();
      assert.deepStrictEqual(await pidsWithMarker(marker), []);
      const error = await backend.createPod({
        pod: pod("late", { main: [sh("outputs", "true")] }),
        configMap: { metadata: { name: "late-spec" }, data: {} },
      }).catch((e: unknown) => e);
      assert(error instanceof Error);
      assert.match(error.message, /closed/);
    });
  },
});

Deno.test({
  name: "LocalBackend.createPod() mounts at hostile paths and rejects subPath traversal",
  ignore: !ENABLED,
  async fn() {
    const weird = "/odd dir/$(touch /tmp/pwned2) 'q' \"d\";x";
    await withBackend(async (backend) => {
      await backend.createPod({
        pod: pod("weird", {
          main: [sh("outputs", 'echo ok > "$TARGET/f" && cat "$TARGET/f"', {
            volumeMounts: [{ name: "data", mountPath: weird }],
            env: [{ name: "TARGET", value: weird }],
          })],
        }),
        configMap: { metadata: { name: "weird-spec" }, data: {} },
      });
      assert.equal((await finished(backend, "weird")).phase, "Succeeded");
      assert.equal(await backend.readLog("weird", "outputs"), "ok\n");

      await backend.createPod({
        pod: pod("escape", {
          main: [sh("outputs", "true", {
            volumeMounts: [{ name: "data", mountPath: "/x", subPath: "../../etc" }],
          })],
        }),
        configMap: { metadata: { name: "escape-spec" }, data: {} },
      });
      const status = await finished(backend, "escape");
      assert.equal(status.phase, "Failed");
      const waiting = status.containerStatuses?.[0]?.state?.waiting;
      assert.equal(waiting?.reason, "CreateContainerConfigError");
      assert.match(waiting?.message ?? "", /subPath/);
    });
    assert(!await exists("/odd dir"));
    assert(!await exists("/tmp/pwned2"));
  },
});

/** Secrets of the envFrom tests; their values must never show up in a pod or an event. */
const SECRETS = {
  storage: {
    AWS_SECRET_ACCESS_KEY: `secret-${crypto.randomUUID()}`,
    SHARED: "from-secret",
    OVERRIDDEN: "from-secret",
    "bad name": "skipped",
  },
  other: { TOKEN: `token-${crypto.randomUUID()}` },
};

Deno.test({
  name: "LocalBackend.createPod() resolves envFrom and secretKeyRef like a kubelet",
  ignore: !ENABLED,
  async fn() {
    await withBackend(async (backend) => {
      const events: PodEvent[] = [];
      const watch = new AbortController();
      const watching = backend.watchPods((e) => events.push(e), watch.signal);
      const reader = (name: string, extra: Partial<V1Container>): V1Container =>
        sh(name, "env | LC_ALL=C sort", extra);
      await backend.createPod({
        pod: pod("envfrom", {
          init: [reader("inputs", {
            envFrom: [
              { configMapRef: { name: "envfrom-spec" } },
              { secretRef: { name: "storage" } },
              { secretRef: { name: "absent", optional: true } },
              { configMapRef: { name: "absent", optional: true } },
              { secretRef: { name: "other" }, prefix: "P_" },
            ],
            env: [
              { name: "OVERRIDDEN", value: "from-env" },
              { name: "COMBINED", value: "$(SHARED)+$(P_TOKEN)" },
              {
                name: "ONE",
                valueFrom: { secretKeyRef: { name: "other", key: "TOKEN" } },
              },
              {
                name: "MAYBE",
                valueFrom: { secretKeyRef: { name: "other", key: "NONE", optional: true } },
              },
            ],
          })],
          main: [reader("outputs", {})],
          configMap: "envfrom-spec",
        }),
        configMap: {
          metadata: { name: "envfrom-spec" },
          data: { SHARED: "from-configmap", CM_ONLY: "cm", "1BAD": "skipped" },
        },
      });
      const status = await finished(backend, "envfrom");
      assert.equal(status.phase, "Succeeded", JSON.stringify(status));
      const lines = (await backend.readLog("envfrom", "inputs")).trim().split("\n");
      const env = new Map(
        lines.map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
      );
      const { AWS_SECRET_ACCESS_KEY: secret } = SECRETS.storage;
      assert.equal(env.get("AWS_SECRET_ACCESS_KEY"), secret);
      assert.equal(env.get("SHARED"), "from-secret", "a later envFrom source wins");
      assert.equal(env.get("CM_ONLY"), "cm");
      assert.equal(env.get("OVERRIDDEN"), "from-env", "env wins over envFrom");
      assert.equal(env.get("P_TOKEN"), SECRETS.other.TOKEN, "prefix");
      assert.equal(env.get("TOKEN"), undefined);
      assert.equal(env.get("ONE"), SECRETS.other.TOKEN, "secretKeyRef");
      assert.equal(env.get("COMBINED"), `from-secret+${SECRETS.other.TOKEN}`);
      assert.equal(env.has("MAYBE"), false);
      assert(!lines.some((l) => l.startsWith("bad name") || l.startsWith("1BAD")), lines.join());
      // A container without envFrom sees none of it.
      const outputs = await backend.readLog("envfrom", "outputs");
      assert(outputs.includes("HOSTNAME=envfrom"), outputs);
      assert(!outputs.includes(secret) && !outputs.includes("from-secret"), outputs);
      watch.abort();
      await watching;
      const shown = JSON.stringify([events, await backend.listPods()]);
      for (const value of [secret, SECRETS.other.TOKEN]) assert(!shown.includes(value));
    }, { secrets: SECRETS });
  },
});

Deno.test({
  name: "LocalBackend.createPod() fails a pod that needs a missing Secret, naming it",
  ignore: !ENABLED,
  async fn() {
    await withBackend(async (backend) => {
      const cases: [string, Partial<V1Container>, RegExp][] = [
        ["nosecret", { envFrom: [{ secretRef: { name: "absent" } }] }, /secret "absent" not found/],
        [
          "nokey",
          { env: [{ name: "K", valueFrom: { secretKeyRef: { name: "other", key: "NONE" } } }] },
          /env "K": key "NONE" of secret "other" not found/,
        ],
        [
          "nocm",
          { envFrom: [{ configMapRef: { name: "absent-cm" } }] },
          /configmap "absent-cm" not found/,
        ],
      ];
      for (const [name, extra] of cases) {
        await backend.createPod({
          pod: pod(name, {
            init: [sh("inputs", "echo ran", extra)],
            main: [sh("outputs", "true")],
          }),
          configMap: { metadata: { name: `${name}-spec` }, data: {} },
        });
      }
      for (const [name, , message] of cases) {
        const status = await finished(backend, name);
        assert.equal(status.phase, "Failed");
        assert.equal(status.reason, "CreateContainerConfigError");
        const waiting = status.initContainerStatuses?.[0]?.state?.waiting;
        assert.equal(waiting?.reason, "CreateContainerConfigError");
        assert.match(waiting?.message ?? "", message);
        assert.equal(await backend.readLog(name, "inputs"), "", "the container must not start");
        assert(!JSON.stringify(status).includes(SECRETS.other.TOKEN));
      }
    }, { secrets: SECRETS });
  },
});

/** Host pids of processes whose command line holds `text`. */
async function pidsWithArgument(text: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
    if (cmdline.includes(text)) pids.push(Number(entry.name));
  }
  return pids;
}

Deno.test({
  name: "HostRuntime keeps env values (Secrets) out of every process's command line",
  ignore: !ENABLED,
  async fn() {
    const value = `value-${crypto.randomUUID()}`;
    await withBackend(async (backend) => {
      await backend.createPod({
        pod: pod("argv", {
          main: [{
            name: "outputs",
            image: "debian:12",
            command: ["sleep", "60"],
            envFrom: [{ secretRef: { name: "creds" } }],
            env: [{ name: "PLAIN", value: `plain-${value}` }],
          }],
        }),
        configMap: { metadata: { name: "argv-spec" }, data: {} },
      });
      // The container runs with both values in its environment…
      const pids = await waitFor("the container process", async () => {
        const found = await pidsWithMarker(`KEY=${value}`);
        return found.length > 0 ? found : undefined;
      });
      assert.equal((await pidsWithMarker(`PLAIN=plain-${value}`)).join(), pids.join());
      // …and no process anywhere shows them in its arguments.
      assert.deepEqual(await pidsWithArgument(value), []);
      await backend.deletePod("argv");
    }, { secrets: { creds: { KEY: value } } });
  },
});

/** `disk_gb: 0.01` as the pod builder writes it: the data volume's `sizeLimit` in bytes. */
const TEN_MB = String(Math.round(0.01 * 1e9));

/** A task-shaped pod (inputs, executors, outputs) whose data volume has `sizeLimit`. */
function limitedPod(name: string, executors: V1Container[], sizeLimit = TEN_MB): V1Pod {
  const shaped = pod(name, {
    init: [sh("inputs", "true"), ...executors],
    main: [sh("outputs", "echo uploaded")],
  });
  shaped.spec!.volumes![0] = { name: "data", emptyDir: { sizeLimit } };
  return shaped;
}

Deno.test({
  name: "LocalBackend evicts a pod whose emptyDir passes its sizeLimit (disk_gb), as a kubelet",
  ignore: !ENABLED,
  async fn(t) {
    await withBackend(async (backend) => {
      const message = 'Usage of EmptyDir volume "data" exceeds the limit "10M".';
      const taskOf = (status: V1PodStatus) =>
        taskStatusFromPod({ metadata: { name: "x" }, status }, undefined, { executors: [{}] });

      await t.step("a running executor over the limit is killed: EXECUTOR_ERROR", async () => {
        await backend.createPod({
          pod: limitedPod("disk-running", [
            sh(
              "executor-0",
              "head -c 20000000 /dev/zero > /data/big && touch /data/written; " +
                "sleep 300",
            ),
          ]),
          configMap: { metadata: { name: "disk-running-spec" }, data: {} },
        });
        const status = await finished(backend, "disk-running");
        assert.equal(status.phase, "Failed");
        assert.equal(status.reason, "Evicted");
        assert.equal(status.message, message);
        const executor = status.initContainerStatuses?.[1]?.state?.terminated;
        assert.equal(executor?.exitCode, 137);
        assert.match(executor?.message ?? "", /killed: the pod was evicted: Usage of EmptyDir/);
        assert.equal(status.containerStatuses?.[0]?.state?.waiting?.reason, "PodInitializing");
        assert.deepEqual(
          status.conditions?.find((c) => c.type === "DisruptionTarget")?.reason,
          "TerminationByKubelet",
        );
        const task = taskOf(status);
        assert.equal(task.state, "EXECUTOR_ERROR");
        assert.match(
          task.systemLogs.join("\n"),
          /used more disk than it asked for: Evicted: Usage/,
        );
        assert.equal(await backend.readLog("disk-running", "outputs"), "", "outputs ran");
      });

      await t.step("a pod under its limit completes; links are not followed", async () => {
        await backend.createPod({
          pod: limitedPod("disk-under", [
            sh(
              "executor-0",
              "head -c 5000000 /dev/zero > /data/small; ln -s /usr /data/usr; " +
                "ln /data/small /data/hardlink; sleep 1",
            ),
          ]),
          configMap: { metadata: { name: "disk-under-spec" }, data: {} },
        });
        const status = await finished(backend, "disk-under");
        assert.equal(status.phase, "Succeeded", JSON.stringify(status));
        assert.equal(await backend.readLog("disk-under", "outputs"), "uploaded\n");
      });
    }, { storageCheckIntervalMs: 200 });
  },
});

Deno.test({
  name: "LocalBackend counts a container's scratch against its ephemeral-storage limit",
  ignore: !ENABLED,
  async fn() {
    await withBackend(async (backend) => {
      const limited = (name: string, script: string): V1Container =>
        sh(name, script, { resources: { limits: { "ephemeral-storage": "10Mi" } } });
      await backend.createPod({
        pod: pod("scratch-over", {
          init: [limited("executor-0", "head -c 20000000 /dev/zero > /tmp/big; sleep 300")],
          main: [sh("outputs", "echo never")],
        }),
        configMap: { metadata: { name: "scratch-over-spec" }, data: {} },
      });
      const status = await finished(backend, "scratch-over");
      assert.equal(status.reason, "Evicted");
      // The kubelet's order: emptyDirs, then the pod's total, then each container.
      assert.equal(
        status.message,
        "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi.",
      );
      await backend.createPod({
        pod: pod("scratch-under", {
          init: [limited("executor-0", "head -c 2000000 /dev/zero > /tmp/small")],
          main: [sh("outputs", "echo fine")],
        }),
        configMap: { metadata: { name: "scratch-under-spec" }, data: {} },
      });
      assert.equal((await finished(backend, "scratch-under")).phase, "Succeeded");
    }, { storageCheckIntervalMs: 200 });
  },
});

Deno.test({
  name: "LocalBackend measures a pod's storage when a container ends, before the next starts",
  ignore: !ENABLED,
  async fn() {
    // No periodic pass in this test's time: only the one at the executor's end can evict.
    await withBackend(async (backend) => {
      await backend.createPod({
        pod: limitedPod("disk-ended", [sh("executor-0", "head -c 20000000 /dev/zero > /data/big")]),
        configMap: { metadata: { name: "disk-ended-spec" }, data: {} },
      });
      const status = await finished(backend, "disk-ended");
      assert.equal(status.reason, "Evicted");
      assert.equal(status.message, 'Usage of EmptyDir volume "data" exceeds the limit "10M".');
      assert.equal(status.initContainerStatuses?.[1]?.state?.terminated?.reason, "Completed");
      const task = taskStatusFromPod({ metadata: { name: "x" }, status }, undefined, {
        executors: [{}],
      });
      assert.equal(task.state, "EXECUTOR_ERROR");
      assert.equal(await backend.readLog("disk-ended", "outputs"), "");
    }, { storageCheckIntervalMs: 3_600_000 });
  },
});

Deno.test({
  name: "LocalBackend eviction latency and the cost of a measuring pass (figures)",
  ignore: !ENABLED,
  async fn() {
    // Latency: from the moment the executor has written past its limit to the pod's end.
    for (const interval of [200, 1000]) {
      await withBackend(async (backend, tmp) => {
        await Deno.chmod(`${tmp}/shared`, 0o777);
        await backend.createPod({
          pod: limitedPod("latency", [
            sh(
              "executor-0",
              "head -c 20000000 /dev/zero > /data/big; touch $SHARED/written; " +
                "sleep 300",
              { env: [{ name: "SHARED", value: `${tmp}/shared` }] },
            ),
          ]),
          configMap: { metadata: { name: "latency-spec" }, data: {} },
        });
        // On a loaded machine a measuring pass may see the volume over its limit while the
        // write is still going: the pod is then evicted before the marker exists.
        let written: number | undefined;
        const status = await waitFor("the pod to end", async () => {
          if (written === undefined && await exists(`${tmp}/shared/written`)) written = Date.now();
          const current = (await backend.getPod("latency"))?.status;
          return current?.phase === "Succeeded" || current?.phase === "Failed"
            ? current
            : undefined;
        });
        assert.equal(status.reason, "Evicted");
        console.log(
          written === undefined
            ? `eviction with a ${interval} ms interval: during the write`
            : `eviction latency with a ${interval} ms interval: ${Date.now() - written} ms`,
        );
      }, { storageCheckIntervalMs: interval, shared: true });
    }
    // Cost: one pass over N files in 20 folders, whole and in steps of 5,000 entries.
    const dir = await Deno.makeTempDir({ prefix: "planetary-du-" });
    try {
      const n = 20_000;
      for (let d = 0; d < 20; d++) {
        await Deno.mkdir(`${dir}/d${d}`);
        for (let i = 0; i < n / 20; i++) {
          Deno.writeFileSync(`${dir}/d${d}/f${i}`, new Uint8Array(1));
        }
      }
      const walk = new DiskUsageWalk(() => Promise.resolve(new Map([["all", [dir]]])));
      let started = performance.now();
      let steps = 0;
      while (!await walk.step(5_000)) steps++;
      const stepped = performance.now() - started;
      started = performance.now();
      assert.ok(await walk.step(1_000_000));
      const whole = performance.now() - started;
      const du = new TextDecoder().decode(
        (await new Deno.Command("du", { args: ["-sB1", dir], stdout: "piped" }).output()).stdout,
      );
      assert.equal(walk.usage("all"), Number(du.split("\t")[0]));
      console.log(
        `measuring ${n + 21} entries: ${whole.toFixed(0)} ms in one pass ` +
          `(${(whole * 1000 / n).toFixed(1)} µs/entry); ${steps + 1} passes of 5000: ` +
          `${stepped.toFixed(0)} ms; usage equals du -sB1`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
