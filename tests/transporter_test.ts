/**
 * Integration suite: runs `transporter/main.ts` as a subprocess, with exactly
 * `TRANSPORTER_PERMISSIONS`, a real spec file, a temp dir as the state dir, `file://` storage
 * in an allow-listed temp dir, and `http://` inputs from a loopback `Deno.serve` server.
 */
import assert from "node:assert/strict";
import { REPORT_PREFIX, type TransferReport, type TransferSpec } from "../src/pod/layout.ts";
import { TRANSPORTER_PERMISSIONS, TRANSPORTER_V8_FLAGS } from "../transporter/main.ts";

const MAIN = new URL("../transporter/main.ts", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;

interface Sandbox {
  root: string;
  /** Allow-listed "remote" storage reached through file:// URLs. */
  remote: string;
  /** The pod's filesystem. */
  pod: string;
  state: string;
  terminationLog: string;
  http: string;
  httpHits: Map<string, number>;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Largest VmHWM of the child seen from outside while it ran (KiB; 0 if never read). */
  vmHwmKiB: number;
}

const BIG_SIZE = 200 * 1024 * 1024;
const MIB = new Uint8Array(1024 * 1024).fill(0x7a);

async function withSandbox(body: (sandbox: Sandbox) => Promise<void>): Promise<void> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "transporter-test-" }));
  const sandbox: Sandbox = {
    root,
    remote: `${root}/remote`,
    pod: `${root}/pod`,
    state: `${root}/state`,
    terminationLog: `${root}/termination-log`,
    http: "",
    httpHits: new Map(),
  };
  for (const dir of [sandbox.remote, sandbox.pod, sandbox.state]) await Deno.mkdir(dir);
  const stalled: ReadableStreamDefaultController<Uint8Array>[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    sandbox.httpHits.set(path, (sandbox.httpHits.get(path) ?? 0) + 1);
    if (path === "/hello.txt") return new Response("hello over http\n");
    if (path === "/stall.bin") {
      // Headers and a first chunk, then nothing more: a server that stopped sending.
      return new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(MIB.subarray(0, 1000));
            stalled.push(controller);
          },
        }),
        { headers: { "content-length": String(MIB.length) } },
      );
    }
    if (path === "/big.bin") {
      let sent = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent < BIG_SIZE) {
              controller.enqueue(MIB);
              sent += MIB.length;
            } else controller.close();
          },
        }),
        { headers: { "content-length": String(BIG_SIZE) } },
      );
    }
    return new Response("not found", { status: 404 });
  });
  sandbox.http = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  try {
    await body(sandbox);
  } finally {
    for (const controller of stalled) controller.error(new Error("test over"));
    await server.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

async function runTransporter(
  sandbox: Sandbox,
  mode: "inputs" | "outputs",
  spec: TransferSpec,
  env: Record<string, string> = {},
): Promise<Run> {
  const specPath = `${sandbox.root}/spec-${mode}.json`;
  await Deno.writeTextFile(specPath, JSON.stringify(spec));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...TRANSPORTER_V8_FLAGS, ...TRANSPORTER_PERMISSIONS, MAIN, mode, specPath],
    cwd: REPO,
    env: {
      PLANETARY_STATE_DIR: sandbox.state,
      PLANETARY_TERMINATION_LOG: sandbox.terminationLog,
      PLANETARY_FILE_ALLOW_LIST: sandbox.remote,
      NO_COLOR: "1",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Watch the child's VmHWM from outside (the child itself may not read /proc under its
  // permissions). VmHWM only grows, so the last value read before it exits is a lower bound
  // of its peak that a whole-file buffer would blow through.
  let vmHwmKiB = 0;
  let done = false;
  const watcher = (async () => {
    while (!done) {
      try {
        const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
        const match = /VmHWM:\s+(\d+) kB/.exec(status);
        if (match) vmHwmKiB = Math.max(vmHwmKiB, Number(match[1]));
      } catch {
        // exited
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  const output = await child.output();
  done = true;
  await watcher;
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    vmHwmKiB,
  };
}

function spec(partial: Partial<TransferSpec>): TransferSpec {
  return {
    version: 1,
    taskId: "task-1",
    inputs: [],
    outputs: [],
    executors: [],
    tailBytes: 1024,
    ...partial,
  };
}

function parseReport(stdout: string): TransferReport {
  const lines = stdout.split("\n").filter((line) => line !== "");
  assert.equal(lines.length, 1, `exactly one stdout line, got: ${stdout}`);
  assert.ok(lines[0]!.startsWith(REPORT_PREFIX));
  return JSON.parse(lines[0]!.slice(REPORT_PREFIX.length)) as TransferReport;
}

function peakRssKiB(stderr: string): number {
  const match = /peak RSS \(sampled every 20 ms\): (\d+) kB/.exec(stderr);
  assert.ok(match, `VmHWM reported on stderr: ${stderr}`);
  return Number(match[1]);
}

async function readTermination(sandbox: Sandbox): Promise<string> {
  return await Deno.readTextFile(sandbox.terminationLog);
}

Deno.test("TRANSPORTER_PERMISSIONS grants no run permission and no -A", () => {
  assert.deepEqual(TRANSPORTER_PERMISSIONS, [
    "--allow-read",
    "--allow-write",
    "--allow-net",
    "--allow-env",
  ]);
});

Deno.test("deno.json compile:transporter bakes in exactly TRANSPORTER_V8_FLAGS", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${REPO}/deno.json`)) as {
    tasks: Record<string, string>;
  };
  const words = config.tasks["compile:transporter"]?.split(/\s+/) ?? [];
  assert.deepEqual(words.filter((w) => w.startsWith("--v8-flags")), [...TRANSPORTER_V8_FLAGS]);
  assert.deepEqual(TRANSPORTER_V8_FLAGS, ["--v8-flags=--optimize-for-size"]);
});

Deno.test("transporter inputs downloads content, file, http and directory inputs", async () => {
  await withSandbox(async (s) => {
    await Deno.writeTextFile(`${s.remote}/one.txt`, "one from file\n");
    await Deno.mkdir(`${s.remote}/dir/sub`, { recursive: true });
    await Deno.writeTextFile(`${s.remote}/dir/a.txt`, "A");
    await Deno.writeTextFile(`${s.remote}/dir/sub/b.txt`, "BB");
    const content = "inline ✓ ".repeat(16 * 1024); // > 128 KiB of UTF-8
    const run = await runTransporter(
      s,
      "inputs",
      spec({
        inputs: [
          { path: `${s.pod}/inline/content.txt`, type: "FILE", content },
          { url: `file://${s.remote}/one.txt`, path: `${s.pod}/in/one.txt`, type: "FILE" },
          { url: `${s.http}/hello.txt?sig=abc`, path: `${s.pod}/in/deep/hello.txt`, type: "FILE" },
          { url: `file://${s.remote}/dir`, path: `${s.pod}/dir`, type: "DIRECTORY" },
        ],
      }),
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(await Deno.readTextFile(`${s.pod}/inline/content.txt`), content);
    assert.equal(await Deno.readTextFile(`${s.pod}/in/one.txt`), "one from file\n");
    assert.equal(await Deno.readTextFile(`${s.pod}/in/deep/hello.txt`), "hello over http\n");
    assert.equal(await Deno.readTextFile(`${s.pod}/dir/a.txt`), "A");
    assert.equal(await Deno.readTextFile(`${s.pod}/dir/sub/b.txt`), "BB");
    assert.match(run.stderr, /inputs: 5 files, \d+ bytes in [\d.]+ s \([\d.]+ MB\/s\)/);
    assert.equal(run.stdout, "");
    await assert.rejects(readTermination(s), Deno.errors.NotFound);
  });
});

