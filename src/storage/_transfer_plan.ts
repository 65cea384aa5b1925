/**
 * How big the parts of a multipart upload (or the ranges of a parallel download) are and how
 * many are in flight, chosen from the object's size so that the buffers one transfer holds stay
 * under a fixed budget whatever the size, while staying within the store's part-count limit.
 *
 * @module
 */

const MIB = 1024 * 1024;

/**
 * Bytes of part or range buffers one transfer may hold at once (the parts in flight plus the
 * one being filled or drained). With the transporter's 4 parallel files and V8's lazily
 * collected network chunks this keeps a transporter under 200 MiB.
 */
export const TRANSFER_BUFFER_BUDGET = 32 * MIB;

/** Objects at least this large are downloaded by parallel ranges unless configured otherwise. */
export const DEFAULT_RANGED_READ_THRESHOLD = 64 * MIB;

/** Options of {@linkcode partPlan}. */
export interface PartPlanOptions {
  /** Part size when the part-count limit allows it. @default {8388608} */
  partSize?: number;
  /** The store's maximum number of parts (S3 10,000; Azure 50,000 blocks). */
  maxParts: number;
  /** Part size used when the object's size is unknown. @default {16777216} */
  unknownSizePartSize?: number;
  /**
   * Parts in flight, exactly (still at most the number of parts).
   * @default chosen from the budget
   */
  concurrency?: number;
  /** Upper bound of parts in flight chosen from the budget. @default {4} */
  maxConcurrency?: number;
  /**
   * Bytes the buffers may hold: `(concurrency + 1) × partSize`.
   * @default {TRANSFER_BUFFER_BUDGET}
   */
  budget?: number;
}

/** What {@linkcode partPlan} chose. */
export interface PartPlan {
  /** Bytes per part (the last may be shorter), a whole number of MiB. */
  partSize: number;
  /** Parts in flight at once (at least 1). */
  concurrency: number;
}

/**
 * Chooses part size and parallelism for an object: `partSize`, or larger (whole MiB) when
 * needed to stay within `maxParts`; then, unless `concurrency` is given, as many parts in flight
 * as fit in the budget beside the part being filled, at least 1 and at most `maxConcurrency`;
 * never more than the number of parts.
 *
 * @param size The object's size in bytes, when known.
 * @param options Part-count limit, preferred part size, parallelism bound and budget.
 * @returns The part size and the parallelism.
 *
 * @example Usage
 * ```ts
 * import { partPlan } from "./_transfer_plan.ts";
 * partPlan(1024 ** 3, { maxParts: 10_000 }); // { partSize: 8388608, concurrency: 3 }
 * ```
 */
export function partPlan(size: number | undefined, options: PartPlanOptions): PartPlan {
  const {
    partSize: preferred = 8 * MIB,
    maxParts,
    unknownSizePartSize = 16 * MIB,
    concurrency: exact,
    maxConcurrency = 4,
    budget = TRANSFER_BUFFER_BUDGET,
  } = options;
  const partSize = size === undefined
    ? Math.max(preferred, unknownSizePartSize)
    : Math.max(preferred, Math.ceil(size / maxParts / MIB) * MIB);
  const parts = size === undefined ? Infinity : Math.max(1, Math.ceil(size / partSize));
  const wanted = exact ?? Math.min(maxConcurrency, Math.floor(budget / partSize) - 1);
  const concurrency = Math.max(1, Math.min(wanted, parts));
  return { partSize, concurrency };
}

/**
 * Parses `PLANETARY_STORAGE_RANGED_READ_MIB`: a number of MiB (0 = every non-empty object),
 * `off` (never), or unset (the default threshold). Anything else also means the default, so a
 * typo cannot stop a transporter; the variable only tunes speed.
 *
 * @param value The variable's value.
 * @returns The threshold in bytes (`Infinity` for `off`), or `undefined` for the default.
 *
 * @example Usage
 * ```ts
 * import { parseRangedReadMib } from "./_transfer_plan.ts";
 * parseRangedReadMib("128"); // 134217728
 * parseRangedReadMib("off"); // Infinity
 * ```
 */
export function parseRangedReadMib(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const text = value.trim().toLowerCase();
  if (/^(off|false|no|none|never)$/.test(text)) return Infinity;
  const mib = Number(text);
  return Number.isFinite(mib) && mib >= 0 ? mib * MIB : undefined;
}
