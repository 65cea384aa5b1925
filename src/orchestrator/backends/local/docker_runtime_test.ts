import assert from "node:assert/strict";
import { containerLimits, engineCreateArgs, engineEnv } from "./docker_runtime.ts";

Deno.test("engineCreateArgs() names env only by its file, with mounts, labels, limits and user", () => {
  const args = engineCreateArgs(
    {
      podName: "task-1",
      containerName: "executor-0",
      image: "alpine:3",
      command: ["sh", "-c", "echo $X"],
      args: [],
      env: [["X", "secret-value"]],
      workingDir: "/work",
      mounts: [
        { source: "/pods/a,b", target: "/data", readOnly: false, kind: "dir" },
        { source: "/pods/cm", target: "/spec", readOnly: true, kind: "dir" },
      ],
      scratchDir: "/pods/scratch",
      logFile: "/pods/log",
      runAsUser: 1000,
      limits: { cpus: 1.5, memoryBytes: 2 ** 30 },
    },
    "planetary-task-1-executor-0",
    {
      envFile: "/pods/scratch/env",
      labels: { "io.planetary.pod": "task-1" },
    },
  );
  assert.deepEqual(args, [
    "create",
    "--name",
    "planetary-task-1-executor-0",
    "--hostname",
    "task-1",
    "--label",
    "io.planetary.pod=task-1",
    "--security-opt",
    "no-new-privileges",
    "--mount",
    'type=bind,"source=/pods/a,b",target=/data',
    "--mount",
    "type=bind,source=/pods/cm,target=/spec,readonly",
    "--env-file",
    "/pods/scratch/env",
    "--workdir",
    "/work",
    "--user",
    "1000",
    "--cpus",
    "1.5",
    "--memory",
    "1073741824",
    "--memory-swap",
    "1073741824",
    "--entrypoint",
    "sh",
    "--",
    "alpine:3",
    "-c",
    "echo $X",
  ]);
  assert.ok(!args.some((a) => a.includes("secret-value")));
});

Deno.test("engineCreateArgs() keeps the image entrypoint when there is no command", () => {
  const args = engineCreateArgs(
    {
      podName: "p",
      containerName: "c",
      image: "img",
      command: [],
      args: ["--flag"],
      env: [],
      workingDir: "",
      mounts: [],
      scratchDir: "/s",
      logFile: "/l",
    },
    "n",
    { envFile: "/s/env" },
  );
  assert.deepEqual(args.slice(-3), ["--", "img", "--flag"]);
  assert.ok(!args.includes("--entrypoint"));
});

Deno.test("engineEnv() writes values literally; line breaks go through the client's env", () => {
  assert.deepEqual(engineEnv([["A", ' x = "y" '], ["B", ""], ["M", "l1\nl2"]]), {
    fileText: 'A= x = "y" \nB=\n',
    inherited: { M: "l1\nl2" },
  });
  assert.throws(
    () => engineEnv([["DOCKER_HOST", "unix:///x\nsecret-line2"]]),
    (error: unknown) =>
      error instanceof RangeError && /"DOCKER_HOST".*line break/.test(error.message) &&
      !error.message.includes("secret-line2"),
  );
  assert.throws(() => engineEnv([["A B", "x"]]), RangeError);
});

Deno.test("engineCreateArgs() passes inherited env by name only", () => {
  const args = engineCreateArgs(
    {
      podName: "p",
      containerName: "c",
      image: "img",
      command: ["true"],
      args: [],
      env: [["M", "l1\nl2"]],
      workingDir: "",
      mounts: [],
      scratchDir: "/s",
      logFile: "/l",
    },
    "n",
    { envFile: "/s/env", inheritedEnv: ["M"] },
  );
  assert.deepEqual(args.slice(args.indexOf("--env-file"), args.indexOf("--env-file") + 4), [
    "--env-file",
    "/s/env",
    "--env",
    "M",
  ]);
});

Deno.test("containerLimits() reads Kubernetes quantities", () => {
  assert.deepEqual(containerLimits({ cpu: "500m", memory: "512Mi" }), {
    cpus: 0.5,
    memoryBytes: 512 * 2 ** 20,
  });
  assert.deepEqual(containerLimits({ cpu: "2", memory: "1G" }), { cpus: 2, memoryBytes: 1e9 });
  assert.deepEqual(containerLimits({ memory: "1.5e3" }), { memoryBytes: 1500 });
  assert.deepEqual(containerLimits({ cpu: "lots" }), {});
  assert.deepEqual(containerLimits(undefined), {});
});
