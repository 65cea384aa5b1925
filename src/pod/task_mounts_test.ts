import { assertEquals } from "./testdata/assert.ts";
import { dataPath, normalizePath, parentDir, taskMounts } from "./task_mounts.ts";

const paths = (mounts: { mountPath: string }[]) => mounts.map((m) => m.mountPath);

Deno.test("normalizePath() and parentDir() resolve paths lexically", () => {
  assertEquals(normalizePath("/a//b/./c/../d/"), "/a/b/d");
  assertEquals(normalizePath("/../.."), "/");
  assertEquals(parentDir("/a/b"), "/a");
  assertEquals(parentDir("/a"), "/");
});

Deno.test("taskMounts() mounts each directory the task uses, folding nested ones", () => {
  const mounts = taskMounts({
    volumes: ["/vol", "/vol/inner", "/shared/"],
    inputs: [
      { url: "s3://b/k", path: "/data/in/reads.fq" },
      { url: "s3://b/d", path: "/data/in/ref", type: "DIRECTORY" },
      { content: "x", path: "/config/app.conf", type: "FILE" },
    ],
    outputs: [
      { url: "s3://b/o", path: "/data/out/result.txt" },
      { url: "s3://b/o/", path: "/results", type: "DIRECTORY" },
      { url: "s3://b/w/", path: "/work/out/*/part-*.csv", path_prefix: "/work/out/" },
    ],
    executors: [{
      image: "x",
      command: ["x"],
      stdin: "/stdin/in.txt",
      stdout: "/logs/a/stdout",
      stderr: "/logs/stderr",
      workdir: "/not/mounted",
    }],
  });
  assertEquals(paths(mounts.directories), [
    "/config",
    "/data/in",
    "/data/out",
    "/logs",
    "/results",
    "/shared",
    "/stdin",
    "/vol",
    "/work/out",
  ]);
  assertEquals(mounts.files, []);
  const subPaths = mounts.directories.map((m) => m.subPath);
  assertEquals(new Set(subPaths).size, subPaths.length, "subPaths must be distinct");
  assertEquals(mounts.directories[0], { mountPath: "/config", subPath: "fs/config" });
});

Deno.test("taskMounts() folds a child into an ancestor given later", () => {
  const mounts = taskMounts({
    inputs: [{ url: "s3://b/k", path: "/a/b/c/file" }],
    outputs: [{ url: "s3://b/k", path: "/a", type: "DIRECTORY" }],
    executors: [{ image: "x", command: ["x"], stdout: "/a/b/out" }],
  });
  assertEquals(paths(mounts.directories), ["/a"]);
});

Deno.test("taskMounts() never mounts / and mounts a file directly under / by itself", () => {
  const mounts = taskMounts({
    volumes: ["/"],
    inputs: [{ url: "s3://b/k", path: "/input.txt" }, { url: "s3://b/p", path: "/etc/app.conf" }],
    outputs: [{ url: "s3://b/o", path: "/output.txt" }],
    executors: [{ image: "x", command: ["x"], stdout: "/stdout.txt", stderr: "/d/stderr.txt" }],
  });
  assertEquals(paths(mounts.directories), ["/d"]);
  assertEquals(paths(mounts.files), ["/etc/app.conf", "/input.txt", "/output.txt", "/stdout.txt"]);
  assertEquals(mounts.files[1], { mountPath: "/input.txt", subPath: "fs/input.txt" });
  assertEquals(dataPath("/input.txt"), "/planetary/data/fs/input.txt");
});

Deno.test("taskMounts() drops a file mount inside a mounted directory", () => {
  const mounts = taskMounts({
    volumes: ["/etc"],
    inputs: [{ url: "s3://b/k", path: "/etc/conf.d/../x.conf" }],
    executors: [{ image: "x", command: ["x"] }],
  });
  assertEquals(mounts.files, []);
  assertEquals(paths(mounts.directories), ["/etc"]);
});
