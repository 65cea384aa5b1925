/**
 * A typed client of a GA4GH TES v1.1 server (Planetary or any other).
 *
 * @module
 */
import type {
  TesCreateTaskResponse,
  TesListTasksResponse,
  TesServiceInfo,
  TesState,
  TesTask,
  TesView,
} from "../tes/model.ts";
import { isTerminal } from "../tes/state.ts";
import { TesApiError, TesBatchCreateError, TesConnectionError } from "./errors.ts";

/** Options of {@linkcode TesClient}. */
export interface TesClientOptions {
  /** Bearer token sent as `Authorization: Bearer …`. @default {undefined} */
  token?: string;
  /** The fetch function to use (a proxy-aware one, for example). @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Extra headers sent with every request. @default {{}} */
  headers?: Record<string, string>;
  /**
   * How many times a GET is retried after a network error or a 503 (other requests are
   * never retried: they are not idempotent).
   *
   * @default {3}
   */
  retries?: number;
  /** Delay before the first retry, doubled for each next one (capped at 5 s). @default {200} */
  retryDelayMs?: number;
}

/** Filters and paging of {@linkcode TesClient.listTasks}. */
export interface TesListTasksQuery {
  /** Only tasks whose name starts with this prefix. */
  namePrefix?: string;
  /** Only tasks in this state. */
  state?: TesState;
  /** Only tasks carrying all these tags; an empty value means the key must exist. */
  tags?: Record<string, string>;
  /** Tasks per page (the server's default is 256, its maximum 2047). */
  pageSize?: number;
  /** `next_page_token` of the previous page. */
  pageToken?: string;
  /** How much of each task to return. @default {"MINIMAL"} */
  view?: TesView;
}

/** Options of {@linkcode TesClient.waitForTask}. */
export interface WaitForTaskOptions {
  /** Milliseconds between two polls. @default {1000} */
  intervalMs?: number;
  /** Stops waiting: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called with the first state seen and with each change. */
  onState?: (state: TesState) => void;
}

/** Options of a single request. */
export interface TesRequestOptions {
  /** Aborts the request. */
  signal?: AbortSignal;
}

/** Options of {@linkcode TesClient.createTasks}. */
export interface CreateTasksOptions extends TesRequestOptions {
  /** Tasks per `POST /tasks:batch`. @default {500} */
  batchSize?: number;
}

const DEFAULT_BATCH_SIZE = 500;

const API_PATH = "/ga4gh/tes/v1";

/**
 * Turns what a user calls "the server" into the TES base URL: a server root gets
 * `/ga4gh/tes/v1`; a URL already ending in `/ga4gh/tes/v1`, `/v1` or `/v1/tasks` is kept
 * (without `/tasks`).
 *
 * @param url A server root (`http://host:8000`) or a TES base URL.
 * @returns The TES base URL, without a trailing slash.
 * @throws {TypeError} When `url` is not an http(s) URL.
 * @example
 * ```ts
 * import { tesBaseUrl } from "./tes_client.ts";
 * tesBaseUrl("http://localhost:8000"); // "http://localhost:8000/ga4gh/tes/v1"
 * tesBaseUrl("http://localhost:8000/v1/"); // "http://localhost:8000/v1"
 * ```
 */
