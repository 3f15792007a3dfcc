import { randomBytes } from "node:crypto";
import { createWriteStream, unlinkSync } from "node:fs";
import { open, rename, rm, statfs } from "node:fs/promises";
import path from "node:path";
import { Transform, type TransformCallback, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { gzipMember } from "./gzip.js";

/**
 * Writes a bundle: a gzip-compressed tar of regular files under one top directory, in the order
 * given, streamed (tar-stream, then zlib) into a file or stdout. A file is written under a
 * temporary name in its own directory and renamed over the final name once complete and synced,
 * so the final name never holds a partial archive; on any failure the temporary file is removed.
 */

export interface ArchiveEntry {
  /** Path inside the top directory, e.g. "host/etc/crio/crio.conf". */
  name: string;
  data: Buffer;
  /**
   * `data` as one gzip member (gzipMember) made elsewhere, written as is instead of compressing
   * `data` here; when it resolves to undefined, `data` is compressed here after all.
   */
  gzip?: Promise<Buffer | undefined>;
}

const BLOCK = 512;

/**
 * The tar is compressed in slices of this size, each its own gzip member, several at once in
 * libuv's thread pool: gzip readers (gunzip, tar -z, Node's createGunzip, which the bundle
 * reader uses) read concatenated members as one stream (RFC 1952 2.2). Each member starts with an
 * empty dictionary, which costs about 0.1% on 4 MiB slices.
 */
const SLICE_BYTES = 4 * 1024 * 1024;
/** Slices being compressed at once: the thread pool's default size. */
const SLICES_AT_ONCE = 4;

/**
 * Gzip of its input as consecutive members compressed side by side, in order. A chunk that is
 * the very data of an entry compressed ahead (tar-stream passes an entry's Buffer on as it is)
 * is replaced by that entry's member, between the members of what came before and after it.
 */
class SlicedGzip extends Transform {
  #held: Buffer[] = [];
  #heldBytes = 0;
  #running: Promise<Buffer>[] = [];
  #members = 0;
  readonly #ahead: Map<Buffer, Promise<Buffer | undefined>>;

  constructor(entries: ArchiveEntry[]) {
    super();
    this.#ahead = new Map(entries.flatMap((e) => (e.gzip && e.data.length > 0 ? [[e.data, e.gzip]] : [])));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const member = this.#ahead.get(chunk);
    if (member) {
      if (this.#heldBytes > 0) this.#start(this.#take(this.#heldBytes));
      this.#members += 1;
      const running = member.then((m) => m ?? gzipMember(chunk));
      running.catch(() => {}); // as in #start
      this.#running.push(running);
    } else {
      this.#held.push(chunk);
      this.#heldBytes += chunk.length;
      while (this.#heldBytes >= SLICE_BYTES) this.#start(this.#take(SLICE_BYTES));
    }
    this.#drain(SLICES_AT_ONCE - 1).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    if (this.#heldBytes > 0 || this.#members === 0) this.#start(this.#take(this.#heldBytes));
    this.#drain(0).then(() => done(), done);
  }

  #take(bytes: number): Buffer {
    const all = this.#held.length === 1 ? this.#held[0]! : Buffer.concat(this.#held);
    this.#held = bytes < all.length ? [all.subarray(bytes)] : [];
    this.#heldBytes = all.length - bytes;
    return all.subarray(0, bytes);
  }

  #start(slice: Buffer): void {
    this.#members += 1;
    const member = gzipMember(slice);
    member.catch(() => {}); // awaited in #drain; not unhandled should the stream be torn down first
    this.#running.push(member);
  }

  /** Passes on finished members, oldest first, until at most `left` are still running. */
  async #drain(left: number): Promise<void> {
    while (this.#running.length > left) this.push(await this.#running.shift()!);
  }
}

function roundUp(bytes: number): number {
  return Math.ceil(bytes / BLOCK) * BLOCK;
}

/**
 * An upper bound of the bytes of the .tar.gz holding these entries: per entry a header block, a
 * pax header with its record (long names), the data padded to blocks; the end-of-archive blocks;
 * and what gzip adds to incompressible data (5 bytes per 16 KiB stored block, header and trailer).
 */
export function archiveBound(top: string, entries: { name: string; bytes: number }[]): number {
  let tarBytes = 2 * BLOCK + 3 * BLOCK + roundUp(top.length + 64);
  for (const entry of entries) {
    tarBytes += 3 * BLOCK + roundUp(top.length + entry.name.length + 64) + roundUp(entry.bytes);
  }
  return tarBytes + Math.ceil(tarBytes / 16_384) * 5 + 64;
}

/** Free bytes a writer may use on the filesystem holding `dir` (statfs bavail), or undefined. */
export async function availableBytes(dir: string): Promise<{ available: number; total: number } | undefined> {
  try {
    const fs = await statfs(dir);
    return { available: fs.bavail * fs.bsize, total: fs.blocks * fs.bsize };
  } catch {
    return undefined;
  }
}

/**
 * Bytes left free on the output filesystem whatever happens: 2% of its size, at least 4 MiB and
 * at most 512 MiB. A node whose disk is nearly full is the node this tool is run on; the bundle
 * must not be what pushes it over the kubelet's eviction threshold.
 */
export function spaceMargin(totalBytes: number): number {
  return Math.min(512 * 1024 * 1024, Math.max(4 * 1024 * 1024, Math.ceil(totalBytes * 0.02)));
}

/** The archive grew past what it may use: its bound was wrong, or the disk filled under it. */
export class OutOfSpaceError extends Error {}

/** Counts bytes on their way out and fails the stream once past `limit`. */
class Limit extends Transform {
  bytes = 0;
  constructor(readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      done(new OutOfSpaceError(`the archive grew past the ${this.limit} bytes it may use`));
      return;
    }
    done(null, chunk);
  }
}

