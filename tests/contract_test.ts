/**
 * Contract test: every response shape the API returns is validated against the schemas of the
 * TES v1.1 OpenAPI document, with py-tes's strictness (a property the schema does not declare is
 * an error).
 */
import { parse as parseYaml } from "yaml";
import { assert, assertEquals } from "./_api_assert.ts";
import { requireComponent } from "./_harness/component.ts";
import { createApp, type PlanetaryApp } from "../src/api/app.ts";
import { openTaskStore } from "../src/store/open_store.ts";
import type { TaskStore } from "../src/store/task_store.ts";

const SPEC_URL = new URL("../../shared/tes/task_execution_service.openapi.yaml", import.meta.url);

function specPresent(): boolean {
  try {
    return Deno.statSync(SPEC_URL).isFile;
  } catch {
    return false;
  }
}

type Schema = Record<string, unknown>;

const SERVICE_INFO_REF =
  "https://raw.githubusercontent.com/ga4gh-discovery/ga4gh-service-info/v1.0.0/service-info.yaml#/components/schemas/Service";
const SERVICE_TYPE_REF =
  "https://raw.githubusercontent.com/ga4gh-discovery/ga4gh-service-info/v1.0.0/service-info.yaml#/components/schemas/ServiceType";

/**
 * The GA4GH service-info v1.0.0 schemas that the TES document references by URL (unreachable
 * here), inlined with their required and optional fields.
 */
const EXTERNAL_SCHEMAS: Record<string, Schema> = {
  [SERVICE_TYPE_REF]: {
    type: "object",
    required: ["group", "artifact", "version"],
    properties: {
      group: { type: "string" },
      artifact: { type: "string" },
      version: { type: "string" },
    },
  },
  [SERVICE_INFO_REF]: {
    type: "object",
    required: ["id", "name", "type", "organization", "version"],
    properties: {
      id: { type: "string" },
      name: { type: "string" },
      type: { $ref: SERVICE_TYPE_REF },
      description: { type: "string" },
      organization: {
        type: "object",
        required: ["name", "url"],
        properties: { name: { type: "string" }, url: { type: "string" } },
      },
      contactUrl: { type: "string" },
      documentationUrl: { type: "string" },
      createdAt: { type: "string", format: "date-time" },
      updatedAt: { type: "string", format: "date-time" },
      environment: { type: "string" },
      version: { type: "string" },
    },
  },
};

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
/** Timestamp fields the TES document describes as RFC 3339 in prose only. */
const TIME_FIELDS = new Set(["creation_time", "start_time", "end_time"]);

/**
 * A JSON-schema subset validator: `$ref`, `allOf`, `type`, `required`, `properties`,
 * `additionalProperties` (a schema for maps; otherwise undeclared properties are errors, as
 * py-tes treats them), `items`, `enum`, `format` int32/int64/date-time.
 */
class SchemaChecker {
  #schemas: Record<string, Schema>;
  constructor(schemas: Record<string, Schema>) {
    this.#schemas = schemas;
  }

