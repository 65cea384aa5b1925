/**
 * The task store conformance suite: the same cases against real PostgreSQL (a throwaway
 * cluster), embedded SQLite and PGlite, plus what only some of them have (concurrent
 * migrations on PostgreSQL; the data folder: its engine, its lock, data kept across reopen).
 */
import assert from "node:assert/strict";
import {
  dataDirContents,
  DataDirLockedError,
  InvalidPageTokenError,
  migrate,
  openPgliteDriver,
  openPostgresDriver,
  openSqliteTaskStore,
  openTaskStore,
  SQLITE_FILE,
  SqlTaskStore,
  TaskNotFoundError,
  type TaskStore,
} from "../src/store/mod.ts";
import type { TesState, TesTask } from "../src/tes/model.ts";
import {
  createDatabase,
  type PostgresCluster,
  requirePostgres,
  startPostgres,
} from "./_harness/postgres.ts";

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function task(extra: Partial<TesTask> = {}): TesTask {
  return { executors: [{ image: "alpine", command: ["echo", "hi"] }], ...extra };
}

async function pollUntil<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const value = await fn();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function listAll(
  store: TaskStore,
  pageSize: number,
  filters: { state?: TesState; tags?: Record<string, string>; namePrefix?: string } = {},
): Promise<string[]> {
  const ids: string[] = [];
  let pageToken: string | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const page = await store.list({
      ...filters,
      pageSize,
      view: "MINIMAL",
      ...(pageToken === undefined ? {} : { pageToken }),
    });
    assert.ok(page.tasks.length <= pageSize);
    ids.push(...page.tasks.map((t) => t.id!));
    if (page.nextPageToken === undefined) return ids;
    assert.equal(page.tasks.length, pageSize, "only the last page may be short");
    pageToken = page.nextPageToken;
  }
  throw new Error("pagination does not end");
}

/** A store under test: the contract, and the wait that tells what woke it. */
type TestedStore = TaskStore & Pick<SqlTaskStore, "waitForNotification">;
type Open = () => Promise<TestedStore>;

