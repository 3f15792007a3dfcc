import { constants, type Stats } from "node:fs";
import { type FileHandle, lstat, open, readlink, realpath } from "node:fs/promises";
import path from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { describeError } from "../host/root.js";
import { WIDTH, wrap } from "../report/text.js";
import type { Snapshot } from "../snapshot.js";
import { parseSnapshot, SnapshotError } from "../snapshot-file.js";

/**
 * Reads a support bundle written by `imagefs-doctor must-gather` (a .tar.gz, a plain .tar, or a
 * directory where one was extracted, such as the must-gather image's `nodes/<node>/`) and returns
 * the snapshot inside it, for `diagnose --bundle`.
 *
 * The bundle comes from a customer and is hostile until proven otherwise. Nothing is extracted:
 * the archive is streamed (zlib, then tar-stream), every header is inspected, and only the few
 * small entries the diagnosis needs are kept, in memory. One entry that a bundle never holds (a
 * link, a device, an absolute or `..` path, a duplicate, a name that is not clean UTF-8) refuses
 * the whole archive, as do sizes past the limits below; decompressed bytes are counted as they
 * stream, so a gzip bomb is stopped after a few MiB instead of being inflated first.
 */

/** A bundle refused or unreadable. A SnapshotError, so the CLI prints it as a plain message, exit 2. */
export class BundleError extends SnapshotError {}

export interface BundleLimits {
  /** Entries (files and directories) in the archive. */
  maxEntries: number;
  /** Bytes of one entry. */
  maxEntryBytes: number;
  /** Bytes of all entries together, and (plus headers) of the decompressed tar stream. */
  maxTotalBytes: number;
  /** Decompressed bytes per compressed byte read, checked once `ratioAfterBytes` are out. */
  maxRatio: number;
  ratioAfterBytes: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * A bundle is a snapshot (a few MiB on a big node), an HTML report and bounded raw items (config
 * files, journal and log excerpts): tens of MiB in all. The limits leave an order of magnitude of
 * room and still bound what a hostile archive can make this process read.
 */
export const DEFAULT_LIMITS: BundleLimits = {
  maxEntries: 10_000,
  maxEntryBytes: 256 * MiB,
  maxTotalBytes: 512 * MiB,
  // Text and JSON gzip 5-20 times, a tar of empty files some 50; zeros go past 1000.
  maxRatio: 200,
  ratioAfterBytes: 32 * MiB,
};

/** Headers, padding and pax records on top of the entries' own bytes. */
const STREAM_OVERHEAD_BYTES = 64 * MiB;
const MAX_NAME_BYTES = 4096;
const MAX_COMPONENT_BYTES = 255;

/** The entries read into memory (names inside the bundle's top directory) and their size limits. */
const WANTED: Record<string, number> = {
  "snapshot.json": 64 * MiB,
  "manifest.json": 8 * MiB,
  version: 4 * KiB,
  timestamp: 4 * KiB,
};

export interface Bundle {
  /** The path given. */
  file: string;
  kind: "tar.gz" | "tar" | "directory";
  /**
   * The archive's top directory (`imagefs-doctor-<node>-<timestamp>`); for a directory, where the
   * bundle was found in it ("" for the directory itself, or e.g. "nodes/worker-0").
   */
  root: string;
  /** The tool version from the bundle's `version` file. */
  toolVersion: string;
  /** The bundle's `timestamp` file, when it has one that reads as a time. */
  timestamp?: string;
  /** manifest.json, parsed, when the bundle has one. */
  manifest?: Record<string, unknown>;
  entries: number;
  snapshot: Snapshot;
}

export async function readBundle(file: string, limits: BundleLimits = DEFAULT_LIMITS): Promise<Bundle> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO given as the bundle cannot block the open; it is refused below.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new BundleError(`cannot read bundle ${file}: ${describeError(error)}`);
  }
  try {
    const stats = await handle.stat();
    if (stats.isDirectory()) {
      await handle.close();
      return await readDirectoryBundle(file);
    }
    if (!stats.isFile()) {
      throw new BundleError(
        `${file} is a ${kindOf(stats)}, not a bundle: give a .tar.gz, a .tar or a directory`,
      );
    }
    if (stats.size === 0) throw new BundleError(`${file} is empty, not a bundle`);
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const kind = sniff(head.subarray(0, bytesRead), file);
    return await readArchive(file, handle, kind, limits);
  } finally {
    await handle.close().catch(() => {});
  }
}