  check(name: string, value: unknown, options: { skipRequired?: string[] } = {}): string[] {
    const errors: string[] = [];
    this.#check(
      { $ref: `#/components/schemas/${name}` },
      value,
      name,
      errors,
      options.skipRequired ?? [],
    );
    return errors;
  }

  #resolve(schema: Schema): Schema {
    let current = schema;
    for (let i = 0; i < 10 && typeof current.$ref === "string"; i++) {
      const ref = current.$ref;
      const local = /^#\/components\/schemas\/(.+)$/.exec(ref);
      const next = local ? this.#schemas[local[1]!] : EXTERNAL_SCHEMAS[ref];
      if (next === undefined) throw new Error(`unresolvable $ref ${ref}`);
      current = next;
    }
    return current;
  }

  /** Every property name an object schema (with its allOf branches) declares. */
  #declared(schema: Schema): Set<string> {
    const s = this.#resolve(schema);
    const names = new Set(Object.keys((s.properties as Schema | undefined) ?? {}));
    for (const branch of (s.allOf as Schema[] | undefined) ?? []) {
      for (const name of this.#declared(branch)) names.add(name);
    }
    return names;
  }

  #check(
    raw: Schema,
    value: unknown,
    path: string,
    errors: string[],
    skipRequired: string[],
    allowed?: Set<string>,
  ): void {
    const schema = this.#resolve(raw);
    if (Array.isArray(schema.allOf)) {
      const union = allowed ?? this.#declared(schema);
      for (const branch of schema.allOf as Schema[]) {
        this.#check(branch, value, path, errors, skipRequired, union);
      }
    }
    const type = schema.type as string | undefined;
    const isObjectSchema = type === "object" || schema.properties !== undefined;
    if (type !== undefined && !hasType(value, type)) {
      errors.push(`${path}: expected ${type}, got ${JSON.stringify(value)?.slice(0, 60)}`);
      return;
    }
    if (Array.isArray(schema.enum) && !schema.enum.includes(value)) {
      errors.push(`${path}: ${JSON.stringify(value)} not in enum`);
    }
    const format = schema.format;
    if (
      format === "int32" && typeof value === "number" && (value < -(2 ** 31) || value >= 2 ** 31)
    ) {
      errors.push(`${path}: ${value} is out of int32 range`);
    }
    if (format === "int64" && typeof value === "string" && !/^-?\d+$/.test(value)) {
      errors.push(`${path}: "${value}" is not an int64 string`);
    }
    if (format === "int64" && typeof value === "number" && !Number.isInteger(value)) {
      errors.push(`${path}: ${value} is not an int64`);
    }
    const leaf = path.split(".").at(-1) ?? "";
    if (
      typeof value === "string" &&
      (format === "date-time" || TIME_FIELDS.has(leaf)) &&
      !RFC3339.test(value)
    ) {
      errors.push(`${path}: "${value}" is not an RFC 3339 timestamp`);
    }
    if (type === "array" && Array.isArray(value) && schema.items !== undefined) {
      value.forEach((item, i) =>
        this.#check(schema.items as Schema, item, `${path}[${i}]`, errors, skipRequired)
      );
    }
    if (isObjectSchema && isPlainObject(value)) {
      const properties = (schema.properties as Record<string, Schema> | undefined) ?? {};
      for (const name of (schema.required as string[] | undefined) ?? []) {
        if (!(name in value) && !skipRequired.includes(name)) {
          errors.push(`${path}.${name}: required`);
        }
      }
      const additional = schema.additionalProperties;
      for (const [key, item] of Object.entries(value)) {
        const declared = properties[key];
        if (declared !== undefined) {
          this.#check(declared, item, `${path}.${key}`, errors, skipRequired);
        } else if (typeof additional === "object" && additional !== null) {
          this.#check(additional as Schema, item, `${path}.${key}`, errors, skipRequired);
        } else if (additional !== true && !(allowed?.has(key) ?? false)) {
          errors.push(`${path}.${key}: not declared in the schema`);
        }
      }
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case "string":
      return typeof value === "string";
    case "integer":
      return typeof value === "number" && Number.isInteger(value);
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "boolean":
      return typeof value === "boolean";
    case "array":
      return Array.isArray(value);
    case "object":
      return isPlainObject(value);
    default:
      return true;
  }
}

async function loadChecker(): Promise<SchemaChecker> {
  const doc = parseYaml(await Deno.readTextFile(SPEC_URL)) as {
    components: { schemas: Record<string, Schema> };
  };
  return new SchemaChecker(doc.components.schemas);
}

const FULL_TASK = {
  name: "contract",
  description: "every field",
  inputs: [
    { name: "in", description: "inline", path: "/data/in.txt", content: "hello", type: "FILE" },
    { path: "/data/ref", url: "s3://bucket/ref", type: "DIRECTORY", streamable: true },
  ],
  outputs: [
    { name: "out", path: "/data/out.txt", url: "s3://bucket/out.txt" },
    { path: "/data/results/*.txt", path_prefix: "/data/results/", url: "s3://bucket/results/" },
  ],
  resources: {
    cpu_cores: 2,
    preemptible: true,
    ram_gb: 1.5,
    disk_gb: 10,
    zones: ["zone-a"],
    backend_parameters: { VmSize: "small" },
    backend_parameters_strict: false,
  },
  executors: [
    {
      image: "alpine:3.20",
      command: ["sh", "-c", "echo hi"],
      workdir: "/data",
      stdin: "/data/in.txt",
      stdout: "/data/stdout",
      stderr: "/data/stderr",
      env: { A: "1" },
      ignore_error: true,
    },
    { image: "alpine:3.20", command: ["true"] },
  ],
  volumes: ["/scratch"],
  tags: { project: "contract", empty: "" },
};