export interface WriteOptions {
  /** The top directory every entry is under. */
  top: string;
  /** Modification time of every entry (the bundle's start), so the archive says when, not each file. */
  mtime: Date;
  /** The most bytes the .tar.gz may take; past it writing fails (and a file is removed). */
  maxBytes: number;
}

function packEntries(entries: ArchiveEntry[], options: WriteOptions): tar.Pack {
  const pack = tar.pack();
  const common = { uid: 0, gid: 0, uname: "root", gname: "root", mtime: options.mtime };
  (async () => {
    const add = (header: Partial<tar.Header> & { name: string }, data?: Buffer) =>
      new Promise<void>((resolve, reject) => {
        const callback = (error?: Error | null) => (error ? reject(error) : resolve());
        const sink = data ? pack.entry(header, data, callback) : pack.entry(header, callback);
        // When the output fails (ENOSPC), the pack is destroyed and the entry errors too.
        sink.on("error", reject);
      });
    try {
      await add({ ...common, name: `${options.top}/`, type: "directory", mode: 0o755 });
      for (const entry of entries) {
        await add(
          {
            ...common,
            name: `${options.top}/${entry.name}`,
            type: "file",
            mode: 0o644,
            size: entry.data.length,
          },
          entry.data,
        );
      }
      pack.finalize();
    } catch (error) {
      pack.destroy(error as Error);
    }
  })();
  return pack;
}

/** Streams the archive into `sink` (stdout): nothing is held back, nothing can be taken back. */
export async function writeArchiveToStream(
  entries: ArchiveEntry[],
  sink: Writable,
  options: WriteOptions,
): Promise<number> {
  const limit = new Limit(options.maxBytes);
  await pipeline(packEntries(entries, options), new SlicedGzip(entries), limit, sink, {
    end: false,
  });
  return limit.bytes;
}

/**
 * Writes the archive to `file` through a temporary file next to it (mode 0600, created
 * exclusively), fsyncs it and renames it into place. Whatever fails, the temporary file is gone
 * afterwards and `file` is untouched.
 */
export async function writeArchiveToFile(
  entries: ArchiveEntry[],
  file: string,
  options: WriteOptions,
): Promise<number> {
  const temporary = path.join(
    path.dirname(file),
    `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
  const limit = new Limit(options.maxBytes);
  // Should the process die before the rename, the temporary file still goes.
  const onExit = () => {
    try {
      unlinkSync(temporary);
    } catch {
      // gone already
    }
  };
  process.once("exit", onExit);
  try {
    const handle = await open(temporary, "wx", 0o600);
    try {
      const out = createWriteStream("", { fd: handle.fd, autoClose: false });
      await pipeline(packEntries(entries, options), new SlicedGzip(entries), limit, out);
      await handle.sync();
    } finally {
      await handle.close().catch(() => undefined);
    }
    await rename(temporary, file);
    return limit.bytes;
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  } finally {
    process.removeListener("exit", onExit);
  }
}
