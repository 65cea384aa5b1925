/**
 * Toil with toil-batch-system-tes against a real `planetary serve` (local backend, host
 * runtime): a three-job workflow (tests/workflow_clients/toil/workflow.py) whose file job store
 * lies in a `--shared-dir`, which every task sees at the same path, runs end to end. The
 * clients are installed by tests/workflow_clients/install.sh.
 *
 * Each Toil job becomes one TES task running `_toil_contained_executor` from the venv (first on
 * the server's PATH); the job store's files move through the shared dir only.
 */
import assert from "node:assert/strict";
import { requireComponent } from "./_harness/component.ts";
import { requireHostRuntime } from "./_harness/host_runtime.ts";
import {
  runClient,
  startWorkflowServer,
  TOIL_VENV,
  venvReady,
} from "./workflow_clients/clients.ts";

const WORKFLOW = new URL("./workflow_clients/toil/workflow.py", import.meta.url).pathname;

const ENABLED = await requireHostRuntime() &&
  requireComponent(
    venvReady(TOIL_VENV),
    `Toil venv missing: run tests/workflow_clients/install.sh (${TOIL_VENV})`,
  );

Deno.test({
  name: "Toil runs a three-job workflow on planetary serve with its job store in a shared dir",
  ignore: !ENABLED,
  async fn() {
    const server = await startWorkflowServer(TOIL_VENV);
    try {
      const out = `${server.root}/sum.txt`;
      const { code, output } = await runClient(`${TOIL_VENV}/bin/python`, [
        WORKFLOW,
        `${server.shared}/jobstore`,
        "--out",
        out,
        "--batchSystem",
        "tes",
        "--tesEndpoint",
        server.serve.url,
      ], server.root);
      assert.equal(code, 0, `toil failed:\n${output}\nserver log:\n${server.serve.log()}`);
      // 3² + 4², squared by two tasks and summed by a third, through the job store's files.
      assert.equal(await Deno.readTextFile(out), "25\n");

      const tasks = await server.serve.client.listTasks({ view: "BASIC" });
      const names = tasks.tasks.map((task) => (task.name ?? "").split(" ")[0]).sort();
      assert.deepEqual(names, ["'root'", "'square'", "'square'", "'total'"]);
      assert.ok(tasks.tasks.every((task) => task.state === "COMPLETE"), JSON.stringify(tasks));
    } finally {
      await server.close();
    }
  },
});
