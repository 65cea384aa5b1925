/**
 * The monitor against a real store (embedded PGlite, one schema per case) and the hand-written
 * {@linkcode FakeBackend} (pods built by hand: no kubelet here leaves a pod unschedulable or
 * fails an image pull). The local backend is covered in tests/monitor_test.ts.
 */
import assert from "node:assert/strict";
import { migrate, openPgliteDriver, SqlTaskStore } from "../store/mod.ts";
import type { SqlDriver } from "../store/driver.ts";
import type { TaskUpdate } from "../store/task_store.ts";
import type { TesState, TesTask } from "../tes/model.ts";
import { podName } from "../pod/pod_name.ts";
import { Monitor, type MonitorLogEntry, type MonitorOptions } from "./monitor.ts";
import { FakeBackend, fakeTaskPod, waitingStatus } from "./testdata/fake_backend.ts";

const MIN = 60_000;
const TASK: TesTask = { executors: [{ image: "alpine", command: ["true"] }] };

/** A real store whose transition() lets a test act first (an orchestrator finishing a task). */
class RacingStore extends SqlTaskStore {
  beforeTransition: ((id: string, to: TesState) => Promise<void>) | undefined;
  override async transition(id: string, to: TesState, update?: TaskUpdate): Promise<boolean> {
    const hook = this.beforeTransition;
    this.beforeTransition = undefined;
    await hook?.(id, to);
    return await super.transition(id, to, update);
  }
}

interface Setup {
  store: RacingStore;
  backend: FakeBackend;
  logs: MonitorLogEntry[];
  /** Milliseconds added to the real time by the monitor's clock. */
  shift: { ms: number };
  monitor(options?: Partial<MonitorOptions>): Monitor;
  /** Creates a task and moves it to `state` (claimed by `owner` for `leaseMs`). */
  task(state: TesState, options?: { owner?: string; leaseMs?: number }): Promise<string>;
  state(id: string): Promise<TesState | undefined>;
  systemLogs(id: string): Promise<string[]>;
}

async function withSetup(
  driver: SqlDriver,
  schema: string,
  fn: (setup: Setup) => Promise<void>,
): Promise<void> {
  await driver.exec(`CREATE SCHEMA ${schema}; SET search_path TO ${schema}`);
  await migrate(driver);
  const store = new RacingStore(driver, { ownsDriver: false });
  const backend = new FakeBackend();
  const logs: MonitorLogEntry[] = [];
  const shift = { ms: 0 };
  const setup: Setup = {
    store,
    backend,
    logs,
    shift,
    monitor: (options = {}) =>
      new Monitor({
        store,
        backend,
        log: (entry) => logs.push(entry),
        clock: () => new Date(Date.now() + shift.ms),
        ...options,
      }),
    async task(state, options = {}) {
      const { owner = "orchestrator-1", leaseMs = 60 * MIN } = options;
      const id = await store.create(TASK);
      const claimed = await store.claim(owner, 1, leaseMs);
      assert.equal(claimed[0]?.task.id, id, "the new task is the one claimed");
      if (state === "RUNNING" || state === "COMPLETE") {
        assert.equal(await store.transition(id, "RUNNING"), true);
      }
      if (state === "COMPLETE") assert.equal(await store.transition(id, "COMPLETE"), true);
      if (state === "CANCELING") assert.equal((await store.cancel(id)).state, "CANCELING");
      return id;
    },
    async state(id) {
      return (await store.get(id, "MINIMAL")).state;
    },
    async systemLogs(id) {
      return (await store.get(id, "FULL")).logs?.[0]?.system_logs ?? [];
    },
  };
  try {
    await fn(setup);
  } finally {
    await store.close();
  }
}

function runningPod(id: string, created: Date): ReturnType<typeof fakeTaskPod> {
  return fakeTaskPod(id, {
    created,
    phase: "Running",
    nodeName: "node-1",
    conditions: [{ type: "PodScheduled", status: "True", lastTransitionTime: created }],
    containerStatuses: [{
      name: "outputs",
      image: "transporter",
      imageID: "",
      ready: true,
      restartCount: 0,
      state: { running: { startedAt: created } },
    }],
  });
}

