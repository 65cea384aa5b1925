/**
 * POSIX pathname pattern matching (`fnmatch` with `FNM_PATHNAME | FNM_PERIOD`) and expansion,
 * for TES outputs whose `path` holds wildcards.
 *
 * - `*` matches any string, `?` any one character, `[...]` one character of a bracket
 *   expression (ranges `a-z`, classes `[:alpha:]`, negation `[!...]`, and `[^...]` as a common
 *   extension); none of them matches `/`.
 * - A leading `.` of a file name is matched only by a literal `.` in the pattern, so `*` does
 *   not match hidden files.
 * - `\` quotes the next character; a `[` without a closing `]` is an ordinary character.
 *
 * @module
 */

type Token =
  | { kind: "literal"; char: string }
  | { kind: "any" }
  | { kind: "star" }
  | { kind: "bracket"; source: string };

const CLASSES: Readonly<Record<string, string>> = {
  alpha: "A-Za-z",
  digit: "0-9",
  alnum: "A-Za-z0-9",
  upper: "A-Z",
  lower: "a-z",
  space: " \\t\\n\\r\\f\\v",
  blank: " \\t",
  punct: "!-\\/:-@\\[-`{-~",
  xdigit: "0-9A-Fa-f",
  cntrl: "\\x00-\\x1f\\x7f",
  print: " -~",
  graph: "!-~",
};

function regexChar(char: string): string {
  return `\\u{${char.codePointAt(0)!.toString(16)}}`;
}

/**
 * Parses a bracket expression starting at `chars[start]` (the `[`).
 * Returns the regex class and the index after `]`, or undefined when it is not a valid one.
 */
function parseBracket(
  chars: readonly string[],
  start: number,
): { source: string; next: number } | undefined {
  let i = start + 1;
  let negate = false;
  if (chars[i] === "!" || chars[i] === "^") {
    negate = true;
    i++;
  }
  const parts: string[] = [];
  let first = true;
  while (i < chars.length) {
    let char = chars[i]!;
    if (char === "]" && !first) {
      const body = parts.join("");
      // `[^/]` inside: a bracket expression never matches "/" (FNM_PATHNAME).
      const source = negate ? `[^/${body}]` : body === "" ? "(?!)" : `(?![/])[${body}]`;
      return { source, next: i + 1 };
    }
    first = false;
    if (char === "[" && (chars[i + 1] === ":" || chars[i + 1] === "=" || chars[i + 1] === ".")) {
      const delimiter = chars[i + 1]!;
      let end = i + 2;
      while (end < chars.length && !(chars[end] === delimiter && chars[end + 1] === "]")) end++;
      if (end >= chars.length) return undefined;
      const name = chars.slice(i + 2, end).join("");
      if (delimiter === ":") {
        const cls = CLASSES[name];
        if (cls === undefined) return undefined;
        parts.push(cls);
      } else {
        // Equivalence classes and collating symbols: in the C locale, the character itself.
        for (const c of name) parts.push(regexChar(c));
      }
      i = end + 2;
      continue;
    }
    if (char === "\\" && i + 1 < chars.length) {
      i++;
      char = chars[i]!;
    }
    if (chars[i + 1] === "-" && i + 2 < chars.length && chars[i + 2] !== "]") {
      let endIndex = i + 2;
      if (chars[endIndex] === "\\" && endIndex + 1 < chars.length) endIndex++;
      const end = chars[endIndex]!;
      if (char.codePointAt(0)! <= end.codePointAt(0)!) {
        parts.push(`${regexChar(char)}-${regexChar(end)}`);
      }
      i = endIndex + 1;
      continue;
    }
    parts.push(regexChar(char));
    i++;
  }
  return undefined;
}

function tokenize(pattern: string): Token[] {
  const chars = [...pattern];
  const tokens: Token[] = [];
  let i = 0;
  while (i < chars.length) {
    const char = chars[i]!;
    if (char === "\\" && i + 1 < chars.length) {
      tokens.push({ kind: "literal", char: chars[i + 1]! });
      i += 2;
    } else if (char === "*") {
      tokens.push({ kind: "star" });
      i++;
    } else if (char === "?") {
      tokens.push({ kind: "any" });
      i++;
    } else if (char === "[") {
      const bracket = parseBracket(chars, i);
      if (bracket === undefined) {
        tokens.push({ kind: "literal", char });
        i++;
      } else {
        tokens.push({ kind: "bracket", source: bracket.source });
        i = bracket.next;
      }
    } else {
      tokens.push({ kind: "literal", char });
      i++;
    }
  }
  return tokens;
}

