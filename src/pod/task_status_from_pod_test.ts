import { assert, assertEquals, assertMatch } from "./testdata/assert.ts";
import type {
  V1ContainerState,
  V1ContainerStatus,
  V1Pod,
  V1PodStatus,
} from "@kubernetes/client-node";
import type { TransferReport } from "./layout.ts";
import { taskStatusFromPod } from "./task_status_from_pod.ts";

const T0 = new Date("2024-05-01T10:00:00Z");
const T1 = new Date("2024-05-01T10:05:00Z");
const T2 = new Date("2024-05-01T10:09:00Z");

function cs(name: string, state: V1ContainerState, image = `${name}:img`): V1ContainerStatus {
  return { name, state, image, imageID: "", ready: false, restartCount: 0 };
}
const done = (exitCode = 0, extra: Record<string, unknown> = {}): V1ContainerState => ({
  terminated: { exitCode, startedAt: T0, finishedAt: T1, ...extra },
});
const running: V1ContainerState = { running: { startedAt: T0 } };
const waiting = (reason: string, message = ""): V1ContainerState => ({
  waiting: { reason, message },
});

function pod(
  status: V1PodStatus,
  init: V1ContainerStatus[] = [],
  main: V1ContainerStatus[] = [],
  extra: Partial<V1Pod> = {},
): V1Pod {
  return {
    metadata: { name: "task-x" },
    spec: { nodeName: "node-1", containers: [] },
    status: { startTime: T0, initContainerStatuses: init, containerStatuses: main, ...status },
    ...extra,
  };
}

const REPORT_OK: TransferReport = {
  version: 1,
  executors: [
    {
      exit_code: 0,
      start_time: "2024-05-01T10:01:00Z",
      end_time: "2024-05-01T10:02:00Z",
      stdout: "hello\n",
      stderr: "",
    },
    { exit_code: 3, stdout: "", stderr: "boom\n" },
    { stdout: "", stderr: "" },
  ],
  outputs: [{ url: "s3://b/o", path: "/data/o", size_bytes: "12" }],
};

function finishedPod(outputsExit = 0, message?: string): V1Pod {
  return pod(
    { phase: outputsExit === 0 ? "Succeeded" : "Failed" },
    [
      cs("inputs", done()),
      cs("executor-0", done()),
      cs("executor-1", done()),
      cs("executor-2", done()),
    ],
    [cs("outputs", {
      terminated: {
        exitCode: outputsExit,
        startedAt: T1,
        finishedAt: T2,
        ...(message ? { message } : {}),
      },
    })],
  );
}

Deno.test("taskStatusFromPod() reports a deleted pod as a system error, or canceled", () => {
  const gone = taskStatusFromPod(undefined);
  assertEquals(gone.state, "SYSTEM_ERROR");
  assertMatch(gone.systemLogs.join("\n"), /pod was deleted/);
  assertEquals(gone.executorLogs, []);
  assertEquals(taskStatusFromPod(undefined, undefined, { canceling: true }).state, "CANCELED");
});

Deno.test("taskStatusFromPod() while canceling waits for the pod to end", () => {
  const live = pod({ phase: "Running" }, [cs("inputs", running)]);
  assertEquals(taskStatusFromPod(live, undefined, { canceling: true }).state, "CANCELING");
  const deleting = { ...live, metadata: { name: "task-x", deletionTimestamp: T1 } };
  assertEquals(taskStatusFromPod(deleting, undefined, { canceling: true }).state, "CANCELED");
  assertEquals(taskStatusFromPod(finishedPod(), REPORT_OK, { canceling: true }).state, "CANCELED");
});

Deno.test("taskStatusFromPod() maps Pending to QUEUED until scheduled, then INITIALIZING", () => {
  const unscheduled = pod(
    {
      phase: "Pending",
      conditions: [{
        type: "PodScheduled",
        status: "False",
        reason: "Unschedulable",
        message: "0/3 nodes are available: 3 Insufficient cpu.",
      }],
    },
    [],
    [],
    { spec: { containers: [] } },
  );
  const queued = taskStatusFromPod(unscheduled);
  assertEquals(queued.state, "QUEUED");
  assertMatch(queued.systemLogs[0] ?? "", /Insufficient cpu/);
  const scheduled = pod({ phase: "Pending" }, [cs("inputs", waiting("PodInitializing"))]);
  assertEquals(taskStatusFromPod(scheduled).state, "INITIALIZING");
});

