/**
 * Hostile-task benchmark (issue 11): `planetary serve` (local backend) in a subprocess runs
 * tasks that used to stall the server — executor output of one 10 MB line on stdout and on
 * stderr, and a wildcard output of 20,000 files that all fail to upload — while this process
 * polls `GET /service-info` and `GET /tasks/{id}?view=FULL` every 100 ms.
 *
 * ```sh
 * deno run -A bench/hostile_tasks.ts
 * ```
 *
 * Prints the request latencies (max, p99, median), how long each task took and the size of
 * its system logs. It asserts nothing.
 *
 * @module
 */
import { startServe } from "../tests/_harness/serve.ts";

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

const server = await startServe({ maxTasks: 4 });
try {
  const { client } = server;
  await Deno.writeTextFile(`${server.storageDir}/blocker`, "not a folder");
  const started = performance.now();
  const tasks = new Map<string, string>();
  tasks.set(
    await client.createTask({
      name: "10 MB line",
      executors: [{
        image: "debian:12",
        command: [
          "/bin/sh",
          "-c",
          "head -c 10000000 /dev/zero | tr '\\0' x; head -c 10000000 /dev/zero | tr '\\0' y >&2; exit 1",
        ],
      }],
    }),
    "10 MB line",
  );
  tasks.set(
    await client.createTask({
      name: "20,000 failing outputs",
      executors: [{
        image: "debian:12",
        command: [
          "/bin/sh",
          "-c",
          "mkdir -p /data/out && cd /data/out && seq 1 20000 | xargs touch",
        ],
      }],
      outputs: [{
        path: "/data/out/*",
        path_prefix: "/data/out",
        url: `file://${server.storageDir}/blocker/out`,
        type: "FILE",
      }],
    }),
    "20,000 failing outputs",
  );
  const latencies: number[] = [];
  const ended = new Map<string, { state: string; seconds: number; systemLogChars: number }>();
  while (ended.size < tasks.size && performance.now() - started < 900_000) {
    const t0 = performance.now();
    const response = await fetch(`${server.url}/service-info`);
    await response.body?.cancel();
    latencies.push(performance.now() - t0);
    for (const [id, name] of tasks) {
      if (ended.has(id)) continue;
      const t1 = performance.now();
      const task = await client.getTask(id, "FULL");
      latencies.push(performance.now() - t1);
      if (!["QUEUED", "INITIALIZING", "RUNNING"].includes(task.state ?? "")) {
        const logs = (task.logs ?? []).flatMap((l) => l.system_logs ?? []).join("\n");
        ended.set(id, {
          state: task.state ?? "",
          seconds: (performance.now() - started) / 1000,
          systemLogChars: logs.length,
        });
        console.log(
          `${name}: ${task.state} after ${((performance.now() - started) / 1000).toFixed(1)} s, ` +
            `system_logs ${logs.length} chars`,
        );
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  latencies.sort((a, b) => a - b);
  console.log(
    `API requests while they ran: ${latencies.length}, max ${
      quantile(latencies, 1).toFixed(1)
    } ms, ` +
      `p99 ${quantile(latencies, 0.99).toFixed(1)} ms, median ${
        quantile(latencies, 0.5).toFixed(1)
      } ms`,
  );
} finally {
  await server.close();
}
