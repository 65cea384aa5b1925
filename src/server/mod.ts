/**
 * The `planetary serve` assembly: the API (and later the orchestrator) on one store, in one
 * process.
 *
 * @module
 */
export * from "./start_server.ts";
export * from "./serve_config.ts";
export * from "./storage_environment.ts";
