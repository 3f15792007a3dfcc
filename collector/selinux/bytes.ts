/**
 * Paths as byte strings. Linux file names are bytes, not text, and libselinux matches its regexes
 * against those bytes. A "byte string" here is a JavaScript string with one char per byte (what
 * Node's "latin1" encoding gives), so a directory read with encoding "latin1" yields names that
 * survive any byte sequence, and a regex sees exactly the bytes PCRE2 sees. For the ASCII names
 * that make up nearly every store, a byte string is the ordinary string.
 */

import { displayName } from "../host/files.js";

const NON_ASCII = /[\u0080-\uffff]/;

/** The byte string of text (its UTF-8 bytes, one char each). */
export function toByteString(text: string): string {
  return NON_ASCII.test(text) ? Buffer.from(text, "utf8").toString("latin1") : text;
}

/** Readable form of a byte string: UTF-8 text when it decodes, with \xNN for bytes that do not. */
export function displayBytes(bytes: string): string {
  return NON_ASCII.test(bytes) ? displayName(Buffer.from(bytes, "latin1")) : bytes;
}

/** What to hand to node:fs for a byte-string path (a Buffer when it is not plain ASCII). */
export function fsPath(bytes: string): string | Buffer {
  return NON_ASCII.test(bytes) ? Buffer.from(bytes, "latin1") : bytes;
}

/** A NUL-terminated C string for FFI: the string itself when ASCII (koffi encodes it). */
export function cPath(bytes: string): string | Buffer {
  if (!NON_ASCII.test(bytes)) return bytes;
  const raw = Buffer.alloc(bytes.length + 1);
  raw.write(bytes, 0, "latin1");
  return raw;
}
