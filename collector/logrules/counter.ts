import type { JournalEntry } from "../journal/types.js";
import { byCodePoint } from "../model/order.js";
import { classify, fieldText, type LogPack } from "./pack.js";

/** How often one reason was seen from one unit: what log-based findings and metrics are built on. */
export interface ReasonCount {
  pack: string;
  reason: string;
  /** The systemd unit, else the syslog identifier, of the entries. */
  unit: string;
  count: number;
  firstSeen: string;
  lastSeen: string;
  /** The MESSAGE of the most recent entry, cut to a few hundred characters. */
  example: string;
}

const EXAMPLE_CHARS = 300;

/** Classifies entries with packs and counts them per (pack, unit, reason), in constant memory per key. */
export class ReasonCounter {
  readonly #packs: LogPack[];
  readonly #counts = new Map<string, ReasonCount>();

  constructor(packs: LogPack[]) {
    this.#packs = packs;
  }

  /** Returns true when some pack classified the entry. */
  add(entry: JournalEntry): boolean {
    let matched = false;
    for (const pack of this.#packs) {
      const rule = classify(pack, entry);
      if (!rule) continue;
      matched = true;
      const unit = fieldText(entry, "_SYSTEMD_UNIT") ?? fieldText(entry, "SYSLOG_IDENTIFIER") ?? "unknown";
      const key = `${pack.name}\0${unit}\0${rule.reason}`;
      const seen = new Date(entry.realtimeUsec / 1000).toISOString();
      const example = (fieldText(entry, "MESSAGE") ?? "").slice(0, EXAMPLE_CHARS);
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

  counts(): ReasonCount[] {
    return [...this.#counts.values()].sort((a, b) => b.count - a.count || byCodePoint(a.reason, b.reason));
  }
}
