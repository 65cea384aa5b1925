/**
 * The TES task state machine: which state may follow which. The store enforces it in SQL
 * (`UPDATE … WHERE state = ANY(allowedSources(to))`), so concurrent writers can never move a
 * task backwards.
 *
 * @module
 */
import { TES_STATES, type TesState } from "./model.ts";

/** States a task never leaves. */
export const TERMINAL_STATES: readonly TesState[] = Object.freeze([
  "COMPLETE",
  "EXECUTOR_ERROR",
  "SYSTEM_ERROR",
  "CANCELED",
  "PREEMPTED",
]);

const ENDINGS: readonly TesState[] = [
  "COMPLETE",
  "EXECUTOR_ERROR",
  "SYSTEM_ERROR",
  "PREEMPTED",
  "CANCELING",
  "CANCELED",
];

/**
 * For each state, the states it may move to. A live task may skip forward (a short task can be
 * seen COMPLETE before it was ever seen RUNNING) but never go back; a canceling task can only
 * end CANCELED; terminal states have no way out.
 */
export const ALLOWED_TRANSITIONS: Readonly<Record<TesState, readonly TesState[]>> = freezeRows({
  UNKNOWN: ["QUEUED", "INITIALIZING", "RUNNING", "PAUSED", ...ENDINGS],
  QUEUED: ["INITIALIZING", "RUNNING", "PAUSED", ...ENDINGS],
  INITIALIZING: ["RUNNING", "PAUSED", ...ENDINGS],
  RUNNING: ["PAUSED", ...ENDINGS],
  PAUSED: ["RUNNING", ...ENDINGS],
  CANCELING: ["CANCELED"],
  COMPLETE: [],
  EXECUTOR_ERROR: [],
  SYSTEM_ERROR: [],
  CANCELED: [],
  PREEMPTED: [],
});

/** Freezes the table and each of its rows: a shared table must not be changed at run time. */
function freezeRows(
  table: Record<TesState, TesState[]>,
): Readonly<Record<TesState, readonly TesState[]>> {
  for (const row of Object.values(table)) Object.freeze(row);
  return Object.freeze(table);
}

/**
 * Tells whether a task in state `from` may move to state `to`.
 *
 * @param from The current state.
 * @param to The wanted state.
 * @returns `true` when the transition is allowed.
 * @example
 * ```ts
 * import { canTransition } from "./state.ts";
 * canTransition("RUNNING", "COMPLETE"); // true
 * canTransition("COMPLETE", "RUNNING"); // false
 * ```
 */
export function canTransition(from: TesState, to: TesState): boolean {
  return ALLOWED_TRANSITIONS[from].includes(to);
}

/**
 * Lists the states from which a task may move to `to`: the `ANY($n)` of a compare-and-set
 * update.
 *
 * @param to The wanted state.
 * @returns Every state that may precede `to`.
 * @example
 * ```ts
 * import { allowedSources } from "./state.ts";
 * allowedSources("CANCELED"); // ["UNKNOWN", "QUEUED", "INITIALIZING", "RUNNING", "PAUSED", "CANCELING"]
 * ```
 */
export function allowedSources(to: TesState): TesState[] {
  return TES_STATES.filter((from) => canTransition(from, to));
}

/**
 * Tells whether a task in this state is finished for good.
 *
 * @param state A task state.
 * @returns `true` for COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR, CANCELED and PREEMPTED.
 * @example
 * ```ts
 * import { isTerminal } from "./state.ts";
 * isTerminal("CANCELING"); // false
 * ```
 */
export function isTerminal(state: TesState): boolean {
  return TERMINAL_STATES.includes(state);
}
