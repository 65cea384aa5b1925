/**
 * How a test treats a missing external component (PostgreSQL, py-tes, the OpenAPI document, a
 * control plane…): on a developer machine it skips with a one-line reason; under `CI=true` it
 * fails, so CI can never pass by skipping.
 *
 * @module
 */

/** Whether we run under CI (`CI=true`). */
export const IN_CI: boolean = Deno.env.get("CI") === "true";

/**
 * Decides whether a test that needs a component runs. Returns `true` when it is present.
 * When it is missing: under CI throws (the test fails); elsewhere prints a one-line reason
 * and returns `false` so the caller can `ignore` the test.
 *
 * @param present Whether the component is available.
 * @param reason What is missing and how to get it.
 * @returns Whether the test should run.
 */
export function requireComponent(present: boolean, reason: string): boolean {
  if (present) return true;
  if (IN_CI) throw new Error(`missing component under CI=true: ${reason}`);
  console.error(`skip: ${reason}`);
  return false;
}

/**
 * Finds an executable on PATH.
 *
 * @param name Program name.
 * @returns Its absolute path, or undefined.
 */
export function which(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    const candidate = `${dir}/${name}`;
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && (info.mode ?? 0) & 0o111) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