/** The text report's first line (wrapped at 80 columns): which bundle was read. */
export function describeBundle(bundle: Bundle): string {
  const where = bundle.root === "" ? bundle.file : `${bundle.file} (${bundle.root}/)`;
  const when = bundle.timestamp ? ` at ${bundle.timestamp}` : "";
  const line = `bundle: ${where}, written by imagefs-doctor ${bundle.toolVersion}${when}`;
  return `${wrap(line, WIDTH, "", "  ").join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------
// Archives

function sniff(head: Buffer, file: string): "tar.gz" | "tar" {
  if (head[0] === 0x1f && head[1] === 0x8b) return "tar.gz";
  const magic = head.subarray(257, 263).toString("latin1");
  if (magic === "ustar\0" || magic === "ustar ") return "tar";
  const known: [string, number[]][] = [
    ["a zip archive", [0x50, 0x4b, 0x03, 0x04]],
    ["bzip2-compressed", [0x42, 0x5a, 0x68]],
    ["xz-compressed", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
    ["zstd-compressed", [0x28, 0xb5, 0x2f, 0xfd]],
  ];
  const match = known.find(([, bytes]) => bytes.every((byte, i) => head[i] === byte));
  throw new BundleError(
    `${file} is ${match ? match[0] : "neither gzip nor a tar archive"}: a bundle is a .tar.gz, a .tar or a directory`,
  );
}

interface ArchiveState {
  entries: number;
  declaredBytes: number;
  top?: string;
  /** Every normalised entry name seen, and which of them are files. */
  seen: Set<string>;
  files: Set<string>;
  /** Directories named by an entry or implied by a path below them. */
  dirs: Set<string>;
  wanted: Map<string, Buffer>;
}

async function readArchive(
  file: string,
  handle: FileHandle,
  kind: "tar.gz" | "tar",
  limits: BundleLimits,
): Promise<Bundle> {
  const state: ArchiveState = {
    entries: 0,
    declaredBytes: 0,
    seen: new Set(),
    files: new Set(),
    dirs: new Set(),
    wanted: new Map(),
  };
  const abort = new AbortController();
  /** Why reading stopped early: a refusal, or (a bug) anything else thrown by the checks. */
  let stopped: Error | undefined;
  const stop = (error: Error) => {
    stopped ??= error instanceof Refusal ? new BundleError(`${file}: refused: ${error.message}`) : error;
    abort.abort();
  };

  // latin1 hands over the name's bytes unchanged, so they can be checked as UTF-8 here.
  // (an option of tar-stream that its types do not list)
  const extract = tar.extract({ filenameEncoding: "latin1" } as Parameters<typeof tar.extract>[0]);
  extract.on("entry", (header, stream, next) => {
    // The pipeline reports a failure; an entry torn down with it must not throw it a second time.
    stream.on("error", () => {});
    let inner: string | undefined;
    try {
      inner = checkEntry(header as EntryHeader, state, limits);
    } catch (error) {
      stop(error as Error);
      stream.resume();
      return;
    }
    const cap = inner === undefined ? undefined : WANTED[inner];
    if (inner === undefined || cap === undefined || header.type !== "file") {
      stream.on("end", () => next());
      stream.resume();
      return;
    }
    const chunks: Buffer[] = [];
    stream.on("data", (chunk) => chunks.push(chunk as Buffer));
    stream.on("end", () => {
      state.wanted.set(inner, Buffer.concat(chunks));
      next();
    });
  });

  const input = handle.createReadStream({ start: 0, autoClose: false });
  const meter = new Meter(file, limits, kind === "tar.gz" ? () => input.bytesRead : undefined);
  try {
    await pipeline(kind === "tar.gz" ? [input, createGunzip(), meter, extract] : [input, meter, extract], {
      signal: abort.signal,
    });
  } catch (error) {
    throw stopped ?? archiveError(file, kind, error);
  } finally {
    input.destroy();
  }
  if (stopped) throw stopped;

  const top = state.top;
  if (top === undefined) throw new BundleError(`${file} holds no entries: not a bundle`);
  const read = (name: string) => state.wanted.get(name);
  return {
    file,
    kind,
    root: top,
    entries: state.entries,
    ...contents(read, file, `${top}/`),
  };
}

/** Counts decompressed bytes as they stream and stops at the total limit or an absurd ratio. */
class Meter extends Transform {
  bytes = 0;
  readonly #limit: number;
  constructor(
    readonly file: string,
    readonly limits: BundleLimits,
    readonly compressedBytes: (() => number) | undefined,
  ) {
    super();
    this.#limit = limits.maxTotalBytes + STREAM_OVERHEAD_BYTES;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.#limit) {
      callback(
        new BundleError(
          `${this.file}: refused: its tar data is larger than ${mib(this.#limit)} (the limit is ${mib(this.limits.maxTotalBytes)} of files)`,
        ),
      );
      return;
    }
    const compressed = this.compressedBytes?.();
    if (
      compressed !== undefined &&
      this.bytes > this.limits.ratioAfterBytes &&
      this.bytes > this.limits.maxRatio * compressed
    ) {
      callback(
        new BundleError(
          `${this.file}: refused: it decompresses to more than ${this.limits.maxRatio} times its size ` +
            `(${mib(this.bytes)} out of ${kib(compressed)} read so far), which no bundle does: a gzip bomb?`,
        ),
      );
      return;
    }
    callback(null, chunk);
  }
}

