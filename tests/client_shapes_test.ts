/**
 * End-to-end suite: tasks shaped exactly as two real workflow engines build and send them,
 * against a real `planetary serve` (local backend, host runtime, embedded defaults), with
 * `file://` (Nextflow) and bare-path (Cromwell) storage in the server's allow-listed folder.
 *
 * The shapes come from the clients' own source, read for this suite (nothing copied):
 * - Nextflow, nf-ga4gh `src/main/groovy/nextflow/ga4gh/tes/executor/TesTaskHandler.groovy`
 *   (`newTesTask()`, `inItem()`, `outItem()`, `getResources()`, `checkIfCompleted()`,
 *   `readExitStatus()`, `kill()`), sent by its swagger-codegen okhttp client
 *   `src/main/groovy/nextflow/ga4gh/tes/client/ApiClient.java` (`buildRequest()`,
 *   `processHeaderParams()`, `setUserAgent()`);
 * - Cromwell, `supportedBackends/tes/src/main/scala/cromwell/backend/impl/tes/TesTask.scala`
 *   (`commandScript`, `standardOutputs`, `handleGlobFile()`, `womOutputs`, `executors`,
 *   `resources`; the tags of `TesTask.makeTask()` as its TesTaskSpec checks them) and
 *   `TesAsyncBackendJobExecutionActor.scala` (`executeAsync()`, `pollStatusAsync()`,
 *   `tryAbort()`), serialized by spray-json (`TesResponseJsonFormatter.scala`: `None` fields
 *   left out, `None` map values written as `null`) and sent by akka-http.
 *
 * The scripts the tasks run stand in for Nextflow's `.command.run` and Cromwell's generated
 * `script`: they do the same file work (run the user command, write the exit code file, and
 * for Cromwell link glob matches into `glob-<hash>/` with a `.list`), much shorter.
 */
import assert from "node:assert/strict";
import { requireComponent } from "./_harness/component.ts";
import { hostRuntimeWorks } from "./_harness/host_runtime.ts";
import { type ServeHarness, startServe } from "./_harness/serve.ts";

const ENABLED = requireComponent(
  await hostRuntimeWorks(),
  "client shapes: the host runtime needs util-linux `unshare` and root or user namespaces",
);

/** Longest wait for one task to end (the 2-core CI machine runs many things at once). */
const TASK_DEADLINE_MS = 120_000;
const TERMINAL = ["COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"];

/** Headers every call of nf-ga4gh's generated client carries (ApiClient + TaskServiceApi). */
const NEXTFLOW_HEADERS = {
  "Accept": "application/json",
  // TaskServiceApi puts Content-Type in the header params of every call, GETs included.
  "Content-Type": "application/json",
  "User-Agent": "Swagger-Codegen/1.0.0/java",
};
/**
 * okhttp 2 `RequestBody.create(MediaType, String)` appends the charset it encodes with, so a
 * POST with a body goes out with this Content-Type.
 */
const NEXTFLOW_POST_CONTENT_TYPE = "application/json; charset=utf-8";
/** akka-http's client adds only its User-Agent to a bare `HttpRequest`. */
const CROMWELL_USER_AGENT = "akka-http/10.2.10";

interface Reply {
  status: number;
  body: unknown;
  text: string;
}

async function call(
  server: ServeHarness,
  method: "GET" | "POST",
  path: string,
  { headers = {}, body }: { headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, body: parsed, text };
}

function field(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null
    ? (value as Record<string, unknown>)[key]
    : undefined;
}

