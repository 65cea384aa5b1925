/**
 * Stream helpers shared by the cloud adapters: byte counting with an expected size, and
 * digest verification (MD5 / CRC32C over the whole stream) that fails the stream at its end
 * when the bytes do not match what the store recorded.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
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

/** A running CRC32 over the bytes through a stream. */
export interface Crc32Tap {
  /** The transform to pipe through. */
  stream: TransformStream<Uint8Array, Uint8Array>;
  /** The CRC32 so far (of everything, once the stream has ended). */
  value(): number;
}

/**
 * A pass-through computing the CRC32 (the one S3 calls `CRC32`) of everything that flows
 * through it, natively (`node:zlib`).
 *
 * @returns The transform and the value reader.
 */
export function crc32Tap(): Crc32Tap {
  let value = 0;
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      value = crc32(chunk, value);
      controller.enqueue(chunk);
    },
  });
  return { stream, value: () => value };
}

/**
 * A CRC32 as S3 writes it: the 4 big-endian bytes in base64.
 *
 * @param value A CRC32.
 * @returns Its base64 form, e.g. `"NhCmhg=="` for the CRC32 of `"hello"`.
 */
export function crc32Base64(value: number): string {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value >>> 0);
  return btoa(String.fromCharCode(...bytes));
}

/**
 * The CRC32 of some bytes in S3's base64 form.
 *
 * @param bytes Any bytes.
 * @returns The base64 of their CRC32.
 */
export function crc32Of(bytes: Uint8Array): string {
  return crc32Base64(crc32(bytes, 0));
}

/**
 * A pass-through that computes the CRC32 of the stream and errors it at the end when it is not
 * `expected` (S3's base64 form of a whole-object CRC32).
 *
 * @param expected The CRC32 the store recorded for the whole object, in base64.
 * @param url The URL, for the error.
 * @returns The transform.
 */
export function verifyCrc32(
  expected: string,
  url: string,
): TransformStream<Uint8Array, Uint8Array> {
  let value = 0;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      value = crc32(chunk, value);
      controller.enqueue(chunk);
    },
    flush() {
      const actual = crc32Base64(value);
      if (actual !== expected) {
        throw new StorageError(
          `integrity check failed: CRC32 ${actual} differs from the stored ${expected}`,
          { code: "IO_ERROR", url },
        );
      }
    },
  });
}

/** A running digest that prints itself the way the store records it (e.g. base64). */
export interface StreamDigest {
  /** Adds bytes. */
  update(bytes: Uint8Array): unknown;
  /** The digest so far, in the store's notation. */
  toString(): string;
}

/**
 * A pass-through that feeds `digest` and errors the stream at its end when the digest is not
 * `expected`.
 *
 * @param digest A fresh digest (e.g. the GCS SDK's `CRC32C`).
 * @param expected The value the store recorded, in the digest's notation.
 * @param name The digest's name, for the error.
 * @param url The URL, for the error.
 * @returns The transform.
 */
export function verifyDigest(
  digest: StreamDigest,
  expected: string,
  name: string,
  url: string,
): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      digest.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      const actual = digest.toString();
      if (actual !== expected) {
        throw new StorageError(
          `integrity check failed: ${name} ${actual} differs from the stored ${expected}`,
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