Deno.test({
  name: "createApp() answers only shapes of the TES v1.1 OpenAPI schemas",
  ignore: !requireComponent(
    specPresent(),
    `TES OpenAPI document not found at ${SPEC_URL.pathname}`,
  ),
  async fn(t) {
    const checker = await loadChecker();
    const store: TaskStore = await openTaskStore({});
    const app: PlanetaryApp = createApp({
      store,
      config: {
        logRequests: false,
        supportedBackendParameters: ["VmSize"],
        serviceInfo: {
          description: "contract",
          contactUrl: "mailto:ops@example.org",
          documentationUrl: "https://example.org/docs",
          environment: "test",
          createdAt: "2024-01-01T00:00:00Z",
          updatedAt: "2024-06-01T00:00:00Z",
          storage: ["s3://bucket"],
        },
      },
    });
    const call = async (method: string, path: string, body?: unknown): Promise<unknown> => {
      const res = await app.fetch(
        new Request(`http://planetary.test${path}`, {
          method,
          ...(body === undefined
            ? {}
            : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
        }),
      );
      assertEquals(res.status, 200, `${method} ${path}`);
      return await res.json();
    };
    const expectValid = (name: string, value: unknown, skipRequired: string[] = []): void => {
      assertEquals(
        checker.check(name, value, { skipRequired }),
        [],
        `${name}: ${JSON.stringify(value)}`,
      );
    };

    try {
      await t.step("the checker itself rejects undeclared properties and wrong types", () => {
        const strict = checker.check("tesTask", {
          executors: [{ image: "a", command: ["b"], extra: 1 }],
          resources: { cpu_cores: 1.5 },
          logs: [{ logs: [{ exit_code: 0 }], outputs: [{ url: "u", path: "/p", size_bytes: 12 }] }],
          creation_time: "yesterday",
        });
        assert(
          strict.some((e) => e.includes("executors[0].extra: not declared")),
          strict.join("\n"),
        );
        assert(strict.some((e) => e.includes("cpu_cores: expected integer")), strict.join("\n"));
        assert(strict.some((e) => e.includes("size_bytes: expected string")), strict.join("\n"));
        assert(strict.some((e) => e.includes("creation_time")), strict.join("\n"));
        const info = checker.check("tesServiceInfo", { id: "x", name: "y", bogus: true });
        assert(info.some((e) => e.includes("bogus: not declared")), info.join("\n"));
        assert(info.some((e) => e.includes("organization: required")), info.join("\n"));
      });

      await t.step("service-info", async () => {
        for (const path of ["/service-info", "/v1/service-info", "/ga4gh/tes/v1/service-info"]) {
          const info = await call("GET", path);
          expectValid("tesServiceInfo", info);
        }
      });

      const created = await call("POST", "/v1/tasks", FULL_TASK) as { id: string };
      await t.step("create", () => expectValid("tesCreateTaskResponse", created));
      const id = created.id;

      const finished = (await call("POST", "/v1/tasks", FULL_TASK) as { id: string }).id;
      assert(await store.transition(finished, "INITIALIZING", { metadata: { pod: "task-pod" } }));
      assert(await store.transition(finished, "RUNNING", { startTime: new Date() }));
      await store.update(finished, {
        executorLogs: [{ exit_code: 0, start_time: new Date().toISOString() }],
      });
      assert(
        await store.transition(finished, "COMPLETE", {
          executorLogs: [
            {
              exit_code: 0,
              start_time: "2024-01-01T00:00:00Z",
              end_time: "2024-01-01T00:00:01Z",
              stdout: "hi\n",
              stderr: "",
            },
            { exit_code: 0 },
          ],
          outputs: [
            { url: "s3://bucket/out.txt", path: "/data/out.txt", size_bytes: "3" },
            { url: "s3://bucket/results/a.txt", path: "/data/results/a.txt", size_bytes: "0" },
          ],
          systemLogs: ["completed"],
          endTime: new Date(),
        }),
      );

      await t.step("get in MINIMAL, BASIC and FULL (queued and finished)", async () => {
        for (const taskId of [id, finished]) {
          for (const view of ["MINIMAL", "BASIC", "FULL"]) {
            const task = await call("GET", `/ga4gh/tes/v1/tasks/${taskId}?view=${view}`);
            // The specification marks `executors` required, yet its own MINIMAL view holds
            // only `id` and `state`; py-tes accepts that, so MINIMAL skips this one rule.
            expectValid("tesTask", task, view === "MINIMAL" ? ["executors"] : []);
          }
        }
        const full = await call("GET", `/v1/tasks/${finished}?view=FULL`) as {
          logs: { logs: unknown[]; outputs: unknown[]; system_logs: string[] }[];
        };
        assertEquals(full.logs[0]?.outputs.length, 2, "the FULL task carries the written logs");
        assertEquals(full.logs[0]?.system_logs, ["completed"]);
      });

      await t.step("list in every view, with a next page token", async () => {
        for (const view of ["MINIMAL", "BASIC", "FULL"]) {
          const skip = view === "MINIMAL" ? ["executors"] : [];
          const page = await call("GET", `/v1/tasks?view=${view}&page_size=1`) as {
            next_page_token?: string;
          };
          assert(page.next_page_token !== undefined);
          expectValid("tesListTasksResponse", page, skip);
          const all = await call("GET", `/v1/tasks?view=${view}`) as { tasks: unknown[] };
          assertEquals(all.tasks.length, 2);
          expectValid("tesListTasksResponse", all, skip);
        }
      });

      await t.step("cancel", async () => {
        const canceled = await call("POST", `/v1/tasks/${id}:cancel`);
        expectValid("tesCancelTaskResponse", canceled);
        assertEquals(canceled, {});
        expectValid("tesTask", await call("GET", `/v1/tasks/${id}?view=FULL`));
      });
    } finally {
      await store.close();
    }
  },
});
