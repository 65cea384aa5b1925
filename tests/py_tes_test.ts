/**
 * The real py-tes client against a running server (`tests/py_tes/check_server.py`). The
 * client is installed by `tests/py_tes/install.sh` into ~/.cache/planetary/py-tes-<version>.
 */
import { assertEquals } from "./_api_assert.ts";
import { PLANETARY_CACHE, venvReady } from "./_harness/cache.ts";
import { requireComponent } from "./_harness/component.ts";
import { startServer } from "../src/server/start_server.ts";

const PY_TES_VERSION = "1.1.4";
const VENV = `${PLANETARY_CACHE}/py-tes-${PY_TES_VERSION}`;
const SCRIPT = new URL("./py_tes/check_server.py", import.meta.url).pathname;

Deno.test({
  name: "startServer() serves the py-tes client without a single client-side error",
  ignore: !requireComponent(
    venvReady(VENV),
    `py-tes venv missing: run tests/py_tes/install.sh (${VENV})`,
  ),
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "planetary-py-tes-" });
    const server = await startServer({
      port: 0,
      dataDir: `${dataDir}/data`,
      announce: false,
      api: { logRequests: false },
      execution: false,
    });
    try {
      const out = await new Deno.Command(`${VENV}/bin/python`, {
        args: [SCRIPT, server.url],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, text);
    } finally {
      await server.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
