/**
 * The Deno permissions the client verbs of the `planetary` CLI need (`submit`, `list`, `get`,
 * `cancel`, `wait`, `logs`): the network to reach the server, read access to check local input
 * paths and read task files, and the environment for `PLANETARY_URL`, `PLANETARY_TOKEN` and `CI`.
 * `serve` needs more (see its own file); a compiled binary uses the union.
 *
 * @module
 */

/** Permission flags of `deno run` / `deno compile` for the client verbs. */
export const CLI_PERMISSIONS: readonly string[] = Object.freeze([
  "--allow-net",
  "--allow-read",
  "--allow-env",
]);