export function tesBaseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`Invalid TES server URL "${url}": expected http://host:port`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(`Invalid TES server URL "${url}": expected an http or https URL`);
  }
  let path = parsed.pathname.replace(/\/+$/, "");
  if (path.endsWith("/v1/tasks")) path = path.slice(0, -"/tasks".length);
  if (!path.endsWith("/v1")) path += API_PATH;
  return `${parsed.origin}${path}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * A typed client of the TES v1.1 API. Every method throws {@linkcode TesApiError} when the
 * server answers with an error and {@linkcode TesConnectionError} when it cannot be reached.
 * GET requests are retried with exponential backoff after network errors and 503 answers.
 *
 * @example
 * ```ts ignore
 * import { TesClient } from "./tes_client.ts";
 * const client = new TesClient("http://127.0.0.1:8000");
 * const id = await client.createTask({
 *   executors: [{ image: "alpine", command: ["echo", "hello"] }],
 * });
 * const task = await client.waitForTask(id);
 * console.log(task.state, task.logs?.[0]?.logs[0]?.stdout);
 * ```
 */
export class TesClient {
  /** The TES base URL (`…/ga4gh/tes/v1` or `…/v1`), without a trailing slash. */
  readonly baseUrl: string;
  /** The URL the client was made with, for messages. */
  readonly serverUrl: string;
  #fetch: typeof fetch;
  #headers: Record<string, string>;
  #retries: number;
  #retryDelayMs: number;
  /** False once the server answered that it has no `POST /tasks:batch`. */
  #batchSupported = true;

  /**
   * Makes a client of one server.
   *
   * @param baseUrl A server root (`http://host:8000`) or a TES base URL (`…/ga4gh/tes/v1`,
   *   `…/v1`).
   * @param options Token, fetch function, extra headers and retry policy.
   * @throws {TypeError} When `baseUrl` is not an http(s) URL.
   */
  constructor(baseUrl: string, options: TesClientOptions = {}) {
    const { token, headers = {}, retries = 3, retryDelayMs = 200 } = options;
    this.baseUrl = tesBaseUrl(baseUrl);
    this.serverUrl = baseUrl;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#headers = { accept: "application/json", ...headers };
    if (token !== undefined) this.#headers["authorization"] = `Bearer ${token}`;
    this.#retries = retries;
    this.#retryDelayMs = retryDelayMs;
  }

  /**
   * Reads the server's service-info document.
   *
   * @param options Request options (`signal`).
   * @returns The service-info document.
   * @throws {TesApiError} When the server answers with an error.
   * @throws {TesConnectionError} When the server cannot be reached.
   */
  serviceInfo(options: TesRequestOptions = {}): Promise<TesServiceInfo> {
    return this.#request<TesServiceInfo>("GET", "/service-info", undefined, options);
  }

  /**
   * Submits a task.
   *
   * @param task The task to run (only `executors` is required).
   * @param options Request options (`signal`).
   * @returns The new task's id.
   * @throws {TesApiError} When the server refuses the task (400 with the reason).
   * @throws {TesConnectionError} When the server cannot be reached.
   * @example
   * ```ts ignore
   * import { TesClient } from "./tes_client.ts";
   * const id = await new TesClient("http://127.0.0.1:8000").createTask({
   *   executors: [{ image: "alpine", command: ["true"] }],
   * });
   * ```
   */
  async createTask(task: TesTask, options: TesRequestOptions = {}): Promise<string> {
    const body = await this.#request<TesCreateTaskResponse>("POST", "/tasks", task, options);
    if (typeof body?.id !== "string") {
      throw new TesApiError(200, "create answer has no task id", `POST ${this.baseUrl}/tasks`);
    }
    return body.id;
  }

  /**
   * Creates many tasks, in batches of `batchSize`, through Planetary's batch extension
   * (`POST /tasks:batch`, one commit per batch). A server without the extension (404, 405 or
   * 501 on the first batch: any other TES server) gets one `POST /tasks` per task instead.
   *
   * @param tasks The tasks to create.
   * @param options `batchSize` (at most the server's `maxBatchTasks`, 1000 by default on
   * Planetary) and `signal`.
   * @returns The new ids, in the order of `tasks`.
   * @throws {TesApiError} When the first batch is refused (400 naming `tasks[i]`): nothing was
   * created.
   * @throws {TesBatchCreateError} When a later request fails: `createdIds` holds the ids of
   * the tasks created before it, and `cause` the failure.
   * @example
   * ```ts ignore
   * import { TesClient } from "./tes_client.ts";
   * const ids = await new TesClient("http://127.0.0.1:8000").createTasks([
   *   { executors: [{ image: "alpine", command: ["echo", "1"] }] },
   *   { executors: [{ image: "alpine", command: ["echo", "2"] }] },
   * ]);
   * ```
   */
  async createTasks(
    tasks: readonly TesTask[],
    options: CreateTasksOptions = {},
  ): Promise<string[]> {
    const { batchSize = DEFAULT_BATCH_SIZE, ...request } = options;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`batchSize: must be a positive integer, got ${batchSize}`);
    }
    const ids: string[] = [];
    let batches = this.#batchSupported;
    for (let start = 0; start < tasks.length; start += batches ? batchSize : 1) {
      try {
        if (!batches) {
          ids.push(await this.createTask(tasks[start]!, request));
          continue;
        }
        const chunk = tasks.slice(start, start + batchSize);
        const body = await this.#request<{ ids?: unknown }>(
          "POST",
          "/tasks:batch",
          { tasks: chunk },
          request,
        );
        const got = body?.ids;
        if (
          !Array.isArray(got) || got.length !== chunk.length ||
          !got.every((id) => typeof id === "string")
        ) {
          throw new TesApiError(
            200,
            "batch create answer has no ids for every task",
            `POST ${this.baseUrl}/tasks:batch`,
          );
        }
        this.#batchSupported = true;
        ids.push(...got);
      } catch (error) {
        const unsupported = error instanceof TesApiError && ids.length === 0 &&
          batches && [404, 405, 501].includes(error.status);
        if (unsupported) {
          this.#batchSupported = batches = false;
          start -= 1; // retry this task alone (the loop adds 1)
          continue;
        }
        if (ids.length === 0) throw error;
        throw new TesBatchCreateError(ids, { cause: error });
      }
    }
    return ids;
  }

  /**
   * Reads one task.
   *
   * @param id The task id.
   * @param view How much of the task to return.
   * @param options Request options (`signal`).
   * @returns The task in the requested view.
   * @throws {TesApiError} 404 when the task does not exist.
   * @throws {TesConnectionError} When the server cannot be reached.
   */
  getTask(
    id: string,
    view: TesView = "MINIMAL",
    options: TesRequestOptions = {},
  ): Promise<TesTask> {
    const path = `/tasks/${encodeURIComponent(id)}?view=${view}`;
    return this.#request<TesTask>("GET", path, undefined, options);
  }

  /**
   * Lists one page of tasks.
   *
   * @param query Filters, paging and view.
   * @param options Request options (`signal`).
   * @returns The page: its tasks and the token of the next page, if any.
   * @throws {TesApiError} When a filter is refused (400).
   * @throws {TesConnectionError} When the server cannot be reached.
   */
  listTasks(
    query: TesListTasksQuery = {},
    options: TesRequestOptions = {},
  ): Promise<TesListTasksResponse> {
    const params = new URLSearchParams();
    if (query.namePrefix !== undefined) params.set("name_prefix", query.namePrefix);
    if (query.state !== undefined) params.set("state", query.state);
    for (const [key, value] of Object.entries(query.tags ?? {})) {
      params.append("tag_key", key);
      params.append("tag_value", value);
    }
    if (query.pageSize !== undefined) params.set("page_size", String(query.pageSize));
    if (query.pageToken !== undefined) params.set("page_token", query.pageToken);
    params.set("view", query.view ?? "MINIMAL");
    return this.#request<TesListTasksResponse>("GET", `/tasks?${params}`, undefined, options);
  }

  /**
   * Lists every task matching the query, following `next_page_token` from page to page.
   *
   * @param query Filters, page size and view (`pageToken` is where to start).
   * @param options Request options (`signal`).
   * @returns The tasks, one by one.
   * @throws {TesApiError} When a filter is refused (400).
   * @throws {TesConnectionError} When the server cannot be reached.
   * @example
   * ```ts ignore
   * import { TesClient } from "./tes_client.ts";
   * for await (const task of new TesClient("http://127.0.0.1:8000").listAllTasks({ state: "RUNNING" })) {
   *   console.log(task.id);
   * }
   * ```
   */
  async *listAllTasks(
    query: TesListTasksQuery = {},
    options: TesRequestOptions = {},
  ): AsyncGenerator<TesTask, void, undefined> {
    let pageToken = query.pageToken;
    do {
      const page = await this.listTasks(
        pageToken === undefined ? { ...query } : { ...query, pageToken },
        options,
      );
      yield* page.tasks ?? [];
      pageToken = page.next_page_token === "" ? undefined : page.next_page_token;
    } while (pageToken !== undefined);
  }

  /**
   * Asks the server to cancel a task. A finished task is left as it is.
   *
   * @param id The task id.
   * @param options Request options (`signal`).
   * @throws {TesApiError} 404 when the task does not exist.
   * @throws {TesConnectionError} When the server cannot be reached.
   */
  async cancelTask(id: string, options: TesRequestOptions = {}): Promise<void> {
    await this.#request<unknown>("POST", `/tasks/${encodeURIComponent(id)}:cancel`, {}, options);
  }

  /**
   * Polls a task until it reaches a terminal state, then reads it in the FULL view.
   *
   * @param id The task id.
   * @param options Poll interval, abort signal and a state-change callback.
   * @returns The finished task, FULL view.
   * @throws {TesApiError} 404 when the task does not exist.
   * @throws {TesConnectionError} When the server cannot be reached (after the GET retries).
   * @throws The signal's reason when `signal` aborts.
   * @example
   * ```ts ignore
   * import { TesClient } from "./tes_client.ts";
   * const task = await new TesClient("http://127.0.0.1:8000").waitForTask("abc", {
   *   intervalMs: 500,
   *   signal: AbortSignal.timeout(60_000),
   *   onState: (state) => console.error(state),
   * });
   * ```
   */
  async waitForTask(id: string, options: WaitForTaskOptions = {}): Promise<TesTask> {
    const { intervalMs = 1000, signal, onState } = options;
    const request = signal === undefined ? {} : { signal };
    let last: TesState | undefined;
    while (true) {
      signal?.throwIfAborted();
      const task = await this.getTask(id, "MINIMAL", request);
      const state = task.state ?? "UNKNOWN";
      if (state !== last) {
        last = state;
        onState?.(state);
      }
      if (isTerminal(state)) return await this.getTask(id, "FULL", request);
      await sleep(intervalMs, signal);
    }
  }

  async #request<T>(
    method: "GET" | "POST",
    path: string,
    body: unknown,
    options: TesRequestOptions,
  ): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    const headers = { ...this.#headers };
    // Every POST says it is JSON (a cancel has no body): servers refuse other POSTs (415).
    if (method === "POST") headers["content-type"] = "application/json";
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (options.signal !== undefined) init.signal = options.signal;
    const attempts = method === "GET" ? this.#retries + 1 : 1;
    for (let attempt = 1;; attempt++) {
      let response: Response;
      try {
        response = await this.#fetch(url, init);
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (attempt < attempts) {
          await this.#backoff(attempt, options.signal);
          continue;
        }
        throw new TesConnectionError(this.serverUrl, { cause: error });
      }
      if (response.status === 503 && attempt < attempts) {
        await response.body?.cancel();
        await this.#backoff(attempt, options.signal);
        continue;
      }
      return await this.#read<T>(response, `${method} ${url}`);
    }
  }

  #backoff(attempt: number, signal: AbortSignal | undefined): Promise<void> {
    return sleep(Math.min(this.#retryDelayMs * 2 ** (attempt - 1), 5000), signal);
  }

  async #read<T>(response: Response, request: string): Promise<T> {
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
      if (response.ok) {
        throw new TesApiError(response.status, "answer is not JSON", request);
      }
    }
    if (!response.ok) {
      const message = messageOf(parsed) ?? (text.trim().slice(0, 500) || response.statusText);
      throw new TesApiError(response.status, message, request);
    }
    return parsed as T;
  }
}

function messageOf(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const record = body as Record<string, unknown>;
  for (const key of ["msg", "message", "error"]) {
    const value = record[key];
    if (typeof value === "string" && value !== "") return value;
  }
  return undefined;
}
