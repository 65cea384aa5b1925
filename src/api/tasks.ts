/**
 * The TES task routes: list, create, get and cancel (`POST /tasks/{id}:cancel`), and the
 * Planetary extension `POST /tasks:batch` (many creates in one commit).
 *
 * Every string from the URL (list filters, the task id in the path) is checked before it
 * reaches the store: a NUL character or an over-long value is a 400 naming the parameter,
 * never a database error answered with a 500. A create must declare a JSON body; a cancel
 * must too, except for the body-less form Cromwell sends (see `readCancelBody`).
 *
 * @module
 */
import { Hono } from "hono";
import { TES_STATES, type TesState, type TesTask } from "../tes/model.ts";
import { formatProblems, validateTask } from "../tes/validate.ts";
import { checkQueryString, TES_STRING_LIMITS } from "../tes/limits.ts";
import { parseView, renderTask } from "../tes/view.ts";
import type { ListTasksQuery, TaskStore } from "../store/task_store.ts";
import type { ResolvedApiConfig } from "./config.ts";
import { HttpError } from "./errors.ts";
import type { ApiLogger } from "./request_log.ts";
import {
  type ApiEnv,
  jsonResponse,
  methodNotAllowed,
  readCancelBody,
  readJsonBody,
} from "./_http.ts";

/** Default page size of a task listing (TES specification). */
export const DEFAULT_PAGE_SIZE = 256;
/** Largest page size of a task listing. */
export const MAX_PAGE_SIZE = 2047;
/** Largest accepted `page_token`, in bytes (the store's keyset cursors are far shorter). */
export const MAX_PAGE_TOKEN_BYTES = 1024;

/** Options of {@linkcode createTaskRoutes}. */
export interface TaskRoutesOptions {
  /** Where tasks live. */
  store: TaskStore;
  /** The resolved API configuration. */
  config: ResolvedApiConfig;
  /** Where warnings go. */
  logger: ApiLogger;
}

const CANCEL_SUFFIX = ":cancel";

/**
 * With authentication, `file://` folders are per user: each allowed folder `F` becomes
 * `F/<owner>` for that owner's tasks, so that bob can neither read nor overwrite alice's
 * files. An owner name that is not a plain path segment (empty, `.`, `..`, a `/` or a NUL)
 * gets no `file://` folder at all.
 */
function ownerFileAllowList(allowList: readonly string[], owner: string): string[] {
  if (owner === "" || owner === "." || owner === ".." || /[/\0]/.test(owner)) return [];
  return allowList.map((dir) => `${dir.replace(/\/+$/, "")}/${owner}`);
}

/**
 * Builds the task routes, to be mounted under a TES base path (`/ga4gh/tes/v1`, `/v1`).
 *
 * @param options The store, configuration and logger.
 * @returns A Hono app serving `/tasks`, `/tasks:batch`, `/tasks/{id}` and `/tasks/{id}:cancel`.
 * @example
 * ```ts ignore
 * import { Hono } from "hono";
 * const app = new Hono().route("/v1", createTaskRoutes({ store, config, logger }));
 * ```
 */