class Refusal extends Error {}

/** tar-stream's header as it really comes: an unknown type flag gives type null. */
type EntryHeader = Omit<tar.Header, "type" | "pax"> & {
  type: tar.Header["type"] | null;
  pax?: Record<string, string> | null;
};

/**
 * Checks one header against everything a bundle may hold and records it. Returns the entry's name
 * inside the top directory, or undefined for the top directory itself. Throws a Refusal.
 */
function checkEntry(header: EntryHeader, state: ArchiveState, limits: BundleLimits): string | undefined {
  const name = entryName(header);
  const shown = quote(name);
  state.entries += 1;
  if (state.entries > limits.maxEntries) {
    throw new Refusal(`it has more than ${limits.maxEntries} entries (at ${shown}); a bundle has far fewer`);
  }
  const type = header.type;
  if (type !== "file" && type !== "directory") throw new Refusal(`entry ${shown} is ${describeType(header)}`);

  if (name.startsWith("/")) throw new Refusal(`entry ${shown} has an absolute path`);
  const components = name.split("/").filter((c) => c !== "" && c !== ".");
  if (components.includes("..")) throw new Refusal(`entry ${shown} has a ".." component`);
  if (components.length === 0) {
    // `tar -C dir .` starts with "./": the directory the archive was made in, nothing to check.
    if (type === "directory") return undefined;
    throw new Refusal(`entry ${shown} names no file`);
  }
  const long = components.find((c) => Buffer.byteLength(c) > MAX_COMPONENT_BYTES);
  if (long !== undefined) {
    throw new Refusal(`entry ${shown} has a name component longer than ${MAX_COMPONENT_BYTES} bytes`);
  }
  const normal = components.join("/");

  const top = components[0]!;
  state.top ??= top;
  if (top !== state.top) {
    throw new Refusal(
      `entry ${shown} is outside the top directory ${quote(`${state.top}/`)}; a bundle has every entry under one directory`,
    );
  }
  if (components.length === 1 && type !== "directory") {
    throw new Refusal(
      `entry ${shown} is a file at the top level; a bundle has every entry under one directory`,
    );
  }

  if (state.seen.has(normal)) throw new Refusal(`entry ${shown} appears twice`);
  state.seen.add(normal);
  for (let i = 1; i < components.length; i++) {
    const parent = components.slice(0, i).join("/");
    if (state.files.has(parent)) {
      throw new Refusal(`entry ${shown} is inside ${quote(parent)}, which is a file`);
    }
    state.dirs.add(parent);
  }
  if (type === "directory") state.dirs.add(normal);
  else {
    if (state.dirs.has(normal)) {
      throw new Refusal(`entry ${shown} is a file, but other entries are inside it`);
    }
    state.files.add(normal);
  }

  const size = header.size ?? 0;
  if (type === "directory" && size !== 0) throw new Refusal(`entry ${shown} is a directory with data`);
  if (size > limits.maxEntryBytes) {
    throw new Refusal(
      `entry ${shown} is ${mib(size)}; the limit for one entry is ${mib(limits.maxEntryBytes)}`,
    );
  }
  state.declaredBytes += size;
  if (state.declaredBytes > limits.maxTotalBytes) {
    throw new Refusal(
      `its entries add up to more than ${mib(limits.maxTotalBytes)} (at ${shown}), the limit for a bundle`,
    );
  }

  const inner = components.slice(1).join("/");
  if (inner === "") return undefined;
  const cap = WANTED[inner];
  if (cap !== undefined) {
    if (type !== "file") throw new Refusal(`entry ${shown} is a directory, not a file`);
    if (size > cap) throw new Refusal(`entry ${shown} is ${mib(size)}; it may be ${mib(cap)} at most`);
  }
  return inner;
}

