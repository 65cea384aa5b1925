/**
 * The error of an unusable PGlite data directory, in a module of its own so that a program can
 * recognise it without loading PGlite (the CLI on PostgreSQL never does).
 *
 * @module
 */

/**
 * Raised when a data directory cannot hold the embedded database: it is not a folder, or it is
 * a folder that is not empty and holds no PGlite database (PGlite's `initdb` would fail on it
 * with nothing but `ExitStatus {status: 1}`).
 */
export class DataDirNotUsableError extends Error {
  /** Stable error code. */
  readonly code = "DATA_DIR_NOT_USABLE";
  /** The data directory. */
  readonly dataDir: string;
  /** What is wrong with it and what to do (the message without the folder). */
  readonly reason: string;
  /**
   * Builds the error.
   *
   * @param dataDir The data directory.
   * @param reason What is wrong with it and what to do, e.g. `is not empty and holds no
   * Planetary database: choose another folder or empty it`.
   */
  constructor(dataDir: string, reason: string) {
    super(`Data directory "${dataDir}" ${reason}`);
    this.name = "DataDirNotUsableError";
    this.dataDir = dataDir;
    this.reason = reason;
  }
}