export function createTaskRoutes(options: TaskRoutesOptions): Hono<ApiEnv> {
  const { store, config, logger } = options;
  const validateOptions = {
    supportedBackendParameters: config.supportedBackendParameters,
    ...(config.maxContentBytes === undefined ? {} : { maxContentBytes: config.maxContentBytes }),
    ...(config.allowedUrlSchemes === undefined
      ? {}
      : { allowedUrlSchemes: config.allowedUrlSchemes }),
    ...(config.fileAllowList === undefined ? {} : { fileAllowList: config.fileAllowList }),
  };
  const bodyOptions = { maxBytes: config.maxBodyBytes, timeoutMs: config.bodyTimeoutMs };
  const app = new Hono<ApiEnv>();

  app.get("/tasks", async (c) => {
    const query = parseListQuery(new URL(c.req.url).searchParams);
    const owner = c.get("user");
    const page = await store.list(owner === undefined ? query : { ...query, owner });
    const body: { tasks: TesTask[]; next_page_token?: string } = {
      tasks: page.tasks.map((task) => renderTask(task, query.view)),
    };
    if (page.nextPageToken !== undefined) body.next_page_token = page.nextPageToken;
    return jsonResponse(200, body);
  });

  /** Validation settings for one owner (per-user `file://` folders with authentication). */
  const taskValidateOptions = (owner: string | undefined) =>
    owner === undefined || config.fileAllowList === undefined
      ? validateOptions
      : { ...validateOptions, fileAllowList: ownerFileAllowList(config.fileAllowList, owner) };

  app.post("/tasks", async (c) => {
    const body = await readJsonBody(c.req.raw, bodyOptions);
    const owner = c.get("user");
    const result = validateTask(body, taskValidateOptions(owner));
    if (!result.ok) throw new HttpError(400, formatProblems(result.problems));
    const id = await store.create(result.task, owner === undefined ? {} : { owner });
    if (result.warnings.length > 0) {
      logger.warn("task accepted with warnings", {
        request_id: c.get("requestId"),
        task_id: id,
        warnings: result.warnings,
      });
    }
    return jsonResponse(200, { id });
  });

  // Planetary extension: `POST /tasks:batch` with `{"tasks": [task, …]}` creates every task in
  // one commit (all or none) and answers `{"ids": […]}` in the same order. Each task is
  // validated like a single create; the first bad one refuses the batch, named by its index.
  app.post("/tasks:batch", async (c) => {
    const body = await readJsonBody(c.req.raw, bodyOptions);
    const owner = c.get("user");
    const tasks = batchTasks(body, config.maxBatchTasks);
    const options = taskValidateOptions(owner);
    const valid: TesTask[] = [];
    const warnings: { index: number; warnings: string[] }[] = [];
    for (const [index, raw] of tasks.entries()) {
      const result = validateTask(raw, options);
      if (!result.ok) {
        throw new HttpError(
          400,
          formatProblems(result.problems.map((problem) => ({
            path: problem.path === "" ? `tasks[${index}]` : `tasks[${index}].${problem.path}`,
            message: problem.message,
          }))),
        );
      }
      valid.push(result.task);
      if (result.warnings.length > 0) warnings.push({ index, warnings: result.warnings });
    }
    const ids = await store.createMany(valid, owner === undefined ? {} : { owner });
    for (const { index, warnings: list } of warnings) {
      logger.warn("task accepted with warnings", {
        request_id: c.get("requestId"),
        task_id: ids[index],
        warnings: list,
      });
    }
    return jsonResponse(200, { ids });
  });

  app.all("/tasks:batch", (c) => methodNotAllowed(c.req.method, ["POST"]));

  app.all("/tasks", (c) => methodNotAllowed(c.req.method, ["GET", "POST"]));

  app.get("/tasks/:id", async (c) => {
    const id = c.req.param("id");
    if (id.endsWith(CANCEL_SUFFIX)) methodNotAllowed(c.req.method, ["POST"]);
    checkTaskId(id);
    const view = parseViewParam(c.req.query("view"));
    const task = await store.get(id, view, c.get("user"));
    return jsonResponse(200, renderTask(task, view));
  });

  // `POST /tasks/{id}:cancel`: the colon is part of the last path segment, so the router sees
  // one parameter and the handler splits off the custom verb (Google API style, as in TES).
  app.post("/tasks/:id", async (c) => {
    const segment = c.req.param("id");
    if (!segment.endsWith(CANCEL_SUFFIX)) {
      if (segment.includes(":")) throw new HttpError(404, `No route for POST ${c.req.path}`);
      methodNotAllowed(c.req.method, ["GET"]);
    }
    const id = segment.slice(0, -CANCEL_SUFFIX.length);
    if (id === "") throw new HttpError(404, `No route for POST ${c.req.path}`);
    await readCancelBody(c.req.raw, bodyOptions);
    checkTaskId(id);
    await store.cancel(id, c.get("user"));
    return jsonResponse(200, {});
  });

  app.all("/tasks/:id", (c) => {
    methodNotAllowed(c.req.method, c.req.param("id").endsWith(CANCEL_SUFFIX) ? ["POST"] : ["GET"]);
  });

  return app;
}

/**
 * Reads the `tasks` array of a batch create.
 *
 * @param body The parsed JSON body.
 * @param max The largest accepted number of tasks.
 * @returns The raw tasks (validated one by one by the caller).
 * @throws {HttpError} 400 naming `tasks` when it is missing, not an array, empty or too long.
 */
