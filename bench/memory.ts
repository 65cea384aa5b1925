/**
 * Idle memory of `planetary serve` (issue 13, goal 4): VmRSS and VmHWM 3 s after it listens, on
 * PostgreSQL (API only, and with the local backend) and on the embedded database, beside a bare
 * `Deno.serve` for scale. Prints figures; asserts nothing.
 *
 * ```sh
 * deno run -A bench/memory.ts
 * ```
 *
 * @module
 */
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
  const add = (label: string, memory: { rssMiB: number; hwmMiB: number }) =>
    rows.push([label, fixed(memory.rssMiB), fixed(memory.hwmMiB)]);
  add("bare Deno.serve (scale)", await bareDenoServe());
  const pg = await startBenchPostgres({ durable: false });
  const dataDir = await Deno.makeTempDir({ prefix: "planetary-bench-mem-" });
  try {
    const configs: [string, string[]][] = [
      ["serve --backend none, PostgreSQL", ["--backend", "none", "--database-url", pg.url]],
      ["serve (local backend), PostgreSQL", ["--database-url", pg.url]],
      ["serve --backend none, embedded", ["--backend", "none", "--data-dir", `${dataDir}/db`]],
    ];
    for (const [label, args] of configs) {
      console.error(`${label}…`);
      const server = await spawnServe(args);
      try {
        await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
        add(label, await readMemory(server.pid));
      } finally {
        await server.stop();
      }
    }
  } finally {
    await pg.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
  console.log(`\nIdle memory, ${IDLE_MS / 1000} s after listening\n`);
  console.log(formatTable(["server", "VmRSS MiB", "VmHWM MiB"], rows));
}

if (import.meta.main) await main();