Deno.test("taskStatusFromPod() reports image pull errors with the image and whether they may clear", () => {
  for (
    const [reason, transient] of [
      ["ErrImagePull", true],
      ["ImagePullBackOff", true],
      ["InvalidImageName", false],
      ["ErrImageNeverPull", false],
    ] as const
  ) {
    const status = taskStatusFromPod(
      pod({ phase: "Pending" }, [
        cs("inputs", done()),
        cs("executor-0", waiting(reason, "manifest unknown"), "nope:latest"),
      ]),
    );
    assertEquals(status.state, "SYSTEM_ERROR", reason);
    assertMatch(
      status.systemLogs.join("\n"),
      /image "nope:latest" of container executor-0 could not be pulled: .*manifest unknown/,
    );
    assertEquals(status.startFailure, {
      container: "executor-0",
      reason,
      message: "manifest unknown",
      image: "nope:latest",
      transient,
    });
  }
});

Deno.test("taskStatusFromPod() reports a container that cannot be created", () => {
  const status = taskStatusFromPod(
    pod({ phase: "Pending" }, [
      cs("inputs", waiting("CreateContainerConfigError", 'secret "s3-creds" not found')),
    ]),
  );
  assertEquals(status.state, "SYSTEM_ERROR");
  assertMatch(status.systemLogs[0] ?? "", /container inputs could not be started: .*s3-creds/);
  assertEquals(status.startFailure?.transient, true);
});

Deno.test("taskStatusFromPod() follows the containers: INITIALIZING, then RUNNING", () => {
  assertEquals(
    taskStatusFromPod(pod({ phase: "Pending" }, [cs("inputs", running)])).state,
    "INITIALIZING",
  );
  const exec = pod({ phase: "Pending" }, [cs("inputs", done()), cs("executor-0", running)]);
  const status = taskStatusFromPod(exec);
  assertEquals(status.state, "RUNNING");
  assertEquals(status.startTime, T0);
  assertEquals(status.endTime, undefined);
  assertEquals(
    taskStatusFromPod(
      pod({ phase: "Pending" }, [
        cs("inputs", done()),
        cs("executor-0", done()),
        cs("executor-1", waiting("PodInitializing")),
      ]),
    ).state,
    "RUNNING",
  );
  assertEquals(
    taskStatusFromPod(pod({ phase: "Running" }, [cs("inputs", done())], [cs("outputs", running)]))
      .state,
    "RUNNING",
  );
});

Deno.test("taskStatusFromPod() reports a failed input download with its message", () => {
  const status = taskStatusFromPod(pod({ phase: "Failed" }, [
    cs("inputs", done(1, { message: "s3://b/k: 403 Forbidden\n" })),
    cs("executor-0", waiting("PodInitializing")),
  ]));
  assertEquals(status.state, "SYSTEM_ERROR");
  assertEquals(status.systemLogs, ["input download failed: s3://b/k: 403 Forbidden"]);
  assertEquals(status.endTime, T1);
});

Deno.test("taskStatusFromPod() reports an executor out of memory with exit code 137", () => {
  const status = taskStatusFromPod(pod({ phase: "Failed" }, [
    cs("inputs", done()),
    cs("executor-0", done()),
    cs("executor-1", done(137, { reason: "OOMKilled" })),
  ]));
  assertEquals(status.state, "EXECUTOR_ERROR");
  assertEquals(status.systemLogs, ["executor 1 ran out of memory (OOMKilled)"]);
  assertEquals(status.executorLogs.map((log) => log.exit_code), [137]);
  const transporter = taskStatusFromPod(pod({ phase: "Failed" }, [
    cs("inputs", done(137, { reason: "OOMKilled" })),
  ]));
  assertEquals(transporter.state, "SYSTEM_ERROR");
  assertMatch(transporter.systemLogs[0] ?? "", /input download ran out of memory/);
});

Deno.test("taskStatusFromPod() reports an executor whose container could not run", () => {
  const status = taskStatusFromPod(pod({ phase: "Failed" }, [
    cs("inputs", done()),
    cs("executor-0", done(127, { reason: "StartError", message: "exec: /bin/sh: not found" })),
  ]));
  assertEquals(status.state, "EXECUTOR_ERROR");
  assertMatch(status.systemLogs[0] ?? "", /executor 0 could not run: StartError: .*\/bin\/sh/);
  assertEquals(status.executorLogs.map((log) => log.exit_code), [127]);
});

