/**
 * The service images of Planetary, built on this machine with no registry: the `deno run`
 * targets of `k8s/Dockerfile` (`api-run`, `orchestrator-run`, `monitor-run`, `transporter-run`,
 * `serve-run`), for the real-node test cluster and the tests that run them in a Docker engine.
 *
 * The Dockerfile's two base images cannot be pulled here, so they are made locally under the
 * names its `ARG`s default to (the public ones used for releases):
 * - `denoland/deno:bin-<version>`: only `/deno`, the deno binary of this machine (`which deno`;
 *   its version must be the one of `.deno-version`), like the official `bin` image;
 * - `gcr.io/distroless/cc-debian12:nonroot`: a minimal glibc rootfs: the libraries `ldd` names
 *   for that binary and the dynamic loader, `/etc/passwd` and `/etc/group` with `nonroot`
 *   (uid 65532), the CA bundle, `/tmp` (mode 1777), `/home/nonroot`; `USER 65532:65532`.
 *
 * Then `docker build` (the classic builder, `DOCKER_BUILDKIT=0`: Debian's dockerd 20.10 has no
 * BuildKit frontend it could pull, and the client has no buildx) of each target, with
 * `--network host` so that the build's `deno install` reaches the npm registry, and one
 * `docker save` of all of them: a docker-archive tar that `ctr -n k8s.io images import` takes.
 *
 * The tar is cached in `$PLANETARY_CACHE/service-images/<key>.tar`, the key a hash of what
 * goes into the images (the deno version and binary size, the Dockerfile, this file, the build
 * context: deno.json, deno.lock, mod.ts, src/, cli/, transporter/, migrations/ without
 * `*_test.ts` and `testdata/`, and the image names), so a warm run starts no engine and takes
 * the time of hashing the sources. A lock file serialises concurrent builds; the three most
 * recently used archives are kept.
 *
 * Measured here (2 cores, npm through the egress proxy): a cold build 80–155 s (almost all of it
 * the build's `deno install`, 155 MB of npm packages), the archive 256 MiB (the five images share
 * every layer: 3 MB base, 96 MB deno, 155 MB cache, 1 MB source), a warm call 0.06 s, loading
 * the archive into an engine about 20 s, `ctr images import` of it about 60 s.
 *
 * The images have no binary at `/usr/local/bin/planetary-<service>`: a pod that sets `command`
 * (the transporter's `transporterCommand`) must set {@linkcode serviceEntrypoint}. Another tag
 * of the same images (a `helm upgrade` to a new tag) is cheapest as `ctr images tag`; a `tag`
 * option here is another cache key, so another build.
 *
 * ```ts ignore
 * const images = await buildServiceImages();
 * // ctr -n k8s.io images import images.archive
 * // PodBuilderConfig: { transporterImage: images.images.transporter,
 * //                     transporterCommand: serviceEntrypoint("transporter") }
 * ```
 *
 * @module
 */
import { PLANETARY_CACHE } from "./cache.ts";
import { which } from "./component.ts";
import { type DockerEngine, dockerMissing, type DockerResult, startDockerd } from "./docker.ts";

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** The `deno run` targets, by service (`<service>-run` in `k8s/Dockerfile`). */
export const SERVICE_TARGETS: readonly ServiceTarget[] = Object.freeze([
  "api",
  "orchestrator",
  "monitor",
  "transporter",
  "serve",
]);

/** A service of Planetary that has a `deno run` target. */
export type ServiceTarget = "api" | "orchestrator" | "monitor" | "transporter" | "serve";

/** The image repository of each service, as the chart names them (`serve` is `planetary`). */
export const SERVICE_REPOSITORIES: Readonly<Record<ServiceTarget, string>> = Object.freeze({
  api: "planetary-api",
  orchestrator: "planetary-orchestrator",
  monitor: "planetary-monitor",
  transporter: "planetary-transporter",
  serve: "planetary",
});

