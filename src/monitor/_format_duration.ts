/**
 * Writes a duration the way Kubernetes tools do: `45s`, `10m`, `10m30s`, `2h5m`, `3d4h`
 * (whole seconds, the two largest units that are not zero).
 *
 * @param ms A duration in milliseconds (negative counts as 0).
 * @returns The short form.
 */
export function formatDuration(ms: number): string {
  let seconds = Math.max(0, Math.floor(ms / 1000));
  const units: [string, number][] = [["d", 86_400], ["h", 3_600], ["m", 60], ["s", 1]];
  const parts: string[] = [];
  for (const [unit, size] of units) {
    const count = Math.floor(seconds / size);
    seconds -= count * size;
    if (count > 0 || (parts.length > 0 && parts.length < 2)) parts.push(`${count}${unit}`);
    if (parts.length === 2) break;
  }
  const text = parts.filter((part) => !/^0[a-z]$/.test(part)).join("");
  return text || "0s";
}
