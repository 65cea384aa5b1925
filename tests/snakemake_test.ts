/**
 * Snakemake 9 with snakemake-executor-plugin-tes against a real `planetary serve` (local
 * backend, host runtime): a three-rule workflow (tests/workflow_clients/snakemake/Snakefile)
 * runs end to end. The clients are installed by tests/workflow_clients/install.sh.
 *
 * The plugin implies no shared file system, so Snakemake moves files through its `fs` storage
 * plugin: the storage prefix lies in a `--shared-dir`, which every task sees at the same path.
 * The jobs run `python -m snakemake` from the venv (first on the server's PATH). Two plugin
 * bugs are worked around by tests/workflow_clients/snakemake/run_snakemake.py, on the client.
 */
import assert from "node:assert/strict";
import { requireComponent, which } from "./_harness/component.ts";
import { requireHostRuntime } from "./_harness/host_runtime.ts";
import {
  runClient,
  SNAKEMAKE_VENV,
  startWorkflowServer,
  venvReady,
} from "./workflow_clients/clients.ts";

const DIR = new URL("./workflow_clients/snakemake/", import.meta.url).pathname;

const ENABLED = await requireHostRuntime() &&
  requireComponent(
    venvReady(SNAKEMAKE_VENV) && which("rsync") !== undefined,
    `Snakemake venv or rsync missing: run tests/workflow_clients/install.sh (${SNAKEMAKE_VENV})`,
  );

Deno.test({
  name: "Snakemake runs a three-rule workflow on planetary serve through a shared dir",
  ignore: !ENABLED,
  async fn() {
    const server = await startWorkflowServer(SNAKEMAKE_VENV);
    try {
      const store = `${server.shared}/store`;
      const workdir = `${server.root}/workdir`;
      await Deno.mkdir(`${store}/data`, { recursive: true });
      await Deno.mkdir(workdir);
      await Deno.copyFile(`${DIR}/Snakefile`, `${workdir}/Snakefile`);
      await Deno.writeTextFile(`${store}/data/a.txt`, "alpha\nbeta\n");
      await Deno.writeTextFile(`${store}/data/b.txt`, "gamma\n");

      const { code, output } = await runClient(`${SNAKEMAKE_VENV}/bin/python`, [
        `${DIR}/run_snakemake.py`,
        "--executor",
        "tes",
        "--tes-url",
        server.serve.url,
        "--jobs",
        "4",
        "--default-storage-provider",
        "fs",
        "--default-storage-prefix",
        store,
      ], workdir);
      assert.equal(code, 0, `snakemake failed:\n${output}\nserver log:\n${server.serve.log()}`);

      const read = (name: string) => Deno.readTextFile(`${store}/results/${name}`);
      assert.equal(await read("a.upper.txt"), "ALPHA\nBETA\n");
      assert.equal(await read("b.count.txt"), "1\n");
      assert.equal(await read("summary.txt"), "ALPHA\nBETA\nGAMMA\n2\n1\n");

      // Each job ran as a TES task: two rules × two samples, plus the aggregate.
      const tasks = await server.serve.client.listTasks({ view: "BASIC" });
      const rules = tasks.tasks.map((task) => task.name ?? "").sort();
      assert.equal(rules.length, 5, JSON.stringify(rules));
      assert.ok(tasks.tasks.every((task) => task.state === "COMPLETE"), JSON.stringify(tasks));
    } finally {
      await server.close();
    }
  },
});
