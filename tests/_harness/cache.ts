/**
 * Test harness: where `.ci/run`'s install scripts cache what the tests need
 * (`$PLANETARY_CACHE`, default `$XDG_CACHE_HOME/planetary` or `~/.cache/planetary`), and whether
 * a cached Python venv was installed completely.
 *
 * @module
 */

/** The cache folder of the install scripts. */
export const PLANETARY_CACHE: string = Deno.env.get("PLANETARY_CACHE") ??
  `${Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME")}/.cache`}/planetary`;

/**
 * Whether a venv was installed completely (each install script marks it with `.ok` last).
 *
 * @param venv The venv folder.
 * @returns True when `<venv>/.ok` exists.
 */
export function venvReady(venv: string): boolean {
  try {
    return Deno.statSync(`${venv}/.ok`).isFile;
  } catch {
    return false;
  }
}
