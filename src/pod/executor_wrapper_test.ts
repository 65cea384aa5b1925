import { assert, assertEquals, assertFalse, assertMatch } from "./testdata/assert.ts";
import type { TesExecutor } from "../tes/model.ts";
import { buildTaskPod } from "./build_task_pod.ts";
import { WRAPPER_ENV_NAMES } from "./executor_wrapper.ts";
import { requireComponent } from "../../tests/_harness/component.ts";
import { runExecutorContainer, SHELLS } from "./testdata/run_executor.ts";

/** Values that a shell would interpret if they were ever spliced into script text. */
const HOSTILE = [
  "it's",
  'say "hi"',
  "`id`",
  "a\nb",
  "x; echo injected",
  "*",
  "ünïcødé ✓ 日本",
  "-n",
  "--",
  "-e",
  "$HOME",
  "${PATH}",
  "$(PLANETARY_EXECUTOR_INDEX)",
  "$$",
  "$",
  "\\",
  "",
  " lead and trail ",
  "tab\there",
  "&& || | > < >> 2>&1",
  "#comment",
  "~",
  "!event",
];

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function readText(path: string): string {
  return Deno.readTextFileSync(path);
}

/** Runs every executor of a task in order, like the kubelet runs init containers. */
async function runTask(
  shell: string[],
  executors: TesExecutor[],
  stateDir: string,
): Promise<void> {
  const { pod } = buildTaskPod({ id: "t", executors });
  const containers = pod.spec?.initContainers?.slice(1) ?? [];
  assertEquals(containers.length, executors.length);
  for (const container of containers) {
    const run = await runExecutorContainer(shell, container, stateDir);
    assertEquals(run.code, 0, `wrapper must exit 0; stderr: ${run.stderr}`);
  }
}

