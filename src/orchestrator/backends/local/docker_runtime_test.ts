import assert from "node:assert/strict";
import { engineRunArgs } from "./docker_runtime.ts";

Deno.test("engineRunArgs() builds a docker run argv with mounts, env, workdir and user", () => {
  const args = engineRunArgs({
    podName: "task-1",
    containerName: "executor-0",
    image: "alpine:3",
    command: ["sh", "-c", "echo $X"],
    args: [],
    env: [["X", "a,b"]],
    workingDir: "/work",
    mounts: [
      { source: "/pods/a,b", target: "/data", readOnly: false, kind: "dir" },
      { source: "/pods/cm", target: "/spec", readOnly: true, kind: "dir" },
    ],
    scratchDir: "/pods/scratch",
    logFile: "/pods/log",
    runAsUser: 1000,
  }, "planetary-task-1-executor-0");
  assert.deepEqual(args, [
    "run",
    "--rm",
    "--name",
    "planetary-task-1-executor-0",
    "--hostname",
    "task-1",
    "--mount",
    'type=bind,"source=/pods/a,b",target=/data',
    "--mount",
    "type=bind,source=/pods/cm,target=/spec,readonly",
    "--env",
    "X=a,b",
    "--workdir",
    "/work",
    "--user",
    "1000",
    "--entrypoint",
    "sh",
    "--",
    "alpine:3",
    "-c",
    "echo $X",
  ]);
});

Deno.test("engineRunArgs() keeps the image entrypoint when there is no command", () => {
  const args = engineRunArgs({
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
  }, "n");
  assert.deepEqual(args.slice(-3), ["--", "img", "--flag"]);
  assert.ok(!args.includes("--entrypoint"));
});
