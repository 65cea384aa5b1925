/**
 * Idle memory and cold start of `planetary serve` (issue 13, goals 3 and 4): VmRSS and VmHWM 3 s
 * after it listens, on PostgreSQL (API only, and with the local backend) and on the embedded
 * databases (SQLite, the default, and PGlite for a folder an earlier Planetary made), beside a
 * bare `Deno.serve` for scale; and the time from spawning the process to its first answer
 * (median of 3 starts on a new data folder). Prints figures; asserts nothing.
 *
 * ```sh
 * deno run -A bench/memory.ts
 * ```
 *
 * @module
 */
import { openTaskStore } from "../src/store/open_store.ts";
import { fixed, formatTable, readMemory, spawnServe, startBenchPostgres } from "./_load.ts";

const IDLE_MS = 3000;

async function bareDenoServe(): Promise<{ rssMiB: number; hwmMiB: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() { console.log("up"); } },
        () => new Response("ok"));`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read();
  await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
  const memory = await readMemory(child.pid);
  child.kill("SIGTERM");
  reader.releaseLock();
  await child.stdout.cancel();
  await child.status;
  return memory;
}

async function main(): Promise<void> {
  const rows: string[][] = [];
  const add = (label: string, memory: { rssMiB: number; hwmMiB: number }, startMs?: number) =>
    rows.push([
      label,
      fixed(memory.rssMiB),
      fixed(memory.hwmMiB),
      startMs === undefined ? "" : fixed(startMs, 0),
    ]);
  add("bare Deno.serve (scale)", await bareDenoServe());
  const pg = await startBenchPostgres({ durable: false });
  const dataDir = await Deno.makeTempDir({ prefix: "planetary-bench-mem-" });
  try {
    // a data folder of an earlier Planetary: PGlite
    await (await openTaskStore({ dataDir: `${dataDir}/pglite`, engine: "pglite" })).close();
    let fresh = 0;
    const configs: [string, () => string[]][] = [
      ["serve --backend none, PostgreSQL", () => ["--backend", "none", "--database-url", pg.url]],
      ["serve (local backend), PostgreSQL", () => ["--database-url", pg.url]],
      [
        "serve --backend none, embedded SQLite (new folder)",
        () => ["--backend", "none", "--data-dir", `${dataDir}/sqlite-${fresh++}`],
      ],
      [
        "serve (local backend), embedded SQLite (new folder)",
        () => ["--data-dir", `${dataDir}/sqlite-${fresh++}`],
      ],
      [
        "serve --backend none, embedded PGlite (earlier folder)",
        () => ["--backend", "none", "--data-dir", `${dataDir}/pglite`],
      ],
    ];
    for (const [label, args] of configs) {
      console.error(`${label}…`);
      const starts: number[] = [];
      for (let run = 0; run < 3; run++) {
        const started = performance.now();
        const server = await spawnServe(args());
        try {
          await fetch(`${server.url}/ga4gh/tes/v1/service-info`).then((r) => r.body?.cancel());
          starts.push(performance.now() - started);
          if (run < 2) continue;
          await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
          add(label, await readMemory(server.pid), starts.sort((a, b) => a - b)[1]);
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    await pg.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
  console.log(`\nIdle memory, ${IDLE_MS / 1000} s after listening; start: spawn to first answer\n`);
  console.log(formatTable(["server", "VmRSS MiB", "VmHWM MiB", "start ms (median of 3)"], rows));
}

if (import.meta.main) await main();
