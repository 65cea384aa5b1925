/**
 * Stopping child processes of the test harnesses.
 *
 * @module
 */

/**
 * Sends `signal` to a child process, then SIGKILL if it has not exited after `graceMs`, and
 * waits for its exit.
 *
 * @param child The process.
 * @param status Its status promise (resolves when it exits).
 * @param signal The first signal.
 * @param graceMs How long to wait before SIGKILL.
 * @returns The exit status.
 */
export async function killWithGrace(
  child: Deno.ChildProcess,
  status: Promise<Deno.CommandStatus>,
  signal: Deno.Signal,
  graceMs: number,
): Promise<Deno.CommandStatus> {
  const send = (s: Deno.Signal): void => {
    try {
      child.kill(s);
    } catch {
      // already gone
    }
  };
  send(signal);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = await Promise.race([
    status.then(() => false),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), graceMs)),
  ]);
  clearTimeout(timer);
  if (late) send("SIGKILL");
  return await status;
}
