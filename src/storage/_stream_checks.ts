/**
 * Stream helpers shared by the cloud adapters: byte counting with an expected size, and
 * digest verification (MD5 / CRC32C over the whole stream) that fails the stream at its end
 * when the bytes do not match what the store recorded.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { StorageError } from "./storage_error.ts";

/** Counts the bytes through a stream. */
export interface ByteCounter {
  /** The transform to pipe through. */
  stream: TransformStream<Uint8Array, Uint8Array>;
  /** Bytes seen so far. */
  bytes(): number;
}

/**
 * A pass-through that counts bytes and, when `expected` is set, errors the stream at its end
 * (or as soon as it is exceeded) when the count differs.
 *
 * @param url The URL concerned, for the error.
 * @param expected The announced size, if any.
 * @returns The transform and a reader of the count.
 */
export function byteCounter(url: string, expected?: number): ByteCounter {
  let count = 0;
  const mismatch = (): StorageError =>
    new StorageError(`size mismatch: expected ${expected} bytes, got ${count}`, {
      code: "IO_ERROR",
      url,
    });
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      count += chunk.byteLength;
      if (expected !== undefined && count > expected) throw mismatch();
      controller.enqueue(chunk);
    },
    flush() {
      if (expected !== undefined && count !== expected) throw mismatch();
    },
  });
  return { stream, bytes: () => count };
}

/** A running MD5 over the bytes through a stream. */
export interface Md5Tap {
  /** The transform to pipe through. */
  stream: TransformStream<Uint8Array, Uint8Array>;
  /** The digest, available once the stream has ended. */
  digest(): Uint8Array;
}

/**
 * A pass-through computing the MD5 of everything that flows through it.
 *
 * @returns The transform and the digest reader.
 */
export function md5Tap(): Md5Tap {
  const hash = createHash("md5");
  let result: Uint8Array | undefined;
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      result = new Uint8Array(hash.digest());
    },
  });
  return {
    stream,
    digest(): Uint8Array {
      if (result === undefined) throw new Error("MD5 read before the stream ended");
      return result;
    },
  };
}

/**
 * A pass-through that computes the MD5 of the stream and errors it at the end when the
 * digest is not `expected` — so a reader never sees a clean end of a corrupted download.
 *
 * @param expected The MD5 the store recorded.
 * @param url The URL, for the error.
 * @returns The transform.
 */
export function verifyMd5(
  expected: Uint8Array,
  url: string,
): TransformStream<Uint8Array, Uint8Array> {
  const hash = createHash("md5");
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      const actual = new Uint8Array(hash.digest());
      if (toHex(actual) !== toHex(expected)) {
        throw new StorageError(
          `integrity check failed: MD5 ${toHex(actual)} differs from the stored ${toHex(expected)}`,
          { code: "IO_ERROR", url },
        );
      }
    },
  });
}

/**
 * Lower-case hex of bytes.
 *
 * @param bytes Any bytes.
 * @returns Their hex form.
 */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Parses a hex string into bytes.
 *
 * @param hex An even-length hex string.
 * @returns The bytes, or `undefined` when it is not hex.
 */
export function fromHex(hex: string): Uint8Array | undefined {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) return undefined;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * Decodes base64 into bytes.
 *
 * @param b64 Base64 text.
 * @returns The bytes, or `undefined` when it does not decode.
 */
export function fromBase64(b64: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/**
 * Wraps a stream so that an error it raises is replaced by `map(error)` — used to turn SDK
 * errors raised mid-body into scrubbed {@linkcode StorageError}s.
 *
 * @param stream The source stream.
 * @param map Converts the error.
 * @returns The same bytes, with mapped errors.
 */
export function mapStreamErrors(
  stream: ReadableStream<Uint8Array>,
  map: (error: unknown) => unknown,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(map(error));
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
