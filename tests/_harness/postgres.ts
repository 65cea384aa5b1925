/**
 * A throwaway PostgreSQL 15 cluster for tests: `initdb` into a temp dir, `pg_ctl start` on a
 * free loopback port (unix socket in the temp dir, fsync off), stopped and deleted by
 * `stop()`. Run as the `postgres` user when the tests run as root (PostgreSQL refuses root).
 *
 * @module
 */
import postgres from "postgres";
import { requireComponent } from "./component.ts";

/** Where the Debian `postgresql-15` server binaries live (override: `PLANETARY_PG_BIN`). */
export const PG_BIN: string = Deno.env.get("PLANETARY_PG_BIN") ?? "/usr/lib/postgresql/15/bin";

/** A running throwaway cluster. */
export interface PostgresCluster {
  /** URL of the `postgres` database as superuser `postgres` (trust auth, loopback). */
  url: string;
  /** Stops the server and deletes its files. */
  stop(): Promise<void>;
}

/**
 * Whether the PostgreSQL server binaries are installed.
 *
 * @returns `true` when `initdb` and `pg_ctl` exist in {@linkcode PG_BIN}.
 */
export function postgresInstalled(): boolean {
  try {
    return Deno.statSync(`${PG_BIN}/initdb`).isFile && Deno.statSync(`${PG_BIN}/pg_ctl`).isFile;
  } catch {
    return false;
  }
}

/**
 * Decides whether a PostgreSQL test runs (skips locally, fails under `CI=true`).
 *
 * @returns Whether PostgreSQL is available.
 */
export function requirePostgres(): boolean {
  return requireComponent(
    postgresInstalled(),
    `PostgreSQL 15 server binaries not found in ${PG_BIN} (apt-get install postgresql-15)`,
  );
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function idOf(flag: "-u" | "-g", user: string): Promise<number> {
  const out = await new Deno.Command("id", { args: [flag, user], stdout: "piped" }).output();
  if (!out.success) throw new Error(`id ${flag} ${user} failed`);
  return Number(new TextDecoder().decode(out.stdout).trim());
}

async function run(asPostgres: boolean, program: string, args: string[]): Promise<void> {
  const [cmd, argv] = asPostgres
    ? ["runuser", ["-u", "postgres", "--", program, ...args]]
    : [program, args];
  const out = await new Deno.Command(cmd, { args: argv, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${program} failed (${out.code}): ${text}`);
  }
}

/** Options of {@linkcode startPostgres}. */
export interface StartPostgresOptions {
  /**
   * More addresses to listen on besides 127.0.0.1 (for example a test node's address, so that
   * pods reach the server). The port is free on loopback; the test owns these addresses.
   * @default {[]}
   */
  extraListenAddresses?: readonly string[];
  /**
   * Client address ranges (CIDR) let in without a password, besides loopback (for example a
   * test node's pod CIDR).
   * @default {[]}
   */
  trustedCidrs?: readonly string[];
}

/**
 * Starts a fresh cluster.
 *
 * @param options More listen addresses and trusted client ranges.
 * @returns Its URL and a `stop()` that must be awaited in the test's cleanup.
 * @throws {Error} When the binaries are missing or the server does not start.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresCluster> {
  const { extraListenAddresses = [], trustedCidrs = [] } = options;
  const root = Deno.uid() === 0;
  const dir = await Deno.makeTempDir({ prefix: "planetary-pg-" });
  const data = `${dir}/data`;
  try {
    if (root) {
      await Deno.chown(dir, await idOf("-u", "postgres"), await idOf("-g", "postgres"));
    }
    await run(root, `${PG_BIN}/initdb`, [
      "-D",
      data,
      "-U",
      "postgres",
      "--auth=trust",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
    ]);
    if (trustedCidrs.length) {
      const hba = trustedCidrs.map((cidr) => `host all all ${cidr} trust\n`).join("");
      await run(root, "sh", ["-c", 'printf "%s" "$1" >> "$2"', "sh", hba, `${data}/pg_hba.conf`]);
    }
    const port = freePort();
    const settings = [
      `-p ${port}`,
      `-k ${dir}`,
      `-c listen_addresses=${["127.0.0.1", ...extraListenAddresses].join(",")}`,
      "-c fsync=off",
      "-c synchronous_commit=off",
      "-c full_page_writes=off",
      "-c max_connections=200",
      "-c shared_buffers=256MB",
    ].join(" ");
    await run(root, `${PG_BIN}/pg_ctl`, [
      "-D",
      data,
      "-o",
      settings,
      "-l",
      `${dir}/server.log`,
      "-w",
      "-t",
      "60",
      "start",
    ]);
    let stopped = false;
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      async stop(): Promise<void> {
        if (stopped) return;
        stopped = true;
        try {
          await run(root, `${PG_BIN}/pg_ctl`, ["-D", data, "-m", "immediate", "-w", "stop"]);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

let databaseCounter = 0;

/**
 * Creates an empty database in a cluster, so that test files (or tests) sharing one cluster
 * never see each other's tables.
 *
 * @param cluster The running cluster.
 * @param prefix Start of the database name.
 * @returns The URL of the new database.
 */
export async function createDatabase(
  cluster: PostgresCluster,
  prefix = "planetary_test",
): Promise<string> {
  databaseCounter += 1;
  const name = `${prefix}_${Deno.pid}_${databaseCounter}`.toLowerCase().replace(
    /[^a-z0-9_]/g,
    "_",
  );
  const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(cluster.url);
  url.pathname = `/${name}`;
  return url.toString();
}
