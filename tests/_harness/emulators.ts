/**
 * Starts and stops the storage emulators on free loopback ports: moto (S3), Azurite (Azure
 * Blob) and fake-gcs-server (GCS), installed by `tests/emulators/install.sh` under
 * `${PLANETARY_CACHE:-$HOME/.cache/planetary}`.
 *
 * @module
 */

/** Pinned versions; keep in sync with tests/emulators/install.sh. */
export const EMULATOR_VERSIONS = Object.freeze({
  moto: "5.2.5",
  azurite: "3.37.0",
  fakeGcs: "v1.56.1",
});

/** The well-known Azurite development account and key (public, documented by Microsoft). */
export const AZURITE_ACCOUNT = "devstoreaccount1";
/** Key of {@linkcode AZURITE_ACCOUNT}. */
export const AZURITE_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/** A running emulator. */
export interface Emulator {
  /** Which one. */
  kind: "s3" | "azure" | "gcs";
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  endpoint: string;
  /** Port it listens on. */
  port: number;
  /** Stops the process and removes its temp dir. */
  stop(): Promise<void>;
}

/** Cache folder of installed emulators. */
export function emulatorCache(): string {
  return Deno.env.get("PLANETARY_CACHE") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/planetary`;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const paths = {
  moto: () => `${emulatorCache()}/moto-${EMULATOR_VERSIONS.moto}/bin/moto_server`,
  azurite: () =>
    `${emulatorCache()}/azurite-${EMULATOR_VERSIONS.azurite}/node_modules/azurite/dist/src/blob/main.js`,
  gcs: () => `${emulatorCache()}/fake-gcs-server-${EMULATOR_VERSIONS.fakeGcs}/fake-gcs-server`,
};

/**
 * Whether an emulator is installed.
 *
 * @param kind Which emulator.
 * @returns Whether its executable is in the cache.
 */
export function emulatorInstalled(kind: "s3" | "azure" | "gcs"): boolean {
  if (kind === "s3") return exists(paths.moto());
  if (kind === "gcs") return exists(paths.gcs());
  return exists(`${emulatorCache()}/azurite-${EMULATOR_VERSIONS.azurite}/.installed`);
}

/** A free loopback TCP port (listen on 0, read it back, close). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function waitHttp(url: string, child: Deno.ChildProcess, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  let exited = false;
  child.status.then(() => exited = true);
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${what} exited before it was ready`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.body?.cancel();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`${what} not ready at ${url} within 60 s`);
}

async function launch(
  kind: Emulator["kind"],
  command: string,
  args: string[],
  readyPath: string,
  port: number,
  dir: string,
  env: Record<string, string> = {},
): Promise<Emulator> {
  const logFile = await Deno.open(`${dir}/emulator.log`, { write: true, create: true });
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { PYTHONUNBUFFERED: "1", ...env },
  }).spawn();
  // Drain output into a log file so a chatty emulator never blocks on a full pipe.
  const drains = [child.stdout, child.stderr].map((s) =>
    s.pipeTo(new WritableStream({ write: (chunk) => void logFile.write(chunk).catch(() => {}) }))
      .catch(() => {})
  );
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
    }, 5000);
    await child.status;
    clearTimeout(timer);
    await Promise.all(drains);
    logFile.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await waitHttp(`${endpoint}${readyPath}`, child, kind);
  } catch (error) {
    const log = await Deno.readTextFile(`${dir}/emulator.log`).catch(() => "");
    await stop();
    throw new Error(`${(error as Error).message}\n${log.slice(-2000)}`);
  }
  return { kind, endpoint, port, stop };
}