/** What goes into the build context (the rest of the repository does not). */
const CONTEXT_ENTRIES: readonly string[] = [
  "deno.json",
  "deno.lock",
  "mod.ts",
  "src",
  "cli",
  "transporter",
  "migrations",
];

/** How many archives the cache keeps (the most recently used). */
const KEEP_ARCHIVES = 3;

/** Options of {@linkcode buildServiceImages}. */
export interface ServiceImagesOptions {
  /**
   * The engine to build in (the images stay in it). On a cache hit the archive is loaded into
   * it (`docker load`). Without one, a cache miss starts a private engine for the build and
   * stops it after, and a hit starts none.
   * @default none
   */
  engine?: DockerEngine;
  /** Registry and path before the repository names. @default "ghcr.io/planetary" (the chart's) */
  registry?: string;
  /** The tag of every image. @default the chart's appVersion (what the chart runs untagged) */
  tag?: string;
  /** Where the archives are kept. @default `$PLANETARY_CACHE/service-images` */
  cacheDir?: string;
  /** Progress lines. @default console.error */
  log?: (line: string) => void;
}

/** The built images. */
export interface ServiceImages {
  /** The docker-archive tar holding every image (`ctr -n k8s.io images import <archive>`). */
  archive: string;
  /** Each service's image reference (`ghcr.io/planetary/planetary-api:0.1.0`). */
  images: Readonly<Record<ServiceTarget, string>>;
  /** The cache key (hex). */
  key: string;
  /** Whether the archive came from the cache. */
  cached: boolean;
  /** Seconds this call took. */
  seconds: number;
  /** What the build that made the archive measured (also on a cache hit). */
  build: ServiceImagesBuild;
}

/** Figures of the build that made an archive (kept beside it as `<key>.json`). */
export interface ServiceImagesBuild {
  /** Seconds of the whole build (base images, every target, save). */
  seconds: number;
  /** Seconds per target build. */
  targetSeconds: Record<ServiceTarget, number>;
  /** Bytes of each image as the engine counts them (shared layers counted in each). */
  imageBytes: Record<ServiceTarget, number>;
  /** Bytes of the archive (shared layers once). */
  archiveBytes: number;
  /** The deno version inside. */
  denoVersion: string;
}

/**
 * Why the images cannot be built here (no engine, no deno of the pinned version, no `ldd`), or
 * undefined when they can. A cached archive for the current sources needs none of them.
 *
 * @param options Where the cache is and the names (as for {@linkcode buildServiceImages}).
 * @returns A one-line reason, or undefined.
 */
export async function serviceImagesMissing(
  options: Pick<ServiceImagesOptions, "cacheDir" | "registry" | "tag"> = {},
): Promise<string | undefined> {
  const deno = await localDeno().catch((error: Error) => error);
  if (deno instanceof Error) return `service images: ${deno.message}`;
  const { archive } = await cachePaths(deno, options);
  if (await exists(archive)) return undefined;
  if (!which("ldd")) return "service images: no ldd on PATH (Debian libc-bin)";
  if (!which("tar")) return "service images: no tar on PATH";
  return dockerMissing();
}

/**
 * Builds (or takes from the cache) the `deno run` images of every service and one docker-archive
 * of them.
 *
 * @param options Engine, names, cache folder.
 * @returns The archive, the image references and the figures.
 * @throws {Error} When a base image, a build or the save fails, with the engine's output.
 */
