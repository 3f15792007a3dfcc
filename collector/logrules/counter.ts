import type { JournalEntry } from "../journal/types.js";
import { byCodePoint } from "../model/order.js";
import { classify, fieldText, type LogPack, logMessage } from "./pack.js";

/** How often one reason was seen from one unit: what log-based findings and metrics are built on. */
export interface ReasonCount {
  pack: string;
  reason: string;
  /** The systemd unit, else the syslog identifier, of the entries. */
  unit: string;
  count: number;
  firstSeen: string;
  lastSeen: string;
  /** The MESSAGE of the most recent entry (logrus JSON as `msg: error`), cut to a few hundred characters. */
  example: string;
}

const EXAMPLE_CHARS = 300;
const HOUR_MS = 3600_000;
/** Hourly buckets kept per reason (a week): a longer --lookback keeps the newest ones. */
export const MAX_TIMELINE_HOURS = 168;

/** Entries of one (pack, reason), all units together, per hour: what a chart over time draws. */
export interface ReasonTimeline {
  pack: string;
  reason: string;
  /** Hours with at least one entry, oldest first; `start` is the hour's start (UTC, ISO). */
  hours: { start: string; count: number }[];
  /** Entries in hours older than the newest MAX_TIMELINE_HOURS, which are not kept. */
  dropped: number;
}

/**
 * The unit an entry is about: UNIT when systemd logs about a unit (its own _SYSTEMD_UNIT is
 * init.scope), else the sender's unit, else its identifier.
 */
function unitOf(entry: JournalEntry): string {
  return (
    fieldText(entry, "UNIT") ??
    fieldText(entry, "_SYSTEMD_UNIT") ??
    fieldText(entry, "SYSLOG_IDENTIFIER") ??
    "unknown"
  );
}

/** Classifies entries with packs and counts them per (pack, unit, reason), in constant memory per key. */
export class ReasonCounter {
  readonly #packs: LogPack[];
  readonly #counts = new Map<string, ReasonCount>();
  /** Per (pack, reason): hour index (ms since the epoch / 1 h) -> entries, and entries dropped. */
  readonly #hours = new Map<
    string,
    { pack: string; reason: string; hours: Map<number, number>; dropped: number }
  >();

  constructor(packs: LogPack[]) {
    this.#packs = packs;
  }

  /** The journal fields add() looks at: a read for this counter needs to decode only these. */
  get fields(): string[] {
    const fields = new Set(["UNIT", "_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER", "MESSAGE"]);
    for (const pack of this.#packs) {
      for (const filter of pack.select) for (const field of Object.keys(filter)) fields.add(field);
      for (const rule of pack.rules) fields.add(rule.field);
    }
    return [...fields];
  }

  /** Returns true when some pack classified the entry. */
  add(entry: JournalEntry): boolean {
    let matched = false;
    for (const pack of this.#packs) {
      const rule = classify(pack, entry);
      if (!rule) continue;
      matched = true;
      const unit = unitOf(entry);
      const key = `${pack.name}\0${unit}\0${rule.reason}`;
      const seen = new Date(entry.realtimeUsec / 1000).toISOString();
      const example = logMessage(entry).text.slice(0, EXAMPLE_CHARS);
      this.#countHour(pack.name, rule.reason, Math.floor(entry.realtimeUsec / 1000 / HOUR_MS));
      const count = this.#counts.get(key);
      if (!count) {
        this.#counts.set(key, {
          pack: pack.name,
          reason: rule.reason,
          unit,
          count: 1,
          firstSeen: seen,
          lastSeen: seen,
          example,
        });
        continue;
      }
      count.count += 1;
      if (seen < count.firstSeen) count.firstSeen = seen;
      if (seen >= count.lastSeen) {
        count.lastSeen = seen;
        count.example = example;
      }
    }
    return matched;
  }

  #countHour(pack: string, reason: string, hour: number): void {
    const key = `${pack}\0${reason}`;
    let series = this.#hours.get(key);
    if (!series) {
      series = { pack, reason, hours: new Map(), dropped: 0 };
      this.#hours.set(key, series);
    }
    series.hours.set(hour, (series.hours.get(hour) ?? 0) + 1);
    if (series.hours.size <= MAX_TIMELINE_HOURS) return;
    const oldest = Math.min(...series.hours.keys());
    series.dropped += series.hours.get(oldest)!;
    series.hours.delete(oldest);
  }

  /** Hourly counts per (pack, reason), in the order of `counts()`'s first appearance of each. */
  timeline(): ReasonTimeline[] {
    const order = [...new Set(this.counts().map((c) => `${c.pack}\0${c.reason}`))];
    return order.map((key) => {
      const series = this.#hours.get(key)!;
      return {
        pack: series.pack,
        reason: series.reason,
        hours: [...series.hours.entries()]
          .sort((a, b) => a[0] - b[0])
          .map(([hour, count]) => ({ start: new Date(hour * HOUR_MS).toISOString(), count })),
        dropped: series.dropped,
      };
    });
  }

  counts(): ReasonCount[] {
    return [...this.#counts.values()].sort((a, b) => b.count - a.count || byCodePoint(a.reason, b.reason));
  }
}
