import assert from "node:assert/strict";
import { readMigrationFiles, renderMigrationsModule } from "./_generate_migrations.ts";
import { MIGRATIONS } from "./migrations.ts";

Deno.test("MIGRATIONS matches migrations/*.sql byte for byte", async () => {
  const files = await readMigrationFiles();
  assert.ok(files.length > 0);
  assert.deepEqual(
    MIGRATIONS.map((m) => m.sql),
    files.map((f) => f.sql),
    "src/store/migrations.ts is stale: run deno run -RW src/store/_generate_migrations.ts",
  );
  const generated = await Deno.readTextFile(new URL("./migrations.ts", import.meta.url));
  assert.equal(generated, renderMigrationsModule(files));
});

Deno.test("MIGRATIONS are numbered 1, 2, 3… without gaps", () => {
  assert.deepEqual(MIGRATIONS.map((m) => m.version), MIGRATIONS.map((_, i) => i + 1));
});