export async function buildServiceImages(
  options: ServiceImagesOptions = {},
): Promise<ServiceImages> {
  const { engine, log = (line: string) => console.error(line) } = options;
  const started = performance.now();
  const deno = await localDeno();
  const paths = await cachePaths(deno, options);
  await Deno.mkdir(paths.dir, { recursive: true });

  const lock = await Deno.open(`${paths.dir}/.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    let cached = await exists(paths.archive) && await exists(paths.figures);
    if (cached) {
      const now = new Date();
      await Deno.utime(paths.archive, now, now).catch(() => {});
      if (engine) {
        const loaded = await engine.docker(["load", "--input", paths.archive]);
        if (loaded.code !== 0) throw new Error(`docker load failed: ${failure(loaded)}`);
      }
    } else {
      log(`service images: building ${paths.key.slice(0, 12)} (no cached archive)`);
      const build = engine
        ? await buildIn(engine, deno, paths, log)
        : await withPrivateEngine((own) => buildIn(own, deno, paths, log));
      await Deno.writeTextFile(paths.figures, JSON.stringify(build, null, 2));
      await pruneCache(paths.dir, paths.archive);
      cached = false;
    }
    const build = JSON.parse(await Deno.readTextFile(paths.figures)) as ServiceImagesBuild;
    return {
      archive: paths.archive,
      images: paths.images,
      key: paths.key,
      cached,
      seconds: (performance.now() - started) / 1000,
      build,
    };
  } finally {
    lock.close();
  }
}

/**
 * The ENTRYPOINT of a service's `deno run` target in `k8s/Dockerfile`: what a pod's `command`
 * must be when it has to be set (the transporter's `transporterCommand`), since the image has
 * no binary at `/usr/local/bin/planetary-<service>`.
 *
 * @param target The service.
 * @param repo The repository root. @default this repository
 * @returns The exec-form argv.
 * @throws {Error} When the Dockerfile has no such target with an exec-form ENTRYPOINT.
 */
export function serviceEntrypoint(target: ServiceTarget, repo: string = REPO): string[] {
  const text = Deno.readTextFileSync(`${repo}/k8s/Dockerfile`).replace(/\\\n/g, " ");
  const stage = text.split(/^FROM /m).find((s) => s.startsWith(`run-base AS ${target}-run\n`));
  const line = stage && /^ENTRYPOINT (\[.*\])\s*$/m.exec(stage)?.[1];
  if (!line) throw new Error(`k8s/Dockerfile: no "${target}-run" target with an ENTRYPOINT`);
  return JSON.parse(line) as string[];
}

// ---------------------------------------------------------------------------------------------

interface LocalDeno {
  /** The binary (symlinks resolved). */
  path: string;
  /** `2.9.6`. */
  version: string;
  /** Its size, in the key (a different build of the same version is another image). */
  size: number;
}

interface CachePaths {
  dir: string;
  key: string;
  archive: string;
  figures: string;
  images: Record<ServiceTarget, string>;
  baseImages: { denoBin: string; runtime: string };
  /** Context file paths relative to the repository, sorted. */
  files: string[];
}

/** The deno of this machine, checked against `.deno-version`. */
async function localDeno(): Promise<LocalDeno> {
  const found = which("deno");
  if (!found) throw new Error("no deno on PATH");
  const path = await Deno.realPath(found);
  const out = await new Deno.Command(path, { args: ["--version"], stdout: "piped" }).output();
  const version = /^deno (\S+)/.exec(new TextDecoder().decode(out.stdout))?.[1] ?? "";
  const pinned = (await Deno.readTextFile(`${REPO}/.deno-version`)).trim().replace(/^deno /, "");
  if (version !== pinned) {
    throw new Error(`${found} is deno ${version || "(unknown)"}, .deno-version pins ${pinned}`);
  }
  return { path, version, size: (await Deno.stat(path)).size };
}

/** The Dockerfile's default of `ARG name=…`. */
function argDefault(dockerfile: string, name: string): string {
  const value = new RegExp(`^ARG ${name}=(\\S+)`, "m").exec(dockerfile)?.[1];
  if (!value) throw new Error(`k8s/Dockerfile: no "ARG ${name}=…"`);
  return value;
}

async function cachePaths(
  deno: LocalDeno,
  options: Pick<ServiceImagesOptions, "cacheDir" | "registry" | "tag">,
): Promise<CachePaths> {
  const dockerfile = await Deno.readTextFile(`${REPO}/k8s/Dockerfile`);
  const chart = await Deno.readTextFile(`${REPO}/k8s/chart/planetary/Chart.yaml`);
  const appVersion = /^appVersion:\s*"?([^"\s]+)"?/m.exec(chart)?.[1] ?? "latest";
  const { registry = "ghcr.io/planetary", tag = appVersion } = options;
  const dir = options.cacheDir ?? `${PLANETARY_CACHE}/service-images`;
  const images = Object.fromEntries(
    SERVICE_TARGETS.map((t) => [t, `${registry}/${SERVICE_REPOSITORIES[t]}:${tag}`]),
  ) as Record<ServiceTarget, string>;
  // the bin image under this machine's version (the ARG default names the pinned one)
  const denoBin = argDefault(dockerfile, "DENO_BIN_IMAGE").replace(
    /:bin-.*$/,
    `:bin-${deno.version}`,
  );
  const baseImages = { denoBin, runtime: argDefault(dockerfile, "RUNTIME_IMAGE") };

  const files = (await Promise.all(CONTEXT_ENTRIES.map((entry) => contextFiles(entry)))).flat()
    .sort();
  const hash = new Sha256Stream();
  hash.add(`deno ${deno.version} ${deno.size}\n`);
  hash.add(`images ${JSON.stringify(images)} ${JSON.stringify(baseImages)}\n`);
  hash.add(dockerfile);
  hash.add(await Deno.readTextFile(new URL(import.meta.url).pathname));
  for (const file of files) {
    hash.add(`\n--- ${file}\n`);
    hash.add(await Deno.readFile(`${REPO}/${file}`));
  }
  const key = await hash.digest();
  return {
    dir,
    key,
    archive: `${dir}/${key}.tar`,
    figures: `${dir}/${key}.json`,
    images,
    baseImages,
    files,
  };
}

/** The files of one context entry (a file, or a folder walked), relative to the repository. */
async function contextFiles(entry: string): Promise<string[]> {
  const info = await Deno.stat(`${REPO}/${entry}`);
  if (info.isFile) return [entry];
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for await (const item of Deno.readDir(`${REPO}/${rel}`)) {
      const path = `${rel}/${item.name}`;
      if (item.isDirectory) {
        if (item.name !== "testdata") await walk(path);
      } else if (item.isFile && !item.name.endsWith("_test.ts")) out.push(path);
    }
  };
  await walk(entry);
  return out;
}

/** A SHA-256 of a list of pieces: the digest of their digests, each taken as it is added. */
class Sha256Stream {
  #digests: Promise<Uint8Array>[] = [];
  add(part: string | Uint8Array): void {
    const bytes = typeof part === "string" ? new TextEncoder().encode(part) : part;
    this.#digests.push(
      crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>).then((d) =>
        new Uint8Array(d)
      ),
    );
  }
  async digest(): Promise<string> {
    const digests = await Promise.all(this.#digests);
    const all = new Uint8Array(digests.length * 32);
    digests.forEach((d, i) => all.set(d, i * 32));
    const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
    return [...sum].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
}

async function withPrivateEngine<T>(fn: (engine: DockerEngine) => Promise<T>): Promise<T> {
  const engine = await startDockerd();
  try {
    return await fn(engine);
  } finally {
    await engine.stop();
  }
}

/** Makes the base images, builds every target, saves the archive. */
async function buildIn(
  engine: DockerEngine,
  deno: LocalDeno,
  paths: CachePaths,
  log: (line: string) => void,
): Promise<ServiceImagesBuild> {
  const started = performance.now();
  const work = await Deno.makeTempDir({ prefix: "planetary-service-images-" });
  try {
    await importDenoBinImage(engine, deno, paths.baseImages.denoBin, work);
    await importRuntimeImage(engine, deno, paths.baseImages.runtime, work);
    log(`service images: base images in ${seconds(started)} s`);

    const context = `${work}/context`;
    for (const file of paths.files) {
      await Deno.mkdir(`${context}/${file.slice(0, file.lastIndexOf("/") + 1)}`, {
        recursive: true,
      });
      await Deno.copyFile(`${REPO}/${file}`, `${context}/${file}`);
    }
    await Deno.mkdir(`${context}/k8s`, { recursive: true });
    await Deno.copyFile(`${REPO}/k8s/Dockerfile`, `${context}/k8s/Dockerfile`);

    const targetSeconds = {} as Record<ServiceTarget, number>;
    const imageBytes = {} as Record<ServiceTarget, number>;
    for (const target of SERVICE_TARGETS) {
      const at = performance.now();
      const built = await dockerBuild(engine, [
        "build",
        "--file",
        `${context}/k8s/Dockerfile`,
        "--network",
        "host",
        "--target",
        `${target}-run`,
        "--build-arg",
        `DENO_BIN_IMAGE=${paths.baseImages.denoBin}`,
        "--build-arg",
        `RUNTIME_IMAGE=${paths.baseImages.runtime}`,
        // the runtime image's bundle is this machine's, with any egress proxy's CA in it
        "--build-arg",
        "DENO_CERT=/etc/ssl/certs/ca-certificates.crt",
        "--tag",
        paths.images[target],
        context,
      ]);
      if (built.code !== 0) {
        throw new Error(`docker build --target ${target}-run failed:\n${tail(failure(built))}`);
      }
      targetSeconds[target] = Number(seconds(at));
      const size = await engine.docker([
        "image",
        "inspect",
        "--format",
        "{{.Size}}",
        paths.images[target],
      ]);
      imageBytes[target] = Number(size.stdout.trim());
      log(`service images: ${paths.images[target]} in ${targetSeconds[target]} s`);
    }

    const partial = `${paths.archive}.${Deno.pid}.partial`;
    const saved = await engine.docker([
      "save",
      "--output",
      partial,
      ...SERVICE_TARGETS.map((t) => paths.images[t]),
    ]);
    if (saved.code !== 0) {
      await Deno.remove(partial).catch(() => {});
      throw new Error(`docker save failed: ${failure(saved)}`);
    }
    await Deno.rename(partial, paths.archive);
    const archiveBytes = (await Deno.stat(paths.archive)).size;
    log(`service images: ${paths.archive} (${mib(archiveBytes)} MiB) in ${seconds(started)} s`);
    return {
      seconds: Number(seconds(started)),
      targetSeconds,
      imageBytes,
      archiveBytes,
      denoVersion: deno.version,
    };
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** `denoland/deno:bin-<version>`: `/deno` alone, as the official image. */
async function importDenoBinImage(
  engine: DockerEngine,
  deno: LocalDeno,
  name: string,
  work: string,
): Promise<void> {
  const root = `${work}/deno-bin`;
  await Deno.mkdir(root, { recursive: true });
  await Deno.copyFile(deno.path, `${root}/deno`);
  await Deno.chmod(`${root}/deno`, 0o755);
  await importRootfs(engine, root, name, [], work);
}

/**
 * `gcr.io/distroless/cc-debian12:nonroot` made of this machine's glibc: what `deno` loads
 * (`ldd`), the loader, users, CA certificates, `/tmp`.
 */
async function importRuntimeImage(
  engine: DockerEngine,
  deno: LocalDeno,
  name: string,
  work: string,
): Promise<void> {
  const root = `${work}/runtime`;
  for (const sub of ["etc/ssl/certs", "tmp", "home/nonroot", "root", "proc", "sys", "dev"]) {
    await Deno.mkdir(`${root}/${sub}`, { recursive: true });
  }
  await Deno.chmod(`${root}/tmp`, 0o1777);
  await Deno.chmod(`${root}/root`, 0o700);
  await Deno.chown(`${root}/home/nonroot`, 65532, 65532);
  await Deno.chmod(`${root}/home/nonroot`, 0o700);
  for (const lib of await sharedLibraries(deno.path)) {
    await Deno.mkdir(`${root}${lib.slice(0, lib.lastIndexOf("/"))}`, { recursive: true });
    await Deno.copyFile(await Deno.realPath(lib), `${root}${lib}`);
  }
  await Deno.writeTextFile(
    `${root}/etc/passwd`,
    "root:x:0:0:root:/root:/sbin/nologin\n" +
      "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
      "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
  );
  await Deno.writeTextFile(
    `${root}/etc/group`,
    "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n",
  );
  await Deno.writeTextFile(`${root}/etc/nsswitch.conf`, "hosts: files dns\n");
  await Deno.copyFile(
    await Deno.realPath("/etc/ssl/certs/ca-certificates.crt"),
    `${root}/etc/ssl/certs/ca-certificates.crt`,
  );
  await importRootfs(engine, root, name, [
    "USER 65532:65532",
    "WORKDIR /home/nonroot",
    "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
  ], work);
}

async function importRootfs(
  engine: DockerEngine,
  root: string,
  name: string,
  changes: string[],
  work: string,
): Promise<void> {
  const tar = `${work}/${name.replace(/[^A-Za-z0-9.-]/g, "_")}.tar`;
  const packed = await new Deno.Command("tar", {
    args: ["--numeric-owner", "-C", root, "-cf", tar, "."],
    stderr: "piped",
  }).output();
  if (!packed.success) {
    throw new Error(`tar of ${root} failed: ${new TextDecoder().decode(packed.stderr)}`);
  }
  const imported = await engine.docker([
    "import",
    ...changes.flatMap((c) => ["--change", c]),
    tar,
    name,
  ]);
  if (imported.code !== 0) throw new Error(`docker import ${name} failed: ${failure(imported)}`);
}

/** The absolute paths `ldd` names for `binary` (the loader among them). */
async function sharedLibraries(binary: string): Promise<string[]> {
  const out = await new Deno.Command("ldd", { args: [binary], stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`ldd ${binary} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return [...new TextDecoder().decode(out.stdout).matchAll(/(\/[^\s)]+)/g)].map((m) => m[1]!);
}

