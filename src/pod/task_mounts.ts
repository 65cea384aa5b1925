/**
 * Where a task's data volume is mounted: every directory the task reads or writes, so that the
 * transporter and the executors, each in its own container, see the same files at the same
 * paths.
 *
 * @module
 */
import type { TesTask } from "../tes/model.ts";

/** Where the whole data volume is mounted (the `inputs` container writes file mounts there). */
export const DATA_DIR = "/planetary/data";
/** Prefix, inside the data volume, of every mounted path: path `/a/b` lives at `fs/a/b`. */
export const DATA_SUBPATH_PREFIX = "fs";

/**
 * Parent directories that are never mounted over, because hiding the image's own files there
 * would break the image (`/etc/passwd`, `/usr/bin`…): a file directly inside one of them is
 * mounted by itself (a file mount) instead of its directory.
 */
export const FILE_MOUNT_PARENTS: ReadonlySet<string> = new Set([
  "/",
  "/bin",
  "/sbin",
  "/lib",
  "/lib64",
  "/etc",
  "/usr",
  "/usr/bin",
  "/usr/sbin",
  "/usr/lib",
  "/usr/local",
  "/usr/local/bin",
  "/var",
]);

/** One mount of the data volume. */
export interface DataMount {
  /** Absolute path in the containers. */
  mountPath: string;
  /** Path inside the data volume: {@linkcode DATA_SUBPATH_PREFIX} + `mountPath`. */
  subPath: string;
}

/** The mounts of a task's data volume. */
export interface TaskMounts {
  /** Directory mounts: deduplicated, none inside another, sorted. */
  directories: DataMount[];
  /**
   * File mounts, for files directly inside a {@linkcode FILE_MOUNT_PARENTS} directory. The file
   * must exist in the volume before a container mounting it starts (otherwise the kubelet
   * creates a directory there), so the `inputs` container does not mount them: it writes them
   * under {@linkcode DATA_DIR} instead (see {@linkcode dataPath}).
   */
  files: DataMount[];
}

/**
 * Normalizes an absolute POSIX path lexically: collapses `//`, resolves `.` and `..`, drops the
 * trailing `/`.
 *
 * @param path An absolute path.
 * @returns The normalized path (`/` for the root).
 */
export function normalizePath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return "/" + parts.join("/");
}

/**
 * The directory holding a path.
 *
 * @param path An absolute path.
 * @returns Its normalized parent (`/` for `/x`).
 */
export function parentDir(path: string): string {
  const normal = normalizePath(path);
  const cut = normal.lastIndexOf("/");
  return cut <= 0 ? "/" : normal.slice(0, cut);
}

/** Whether `path` is `dir` or inside it (both normalized). */
export function isWithin(path: string, dir: string): boolean {
  return path === dir || dir === "/" || path.startsWith(dir + "/");
}

const GLOB = /[*?[]/;

/** The deepest directory of a wildcard pattern that holds no wildcard. */
function staticDir(pattern: string): string {
  const parts = normalizePath(pattern).split("/");
  const first = parts.findIndex((part) => GLOB.test(part));
  // parts[0] is "" (the root); a pattern without wildcards is treated as a file.
  const keep = first === -1 ? parts.length - 1 : first;
  return normalizePath(parts.slice(0, keep).join("/") || "/");
}

/**
 * Where `path` lives inside the data volume as mounted at {@linkcode DATA_DIR}.
 *
 * @param path An absolute path in the containers.
 * @returns `DATA_DIR/fs/<path>`.
 */
export function dataPath(path: string): string {
  return `${DATA_DIR}/${DATA_SUBPATH_PREFIX}${normalizePath(path)}`;
}

function mount(path: string): DataMount {
  return { mountPath: path, subPath: `${DATA_SUBPATH_PREFIX}${path}` };
}

/**
 * Computes the data mounts of a task: each `volumes` entry; each input (a DIRECTORY its path, a
 * FILE its directory); each output (a FILE its directory, a DIRECTORY its path, a wildcard the
 * deepest directory without a wildcard); each executor's stdin/stdout/stderr directory.
 * Working directories are not mounted (the image provides them, or the wrapper creates them).
 * Directories inside another are folded into it, and `/` and the
 * {@linkcode FILE_MOUNT_PARENTS} are never mounted: a file directly in one of them gets a file
 * mount.
 *
 * @param task The task.
 * @returns Its directory and file mounts.
 * @example
 * ```ts
 * import { taskMounts } from "./task_mounts.ts";
 * taskMounts({
 *   executors: [{ image: "alpine", command: ["true"], stdout: "/out/log/stdout" }],
 *   volumes: ["/out"],
 * }).directories; // [{ mountPath: "/out", subPath: "fs/out" }]
 * ```
 */
export function taskMounts(task: TesTask): TaskMounts {
  const dirs = new Set<string>();
  const files = new Set<string>();
  const addDir = (dir: string) => {
    const normal = normalizePath(dir);
    if (normal !== "/") dirs.add(normal);
  };
  const addFile = (path: string) => {
    const normal = normalizePath(path);
    const parent = parentDir(normal);
    if (normal === "/") return;
    if (FILE_MOUNT_PARENTS.has(parent)) files.add(normal);
    else dirs.add(parent);
  };
  for (const volume of task.volumes ?? []) addDir(volume);
  for (const input of task.inputs ?? []) {
    if (input.type === "DIRECTORY") addDir(input.path);
    else addFile(input.path);
  }
  for (const output of task.outputs ?? []) {
    if (GLOB.test(output.path)) addDir(staticDir(output.path));
    else if (output.type === "DIRECTORY") addDir(output.path);
    else addFile(output.path);
  }
  for (const executor of task.executors) {
    for (const path of [executor.stdin, executor.stdout, executor.stderr]) {
      if (path) addFile(path);
    }
  }
  const sorted = [...dirs].sort((a, b) => a.length - b.length || (a < b ? -1 : 1));
  const kept: string[] = [];
  for (const dir of sorted) {
    if (!kept.some((ancestor) => isWithin(dir, ancestor))) kept.push(dir);
  }
  const keptFiles = [...files].filter((file) => !kept.some((dir) => isWithin(file, dir)));
  const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return {
    directories: kept.sort(byPath).map(mount),
    files: keptFiles.sort(byPath).map(mount),
  };
}
