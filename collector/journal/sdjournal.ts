import { getSystemErrorName } from "node:util";
import { FilterScan } from "./scan.js";
import { type ReadSession, YIELD_EVERY, YIELD_EVERY_COUNTING, yieldToEventLoop } from "./session.js";
import type { JournalEntry } from "./types.js";
import { decodeValue, type ValueInfo } from "./values.js";

/**
 * Reads journal files through libsystemd's sd-journal API (libsystemd.so.0), bound with koffi.
 * koffi and the library are loaded on the first read, never at import: the CLI's cold start
 * matters and most runs read no journal.
 *
 * Speed (bench/journal-read.ts) comes from not copying: libsystemd hands out pointers into its
 * mmap windows of the journal files (or into its decompression buffer), valid until the next call.
 * The reader looks at that memory through a few large external ArrayBuffers (koffi.view) and reads
 * only the bytes libsystemd just returned, decoding field names once (an interned table) and
 * values straight from the mapped bytes. Out-parameters land in one scratch block allocated once,
 * passed as a plain address: no Buffer or BigInt per call.
 */

type Koffi = typeof import("koffi")["default"];
/** An sd_journal handle or a C pointer, as a plain number (user-space addresses fit in 2^53). */
type Address = number;

interface Native {
  openFiles(ret: unknown[], paths: (string | null)[], flags: number): number;
  openDirectory(ret: unknown[], path: string, flags: number): number;
  close(j: Address): void;
  addMatch(j: Address, data: Buffer, size: number): number;
  addDisjunction(j: Address): number;
  seekHead(j: Address): number;
  seekTail(j: Address): number;
  seekRealtimeUsec(j: Address, usec: number): number;
  seekCursor(j: Address, cursor: string): number;
  testCursor(j: Address, cursor: string): number;
  next(j: Address): number;
  previous(j: Address): number;
  getRealtimeUsec(j: Address, ret: Address): number;
  getCursor(j: Address, ret: Address): number;
  restartData(j: Address): void;
  enumerateData(j: Address, data: Address, length: Address): number;
  setDataThreshold(j: Address, size: number): number;
  free(p: Address): void;
}

/** The loaded library: its functions, a scratch block for out-parameters, and a memory reader. */
export interface SdJournal {
  native: Native;
  /** Address of 16 scratch bytes: two 64-bit out-parameters. */
  scratch: Address;
  /** The scratch block as 32-bit words (little-endian halves of the two 64-bit values). */
  words: Uint32Array;
  memory: Memory;
}

let loading: Promise<SdJournal> | undefined;

/** Loads koffi and libsystemd.so.0 once; rejects (every time) when either is unavailable. */
export function loadSdJournal(): Promise<SdJournal> {
  loading ??= load();
  return loading;
}

async function load(): Promise<SdJournal> {
  const koffi: Koffi = (await import("koffi")).default;
  const lib = koffi.load("libsystemd.so.0");
  const libc = koffi.load("libc.so.6");
  // The handle and every pointer travel as uintptr_t numbers: same registers as a pointer.
  const native: Native = {
    openFiles: lib.func("int sd_journal_open_files(_Out_ void **ret, const char **paths, int flags)"),
    openDirectory: lib.func("int sd_journal_open_directory(_Out_ void **ret, const char *path, int flags)"),
    close: lib.func("void sd_journal_close(uintptr_t j)"),
    addMatch: lib.func("int sd_journal_add_match(uintptr_t j, const void *data, size_t size)"),
    addDisjunction: lib.func("int sd_journal_add_disjunction(uintptr_t j)"),
    seekHead: lib.func("int sd_journal_seek_head(uintptr_t j)"),
    seekTail: lib.func("int sd_journal_seek_tail(uintptr_t j)"),
    seekRealtimeUsec: lib.func("int sd_journal_seek_realtime_usec(uintptr_t j, uint64_t usec)"),
    seekCursor: lib.func("int sd_journal_seek_cursor(uintptr_t j, const char *cursor)"),
    testCursor: lib.func("int sd_journal_test_cursor(uintptr_t j, const char *cursor)"),
    next: lib.func("int sd_journal_next(uintptr_t j)"),
    previous: lib.func("int sd_journal_previous(uintptr_t j)"),
    getRealtimeUsec: lib.func("int sd_journal_get_realtime_usec(uintptr_t j, uintptr_t ret)"),
    getCursor: lib.func("int sd_journal_get_cursor(uintptr_t j, uintptr_t ret)"),
    restartData: lib.func("void sd_journal_restart_data(uintptr_t j)"),
    enumerateData: lib.func("int sd_journal_enumerate_data(uintptr_t j, uintptr_t data, uintptr_t length)"),
    setDataThreshold: lib.func("int sd_journal_set_data_threshold(uintptr_t j, size_t sz)"),
    free: libc.func("void free(uintptr_t p)"),
  };
  // Never freed: one block for the life of the process.
  const block = koffi.alloc("uint64_t", 2) as bigint;
  const scratch = toAddress(block);
  const words = new Uint32Array(koffi.view(block, 16));
  return { native, scratch, words, memory: new Memory((base, length) => koffi.view(base, length)) };
}

