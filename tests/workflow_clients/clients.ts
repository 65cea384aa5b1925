/**
 * Where tests find the workflow clients that `tests/workflow_clients/install.sh` installs, and
 * how they run them against a real `planetary serve` with a shared dir.
 *
 * @module
 */
import { type ServeHarness, startServe } from "../_harness/serve.ts";
import { PLANETARY_CACHE, venvReady } from "../_harness/cache.ts";

/** Pinned versions; keep them equal to install.sh's. */
export const VERSIONS = {
  snakemake: "9.27.1",
  snakemakeTes: "0.1.3",
  toil: "7.0.0",
  toilTes: "2.0.0",
  pyTes: "1.1.4",
} as const;

/** The Snakemake venv. */
export const SNAKEMAKE_VENV =
  `${PLANETARY_CACHE}/snakemake-${VERSIONS.snakemake}-tes-${VERSIONS.snakemakeTes}`;
/** The Toil venv. */
export const TOIL_VENV =
  `${PLANETARY_CACHE}/toil-${VERSIONS.toil}-tes-${VERSIONS.toilTes}-py-tes-${VERSIONS.pyTes}`;

export { venvReady };

/** A server whose tasks see `shared` at the same path and run the venv's programs. */
export interface WorkflowServer {
  /** The server. */
  serve: ServeHarness;
  /** The shared dir (`--shared-dir`). */
  shared: string;
  /** A private folder of the test (not shared with tasks). */
  root: string;
  /** Stops the server and removes the folders. */
  close(): Promise<void>;
}

/**
 * Starts `planetary serve --shared-dir <tmp>/shared` with `<venv>/bin` first on its PATH: the
 * host runtime passes the server's PATH to tasks, which run the workflow engine's own programs
 * (`python -m snakemake`, `_toil_contained_executor`) from there.
 *
 * @param venv The client's venv.
 * @returns The running server.
 */
export async function startWorkflowServer(venv: string): Promise<WorkflowServer> {
  const root = await Deno.makeTempDir({ prefix: "planetary-workflow-" });
  const shared = `${root}/shared`;
  await Deno.mkdir(shared);
  let serve: ServeHarness;
  try {
    serve = await startServe({
      // Tasks write the workflow's files as the user who runs the workflow engine (this test).
      args: ["--shared-dir", shared, "--task-user", `${Deno.uid()}:${Deno.gid()}`],
      env: { PATH: `${venv}/bin:${Deno.env.get("PATH") ?? ""}` },
    });
  } catch (error) {
    await Deno.remove(root, { recursive: true });
    throw error;
  }
  return {
    serve,
    shared,
    root,
    async close() {
      await serve.close();
      await Deno.remove(root, { recursive: true });
    },
  };
}

/**
 * Runs a client program to its end.
 *
 * @param program The executable.
 * @param args Its arguments.
 * @param cwd Its working directory.
 * @returns Its exit code and everything it printed.
 */
export async function runClient(
  program: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command(program, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}
