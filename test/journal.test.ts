import {
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  truncate,
  writeFile,
} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Excerpt,
  type ExcerptJob,
  isoTime,
  readExcerpt,
  readWindow,
} from "../collector/bundle/journal-excerpt.js";
import {
  AVC_EXCERPT,
  excerptJob,
  type StepInputs,
  USUAL_UNITS,
  unitExcerpt,
} from "../collector/bundle/steps.js";
import { Host } from "../collector/host/host.js";
import { CursorStore } from "../collector/journal/cursor-store.js";
import { listJournalFiles } from "../collector/journal/files.js";
import { journalDirectories } from "../collector/journal/locate.js";
import { findCursor, readJournal } from "../collector/journal/reader.js";
import { cursorsOfDirectory, filterScans, Memory } from "../collector/journal/sdjournal.js";
import type {
  JournalEntry,
  JournalLimits,
  JournalQuery,
  JournalReadStats,
} from "../collector/journal/types.js";
import { type JournalFacts, journalSource } from "../collector/sources/journal.js";
import { Absent, collectOptions, journalStart } from "../collector/sources/source.js";
import type { ExportEntry, ExportValue } from "./support/export-format.js";
import { HostTree } from "./support/host-tree.js";
import { BOOT_ID, journalEntry, MACHINE_ID, writeJournalFile } from "./support/journal.js";
import { requireParts } from "./support/requirements.js";

const ready = requireParts("journal reader tests", ["journal-remote"]);

/**
 * Every journal here is a real journal file, written by systemd-journal-remote from export-format
 * input that the test builds (test/support/export-format.ts), and read back by libsystemd
 * (the sd-journal bindings) and by journalctl.
 */

const BACKENDS = ["sd-journal", "journalctl"] as const;
type Backend = (typeof BACKENDS)[number];
const T0 = 1_700_000_000_000_000; // µs
const ALL: JournalLimits = { maxEntries: 10_000_000, maxBytes: 2 ** 40, maxFieldBytes: 1024 * 1024 };
const BIG = 120_000;

let scratch: string;

/** Entry `i` at T0 + i seconds, with the given fields. */
function entryAt(i: number, fields: [string, ExportValue][]): ExportEntry {
  return {
    realtimeUsec: T0 + i * 1_000_000,
    monotonicUsec: 1_000_000 + i * 1_000_000,
    bootId: BOOT_ID,
    fields,
  };
}

/** Writes `entries` as a journal file with systemd-journal-remote (it may rotate into several). */
function writeJournal(file: string, entries: Iterable<ExportEntry>): Promise<void> {
  return writeJournalFile(file, entries, scratch);
}

const UNITS = ["crio.service", "kubelet.service", "containerd.service"];
const TRANSPORTS = ["stdout", "journal", "syslog"];

/** A service's entry: unit, identifier and transport cycle with different periods. */
function serviceEntry(i: number, extra: [string, ExportValue][] = []): ExportEntry {
  const unit = UNITS[i % 3]!;
  return entryAt(i, [
    ["_SYSTEMD_UNIT", unit],
    ["SYSLOG_IDENTIFIER", unit.replace(".service", "")],
    ["_TRANSPORT", TRANSPORTS[i % 2 === 0 ? 0 : i % 3 === 0 ? 1 : 2]!],
    ["_HOSTNAME", "node-1"],
    ["MESSAGE", `message ${i}`],
    ...extra,
  ]);
}

function* range(from: number, to: number): Generator<number> {
  for (let i = from; i < to; i += 1) yield i;
}

function* map<T, U>(items: Iterable<T>, fn: (item: T) => U): Generator<U> {
  for (const item of items) yield fn(item);
}

async function collect(
  query: JournalQuery,
  backend: Backend,
  options: { deadlineMs?: number } = {},
): Promise<{ entries: JournalEntry[]; stats: JournalReadStats }> {
  const entries: JournalEntry[] = [];
  const stats = await readJournal(query, (e) => entries.push(e), { backend, ...options });
  expect(stats.backend).toBe(backend);
  return { entries, stats };
}

/** Which entries these are: entry i was written at T0 + i seconds. */
function numbers(entries: JournalEntry[]): number[] {
  return entries.map((e) => (e.realtimeUsec - T0) / 1_000_000);
}

/** Field by field, Buffers by bytes; also the statistics that do not depend on the backend. */
function expectSame(a: { entries: JournalEntry[]; stats: JournalReadStats }, b: typeof a): void {
  expect(a.entries.length).toBe(b.entries.length);
  for (let i = 0; i < a.entries.length; i += 1) {
    const x = a.entries[i]!;
    const y = b.entries[i]!;
    expect(x.cursor).toBe(y.cursor);
    expect(x.realtimeUsec).toBe(y.realtimeUsec);
    expect(Object.keys(x.fields).sort()).toEqual(Object.keys(y.fields).sort());
    for (const [name, value] of Object.entries(x.fields)) {
      const other = y.fields[name];
      if (Buffer.isBuffer(value)) {
        expect(Buffer.isBuffer(other), `${name} of entry ${i} is bytes in both`).toBe(true);
        expect(value.equals(other as Buffer), `${name} of entry ${i}`).toBe(true);
      } else {
        expect(other, `${name} of entry ${i}`).toBe(value);
      }
    }
  }
  for (const key of [
    "delivered",
    "bytes",
    "dropped",
    "droppedCapped",
    "truncatedFields",
    "lastCursor",
  ] as const) {
    expect(a.stats[key], key).toEqual(b.stats[key]);
  }
}

/**
 * Overwrites `length` bytes with 0xAA from the entry object `fraction` of the way through the
 * file: that entry and the objects after it (data, more entries) become garbage. Objects are
 * found by walking them from the end of the header (https://systemd.io/JOURNAL_FILE_FORMAT/).
 */
async function scribble(file: string, fraction: number, length: number): Promise<void> {
  const data = await readFile(file);
  const u64 = (offset: number) => Number(data.readBigUInt64LE(offset));
  const tail = u64(136); // tail_object_offset
  const entries: number[] = [];
  for (let at = u64(88); at <= tail; ) {
    if (data[at] === 3) entries.push(at); // OBJECT_ENTRY
    const size = u64(at + 8);
    if (size === 0) break;
    at += (size + 7) & ~7;
  }
  const at = entries[Math.floor(entries.length * fraction)]!;
  data.fill(0xaa, at, at + length);
  await writeFile(file, data);
}

const dirs = {
  services: "",
  rotated: "",
  interleaved: "",
  machine: "",
  corrupt: "",
  binary: "",
  big: "",
  mixed: "",
};

/**
 * 12,000 entries: the first 6,000 nearly all crio's, the rest one crio entry in ten among other
 * units. Some crio entries carry _SYSTEMD_UNIT twice (another unit first), others a unit that only
 * starts like crio's.
 */
function mixedEntry(i: number): ExportEntry {
  const dense = i < 6000;
  const crio = dense ? i % 50 !== 7 : i % 10 === 0;
  const units: [string, ExportValue][] = crio
    ? i % 97 === 0
      ? [
          ["_SYSTEMD_UNIT", "kubelet.service"],
          ["_SYSTEMD_UNIT", "crio.service"],
        ]
      : [["_SYSTEMD_UNIT", "crio.service"]]
    : [["_SYSTEMD_UNIT", i % 3 === 0 ? "crio.service-other" : "kubelet.service"]];
  return entryAt(i, [
    ...units,
    ["SYSLOG_IDENTIFIER", crio ? "crio" : "kubelet"],
    ["_TRANSPORT", TRANSPORTS[i % 3]!],
    ["MESSAGE", `message ${i}`],
  ]);
}