/** A running moto with the credentials that work against it. */
export interface MotoEmulator extends Emulator {
  /** Valid credentials (any value works unless started with `auth`). */
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/**
 * Starts moto's S3 server on a free loopback port.
 *
 * @param options `auth`: enforce credentials (moto's IAM): an IAM user with full access is
 *   created through moto's unauthenticated first actions and its key returned.
 * @returns The running emulator.
 */
export async function startMoto(options: { auth?: boolean } = {}): Promise<MotoEmulator> {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "moto-" });
  const env: Record<string, string> = options.auth ? { INITIAL_NO_AUTH_ACTION_COUNT: "3" } : {};
  const emulator = await launch(
    "s3",
    paths.moto(),
    ["-H", "127.0.0.1", "-p", String(port)],
    "/moto-api/",
    port,
    dir,
    env,
  );
  if (!options.auth) {
    return { ...emulator, credentials: { accessKeyId: "test", secretAccessKey: "test" } };
  }
  try {
    const iam = async (params: Record<string, string>): Promise<string> => {
      const response = await fetch(`${emulator.endpoint}/`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          // Routes the request to moto's IAM; not checked during the no-auth actions.
          authorization:
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        },
        body: new URLSearchParams({ Version: "2010-05-08", ...params }),
      });
      const text = await response.text();
      if (!response.ok) {
        throw new Error(`moto IAM ${params.Action}: HTTP ${response.status} ${text}`);
      }
      return text;
    };
    await iam({ Action: "CreateUser", UserName: "planetary" });
    await iam({
      Action: "PutUserPolicy",
      UserName: "planetary",
      PolicyName: "all",
      PolicyDocument: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }],
      }),
    });
    const key = await iam({ Action: "CreateAccessKey", UserName: "planetary" });
    const accessKeyId = /<AccessKeyId>([^<]+)</.exec(key)?.[1];
    const secretAccessKey = /<SecretAccessKey>([^<]+)</.exec(key)?.[1];
    if (!accessKeyId || !secretAccessKey) throw new Error(`moto IAM: no key in ${key}`);
    return { ...emulator, credentials: { accessKeyId, secretAccessKey } };
  } catch (error) {
    await emulator.stop();
    throw error;
  }
}

/**
 * Starts Azurite's blob service on a free loopback port (node when present, Deno otherwise).
 *
 * @returns The running emulator.
 */
export async function startAzurite(): Promise<Emulator> {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "azurite-" });
  const flags = [
    "--disableTelemetry",
    "--silent",
    "--loose",
    "--skipApiVersionCheck",
    "-l",
    dir,
    "--blobHost",
    "127.0.0.1",
    "--blobPort",
    String(port),
  ];
  const main = paths.azurite();
  const [command, args] = exists(main) && hasNode()
    ? ["node", [main, ...flags]]
    : [Deno.execPath(), [
      "run",
      "-A",
      `npm:azurite@${EMULATOR_VERSIONS.azurite}/azurite-blob`,
      ...flags,
    ]];
  return await launch(
    "azure",
    command as string,
    args as string[],
    `/${AZURITE_ACCOUNT}?comp=list`,
    port,
    dir,
  );
}

function hasNode(): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((dir) => dir && exists(`${dir}/node`));
}

/**
 * Starts fake-gcs-server (filesystem backend in a temp dir, plain HTTP) on a free loopback port.
 *
 * @param options `externalUrl`: the base URL it puts in resumable-upload session URLs
 *   (default its own), e.g. a proxy's, so that uploads go through that proxy too.
 * @returns The running emulator.
 */
export async function startFakeGcs(options: { externalUrl?: string } = {}): Promise<Emulator> {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "fake-gcs-" });
  return await launch(
    "gcs",
    paths.gcs(),
    [
      "-scheme",
      "http",
      "-host",
      "127.0.0.1",
      "-port",
      String(port),
      "-backend",
      "filesystem",
      "-filesystem-root",
      `${dir}/data`,
      "-external-url",
      options.externalUrl ?? `http://127.0.0.1:${port}`,
      "-log-level",
      "error",
    ],
    "/storage/v1/b",
    port,
    dir,
  );
}

/**
 * The Azurite connection string for an endpoint.
 *
 * @param endpoint Azurite's base URL.
 * @returns A connection string with the well-known development key.
 */