/** Polls `poll()` (one client call) until the task's state is in `states`. */
async function waitFor(
  what: string,
  states: readonly string[],
  poll: () => Promise<Reply>,
): Promise<Reply> {
  const deadline = Date.now() + TASK_DEADLINE_MS;
  let last: Reply | undefined;
  while (Date.now() < deadline) {
    last = await poll();
    assert.equal(last.status, 200, `polling ${what}: ${last.text}`);
    if (states.includes(String(field(last.body, "state")))) return last;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} did not reach ${states.join("|")}; last answer: ${last?.text}`);
}

function systemLogs(task: unknown): string[] {
  const logs = field(task, "logs");
  const first = Array.isArray(logs) ? logs[0] : undefined;
  const lines = field(first, "system_logs");
  return Array.isArray(lines) ? lines.map(String) : [];
}

async function readText(path: string): Promise<string> {
  return await Deno.readTextFile(path).catch((error) => {
    throw new Error(`expected the task to upload ${path}: ${error}`);
  });
}

/** Nextflow: one process with two glob outputs, an optional output that is never made. */
async function nextflowRun(server: ServeHarness): Promise<void> {
  // Nextflow's work dir: <workDir>/<2 hex>/<30 hex>, reached through its toUriString().
  const workDir = `${server.storageDir}/nf-work/3f/0a1b2c3d4e5f60718293a4b5c6d7e8`;
  await Deno.mkdir(workDir, { recursive: true });
  const workUrl = `file://${workDir}`;
  // The process script (.command.sh) and a stand-in for the wrapper Nextflow generates
  // (.command.run): runs the script in /work, keeps stdout/stderr in .command.out/.err and
  // writes the exit code to .exitcode, which Nextflow reads back from the work dir.
  await Deno.writeTextFile(
    `${workDir}/.command.sh`,
    "#!/bin/bash -ue\necho sample-1 > result_1.txt\necho sample-2 > result_2.txt\n" +
      "mkdir -p reports && echo summary > reports/summary.html\necho 'all done'\n",
  );
  await Deno.writeTextFile(
    `${workDir}/.command.run`,
    '#!/bin/bash\nNXF_CHDIR=/work\ncd "$NXF_CHDIR"\n' +
      "bash .command.sh > .command.out 2> .command.err\nstatus=$?\n" +
      'cat .command.out\necho "$status" > .exitcode\nexit "$status"\n',
  );
  const output = (name: string, type: "FILE" | "DIRECTORY") =>
    /[*?]/.test(name)
      // outItem(): a glob becomes path /work/<glob>, path_prefix /work, url = the work dir.
      ? { path: `/work/${name}`, path_prefix: "/work", url: workUrl, type }
      : { path: `/work/${name}`, url: `${workUrl}/${name}`, type };
  const body = {
    inputs: [
      // inItem(): url = realPath.toUriString(), path = /work/<name>, type from isDirectory().
      { url: `${workUrl}/.command.sh`, path: "/work/.command.sh", type: "FILE" },
      { url: `${workUrl}/.command.run`, path: "/work/.command.run", type: "FILE" },
    ],
    outputs: [
      // The control files, always FILE.
      output(".command.out", "FILE"),
      output(".command.err", "FILE"),
      output(".command.log", "FILE"),
      output(".exitcode", "FILE"),
      // The process outputs: `path "result_*.txt"` (a glob, sent as FILE),
      // `path "reports"` declared `type: 'dir'`, and `path "opt.txt", optional: true`
      // (TES 1.1 has no optional flag: Nextflow sends a plain FILE output).
      output("result_*.txt", "FILE"),
      output("reports", "DIRECTORY"),
      output("opt.txt", "FILE"),
    ],
    // getResources(): cpus, memory in GiB as a double (512 MB = 0.5); no disk given.
    resources: { cpu_cores: 1, ram_gb: 0.5 },
    name: "sayHello (1)",
    executors: [{
      command: [
        "bash",
        "-o",
        "pipefail",
        "-c",
        "bash /work/.command.run 2>&1 | tee /work/.command.log",
      ],
      image: "quay.io/nextflow/bash",
      workdir: "/work",
    }],
  };

  // Nextflow asks the unprefixed /service-info (DESIGN.md §3).
  const info = await call(server, "GET", "/service-info", { headers: NEXTFLOW_HEADERS });
  assert.equal(info.status, 200, info.text);

  // submit(): TaskServiceApi.createTask -> POST {endpoint}/v1/tasks.
  const created = await call(server, "POST", "/v1/tasks", {
    headers: { ...NEXTFLOW_HEADERS, "Content-Type": NEXTFLOW_POST_CONTENT_TYPE },
    body: JSON.stringify(body),
  });
  assert.equal(created.status, 200, `Nextflow's task was refused: ${created.text}`);
  const id = String(field(created.body, "id"));

  // checkIfRunning()/checkIfCompleted(): getTask(id, null), i.e. no view (MINIMAL).
  const minimal = await waitFor(
    `Nextflow task ${id}`,
    TERMINAL,
    () => call(server, "GET", `/v1/tasks/${id}`, { headers: NEXTFLOW_HEADERS }),
  );
  assert.deepEqual(Object.keys(minimal.body as object).sort(), ["id", "state"]);
  // readExitStatus(): getTask(id, 'FULL').
  const full = await call(server, "GET", `/v1/tasks/${id}?view=FULL`, {
    headers: NEXTFLOW_HEADERS,
  });
  assert.equal(full.status, 200, full.text);
  assert.equal(field(full.body, "state"), "COMPLETE", full.text);

  // Every glob match at url + (match minus path_prefix), as Nextflow then reads them.
  assert.equal(await readText(`${workDir}/result_1.txt`), "sample-1\n");
  assert.equal(await readText(`${workDir}/result_2.txt`), "sample-2\n");
  assert.equal(await readText(`${workDir}/reports/summary.html`), "summary\n");
  assert.equal(await readText(`${workDir}/.exitcode`), "0\n");
  assert.equal(await readText(`${workDir}/.command.out`), "all done\n");
  assert.equal(await readText(`${workDir}/.command.log`), "all done\n");
  // The optional output is absent: nothing uploaded, named in system_logs, still COMPLETE.
  await assert.rejects(Deno.stat(`${workDir}/opt.txt`), Deno.errors.NotFound);
  assert.deepEqual(
    systemLogs(full.body).filter((line) => line.includes("opt.txt")),
    ["output #6 (FILE /work/opt.txt): not found after the executors finished; nothing uploaded"],
  );
}

