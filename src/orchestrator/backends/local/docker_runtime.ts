/**
 * The container-engine runtime of the local backend: runs each container with `docker run`
 * or `podman run` (its image, mounts, env, working directory and user). UNTESTED here: this
 * machine has no container engine; only the command line it builds is unit-tested.
 *
 * @module
 */
import type { ContainerExit, ContainerRunSpec, ContainerRuntime } from "./container_runtime.ts";
export type {
  ContainerExit,
  ContainerRunSpec,
  ContainerRuntime,
  ResolvedMount,
} from "./container_runtime.ts";
import { LocalBackendError } from "./local_backend_error.ts";

/**
 * Whether `<engine> info` succeeds on this machine.
 *
 * @param engine `docker` or `podman`.
 * @returns True when the engine answers.
 */
export async function engineWorks(engine: "docker" | "podman"): Promise<boolean> {
  try {
    const out = await new Deno.Command(engine, {
      args: ["info"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * The arguments of `docker run` / `podman run` for one container.
 *
 * @param spec What to run.
 * @param containerName The engine-side container name.
 * @returns The argv after the engine's name.
 */
export function engineRunArgs(spec: ContainerRunSpec, containerName: string): string[] {
  const args = ["run", "--rm", "--name", containerName, "--hostname", spec.podName];
  for (const m of spec.mounts) {
    args.push("--mount", mountOption(m.source, m.target, m.readOnly));
  }
  for (const [name, value] of spec.env) args.push("--env", `${name}=${value}`);
  if (spec.workingDir) args.push("--workdir", spec.workingDir);
  if (spec.runAsUser !== undefined) args.push("--user", String(spec.runAsUser));
  const [entrypoint, ...rest] = spec.command;
  if (entrypoint !== undefined) args.push("--entrypoint", entrypoint);
  args.push("--", spec.image, ...(entrypoint !== undefined ? rest : spec.args));
  return args;
}

function mountOption(source: string, target: string, readOnly: boolean): string {
  // --mount is CSV: quote fields that hold a comma or a quote.
  const field = (value: string): string =>
    /[",]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
  return [
    "type=bind",
    field(`source=${source}`),
    field(`target=${target}`),
    ...(readOnly ? ["readonly"] : []),
  ].join(",");
}

/** Runs containers with docker or podman (UNTESTED: no engine on the development machine). */
export class DockerRuntime implements ContainerRuntime {
  /** `docker` or `podman`. */
  readonly name: "docker" | "podman";
  #available: Promise<void> | undefined;

  /**
   * Creates the runtime.
   *
   * @param engine Which engine's command line to use.
   */
  constructor(engine: "docker" | "podman" = "docker") {
    this.name = engine;
  }

  /**
   * Checks that `<engine> info` works.
   *
   * @returns Resolves when it does.
   * @throws {LocalBackendError} `RUNTIME_UNAVAILABLE` when it does not.
   */
  ensureAvailable(): Promise<void> {
    this.#available ??= engineWorks(this.name).then((ok) => {
      if (!ok) {
        throw new LocalBackendError(
          "RUNTIME_UNAVAILABLE",
          `Cannot use ${this.name}: "${this.name} info" failed`,
        );
      }
    });
    return this.#available;
  }

  /**
   * Runs one container with the engine; aborting removes it (`rm --force`).
   *
   * @param spec What to run.
   * @param signal Kills the container.
   * @param onStarted Called when the engine process started.
   * @returns How it ended.
   */
  async run(
    spec: ContainerRunSpec,
    signal: AbortSignal,
    onStarted: () => void,
  ): Promise<ContainerExit> {
    await this.ensureAvailable();
    const engineName = `planetary-${spec.podName}-${spec.containerName}`;
    const log = await Deno.open(spec.logFile, { create: true, append: true });
    try {
      const child = new Deno.Command(this.name, {
        args: engineRunArgs(spec, engineName),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      onStarted();
      const remove = (): void => {
        void new Deno.Command(this.name, {
          args: ["rm", "--force", engineName],
          stdout: "null",
          stderr: "null",
        }).output().catch(() => {});
      };
      signal.addEventListener("abort", remove, { once: true });
      try {
        const copy = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
          for await (const chunk of stream) {
            let written = 0;
            while (written < chunk.length) written += await log.write(chunk.subarray(written));
          }
        };
        const [status] = await Promise.all([child.status, copy(child.stdout), copy(child.stderr)]);
        // docker/podman run exit 125 when the engine could not start the container.
        if (status.code === 125) {
          return { exitCode: 125, startError: `${this.name} run could not start the container` };
        }
        return { exitCode: status.code };
      } finally {
        signal.removeEventListener("abort", remove);
      }
    } finally {
      log.close();
    }
  }
}