/**
 * Whether a path or pattern holds an unquoted wildcard (`*`, `?` or a valid bracket
 * expression).
 *
 * @param pattern A path that may hold wildcards.
 * @returns `true` when it must be expanded.
 *
 * @example Usage
 * ```ts
 * import { hasWildcard } from "./wildcard.ts";
 * hasWildcard("/out/*.txt"); // true
 * hasWildcard("/out/a[1"); // false
 * ```
 */
export function hasWildcard(pattern: string): boolean {
  return tokenize(pattern).some((token) => token.kind !== "literal");
}

/**
 * Matches one file name against one pattern segment (no `/` in either), POSIX-style.
 *
 * @param pattern A pattern segment such as `*.txt` or `[!a-c]?`.
 * @param name A file name.
 * @returns Whether the name matches.
 *
 * @example Usage
 * ```ts
 * import { matchWildcard } from "./wildcard.ts";
 * matchWildcard("*.txt", "a.txt"); // true
 * matchWildcard("*", ".hidden"); // false
 * ```
 */
export function matchWildcard(pattern: string, name: string): boolean {
  const tokens = tokenize(pattern);
  if (name.startsWith(".")) {
    const first = tokens[0];
    if (first === undefined || first.kind !== "literal" || first.char !== ".") return false;
  }
  const source = tokens.map((token) => {
    switch (token.kind) {
      case "literal":
        return regexChar(token.char);
      case "any":
        return "[^/]";
      case "star":
        return "[^/]*";
      case "bracket":
        return token.source;
    }
  }).join("");
  return new RegExp(`^(?:${source})$`, "su").test(name);
}

/**
 * Removes quoting backslashes from a pattern segment holding no wildcard.
 *
 * @param segment A literal pattern segment.
 * @returns The file name it stands for.
 */
function unquote(segment: string): string {
  return tokenize(segment).map((t) => t.kind === "literal" ? t.char : "").join("");
}

/**
 * Expands an absolute pattern against the filesystem, like the shell's pathname expansion
 * (without the "no match leaves the pattern" rule: no match yields an empty list).
 *
 * @param pattern An absolute path pattern such as `/out/*.bam` or `/out/run-?/[!.]*`.
 * @returns The matching existing paths, sorted.
 * @throws {TypeError} When the pattern is not absolute.
 *
 * @example Usage
 * ```ts ignore
 * import { expandWildcard } from "./wildcard.ts";
 * const matches = await expandWildcard("/outputs/*.txt");
 * ```
 */
export async function expandWildcard(pattern: string): Promise<string[]> {
  if (!pattern.startsWith("/")) {
    throw new TypeError(`wildcard path must be absolute: "${pattern}"`);
  }
  let candidates = [""];
  const segments = pattern.split("/").filter((segment) => segment !== "");
  for (const segment of segments) {
    const next: string[] = [];
    if (!hasWildcard(segment)) {
      const name = unquote(segment);
      for (const base of candidates) next.push(`${base}/${name}`);
    } else {
      for (const base of candidates) {
        try {
          for await (const entry of Deno.readDir(base === "" ? "/" : base)) {
            if (matchWildcard(segment, entry.name)) next.push(`${base}/${entry.name}`);
          }
        } catch {
          // not a directory, or unreadable: no matches below it
        }
      }
    }
    candidates = next;
    if (candidates.length === 0) return [];
  }
  const existing: string[] = [];
  for (const path of candidates) {
    try {
      await Deno.lstat(path === "" ? "/" : path);
      existing.push(path === "" ? "/" : path);
    } catch {
      // literal segment that does not exist
    }
  }
  return existing.sort();
}

/**
 * The directory a wildcard pattern starts from: its leading segments that hold no wildcard.
 * Used as the `path_prefix` of a wildcard output that has none.
 *
 * @param pattern An absolute path pattern.
 * @returns The literal leading directory, e.g. `/out` for `/out/*.txt`.
 */
export function literalPrefix(pattern: string): string {
  const segments = pattern.split("/");
  const literal: string[] = [];
  for (const segment of segments.slice(0, -1)) {
    if (hasWildcard(segment)) break;
    literal.push(unquote(segment));
  }
  return literal.join("/") || "/";
}