/** The Cromwell layout of one call: `<root>/<workflow>/<id>/call-<task>/execution`. */
interface CromwellCall {
  workflowId: string;
  /** Host folder of the call's execution directory (where Cromwell reads its outputs). */
  hostExecution: string;
  /** The same folder inside the task (`TesJobPaths.callExecutionDockerRoot`). */
  dockerExecution: string;
}

async function cromwellCall(server: ServeHarness, task: string): Promise<CromwellCall> {
  const workflowId = crypto.randomUUID();
  const rel = `wf_hello/${workflowId}/call-${task}/execution`;
  const hostExecution = `${server.storageDir}/cromwell-executions/${rel}`;
  await Deno.mkdir(hostExecution, { recursive: true });
  return { workflowId, hostExecution, dockerExecution: `/cromwell-executions/${rel}` };
}

/** The task body Cromwell's TesTask builds for `call`, running `command` in a WDL task. */
function cromwellTask(c: CromwellCall, task: string, globHash: string): Record<string, unknown> {
  const fqn = `wf_hello.${task}`;
  const glob = `glob-${globHash}`;
  // tesPaths.storageOutput(f): a bare absolute path in the host execution dir;
  // containerOutput(containerWorkDir, f): the same name in the docker execution dir.
  const out = (name: string, f: string, type: "FILE" | "DIRECTORY") => ({
    name,
    description: `${fqn}.${name}`,
    url: `${c.hostExecution}/${f}`,
    path: `${c.dockerExecution}/${f}`,
    type,
  });
  return {
    name: fqn,
    description: `${fqn}:NA:1`,
    // inputs: the call's files, then commandScript (url = tesPaths.script, content None).
    inputs: [{
      name: "commandScript",
      description: `${fqn}.commandScript`,
      url: `${c.hostExecution}/script`,
      path: `${c.dockerExecution}/script`,
      type: "FILE",
    }],
    // OutputMode.GRANULAR: standardOutputs (rc, stdout, stderr), commandScriptOut, then the
    // WDL outputs: `File greeting = "hello.txt"` and `Array[File] parts = glob("part-*.txt")`
    // (handleGlobFile(): the glob-<hash>/ DIRECTORY and its .list FILE).
    outputs: [
      out("rc", "rc", "FILE"),
      out("stdout", "stdout", "FILE"),
      out("stderr", "stderr", "FILE"),
      {
        name: "commandScript",
        description: `${fqn}.commandScript`,
        url: `${c.hostExecution}/script`,
        path: `${c.dockerExecution}/script`,
        type: "FILE",
      },
      { ...out(`${fqn}.output.0`, "hello.txt", "FILE"), description: `${fqn}.output.0` },
      out("globDir.1", `${glob}/`, "DIRECTORY"),
      out("globList.1", `${glob}.list`, "FILE"),
    ],
    resources: { cpu_cores: 1, ram_gb: 0.5, disk_gb: 1.0, preemptible: false },
    // executors: jobShell + the script path; no workdir (dockerWorkingDir unset).
    executors: [{
      image: "ubuntu:latest",
      command: ["/bin/bash", `${c.dockerExecution}/script`],
      stdout: `${c.dockerExecution}/stdout`,
      stderr: `${c.dockerExecution}/stderr`,
    }],
    // TesTask.makeTask(): workflow ids, parent_workflow_id None -> null for a root workflow.
    tags: {
      workflow_id: c.workflowId,
      root_workflow_id: c.workflowId,
      parent_workflow_id: null,
    },
  };
}

