/**
 * `planetary-api`: the TES API service of a Kubernetes deployment (no orchestrator: tasks are
 * queued in PostgreSQL and the orchestrator replicas claim them).
 *
 * ```sh
 * planetary-api migrate            # apply pending migrations (the Helm pre-install/upgrade Job)
 * planetary-api [--host H] [--port P] [--config FILE.json]
 * ```
 *
 * `DATABASE_URL` (or `--database-url`) is required. Other settings as for `planetary serve`.
 * Bearer tokens come from `--auth-tokens-file` or `PLANETARY_AUTH_TOKENS_FILE` (a JSON object
 * of token → owner, mounted from a Secret by the Helm chart), or from `api.authTokens` of the
 * config file; without any, the API has no authentication.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { openTaskStore } from "../src/store/open_store.ts";
import { resolveServeOptions, ServeConfigError } from "../src/server/serve_config.ts";
import { startServer } from "../src/server/start_server.ts";
import {
  AUTH_TOKENS_FILE_ENV,
  AuthTokensFileError,
  withAuthTokensFile,
} from "../src/api/auth_tokens_file.ts";

/** The exact permission flags of the API service (`deno run`/`deno compile`). */
export const API_PERMISSIONS: readonly string[] = Object.freeze([
  "--allow-net",
  "--allow-env",
  "--allow-read",
]);

const USAGE = `Usage: planetary-api [migrate] [options]

Runs the TES API on PostgreSQL; "migrate" applies pending migrations and exits.

Options:
  --host H            interface (env PLANETARY_HOST; default 127.0.0.1)
  --port P            port (env PLANETARY_PORT; default 8000)
  --database-url U    PostgreSQL URL (env DATABASE_URL; required)
  --log-requests=BOOL one JSON line per request (default true)
  --config FILE.json  the config file of planetary serve (api settings)
  --auth-tokens-file F  JSON object of bearer token -> owner; every TES route then needs
                      "Authorization: Bearer <token>" (env PLANETARY_AUTH_TOKENS_FILE;
                      replaces api.authTokens of --config; default: no authentication)
  -h, --help          show this help
`;

/**
 * Runs the API service.
 *
 * @param args Command-line arguments.
 * @returns The exit code: 0 success, 1 failure, 2 usage error.
 */
export async function main(args: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        host: { type: "string" },
        port: { type: "string" },
        "database-url": { type: "string" },
        "log-requests": { type: "string" },
        config: { type: "string" },
        "auth-tokens-file": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    console.error(`planetary-api: ${error instanceof Error ? error.message : error}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const mode = positionals[0] ?? "serve";
  if (positionals.length > 1 || (mode !== "serve" && mode !== "migrate")) {
    console.error(`planetary-api: unknown command "${positionals.join(" ")}"\n\n${USAGE}`);
    return 2;
  }
  let options;
  try {
    options = await resolveServeOptions({
      host: values.host,
      port: values.port,
      databaseUrl: values["database-url"],
      logRequests: values["log-requests"],
      config: values.config,
      backend: "none",
    });
  } catch (error) {
    if (!(error instanceof ServeConfigError)) throw error;
    console.error(`planetary-api: ${error.message}`);
    return 2;
  }
  if (mode === "serve") {
    // the migration Job has no tokens: only the service reads them
    const tokensFile = values["auth-tokens-file"] ??
      (Deno.env.get(AUTH_TOKENS_FILE_ENV) || undefined);
    try {
      options.api = await withAuthTokensFile(options.api, tokensFile);
    } catch (error) {
      if (!(error instanceof AuthTokensFileError)) throw error;
      console.error(`planetary-api: ${error.message}`);
      return 2;
    }
  }
  if (options.databaseUrl === undefined) {
    console.error("planetary-api: set DATABASE_URL (or --database-url) to a PostgreSQL URL");
    return 2;
  }
  try {
    if (mode === "migrate") {
      const store = await openTaskStore({ databaseUrl: options.databaseUrl });
      await store.close();
      console.error("planetary-api: migrations applied");
      return 0;
    }
    const tokens = Object.keys(options.api?.authTokens ?? {}).length;
    console.error(
      tokens > 0
        ? `planetary-api: bearer authentication on (${tokens} token${tokens === 1 ? "" : "s"})`
        : `planetary-api: no authentication (set ${AUTH_TOKENS_FILE_ENV} to require tokens)`,
    );
    const server = await startServer(options);
    await server.finished;
    return 0;
  } catch (error) {
    console.error(`planetary-api: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