/**
 * What an entry name may not hold: C0 and C1 controls, DEL, and the zero-width, line-separator
 * and bidi characters that make a name look like another. must-gather's safeEntryName escapes
 * exactly these, so what it writes is always read back.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this looks for
export const UNSAFE_NAME_CHARACTER = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069]/;

/** The entry's name as UTF-8, refused when it is not valid UTF-8, too long or holds control characters. */
function entryName(header: EntryHeader): string {
  const pax = header.pax;
  let name: string;
  if (pax?.path !== undefined) {
    // tar-stream decodes pax records as UTF-8 itself, replacing what is not.
    name = pax.path;
    if (name.includes("\uFFFD")) throw new Refusal(`entry ${quote(name)} has a name that is not valid UTF-8`);
  } else {
    const bytes = Buffer.from(header.name, "latin1");
    try {
      name = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new Refusal(`entry "${escapeBytes(bytes)}" has a name that is not valid UTF-8`);
    }
  }
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
    throw new Refusal(
      `entry ${quote(`${name.slice(0, 60)}...`)} has a name longer than ${MAX_NAME_BYTES} bytes`,
    );
  }
  if (UNSAFE_NAME_CHARACTER.test(name)) {
    throw new Refusal(`entry ${quote(name)} has a control character in its name`);
  }
  return name;
}

/** The link target, for a message: UTF-8 when it is, its bytes escaped when not. */
function linkTarget(header: EntryHeader): string {
  if (header.pax?.linkpath !== undefined) return header.pax.linkpath;
  const bytes = Buffer.from(header.linkname ?? "", "latin1");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return escapeBytes(bytes);
  }
}

function describeType(header: EntryHeader): string {
  const link = header.linkname ? ` to ${quote(linkTarget(header))}` : "";
  const only = "; a bundle holds only regular files and directories";
  switch (header.type) {
    case "symlink":
      return `a symbolic link${link}${only}`;
    case "link":
      return `a hard link${link}${only}`;
    case "character-device":
    case "block-device":
      return `a ${header.type.replace("-", " ")} (${header.devmajor}:${header.devminor})${only}`;
    case "fifo":
      return `a FIFO${only}`;
    case "contiguous-file":
      return `a contiguous file${only}`;
    default:
      return `of a type tar-stream does not know (${header.type ?? "unknown type flag"})${only}`;
  }
}