Deno.test("transporter inputs fails on a missing input, naming its URL without secrets", async () => {
  await withSandbox(async (s) => {
    const run = await runTransporter(
      s,
      "inputs",
      spec({
        inputs: [
          { path: `${s.pod}/ok.txt`, type: "FILE", content: "fine" },
          { url: `${s.http}/missing.txt?sig=SECRET`, path: `${s.pod}/missing.txt`, type: "FILE" },
        ],
      }),
    );
    assert.equal(run.code, 1);
    const expectedUrl = `${s.http}/missing.txt`;
    assert.ok(run.stderr.includes(expectedUrl), run.stderr);
    assert.match(run.stderr, /input #1 .*not found/);
    assert.doesNotMatch(run.stderr, /SECRET/);
    const termination = await readTermination(s);
    assert.ok(termination.includes(expectedUrl), termination);
    assert.match(termination, /not found/);
    assert.doesNotMatch(termination, /SECRET/);
    assert.ok(new TextEncoder().encode(termination).length <= 4000);
  });
});

Deno.test("transporter inputs fails a stalled input after PLANETARY_STORAGE_STALL_SECONDS", async () => {
  await withSandbox(async (s) => {
    const run = await runTransporter(
      s,
      "inputs",
      spec({
        inputs: [{
          url: `${s.http}/stall.bin?sig=SECRET`,
          path: `${s.pod}/stall.bin`,
          type: "FILE",
        }],
      }),
      { PLANETARY_STORAGE_STALL_SECONDS: "1" },
    );
    assert.equal(run.code, 1, run.stderr);
    const reason = `stalled: no data for 1 s: ${s.http}/stall.bin`;
    assert.match(run.stderr, /input #0 /);
    assert.ok(run.stderr.includes(reason), run.stderr);
    const termination = await readTermination(s);
    assert.ok(termination.includes(reason), termination);
    assert.doesNotMatch(termination, /SECRET/);
  });
});

Deno.test("transporter inputs refuses a DIRECTORY input over http", async () => {
  await withSandbox(async (s) => {
    const run = await runTransporter(
      s,
      "inputs",
      spec({ inputs: [{ url: `${s.http}/dir/`, path: `${s.pod}/d`, type: "DIRECTORY" }] }),
    );
    assert.equal(run.code, 1);
    assert.match(await readTermination(s), /listing a directory over http\(s\) is not supported/);
  });
});

Deno.test("transporter inputs refuses file URLs outside the allow-list", async () => {
  await withSandbox(async (s) => {
    await Deno.writeTextFile(`${s.root}/private.txt`, "private");
    const run = await runTransporter(
      s,
      "inputs",
      spec({
        inputs: [{ url: `file://${s.remote}/../private.txt`, path: `${s.pod}/p`, type: "FILE" }],
      }),
    );
    assert.equal(run.code, 1);
    assert.match(run.stderr, /permission denied/);
    await assert.rejects(Deno.stat(`${s.pod}/p`), Deno.errors.NotFound);
  });
});

async function writeExecutorState(
  s: Sandbox,
  index: number,
  { exit, start, end, stdout, stderr }: {
    exit: number;
    start: Date;
    end: Date;
    stdout: string;
    stderr: string;
  },
): Promise<void> {
  const base = `${s.state}/exec-${index}`;
  await Deno.writeTextFile(`${base}.start`, "");
  await Deno.writeTextFile(`${base}.stdout`, stdout);
  await Deno.writeTextFile(`${base}.stderr`, stderr);
  await Deno.writeTextFile(`${base}.exit`, `${exit}\n`);
  await Deno.utime(`${base}.start`, start, start);
  await Deno.utime(`${base}.exit`, end, end);
}

Deno.test("transporter outputs reports executors and uploads FILE, DIRECTORY and wildcard outputs", async () => {
  await withSandbox(async (s) => {
    const t0 = new Date("2025-01-02T03:04:05.000Z");
    const t1 = new Date("2025-01-02T03:04:15.000Z");
    const t2 = new Date("2025-01-02T03:04:20.000Z");
    await writeExecutorState(s, 0, {
      exit: 0,
      start: t0,
      end: t1,
      stdout: "x".repeat(5000) + "end of stdout ✓",
      stderr: "",
    });
    await writeExecutorState(s, 1, {
      exit: 3,
      start: t1,
      end: t2,
      stdout: "",
      stderr: "boom\n",
    });
    // executor 2 never ran (skipped after the failure): no state files
    await Deno.writeTextFile(`${s.pod}/result.txt`, "result");
    await Deno.mkdir(`${s.pod}/outdir/nested`, { recursive: true });
    await Deno.writeTextFile(`${s.pod}/outdir/top.txt`, "top");
    await Deno.writeTextFile(`${s.pod}/outdir/nested/deep.txt`, "deep!");
    await Deno.mkdir(`${s.pod}/work/run-1`, { recursive: true });
    await Deno.mkdir(`${s.pod}/work/run-2`, { recursive: true });
    await Deno.writeTextFile(`${s.pod}/work/run-1/x.bam`, "bam1");
    await Deno.writeTextFile(`${s.pod}/work/run-2/x.bam`, "bam22");
    await Deno.writeTextFile(`${s.pod}/work/run-2/x.log`, "not matched");
    await Deno.writeTextFile(`${s.pod}/work/run-2/.x.bam`, "hidden, not matched");
    const run = await runTransporter(
      s,
      "outputs",
      spec({
        tailBytes: 20,
        executors: [
          { stdout: "/planetary/state/exec-0.stdout", stderr: "/planetary/state/exec-0.stderr" },
          { stdout: "/planetary/state/exec-1.stdout", stderr: "/planetary/state/exec-1.stderr" },
          { stdout: "/planetary/state/exec-2.stdout", stderr: "/planetary/state/exec-2.stderr" },
        ],
        outputs: [
          { url: `file://${s.remote}/out/result.txt`, path: `${s.pod}/result.txt`, type: "FILE" },
          { url: `file://${s.remote}/out/dir`, path: `${s.pod}/outdir`, type: "DIRECTORY" },
          {
            url: `file://${s.remote}/out/bams`,
            path: `${s.pod}/work/run-*/*.bam`,
            path_prefix: `${s.pod}/work`,
            type: "FILE",
          },
        ],
      }),
    );
    assert.equal(run.code, 0, run.stderr);
    const report = parseReport(run.stdout);
    assert.equal(report.version, 1);
    assert.equal(report.error, undefined);
    assert.deepEqual(report.executors, [
      {
        exit_code: 0,
        start_time: "2025-01-02T03:04:05.000Z",
        end_time: "2025-01-02T03:04:15.000Z",
        stdout: "xxx" + "end of stdout ✓", // 20 bytes: 14 ASCII + ✓ (3 bytes) + 3
        stderr: "",
      },
      {
        exit_code: 3,
        start_time: "2025-01-02T03:04:15.000Z",
        end_time: "2025-01-02T03:04:20.000Z",
        stdout: "",
        stderr: "boom\n",
      },
      { stdout: "", stderr: "" },
    ]);
    const out = `file://${s.remote}/out`;
    assert.deepEqual(report.outputs, [
      { url: `${out}/result.txt`, path: `${s.pod}/result.txt`, size_bytes: "6" },
      {
        url: `${out}/dir/nested/deep.txt`,
        path: `${s.pod}/outdir/nested/deep.txt`,
        size_bytes: "5",
      },
      { url: `${out}/dir/top.txt`, path: `${s.pod}/outdir/top.txt`, size_bytes: "3" },
      { url: `${out}/bams/run-1/x.bam`, path: `${s.pod}/work/run-1/x.bam`, size_bytes: "4" },
      { url: `${out}/bams/run-2/x.bam`, path: `${s.pod}/work/run-2/x.bam`, size_bytes: "5" },
    ]);
    assert.equal(await Deno.readTextFile(`${s.remote}/out/result.txt`), "result");
    assert.equal(await Deno.readTextFile(`${s.remote}/out/dir/nested/deep.txt`), "deep!");
    assert.equal(await Deno.readTextFile(`${s.remote}/out/bams/run-2/x.bam`), "bam22");
    await assert.rejects(Deno.stat(`${s.remote}/out/bams/run-2/x.log`), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(`${s.remote}/out/bams/run-2/.x.bam`), Deno.errors.NotFound);
  });
});

Deno.test("transporter outputs uploads the others and exits 1 when an upload fails", async () => {
  await withSandbox(async (s) => {
    await writeExecutorState(s, 0, {
      exit: 1,
      start: new Date(),
      end: new Date(),
      stdout: "",
      stderr: "executor failed\n",
    });
    await Deno.writeTextFile(`${s.pod}/partial.txt`, "partial");
    const run = await runTransporter(
      s,
      "outputs",
      spec({
        executors: [{ stdout: `${s.state}/exec-0.stdout`, stderr: `${s.state}/exec-0.stderr` }],
        outputs: [
          { url: `file://${s.remote}/never.txt`, path: `${s.pod}/never.txt`, type: "FILE" },
          { url: `file://${s.remote}/partial.txt`, path: `${s.pod}/partial.txt`, type: "FILE" },
          { url: `${s.http}/upload.txt?sig=SECRET`, path: `${s.pod}/partial.txt`, type: "FILE" },
        ],
      }),
    );
    assert.equal(run.code, 1);
    const report = parseReport(run.stdout);
    assert.equal(report.executors[0]?.exit_code, 1);
    assert.equal(report.executors[0]?.stderr, "executor failed\n");
    assert.deepEqual(report.outputs, [
      { url: `file://${s.remote}/partial.txt`, path: `${s.pod}/partial.txt`, size_bytes: "7" },
    ]);
    assert.equal(await Deno.readTextFile(`${s.remote}/partial.txt`), "partial");
    // A missing output is a warning, not the failure; the refused upload is.
    assert.deepEqual(report.warnings, [
      `output #0 (FILE ${s.pod}/never.txt): not found after the executors finished; ` +
      "nothing uploaded",
    ]);
    assert.doesNotMatch(report.error ?? "", /never\.txt/);
    assert.match(report.error ?? "", /output #2 .*upload over http\(s\) is not supported/);
    assert.doesNotMatch(run.stdout + run.stderr, /SECRET/);
    assert.match(await readTermination(s), /output #2/);
  });
});

Deno.test("transporter outputs exits 0 and reports warnings for outputs that do not exist", async () => {
  await withSandbox(async (s) => {
    await writeExecutorState(s, 0, {
      exit: 0,
      start: new Date(),
      end: new Date(),
      stdout: "done\n",
      stderr: "",
    });
    await Deno.mkdir(`${s.pod}/work`);
    await Deno.writeTextFile(`${s.pod}/work/out.txt`, "out");
    const run = await runTransporter(
      s,
      "outputs",
      spec({
        executors: [{ stdout: `${s.state}/exec-0.stdout`, stderr: `${s.state}/exec-0.stderr` }],
        outputs: [
          { url: `file://${s.remote}/out.txt`, path: `${s.pod}/work/out.txt`, type: "FILE" },
          { url: `file://${s.remote}/opt.txt`, path: `${s.pod}/work/opt.txt`, type: "FILE" },
          {
            url: `file://${s.remote}/glob`,
            path: `${s.pod}/work/*.vcf`,
            path_prefix: `${s.pod}/work`,
            type: "FILE",
          },
        ],
      }),
    );
    assert.equal(run.code, 0, run.stderr);
    const report = parseReport(run.stdout);
    assert.equal(report.error, undefined);
    assert.deepEqual(report.outputs, [
      { url: `file://${s.remote}/out.txt`, path: `${s.pod}/work/out.txt`, size_bytes: "3" },
    ]);
    assert.deepEqual(report.warnings, [
      `output #1 (FILE ${s.pod}/work/opt.txt): not found after the executors finished; ` +
      "nothing uploaded",
      `output #2 (FILE ${s.pod}/work/*.vcf): no path matches the pattern after the executors ` +
      "finished; nothing uploaded",
    ]);
    assert.match(run.stderr, /output #1 .*opt\.txt.*nothing uploaded/);
    await assert.rejects(readTermination(s), Deno.errors.NotFound);
  });
});

Deno.test("transporter outputs prints a report line even for an unreadable spec", async () => {
  await withSandbox(async (s) => {
    const specPath = `${s.root}/broken.json`;
    await Deno.writeTextFile(specPath, "{ not json");
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...TRANSPORTER_V8_FLAGS, ...TRANSPORTER_PERMISSIONS, MAIN, "outputs", specPath],
      env: { PLANETARY_TERMINATION_LOG: s.terminationLog, PLANETARY_STATE_DIR: s.state },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 1);
    const report = parseReport(new TextDecoder().decode(output.stdout));
    assert.deepEqual(report.outputs, []);
    assert.match(report.error ?? "", /uploading outputs failed/);
  });
});

Deno.test("transporter streams 200 MB in and out with low peak memory", async () => {
  await withSandbox(async (s) => {
    const big = await Deno.open(`${s.remote}/big.bin`, { write: true, create: true });
    await big.truncate(BIG_SIZE);
    big.close();
    const inputs = await runTransporter(
      s,
      "inputs",
      spec({
        inputs: [
          { url: `file://${s.remote}/big.bin`, path: `${s.pod}/big.bin`, type: "FILE" },
          { url: `${s.http}/big.bin`, path: `${s.pod}/big-http.bin`, type: "FILE" },
        ],
      }),
      { PLANETARY_REPORT_RSS: "1" },
    );
    assert.equal(inputs.code, 0, inputs.stderr);
    assert.equal((await Deno.stat(`${s.pod}/big.bin`)).size, BIG_SIZE);
    assert.equal((await Deno.stat(`${s.pod}/big-http.bin`)).size, BIG_SIZE);
    const inputsPeak = peakRssKiB(inputs.stderr);

    const outputs = await runTransporter(
      s,
      "outputs",
      spec({
        outputs: [
          { url: `file://${s.remote}/back.bin`, path: `${s.pod}/big.bin`, type: "FILE" },
        ],
      }),
      { PLANETARY_REPORT_RSS: "1" },
    );
    assert.equal(outputs.code, 0, outputs.stderr);
    assert.equal(parseReport(outputs.stdout).outputs[0]?.size_bytes, String(BIG_SIZE));
    assert.equal((await Deno.stat(`${s.remote}/back.bin`)).size, BIG_SIZE);
    const outputsPeak = peakRssKiB(outputs.stderr);
    console.error(
      `transporter peak RSS: inputs ${inputsPeak} kB sampled, ${inputs.vmHwmKiB} kB VmHWM; ` +
        `outputs ${outputsPeak} kB sampled, ${outputs.vmHwmKiB} kB VmHWM`,
    );
    // Holding one 200 MB file in memory would exceed this by far.
    const limitKiB = 150 * 1024;
    for (const [what, kib] of Object.entries({ inputsPeak, outputsPeak })) {
      assert.ok(kib > 0 && kib < limitKiB, `${what} ${kib} kB`);
    }
    assert.ok(inputs.vmHwmKiB > 0 && outputs.vmHwmKiB > 0, "VmHWM observed");
    assert.ok(inputs.vmHwmKiB < limitKiB, `inputs VmHWM ${inputs.vmHwmKiB} kB`);
    assert.ok(outputs.vmHwmKiB < limitKiB, `outputs VmHWM ${outputs.vmHwmKiB} kB`);
  });
});