Deno.test("Monitor", async (t) => {
  const driver = await openPgliteDriver();
  let schemas = 0;
  const setup = (fn: (setup: Setup) => Promise<void>): Promise<void> =>
    withSetup(driver, `monitor_${++schemas}`, fn);
  try {
    await t.step("new Monitor() refuses negative durations", () => {
      const backend = new FakeBackend();
      assert.throws(
        () => new Monitor({ store: {} as SqlTaskStore, backend, pendingTimeoutMs: -1 }),
        RangeError,
      );
    });

    await t.step(
      "runOnce() deletes pods of finished and unknown tasks, keeping finished ones for keepFinishedPodsMs",
      () =>
        setup(async ({ backend, shift, monitor, task, state }) => {
          const now = new Date();
          const done = await task("COMPLETE");
          const running = await task("RUNNING");
          backend.add(runningPod(done, now));
          backend.add(runningPod(running, now));
          backend.add(runningPod("ghostoldaaaaaaaaaaaaaaaaaa", new Date(now.getTime() - 5 * MIN)));
          backend.add(runningPod("ghostnewaaaaaaaaaaaaaaaaaa", now));
          const m = monitor({ keepFinishedPodsMs: MIN, orphanGraceMs: 2 * MIN });

          const first = await m.runOnce();
          assert.deepEqual(backend.deleted, [podName("ghostoldaaaaaaaaaaaaaaaaaa")]);
          assert.equal(first.pods, 4);
          assert.equal(first.liveTasks, 1);
          assert.equal(first.podsWithoutLiveTask, 3);
          assert.equal(first.liveTasksWithoutPod, 0);
          assert.equal(first.podsDeleted, 1);
          assert.equal(first.errors, 0);

          shift.ms = MIN + 1_000;
          const second = await m.runOnce();
          assert.equal(second.podsDeleted, 1);
          assert.deepEqual(backend.deleted.slice(1), [podName(done)], "kept for 1 minute");
          assert.ok(backend.pods.has(podName(running)), "a live task's pod stays");
          assert.ok(backend.pods.has(podName("ghostnewaaaaaaaaaaaaaaaaaa")), "too young");
          assert.equal(await state(running), "RUNNING");
          assert.equal(await state(done), "COMPLETE");
        }),
    );

    await t.step(
      "runOnce() fails a claimed task whose pod disappeared, after orphanGraceMs",
      () =>
        setup(async ({ store, backend, shift, monitor, task, state, systemLogs, logs }) => {
          const running = await task("RUNNING");
          const initializing = await task("INITIALIZING");
          const canceling = await task("CANCELING");
          const withPod = await task("RUNNING");
          backend.add(runningPod(withPod, new Date()));
          const m = monitor({ orphanGraceMs: 2 * MIN });

          const fresh = await m.runOnce();
          assert.equal(fresh.liveTasks, 4);
          assert.equal(fresh.liveTasksWithoutPod, 3);
          assert.equal(fresh.tasksWithLostPod, 0, "a task claimed a moment ago may lack its pod");
          assert.equal(await state(running), "RUNNING");

          shift.ms = 2 * MIN + 1_000;
          const late = await m.runOnce();
          assert.equal(late.tasksWithLostPod, 2);
          assert.equal(await state(running), "SYSTEM_ERROR");
          assert.equal(await state(initializing), "SYSTEM_ERROR");
          assert.match((await systemLogs(running))[0] ?? "", /^pod task-\S+ disappeared: /);
          assert.equal(await state(canceling), "CANCELING", "the orchestrator finishes cancels");
          assert.equal(await state(withPod), "RUNNING");
          assert.ok(logs.some((e) => e.msg.includes("pod disappeared") && e.task_id === running));
          const ended = await store.get(running, "BASIC");
          assert.ok(ended.logs?.[0]?.end_time, "end time recorded");
        }),
    );

    await t.step(
      "runOnce() leaves an INITIALIZING task with an expired lease to the adopting orchestrator",
      () =>
        setup(async ({ store, shift, monitor, task, state }) => {
          const orphan = await task("INITIALIZING", { owner: "dead" });
          assert.equal(await store.renewLeases("dead", -1_000), 1);
          shift.ms = 10 * MIN;
          const report = await monitor({ orphanGraceMs: MIN }).runOnce();
          assert.equal(report.liveTasksWithoutPod, 1);
          assert.equal(report.tasksWithLostPod, 0);
          assert.equal(await state(orphan), "INITIALIZING");
        }),
    );

    await t.step(
      "runOnce() keeps the outcome of an orchestrator that finished a task first",
      () =>
        setup(async ({ store, backend, shift, monitor, task, state, systemLogs }) => {
          const id = await task("RUNNING");
          // The orchestrator records COMPLETE (and deletes the pod) while the monitor looks.
          backend.onGetPod = async () => {
            await store.transition(id, "COMPLETE", { systemLogs: ["done by the orchestrator"] });
          };
          shift.ms = 10 * MIN;
          const report = await monitor({ orphanGraceMs: MIN }).runOnce();
          assert.equal(report.tasksWithLostPod, 0);
          assert.equal(report.tasksFinishedConcurrently, 1);
          assert.equal(await state(id), "COMPLETE");
          assert.deepEqual(await systemLogs(id), ["done by the orchestrator"]);
        }),
    );

    await t.step(
      "runOnce() fails tasks whose pod is stuck Pending or cannot pull its image, then deletes the pod",
      () =>
        setup(async ({ backend, monitor, task, state, systemLogs }) => {
          const now = Date.now();
          const ago = (ms: number): Date => new Date(now - ms);
          const scheduledAt = (
            at: Date,
          ): { type: string; status: string; lastTransitionTime: Date } => ({
            type: "PodScheduled",
            status: "True",
            lastTransitionTime: at,
          });
          const unschedulable = {
            type: "PodScheduled",
            status: "False",
            reason: "Unschedulable",
            message: "0/3 nodes are available: 3 Insufficient cpu.",
          };
          const ids = {
            unschedulableOld: await task("INITIALIZING"),
            unschedulableNew: await task("INITIALIZING"),
            pullOld: await task("INITIALIZING"),
            pullNew: await task("INITIALIZING"),
            invalid: await task("INITIALIZING"),
            creatingOld: await task("INITIALIZING"),
            executing: await task("RUNNING"),
          };
          backend.add(fakeTaskPod(ids.unschedulableOld, {
            created: ago(11 * MIN),
            conditions: [unschedulable],
          }));
          backend.add(fakeTaskPod(ids.unschedulableNew, {
            created: ago(5 * MIN),
            conditions: [unschedulable],
          }));
          // The executor's image fails, after the inputs finished.
          const pullPod = (id: string, since: Date, reason: string, image: string): void =>
            backend.add(fakeTaskPod(id, {
              created: since,
              nodeName: "node-1",
              conditions: [scheduledAt(since)],
              initContainerStatuses: [
                {
                  name: "inputs",
                  image: "transporter",
                  imageID: "",
                  ready: false,
                  restartCount: 0,
                  state: { terminated: { exitCode: 0, finishedAt: since } },
                },
                waitingStatus("executor-0", image, reason, `failed to pull "${image}": not found`),
              ],
            }));
          pullPod(ids.pullOld, ago(6 * MIN), "ImagePullBackOff", "alpine:nope");
          pullPod(ids.pullNew, ago(2 * MIN), "ErrImagePull", "alpine:nope");
          pullPod(ids.invalid, ago(1_000), "InvalidImageName", "Alpine::bad");
          backend.add(fakeTaskPod(ids.creatingOld, {
            created: ago(12 * MIN),
            nodeName: "node-1",
            conditions: [scheduledAt(ago(11 * MIN))],
            initContainerStatuses: [waitingStatus("inputs", "transporter", "ContainerCreating")],
          }));
          backend.add(fakeTaskPod(ids.executing, {
            created: ago(180 * MIN),
            nodeName: "node-1",
            conditions: [scheduledAt(ago(180 * MIN))],
            initContainerStatuses: [{
              name: "executor-0",
              image: "alpine",
              imageID: "",
              ready: false,
              restartCount: 0,
              state: { running: { startedAt: ago(170 * MIN) } },
            }],
          }));

          const report = await monitor().runOnce();
          assert.equal(report.tasksWithStuckPod, 4);
          assert.equal(report.podsDeleted, 4);
          assert.equal(report.errors, 0);
          const failed = [ids.unschedulableOld, ids.pullOld, ids.invalid, ids.creatingOld];
          for (const id of failed) {
            assert.equal(await state(id), "SYSTEM_ERROR", id);
            assert.equal(backend.pods.has(podName(id)), false, "its pod is deleted");
          }
          for (const id of [ids.unschedulableNew, ids.pullNew, ids.executing]) {
            assert.notEqual(await state(id), "SYSTEM_ERROR", id);
            assert.ok(backend.pods.has(podName(id)));
          }
          assert.match(
            (await systemLogs(ids.unschedulableOld))[0] ?? "",
            /^pod stuck Pending for 11m(\d+s)?: 0\/3 nodes are available: 3 Insufficient cpu\.$/,
          );
          assert.match(
            (await systemLogs(ids.pullOld))[0] ?? "",
            /^image "alpine:nope" of container executor-0 could not be pulled: ImagePullBackOff: failed to pull "alpine:nope": not found \(gave up after 6m(\d+s)?\)$/,
          );
          assert.match((await systemLogs(ids.invalid))[0] ?? "", /InvalidImageName/);
          assert.match(
            (await systemLogs(ids.creatingOld))[0] ?? "",
            /^pod stuck Pending for 11m(\d+s)?: container inputs is waiting: ContainerCreating$/,
          );
        }),
    );

    await t.step(
      "runOnce() does not overwrite a task finished while its stuck pod was seen",
      () =>
        setup(async ({ store, backend, monitor, task, state }) => {
          const id = await task("INITIALIZING");
          backend.add(fakeTaskPod(id, {
            created: new Date(Date.now() - 20 * MIN),
            conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable" }],
          }));
          store.beforeTransition = async () => {
            await store.cancel(id);
            await store.transition(id, "CANCELED");
          };
          const report = await monitor().runOnce();
          assert.equal(report.tasksWithStuckPod, 0);
          assert.equal(report.tasksFinishedConcurrently, 1);
          assert.equal(await state(id), "CANCELED");
          assert.ok(backend.pods.has(podName(id)), "the pod is its orchestrator's to delete");
        }),
    );

    await t.step(
      "runOnce() warns about leases that no orchestrator adopted",
      () =>
        setup(async ({ store, backend, monitor, task, logs }) => {
          const abandoned = await task("RUNNING", { owner: "dead" });
          const healthy = await task("RUNNING", { owner: "alive" });
          assert.equal(await store.renewLeases("dead", -10 * MIN), 1);
          backend.add(runningPod(abandoned, new Date()));
          backend.add(runningPod(healthy, new Date()));
          const report = await monitor({ staleLeaseMs: 90_000 }).runOnce();
          assert.equal(report.staleLeases, 1);
          const warning = logs.find((e) => e.level === "warn" && Array.isArray(e.task_ids));
          assert.ok(warning, "a warning is logged");
          assert.deepEqual(warning.task_ids, [abandoned]);
          assert.deepEqual(warning.owners, ["dead"]);
          assert.equal(report.errors, 0);
        }),
    );

    await t.step(
      "runOnce() records failures and goes on with the other steps",
      () =>
        setup(async ({ store, backend, monitor, task, logs }) => {
          await task("RUNNING", { owner: "dead" });
          assert.equal(await store.renewLeases("dead", -10 * MIN), 1);
          backend.listError = new Error("apiserver unreachable");
          const m = monitor({ orphanGraceMs: 0 });
          const listing = await m.runOnce();
          assert.equal(listing.errors, 1);
          assert.equal(listing.staleLeases, 1, "the lease check still ran");
          assert.equal(listing.tasksWithLostPod, 0, "no pod list: nothing is judged lost");
          assert.ok(
            logs.some((e) =>
              e.level === "error" && e.step === "list pods" && e.error === "apiserver unreachable"
            ),
          );

          backend.listError = undefined;
          const ghostA = "ghostaaaaaaaaaaaaaaaaaaaaa";
          const ghostB = "ghostbbbbbbbbbbbbbbbbbbbbb";
          backend.add(runningPod(ghostA, new Date(0)));
          backend.add(runningPod(ghostB, new Date(0)));
          backend.failDeletes.add(podName(ghostA));
          const deleting = await m.runOnce();
          assert.equal(deleting.errors, 1);
          assert.equal(deleting.podsDeleted, 1);
          assert.deepEqual(backend.deleted, [podName(ghostB)]);
          assert.equal(deleting.tasksWithLostPod, 1, "the other steps ran");

          // The database fails: the cycle reports it and resolves.
          await store.driver.exec("DROP TABLE tasks CASCADE");
          const broken = await m.runOnce();
          assert.equal(broken.errors, 2, "stale leases and live tasks could not be read");
          assert.ok(logs.some((e) => e.step === "list live tasks"));
        }),
    );

    await t.step(
      "start() runs cycles until stop()",
      () =>
        setup(async ({ monitor, task, state }) => {
          const m = monitor({ intervalMs: 10, orphanGraceMs: 0 });
          m.start();
          m.start();
          try {
            const id = await task("RUNNING");
            const deadline = Date.now() + 60_000;
            while ((await state(id)) !== "SYSTEM_ERROR") {
              assert.ok(Date.now() < deadline, "the loop fails the task without a pod");
              await new Promise((resolve) => setTimeout(resolve, 10));
            }
          } finally {
            await m.stop();
          }
          await m.stop();
        }),
    );
  } finally {
    await driver.close();
  }
});