function archiveError(file: string, kind: "tar.gz" | "tar", error: unknown): BundleError {
  if (error instanceof BundleError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const message = describeError(error);
  if (code === "Z_BUF_ERROR")
    return new BundleError(`${file} is truncated: the gzip data ends early (${message})`);
  if (code?.startsWith("Z_")) return new BundleError(`${file} is not valid gzip data: ${message}`);
  if (message === "Unexpected end of data") {
    return new BundleError(`${file} is truncated: the tar data ends inside an entry`);
  }
  if (message.startsWith("Invalid tar header") || message === "Invalid header") {
    return new BundleError(
      `${file} is corrupt: ${kind === "tar.gz" ? "what the gzip data holds is not" : "it is not"} a valid tar archive (${message})`,
    );
  }
  if (message === "Header exceeds max size") {
    return new BundleError(`${file}: refused: it has a tar extended header larger than 4 MiB`);
  }
  return new BundleError(`cannot read bundle ${file}: ${message}`);
}

// ---------------------------------------------------------------------------------------------
// Directories

/**
 * A directory bundle: the extracted top directory itself, the must-gather image's `nodes/<node>/`,
 * a directory holding `nodes/` with one node, or the directory a bundle was extracted into (one
 * subdirectory holding a snapshot). Nothing is read through a symlink, so nothing outside it is.
 */
async function readDirectoryBundle(dir: string): Promise<Bundle> {
  const root = await realpath(dir);
  const bundleDir = await findBundleDir(dir, root);
  const texts = new Map<string, Buffer>();
  for (const [name, cap] of Object.entries(WANTED)) {
    const content = await readInside(root, path.join(bundleDir, name), cap, dir);
    if (content !== undefined) texts.set(name, content);
  }
  const label = path.relative(root, bundleDir);
  return {
    file: dir,
    kind: "directory",
    root: label,
    entries: texts.size,
    ...contents((name) => texts.get(name), dir, label === "" ? "" : `${label}/`),
  };
}

async function findBundleDir(dir: string, root: string): Promise<string> {
  if (await isPlainFile(path.join(root, "snapshot.json"))) return root;
  /** The real subdirectories (never symlinks) of `parent` that hold a snapshot.json. */
  const bundlesIn = async (parent: string): Promise<string[]> => {
    const found: string[] = [];
    for (const name of await listDirectory(parent)) {
      const child = path.join(parent, name);
      if ((await isRealDirectory(child)) && (await isPlainFile(path.join(child, "snapshot.json")))) {
        found.push(child);
      }
    }
    return found;
  };
  // nodes/<node>/ (the must-gather image's output), else <top>/ (where a bundle was extracted)
  // or <image>/nodes/<node>/ (what oc adm must-gather copies back).
  let found: string[];
  if (await isRealDirectory(path.join(root, "nodes"))) found = await bundlesIn(path.join(root, "nodes"));
  else {
    found = await bundlesIn(root);
    if (found.length === 0) {
      for (const name of await listDirectory(root)) {
        const nodes = path.join(root, name, "nodes");
        if ((await isRealDirectory(path.join(root, name))) && (await isRealDirectory(nodes))) {
          found.push(...(await bundlesIn(nodes)));
        }
      }
    }
  }
  if (found.length === 1) return found[0]!;
  if (found.length > 1) {
    throw new BundleError(
      `${dir} holds ${found.length} bundles; give one of them: ${found.map((f) => path.relative(root, f)).join(", ")}`,
    );
  }
  throw new BundleError(
    `${dir} is not a bundle: no snapshot.json in it, in a directory below it or in nodes/<node>/`,
  );
}

async function listDirectory(dir: string): Promise<string[]> {
  const { opendir } = await import("node:fs/promises");
  const names: string[] = [];
  const handle = await opendir(dir);
  try {
    for await (const entry of handle) {
      if (names.length >= 1000) break;
      names.push(entry.name);
    }
  } finally {
    await handle.close().catch(() => {});
  }
  return names.sort();
}

async function isRealDirectory(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => undefined))?.isDirectory() ?? false;
}

/** Exists and is not a directory: a symlink or a device named snapshot.json is refused when read. */
async function isPlainFile(p: string): Promise<boolean> {
  const stats = await lstat(p).catch(() => undefined);
  return stats !== undefined && !stats.isDirectory();
}

/**
 * Reads `file` (below `root`) when it exists: not through a symlink in any component (lstat, then
 * O_NOFOLLOW, then the descriptor's real path checked to be inside root), only a regular file,
 * only up to `cap` bytes.
 */