export function azuriteConnectionString(endpoint: string): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint}/${AZURITE_ACCOUNT};`;
}

/** What a {@linkcode StallingProxy} does to the bytes of each connection, from now on. */
export interface ProxyPolicy {
  /**
   * Bytes of each connection's server→client direction (responses) forwarded before that
   * direction stops: the proxy no longer reads from the server nor writes to the client, and the
   * connection stays open (a stalled server, a half-open connection). Counted from when the
   * policy was set. @default {Infinity}
   */
  responseBytes?: number;
  /** The same for the client→server direction (request bodies: an upload stalls). @default {Infinity} */
  requestBytes?: number;
  /**
   * Forward at most `bytes` every `everyMs` in each direction: a slow but steady link.
   * @default none (as fast as the sockets go)
   */
  drip?: { bytes: number; everyMs: number };
}

/** A loopback TCP proxy in front of a server that can stall or slow its connections. */
export interface StallingProxy {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  /** Port it listens on. */
  port: number;
  /** Where it forwards to; may be set after start (`host:port`). */
  target: string;
  /** Replaces the policy for bytes forwarded from now on (every open connection too). */
  setPolicy(policy: ProxyPolicy): void;
  /** Connections accepted so far. */
  connections(): number;
  /** Connections whose forwarding was stopped by `responseBytes` / `requestBytes`. */
  stalledConnections(): number;
  /** Stalled connections still open: the client has not given up their sockets yet. */
  stalledOpen(): number;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

/**
 * Starts a TCP proxy on a free loopback port in front of `target` (`host:port`). Below HTTP:
 * nothing is parsed or rewritten (signed `Host` headers stay valid), so it stalls a transfer the
 * way a dead peer or a broken network path does: bytes just stop, in one direction.
 *
 * @param target `host:port` to forward to (may be changed later through `target`).
 * @returns The running proxy.
 */
export function startStallingProxy(target = ""): StallingProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  let policy: ProxyPolicy = {};
  let epoch = 0;
  let accepted = 0;
  let stalled = 0;
  const open = new Set<Deno.Conn>();
  const stalledOpen = new Set<{ ended: boolean }>();
  const pumps: Promise<void>[] = [];
  let closed = false;
  const proxy: StallingProxy = {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    target,
    setPolicy(next) {
      policy = next;
      epoch++;
    },
    connections: () => accepted,
    stalledConnections: () => stalled,
    stalledOpen: () => stalledOpen.size,
    async close() {
      closed = true;
      listener.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await Promise.allSettled(pumps);
    },
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  /** Copies one direction, obeying the policy; returns when either side is gone. */
  const pump = async (
    from: Deno.Conn,
    to: Deno.Conn,
    limitOf: (p: ProxyPolicy) => number | undefined,
    connection: { ended: boolean },
  ): Promise<void> => {
    const buffer = new Uint8Array(64 * 1024);
    // Bytes read but not yet forwarded: a read started under one policy may return under the
    // next, so what it brought waits here until the policy in force lets it through.
    let pending = buffer.subarray(0, 0);
    let seenEpoch = -1;
    let sent = 0;
    let counted = false;
    try {
      // A stalled direction ends with the other one (the peer gave up and closed).
      while (!closed && !(connection.ended && sent >= (limitOf(policy) ?? Infinity))) {
        if (seenEpoch !== epoch) {
          seenEpoch = epoch;
          sent = 0;
        }
        const limit = limitOf(policy) ?? Infinity;
        const drip = policy.drip;
        let room = limit - sent;
        if (room <= 0) {
          // Stalled: read nothing more (TCP back pressure reaches the sender), write nothing.
          if (!counted) {
            counted = true;
            stalled++;
            stalledOpen.add(connection);
          }
          await sleep(50);
          continue;
        }
        if (drip !== undefined) room = Math.min(room, drip.bytes);
        if (pending.length === 0) {
          const n = await from.read(buffer.subarray(0, Math.min(buffer.length, room)));
          if (n === null) break;
          pending = buffer.subarray(0, n);
          continue; // the policy may have changed during the read
        }
        const take = pending.subarray(0, Math.min(pending.length, room));
        let offset = 0;
        while (offset < take.length) offset += await to.write(take.subarray(offset));
        pending = pending.subarray(take.length);
        sent += take.length;
        if (drip !== undefined) await sleep(drip.everyMs);
      }
    } catch {
      // a side closed
    }
    connection.ended = true;
    await to.closeWrite().catch(() => {}); // the peer may be gone
  };
  (async () => {
    for await (const client of listener) {
      accepted++;
      const [hostname, targetPort] = proxy.target.split(":");
      let server: Deno.Conn;
      try {
        server = await Deno.connect({
          hostname: hostname ?? "127.0.0.1",
          port: Number(targetPort),
        });
      } catch {
        client.close();
        continue;
      }
      open.add(client);
      open.add(server);
      const connection = { ended: false };
      const both = Promise.all([
        pump(client, server, (p) => p.requestBytes, connection),
        pump(server, client, (p) => p.responseBytes, connection),
      ]).then(() => {
        stalledOpen.delete(connection);
        for (const conn of [client, server]) {
          open.delete(conn);
          try {
            conn.close();
          } catch {
            // already closed
          }
        }
      });
      pumps.push(both);
    }
  })().catch(() => {});
  return proxy;
}
