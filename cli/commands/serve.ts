/**
 * `planetary serve`: the TES server in one process.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Command, UsageError } from "../command.ts";
import { resolveServeOptions, ServeConfigError } from "../../src/server/serve_config.ts";
import { startServer, UnsafeHostRuntimeError } from "../../src/server/start_server.ts";
import { AUTH_TOKENS_FILE_ENV, withAuthTokensFile } from "../../src/api/auth_tokens_file.ts";
import { DataDirNotUsableError } from "../../src/store/pglite/data_dir_errors.ts";

/**
 * The Deno permissions `planetary serve` needs: the network (listen, and PostgreSQL when
 * `--database-url` is set), the environment (flags' fallbacks), and read/write for the embedded
 * database folder, and running `unshare` (docker/podman) for the local backend. No other `--allow-sys`
 * or `--allow-ffi`; `--allow-sys` only for `uid` (is the host runtime root?).
 */
export const SERVE_PERMISSIONS: readonly string[] = Object.freeze([
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-run=unshare,docker,podman",
  "--allow-sys=uid",
]);

const USAGE = `Usage: planetary serve [options]

Runs the TES API (and its database) in this process until SIGINT or SIGTERM.

Options:
  --host H              interface to listen on (env PLANETARY_HOST; default 127.0.0.1)
  --port P              port, 0 = any free port (env PLANETARY_PORT; default 8000)
  --data-dir D          embedded database folder (env PLANETARY_DATA_DIR;
                        default $XDG_DATA_HOME/planetary or ~/.local/share/planetary)
  --database-url U      PostgreSQL URL instead of the embedded database (env DATABASE_URL)
  --backend B           local: run tasks on this machine (default); none: API only
                        (env PLANETARY_BACKEND)
  --work-dir D          folder of running tasks (default <data-dir>/work)
  --max-tasks N         tasks run at once (default 4)
  --file-allow DIR      folder that file:// inputs/outputs may use, repeatable
                        (default: $HOME and /tmp); other file:// URLs are refused (400)
  --shared-dir DIR      folder every task sees at the same path as here, read-write
                        (Snakemake, Toil), repeatable; also file:// storage; must exist
                        (env PLANETARY_SHARED_DIRS, a colon list)
  --runtime R           what runs task containers: auto (a working docker engine, else
                        podman, else the host runtime; default), host, docker or podman
                        (env PLANETARY_RUNTIME)
  --task-user UID:GID   user and group that executors of the host runtime run as, with no
                        capabilities (env PLANETARY_TASK_USER; default: the owner of the
                        first --shared-dir unless that is root, else 65534:65534); give
                        the owner of the shared dirs when tasks must write there
  --max-run-seconds N   longest a task may run; then it ends SYSTEM_ERROR
                        (env PLANETARY_MAX_RUN_SECONDS; default: no limit)
  --max-running-per-owner N
                        most claimed, unfinished tasks of one owner; more wait QUEUED
                        (env PLANETARY_MAX_RUNNING_PER_OWNER; default 0 = no limit)
  --storage-schemes L   URL schemes inputs/outputs may use, a comma list of file, http,
                        https, s3, gs, az (env PLANETARY_STORAGE_SCHEMES; default: file,
                        http, https, s3, gs, and az when Azure is configured)
  --cors-origin O       origin whose web pages may call the API (CORS), repeatable; * =
                        any (env PLANETARY_CORS_ORIGINS, a comma list; default: none)
  --allow-host NAME     Host header accepted besides loopback names when listening on
                        loopback (against DNS rebinding), repeatable; * = any
                        (env PLANETARY_ALLOWED_HOSTS, a comma list)
  --log-requests=BOOL   one JSON log line per request on stderr (default true)
  --unsafe-host-runtime run tasks on the host runtime (no docker/podman) even with
                        authentication configured: it does not isolate one user's tasks
                        from another's (refused without this flag; exit 2)
  --config FILE.json    JSON file: {host, port, dataDir, databaseUrl, execution: {workDir,
                        maxConcurrentTasks, fileAllowList, sharedDirs, …}, api: {serviceInfo,
                        supportedBackendParameters, maxBodyBytes, allowedUrlSchemes,
                        corsOrigins, allowedHosts, authTokens, …}}
                        (env PLANETARY_AUTH_TOKENS_FILE: a JSON file of token -> owner instead)
  -h, --help            show this help

Cloud storage: s3:// and gs:// work with no setup, with the SDKs' default credentials
(AWS_* variables, AWS_PROFILE and ~/.aws files, instance metadata; Google application-default
credentials); az:// needs AZURE_STORAGE_*. Turn one off with PLANETARY_S3=false or
PLANETARY_GCS=false. The variables (AWS_*, AZURE_STORAGE_*, GOOGLE_APPLICATION_CREDENTIALS,
GOOGLE_CLOUD_PROJECT, PLANETARY_S3*, PLANETARY_GCS*, PLANETARY_STORAGE_*) reach the tasks'
transporters only.
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
          backend: { type: "string" },
          "work-dir": { type: "string" },
          "max-tasks": { type: "string" },
          "file-allow": { type: "string", multiple: true },
          "shared-dir": { type: "string", multiple: true },
          runtime: { type: "string" },
          "task-user": { type: "string" },
          "max-run-seconds": { type: "string" },
          "max-running-per-owner": { type: "string" },
          "storage-schemes": { type: "string" },
          "cors-origin": { type: "string", multiple: true },
          "allow-host": { type: "string", multiple: true },
          "unsafe-host-runtime": { type: "boolean" },
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
        backend: values.backend,
        workDir: values["work-dir"],
        maxTasks: values["max-tasks"],
        fileAllow: values["file-allow"],
        sharedDir: values["shared-dir"],
        runtime: values.runtime,
        taskUser: values["task-user"],
        maxRunSeconds: values["max-run-seconds"],
        maxRunningPerOwner: values["max-running-per-owner"],
        storageSchemes: values["storage-schemes"],
        corsOrigin: values["cors-origin"],
        allowHost: values["allow-host"],
      });
    } catch (error) {
      if (error instanceof ServeConfigError) throw new UsageError(error.message);
      throw error;
    }
    options.api = await withAuthTokensFile(options.api, Deno.env.get(AUTH_TOKENS_FILE_ENV));
    if (values["unsafe-host-runtime"]) options.unsafeHostRuntime = true;
    let server;
    try {
      server = await startServer(options);
    } catch (error) {
      if (error instanceof UnsafeHostRuntimeError) {
        console.error(`planetary serve: ${error.message}`);
        return 2;
      }
      if (error instanceof DataDirNotUsableError) {
        throw new UsageError(`--data-dir ${error.dataDir} ${error.reason}`);
      }
      throw error;
    }
    await server.finished;
    return 0;
  },
};
