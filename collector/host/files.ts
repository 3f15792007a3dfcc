import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { open, readdir } from "node:fs/promises";
import path from "node:path";

export interface BoundedText {
  text: string;
  bytes: number;
  truncated: boolean;
  /** True when the bytes were not valid UTF-8 (they were decoded with U+FFFD replacements). */
  invalidUtf8: boolean;
  /** The file's mtime (ms since the epoch), when it was read here (not through a probe child). */
  modifiedMs?: number;
}

export const DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Reads at most `maxBytes` of a regular file. Opening with O_NONBLOCK and checking the type
 * before reading means a FIFO or device planted where a config file should be cannot block us.
 */
export async function readBoundedText(localPath: string | Buffer, maxBytes = DEFAULT_MAX_FILE_BYTES) {
  const handle = await open(localPath, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    const buffer = boundedBuffer(localPath, info, maxBytes);
    let bytes = 0;
    while (bytes < buffer.length) {
      const { bytesRead } = await handle.read(buffer, bytes, buffer.length - bytes, bytes);
      if (bytesRead === 0) break;
      bytes += bytesRead;
    }
    return boundedText(buffer, bytes, maxBytes, info.mtimeMs);
  } finally {
    await handle.close();
  }
}

/**
 * readBoundedText on this thread, for a file the caller knows is on a local filesystem (no FUSE
 * or network mount): a promise per open, stat, read and close costs more than the reading there.
 */
export function readBoundedTextNow(localPath: string, maxBytes = DEFAULT_MAX_FILE_BYTES): BoundedText {
  const fd = openSync(localPath, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = fstatSync(fd);
    const buffer = boundedBuffer(localPath, info, maxBytes);
    let bytes = 0;
    while (bytes < buffer.length) {
      const bytesRead = readSync(fd, buffer, bytes, buffer.length - bytes, bytes);
      if (bytesRead === 0) break;
      bytes += bytesRead;
    }
    return boundedText(buffer, bytes, maxBytes, info.mtimeMs);
  } finally {
    closeSync(fd);
  }
}

/** Room for maxBytes and one more (to tell a longer file), after checking it is a regular file. */
function boundedBuffer(
  localPath: string | Buffer,
  info: { isFile(): boolean; size: number },
  maxBytes: number,
) {
  if (!info.isFile()) {
    throw Object.assign(new Error(`not a regular file: ${String(localPath)}`), { code: "ENOTREG" });
  }
  return Buffer.alloc(Math.min(maxBytes, Math.max(info.size, 0)) + 1);
}

function boundedText(buffer: Buffer, bytes: number, maxBytes: number, modifiedMs: number): BoundedText {
  return { ...decodeUtf8(buffer.subarray(0, Math.min(bytes, maxBytes)), bytes > maxBytes), modifiedMs };
}

export function decodeUtf8(body: Buffer, truncated: boolean): BoundedText {
  let invalidUtf8 = false;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    invalidUtf8 = true;
    text = new TextDecoder("utf-8").decode(body);
  }
  return { text, bytes: body.length, truncated, invalidUtf8 };
}

export interface DirEntryName {
  /** Printable form: invalid UTF-8 bytes appear as \xNN. */
  display: string;
  /** The exact bytes, so a name that is not UTF-8 can still be opened. */
  raw: Buffer;
  isDirectory: boolean;
}

/** Lists a directory by raw names, sorted bytewise (the order Go's sort.Strings gives). */
export async function listDirectory(localDir: string | Buffer): Promise<DirEntryName[]> {
  const entries = await readdir(localDir, { encoding: "buffer", withFileTypes: true });
  return entries
    .map((entry) => {
      const raw = entry.name as unknown as Buffer;
      return { raw, display: displayName(raw), isDirectory: entry.isDirectory() };
    })
    .sort((a, b) => Buffer.compare(a.raw, b.raw));
}

/** Readable form of a file name: UTF-8 text when it decodes, with \xNN for bytes that do not. */
export function displayName(raw: Buffer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    return [...raw]
      .map((byte) => (byte < 0x80 ? String.fromCharCode(byte) : `\\x${byte.toString(16)}`))
      .join("");
  }
}

/** Joins a directory and a raw name, keeping the name's bytes intact. */
export function joinRaw(dir: string | Buffer, raw: Buffer): Buffer {
  const base =
    typeof dir === "string" ? Buffer.from(path.join(dir, "/")) : Buffer.concat([dir, Buffer.from("/")]);
  return Buffer.concat([base, raw]);
}

export interface Tail {
  text: string;
  bytes: number;
  /** True when the file is longer than what was read: the first line may start mid-way. */
  cut: boolean;
}

/** The last `maxBytes` of a regular file (logs are read from their end), or undefined when unreadable. */
export async function readTail(localPath: string, maxBytes: number): Promise<Tail | undefined> {
  const tail = await readTailBytes(localPath, maxBytes);
  return tail && { text: tail.data.toString("utf8"), bytes: tail.bytes, cut: tail.cut };
}

/** A Tail as bytes: for a log searched for a few lines, which are all that is worth decoding. */
export interface ByteTail {
  data: Buffer;
  bytes: number;
  cut: boolean;
}

/** readTail without decoding. */
export async function readTailBytes(localPath: string, maxBytes: number): Promise<ByteTail | undefined> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(localPath, constants.O_RDONLY | constants.O_NONBLOCK);
    const info = await handle.stat();
    if (!info.isFile()) return undefined;
    const length = Math.min(info.size, maxBytes);
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, info.size - length);
    return { data: buffer.subarray(0, bytesRead), bytes: bytesRead, cut: length < info.size };
  } catch {
    return undefined;
  } finally {
    await handle?.close();
  }
}
