import { describeError } from "../host/root.js";
import { journalDirectories } from "../journal/locate.js";
import { readJournal } from "../journal/reader.js";
import type { JournalFilter, JournalReadStats } from "../journal/types.js";
import { type ReasonCount, ReasonCounter, type ReasonTimeline } from "../logrules/counter.js";
import { BUILTIN_PACK_DIR, loadPacks, type PackError } from "../logrules/pack.js";
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

export const journalSource: SourceDefinition<{ journal: JournalFacts }, "journal"> = {
  name: "journal",
  deadlineMs: 20_000,
  async collect({ host, options }) {
    const local = await journalDirectories(host);
    if (local.length === 0) return new Absent("no journal in /var/log/journal or /run/log/journal");
    const { packs, errors } = await loadPacks([BUILTIN_PACK_DIR, ...options.logRuleDirs]);
    const counter = new ReasonCounter(packs);
    const filters: JournalFilter[] = packs.flatMap((pack) => pack.select);
    let stats: JournalReadStats;
    try {
      stats = await readJournal(
        {
          source: { directories: local },
          filters,
          since: journalStart(options.resume?.journal, options.journalLookbackHours),
          fields: counter.fields,
          limits: { maxEntries: 200_000, maxBytes: 128 * 1024 * 1024, maxFieldBytes: 16 * 1024 },
        },
        (entry) => counter.add(entry),
      );
    } catch (error) {
      throw new Error(`reading the journal failed: ${describeError(error)}`);
    }
    return {
      directories: local.map((dir) => host.root.toHost(dir) ?? dir),
      lookbackHours: options.journalLookbackHours,
      packs: packs.map((p) => p.name),
      packErrors: errors,
      read: {
        backend: stats.backend,
        delivered: stats.delivered,
        bytes: stats.bytes,
        dropped: stats.dropped,
        warnings: stats.warnings,
      },
      counts: counter.counts(),
      timeline: counter.timeline(),
      from: options.resume?.journal ? "cursor" : "lookback",
      cursor: stats.lastCursor ?? options.resume?.journal ?? null,
    };
  },
};
