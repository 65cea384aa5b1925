/**
 * Reads the end of a file without reading the whole file.
 *
 * @module
 */

/**
 * Reads at most `maxBytes` from the end of a file, seeking to the start of the tail, and
 * decodes it as UTF-8. A character cut by the start of the tail is dropped, so the result
 * begins at a character boundary; an incomplete character at the very end is dropped too.
 *
 * @param path The file to read.
 * @param maxBytes The maximum number of bytes to read.
 * @returns The decoded tail, or `""` when the file does not exist or is not a regular file
 * (a symbolic link is never followed).
 * @throws {Deno.errors.PermissionDenied} When the file exists but cannot be read.
 *
 * @example Usage
 * ```ts ignore
 * import { readTail } from "./tail.ts";
 * const last = await readTail("/planetary/state/exec-0.stdout", 10_000);
 * ```
 */
export async function readTail(path: string, maxBytes: number): Promise<string> {
  let file: Deno.FsFile;
  try {
    // The files are written by the task's executors, and the transporter may read what they
    // may not: a symbolic link in their place (to /etc/shadow, say) is not followed.
    if (!(await Deno.lstat(path)).isFile) return "";
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  }
  try {
    const { size, isFile } = await file.stat();
    if (!isFile || maxBytes <= 0 || size === 0) return "";
    const start = Math.max(0, size - maxBytes);
    await file.seek(start, Deno.SeekMode.Start);
    const buffer = new Uint8Array(size - start);
    let filled = 0;
    while (filled < buffer.length) {
      const n = await file.read(buffer.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    return decodeUtf8Tail(buffer.subarray(0, filled), start > 0);
  } finally {
    file.close();
  }
}

/**
 * Decodes bytes cut out of a UTF-8 stream: drops continuation bytes at the start (when the
 * cut may have split a character) and an incomplete sequence at the end.
 *
 * @param bytes The bytes.
 * @param cutAtStart Whether the bytes start in the middle of the stream.
 * @returns The decoded text.
 */
export function decodeUtf8Tail(bytes: Uint8Array, cutAtStart: boolean): string {
  let begin = 0;
  if (cutAtStart) {
    while (begin < bytes.length && begin < 3 && (bytes[begin]! & 0xc0) === 0x80) begin++;
  }
  let end = bytes.length;
  // Walk back over at most 3 continuation bytes to the lead byte of the last character.
  let lead = end - 1;
  while (lead > begin && end - lead < 4 && (bytes[lead]! & 0xc0) === 0x80) lead--;
  if (lead >= begin && lead < end) {
    const byte = bytes[lead]!;
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    if (end - lead < need) end = lead;
  }
  return new TextDecoder().decode(bytes.subarray(begin, end));
}