function toAddress(pointer: unknown): Address {
  const n = Number(pointer);
  if (typeof pointer !== "bigint" || !Number.isSafeInteger(n) || n <= 0) {
    throw new Error(`unexpected pointer from koffi: ${String(pointer)}`);
  }
  return n;
}

const GiB = 2 ** 30;
/**
 * Bytes of address space in one view (koffi takes at most 4 GiB). V8 counts a view as external
 * memory of its size, and a view made in the middle of a read forced a full, memory-reducing
 * collection of the worker's heap (16 ms, and a smaller young generation after it). The pointers
 * of a must-gather pass span 1.0-1.4 GiB, which the 2 GiB views made before did not always hold;
 * one view of 4 GiB around the first pointer does, and costs one collection while the heap is
 * small.
 */
const REGION = 4 * GiB;
const MAX_REGIONS = 8;

/** One view of the address space, read through Buffers of 2 GiB that start on GiB boundaries. */
interface Region {
  base: number;
  end: number;
  view: ArrayBuffer;
  /** windows[k] covers [base + k GiB, base + (k + 2) GiB), cut at the end. */
  windows: Buffer[];
}

/**
 * Reads memory libsystemd points at, through views of the address space: a view is only a
 * window, creating one touches nothing, and only [p, p + length) of a pointer that libsystemd has
 * just returned is ever read, so it does not matter what else lies in the window, or that
 * libsystemd may have remapped it since the view was made. Offsets in `buf` stay below 2^31
 * (Buffer.indexOf and friends take 32-bit offsets): a view is read through Buffers of 2 GiB.
 */
export class Memory {
  /** The current window and the address its byte 0 stands for. */
  buf: Buffer = Buffer.alloc(0);
  #base = 0;
  #end = 0;
  #regions: Region[] = [];
  readonly #view: (base: number, length: number) => ArrayBuffer;

  constructor(view: (base: number, length: number) => ArrayBuffer) {
    this.#view = view;
  }