/** A stand-in for the script Cromwell generates: the command, then globs, then `rc`. */
function cromwellScript(c: CromwellCall, command: string, globHash: string): string {
  const glob = `glob-${globHash}`;
  return [
    "#!/bin/bash",
    `cd ${c.dockerExecution}`,
    "(",
    command,
    ")",
    "rc=$?",
    `mkdir -p ${glob}`,
    `for f in part-*.txt; do [ -e "$f" ] && cp "$f" ${glob}/; done`,
    `ls -1 ${glob} > ${glob}.list`,
    'echo "$rc" > rc.tmp && mv rc.tmp rc',
    "",
  ].join("\n");
}

async function cromwellPost(server: ServeHarness, body: unknown): Promise<string> {
  // executeAsync(): POST to the configured endpoint (a full .../v1/tasks URL), spray-json
  // entity: Content-Type application/json.
  const created = await call(server, "POST", "/v1/tasks", {
    headers: { "Content-Type": "application/json", "User-Agent": CROMWELL_USER_AGENT },
    body: JSON.stringify(body),
  });
  assert.equal(created.status, 200, `Cromwell's task was refused: ${created.text}`);
  return String(field(created.body, "id"));
}

function cromwellPoll(server: ServeHarness, id: string): () => Promise<Reply> {
  // pollStatusAsync(): GET {endpoint}/{id}?view=MINIMAL, no Content-Type.
  return () =>
    call(server, "GET", `/v1/tasks/${id}?view=MINIMAL`, {
      headers: { "User-Agent": CROMWELL_USER_AGENT },
    });
}