async function withStore(open: Open, fn: (store: TestedStore) => Promise<void>): Promise<void> {
  const store = await open();
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

/** The cases every implementation must pass. */
async function conformance(t: Deno.TestContext, open: Open): Promise<void> {
  await t.step("create() and get() serve MINIMAL, BASIC and FULL", async () => {
    await withStore(open, async (store) => {
      const content = "x".repeat(128 * 1024);
      const id = await store.create(
        task({
          name: "views",
          description: "d",
          inputs: [{ path: "/in/a", content }, { path: "/in/b", url: "s3://b/k" }],
          outputs: [{ path: "/out", url: "s3://b/out" }],
          resources: { cpu_cores: 2, ram_gb: 1.5 },
          volumes: ["/vol"],
          tags: { project: "p1" },
        }),
      );
      assert.match(id, /^[a-z][a-z2-7]{25}$/);
      assert.deepEqual(await store.get(id, "MINIMAL"), { id, state: "QUEUED" });

      const basic = await store.get(id, "BASIC");
      assert.equal(basic.name, "views");
      assert.deepEqual(basic.inputs, [{ path: "/in/a" }, { path: "/in/b", url: "s3://b/k" }]);
      assert.deepEqual(basic.resources, { cpu_cores: 2, ram_gb: 1.5 });
      assert.deepEqual(basic.volumes, ["/vol"]);
      assert.deepEqual(basic.tags, { project: "p1" });
      assert.match(basic.creation_time!, RFC3339);
      assert.equal(basic.logs, undefined, "a queued task has no logs");

      const full = await store.get(id, "FULL");
      assert.equal(full.inputs?.[0]?.content, content);
      assert.equal(full.inputs?.[1]?.content, undefined);

      await store.claim("o1", 1, 60_000);
      const start = new Date("2024-01-02T03:04:05.678Z");
      assert.equal(
        await store.transition(id, "RUNNING", {
          startTime: start,
          executorLogs: [{ exit_code: 0, stdout: "out", stderr: "err", start_time: "t0" }],
          systemLogs: ["pulled image"],
          metadata: { pod: "p" },
        }),
        true,
      );
      await store.update(id, {
        systemLogs: ["second line"],
        metadata: { node: "n" },
        outputs: [{ url: "s3://b/out/f", path: "/out/f", size_bytes: "3" }],
      });
      const basicRunning = await store.get(id, "BASIC");
      assert.deepEqual(basicRunning.logs, [{
        logs: [{ start_time: "t0", exit_code: 0 }],
        outputs: [{ url: "s3://b/out/f", path: "/out/f", size_bytes: "3" }],
        metadata: { pod: "p", node: "n" },
        start_time: "2024-01-02T03:04:05.678Z",
      }]);
      const fullRunning = await store.get(id, "FULL");
      assert.deepEqual(fullRunning.logs?.[0]?.logs, [{
        start_time: "t0",
        exit_code: 0,
        stdout: "out",
        stderr: "err",
      }]);
      assert.deepEqual(fullRunning.logs?.[0]?.system_logs, ["pulled image", "second line"]);

      const listed = await store.list({ pageSize: 10, view: "BASIC" });
      assert.equal(listed.tasks[0]?.inputs?.[0]?.content, undefined);
      assert.equal(listed.tasks[0]?.logs?.[0]?.system_logs, undefined);
      const listedFull = await store.list({ pageSize: 10, view: "FULL" });
      assert.equal(listedFull.tasks[0]?.inputs?.[0]?.content, content);
    });
  });

  await t.step("get() throws TaskNotFoundError for unknown ids and other owners", async () => {
    await withStore(open, async (store) => {
      await assert.rejects(store.get("nosuchtask", "MINIMAL"), TaskNotFoundError);
      const id = await store.create(task(), { owner: "alice" });
      assert.equal((await store.get(id, "MINIMAL", "alice")).id, id);
      await assert.rejects(store.get(id, "MINIMAL", "bob"), TaskNotFoundError);
      await assert.rejects(store.cancel(id, "bob"), TaskNotFoundError);
      assert.equal(
        (await store.list({ pageSize: 5, view: "MINIMAL", owner: "bob" })).tasks.length,
        0,
      );
      assert.deepEqual(
        (await store.list({ pageSize: 5, view: "MINIMAL", owner: "alice" })).tasks.map((x) => x.id),
        [id],
      );
      await assert.rejects(store.update("nosuchtask", { systemLogs: ["x"] }), TaskNotFoundError);
    });
  });

  await t.step("list() treats % and _ in name_prefix literally", async () => {
    await withStore(open, async (store) => {
      const names = ["a%x", "abx", "a_y", "azy", "a\\z", "b%"];
      const ids = new Map<string, string>();
      for (const name of names) ids.set(name, await store.create(task({ name })));
      const names_of = async (namePrefix: string): Promise<string[]> =>
        (await store.list({ namePrefix, pageSize: 50, view: "BASIC" })).tasks.map((x) => x.name!)
          .sort();
      assert.deepEqual(await names_of("a%"), ["a%x"]);
      assert.deepEqual(await names_of("a_"), ["a_y"]);
      assert.deepEqual(await names_of("a\\"), ["a\\z"]);
      assert.deepEqual(await names_of("a"), ["a%x", "a\\z", "a_y", "abx", "azy"]);
      assert.deepEqual(await names_of(""), [...names].sort());
    });
  });

  await t.step("list() filters by state, newest first", async () => {
    await withStore(open, async (store) => {
      const a = await store.create(task());
      const b = await store.create(task());
      const c = await store.create(task());
      await store.cancel(b);
      const queued = await store.list({ state: "QUEUED", pageSize: 10, view: "MINIMAL" });
      assert.deepEqual(queued.tasks, [{ id: c, state: "QUEUED" }, { id: a, state: "QUEUED" }]);
      const canceled = await store.list({ state: "CANCELED", pageSize: 10, view: "MINIMAL" });
      assert.deepEqual(canceled.tasks.map((x) => x.id), [b]);
    });
  });

  await t.step("list() follows the TES specification's tag table", async () => {
    await withStore(open, async (store) => {
      // [filter, task tags, match?], as in the specification.
      const table: [Record<string, string>, Record<string, string>, boolean][] = [
        [{ foo: "bar" }, { foo: "bar" }, true],
        [{ foo: "bar" }, { foo: "bat" }, false],
        [{ foo: "" }, { foo: "" }, true],
        [{ foo: "bar", baz: "bat" }, { foo: "bar", baz: "bat" }, true],
        [{ foo: "bar" }, { foo: "bar", baz: "bat" }, true],
        [{ foo: "bar", baz: "bat" }, { foo: "bar" }, false],
        [{ foo: "" }, { foo: "bar" }, true],
        [{ foo: "" }, {}, false],
      ];
      for (const [i, [filter, tags, match]] of table.entries()) {
        const id = await store.create(task({ name: `row${i}-`, tags }));
        const page = await store.list({
          namePrefix: `row${i}-`,
          tags: filter,
          pageSize: 10,
          view: "MINIMAL",
        });
        assert.deepEqual(page.tasks.map((x) => x.id), match ? [id] : [], `row ${i}`);
      }
      // Across all rows at once: {foo: ""} matches every task that has a foo tag.
      const any = await store.list({ tags: { foo: "" }, pageSize: 50, view: "BASIC" });
      assert.deepEqual(any.tasks.map((x) => x.name).sort(), [
        "row0-",
        "row1-",
        "row2-",
        "row3-",
        "row4-",
        "row5-",
        "row6-",
      ]);
      const both = await store.list({ tags: { foo: "bar", baz: "" }, pageSize: 50, view: "BASIC" });
      assert.deepEqual(both.tasks.map((x) => x.name).sort(), ["row3-", "row4-"]);
    });
  });

  await t.step("list() pages walk every task exactly once (sizes 1, 2, 7)", async () => {
    await withStore(open, async (store) => {
      const created: string[] = [];
      for (let i = 0; i < 23; i++) {
        created.push(await store.create(task({ tags: { parity: i % 2 === 0 ? "even" : "odd" } })));
      }
      const newestFirst = [...created].reverse();
      for (const size of [1, 2, 7]) {
        assert.deepEqual(await listAll(store, size), newestFirst, `page size ${size}`);
        assert.deepEqual(
          await listAll(store, size, { tags: { parity: "even" } }),
          newestFirst.filter((_, i) => (22 - i) % 2 === 0),
          `page size ${size}, tag filter`,
        );
      }
      assert.deepEqual(await listAll(store, 23), newestFirst);
      assert.deepEqual(await listAll(store, 2047), newestFirst);
    });
  });

  await t.step("list() rejects garbage page tokens and tokens of other filters", async () => {
    await withStore(open, async (store) => {
      for (let i = 0; i < 3; i++) await store.create(task({ tags: { k: "v" } }));
      const first = await store.list({ pageSize: 1, view: "MINIMAL" });
      assert.ok(first.nextPageToken !== undefined);
      for (const pageToken of ["garbage", "", "%%%", "MTIz"]) {
        await assert.rejects(
          store.list({ pageSize: 1, view: "MINIMAL", pageToken }),
          InvalidPageTokenError,
          pageToken,
        );
      }
      await assert.rejects(
        store.list({
          pageSize: 1,
          view: "MINIMAL",
          tags: { k: "v" },
          pageToken: first.nextPageToken,
        }),
        InvalidPageTokenError,
      );
      await assert.rejects(
        store.list({
          pageSize: 1,
          view: "MINIMAL",
          state: "QUEUED",
          pageToken: first.nextPageToken,
        }),
        InvalidPageTokenError,
      );
      // Same filters, other view and page size: accepted.
      const next = await store.list({ pageSize: 5, view: "BASIC", pageToken: first.nextPageToken });
      assert.equal(next.tasks.length, 2);
    });
  });

  await t.step("cancel() follows the state machine and leaves terminal tasks alone", async () => {
    await withStore(open, async (store) => {
      const queued = await store.create(task());
      assert.deepEqual(await store.cancel(queued), { state: "CANCELED", changed: true });
      assert.deepEqual(await store.cancel(queued), { state: "CANCELED", changed: false });
      const log = (await store.get(queued, "FULL")).logs?.[0];
      assert.deepEqual(log?.system_logs, ["cancel requested while QUEUED"], "says why it ended");
      assert.ok(log?.end_time !== undefined, "a task canceled while QUEUED has an end_time");

      const running = await store.create(task());
      await store.claim("o1", 10, 60_000);
      assert.equal(await store.transition(running, "RUNNING"), true);
      assert.deepEqual(await store.cancel(running), { state: "CANCELING", changed: true });
      assert.deepEqual(await store.cancel(running), { state: "CANCELING", changed: false });
      assert.deepEqual(
        (await store.get(running, "FULL")).logs?.[0]?.system_logs,
        ["cancel requested while RUNNING"],
        "a repeated cancel adds no second line",
      );
      assert.deepEqual(await store.cancelingTasks("o1"), [running]);
      assert.deepEqual(await store.cancelingTasks("o2"), []);
      assert.deepEqual(await store.cancelingTasks(), [running]);
      assert.equal(
        await store.transition(running, "COMPLETE"),
        false,
        "CANCELING only ends CANCELED",
      );
      assert.equal(await store.transition(running, "CANCELED"), true);
      assert.deepEqual(await store.cancelingTasks(), []);

      const done = await store.create(task());
      await store.claim("o1", 10, 60_000);
      assert.equal(await store.transition(done, "COMPLETE"), true);
      assert.deepEqual(await store.cancel(done), { state: "COMPLETE", changed: false });
      await assert.rejects(store.cancel("nosuchtask"), TaskNotFoundError);
    });
  });

  await t.step("transition() is compare-and-set: one of two racing writers wins", async () => {
    await withStore(open, async (store) => {
      for (let round = 0; round < 10; round++) {
        const id = await store.create(task());
        await store.claim("o1", 1, 60_000);
        const results = await Promise.all([
          store.transition(id, "COMPLETE", { endTime: new Date() }),
          store.transition(id, "EXECUTOR_ERROR", { endTime: new Date() }),
          store.transition(id, "SYSTEM_ERROR", { systemLogs: ["lost"] }),
        ]);
        assert.equal(results.filter(Boolean).length, 1, `round ${round}: ${results}`);
      }
      const id = await store.create(task());
      await store.claim("o1", 1, 60_000);
      assert.equal(await store.transition(id, "RUNNING"), true);
      assert.equal(await store.transition(id, "INITIALIZING"), false, "never backwards");
      assert.equal(await store.transition(id, "QUEUED"), false, "never backwards");
      assert.equal(await store.transition(id, "COMPLETE"), true);
      assert.equal(await store.transition(id, "RUNNING"), false, "terminal is final");
      assert.equal((await store.get(id, "MINIMAL")).state, "COMPLETE");
      assert.equal(await store.transition("nosuchtask", "RUNNING"), false);
    });
  });

  await t.step(
    "concurrent transitions, updates and cancels of many tasks each apply exactly as alone",
    async () => {
      await withStore(open, async (store) => {
        const ids = await store.createMany(Array.from({ length: 120 }, () => task()));
        const claimed = await store.claim("o1", 120, 60_000);
        assert.equal(claimed.length, 120);
        // every task gets, at once: a move to RUNNING, a log line, and (every third) a cancel;
        // every tenth gets a log line the database refuses (a NUL), which must fail alone
        const settled = await Promise.allSettled(ids.flatMap((id, i) => [
          store.transition(id, "RUNNING", { startTime: new Date() }),
          store.update(id, { systemLogs: [i % 10 === 3 ? `bad\u0000${i}` : `line ${i}`] }),
          ...(i % 3 === 0 ? [store.cancel(id)] : []),
        ]));
        const rejected = settled.flatMap((r, k) => r.status === "rejected" ? [k] : []);
        assert.equal(rejected.length, 12, "only the 12 refused updates fail");
        for (const [i, id] of ids.entries()) {
          const got = await store.get(id, "FULL");
          assert.equal(got.state, i % 3 === 0 ? "CANCELING" : "RUNNING", `task ${i}`);
          const lines = got.logs?.[0]?.system_logs ?? [];
          assert.equal(lines.includes(`line ${i}`), i % 10 !== 3, `task ${i}: ${lines}`);
        }
        // a second round of racing writers: still exactly one wins each task
        const wins = await Promise.all(ids.map((id) =>
          Promise.all([
            store.transition(id, "COMPLETE", { endTime: new Date() }),
            store.transition(id, "SYSTEM_ERROR", { systemLogs: ["lost"] }),
          ])
        ));
        for (const [i, pair] of wins.entries()) {
          assert.equal(pair.filter(Boolean).length, i % 3 === 0 ? 0 : 1, `task ${i}: ${pair}`);
        }
      });
    },
  );

  await t.step("claim() by two owners at once never hands a task to both", async () => {
    await withStore(open, async (store) => {
      const created = new Set<string>();
      for (let i = 0; i < 40; i++) created.add(await store.create(task()));
      const claimAll = async (owner: string): Promise<string[]> => {
        const got: string[] = [];
        for (;;) {
          const batch = await store.claim(owner, 3, 60_000);
          if (batch.length === 0) return got;
          for (const claimed of batch) {
            assert.equal(claimed.claimOwner, owner);
            assert.equal(claimed.task.state, "INITIALIZING");
            assert.ok(claimed.leaseExpiresAt.getTime() > Date.now() + 30_000);
            got.push(claimed.task.id);
          }
        }
      };
      const [a, b, c] = await Promise.all([claimAll("a"), claimAll("b"), claimAll("c")]);
      const all = [...a, ...b, ...c];
      assert.equal(all.length, 40);
      assert.deepEqual(new Set(all), created);
    });
  });

  await t.step("claim() hands out oldest first and re-claims expired leases", async () => {
    await withStore(open, async (store) => {
      const first = await store.create(task());
      const second = await store.create(task());
      const claimed = await store.claim("o1", 1, 0);
      assert.deepEqual(claimed.map((c) => c.task.id), [first]);
      assert.equal(await store.transition(first, "RUNNING"), true);
      // The lease of o1 is already over: another owner takes the task, keeping its state.
      const reclaimed = await pollUntil("an expired lease", async () => {
        const batch = await store.claim("o2", 1, 60_000);
        return batch.length > 0 ? batch : undefined;
      });
      assert.equal(reclaimed[0]?.task.id, first, "oldest first, expired ones included");
      assert.equal(reclaimed[0]?.task.state, "RUNNING");
      assert.equal(reclaimed[0]?.claimOwner, "o2");
      assert.equal(await store.renewLeases("o1", 60_000), 0, "o1 lost its claim");
      const next = await store.claim("o3", 5, 60_000);
      assert.deepEqual(next.map((c) => c.task.id), [second]);
      assert.deepEqual(await store.claim("o3", 5, 60_000), []);
    });
  });

  await t.step("renewLeases() extends live claims of one owner only", async () => {
    await withStore(open, async (store) => {
      const ids = [
        await store.create(task()),
        await store.create(task()),
        await store.create(task()),
      ];
      await store.claim("o1", 3, 0);
      assert.equal(await store.transition(ids[2]!, "COMPLETE"), true);
      assert.equal(await store.renewLeases("o1", 60_000), 2, "terminal tasks are not renewed");
      assert.equal(await store.renewLeases("o2", 60_000), 0);
      // Renewed leases are no longer expired: nobody else may claim them.
      assert.deepEqual(await store.claim("o2", 5, 60_000), []);
      // Only the listed tasks: the other one's lease runs out and it can be taken back.
      assert.equal(await store.renewLeases("o1", -1, [ids[1]!]), 1);
      assert.equal(await store.renewLeases("o1", 60_000, [ids[0]!]), 1);
      assert.equal(await store.renewLeases("o1", 60_000, []), 0);
      const taken = await store.claim("o2", 5, 60_000);
      assert.deepEqual(taken.map((c) => c.task.id), [ids[1]]);
    });
  });

  await t.step(
    "liveTasks() pages through claimed, unfinished tasks with their claims",
    async () => {
      await withStore(open, async (store) => {
        const queued = await store.create(task());
        assert.deepEqual(await store.liveTasks(), [], "a QUEUED task is not live");
        const before = Date.now();
        await store.claim("o1", 1, 60_000);
        const ids = [queued];
        for (let i = 0; i < 4; i++) ids.push(await store.create(task()));
        await store.claim("o2", 4, 60_000);
        assert.equal(await store.transition(ids[1]!, "RUNNING"), true);
        assert.equal(await store.transition(ids[2]!, "COMPLETE"), true);
        assert.deepEqual((await store.cancel(ids[3]!)).state, "CANCELING");
        const live = ids.filter((id) => id !== ids[2]).sort();

        const all = await store.liveTasks();
        assert.deepEqual(all.map((t) => t.id), live, "ordered by id, terminal ones left out");
        const first = all.find((t) => t.id === queued)!;
        assert.equal(first.state, "INITIALIZING");
        assert.equal(first.claimOwner, "o1");
        assert.ok(first.leaseExpiresAt!.getTime() > Date.now() + 30_000);
        assert.ok(Math.abs(first.updatedAt.getTime() - before) < 60_000);
        assert.deepEqual(
          Object.fromEntries(all.map((t) => [t.id, t.state])),
          {
            [ids[0]!]: "INITIALIZING",
            [ids[1]!]: "RUNNING",
            [ids[3]!]: "CANCELING",
            [ids[4]!]: "INITIALIZING",
          },
        );

        const paged: string[] = [];
        let afterId: string | undefined;
        for (let pages = 0; pages < 10; pages++) {
          const page = await store.liveTasks({ limit: 3, ...(afterId ? { afterId } : {}) });
          assert.ok(page.length <= 3);
          paged.push(...page.map((t) => t.id));
          if (page.length < 3) break;
          afterId = page[page.length - 1]!.id;
        }
        assert.deepEqual(paged, live);
      });
    },
  );

  await t.step("staleLeases() finds live tasks whose lease expired long ago", async () => {
    await withStore(open, async (store) => {
      // Claimed with valid leases first (claim() would take over expired ones), then expired.
      const stale = await store.create(task());
      await store.claim("dead", 1, 60_000);
      const recent = await store.create(task());
      await store.claim("dying", 1, 60_000);
      await store.create(task());
      await store.claim("alive", 1, 60_000);
      const done = await store.create(task());
      await store.claim("dead", 1, 60_000);
      assert.equal(await store.transition(done, "COMPLETE"), true);
      assert.equal(await store.renewLeases("dead", -120_000), 1);
      assert.equal(await store.renewLeases("dying", -1_000), 1);

      const found = await store.staleLeases(60_000);
      assert.deepEqual(found.map((t) => t.id), [stale]);
      assert.equal(found[0]?.claimOwner, "dead");
      assert.ok(found[0]!.leaseExpiresAt!.getTime() < Date.now() - 60_000);
      assert.deepEqual(
        (await store.staleLeases(0)).map((t) => t.id),
        [stale, recent],
        "longest expired first; valid leases and terminal tasks left out",
      );
      assert.deepEqual((await store.staleLeases(0, 1)).map((t) => t.id), [stale]);
      // Adoption by a live orchestrator makes the lease fresh again.
      await store.claim("adopter", 5, 60_000);
      assert.deepEqual(await store.staleLeases(0), []);
    });
  });

  await t.step("leaseInfo() reads the claims of tasks in any state", async () => {
    await withStore(open, async (store) => {
      const queued = await store.create(task());
      const claimed = await store.create(task());
      await store.claim("o1", 2, 60_000);
      assert.equal(await store.transition(claimed, "SYSTEM_ERROR"), true);
      const queuedOnly = await store.create(task());
      const infos = await store.leaseInfo([queued, claimed, queuedOnly, "nosuchtask"]);
      const byId = new Map(infos.map((info) => [info.id, info]));
      assert.equal(byId.size, 3, "unknown ids are left out");
      assert.equal(byId.get(claimed)?.state, "SYSTEM_ERROR");
      assert.equal(byId.get(claimed)?.claimOwner, "o1");
      assert.equal(byId.get(queuedOnly)?.state, "QUEUED");
      assert.equal(byId.get(queuedOnly)?.claimOwner, undefined);
      assert.equal(byId.get(queuedOnly)?.leaseExpiresAt, undefined);
      assert.ok(byId.get(queuedOnly)!.updatedAt instanceof Date);
      assert.deepEqual(await store.leaseInfo([]), []);
    });
  });

  await t.step("waitForWork() is woken by create()", async () => {
    await withStore(open, async (store) => {
      assert.equal(await store.waitForNotification(0), false, "nothing happened yet");
      const woken = store.waitForNotification(60_000);
      await store.create(task());
      assert.equal(await woken, true);
      // A notification while nobody waits is kept for the next wait.
      await store.create(task());
      await pollUntil(
        "the notification",
        async () => (await store.waitForNotification(0)) || undefined,
      );
      const aborted = new AbortController();
      const waiting = store.waitForNotification(60_000, aborted.signal);
      aborted.abort();
      assert.equal(await waiting, false);
      await store.waitForWork(0);
    });
  });

  await t.step("createMany() inserts every task in order, with its tags, all or none", async () => {
    await withStore(open, async (store) => {
      const tasks = Array.from(
        { length: 7 },
        (_, i) => task({ name: `m${i}`, tags: { i: `${i}` } }),
      );
      const ids = await store.createMany(tasks, { owner: "alice" });
      assert.equal(new Set(ids).size, 7);
      for (const [i, id] of ids.entries()) {
        const got = await store.get(id, "BASIC", "alice");
        assert.equal(got.name, `m${i}`);
        assert.deepEqual(got.tags, { i: `${i}` });
        assert.equal(got.state, "QUEUED");
      }
      await assert.rejects(store.get(ids[0]!, "MINIMAL", "bob"), TaskNotFoundError);
      // newest first: the last task of the batch is listed first
      assert.deepEqual(await listAll(store, 3), [...ids].reverse());
      const tagged = await store.list({ tags: { i: "4" }, pageSize: 5, view: "MINIMAL" });
      assert.deepEqual(tagged.tasks.map((x) => x.id), [ids[4]]);
      assert.deepEqual(await store.createMany([]), []);
      // a NUL character is refused by the database (jsonb): the whole batch fails, none lands
      await assert.rejects(store.createMany([task({ name: "ok" }), task({ name: "bad\u0000" })]));
      assert.equal((await listAll(store, 50)).length, 7, "nothing of the failed batch landed");
    });
  });

  await t.step(
    "concurrent create() calls are committed together, each answered with its own task",
    async () => {
      await withStore(open, async (store) => {
        const names = Array.from({ length: 300 }, (_, i) => `c${i}`);
        const settled = await Promise.allSettled(
          names.map((name, i) =>
            // every 50th task is one the database refuses: it must fail alone
            store.create(task({ name: i % 50 === 7 ? `${name}\u0000` : name, tags: { n: name } }))
          ),
        );
        const failed = settled.flatMap((r, i) => r.status === "rejected" ? [i] : []);
        assert.deepEqual(failed, [7, 57, 107, 157, 207, 257]);
        const ids = settled.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
        assert.equal(new Set(ids).size, 294);
        for (const [i, result] of settled.entries()) {
          if (result.status !== "fulfilled") continue;
          const got = await store.get(result.value, "BASIC");
          assert.equal(got.name, names[i]);
          assert.deepEqual(got.tags, { n: names[i] });
        }
        assert.equal((await listAll(store, 500)).length, 294);
      });
    },
  );

  await t.step(
    "create() keeps tags and names exactly (unicode, quotes, empty values)",
    async () => {
      await withStore(open, async (store) => {
        const tags = { "k'1": 'v"1', "ключ": "значение", empty: "" };
        const id = await store.create(task({ name: "naïve 'quoted' \"name\"", tags }));
        const got = await store.get(id, "BASIC");
        assert.equal(got.name, "naïve 'quoted' \"name\"");
        assert.deepEqual(got.tags, tags);
        const page = await store.list({
          tags: { "ключ": "значение" },
          pageSize: 5,
          view: "MINIMAL",
        });
        assert.deepEqual(page.tasks.map((x) => x.id), [id]);
        await store.ping();
      });
    },
  );
}

Deno.test({
  name: "SqlTaskStore on PGlite passes the conformance suite",
  async fn(t) {
    // One PGlite instance (slow to start), one fresh schema per case.
    const driver = await openPgliteDriver();
    let schemas = 0;
    try {
      await conformance(t, async () => {
        schemas += 1;
        await driver.exec(`CREATE SCHEMA case_${schemas}; SET search_path TO case_${schemas}`);
        assert.deepEqual(await migrate(driver), [1, 2]);
        return new SqlTaskStore(driver, { ownsDriver: false });
      });
    } finally {
      await driver.close();
    }
  },
});

Deno.test({
  name: "SqlTaskStore on PostgreSQL passes the conformance suite",
  ignore: !requirePostgres(),
  async fn(t) {
    const cluster: PostgresCluster = await startPostgres();
    try {
      await conformance(
        t,
        async () => openTaskStore({ databaseUrl: await createDatabase(cluster) }),
      );

      await t.step(
        "migrate() run by several processes at once applies each migration once",
        async () => {
          const url = await createDatabase(cluster);
          const drivers = Array.from({ length: 4 }, () => openPostgresDriver(url, { poolSize: 2 }));
          try {
            const results = await Promise.all(drivers.map((driver) => migrate(driver)));
            assert.deepEqual(results.flat().sort(), [1, 2]);
            const rows = await drivers[0]!.query<{ version: number }>(
              "SELECT version FROM schema_migrations ORDER BY version",
            );
            assert.deepEqual(rows.map((r) => Number(r.version)), [1, 2]);
            assert.deepEqual(await migrate(drivers[1]!), []);
          } finally {
            await Promise.all(drivers.map((driver) => driver.close()));
          }
        },
      );

      await t.step("waitForWork() is woken by create() in another process", async () => {
        const url = await createDatabase(cluster);
        const orchestrator = await openTaskStore({ databaseUrl: url });
        const api = await openTaskStore({ databaseUrl: url, poolSize: 2 });
        try {
          await orchestrator.waitForNotification(0);
          const woken = orchestrator.waitForNotification(60_000);
          await api.create(task());
          assert.equal(await woken, true);
        } finally {
          await api.close();
          await orchestrator.close();
        }
      });
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test("SqliteTaskStore (node:sqlite, in memory) passes the conformance suite", async (t) => {
  await conformance(t, () => Promise.resolve(openSqliteTaskStore()));
});

Deno.test("openTaskStore() makes a SQLite store in a new data folder, readable by its user only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "planetary-store-" });
  try {
    const dataDir = `${dir}/data`;
    const store = await openTaskStore({ dataDir });
    await store.create(task());
    // the journal files (present while open) are as private as the database
    for (const suffix of ["", "-wal", "-shm"]) {
      const file = `${dataDir}/${SQLITE_FILE}${suffix}`;
      assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600, file);
    }
    await store.close();
    assert.equal(await dataDirContents(dataDir), "sqlite");
    assert.equal((await Deno.stat(dataDir)).mode! & 0o777, 0o700);
    await Deno.mkdir(`${dir}/other`);
    await Deno.writeTextFile(`${dir}/other/notes.txt`, "mine");
    await assert.rejects(
      openTaskStore({ dataDir: `${dir}/other` }),
      /is not empty and holds no Planetary database/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openTaskStore() keeps a PGlite data folder of an earlier Planetary working, and says so", async () => {
  const dir = await Deno.makeTempDir({ prefix: "planetary-store-" });
  try {
    const dataDir = `${dir}/data`;
    const old = await openTaskStore({ dataDir, engine: "pglite" });
    const id = await old.create(task({ name: "from PGlite" }));
    await old.close();
    assert.equal(await dataDirContents(dataDir), "pglite");
    const notices: string[] = [];
    const store = await openTaskStore({ dataDir, onNotice: (line) => notices.push(line) });
    try {
      assert.equal((await store.get(id, "BASIC")).name, "from PGlite");
      assert.equal(notices.length, 1);
      assert.match(notices[0]!, /holds a PGlite database .* keeps working on PGlite/);
      assert.match(notices[0]!, /empty --data-dir/);
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openTaskStore() refuses a PGlite data directory held by another store", async () => {
  const dir = await Deno.makeTempDir({ prefix: "planetary-store-" });
  try {
    const dataDir = `${dir}/data`;
    const store = await openTaskStore({ dataDir });
    try {
      const error = await assert.rejects(openTaskStore({ dataDir }), DataDirLockedError);
      void error;
      await assert.rejects(openPgliteDriver({ dataDir }), (e: unknown) => {
        assert.ok(e instanceof DataDirLockedError);
        assert.equal(e.code, "DATA_DIR_LOCKED");
        assert.equal(e.holderPid, Deno.pid);
        return true;
      });
    } finally {
      await store.close();
    }
    const again = await openTaskStore({ dataDir });
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openTaskStore() refuses a data directory held by another process, then takes over", async () => {
  const dir = await Deno.makeTempDir({ prefix: "planetary-store-" });
  const dataDir = `${dir}/data`;
  const lockModule = new URL("../src/store/pglite/data_dir_lock.ts", import.meta.url).href;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { acquireDataDirLock } from ${JSON.stringify(lockModule)};
       acquireDataDirLock(${JSON.stringify(dataDir)});
       console.log("locked");
       for await (const _ of Deno.stdin.readable) { /* hold until stdin closes */ }`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("locked")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("lock holder exited early");
      seen += value;
    }
    await assert.rejects(openTaskStore({ dataDir }), (e: unknown) => {
      assert.ok(e instanceof DataDirLockedError);
      assert.equal(e.holderPid, child.pid);
      return true;
    });
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    // The holder died: its lock file is stale and is taken over.
    assert.match(await Deno.readTextFile(`${dataDir}.lock`), new RegExp(`^${child.pid}\\n$`));
    const store = await openTaskStore({ dataDir });
    assert.equal((await Deno.readTextFile(`${dataDir}.lock`)).trim(), String(Deno.pid));
    await store.close();
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    await child.stdin.close().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

for (const engine of ["sqlite", "pglite"] as const) {
  Deno.test(`openTaskStore() keeps ${engine} data across close and reopen`, async () => {
    await keepsDataAcrossReopen(engine);
  });
}

async function keepsDataAcrossReopen(engine: "sqlite" | "pglite"): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "planetary-store-" });
  try {
    const dataDir = `${dir}/data`;
    const first = await openTaskStore({ dataDir, engine });
    const id = await first.create(task({ name: "durable", tags: { keep: "me" } }));
    await first.claim("o1", 1, 60_000);
    await first.transition(id, "COMPLETE", { systemLogs: ["done"] });
    await first.close();

    const second = await openTaskStore({ dataDir });
    try {
      assert.equal(await dataDirContents(dataDir), engine);
      const got = await second.get(id, "FULL");
      assert.equal(got.state, "COMPLETE");
      assert.equal(got.name, "durable");
      assert.deepEqual(got.logs?.[0]?.system_logs, ["done"]);
      const page = await second.list({ tags: { keep: "me" }, pageSize: 5, view: "MINIMAL" });
      assert.deepEqual(page.tasks.map((x) => x.id), [id]);
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