/**
 * `docker build` with the classic builder against `engine` (the engine's own client runner
 * cannot set `DOCKER_BUILDKIT`; the client without buildx refuses BuildKit).
 */
async function dockerBuild(engine: DockerEngine, args: string[]): Promise<DockerResult> {
  const out = await new Deno.Command("docker", {
    args,
    env: { DOCKER_HOST: engine.host, DOCKER_BUILDKIT: "0" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Keeps the {@linkcode KEEP_ARCHIVES} most recently used archives (and their figures). */
async function pruneCache(dir: string, keep: string): Promise<void> {
  const archives: { path: string; mtime: number }[] = [];
  for await (const item of Deno.readDir(dir)) {
    if (!item.isFile || !item.name.endsWith(".tar")) continue;
    const path = `${dir}/${item.name}`;
    const info = await Deno.stat(path).catch(() => undefined);
    archives.push({ path, mtime: info?.mtime?.getTime() ?? 0 });
  }
  archives.sort((a, b) => b.mtime - a.mtime);
  for (const { path } of archives.slice(KEEP_ARCHIVES)) {
    if (path === keep) continue;
    await Deno.remove(path).catch(() => {});
    await Deno.remove(path.replace(/\.tar$/, ".json")).catch(() => {});
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

function failure(result: DockerResult): string {
  return `${result.stderr.trim()}\n${result.stdout.trim()}`.trim();
}

function tail(text: string, lines = 40): string {
  return text.split("\n").slice(-lines).join("\n");
}

function seconds(since: number): string {
  return ((performance.now() - since) / 1000).toFixed(1);
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(0);
}