Deno.test("taskStatusFromPod() maps eviction, preemption and deadlines", () => {
  const failed = (reason: string, message: string) =>
    taskStatusFromPod(
      pod({ phase: "Failed", reason, message }, [cs("inputs", done()), cs("executor-0", done())]),
    );
  const evicted = failed("Evicted", "The node was low on resource: memory.");
  assertEquals(evicted.state, "PREEMPTED");
  assertMatch(evicted.systemLogs[0] ?? "", /evicted.*low on resource/);
  const disk = failed("Evicted", 'Usage of EmptyDir volume "data" exceeds the limit "10G".');
  assertEquals(disk.state, "EXECUTOR_ERROR");
  assertMatch(disk.systemLogs[0] ?? "", /more disk/);
  assertEquals(failed("Preempting", "Preempted in order to admit critical pod").state, "PREEMPTED");
  assertEquals(
    failed("Shutdown", "Pod was terminated in response to imminent node shutdown.").state,
    "PREEMPTED",
  );
  const deadline = failed(
    "DeadlineExceeded",
    "Pod was active on the node longer than the specified deadline",
  );
  assertEquals(deadline.state, "SYSTEM_ERROR");
  assertMatch(deadline.systemLogs[0] ?? "", /time limit.*DeadlineExceeded/);
  const other = failed("UnexpectedAdmissionError", "Allocate failed");
  assertEquals(other.state, "SYSTEM_ERROR");
  assertMatch(other.systemLogs[0] ?? "", /pod failed: UnexpectedAdmissionError: Allocate failed/);

  const disrupted = pod(
    {
      phase: "Running",
      conditions: [{
        type: "DisruptionTarget",
        status: "True",
        reason: "PreemptionByScheduler",
        message: "preempted by a higher-priority pod",
      }],
    },
    [cs("inputs", done()), cs("executor-0", running)],
    [],
    { metadata: { name: "task-x", deletionTimestamp: T1 } },
  );
  assertEquals(taskStatusFromPod(disrupted).state, "PREEMPTED");
});

Deno.test("taskStatusFromPod() keeps a pod of an unresponsive node RUNNING with a note", () => {
  const status = taskStatusFromPod(
    pod({ phase: "Unknown", reason: "NodeLost" }, [cs("inputs", done()), cs("executor-0", done())]),
  );
  assertEquals(status.state, "RUNNING");
  assertMatch(status.systemLogs[0] ?? "", /stopped reporting.*NodeLost/);
});