for (const shell of SHELLS) {
  const present = requireComponent(
    shell.argv !== undefined,
    `${shell.name} is not installed (${shell.install})`,
  );
  const argv = shell.argv ?? [];

  Deno.test({
    name: `WRAPPER_SCRIPT under ${shell.name} passes hostile argv, env and workdir literally`,
    ignore: !present,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "planetary-wrapper-" });
      try {
        const state = `${tmp}/state`;
        await Deno.mkdir(state);
        const canary = `${tmp}/canary`;
        const hostile = [
          ...HOSTILE,
          `$(touch ${canary})`,
          `\`touch ${canary}\``,
          `;touch ${canary}`,
        ];
        const weird = `dir 'q' "d" $(touch ${canary}) \`x\` ; * ✓\nnl -x`;
        const workdir = `${tmp}/work/${weird}`;
        const env: Record<string, string> = {};
        hostile.forEach((value, i) => env[`HOSTILE_${i}`] = value);
        env["PLANETARY_STDOUT"] = "/must/not/be/used";
        await runTask(argv, [
          {
            image: "x",
            command: ["/usr/bin/printf", "%s\\0", ...hostile],
            stdout: `${tmp}/out/${weird}/argv`,
            stderr: `${tmp}/out/${weird}/argv.err`,
          },
          {
            image: "x",
            command: ["/usr/bin/env", "-0"],
            env,
            stdout: `${tmp}/env`,
          },
          { image: "x", command: ["/bin/pwd"], workdir, stdout: `${tmp}/pwd` },
        ], state);

        const printed = readText(`${tmp}/out/${weird}/argv`).split("\0");
        assertEquals(printed.pop(), "");
        assertEquals(printed, hostile);
        assertEquals(readText(`${tmp}/out/${weird}/argv.err`), "");

        const seen = new Map<string, string>();
        for (const entry of readText(`${tmp}/env`).split("\0").filter((e) => e)) {
          const eq = entry.indexOf("=");
          seen.set(entry.slice(0, eq), entry.slice(eq + 1));
        }
        hostile.forEach((value, i) => assertEquals(seen.get(`HOSTILE_${i}`), value));
        for (const name of WRAPPER_ENV_NAMES) {
          assertFalse(seen.has(name), `${name} must not reach the program`);
        }

        assertEquals(readText(`${tmp}/pwd`), `${await Deno.realPath(workdir)}\n`);
        assertFalse(exists(canary), "a hostile value was executed");
        for (let i = 0; i < 3; i++) assertEquals(readText(`${state}/exec-${i}.exit`), "0\n");
        assertFalse(exists(`${state}/stop`));
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });

  Deno.test({
    name: `WRAPPER_SCRIPT under ${shell.name} keeps stdout and stderr apart and feeds stdin`,
    ignore: !present,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "planetary-wrapper-" });
      try {
        await Deno.writeTextFile(`${tmp}/in`, "line one\nline two\n");
        await runTask(argv, [
          {
            image: "x",
            command: ["/bin/sh", "-c", "echo out; echo err >&2; cat"],
            stdin: `${tmp}/in`,
          },
          {
            image: "x",
            command: ["/bin/sh", "-c", "echo out2; echo err2 >&2; cat"],
            stdout: `${tmp}/user/stdout`,
            stderr: `${tmp}/user/stderr`,
          },
        ], tmp);
        assertEquals(readText(`${tmp}/exec-0.stdout`), "out\nline one\nline two\n");
        assertEquals(readText(`${tmp}/exec-0.stderr`), "err\n");
        // Without stdin, the program reads /dev/null: `cat` ends at once.
        assertEquals(readText(`${tmp}/user/stdout`), "out2\n");
        assertEquals(readText(`${tmp}/user/stderr`), "err2\n");
        assertFalse(exists(`${tmp}/exec-1.stdout`));
        assert(exists(`${tmp}/exec-0.start`));
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });

  Deno.test({
    name: `WRAPPER_SCRIPT under ${shell.name} records exit codes 0, 1, 42, 126 and 127`,
    ignore: !present,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "planetary-wrapper-" });
      try {
        await Deno.writeTextFile(`${tmp}/not-executable`, "#!/bin/sh\n", { mode: 0o644 });
        await runTask(argv, [
          { image: "x", command: ["/bin/true"], ignore_error: true },
          { image: "x", command: ["/bin/false"], ignore_error: true },
          { image: "x", command: ["/bin/sh", "-c", "exit 42"], ignore_error: true },
          { image: "x", command: [`${tmp}/not-executable`], ignore_error: true },
          { image: "x", command: ["no-such-program-planetary", "-x"], ignore_error: true },
          // A shell builtin or function name runs the program on PATH, never the shell's own.
          { image: "x", command: ["finish", "0"], ignore_error: true },
          { image: "x", command: ["exit", "3"], ignore_error: true },
        ], tmp);
        const codes = [0, 1, 2, 3, 4, 5, 6].map((i) => readText(`${tmp}/exec-${i}.exit`));
        assertEquals(codes, ["0\n", "1\n", "42\n", "126\n", "127\n", "127\n", "127\n"]);
        assertMatch(readText(`${tmp}/exec-4.stderr`), /no-such-program-planetary/);
        assertFalse(exists(`${tmp}/stop`), "ignore_error must not stop later executors");
        for (const entry of Deno.readDirSync(tmp)) assertFalse(entry.name.endsWith(".tmp"));
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });

  Deno.test({
    name: `WRAPPER_SCRIPT under ${shell.name} skips later executors after a failure`,
    ignore: !present,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "planetary-wrapper-" });
      try {
        await runTask(argv, [
          { image: "x", command: ["/bin/sh", "-c", "exit 5"], ignore_error: true },
          { image: "x", command: ["/bin/sh", "-c", "exit 7"] },
          { image: "x", command: ["/bin/sh", "-c", `touch ${tmp}/ran`] },
        ], tmp);
        assertEquals(readText(`${tmp}/exec-0.exit`), "5\n");
        assertEquals(readText(`${tmp}/exec-1.exit`), "7\n");
        assert(exists(`${tmp}/stop`));
        assertFalse(exists(`${tmp}/exec-2.start`));
        assertFalse(exists(`${tmp}/exec-2.exit`));
        assertFalse(exists(`${tmp}/ran`));
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });

  Deno.test({
    name: `WRAPPER_SCRIPT under ${shell.name} runs nothing when the stop file exists`,
    ignore: !present,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "planetary-wrapper-" });
      try {
        await Deno.writeTextFile(`${tmp}/stop`, "");
        await runTask(argv, [{ image: "x", command: ["/bin/sh", "-c", `touch ${tmp}/ran`] }], tmp);
        assertFalse(exists(`${tmp}/ran`));
        assertFalse(exists(`${tmp}/exec-0.start`));
        assertFalse(exists(`${tmp}/exec-0.exit`));
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });

  Deno.test({
    name: `WRAPPER_SCRIPT under ${shell.name} records 1 when the workdir cannot be entered`,
    ignore: !present,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "planetary-wrapper-" });
      try {
        await Deno.writeTextFile(`${tmp}/afile`, "");
        await runTask(argv, [
          { image: "x", command: ["/bin/sh", "-c", `touch ${tmp}/ran`], workdir: `${tmp}/afile` },
          { image: "x", command: ["/bin/true"] },
        ], tmp);
        assertEquals(readText(`${tmp}/exec-0.exit`), "1\n");
        assertMatch(readText(`${tmp}/exec-0.stderr`), /cannot change to the working directory/);
        assertFalse(exists(`${tmp}/ran`));
        assert(exists(`${tmp}/stop`));
        assertFalse(exists(`${tmp}/exec-1.exit`));
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });

  Deno.test({
    name: `WRAPPER_SCRIPT under ${shell.name} records 1 when stdin is missing`,
    ignore: !present,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "planetary-wrapper-" });
      try {
        await runTask(argv, [
          { image: "x", command: ["/bin/cat"], stdin: `${tmp}/missing`, ignore_error: true },
        ], tmp);
        assertEquals(readText(`${tmp}/exec-0.exit`), "1\n");
        assertMatch(readText(`${tmp}/exec-0.stderr`), /cannot read the stdin file/);
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });
}