async function readInside(
  root: string,
  file: string,
  cap: number,
  shownDir: string,
): Promise<Buffer | undefined> {
  const shown = quote(path.relative(root, file));
  const relative = path.relative(root, file).split(path.sep);
  for (let i = 1; i <= relative.length; i++) {
    const partial = path.join(root, ...relative.slice(0, i));
    let stats: Stats;
    try {
      stats = await lstat(partial);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new BundleError(`cannot read ${shown} in ${shownDir}: ${describeError(error)}`);
    }
    if (stats.isSymbolicLink()) {
      const target = await readlink(partial).catch(() => "?");
      throw new BundleError(
        `${shownDir}: refused: ${quote(path.relative(root, partial))} is a symbolic link to ${quote(target)}; a bundle holds only regular files and directories`,
      );
    }
    if (i < relative.length && !stats.isDirectory()) return undefined;
    if (i === relative.length && !stats.isFile()) {
      throw new BundleError(`${shownDir}: refused: ${shown} is a ${kindOf(stats)}, not a regular file`);
    }
  }
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw new BundleError(`cannot read ${shown} in ${shownDir}: ${describeError(error)}`);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile())
      throw new BundleError(`${shownDir}: refused: ${shown} is a ${kindOf(stats)}, not a regular file`);
    const real = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => undefined);
    if (real !== undefined && !real.startsWith(root.endsWith("/") ? root : `${root}/`)) {
      throw new BundleError(`${shownDir}: refused: ${shown} resolves outside the bundle, to ${quote(real)}`);
    }
    if (stats.size > cap)
      throw new BundleError(
        `${shownDir}: refused: ${shown} is ${mib(stats.size)}; it may be ${mib(cap)} at most`,
      );
    const buffer = Buffer.alloc(cap + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > cap) throw new BundleError(`${shownDir}: refused: ${shown} is larger than ${mib(cap)}`);
    return buffer.subarray(0, length);
  } finally {
    await handle.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// What a bundle holds

function contents(
  read: (name: string) => Buffer | undefined,
  file: string,
  prefix: string,
): Pick<Bundle, "toolVersion" | "timestamp" | "manifest" | "snapshot"> {
  const where = (name: string) => `${file}:${prefix}${name}`;
  const text = (name: string): string | undefined => {
    const bytes = read(name);
    if (bytes === undefined) return undefined;
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new BundleError(`${where(name)} is not UTF-8 text`);
    }
  };

  const version = text("version");
  if (version === undefined) {
    throw new BundleError(`${file} is not an imagefs-doctor bundle: it has no ${prefix}version file`);
  }
  const [first, second] = version.split("\n").map((line) => line.trim());
  if (first !== "imagefs-doctor") {
    throw new BundleError(
      `${file} is not an imagefs-doctor bundle: ${prefix}version starts with ${quote(first?.slice(0, 60) ?? "")}, not "imagefs-doctor"`,
    );
  }
  if (second === undefined || !/^[0-9A-Za-z.+~-]{1,64}$/.test(second)) {
    throw new BundleError(`${where("version")}: its second line is not a version`);
  }

  const timestamp = text("timestamp")?.split("\n")[0]?.trim();
  let manifest: Record<string, unknown> | undefined;
  const manifestText = text("manifest.json");
  if (manifestText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(manifestText);
    } catch (error) {
      throw new BundleError(`${where("manifest.json")} is not valid JSON: ${describeError(error)}`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new BundleError(`${where("manifest.json")} is not a JSON object`);
    }
    manifest = parsed as Record<string, unknown>;
  }

  const snapshotText = text("snapshot.json");
  if (snapshotText === undefined) {
    throw new BundleError(`${file} has no ${prefix}snapshot.json: there is nothing to diagnose`);
  }
  return {
    toolVersion: second,
    timestamp: timestamp && /^[0-9A-Za-z:.+-]{1,64}$/.test(timestamp) ? timestamp : undefined,
    manifest,
    snapshot: parseSnapshot(snapshotText, where("snapshot.json")),
  };
}

// ---------------------------------------------------------------------------------------------

function kindOf(stats: Stats): string {
  if (stats.isSymbolicLink()) return "symbolic link";
  if (stats.isDirectory()) return "directory";
  if (stats.isCharacterDevice()) return "character device";
  if (stats.isBlockDevice()) return "block device";
  if (stats.isFIFO()) return "FIFO";
  if (stats.isSocket()) return "socket";
  return "special file";
}

/**
 * A name from the bundle, quoted for a message: JSON escapes, and also the C1 controls, bidi
 * overrides and line separators that JSON.stringify leaves as they are, so a hostile name cannot
 * drive the terminal or disguise itself.
 */
function quote(text: string): string {
  return JSON.stringify(text).replace(
    /[\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function escapeBytes(bytes: Buffer): string {
  let out = "";
  for (const byte of bytes) {
    out +=
      byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c
        ? String.fromCharCode(byte)
        : `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return out;
}

function mib(bytes: number): string {
  return `${Math.round((bytes / MiB) * 10) / 10} MiB`;
}

function kib(bytes: number): string {
  return `${Math.round(bytes / KiB)} KiB`;
}
