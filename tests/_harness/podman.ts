/**
 * A private podman for tests: Debian's `podman` (installed by .ci/run; this module installs
 * nothing), rootful, with everything in a temporary folder: storage (`graphroot`, `runroot`,
 * driver `overlay`), libpod's state (`static_dir`, `tmp_dir`, volumes, file locks instead of
 * the shared `/dev/shm/libpod_lock`), an events file, a network config folder and an empty
 * registries list. Every setting reaches podman through `CONTAINERS_CONF`,
 * `CONTAINERS_STORAGE_CONF` and `CONTAINERS_REGISTRIES_CONF` (see {@linkcode PodmanEngine.env}),
 * which the server passes to its engine client; podman is daemonless, so nothing runs between
 * commands. Containers get no network (`netns = "none"`) and cgroupfs cgroups.
 *
 * What podman still writes outside that folder, undone by {@linkcode PodmanEngine.stop} when
 * it was not there before the start: `/var/lib/containers/cache` (the blob-info cache of every
 * import and pull, a fixed path for root), the `libpod_parent` cgroups of every hierarchy, and
 * (never expected with these settings, removed if they appear) `/run/libpod`,
 * `/run/containers`, `/var/lib/containers/storage` and `/dev/shm/libpod_lock`.
 *
 * @module
 */
import { which } from "./component.ts";

/** Paths podman may create outside its folder: removed at stop when new. */
const HOST_PATHS: readonly string[] = [
  "/var/lib/containers",
  "/var/lib/containers/cache",
  "/var/lib/containers/storage",
  "/run/libpod",
  "/run/containers",
  "/dev/shm/libpod_lock",
];
/** The cgroup podman's cgroupfs manager puts containers under, in every hierarchy. */
const CGROUP_PARENT = "libpod_parent";

/** What a podman command gave. */
export interface PodmanResult {
  /** Exit code. */
  code: number;
  /** Its stdout. */
  stdout: string;
  /** Its stderr. */
  stderr: string;
}

/** A private podman set-up. */
export interface PodmanEngine extends AsyncDisposable {
  /** The folder holding its configuration, storage and state. */
  readonly dir: string;
  /**
   * The environment that points podman at this set-up (`CONTAINERS_CONF`,
   * `CONTAINERS_STORAGE_CONF`, `CONTAINERS_REGISTRIES_CONF`): give it to the server.
   */
  readonly env: Readonly<Record<string, string>>;
  /**
   * Runs podman on this set-up.
   *
   * @param args Its arguments.
   * @param stdin Bytes for its stdin. @default none
   * @returns Exit code and output.
   */
  podman(args: string[], stdin?: Uint8Array): Promise<PodmanResult>;
  /** Removes every container, unmounts the storage, and every trace of it on the host. */
  stop(): Promise<void>;
}

/**
 * Whether a private podman can run here: `podman` on PATH and root.
 *
 * @returns A reason when it cannot, else undefined.
 */
export function podmanMissing(): string | undefined {
  if (!which("podman")) return "podman: no podman on PATH (apt-get install podman)";
  if (Deno.uid() !== 0) return "podman: the private rootful podman needs root";
  return undefined;
}

