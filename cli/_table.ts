/**
 * The one table helper of the CLI: aligned columns for people, separated by two spaces.
 *
 * @module
 */

/**
 * Formats rows under a header as aligned columns. The last column is not padded, so lines
 * carry no trailing spaces. Cells are taken as they are; newlines in a cell become spaces.
 *
 * @param headers Column titles.
 * @param rows One array of cells per row, in the order of `headers`.
 * @returns The table, one line per row plus the header line, ending with a newline.
 * @example
 * ```ts
 * import { formatTable } from "./_table.ts";
 * formatTable(["ID", "STATE"], [["a1", "QUEUED"]]);
 * // "ID  STATE\na1  QUEUED\n"
 * ```
 */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const clean = (cell: string | undefined): string => (cell ?? "").replace(/[\r\n\t]+/g, " ");
  const all = [headers.map(clean), ...rows.map((row) => headers.map((_, i) => clean(row[i])))];
  const widths = headers.map((_, i) => Math.max(...all.map((row) => row[i]?.length ?? 0)));
  const lines = all.map((row) =>
    row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  ")
      .trimEnd()
  );
  return `${lines.join("\n")}\n`;
}
