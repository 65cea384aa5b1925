/**
 * End-to-end suite of task execution against `planetary serve` on the local backend with the
 * host runtime: the real CLI as a subprocess (exactly `SERVE_PERMISSIONS`), tasks submitted over
 * HTTP, files exchanged through `file://` storage. The cases live in tests/_e2e_cases.ts so that
 * they can run against other backends too.
 *
 * One server runs the independent cases concurrently; the case that needs a single task slot
 * and each restart case get a server of their own, all at the same time.
 */
import { E2E_CASES, type E2eCase, runE2eSteps, serveE2eContext } from "./_e2e_cases.ts";
import { requireComponent } from "./_harness/component.ts";
import { prepareDataTemplate, type ServeHarness, startServe } from "./_harness/serve.ts";
import { hostRuntimeWorks } from "./_harness/host_runtime.ts";

const ENABLED = requireComponent(
  await hostRuntimeWorks(),
  "e2e: the host runtime needs util-linux `unshare` and root or user namespaces with overlayfs",
);

/** Longest time a quick task may take (the 2-core CI machine runs many at once). */
const TASK_DEADLINE_MS = 90_000;

/** Runs `cases` as concurrent steps against one server started with `start`. */
async function runGroup(
  t: Deno.TestContext,
  cases: readonly E2eCase[],
  start: () => Promise<ServeHarness>,
): Promise<void> {
  if (cases.length === 0) return;
  const server = await start();
  let failed = false;
  try {
    failed = !await runE2eSteps(t, cases, serveE2eContext(server, TASK_DEADLINE_MS));
  } finally {
    await server.close();
    if (failed) console.error(`--- planetary serve log ---\n${server.log()}`);
  }
}

Deno.test({
  name: "planetary serve (local backend, host runtime) runs TES tasks end to end",
  ignore: !ENABLED,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const plain = E2E_CASES.filter((c) => !c.needs);
    const oneSlot = E2E_CASES.filter((c) => c.needs?.maxTasks === 1 && !c.needs.restart);
    const restarts = E2E_CASES.filter((c) => c.needs?.restart);
    await using template = await prepareDataTemplate();
    const dataTemplate = template.path;
    await Promise.all([
      runGroup(t, plain, () => startServe({ maxTasks: 8, dataTemplate })),
      runGroup(t, oneSlot, () => startServe({ maxTasks: 1, dataTemplate })),
      ...restarts.map((c) => runGroup(t, [c], () => startServe({ dataTemplate }))),
    ]);
  },
});
