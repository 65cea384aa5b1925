/**
 * Test helper: runs the init container of one executor of a built pod on this host, the way a
 * kubelet would (`$(VAR)` expansion of command and env), with `/bin/sh` replaced by the shell
 * under test and the state directory redirected to a temp dir.
 *
 * @module
 */
import type { V1Container } from "@kubernetes/client-node";
import { expandKubernetesReferences } from "../kubernetes_expansion.ts";
import { ENV_STATE_DIR } from "../executor_wrapper.ts";
import { which } from "../../../tests/_harness/component.ts";

/** A shell to test the wrapper with. */
export interface Shell {
  /** Name for test titles. */
  name: string;
  /** argv prefix replacing `/bin/sh`, or undefined when absent from this host. */
  argv: string[] | undefined;
  /** How to get it. */
  install: string;
}

const busybox = which("busybox");
const dash = which("dash");
const bash = which("bash");

/** dash, busybox sh and bash, as found on this host. */
export const SHELLS: Shell[] = [
  { name: "dash", argv: dash ? [dash] : undefined, install: "apt-get install -y dash" },
  {
    name: "busybox sh",
    argv: busybox ? [busybox, "sh"] : undefined,
    install: "apt-get install -y busybox",
  },
  { name: "bash", argv: bash ? [bash] : undefined, install: "apt-get install -y bash" },
];

/** PATH given to executors in tests. */
export const TEST_PATH = "/usr/local/bin:/usr/bin:/bin";

/**
 * Runs one executor container's command + env under `shell`.
 *
 * @param shell argv prefix of the shell.
 * @param container The executor init container from the pod.
 * @param stateDir The state directory to use.
 * @returns The wrapper's own exit code, stdout and stderr.
 */
export async function runExecutorContainer(
  shell: string[],
  container: V1Container,
  stateDir: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    env[variable.name] = expandKubernetesReferences(variable.value ?? "", (n) => env[n]);
  }
  const argv = (container.command ?? []).map((part) =>
    expandKubernetesReferences(part, (n) => env[n])
  );
  if (argv[0] !== "/bin/sh" || argv[1] !== "-c") {
    throw new Error(`unexpected executor command: ${JSON.stringify(argv.slice(0, 2))}`);
  }
  const [program, ...rest] = [...shell, ...argv.slice(1)];
  const output = await new Deno.Command(program!, {
    args: rest,
    env: { PATH: TEST_PATH, ...env, [ENV_STATE_DIR]: stateDir },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}