async function cromwellRun(server: ServeHarness): Promise<void> {
  const c = await cromwellCall(server, "hello");
  const hash = "9b3e2f0c5a7d41e6b8c0d2f4a6e8b0c2";
  await Deno.writeTextFile(
    `${c.hostExecution}/script`,
    cromwellScript(
      c,
      "echo 'hello, cromwell' > hello.txt\necho one > part-1.txt\necho two > part-2.txt\n" +
        "echo done; echo warn >&2",
      hash,
    ),
  );
  const id = await cromwellPost(server, cromwellTask(c, "hello", hash));
  await waitFor(`Cromwell task ${id}`, TERMINAL, cromwellPoll(server, id));
  const full = await call(server, "GET", `/v1/tasks/${id}?view=FULL`, {
    headers: { "User-Agent": CROMWELL_USER_AGENT },
  });
  assert.equal(full.status, 200, full.text);
  assert.equal(field(full.body, "state"), "COMPLETE", full.text);
  // Accepted with its null; TES tags are strings, so the null is stored and returned as ""
  // (the rule of src/tes/validate.ts), which a `tag_key=parent_workflow_id` filter matches.
  assert.deepEqual(field(full.body, "tags"), {
    workflow_id: c.workflowId,
    root_workflow_id: c.workflowId,
    parent_workflow_id: "",
  });
  // Cromwell reads these from the host execution dir after the task.
  assert.equal(await readText(`${c.hostExecution}/rc`), "0\n");
  assert.equal(await readText(`${c.hostExecution}/stdout`), "done\n");
  assert.equal(await readText(`${c.hostExecution}/stderr`), "warn\n");
  assert.equal(await readText(`${c.hostExecution}/hello.txt`), "hello, cromwell\n");
  assert.equal(await readText(`${c.hostExecution}/glob-${hash}/part-1.txt`), "one\n");
  assert.equal(await readText(`${c.hostExecution}/glob-${hash}/part-2.txt`), "two\n");
  assert.equal(await readText(`${c.hostExecution}/glob-${hash}.list`), "part-1.txt\npart-2.txt\n");
}

async function cromwellAbort(server: ServeHarness): Promise<void> {
  const c = await cromwellCall(server, "sleepy");
  const hash = "0c2d4e6f8a0b1c3d5e7f9a1b3c5d7e9f";
  await Deno.writeTextFile(
    `${c.hostExecution}/script`,
    cromwellScript(c, "sleep 600", hash),
  );
  const id = await cromwellPost(server, cromwellTask(c, "sleepy", hash));
  await waitFor(`Cromwell task ${id}`, ["RUNNING"], cromwellPoll(server, id));
  // tryAbort(): POST {endpoint}/{id}:cancel as a bare HttpRequest: no entity, so no
  // Content-Type and an empty body.
  const canceled = await call(server, "POST", `/v1/tasks/${id}:cancel`, {
    headers: { "User-Agent": CROMWELL_USER_AGENT },
  });
  assert.equal(canceled.status, 200, `Cromwell's abort was refused: ${canceled.text}`);
  const end = await waitFor(`Cromwell task ${id}`, TERMINAL, cromwellPoll(server, id));
  assert.equal(field(end.body, "state"), "CANCELED", end.text);
}

Deno.test({
  name: "planetary serve runs Nextflow- and Cromwell-shaped tasks end to end",
  ignore: !ENABLED,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startServe({ maxTasks: 4 });
    let failed = false;
    try {
      const steps: [string, () => Promise<void>][] = [
        [
          "a Nextflow task (globs as FILE, an absent optional output) ends COMPLETE",
          () => nextflowRun(server),
        ],
        [
          "a Cromwell task (bare paths, null tags, glob dir) ends COMPLETE",
          () => cromwellRun(server),
        ],
        ["a Cromwell abort (POST :cancel, no body) ends CANCELED", () => cromwellAbort(server)],
      ];
      const results = await Promise.all(
        steps.map(([name, fn]) =>
          t.step({ name, fn, sanitizeOps: false, sanitizeResources: false, sanitizeExit: false })
        ),
      );
      failed = results.includes(false);
    } finally {
      await server.close();
      if (failed) console.error(`--- planetary serve log ---\n${server.log()}`);
    }
  },
});
