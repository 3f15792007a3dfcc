import { TIMED_OUT, withinMs } from "../deadline.js";
import { describeError } from "../host/root.js";
import { journalDirectories } from "../journal/locate.js";
import { readJournal } from "../journal/reader.js";
import { DEFAULT_MAX_DROPPED } from "../journal/session.js";
import type { JournalEntry, JournalFilter, JournalReadStats } from "../journal/types.js";
import { type ReasonCount, ReasonCounter, type ReasonTimeline } from "../logrules/counter.js";
import { BUILTIN_PACK_DIR, type LogPack, loadPacks, type PackError } from "../logrules/pack.js";
import { Absent, journalStart, type SourceDefinition } from "./source.js";

/** Journal entries classified by the log rule packs (built-in and --log-rules), over the lookback. */
export interface JournalFacts {
  /** Host paths of the journal directories read. */
  directories: string[];
  lookbackHours: number;
  packs: string[];
  packErrors: PackError[];
  read: Pick<JournalReadStats, "backend" | "delivered" | "bytes" | "dropped" | "warnings">;
  counts: ReasonCount[];
  /** The same entries per (pack, reason) and hour, for a chart over time (bounded: a week per reason). */
  timeline: ReasonTimeline[];
  /** Counted from the previous cycle's cursor, or over the lookback window. */
  from: "cursor" | "lookback";
  /** Where the next cycle continues. */
  cursor: string | null;
}

/** The source's read limits. */
export const JOURNAL_LIMITS = { maxEntries: 200_000, maxBytes: 128 * 1024 * 1024, maxFieldBytes: 16 * 1024 };

/**
 * What the source counts, fed the entries that match its filters since its start, oldest first.
 * It keeps readJournal's limits itself, so that a read shared with other readers (must-gather's
 * journal pass, which also writes the excerpts) gives the facts the source's own read would:
 * the same entries classified, the same delivered/bytes/dropped and cursor.
 */
export class JournalTally {
  readonly counter: ReasonCounter;
  readonly filters: JournalFilter[];
  readonly fields: string[];
  delivered = 0;
  bytes = 0;
  dropped = 0;
  /** The last entry counted: its cursor is found afterwards when the read fetched none (findCursor). */
  lastEntry: JournalEntry | null = null;

  constructor(readonly packs: LogPack[]) {
    this.counter = new ReasonCounter(packs);
    this.filters = packs.flatMap((pack) => pack.select);
    this.fields = this.counter.fields;
  }

  /** An entry of the source's read (it may carry more fields than the source asked for). */
  offer(entry: JournalEntry): void {
    // What readJournal counts in `bytes`: "NAME=value" of the fields asked for, as delivered.
    let bytes = 0;
    for (const field of this.fields) {
      const value = entry.fields[field];
      if (value === undefined) continue;
      bytes += field.length + 1 + (typeof value === "string" ? Buffer.byteLength(value) : value.length);
    }
    if (
      this.dropped > 0 ||
      this.delivered >= JOURNAL_LIMITS.maxEntries ||
      this.bytes + bytes > JOURNAL_LIMITS.maxBytes
    ) {
      // Past a limit readJournal only counts what follows.
      if (this.dropped < DEFAULT_MAX_DROPPED) this.dropped += 1;
      return;
    }
    this.delivered += 1;
    this.bytes += bytes;
    this.lastEntry = entry;
    this.counter.add(entry);
  }
}

/** The facts of a read, whoever did it. */
export function journalFactsOf(
  directories: string[],
  lookbackHours: number,
  packs: LogPack[],
  errors: PackError[],
  read: JournalFacts["read"],
  counter: ReasonCounter,
  lastCursor: string | null,
  resumeCursor: string | null | undefined,
): JournalFacts {
  return {
    directories,
    lookbackHours,
    packs: packs.map((p) => p.name),
    packErrors: errors,
    read,
    counts: counter.counts(),
    timeline: counter.timeline(),
    from: resumeCursor ? "cursor" : "lookback",
    cursor: lastCursor ?? resumeCursor ?? null,
  };
}

export const journalSource: SourceDefinition<{ journal: JournalFacts }, "journal"> = {
  name: "journal",
  deadlineMs: 20_000,
  async collect({ host, options }) {
    const local = await journalDirectories(host);
    if (local.length === 0) return new Absent("no journal in /var/log/journal or /run/log/journal");
    // must-gather's shared pass, if its facts come within half the deadline: past that the source
    // reads for itself, with the other half left, rather than time out waiting.
    const shared = options.journalFacts && (await withinMs(options.journalFacts, this.deadlineMs / 2));
    if (shared && shared !== TIMED_OUT)
      return { ...shared, directories: local.map((dir) => host.root.toHost(dir) ?? dir) };
    const { packs, errors } = await loadPacks([BUILTIN_PACK_DIR, ...options.logRuleDirs]);
    const counter = new ReasonCounter(packs);
    const filters: JournalFilter[] = packs.flatMap((pack) => pack.select);
    let stats: JournalReadStats;
    try {
      stats = await readJournal(
        {
          source: { directories: local },
          filters,
          // The packs select CRI-O's, the kubelet's and the layer store's entries: most of a node's.
          filtersMatch: "most",
          since: journalStart(options.resume?.journal, options.journalLookbackHours),
          fields: counter.fields,
          limits: JOURNAL_LIMITS,
        },
        (entry) => counter.add(entry),
      );
    } catch (error) {
      throw new Error(`reading the journal failed: ${describeError(error)}`);
    }
    return journalFactsOf(
      local.map((dir) => host.root.toHost(dir) ?? dir),
      options.journalLookbackHours,
      packs,
      errors,
      {
        backend: stats.backend,
        delivered: stats.delivered,
        bytes: stats.bytes,
        dropped: stats.dropped,
        warnings: stats.warnings,
      },
      counter,
      stats.lastCursor,
      options.resume?.journal,
    );
  },
};
