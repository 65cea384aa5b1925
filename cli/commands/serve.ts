/**
 * `planetary serve`: the TES server in one process.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Command, UsageError } from "../command.ts";
import { resolveServeOptions, ServeConfigError } from "../../src/server/serve_config.ts";
import { startServer } from "../../src/server/start_server.ts";

/**
 * The Deno permissions `planetary serve` needs: the network (listen, and PostgreSQL when
 * `--database-url` is set), the environment (flags' fallbacks), and read/write for the embedded
 * database folder. No `--allow-sys`, `--allow-run` or `--allow-ffi`.
 */
export const SERVE_PERMISSIONS: readonly string[] = Object.freeze([
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
]);

const USAGE = `Usage: planetary serve [options]

Runs the TES API (and its database) in this process until SIGINT or SIGTERM.

Options:
  --host H              interface to listen on (env PLANETARY_HOST; default 127.0.0.1)
  --port P              port, 0 = any free port (env PLANETARY_PORT; default 8000)
  --data-dir D          embedded database folder (env PLANETARY_DATA_DIR;
                        default $XDG_DATA_HOME/planetary or ~/.local/share/planetary)
  --database-url U      PostgreSQL URL instead of the embedded database (env DATABASE_URL)
  --log-requests=BOOL   one JSON log line per request on stderr (default true)
  --config FILE.json    JSON file: {host, port, dataDir, databaseUrl, api: {serviceInfo,
                        supportedBackendParameters, maxBodyBytes, corsOrigins, authTokens, …}}
  -h, --help            show this help
`;

/** The `serve` command. */
export const serveCommand: Command = {
  name: "serve",
  summary: "run the TES server",
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    let values;
    try {
      ({ values } = parseArgs({
        args: argv.map((arg) => (arg === "--log-requests" ? "--log-requests=true" : arg)),
        options: {
          host: { type: "string" },
          port: { type: "string" },
          "data-dir": { type: "string" },
          "database-url": { type: "string" },
          "log-requests": { type: "string" },
          config: { type: "string" },
          help: { type: "boolean", short: "h" },
        },
        strict: true,
        allowPositionals: false,
      }));
    } catch (error) {
      throw new UsageError(error instanceof Error ? error.message : String(error));
    }
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    let options;
    try {
      options = await resolveServeOptions({
        host: values.host,
        port: values.port,
        dataDir: values["data-dir"],
        databaseUrl: values["database-url"],
        logRequests: values["log-requests"],
        config: values.config,
      });
    } catch (error) {
      if (error instanceof ServeConfigError) throw new UsageError(error.message);
      throw error;
    }
    const server = await startServer(options);
    await server.finished;
    return 0;
  },
};
