import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import {
  ALLOWED_TRANSITIONS,
  allowedSources,
  canTransition,
  isTerminal,
  TERMINAL_STATES,
} from "./state.ts";
import { TES_STATES, type TesState } from "./model.ts";

/**
 * The state machine written out by hand, independently of `state.ts`: a row per source state,
 * an `x` where the column's state may follow. Columns in the order of TES_STATES: UNKNOWN,
 * QUEUED, INITIALIZING, RUNNING, PAUSED, COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR, CANCELED (X),
 * PREEMPTED (M), CANCELING (G).
 */
const TABLE = `
from \\ to      U Q I R P C E S X M G
UNKNOWN         . x x x x x x x x x x
QUEUED          . . x x x x x x x x x
INITIALIZING    . . . x x x x x x x x
RUNNING         . . . . x x x x x x x
PAUSED          . . . x . x x x x x x
COMPLETE        . . . . . . . . . . .
EXECUTOR_ERROR  . . . . . . . . . . .
SYSTEM_ERROR    . . . . . . . . . . .
CANCELED        . . . . . . . . . . .
PREEMPTED       . . . . . . . . . . .
CANCELING       . . . . . . . . x . .
`;

const EXPECTED = new Map(
  TABLE.trim().split("\n").slice(1).map((line) => {
    const [from = "", ...cells] = line.trim().split(/\s+/);
    return [from, cells] as const;
  }),
);

Deno.test("canTransition() is checked against a table with one row per state", () => {
  deepStrictEqual([...EXPECTED.keys()], [...TES_STATES]);
});

function expected(from: TesState, to: TesState): boolean {
  const cells = EXPECTED.get(from);
  if (cells === undefined) throw new Error(`no row for ${from}`);
  equal(cells.length, TES_STATES.length, `row ${from} has one cell per state`);
  return cells[TES_STATES.indexOf(to)] === "x";
}

const LIVE: readonly TesState[] = ["UNKNOWN", "QUEUED", "INITIALIZING", "RUNNING", "PAUSED"];

Deno.test("canTransition() matches the expected table for every pair of states", () => {
  let checked = 0;
  for (const from of TES_STATES) {
    for (const to of TES_STATES) {
      equal(canTransition(from, to), expected(from, to), `${from} -> ${to}`);
      checked++;
    }
  }
  equal(checked, 121);
});

Deno.test("canTransition() never allows staying in the same state", () => {
  for (const state of TES_STATES) equal(canTransition(state, state), false, state);
});

Deno.test("canTransition() lets no terminal state go anywhere", () => {
  for (const from of TERMINAL_STATES) {
    for (const to of TES_STATES) equal(canTransition(from, to), false, `${from} -> ${to}`);
    deepStrictEqual(ALLOWED_TRANSITIONS[from], [], from);
  }
});

Deno.test("canTransition() never goes back to QUEUED", () => {
  for (const from of TES_STATES) {
    equal(canTransition(from, "QUEUED"), from === "UNKNOWN", `${from} -> QUEUED`);
  }
  deepStrictEqual(allowedSources("QUEUED"), ["UNKNOWN"]);
});

Deno.test("canTransition() never goes back to UNKNOWN", () => {
  deepStrictEqual(allowedSources("UNKNOWN"), []);
});

Deno.test("canTransition() lets every live state reach every terminal state and CANCELING", () => {
  for (const from of LIVE) {
    for (const to of TERMINAL_STATES) ok(canTransition(from, to), `${from} -> ${to}`);
    ok(canTransition(from, "CANCELING"), `${from} -> CANCELING`);
  }
  deepStrictEqual(ALLOWED_TRANSITIONS.CANCELING, ["CANCELED"]);
});

Deno.test("canTransition() moves forward only, except PAUSED back to RUNNING", () => {
  const rank = (state: TesState): number =>
    ({ UNKNOWN: 0, QUEUED: 1, INITIALIZING: 2, RUNNING: 3, PAUSED: 3 } as Record<string, number>)[
      state
    ] ?? 4;
  for (const from of TES_STATES) {
    for (const to of ALLOWED_TRANSITIONS[from]) {
      ok(rank(to) >= rank(from), `${from} -> ${to} goes backwards`);
    }
  }
  ok(canTransition("PAUSED", "RUNNING"));
  ok(canTransition("RUNNING", "PAUSED"));
});

Deno.test("allowedSources() is consistent with canTransition() for every target", () => {
  for (const to of TES_STATES) {
    const sources = allowedSources(to);
    deepStrictEqual(sources, TES_STATES.filter((from) => canTransition(from, to)), to);
    for (const from of sources) ok(ALLOWED_TRANSITIONS[from].includes(to), `${from} -> ${to}`);
  }
});

Deno.test("allowedSources() lists the states a cancel may come from", () => {
  deepStrictEqual(allowedSources("CANCELED"), [...LIVE, "CANCELING"]);
  deepStrictEqual(allowedSources("CANCELING"), LIVE);
  deepStrictEqual(allowedSources("RUNNING"), ["UNKNOWN", "QUEUED", "INITIALIZING", "PAUSED"]);
});

Deno.test("ALLOWED_TRANSITIONS has a row for every state naming only known states", () => {
  deepStrictEqual(Object.keys(ALLOWED_TRANSITIONS).sort(), [...TES_STATES].sort());
  for (const targets of Object.values(ALLOWED_TRANSITIONS)) {
    for (const to of targets) ok(TES_STATES.includes(to), to);
    equal(new Set(targets).size, targets.length, "no duplicates");
  }
});

Deno.test("ALLOWED_TRANSITIONS and TERMINAL_STATES cannot be modified", () => {
  ok(Object.isFrozen(ALLOWED_TRANSITIONS));
  ok(Object.isFrozen(TERMINAL_STATES));
  for (const targets of Object.values(ALLOWED_TRANSITIONS)) ok(Object.isFrozen(targets));
  throws(() => (TERMINAL_STATES as TesState[]).push("RUNNING"), TypeError);
});

Deno.test("isTerminal() is true exactly for states with no way out", () => {
  for (const state of TES_STATES) {
    equal(isTerminal(state), ALLOWED_TRANSITIONS[state].length === 0, state);
  }
  deepStrictEqual(
    TES_STATES.filter(isTerminal),
    ["COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"],
  );
});
