import assert from "node:assert/strict";
import { stuckPodReason } from "./stuck_pod_reason.ts";
import { formatDuration } from "./_format_duration.ts";
import { fakeTaskPod, waitingStatus } from "./testdata/fake_backend.ts";

const NOW = new Date("2024-05-01T12:00:00Z");
const MIN = 60_000;

function ago(ms: number): Date {
  return new Date(NOW.getTime() - ms);
}

function scheduled(at: Date): { type: string; status: string; lastTransitionTime: Date } {
  return { type: "PodScheduled", status: "True", lastTransitionTime: at };
}

const UNSCHEDULABLE = {
  type: "PodScheduled",
  status: "False",
  reason: "Unschedulable",
  message: "0/3 nodes are available: 3 Insufficient cpu.",
};

Deno.test("stuckPodReason() fails an unschedulable pod after pendingTimeoutMs", () => {
  const young = fakeTaskPod("a", { created: ago(9 * MIN), conditions: [UNSCHEDULABLE] });
  assert.equal(stuckPodReason(young, NOW), undefined);
  const old = fakeTaskPod("a", { created: ago(10 * MIN + 30_000), conditions: [UNSCHEDULABLE] });
  assert.equal(
    stuckPodReason(old, NOW),
    "pod stuck Pending for 10m30s: 0/3 nodes are available: 3 Insufficient cpu.",
  );
  assert.equal(stuckPodReason(old, NOW, { pendingTimeoutMs: 11 * MIN }), undefined);
});

Deno.test("stuckPodReason() fails a scheduled pod whose containers never start", () => {
  const pod = fakeTaskPod("a", {
    created: ago(30 * MIN),
    nodeName: "node-1",
    conditions: [scheduled(ago(12 * MIN))],
    initContainerStatuses: [waitingStatus("inputs", "transporter", "PodInitializing")],
  });
  assert.equal(
    stuckPodReason(pod, NOW),
    "pod stuck Pending for 12m: container inputs is waiting: PodInitializing",
  );
  // Measured from scheduling, not creation.
  assert.equal(stuckPodReason(pod, NOW, { pendingTimeoutMs: 13 * MIN }), undefined);
});

Deno.test("stuckPodReason() leaves a Pending pod alone while its init containers run", () => {
  // Executors are init containers: the pod stays Pending while they run, for hours.
  const pod = fakeTaskPod("a", {
    created: ago(300 * MIN),
    nodeName: "node-1",
    conditions: [scheduled(ago(300 * MIN))],
    initContainerStatuses: [
      {
        name: "inputs",
        image: "transporter",
        imageID: "",
        ready: false,
        restartCount: 0,
        state: { terminated: { exitCode: 0, finishedAt: ago(299 * MIN) } },
      },
      {
        name: "executor-0",
        image: "alpine",
        imageID: "",
        ready: false,
        restartCount: 0,
        state: { running: { startedAt: ago(299 * MIN) } },
      },
    ],
  });
  assert.equal(stuckPodReason(pod, NOW), undefined);
});

Deno.test("stuckPodReason() gives image pulls imagePullTimeoutMs, invalid names none", () => {
  const pulling = (since: Date, reason: string): ReturnType<typeof fakeTaskPod> =>
    fakeTaskPod("a", {
      created: since,
      nodeName: "node-1",
      conditions: [scheduled(since)],
      initContainerStatuses: [
        waitingStatus("inputs", "alpine:nope", reason, 'Back-off pulling image "alpine:nope"'),
      ],
    });
  assert.equal(stuckPodReason(pulling(ago(4 * MIN), "ImagePullBackOff"), NOW), undefined);
  assert.equal(
    stuckPodReason(pulling(ago(6 * MIN), "ImagePullBackOff"), NOW),
    'image "alpine:nope" of container inputs could not be pulled: ImagePullBackOff: ' +
      'Back-off pulling image "alpine:nope" (gave up after 6m)',
  );
  assert.match(stuckPodReason(pulling(ago(6 * MIN), "ErrImagePull"), NOW) ?? "", /ErrImagePull/);
  assert.equal(
    stuckPodReason(pulling(ago(6 * MIN), "ErrImagePull"), NOW, { imagePullTimeoutMs: 7 * MIN }),
    undefined,
  );
  assert.match(
    stuckPodReason(pulling(NOW, "InvalidImageName"), NOW) ?? "",
    /^image "alpine:nope" of container inputs could not be pulled: InvalidImageName/,
    "never clears up: fails at once",
  );
});

Deno.test("stuckPodReason() measures a later executor's pull from the previous container's end", () => {
  const pod = fakeTaskPod("a", {
    created: ago(60 * MIN),
    nodeName: "node-1",
    conditions: [scheduled(ago(60 * MIN))],
    initContainerStatuses: [
      {
        name: "inputs",
        image: "transporter",
        imageID: "",
        ready: false,
        restartCount: 0,
        state: { terminated: { exitCode: 0, finishedAt: ago(2 * MIN) } },
      },
      waitingStatus("executor-0", "ubuntu:nope", "ImagePullBackOff"),
    ],
  });
  assert.equal(stuckPodReason(pod, NOW), undefined, "waiting for 2 minutes only");
  assert.match(stuckPodReason(pod, new Date(NOW.getTime() + 4 * MIN)) ?? "", /gave up after 6m/);
});

Deno.test("stuckPodReason() ignores finished pods and pods being deleted", () => {
  const finished = fakeTaskPod("a", { created: ago(60 * MIN), phase: "Failed" });
  assert.equal(stuckPodReason(finished, NOW), undefined);
  const deleting = fakeTaskPod("a", { created: ago(60 * MIN), conditions: [UNSCHEDULABLE] });
  deleting.metadata!.deletionTimestamp = ago(MIN);
  assert.equal(stuckPodReason(deleting, NOW), undefined);
});

Deno.test("formatDuration() writes the two largest units", () => {
  assert.equal(formatDuration(0), "0s");
  assert.equal(formatDuration(-5), "0s");
  assert.equal(formatDuration(45_400), "45s");
  assert.equal(formatDuration(10 * MIN), "10m");
  assert.equal(formatDuration(10 * MIN + 30_000), "10m30s");
  assert.equal(formatDuration(125 * MIN + 10_000), "2h5m");
  assert.equal(formatDuration(120 * MIN + 10_000), "2h");
  assert.equal(formatDuration(3 * 86_400_000 + 4 * 3_600_000), "3d4h");
});