  /** Makes `buf` cover [p, p + length) and returns p's offset in it. length must be < 1 GiB. */
  at(p: Address, length: number): number {
    if (p >= this.#base && p + length <= this.#end) return p - this.#base;
    let region = this.#regions.find((r) => p >= r.base && p + length <= r.end);
    if (!region) {
      const base = Math.max(4096, p - REGION / 2); // no view of page 0 (a null pointer to koffi)
      region = { base, end: base + REGION, view: this.#view(base, REGION), windows: [] };
      if (this.#regions.length >= MAX_REGIONS) this.#regions.shift();
      this.#regions.push(region);
    }
    // The window starting in p's GiB holds [p, p + length): it ends a GiB and more after p, or
    // where the region does.
    const k = Math.floor((p - region.base) / GiB);
    let buf = region.windows[k];
    if (!buf) {
      buf = Buffer.from(region.view, k * GiB, Math.min(2 * GiB, REGION - k * GiB));
      region.windows[k] = buf;
    }
    this.buf = buf;
    this.#base = region.base + k * GiB;
    this.#end = this.#base + buf.length;
    return p - this.#base;
  }

  /**
   * The NUL-terminated ASCII string at p: a cursor (about 130 bytes) that libsystemd allocated, so
   * the search stops at its NUL inside the allocation.
   */
  cString(p: Address): string {
    const start = this.at(p, 4096);
    const end = this.buf.indexOf(0, start);
    return (this.buf as unknown as FastSlices).latin1Slice(
      start,
      end < 0 || end > start + 4096 ? start + 4096 : end,
    );
  }
}

/**
 * Field names, decoded once: a hash of the bytes up to "=" (computed while looking for it)
 * finds the name, and a byte comparison confirms it. `seenIn` is the last entry that had the
 * field: a repeated field is noticed without looking into the entry's object.
 */
interface FieldName {
  name: string;
  bytes: Uint8Array;
  next: FieldName | undefined;
  seenIn: number;
  /** Short values of this field met before, decoded: by a hash of their bytes (shortValue). */
  values: Map<number, ShortValue>;
}

/** A short value's bytes and its text. */
interface ShortValue {
  bytes: Uint8Array;
  text: string;
}
/**
 * Values up to this many bytes are looked up among those met before instead of decoded: most
 * fields of a node's entries (_HOSTNAME, _SYSTEMD_UNIT, _PID, _COMM, SYSLOG_IDENTIFIER,
 * _TRANSPORT...) repeat a few values over and over, and comparing a few bytes costs less than a
 * new string each time and the collections of them.
 */
const SHORT_VALUE_BYTES = 64;
/** Distinct short values remembered per field (a field of unique values fills it and stops). */
const MAX_SHORT_VALUES = 256;

/**
 * The text of the short, valid UTF-8 value buf[from, to), from the field's values met before or
 * decoded and remembered; undefined when the bytes are not UTF-8 (decodeValue then decides).
 */
function shortValue(field: FieldName, buf: Buffer, from: number, to: number): string | undefined {
  if (field.seenIn < 0) return undefined; // a one-off name (see internName): nothing to remember
  let hash = to - from;
  for (let i = from; i < to; i += 1) hash = (Math.imul(hash, 31) + buf[i]!) | 0;
  const known = field.values.get(hash);
  if (known !== undefined && known.bytes.length === to - from) {
    const bytes = known.bytes;
    let i = 0;
    while (i < bytes.length && bytes[i] === buf[from + i]) i += 1;
    if (i === bytes.length) return known.text;
  }
  const text = (buf as unknown as FastSlices).utf8Slice(from, to);
  if (text.includes("\uFFFD")) return undefined;
  if (known === undefined && field.values.size < MAX_SHORT_VALUES)
    field.values.set(hash, { bytes: Uint8Array.from(buf.subarray(from, to)), text });
  return text;
}
const names = new Map<number, FieldName>();
const MAX_NAMES = 4096;

function internName(buf: Buffer, start: number, end: number, hash: number): FieldName {
  const length = end - start;
  const first = names.get(hash);
  for (let e = first; e !== undefined; e = e.next) {
    const bytes = e.bytes;
    if (bytes.length !== length) continue;
    let i = 0;
    while (i < length && bytes[i] === buf[start + i]) i += 1;
    if (i === length) return e;
  }
  const entry: FieldName = {
    name: (buf as unknown as FastSlices).latin1Slice(start, end),
    bytes: Uint8Array.from(buf.subarray(start, end)),
    next: first,
    seenIn: 0,
    values: new Map(),
  };
  if (names.size < MAX_NAMES) names.set(hash, entry);
  else entry.seenIn = -1; // a one-off, not remembered: repeats are found in the entry's object
  return entry;
}

/** The hash deliverEntries computes over a field name's bytes (names are ASCII). */
function nameHash(name: string): number {
  let hash = 0;
  for (let i = 0; i < name.length; i += 1) hash = (Math.imul(hash, 31) + name.charCodeAt(i)) | 0;
  return hash;
}

/**
 * Buffer's own decoders, called directly: Buffer.prototype.toString("utf8", ...) dispatches to
 * them through a lookup that costs a tenth of the read (bench/journal-read.ts).
 */
interface FastSlices {
  utf8Slice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
}

/** Numbers entries, so that FieldName.seenIn can tell whether a field came up in this one. */
let entrySerial = 0;

const ERRNO_MEANING: Record<string, string> = {
  ENODATA: "truncated or incomplete",
  EBADMSG: "corrupt",
  EPROTONOSUPPORT: "a format or compression this libsystemd does not support",
  EACCES: "permission denied",
  ENOENT: "no such file",
};

export function errnoText(r: number): string {
  let name: string;
  try {
    name = getSystemErrorName(r);
  } catch {
    name = `error ${r}`;
  }
  const meaning = ERRNO_MEANING[name];
  return meaning ? `${name}: ${meaning}` : name;
}

function check(r: number, what: string): void {
  if (r < 0) throw new Error(`${what} failed: ${errnoText(r)}`);
}

/** Opens the files; when libsystemd refuses the set, finds and skips the files it refuses. */
function openFiles(sd: SdJournal, session: ReadSession, paths: string[]): Address | null {
  const { native } = sd;
  const attempt = (list: string[]): Address | number => {
    const ret: unknown[] = [null];
    const r = native.openFiles(ret, [...list, null], 0);
    return r < 0 ? r : toAddress(ret[0]);
  };
  const all = attempt(paths);
  if (all > 0) return all;
  const good: string[] = [];
  for (const file of paths) {
    const one = attempt([file]);
    if (one > 0) {
      native.close(one);
      good.push(file);
    } else {
      session.fileSkipped(file, `libsystemd cannot open it (${errnoText(one)})`);
    }
  }
  if (good.length === 0) return null;
  const rest = attempt(good);
  if (rest > 0) return rest;
  session.warn(`libsystemd cannot open the journal files (${errnoText(rest)})`);
  return null;
}

function addMatches(native: Native, j: Address, session: ReadSession): void {
  let first = true;
  for (const term of session.terms) {
    if (!first) check(native.addDisjunction(j), "sd_journal_add_disjunction");
    first = false;
    for (const [field, values] of term) {
      for (const value of values) {
        const match = Buffer.from(`${field}=${value}`, "utf8");
        check(native.addMatch(j, match, match.length), `sd_journal_add_match(${field}=...)`);
      }
    }
  }
}

/**
 * Positions the handle. Returns true when it already stands on the first entry to read (a cursor
 * that still exists, followed by an entry that is not the cursor's own).
 */
function position(native: Native, j: Address, session: ReadSession, scan: FilterScan | null): boolean {
  const pos = session.position;
  let cursorFound = false;
  if (pos.kind === "cursor") {
    // Whether the cursor's entry exists is asked without matches: filters that changed since the
    // cursor was saved must not make us start over.
    const r = native.seekCursor(j, pos.cursor);
    if (r < 0) {
      session.warn(`cursor "${pos.cursor}" is not valid (${errnoText(r)}): reading from the start`);
    } else if (native.next(j) > 0 && native.testCursor(j, pos.cursor) > 0) {
      cursorFound = true;
    } else {
      session.warn(
        `the entry at cursor "${pos.cursor}" is no longer in the journal (rotated or vacuumed away?): reading from the start`,
      );
    }
  }
  // Adding a match forgets the position: seek afterwards.
  if (scan === null) addMatches(native, j, session);
  if (session.backward) {
    // From the end; the start position is where the read stops (deliverEntries).
    check(native.seekTail(j), "sd_journal_seek_tail");
    return false;
  }
  if (cursorFound) {
    check(native.seekCursor(j, (pos as { cursor: string }).cursor), "sd_journal_seek_cursor");
    const r = native.next(j);
    if (r < 0) throw new Error(`sd_journal_next failed: ${errnoText(r)}`);
    // Standing on the cursor's entry: the loop's next() moves past it. Standing on another entry
    // (the cursor's does not match the filters): that one is the first to read.
    return r > 0 && native.testCursor(j, (pos as { cursor: string }).cursor) <= 0;
  }
  if (pos.kind === "time") check(native.seekRealtimeUsec(j, pos.usec), "sd_journal_seek_realtime_usec");
  else check(native.seekHead(j), "sd_journal_seek_head");
  return false;
}

/** Reads the session's files with sd-journal, delivering entries through the session. */
export async function readWithSdJournal(session: ReadSession): Promise<void> {
  const sd = await loadSdJournal();
  const paths = session.files.map((f) => f.path);
  if (paths.length === 0) {
    session.complete = true;
    return;
  }
  const j = openFiles(sd, session, paths);
  if (j === null) return;
  try {
    // Compressed values are only decompressed this far: enough to tell that a value is longer
    // than maxFieldBytes (field names are at most 64 bytes). 0 would mean no limit.
    check(sd.native.setDataThreshold(j, session.maxFieldBytes + 128), "sd_journal_set_data_threshold");
    // Filters that match most entries are tested here, read forward, until too few do (scan.ts).
    const scan =
      session.backward || session.filtersMatch !== "most"
        ? null
        : FilterScan.of(session.terms, session.maxFieldBytes + 66);
    if (scan) filterScans.scanned += 1;
    const standing = position(sd.native, j, session, scan);
    const counting = await deliverEntries(sd, j, session, standing, scan);
    if (counting) await countDropped(sd, j, session);
  } finally {
    sd.native.close(j);
  }
}

const TWO_32 = 4294967296;

/** What one read of the journal keeps between batches of entries. */
interface Reader {
  sd: SdJournal;
  j: Address;
  session: ReadSession;
  step: (j: Address) => number;
  /** Hashes of the wanted field names (nameHash); null when every field is wanted. */
  wantedHashes: Set<number> | null;
  /** The handle already stands on an entry not yet read (position's answer). */
  pending: boolean;
  info: ValueInfo;
  /** The filters tested here, until they are given to libsystemd (null: they were, or none). */
  scan: FilterScan | null;
  /** FilterScan bits of the fields readFields met in the current entry. */
  bits: number;
}

/** An entry's fields as read, or null when libsystemd could not read its data. */
interface EntryFields {
  fields: Record<string, string | Buffer>;
  bytes: number;
  truncated: number;
}

/**
 * Returns true when a limit was reached and the rest is to be counted. The loop runs in batches
 * of synchronous calls between yields to the event loop: a synchronous function is compiled once
 * for the whole read, where the async one was re-optimized again and again (V8 found paths it had
 * no type feedback for after each resume), which cost some 200 ms of compiler time per pass.
 */
async function deliverEntries(
  sd: SdJournal,
  j: Address,
  session: ReadSession,
  standing: boolean,
  scan: FilterScan | null,
): Promise<boolean> {
  const wanted = session.fields;
  const decoded = wanted === null ? null : new Set([...wanted, ...(scan?.fields ?? [])]);
  const reader: Reader = {
    sd,
    j,
    session,
    step: session.backward ? sd.native.previous : sd.native.next,
    wantedHashes: decoded === null ? null : new Set([...decoded].map(nameHash)),
    pending: standing,
    info: { bytes: 0, truncated: false },
    scan,
    bits: 0,
  };
  for (;;) {
    const outcome = deliverBatch(reader, YIELD_EVERY);
    if (outcome === "count" && reader.scan && giveFiltersToLibsystemd(reader) === null) {
      // Only matching entries are to be counted, and libsystemd cannot say where to go on from.
      session.warn("the entries left after the limit were not counted: a corrupt entry");
      return false;
    }
    if (outcome !== "more") return outcome === "count";
    await yieldToEventLoop();
    if (session.expired()) return false;
  }
}

/**
 * Delivers up to `count` entries. "more" when the batch ended with more to read, "count" when a
 * limit was reached and the rest is to be counted, "end" when the read is over.
 */
function deliverBatch(reader: Reader, count: number): "more" | "count" | "end" {
  const { sd, j, session, step } = reader;
  const { native, words, memory } = sd;
  const out0 = sd.scratch;
  const since = session.sinceUsec;
  const { backward, cursors } = session;
  for (let left = count; left > 0; left -= 1) {
    if (reader.pending) reader.pending = false;
    else {
      const r = step(j);
      if (r <= 0) {
        if (r < 0) session.warn(`reading stopped early: sd_journal_next failed (${errnoText(r)})`);
        else session.complete = true;
        return "end";
      }
    }
    const { scan } = reader;
    if (scan !== null && (scan.sparse || session.full)) {
      // From here on libsystemd picks the entries (and the rest are only counted, when full).
      // An entry whose cursor cannot be read is tested here as before, and the next one tries.
      const standing = giveFiltersToLibsystemd(reader);
      if (standing !== null) {
        reader.pending = standing;
        continue;
      }
    }
    if (scan === null) {
      session.seen += 1;
      if (session.full) {
        session.drop();
        return "count";
      }
    }
    if (native.getRealtimeUsec(j, out0) < 0) {
      session.unreadable += 1;
      continue;
    }
    const realtimeUsec = words[0]! + words[1]! * TWO_32;
    if (realtimeUsec < since) {
      if (!backward) continue;
      session.complete = true; // backward, the first entry before the start ends the read
      return "end";
    }
    // The cursor is asked for once the entry is known to match.
    const read = readFields(reader);
    if (scan !== null) {
      // An entry whose data cannot be read is counted below, as if it matched.
      const passes = read === null || scan.passes(reader.bits);
      scan.count(passes);
      if (!passes) continue;
      session.seen += 1;
    }
    let cursor = "";
    if (cursors) {
      if (native.getCursor(j, out0) < 0) {
        session.unreadable += 1;
        continue;
      }
      const cursorAddress = words[0]! + words[1]! * TWO_32;
      cursor = memory.cString(cursorAddress);
      native.free(cursorAddress);
    }
    if (read === null) {
      session.unreadable += 1; // as journalctl does: an entry whose data cannot be read is skipped
      continue;
    }
    const entry: JournalEntry = { cursor, realtimeUsec, fields: read.fields };
    const verdict = session.deliver(entry, read.bytes, read.truncated);
    if (verdict !== "more") return verdict === "count" ? "count" : "end";
  }
  return "more";
}

/**
 * Reads that tested their filters here, and reads that then gave them to libsystemd part way:
 * for tests, as nothing else tells.
 */
export const filterScans = { scanned: 0, handedOff: 0 };

/**
 * Ends the scan: libsystemd's matches pick the entries from the one the handle stands on
 * (included when it matches). Returns whether the handle then stands on a matching entry, or null
 * when the entry's cursor cannot be read (a corrupt entry): the scan goes on.
 */
function giveFiltersToLibsystemd(reader: Reader): boolean | null {
  const { sd, j, session } = reader;
  const { native, words, memory } = sd;
  if (native.getCursor(j, sd.scratch) < 0) return null;
  reader.scan = null;
  filterScans.handedOff += 1;
  const address = words[0]! + words[1]! * TWO_32;
  const cursor = memory.cString(address);
  native.free(address);
  addMatches(native, j, session);
  check(native.seekCursor(j, cursor), "sd_journal_seek_cursor");
  const r = native.next(j);
  if (r < 0) throw new Error(`sd_journal_next failed: ${errnoText(r)}`);
  return r > 0;
}

/** The wanted fields of the entry the handle stands on. */
function readFields(reader: Reader): EntryFields | null {
  const { sd, j, session, wantedHashes, info } = reader;
  const { native, words, memory } = sd;
  const out0 = sd.scratch;
  const out1 = sd.scratch + 8;
  const max = session.maxFieldBytes;
  /** Bytes of a field that are ever read: name (<= 64), "=", and at most max bytes of value. */
  const readCap = max + 66;
  const wanted = session.fields;
  const { scan } = reader;
  reader.bits = 0;
  native.restartData(j);
  entrySerial = entrySerial === Number.MAX_SAFE_INTEGER ? 1 : entrySerial + 1;
  const serial = entrySerial;
  const fields: Record<string, string | Buffer> = {};
  let bytes = 0;
  let truncated = 0;
  let r = native.enumerateData(j, out0, out1);
  for (; r > 0; r = native.enumerateData(j, out0, out1)) {
    const p = words[0]! + words[1]! * TWO_32;
    const length = words[2]! + words[3]! * TWO_32;
    const start = memory.at(p, length < readCap ? length : readCap);
    const buf = memory.buf;
    const end = start + length;
    // Find "=" and hash the name on the way; names are at most 64 bytes.
    let eq = start;
    let hash = 0;
    const nameEnd = end < start + 65 ? end : start + 65;
    for (; eq < nameEnd; eq += 1) {
      const c = buf[eq]!;
      if (c === 61) break;
      hash = (Math.imul(hash, 31) + c) | 0;
    }
    if (eq === nameEnd) continue; // no "=" where a name ends: not a field (journald writes none)
    // A name whose hash no wanted name has is not wanted: skipped without being looked up.
    if (wantedHashes !== null && !wantedHashes.has(hash)) continue;
    const field = internName(buf, start, eq, hash);
    const filtered = scan !== null && scan.fields.has(field.name);
    const delivered = wanted === null || wanted.has(field.name);
    if (!filtered && !delivered) continue;
    const valueLength = end - eq - 1;
    // A short value is looked up once, for the filters and the entry alike (only when the whole
    // field lies in what memory.at was asked to cover).
    const short =
      valueLength <= SHORT_VALUE_BYTES && length <= readCap ? shortValue(field, buf, eq + 1, end) : undefined;
    // Every occurrence of a field the filters look at counts, as with libsystemd's matches.
    if (filtered)
      reader.bits |= short !== undefined ? scan.bitFor(field.name, short) : scan.bitOf(buf, start, end);
    if (!delivered) continue;
    // A repeated field keeps its first value.
    if (field.seenIn === serial || (field.seenIn < 0 && fields[field.name] !== undefined)) continue;
    if (field.seenIn >= 0) field.seenIn = serial;
    let value: string | Buffer;
    let valueBytes = valueLength;
    if (valueLength <= max) {
      if (short !== undefined) value = short;
      else {
        value = (buf as unknown as FastSlices).utf8Slice(eq + 1, end);
        if (value.includes("\uFFFD")) {
          value = decodeValue(buf, eq + 1, end, valueLength, max, info);
          valueBytes = info.bytes;
        }
      }
    } else {
      value = decodeValue(buf, eq + 1, eq + 1 + max, valueLength, max, info);
      valueBytes = info.bytes;
      truncated += 1;
    }
    fields[field.name] = value;
    bytes += eq - start + 1 + valueBytes;
  }
  return r < 0 ? null : { fields, bytes, truncated };
}

/**
 * Steps over the remaining matching entries, decoding nothing, up to the session's cap (reading
 * backward, down to the start position).
 */
async function countDropped(sd: SdJournal, j: Address, session: ReadSession): Promise<void> {
  const { native, words } = sd;
  const step = session.backward ? native.previous : native.next;
  let untilYield = YIELD_EVERY_COUNTING;
  while (!session.stats.droppedCapped) {
    const r = step(j);
    if (r <= 0) {
      if (r === 0) session.complete = true;
      return;
    }
    if (
      session.backward &&
      native.getRealtimeUsec(j, sd.scratch) >= 0 &&
      words[0]! + words[1]! * TWO_32 < session.sinceUsec
    ) {
      session.complete = true;
      return;
    }
    session.seen += 1;
    session.drop();
    if (--untilYield === 0) {
      untilYield = YIELD_EVERY_COUNTING;
      await yieldToEventLoop();
      if (session.expired()) return;
    }
  }
}

/**
 * Opens one directory the way libsystemd does (sd_journal_open_directory) and returns the cursors
 * of its entries: for tests that check listJournalFiles against libsystemd's own rule.
 */
export async function cursorsOfDirectory(directory: string): Promise<string[]> {
  const sd = await loadSdJournal();
  const ret: unknown[] = [null];
  check(sd.native.openDirectory(ret, directory, 0), "sd_journal_open_directory");
  const j = toAddress(ret[0]);
  const cursors: string[] = [];
  try {
    while (sd.native.next(j) > 0) {
      check(sd.native.getCursor(j, sd.scratch), "sd_journal_get_cursor");
      const p = sd.words[0]! + sd.words[1]! * TWO_32;
      cursors.push(sd.memory.cString(p));
      sd.native.free(p);
    }
  } finally {
    sd.native.close(j);
  }
  return cursors;
}
