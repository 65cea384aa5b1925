/**
 * The lock that keeps two processes (or two stores in one process) from opening one PGlite
 * data directory: PGlite itself does not refuse, and two writers would corrupt it.
 *
 * The lock is a file beside the directory, `<dataDir>.lock`, created with `createNew`
 * (O_EXCL) and holding the owner's pid, AND an exclusive advisory lock (`flock`) on that file.
 * The operating system drops the advisory lock when its holder dies, so a lock file left by a
 * dead process is taken over safely, without guessing from its pid whether it is alive.
 *
 * @module
 */

/** Raised when another process (or another store in this process) holds a data directory. */
export class DataDirLockedError extends Error {
  /** Stable error code. */
  readonly code = "DATA_DIR_LOCKED";
  /** The data directory. */
  readonly dataDir: string;
  /** The pid written by the holder, when readable. */
  readonly holderPid: number | undefined;
  /**
   * Builds the error.
   *
   * @param dataDir The data directory that is locked.
   * @param holderPid The pid of the holder, when known.
   * @param options Standard error options (`cause`).
   */
  constructor(dataDir: string, holderPid: number | undefined, options?: ErrorOptions) {
    super(
      `Cannot open data directory "${dataDir}": it is in use by ${
        holderPid === undefined ? "another process" : `process ${holderPid}`
      } (lock file "${dataDir}.lock")`,
      options,
    );
    this.name = "DataDirLockedError";
    this.dataDir = dataDir;
    this.holderPid = holderPid;
  }
}

/** A held data directory lock. */
export interface DataDirLock {
  /** The lock file. */
  readonly path: string;
  /** Releases the lock (idempotent). */
  release(): void;
}

function readPid(file: Deno.FsFile): number | undefined {
  try {
    file.seekSync(0, Deno.SeekMode.Start);
    const buffer = new Uint8Array(64);
    const n = file.readSync(buffer) ?? 0;
    const pid = Number.parseInt(new TextDecoder().decode(buffer.subarray(0, n)), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock of a data directory.
 *
 * @param dataDir The data directory (need not exist yet).
 * @returns The held lock; call `release()` after closing the database.
 * @throws {DataDirLockedError} When a live process holds the directory.
 * @example
 * ```ts
 * import { acquireDataDirLock } from "./data_dir_lock.ts";
 * const dir = await Deno.makeTempDir();
 * const lock = acquireDataDirLock(`${dir}/data`);
 * lock.release();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function acquireDataDirLock(dataDir: string): DataDirLock {
  const normalized = dataDir.replace(/\/+$/, "") || "/";
  const path = `${normalized}.lock`;
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true, write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    // A lock file exists: it is stale unless its holder still has the advisory lock.
    file = Deno.openSync(path, { read: true, write: true });
  }
  let locked = false;
  try {
    locked = file.tryLockSync(true);
  } catch (error) {
    file.close();
    throw error;
  }
  if (!locked) {
    const holderPid = readPid(file);
    file.close();
    throw new DataDirLockedError(normalized, holderPid);
  }
  file.truncateSync(0);
  file.seekSync(0, Deno.SeekMode.Start);
  file.writeSync(new TextEncoder().encode(`${Deno.pid}\n`));
  let released = false;
  return {
    path,
    release(): void {
      if (released) return;
      released = true;
      // The file stays (emptied): deleting it would let a process that opened it just before
      // the deletion lock an unlinked file while a third one creates a fresh one.
      try {
        file.truncateSync(0);
        file.unlockSync();
      } finally {
        file.close();
      }
    },
  };
}
