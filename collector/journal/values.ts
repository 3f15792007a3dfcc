import { isUtf8 } from "node:buffer";

/**
 * How both backends turn the bytes of a field value into what a JournalEntry holds, so that they
 * deliver identical entries for the same journal: the same cut, the same string-or-bytes choice,
 * the same byte count.
 */

/** Values are never kept longer than this, whatever limits.maxFieldBytes says. */
export const MAX_FIELD_BYTES_CAP = 512 * 1024 * 1024;

/** journald's rule for field names (journal_field_valid): A-Z, 0-9 and _, no leading digit, <= 64. */
export const FIELD_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;

/** What decodeValue reports besides the value: kept in one reusable object, no allocation per field. */
export interface ValueInfo {
  /** Bytes of the value as delivered. */
  bytes: number;
  truncated: boolean;
}

/**
 * Decodes the value bytes `buf[start, end)`. `fullLength` is the value's real length (larger than
 * end - start when the reader already had only a prefix). A value longer than `max` bytes is cut
 * to `max`; a cut that splits a UTF-8 character backs off to the character boundary when the
 * bytes before it are text, so such a value stays a string. The value is a string when the
 * delivered bytes are valid UTF-8, else a copy of them (never a view of memory we do not own).
 */
export function decodeValue(
  buf: Buffer,
  start: number,
  end: number,
  fullLength: number,
  max: number,
  info: ValueInfo,
): string | Buffer {
  const truncated = fullLength > max;
  const stop = end - start > max ? start + max : end;
  info.truncated = truncated;
  info.bytes = stop - start;
  const text = buf.toString("utf8", start, stop);
  // The decoder replaces every invalid sequence by U+FFFD; only then is a real check needed.
  if (!text.includes("\uFFFD") || isUtf8(buf.subarray(start, stop))) return text;
  if (truncated) {
    for (let back = 1; back <= 3 && stop - back > start; back += 1) {
      if (isUtf8(buf.subarray(start, stop - back))) {
        info.bytes = stop - back - start;
        return buf.toString("utf8", start, stop - back);
      }
    }
  }
  return Buffer.from(buf.subarray(start, stop));
}