/** The hard limits of this process for `name` ("Max open files"…), from /proc/self/limits. */
async function hardLimit(name: string): Promise<number | undefined> {
  const text = await Deno.readTextFile("/proc/self/limits").catch(() => "");
  const line = text.split("\n").find((l) => l.startsWith(name));
  const hard = line?.slice(name.length).trim().split(/\s+/)[1];
  return hard === undefined || !/^\d+$/.test(hard) ? undefined : Number(hard);
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The cgroup hierarchies of this machine (`/sys/fs/cgroup/<name>`, or the v2 root). */
function cgroupRoots(): string[] {
  const roots: string[] = [];
  try {
    for (const entry of Deno.readDirSync("/sys/fs/cgroup")) {
      if (entry.isDirectory) roots.push(`/sys/fs/cgroup/${entry.name}`);
    }
  } catch {
    // no cgroup file system
  }
  roots.push("/sys/fs/cgroup");
  return roots;
}

/**
 * Writes the private configuration and checks that `podman info` answers on it.
 *
 * @returns The set-up; stop it (or `await using` it) at the end.
 * @throws {Error} With podman's reason when it does not work.
 */
export async function startPodman(): Promise<PodmanEngine> {
  const before = new Set(HOST_PATHS.filter(exists));
  const cgroupsBefore = new Set(cgroupRoots().map((r) => `${r}/${CGROUP_PARENT}`).filter(exists));
  const dir = await Deno.makeTempDir({ prefix: "planetary-podman-" });
  await Deno.mkdir(`${dir}/networks`);
  // runc refuses to RAISE a limit (root here has no CAP_SYS_RESOURCE), and podman's defaults
  // (nofile 1048576) are higher than this machine's; podman also starts conmon with nproc
  // 32768 (seen with podman 4.3.1). So the containers get this process's own limits.
  const nofile = await hardLimit("Max open files") ?? 1024;
  const nproc = Math.min(await hardLimit("Max processes") ?? 32768, 32768);
  await Deno.writeTextFile(
    `${dir}/storage.conf`,
    `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/root"\nrunroot = "${dir}/run"\n`,
  );
  await Deno.writeTextFile(
    `${dir}/containers.conf`,
    [
      "[containers]",
      'netns = "none"',
      `default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]`,
      "[network]",
      `network_config_dir = "${dir}/networks"`,
      "[engine]",
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${dir}/run/events.log"`,
      `tmp_dir = "${dir}/run/libpod"`,
      `static_dir = "${dir}/root/libpod"`,
      `volume_path = "${dir}/root/volumes"`,
      'lock_type = "file"',
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(`${dir}/registries.conf`, "unqualified-search-registries = []\n");
  const env = {
    CONTAINERS_CONF: `${dir}/containers.conf`,
    CONTAINERS_STORAGE_CONF: `${dir}/storage.conf`,
    CONTAINERS_REGISTRIES_CONF: `${dir}/registries.conf`,
  };

  const podman = async (args: string[], stdin?: Uint8Array): Promise<PodmanResult> => {
    const proc = new Deno.Command("podman", {
      args,
      env,
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (stdin) {
      const writer = proc.stdin.getWriter();
      await writer.write(stdin);
      await writer.close();
    }
    const out = await proc.output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  };

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await podman(["rm", "--all", "--force", "--time", "0"]).catch(() => {});
      await unmountUnder(dir);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      for (const path of [...HOST_PATHS].reverse()) {
        if (!before.has(path)) await Deno.remove(path, { recursive: true }).catch(() => {});
      }
      for (const root of cgroupRoots()) {
        const parent = `${root}/${CGROUP_PARENT}`;
        if (!cgroupsBefore.has(parent)) await removeCgroup(parent);
      }
    })();
    return stopped;
  };

  const info = await podman(["info", "--format", "{{.Version.Version}}"]);
  if (info.code !== 0) {
    await stop();
    throw new Error(`podman info failed on the private set-up: ${info.stderr.trim()}`);
  }
  return { dir, env, podman, stop, [Symbol.asyncDispose]: stop };
}

/** Removes a cgroup folder and its children, deepest first (cgroup folders rmdir only). */
async function removeCgroup(path: string): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(path)];
  } catch {
    return;
  }
  for (const entry of entries) {
    if (entry.isDirectory) await removeCgroup(`${path}/${entry.name}`);
  }
  await Deno.remove(path).catch(() => {});
}

/** Unmounts every mount point under `dir`, deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  const text = await Deno.readTextFile("/proc/self/mountinfo").catch(() => "");
  const points = text.split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .map((p) => p.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of points) {
    await new Deno.Command("umount", { args: ["-l", point], stdout: "null", stderr: "null" })
      .output().catch(() => {});
  }
}