Deno.test("taskStatusFromPod() completes from the report, with logs and outputs", () => {
  const report: TransferReport = {
    ...REPORT_OK,
    executors: [REPORT_OK.executors[0]!, { exit_code: 3, stdout: "", stderr: "boom\n" }],
  };
  const status = taskStatusFromPod(finishedPod(), report, {
    executors: [{}, { ignore_error: true }],
  });
  assertEquals(status.state, "COMPLETE");
  assertEquals(status.executorLogs, [
    {
      start_time: "2024-05-01T10:01:00Z",
      end_time: "2024-05-01T10:02:00Z",
      stdout: "hello\n",
      stderr: "",
      exit_code: 0,
    },
    { stdout: "", stderr: "boom\n", exit_code: 3 },
  ]);
  assertEquals(status.outputs, [{ url: "s3://b/o", path: "/data/o", size_bytes: "12" }]);
  assertMatch(status.systemLogs.join("\n"), /executor 1 exited with code 3 \(ignored/);
  assertEquals(status.startTime, T0);
  assertEquals(status.endTime, T2);
});

Deno.test("taskStatusFromPod() fails an executor error and omits skipped executors", () => {
  const status = taskStatusFromPod(finishedPod(), REPORT_OK, { executors: [{}, {}, {}] });
  assertEquals(status.state, "EXECUTOR_ERROR");
  assertEquals(status.executorLogs.map((log) => log.exit_code), [0, 3]);
  for (const log of status.executorLogs) assert(typeof log.exit_code === "number");
  assertEquals(status.systemLogs, ["executor 1 exited with code 3"]);
  // Without the flags every executor counts.
  assertEquals(taskStatusFromPod(finishedPod(), REPORT_OK).state, "EXECUTOR_ERROR");
});

Deno.test("taskStatusFromPod() reports upload failures, but an executor failure wins", () => {
  const uploadFailed: TransferReport = {
    ...REPORT_OK,
    executors: [REPORT_OK.executors[0]!],
    error: "s3://b/o: 500 Internal Error",
  };
  const upload = taskStatusFromPod(finishedPod(1), uploadFailed, { executors: [{}] });
  assertEquals(upload.state, "SYSTEM_ERROR");
  assertEquals(upload.systemLogs, ["output upload failed: s3://b/o: 500 Internal Error"]);

  const both = taskStatusFromPod(finishedPod(1), { ...REPORT_OK, error: "disk read error" }, {
    executors: [{}, {}, {}],
  });
  assertEquals(both.state, "EXECUTOR_ERROR");
  assertEquals(both.systemLogs, [
    "executor 1 exited with code 3",
    "output upload failed: disk read error",
  ]);

  const noReport = taskStatusFromPod(finishedPod(2, "panic: out of cheese"));
  assertEquals(noReport.state, "SYSTEM_ERROR");
  assertEquals(noReport.systemLogs, ["output upload failed: panic: out of cheese"]);
  const silent = taskStatusFromPod(finishedPod(0));
  assertEquals(silent.state, "SYSTEM_ERROR");
  assertMatch(silent.systemLogs[0] ?? "", /without a report/);
});

Deno.test("taskStatusFromPod() appends the report's warnings to the system logs of every end state", () => {
  const missing = "output #1 (FILE /work/opt.txt): not found after the executors finished; " +
    "nothing uploaded";
  const ok: TransferReport = {
    ...REPORT_OK,
    executors: [REPORT_OK.executors[0]!],
    warnings: [missing],
  };
  const complete = taskStatusFromPod(finishedPod(), ok, { executors: [{}] });
  assertEquals(complete.state, "COMPLETE");
  assertEquals(complete.systemLogs, [missing]);
  assertEquals(complete.outputs, [{ url: "s3://b/o", path: "/data/o", size_bytes: "12" }]);

  const failed = taskStatusFromPod(finishedPod(), { ...REPORT_OK, warnings: [missing] }, {
    executors: [{}, {}, {}],
  });
  assertEquals(failed.state, "EXECUTOR_ERROR");
  assertEquals(failed.systemLogs, ["executor 1 exited with code 3", missing]);

  const uploadFailed = taskStatusFromPod(finishedPod(1), { ...ok, error: "disk read error" }, {
    executors: [{}],
  });
  assertEquals(uploadFailed.state, "SYSTEM_ERROR");
  assertEquals(uploadFailed.systemLogs, ["output upload failed: disk read error", missing]);

  const canceled = taskStatusFromPod(finishedPod(), ok, { canceling: true });
  assertEquals(canceled.state, "CANCELED");
  assertEquals(canceled.systemLogs, [missing]);

  // A live state has no report yet; a stray one adds nothing before the end.
  const live = pod({ phase: "Running" }, [cs("inputs", done()), cs("executor-0", running)]);
  assertEquals(taskStatusFromPod(live, ok, { executors: [{}] }).systemLogs, []);
});

Deno.test("taskStatusFromPod() reads a report without warnings, and ignores malformed ones", () => {
  const old = JSON.parse(
    '{"version":1,"executors":[{"exit_code":0,"stdout":"","stderr":""}],"outputs":[]}',
  ) as TransferReport;
  const status = taskStatusFromPod(finishedPod(), old, { executors: [{}] });
  assertEquals(status.state, "COMPLETE");
  assertEquals(status.systemLogs, []);
  const odd = JSON.parse(
    '{"version":1,"executors":[],"outputs":[],"warnings":["kept",7,null]}',
  ) as TransferReport;
  assertEquals(taskStatusFromPod(finishedPod(), odd).systemLogs, ["kept"]);
  const notArray = { version: 1, executors: [], outputs: [], warnings: "x" } as unknown;
  assertEquals(taskStatusFromPod(finishedPod(), notArray as TransferReport).systemLogs, []);
});

Deno.test("taskStatusFromPod() fails a run whose executor has no exit code and none failed", () => {
  const report: TransferReport = {
    ...REPORT_OK,
    executors: [REPORT_OK.executors[0]!, { stdout: "", stderr: "" }],
    outputs: [],
    warnings: ["output #0 (FILE /out/done): not found after the executors finished; x"],
  };
  const status = taskStatusFromPod(finishedPod(), report, { executors: [{}, {}] });
  assertEquals(status.state, "SYSTEM_ERROR");
  assertEquals(status.systemLogs, [
    "executor 1 did not finish: no exit code was recorded (it was stopped)",
    "output #0 (FILE /out/done): not found after the executors finished; x",
  ]);
});
