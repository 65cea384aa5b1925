/**
 * The request shapes of the GA4GH TES conformance suite (elixir-cloud-aai/openapi-test-runner,
 * its `create_task_inputs`, `create_task_outputs`, `create_task_streamable` and
 * `create_task_optional_filetype` jobs) against `planetary serve` on the embedded defaults: no
 * storage configuration at all. The suite submits `s3://` URLs and expects 200; the tasks then
 * fail at their transfer, with the reason in `system_logs`.
 *
 * The bodies are written here after the suite's job files (same fields and URL forms), not
 * copied from them.
 *
 * @module
 */
import { assert, assertEquals } from "./_api_assert.ts";
import { isolatedEnv } from "./_harness/isolated_env.ts";
import { startServe } from "./_harness/serve.ts";

const EXECUTORS = [{ image: "alpine", command: ["echo", "hello"] }];

/** name → request body, after the suite's four `create_task_*` jobs that use cloud URLs. */
const SHAPES: Record<string, Record<string, unknown>> = {
  inputs: {
    name: "CompTest",
    description: "CompTest",
    executors: EXECUTORS,
    inputs: [{ url: "s3://my-object-store/file-1", path: "/data/file1", type: "FILE" }],
  },
  outputs: {
    name: "CompTest",
    description: "CompTest",
    executors: EXECUTORS,
    outputs: [{ url: "s3://my-object-store/outfile-1", path: "/data/outfile", type: "FILE" }],
  },
  streamable: {
    name: "CompTest",
    description: "CompTest",
    executors: EXECUTORS,
    inputs: [{
      name: "access-file",
      description: "Access file resource via streaming",
      url: "s3://my-object-store/file1",
      path: "/data/file1",
      type: "FILE",
      streamable: true,
    }],
  },
  optional_filetype: {
    name: "CompTest",
    description: "CompTest",
    executors: EXECUTORS,
    inputs: [{ url: "s3://my-object-store/file-1", path: "/data/file1" }],
    outputs: [{ url: "s3://my-object-store/outfile-1", path: "/data/outfile" }],
  },
  gcs_input: {
    name: "CompTest",
    executors: EXECUTORS,
    inputs: [{ url: "gs://my-object-store/file-1", path: "/data/file1" }],
  },
};

Deno.test({
  name:
    "planetary serve accepts the conformance suite's s3:// and gs:// tasks with no storage setup",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const { env, home } = await isolatedEnv();
    const serve = await startServe({ env });
    try {
      const info = await (await fetch(`${serve.url}/v1/service-info`)).json();
      const storage: string[] = info.storage ?? [];
      assert(storage.some((s) => s.startsWith("s3://")), `service-info storage: ${storage}`);
      assert(storage.some((s) => s.startsWith("gs://")), `service-info storage: ${storage}`);

      const ids: Record<string, string> = {};
      for (const [name, body] of Object.entries(SHAPES)) {
        await t.step(`create_task_${name} is accepted`, async () => {
          const response = await fetch(`${serve.url}/v1/tasks`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
          });
          const text = await response.text();
          assertEquals(response.status, 200, text);
          ids[name] = JSON.parse(text).id;
        });
      }

      await t.step("a task whose transfer finds no credentials fails and says why", async () => {
        const id = ids.inputs;
        assert(id !== undefined);
        const task = await serve.client.waitForTask(id, { intervalMs: 200 });
        assertEquals(task.state, "SYSTEM_ERROR");
        const logs = (task.logs ?? []).flatMap((log) => log.system_logs ?? []).join("\n");
        assert(/credential/i.test(logs), `system_logs should name missing credentials: ${logs}`);
        assert(logs.includes("s3://my-object-store/file-1"), logs);
      });
    } finally {
      await serve.close();
      await Deno.remove(home, { recursive: true }).catch(() => {});
    }
  },
});