describe.skipIf(!ready)("journal reader", () => {
  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), "imagefs-journal-"));
    for (const key of Object.keys(dirs) as (keyof typeof dirs)[]) dirs[key] = path.join(scratch, key);

    await writeJournal(
      path.join(dirs.services, "system.journal"),
      map(range(0, 60), (i) => serviceEntry(i)),
    );
    // Rotation: three files, each holding the next stretch of time.
    for (const [n, from] of [0, 20, 40].entries()) {
      await writeJournal(
        path.join(dirs.rotated, `system@${n}.journal`),
        map(range(from, from + 20), (i) => serviceEntry(i)),
      );
    }
    // Two files written side by side (system and user journals): even entries in one, odd in the other.
    // (A field of their own: libsystemd drops entries that are exact copies of one in another file.)
    await writeJournal(
      path.join(dirs.interleaved, "system.journal"),
      map(range(0, 20), (i) => serviceEntry(2 * i, [["_UID", "0"]])),
    );
    await writeJournal(
      path.join(dirs.interleaved, "user-1000.journal"),
      map(range(0, 20), (i) => serviceEntry(2 * i + 1, [["_UID", "1000"]])),
    );
    // Files at the top, under the machine ID, and where libsystemd does not look.
    await writeJournal(
      path.join(dirs.machine, "top.journal"),
      map(range(0, 5), (i) => serviceEntry(i)),
    );
    await writeJournal(
      path.join(dirs.machine, MACHINE_ID, "system.journal"),
      map(range(5, 10), (i) => serviceEntry(i)),
    );
    // journald renames a file it found dirty to *.journal~; journal-remote only writes *.journal.
    await writeJournal(
      path.join(dirs.machine, MACHINE_ID, "user-1000@x.journal"),
      map(range(10, 12), (i) => serviceEntry(i)),
    );
    await rename(
      path.join(dirs.machine, MACHINE_ID, "user-1000@x.journal"),
      path.join(dirs.machine, MACHINE_ID, "user-1000@x.journal~"),
    );
    await writeJournal(path.join(dirs.machine, "not-a-machine-id", "x.journal"), [serviceEntry(100)]);
    await writeJournal(path.join(dirs.machine, `${MACHINE_ID}.namespace`, "x.journal"), [serviceEntry(101)]);
    await writeJournal(path.join(dirs.machine, MACHINE_ID, "deeper", "x.journal"), [serviceEntry(102)]);

    // One good file, one cut short, one with garbage written over part of its objects.
    await writeJournal(
      path.join(dirs.corrupt, "good.journal"),
      map(range(0, 2000), (i) => serviceEntry(i)),
    );
    await writeJournal(
      path.join(dirs.corrupt, "truncated.journal"),
      map(range(2000, 4000), (i) => serviceEntry(i)),
    );
    await writeJournal(
      path.join(dirs.corrupt, "scribbled.journal"),
      map(range(4000, 6000), (i) => serviceEntry(i)),
    );
    const truncatedFile = path.join(dirs.corrupt, "truncated.journal");
    await truncate(truncatedFile, Math.floor((await stat(truncatedFile)).size / 2));
    await scribble(path.join(dirs.corrupt, "scribbled.journal"), 0.6, 4000);

    await writeJournal(path.join(dirs.binary, "system.journal"), binaryEntries());

    await writeJournal(
      path.join(dirs.big, "system.journal"),
      map(range(0, BIG), (i) => serviceEntry(i)),
    );
    await writeJournal(path.join(dirs.mixed, "system.journal"), map(range(0, 12_000), mixedEntry));
  }, 120_000);

  afterAll(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  describe.each(BACKENDS)("with %s", (backend) => {
    it("reads every entry in order, with its fields, cursor and time", async () => {
      const { entries, stats } = await collect(
        { source: { directories: [dirs.services] }, limits: ALL },
        backend,
      );
      expect(numbers(entries)).toEqual([...range(0, 60)]);
      expect(entries[7]!.realtimeUsec).toBe(T0 + 7_000_000);
      expect(entries[7]!.fields).toEqual({
        _BOOT_ID: BOOT_ID,
        _SYSTEMD_UNIT: "kubelet.service",
        SYSLOG_IDENTIFIER: "kubelet",
        _TRANSPORT: "syslog",
        _HOSTNAME: "node-1",
        MESSAGE: "message 7",
      });
      expect(entries[7]!.cursor).toMatch(/^s=[0-9a-f]{32};i=8;b=/);
      expect(stats).toMatchObject({
        delivered: 60,
        dropped: 0,
        truncatedFields: 0,
        timedOut: false,
        warnings: [],
      });
      expect(stats.lastCursor).toBe(entries[59]!.cursor);
    });

    it("reads without cursors when asked, and findCursor finds the last entry's cursor afterwards", async () => {
      const query: JournalQuery = {
        source: { directories: [dirs.interleaved] },
        filters: [{ _SYSTEMD_UNIT: "crio.service" }],
        since: { realtimeUsec: T0 + 5_000_000 },
        fields: ["MESSAGE", "_UID"],
        limits: ALL,
      };
      const withCursors = await collect(query, backend);
      const without = await collect({ ...query, cursors: "none" }, backend);
      expect(numbers(without.entries)).toEqual(numbers(withCursors.entries));
      expect(without.entries.every((e) => e.cursor === "")).toBe(true);
      expect(without.stats.lastCursor).toBeNull();
      const last = without.entries.at(-1)!;
      expect(await findCursor(query, last, { backend })).toBe(withCursors.entries.at(-1)!.cursor);
      // An entry that is not in the journal as read (another message at that time): no cursor.
      const other = { ...last, fields: { ...last.fields, MESSAGE: "not this one" } };
      expect(await findCursor(query, other, { backend })).toBeNull();
      // An earlier entry, with newer ones after it (as if appended since): stepped over.
      const earlier = without.entries.at(-3)!;
      expect(await findCursor(query, earlier, { backend })).toBe(withCursors.entries.at(-3)!.cursor);
    });

    it("matches by _SYSTEMD_UNIT, SYSLOG_IDENTIFIER and _TRANSPORT: AND inside a filter, OR across", async () => {
      const read = async (filters: JournalQuery["filters"]) =>
        numbers(
          (await collect({ source: { directories: [dirs.services] }, filters, limits: ALL }, backend))
            .entries,
        );
      const all = [...range(0, 60)];
      expect(await read([{ _SYSTEMD_UNIT: "crio.service" }])).toEqual(all.filter((i) => i % 3 === 0));
      expect(await read([{ SYSLOG_IDENTIFIER: ["kubelet", "containerd"] }])).toEqual(
        all.filter((i) => i % 3 !== 0),
      );
      expect(await read([{ _SYSTEMD_UNIT: "crio.service", _TRANSPORT: "stdout" }])).toEqual(
        all.filter((i) => i % 6 === 0),
      );
      expect(await read([{ _SYSTEMD_UNIT: "kubelet.service" }, { _TRANSPORT: "journal" }])).toEqual(
        all.filter((i) => i % 3 === 1 || (i % 2 === 1 && i % 3 === 0)),
      );
      expect(await read([{ SYSLOG_IDENTIFIER: "nothing-logs-this" }])).toEqual([]);
      expect(await read([{ _SYSTEMD_UNIT: [] }])).toEqual([]);
      expect(await read([{}, { _SYSTEMD_UNIT: "crio.service" }])).toEqual(all); // an empty filter matches all
      // Filters on one field each are merged into one (crio.service given twice): still their union,
      // each entry once, with the filter on another field (kubelet's identifier) beside it.
      expect(
        await read([
          { _SYSTEMD_UNIT: "crio.service" },
          { SYSLOG_IDENTIFIER: "kubelet" },
          { _SYSTEMD_UNIT: ["kubelet.service", "crio.service"] },
        ]),
      ).toEqual(all.filter((i) => i % 3 !== 2));
      // Merged in the first one's place, and the union does not depend on the order given.
      expect(
        await read([
          { _SYSTEMD_UNIT: "containerd.service" },
          { SYSLOG_IDENTIFIER: "kubelet" },
          { _SYSTEMD_UNIT: "crio.service" },
        ]),
      ).toEqual(all);
    });

    it("starts at a time, and after a cursor without delivering the cursor's entry again", async () => {
      const source = { directories: [dirs.services] };
      const fromTime = await collect(
        { source, since: { realtimeUsec: T0 + 42_000_000 }, limits: ALL },
        backend,
      );
      expect(numbers(fromTime.entries)).toEqual([...range(42, 60)]);
      const between = await collect(
        { source, since: { realtimeUsec: T0 + 41_500_000 }, limits: ALL },
        backend,
      );
      expect(numbers(between.entries)[0]).toBe(42);

      const first = await collect({ source, limits: { ...ALL, maxEntries: 10 } }, backend);
      const after = await collect(
        { source, since: { afterCursor: first.stats.lastCursor! }, limits: ALL },
        backend,
      );
      expect(numbers(after.entries)).toEqual([...range(10, 60)]);
      expect(after.stats.warnings).toEqual([]);

      // With a filter the cursor's own entry no longer matches: the next matching entry comes first.
      const crio = await collect(
        {
          source,
          filters: [{ _SYSTEMD_UNIT: "crio.service" }],
          since: { afterCursor: first.entries[4]!.cursor },
          limits: ALL,
        },
        backend,
      );
      expect(numbers(crio.entries)[0]).toBe(6);

      const atEnd = await collect(
        { source, since: { afterCursor: after.stats.lastCursor! }, limits: ALL },
        backend,
      );
      expect(atEnd.entries).toEqual([]);
      expect(atEnd.stats.lastCursor).toBeNull();
      expect(atEnd.stats.warnings).toEqual([]);
    });

    it("starts over, with a warning, when the cursor's entry is gone or the cursor is garbage", async () => {
      const dir = path.join(scratch, `gone-${backend}`);
      await mkdir(dir);
      for (const name of await readdir(dirs.rotated))
        await copyFile(path.join(dirs.rotated, name), path.join(dir, name));
      const source = { directories: [dir] };
      const early = await collect({ source, limits: { ...ALL, maxEntries: 5 } }, backend);
      // The oldest file is vacuumed away, cursor and all.
      await rm(path.join(dir, "system@0.journal"));
      const later = await collect(
        { source, since: { afterCursor: early.stats.lastCursor! }, limits: ALL },
        backend,
      );
      expect(numbers(later.entries)).toEqual([...range(20, 60)]);
      expect(later.stats.warnings.join("\n")).toMatch(/no longer in the journal.*reading from the start/);

      const garbage = await collect({ source, since: { afterCursor: "not a cursor" }, limits: ALL }, backend);
      expect(numbers(garbage.entries)).toEqual([...range(20, 60)]);
      expect(garbage.stats.warnings.join("\n")).toMatch(/not a cursor.*reading from the start/);
    });

    it("reads rotated files of one directory as one journal, in time order", async () => {
      const rotated = await collect({ source: { directories: [dirs.rotated] }, limits: ALL }, backend);
      expect(numbers(rotated.entries)).toEqual([...range(0, 60)]);
      const times = rotated.entries.map((e) => e.realtimeUsec);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      // Seeking by time and by cursor work across the file boundaries.
      const fromTime = await collect(
        { source: { directories: [dirs.rotated] }, since: { realtimeUsec: T0 + 19_000_000 }, limits: ALL },
        backend,
      );
      expect(numbers(fromTime.entries).slice(0, 3)).toEqual([19, 20, 21]);
      const afterCursor = await collect(
        {
          source: { directories: [dirs.rotated] },
          since: { afterCursor: rotated.entries[39]!.cursor },
          limits: ALL,
        },
        backend,
      );
      expect(numbers(afterCursor.entries)).toEqual([...range(40, 60)]);

      const interleaved = await collect(
        { source: { directories: [dirs.interleaved] }, limits: ALL },
        backend,
      );
      expect(numbers(interleaved.entries)).toEqual([...range(0, 40)]);
      // Several directories are one journal too.
      const both = await collect(
        { source: { directories: [dirs.interleaved, dirs.rotated] }, limits: ALL },
        backend,
      );
      expect(both.entries).toHaveLength(100);
      const bothTimes = both.entries.map((e) => e.realtimeUsec);
      expect(bothTimes).toEqual([...bothTimes].sort((a, b) => a - b));
    });

    it("reads files under the machine-ID directory, as libsystemd does, and single files", async () => {
      const { entries } = await collect({ source: { directories: [dirs.machine] }, limits: ALL }, backend);
      expect(numbers(entries)).toEqual([...range(0, 12)]);
      const one = await collect(
        { source: { files: [path.join(dirs.machine, MACHINE_ID, "system.journal")] }, limits: ALL },
        backend,
      );
      expect(numbers(one.entries)).toEqual([...range(5, 10)]);
    });

    it("goes on past a truncated file and a file with garbage in its middle, and warns", async () => {
      const { entries, stats } = await collect(
        { source: { directories: [dirs.corrupt] }, limits: ALL },
        backend,
      );
      const seen = new Set(numbers(entries));
      // Every entry of the good file; none of the truncated one (libsystemd refuses the file);
      // most of the scribbled one (libsystemd skips the entries it cannot read).
      for (const i of range(0, 2000)) expect(seen.has(i), `entry ${i}`).toBe(true);
      for (const i of range(2000, 4000)) expect(seen.has(i), `entry ${i}`).toBe(false);
      const scribbled = [...seen].filter((i) => i >= 4000).length;
      expect(scribbled).toBeGreaterThan(1000);
      expect(scribbled).toBeLessThan(2000);
      expect(stats.delivered).toBe(2000 + scribbled);
      const warnings = stats.warnings.join("\n");
      expect(warnings).toMatch(/truncated\.journal skipped: .*truncated/);
      expect(warnings).toMatch(/could not (be )?read/);
      expect(stats.timedOut).toBe(false);
    });

    it("delivers binary and non-UTF-8 values as Buffers, text as strings, and cuts long values", async () => {
      const { entries, stats } = await collect(
        { source: { directories: [dirs.binary] }, limits: ALL },
        backend,
      );
      const [bin, text, long] = entries as [JournalEntry, JournalEntry, JournalEntry];
      expect(bin.fields.BINARY).toEqual(Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]));
      expect(bin.fields.LATIN1).toEqual(Buffer.from("caf\xe9", "latin1"));
      expect(bin.fields.SURROGATE).toEqual(Buffer.from([0xed, 0xa0, 0x80]));
      expect(text.fields.ESCAPES).toBe("\x1b[31mred\x1b[0m\ttab");
      expect(text.fields.MESSAGE).toBe("line one\nline two");
      expect(text.fields.UNICODE).toBe("grüße 🚢 ✓");
      expect(text.fields.REPLACEMENT).toBe("a\uFFFDb");
      expect(text.fields.REPEATED).toBe("first");
      expect(text.fields.NUL_TEXT).toBe("a\u0000b");
      expect(text.fields.CUT_UTF8).toBe("abcdef🚢");
      expect(long.fields.LONG_TEXT).toBe("x".repeat(200_000));
      expect((long.fields.LONG_BINARY as Buffer).equals(longBinary())).toBe(true);
      expect(stats.truncatedFields).toBe(0);

      const cut = await collect(
        { source: { directories: [dirs.binary] }, limits: { ...ALL, maxFieldBytes: 7 } },
        backend,
      );
      const [cbin, ctext, clong] = cut.entries as [JournalEntry, JournalEntry, JournalEntry];
      expect(cbin.fields.BINARY).toEqual(Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]));
      expect(ctext.fields.UNICODE).toBe("grüße"); // exactly 7 bytes
      expect(ctext.fields.CUT_UTF8).toBe("abcdef"); // 7 bytes would split the 🚢: cut before it
      expect(ctext.fields.MESSAGE).toBe("line on");
      expect(ctext.fields.ESCAPES).toBe("\x1b[31mre");
      expect(clong.fields.LONG_TEXT).toBe("xxxxxxx");
      expect(clong.fields.LONG_BINARY).toEqual(longBinary().subarray(0, 7));
      // _BOOT_ID (3 entries), MESSAGE, ESCAPES, UNICODE, CUT_UTF8, LONG_TEXT, LONG_BINARY
      expect(cut.stats.truncatedFields).toBe(9);
    });

    it("respects maxEntries, maxBytes and the dropped cap on 120,000 entries", async () => {
      const source = { directories: [dirs.big] };
      const few = await collect({ source, limits: { ...ALL, maxEntries: 1000 } }, backend);
      expect(few.entries).toHaveLength(1000);
      expect(numbers(few.entries)).toEqual([...range(0, 1000)]);
      expect(few.stats).toMatchObject({ delivered: 1000, dropped: 100_000, droppedCapped: true });
      expect(few.stats.lastCursor).toBe(few.entries[999]!.cursor);

      const counted = await collect(
        { source, limits: { ...ALL, maxEntries: 1000, maxDroppedCount: 200_000 } },
        backend,
      );
      expect(counted.stats).toMatchObject({ delivered: 1000, dropped: BIG - 1000, droppedCapped: false });

      const crio = await collect(
        { source, filters: [{ _SYSTEMD_UNIT: "crio.service" }], limits: { ...ALL, maxEntries: 10 } },
        backend,
      );
      expect(crio.stats).toMatchObject({ delivered: 10, dropped: BIG / 3 - 10, droppedCapped: false });

      const bytes = await collect(
        { source, limits: { ...ALL, maxBytes: 100_000, maxDroppedCount: 200_000 } },
        backend,
      );
      expect(bytes.stats.bytes).toBeLessThanOrEqual(100_000);
      expect(bytes.stats.bytes).toBeGreaterThan(100_000 - 200);
      expect(bytes.stats.delivered + bytes.stats.dropped).toBe(BIG);
      const perEntry = bytes.entries.reduce(
        (sum, e) =>
          sum +
          Object.entries(e.fields).reduce(
            (s, [k, v]) => s + k.length + 1 + Buffer.byteLength(v as string),
            0,
          ),
        0,
      );
      expect(perEntry).toBe(bytes.stats.bytes);

      const everything = await collect({ source, limits: ALL }, backend);
      expect(everything.stats).toMatchObject({ delivered: BIG, dropped: 0, warnings: [] });
      expect(numbers(everything.entries.slice(-2))).toEqual([BIG - 2, BIG - 1]);
    });

    it("lets timers run while it reads, and stops at its deadline", async () => {
      const source = { directories: [dirs.big] };
      let delivered = 0;
      let atTimer = -1;
      const timer = new Promise<void>((resolve) =>
        setTimeout(() => {
          atTimer = delivered;
          resolve();
        }, 1),
      );
      const stats = await readJournal(
        { source, limits: ALL },
        () => {
          delivered += 1;
        },
        { backend },
      );
      await timer;
      expect(stats.delivered).toBe(BIG);
      expect(atTimer).toBeGreaterThanOrEqual(0);
      expect(atTimer).toBeLessThan(BIG); // the timer fired during the read, not after it

      const started = performance.now();
      const cut = await collect({ source, limits: ALL }, backend, { deadlineMs: 30 });
      expect(performance.now() - started).toBeLessThan(2000);
      expect(cut.stats.timedOut).toBe(true);
      expect(cut.stats.delivered).toBeLessThan(BIG);
      expect(cut.stats.warnings.join("\n")).toMatch(/deadline/);
      if (cut.entries.length > 0) expect(cut.stats.lastCursor).toBe(cut.entries.at(-1)!.cursor);
    });

    it("reads backward from the end down to a time, decodes only the fields asked for, and stops when told", async () => {
      const source = { directories: [dirs.rotated] };
      const back = await collect({ source, direction: "backward", limits: ALL }, backend);
      expect(numbers(back.entries)).toEqual([...range(0, 60)].reverse());
      expect(back.stats).toMatchObject({ delivered: 60, timedOut: false, stopped: false, warnings: [] });

      const window = await collect(
        {
          source,
          filters: [{ _SYSTEMD_UNIT: "crio.service" }],
          since: { realtimeUsec: T0 + 30_000_000 },
          direction: "backward",
          fields: ["MESSAGE", "_PID"],
          limits: ALL,
        },
        backend,
      );
      expect(numbers(window.entries)).toEqual([...range(30, 60)].filter((i) => i % 3 === 0).reverse());
      expect(window.entries[0]!.fields).toEqual({ MESSAGE: "message 57" }); // no _PID in these entries
      expect(window.stats.bytes).toBe(window.entries.length * "MESSAGE=message 57".length);

      const dropped = await collect(
        {
          source,
          since: { realtimeUsec: T0 + 50_000_000 },
          direction: "backward",
          limits: { ...ALL, maxEntries: 4 },
        },
        backend,
      );
      expect(numbers(dropped.entries)).toEqual([59, 58, 57, 56]);
      expect(dropped.stats).toMatchObject({ delivered: 4, dropped: 6 });

      const newest: number[] = [];
      const stats = await readJournal(
        { source: { directories: [dirs.big] }, direction: "backward", limits: ALL },
        (entry, stop) => {
          newest.push((entry.realtimeUsec - T0) / 1_000_000);
          if (newest.length === 5) stop();
        },
        { backend },
      );
      expect(newest).toEqual([BIG - 1, BIG - 2, BIG - 3, BIG - 4, BIG - 5]);
      expect(stats).toMatchObject({ delivered: 5, stopped: true, timedOut: false });

      await expect(
        readJournal({ source, since: { afterCursor: "s=1" }, direction: "backward", limits: ALL }, () => {}),
      ).rejects.toThrow(/cursor/);
      await expect(readJournal({ source, fields: ["not a field"], limits: ALL }, () => {})).rejects.toThrow(
        /not a journal field name/,
      );
    });

    it("continues after a persisted cursor across restarts, counting no entry twice", async () => {
      const state = path.join(scratch, `state-${backend}`, "cursors.json");
      const source = { directories: [dirs.rotated] };
      const seen: number[] = [];
      for (let round = 0; round < 8; round += 1) {
        const store = new CursorStore(state); // a new process each round
        const cursor = await store.load("journal");
        const { entries, stats } = await collect(
          { source, since: cursor ? { afterCursor: cursor } : undefined, limits: { ...ALL, maxEntries: 9 } },
          backend,
        );
        seen.push(...numbers(entries));
        if (stats.lastCursor) await store.save("journal", stats.lastCursor);
        expect(stats.warnings).toEqual([]);
      }
      expect(seen).toEqual([...range(0, 60)]);
      expect((await stat(state)).mode & 0o777).toBe(0o600);
    });
  });

  it("gives the same entries through both backends, field by field", async () => {
    const cases: JournalQuery[] = [
      { source: { directories: [dirs.binary] }, limits: ALL },
      { source: { directories: [dirs.binary] }, limits: { ...ALL, maxFieldBytes: 7 } },
      { source: { directories: [dirs.binary] }, limits: { ...ALL, maxFieldBytes: 3 } },
      { source: { directories: [dirs.corrupt] }, limits: ALL },
      { source: { directories: [dirs.machine, dirs.interleaved] }, limits: ALL },
      {
        source: { directories: [dirs.services] },
        filters: [
          { _SYSTEMD_UNIT: "kubelet.service" },
          { _TRANSPORT: ["journal", "syslog"], SYSLOG_IDENTIFIER: "crio" },
        ],
        since: { realtimeUsec: T0 + 10_000_000 },
        limits: { ...ALL, maxEntries: 12, maxDroppedCount: 5 },
      },
      { source: { directories: [dirs.big] }, limits: { ...ALL, maxBytes: 3_000_000 } },
    ];
    for (const query of cases) {
      expectSame(await collect(query, "sd-journal"), await collect(query, "journalctl"));
    }
  });

  it("tests filters said to match most entries on each entry, then gives them to libsystemd once few match, with the same entries either way", async () => {
    type How = "scanned" | "handed off" | "libsystemd";
    const mixed = { directories: [dirs.mixed] };
    const crio = [{ _SYSTEMD_UNIT: "crio.service" }];
    const cases: [JournalQuery, How][] = [
      // Dense, then sparse: libsystemd takes over in the sparse half.
      [{ source: mixed, filtersMatch: "most", filters: crio, limits: ALL }, "handed off"],
      // From a time inside the sparse half, with a filter on two fields.
      [
        {
          source: mixed,
          filtersMatch: "most",
          filters: [
            { _SYSTEMD_UNIT: "crio.service", _TRANSPORT: ["journal", "syslog"] },
            { SYSLOG_IDENTIFIER: "none" },
          ],
          since: { realtimeUsec: T0 + 7000 * 1_000_000 },
          limits: ALL,
        },
        "handed off",
      ],
      // Full inside the dense half: the rest are counted with libsystemd's matches.
      [
        {
          source: mixed,
          filtersMatch: "most",
          filters: crio,
          limits: { ...ALL, maxEntries: 1000, maxDroppedCount: 100_000 },
        },
        "handed off",
      ],
      // One crio entry in three from the start.
      [
        {
          source: { directories: [dirs.big] },
          filtersMatch: "most",
          filters: crio,
          limits: { ...ALL, maxEntries: 5000 },
        },
        "handed off",
      ],
      // Every entry matches: tested here throughout.
      [
        {
          source: mixed,
          filtersMatch: "most",
          filters: [{ SYSLOG_IDENTIFIER: ["crio", "kubelet"] }],
          limits: ALL,
        },
        "scanned",
      ],
      // Backward, or not said to match most entries: libsystemd's matches from the start.
      [
        { source: mixed, filtersMatch: "most", filters: crio, direction: "backward", limits: ALL },
        "libsystemd",
      ],
      [{ source: mixed, filters: crio, limits: ALL }, "libsystemd"],
      // A truncated file and one with garbage in its middle, not said to match most entries.
      [
        {
          source: { directories: [dirs.corrupt] },
          filters: [{ _SYSTEMD_UNIT: ["crio.service", "kubelet.service"] }],
          limits: ALL,
        },
        "libsystemd",
      ],
      // More distinct values than a scan has bits (31): libsystemd's matches.
      [
        {
          source: mixed,
          filtersMatch: "most",
          filters: [
            { _SYSTEMD_UNIT: ["crio.service", ...[...range(0, 40)].map((i) => `unit-${i}.service`)] },
          ],
          limits: ALL,
        },
        "libsystemd",
      ],
    ];
    for (const [query, how] of cases) {
      const before = { ...filterScans };
      const ours = await collect(query, "sd-journal");
      const scanned = filterScans.scanned - before.scanned;
      const handedOff = filterScans.handedOff - before.handedOff;
      const seen: How = handedOff > 0 ? "handed off" : scanned > 0 ? "scanned" : "libsystemd";
      expect(seen, JSON.stringify(query)).toBe(how);
      expectSame(ours, await collect(query, "journalctl"));
    }
    // Tested here, the corrupt files give every readable entry whose fields match: journalctl
    // without filters, filtered by the same test. (libsystemd's matches reach fewer there, through
    // the damaged per-value entry arrays.)
    const units = new Set(["crio.service", "kubelet.service"]);
    const scanned = await collect(
      {
        source: { directories: [dirs.corrupt] },
        filtersMatch: "most",
        filters: [{ _SYSTEMD_UNIT: [...units] }],
        limits: ALL,
      },
      "sd-journal",
    );
    const every = await collect({ source: { directories: [dirs.corrupt] }, limits: ALL }, "journalctl");
    expect(numbers(scanned.entries)).toEqual(
      numbers(every.entries.filter((e) => units.has(String(e.fields._SYSTEMD_UNIT)))),
    );
    // The entries that name crio's unit second, after another unit, are among them.
    const { entries } = await collect(cases[0]![0], "sd-journal");
    expect(numbers(entries)).toContain(97 * 2);
    expect(numbers(entries)).not.toContain(7);
    expect(entries).toHaveLength(5880 + 600);
  });

  it("gives each short value as it is, however often values repeat and even when two hash alike", async () => {
    // "Aa" and "BB" hash alike (the reader remembers short values by a hash of their bytes).
    const values = ["Aa", "BB", "Aa", "BB", "\u00e9t\u00e9", "BB", "Aa", "Ab"];
    const file = path.join(scratch, "short-values", "system.journal");
    await writeJournal(
      file,
      map(range(0, 400), (i) =>
        entryAt(i, [
          ["NOTE", values[i % values.length]!],
          ["MESSAGE", `m ${i}`],
        ]),
      ),
    );
    for (const backend of BACKENDS) {
      const { entries } = await collect(
        { source: { files: [file] }, fields: ["NOTE"], limits: ALL },
        backend,
      );
      expect(entries.map((e) => e.fields.NOTE)).toEqual(
        [...range(0, 400)].map((i) => values[i % values.length]),
      );
    }
  });

  it("lists journal files by libsystemd's rule (sd_journal_open_directory, journalctl --directory)", async () => {
    const warnings: string[] = [];
    const files = await listJournalFiles([dirs.machine], (w) => warnings.push(w));
    expect(files.map((f) => path.relative(dirs.machine, f))).toEqual([
      `${MACHINE_ID}/system.journal`,
      `${MACHINE_ID}/user-1000@x.journal~`,
      "top.journal",
    ]);
    expect(warnings).toEqual([]);
    // What libsystemd's own directory walk reads: the same entries, no more.
    const ours = (await collect({ source: { directories: [dirs.machine] }, limits: ALL }, "sd-journal"))
      .entries;
    expect(await cursorsOfDirectory(dirs.machine)).toEqual(ours.map((e) => e.cursor));
    const ctl = await execa("journalctl", ["--no-pager", `--directory=${dirs.machine}`, "-o", "json"]);
    expect(ctl.stdout.split("\n").map((l) => JSON.parse(l).__CURSOR)).toEqual(ours.map((e) => e.cursor));
  });

  it("does not load koffi until the first read", async () => {
    const script = `
      import { readFileSync } from "node:fs";
      const koffiMapped = () => readFileSync("/proc/self/maps", "utf8").includes("koffi");
      const { readJournal } = await import(${JSON.stringify(path.resolve("collector/journal/reader.ts"))});
      const before = koffiMapped();
      const stats = await readJournal(
        { source: { directories: [${JSON.stringify(dirs.services)}] }, limits: { maxEntries: 1, maxBytes: 1e9, maxFieldBytes: 100 } },
        () => {},
      );
      console.log(JSON.stringify({ before, after: koffiMapped(), backend: stats.backend }));
    `;
    const child = await execa(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: path.resolve("."),
    });
    expect(JSON.parse(child.stdout)).toEqual({ before: false, after: true, backend: "sd-journal" });
  });

  it("falls back to journalctl when the bindings cannot load", async () => {
    // A child process in which `import("koffi")` fails, as where koffi has no build for the platform.
    const hooks = `export async function resolve(specifier, context, next) {
      if (specifier === "koffi") throw new Error("koffi is not available here");
      return next(specifier, context);
    }`;
    const register = `import { register } from "node:module";
      register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
    const script = `
      const { readJournal } = await import(${JSON.stringify(path.resolve("collector/journal/reader.ts"))});
      const query = { source: { directories: [${JSON.stringify(dirs.services)}] }, limits: { maxEntries: 1e6, maxBytes: 1e9, maxFieldBytes: 1e6 } };
      const stats = await readJournal(query, () => {});
      const forced = await readJournal(query, () => {}, { backend: "sd-journal" }).then(() => "read", (e) => e.message);
      console.log(JSON.stringify({ backend: stats.backend, delivered: stats.delivered, warnings: stats.warnings, forced }));
    `;
    const child = await execa(
      process.execPath,
      [
        "--import",
        "tsx",
        "--import",
        `data:text/javascript,${encodeURIComponent(register)}`,
        "--input-type=module",
        "-e",
        script,
      ],
      { cwd: path.resolve(".") },
    );
    const result = JSON.parse(child.stdout);
    expect(result).toMatchObject({
      backend: "journalctl",
      delivered: 60,
      forced: "koffi is not available here",
    });
    expect(result.warnings.join("\n")).toMatch(
      /sd-journal is not usable here \(koffi is not available here\): read with journalctl/,
    );
  });

  it("passes on an error thrown by the callback, with either backend", async () => {
    for (const backend of BACKENDS) {
      const read = readJournal(
        { source: { directories: [dirs.big] }, limits: ALL },
        (entry) => {
          if (entry.realtimeUsec >= T0 + 5000 * 1_000_000) throw new Error("callback failed");
        },
        { backend },
      );
      await expect(read).rejects.toThrow("callback failed");
    }
  });

  it("refuses queries that make no sense", async () => {
    const source = { directories: [dirs.services] };
    await expect(
      readJournal({ source, filters: [{ "bad name": "x" }], limits: ALL }, () => {}),
    ).rejects.toThrow(/not a journal field name/);
    await expect(readJournal({ source, limits: { ...ALL, maxEntries: -1 } }, () => {})).rejects.toThrow(
      /maxEntries/,
    );
    await expect(
      readJournal({ source, filtersMatch: "all" as "most", limits: ALL }, () => {}),
    ).rejects.toThrow(/filtersMatch must be "most" or "few"/);
  });
});

describe("journal cursor store", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "imagefs-cursors-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("persists cursors per key atomically, mode 0600, through restarts", async () => {
    const file = path.join(dir, "state", "cursors.json");
    const store = new CursorStore(file);
    expect(await store.load("a")).toBeNull();
    await Promise.all([
      store.save("a", "cursor-a"),
      store.save("b", "cursor-b"),
      store.save("a", "cursor-a2"),
    ]);
    const restarted = new CursorStore(file);
    expect(await restarted.load("a")).toBe("cursor-a2");
    expect(await restarted.load("b")).toBe("cursor-b");
    expect(await restarted.load("constructor")).toBeNull();
    await restarted.save("__proto__", "cursor-p");
    expect(await new CursorStore(file).load("__proto__")).toBe("cursor-p");
    expect(await new CursorStore(file).load("a")).toBe("cursor-a2");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(path.dirname(file))).toEqual(["cursors.json"]); // no temporary file left
  });

  it("reads a missing, corrupt or foreign state file as empty and replaces it on save", async () => {
    for (const content of ["{not json", "[1,2]", '{"cursors": {"a": 5}}', "null", "\u0000\u0001"]) {
      const file = path.join(dir, `corrupt-${Math.random().toString(36).slice(2)}.json`);
      await writeFile(file, content);
      const store = new CursorStore(file);
      expect(await store.load("a")).toBeNull();
      await store.save("a", "fresh");
      expect(await new CursorStore(file).load("a")).toBe("fresh");
    }
    const big = path.join(dir, "huge.json");
    await writeFile(big, `{"cursors": {"a": "${"x".repeat(2 * 1024 * 1024)}"}}`);
    expect(await new CursorStore(big).load("a")).toBeNull();
  });
});

describe("journal directories on a host", () => {
  it("finds /var/log/journal and /run/log/journal under the host root, through symlinks", async () => {
    const tree = await HostTree.create();
    try {
      const host = () => new Host({ root: tree.root, procRoot: tree.procRoot });
      expect(await journalDirectories(host())).toEqual([]);
      await tree.write("/var/log/journal", "a file where the directory should be");
      await tree.mkdir("/var/volatile/log/journal");
      await tree.symlink("/var/volatile", "/run"); // an absolute link resolves inside the root
      expect(await journalDirectories(host())).toEqual([tree.local("/var/volatile/log/journal")]);
      await rm(tree.local("/var/log/journal"));
      await tree.mkdir("/var/log/journal");
      expect(await journalDirectories(host())).toEqual([
        tree.local("/var/log/journal"),
        tree.local("/var/volatile/log/journal"),
      ]);
    } finally {
      await tree.cleanup();
    }
  });
});

/** The entries of the binary-values journal: bytes, text with control characters, long values. */
function binaryEntries(): ExportEntry[] {
  return [
    entryAt(0, [
      ["MESSAGE", "binary"],
      ["BINARY", Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80])],
      ["LATIN1", Buffer.from("caf\xe9", "latin1")],
      ["SURROGATE", Buffer.from([0xed, 0xa0, 0x80])], // an encoded UTF-16 surrogate: not UTF-8
    ]),
    entryAt(1, [
      ["MESSAGE", "line one\nline two"],
      ["ESCAPES", "\x1b[31mred\x1b[0m\ttab"], // valid UTF-8, but journalctl prints it as bytes
      ["UNICODE", "grüße 🚢 ✓"],
      ["REPLACEMENT", "a\uFFFDb"], // a real U+FFFD is text
      ["NUL_TEXT", Buffer.from("a\0b")], // NUL is valid UTF-8; journalctl prints it as bytes
      ["CUT_UTF8", "abcdef🚢"],
      ["REPEATED", "first"],
      ["REPEATED", "second"],
    ]),
    entryAt(2, [
      ["MESSAGE", "long"],
      ["LONG_TEXT", "x".repeat(200_000)], // compressed by journal-remote: exercises the data threshold
      ["LONG_BINARY", longBinary()],
    ]),
  ];
}

function longBinary(): Buffer {
  const b = Buffer.alloc(100_000);
  for (let i = 0; i < b.length; i += 1) b[i] = (i * 7919) & 0xff;
  return b;
}

/**
 * must-gather's shared journal pass (readWindow: one forward read for every excerpt and for the
 * journal source's count) stands for the reads it replaces: each excerpt as readExcerpt reads it
 * (backward from the end, until a line does not fit), and the journal source's facts as its own
 * read over the same window gives them. Real journal files, with entries of crio.service,
 * kubelet.service, systemd about stargz-store.service, the kernel and auditd; some older than the
 * excerpts' window, some older than the source's too.
 */
describe.skipIf(!ready)("must-gather's shared journal pass", () => {
  it("gives the excerpts readExcerpt reads and the facts the journal source reads itself", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "imagefs-window-"));
    try {
      const now = Date.now();
      const ago = (minutes: number, seconds = 0) => new Date(now - minutes * 60_000 + seconds * 1000);
      const entries: ExportEntry[] = [];
      const add = (when: Date, fields: Record<string, ExportValue>) =>
        entries.push(journalEntry(when, { _HOSTNAME: "worker-0", ...fields }));
      const crio = (when: Date, message: string) =>
        add(when, {
          _SYSTEMD_UNIT: "crio.service",
          SYSLOG_IDENTIFIER: "crio",
          _PID: "812",
          MESSAGE: message,
        });
      const kernel = (when: Date, message: string) =>
        add(when, { _TRANSPORT: "kernel", SYSLOG_IDENTIFIER: "kernel", MESSAGE: message });
      const avc =
        'audit: type=1400 audit(1763893000.100:42): avc:  denied  { read } for  pid=4242 comm="sh" name="libc.so.6" scontext=system_u:system_r:container_t:s0 tcontext=system_u:object_r:default_t:s0 tclass=file permissive=0';
      // Older than both windows: neither counted nor excerpted.
      for (let i = 0; i < 5; i++)
        crio(ago(180, i), "can't stat additionallayerstore dir /var/lib/stargz-store/store: old");
      kernel(ago(180, 9), avc);
      // Inside the source's window (2 h), older than the excerpts' (1 h).
      for (let i = 0; i < 6; i++) crio(ago(90, i), `layer not known: sha256:${String(i).repeat(64)}`);
      add(ago(100), {
        _SYSTEMD_UNIT: "init.scope",
        UNIT: "stargz-store.service",
        SYSLOG_IDENTIFIER: "systemd",
        _PID: "1",
        MESSAGE: "stargz-store.service: Main process exited, code=killed, status=9/KILL",
      });
      // Inside both: more crio lines than its excerpt's cap holds, so the excerpt keeps the newest.
      for (let i = 0; i < 40; i++)
        crio(
          ago(30, i * 10),
          i % 2 === 0
            ? `can't stat additionallayerstore dir /var/lib/stargz-store/store: no such file or directory (#${i})`
            : `Pulled image: quay.io/example/app@sha256:${String(i % 10).repeat(64)}`,
        );
      for (let i = 0; i < 6; i++)
        add(ago(20, i * 10), {
          _SYSTEMD_UNIT: "kubelet.service",
          SYSLOG_IDENTIFIER: "kubelet",
          _PID: "1301",
          MESSAGE:
            i % 2 === 0
              ? `relabel failed /var/lib/kubelet/pods/p${i}/volumes: operation not supported`
              : `SyncLoop UPDATE pod p${i}\nsecond line of it`,
        });
      kernel(ago(10), avc);
      kernel(ago(9), "EXT4-fs (vdb1): mounted filesystem with ordered data mode");
      add(ago(8), {
        _TRANSPORT: "audit",
        _AUDIT_TYPE_NAME: "AVC",
        MESSAGE: avc.replace("{ read }", "{ write }"),
      });
      add(ago(7), {
        _SYSTEMD_UNIT: "containerd.service",
        SYSLOG_IDENTIFIER: "containerd",
        MESSAGE: "no one asks",
      });
      add(ago(5), {
        _SYSTEMD_UNIT: "init.scope",
        UNIT: "stargz-store.service",
        SYSLOG_IDENTIFIER: "systemd",
        _PID: "1",
        MESSAGE: "Started stargz-store.service - stargz store.",
      });
      entries.sort((a, b) => a.realtimeUsec - b.realtimeUsec);
      await writeJournalFile(path.join(root, `var/log/journal/${MACHINE_ID}/system.journal`), entries, root);

      const host = new Host({ root });
      const directories = await journalDirectories(host);
      expect(directories).toEqual([path.join(root, "var/log/journal")]);
      // The jobs as must-gather makes them: the usual units and the AVC records, one cap for all.
      const inputs = { sinceMs: now - 60 * 60_000, itemBytes: 2000 } as StepInputs;
      const jobs: [string, ExcerptJob][] = [...USUAL_UNITS.map(unitExcerpt), AVC_EXCERPT].map((spec) => [
        spec.name,
        excerptJob(inputs, directories, spec, 20_000),
      ]);
      const lookbackHours = 2;
      // The source's window as must-gather gives it to the pass (no resume cursor: a time).
      const since = journalStart(undefined, lookbackHours);
      if (since.realtimeUsec === undefined) throw new Error("a lookback window starts at a time");
      const window = await readWindow({
        directories,
        excerpts: jobs,
        tally: { ruleDirs: [], lookbackHours, sinceUsec: since.realtimeUsec },
        deadlineMs: 20_000,
      });

      // Each excerpt as its own read gives it (durationMs aside: each read takes its own time;
      // delivered aside: readExcerpt counts the entries its read delivered, the line that did not
      // fit and entries without "avc:" included, the pass the lines kept. Only a timed-out
      // excerpt's message uses it, and the pass gives no timed-out excerpt.)
      expect([...window.excerpts.keys()]).toEqual(jobs.map(([name]) => name));
      const own = new Map<string, Excerpt>();
      for (const [name, job] of jobs) own.set(name, await readExcerpt(job));
      const comparable = ({ text, truncated, timedOut, error }: Excerpt) => ({
        text,
        truncated,
        timedOut,
        error,
      });
      for (const [name] of jobs)
        expect(comparable(window.excerpts.get(name)!), name).toEqual(comparable(own.get(name)!));
      // Not vacuous: the crio excerpt is cut to its newest lines, the others are whole.
      const crioText = own.get("journal/crio.service.log")!;
      expect(crioText.truncated).toBe(true);
      expect(crioText.text.split("\n").at(-2)).toMatch(
        / worker-0 crio\[812\]: Pulled image: quay\.io\/example\/app@sha256:9{64}$/,
      );
      expect(crioText.text).not.toContain("layer not known");
      expect(
        own
          .get("journal/kubelet.service.log")!
          .text.split("\n")
          .filter((l) => l.includes("relabel failed")),
      ).toHaveLength(3);
      expect(own.get("journal/stargz-store.service.log")!.text).toContain("Started stargz-store.service");
      expect(own.get("journal/stargz-store.service.log")!.text).not.toContain("Main process exited");
      expect(own.get("journal/audit-avc.log")!.text.split("\n").filter(Boolean)).toHaveLength(2);
      for (const [name, excerpt] of own)
        if (name !== "journal/crio.service.log") expect(excerpt.truncated, name).toBe(false);

      // The source's facts: from the pass (as the source hands them on) and from its own read.
      if (!window.facts) throw new Error("the shared pass gave no facts");
      const context = (journalFacts?: Promise<JournalFacts | undefined>) => ({
        host,
        options: collectOptions({
          journalLookbackHours: lookbackHours,
          ...(journalFacts ? { journalFacts } : {}),
        }),
        result: () => Promise.reject(new Error("unused")),
      });
      const shared = (await journalSource.collect(context(Promise.resolve(window.facts)))) as JournalFacts;
      const itself = (await journalSource.collect(context())) as JournalFacts;
      expect(itself).not.toBeInstanceOf(Absent);
      expect(shared).toEqual(itself);
      expect(window.facts.read.delivered).toBe(itself.read.delivered);
      expect(window.facts.counts).toEqual(itself.counts);
      // Not vacuous: the window's entries are counted, those older than it are not.
      const counted: Record<string, number> = {};
      for (const c of itself.counts)
        counted[`${c.pack}/${c.reason}`] = (counted[`${c.pack}/${c.reason}`] ?? 0) + c.count;
      expect(counted).toEqual({
        "crio-layer-store/LayerStoreDirMissing": 20,
        "crio-storage/LayerUnknown": 6,
        "selinux-relabel/RelabelNotSupported": 3,
        "stargz-store-service/ServiceCrashed": 1,
        "stargz-store-service/ServiceStarted": 1,
      });
      expect(itself.cursor).not.toBeNull();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("sd-journal memory views", () => {
  it("reads any address through one 4 GiB view around the first, in windows below 2^31", async () => {
    const koffi = (await import("koffi")).default;
    const views: number[] = [];
    const memory = new Memory((base, length) => {
      views.push(length);
      return koffi.view(base, length);
    });
    // Real memory with known bytes, read through the views as libsystemd's pointers are.
    const block = koffi.alloc("uint8_t", 64 * 1024);
    const address = Number(block);
    const bytes = new Uint8Array(koffi.view(block, 64 * 1024));
    for (let i = 0; i < bytes.length; i += 1) bytes[i] = i % 251;
    for (const at of [0, 1, 4095, 40_000, 64 * 1024 - 16]) {
      const offset = memory.at(address + at, 16);
      expect(offset).toBeLessThan(2 ** 31);
      expect([...memory.buf.subarray(offset, offset + 16)]).toEqual(
        Array.from({ length: 16 }, (_, i) => (at + i) % 251),
      );
    }
    koffi.free(block);
    // Where libsystemd maps journal files (not read here: only where the windows fall), pointers
    // up to 2 GiB on either side of the first need no second view: V8 counts each view as
    // external memory and collects the heap for it.
    const mapped = 0x7f00_0000_0000;
    const far = new Memory((base, length) => {
      views.push(length);
      return koffi.view(base, length);
    });
    views.length = 0;
    for (const delta of [0, -(2 ** 31) + 16, -(2 ** 30) - 7, 2 ** 30 + 5, 2 ** 31 - 32]) {
      const offset = far.at(mapped + delta, 16);
      expect(offset).toBeGreaterThanOrEqual(0);
      expect(offset + 16).toBeLessThanOrEqual(far.buf.length);
      expect(far.buf.length).toBeLessThanOrEqual(2 ** 31);
    }
    expect(views).toEqual([2 ** 32]);
    far.at(mapped + 2 ** 33, 16);
    expect(views).toEqual([2 ** 32, 2 ** 32]);
  });
});

describe("journal excerpt times", () => {
  it("writes an entry's time as toISOString does, for any time a Date can hold", () => {
    // A seeded generator: a failure shows the same values again.
    let seed = 0x9e3779b9;
    const random = () => {
      seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      return seed / 2 ** 32;
    };
    const year0 = -62167219200000;
    const year10000 = 253402300800000;
    const dateLimit = 8.64e15;
    expect(new Date(year0).toISOString()).toBe("0000-01-01T00:00:00.000Z");
    expect(new Date(year10000).toISOString()).toBe("+010000-01-01T00:00:00.000Z");
    const values: number[] = [];
    const from = Date.UTC(1970, 0, 1);
    const to = Date.UTC(2100, 0, 1);
    for (let i = 0; i < 20_000; i++) values.push(Math.floor(from + random() * (to - from)));
    // Several entries a minute, in order, as a journal gives them (the cached minute is reused).
    let at = Date.UTC(2026, 10, 23, 16, 40, 58, 990);
    for (let i = 0; i < 2000; i++) {
      at += Math.floor(random() * 40);
      values.push(at);
    }
    // Minute, second and millisecond boundaries, and the day, month and year around them.
    const deltas = [
      -60_001, -60_000, -59_999, -1001, -1000, -999, -11, -10, -9, -2, -1, 0, 1, 9, 10, 99, 100,
    ];
    for (const base of [0, Date.UTC(2026, 11, 31, 23, 59), Date.UTC(2024, 1, 29), Date.UTC(2000, 0, 1)])
      for (const delta of [...deltas, 999, 1000, 59_999, 60_000]) values.push(base + delta);
    // The edges of years 0000 and 9999, where toISOString's fixed width ends, and beyond them.
    for (const edge of [year0, year10000])
      for (const delta of [-60_001, -60_000, -1001, -1000, -1, 0, 1, 999, 1000, 60_000])
        values.push(edge + delta);
    for (let i = 0; i < 2000; i++) values.push(Math.floor((random() * 2 - 1) * (dateLimit - 1e6)));
    values.push(dateLimit - 1e6, -(dateLimit - 1e6), -1, -999, -1000, -60_000, -86_400_000);
    for (const ms of values) {
      for (const usec of [ms * 1000 + Math.floor(random() * 1000), ms * 1000]) {
        // Past 2**53 a time in microseconds is not exact: the millisecond isoTime takes is compared.
        const expected = new Date(Math.floor(usec / 1000)).toISOString();
        if (Number.isSafeInteger(usec)) expect(expected).toBe(new Date(ms).toISOString());
        expect(isoTime(usec), `${usec} µs`).toBe(expected);
      }
    }
  });
});