function batchTasks(body: unknown, max: number): unknown[] {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'request body: expected an object {"tasks": [task, …]}');
  }
  const tasks = (body as Record<string, unknown>).tasks;
  if (tasks === undefined) throw new HttpError(400, "tasks: required");
  if (!Array.isArray(tasks)) throw new HttpError(400, "tasks: expected an array of tasks");
  if (tasks.length === 0) throw new HttpError(400, "tasks: must hold at least one task");
  if (tasks.length > max) {
    throw new HttpError(
      400,
      `tasks: at most ${max} tasks per batch, got ${tasks.length}; send them in several batches`,
    );
  }
  return tasks;
}

/**
 * Checks a task id from the request path.
 *
 * @param id The decoded id.
 * @throws {HttpError} 400 naming `id` for a NUL character or an over-long id; an id that is
 * merely unknown passes (and the store answers 404).
 */
function checkTaskId(id: string): void {
  const problem = checkQueryString(id, "id", TES_STRING_LIMITS.taskId);
  if (problem !== undefined) throw new HttpError(400, problem);
}

/**
 * Returns a query parameter's value once it is known to be safe for the store.
 *
 * @throws {HttpError} 400 naming the parameter.
 */
function checked(value: string, field: string, limit: number): string {
  const problem = checkQueryString(value, field, limit);
  if (problem !== undefined) throw new HttpError(400, problem);
  return value;
}

/**
 * Parses the `view` query parameter.
 *
 * @param value The raw value; absent or empty means MINIMAL.
 * @returns The view.
 * @throws {HttpError} 400 for an unknown view.
 */
function parseViewParam(value: string | undefined): NonNullable<ReturnType<typeof parseView>> {
  const view = parseView(value);
  if (view === undefined) {
    throw new HttpError(
      400,
      `view: must be one of MINIMAL, BASIC, FULL, got "${truncate(value ?? "")}"`,
    );
  }
  return view;
}

/**
 * Parses the query string of `GET /tasks`.
 *
 * @param params The query parameters.
 * @returns The store query (without owner).
 * @throws {HttpError} 400 naming the first bad parameter.
 */
export function parseListQuery(params: URLSearchParams): ListTasksQuery {
  const view = parseViewParam(params.get("view") ?? undefined);
  const query: ListTasksQuery = { pageSize: parsePageSize(params.get("page_size")), view };

  const namePrefix = params.get("name_prefix");
  if (namePrefix !== null && namePrefix !== "") {
    query.namePrefix = checked(namePrefix, "name_prefix", TES_STRING_LIMITS.name);
  }

  const state = params.get("state");
  if (state !== null && state !== "") {
    if (!(TES_STATES as readonly string[]).includes(state)) {
      throw new HttpError(
        400,
        `state: must be one of ${TES_STATES.join(", ")}, got "${truncate(state)}"`,
      );
    }
    query.state = state as TesState;
  }

  // Repeated tag_key/tag_value pairs are zipped by position; a key without a value (missing or
  // empty) only asks that the key exists; values beyond the last key are ignored.
  const keys = params.getAll("tag_key");
  const values = params.getAll("tag_value");
  if (keys.length > 0) {
    const pairs = keys.map((key, index): [string, string] => {
      if (key === "") throw new HttpError(400, `tag_key: must not be empty (position ${index})`);
      return [
        checked(key, "tag_key", TES_STRING_LIMITS.tagKey),
        checked(values[index] ?? "", "tag_value", TES_STRING_LIMITS.tagValue),
      ];
    });
    // fromEntries defines own properties, so a key such as `__proto__` stays a filter.
    query.tags = Object.fromEntries(pairs);
  }

  const pageToken = params.get("page_token");
  if (pageToken !== null && pageToken !== "") {
    query.pageToken = checked(pageToken, "page_token", MAX_PAGE_TOKEN_BYTES);
  }
  return query;
}

function parsePageSize(value: string | null): number {
  if (value === null || value === "") return DEFAULT_PAGE_SIZE;
  const size = /^[0-9]{1,9}$/.test(value) ? Number(value) : NaN;
  if (!(size >= 1 && size <= MAX_PAGE_SIZE)) {
    throw new HttpError(
      400,
      `page_size: must be an integer from 1 to ${MAX_PAGE_SIZE}, got "${truncate(value)}"`,
    );
  }
  return size;
}

function truncate(value: string): string {
  return value.length > 64 ? `${value.slice(0, 64)}…` : value;
}
