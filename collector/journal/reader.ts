import { type ReadOptions, ReadSession } from "./session.js";
import type { JournalEntry, JournalEntryHandler, JournalQuery, JournalReadStats } from "./types.js";

export type JournalBackend = "auto" | "sd-journal" | "journalctl";

export interface ReadJournalOptions extends ReadOptions {
  /** "auto" (default): libsystemd's sd-journal when libsystemd.so.0 loads, else journalctl. */
  backend?: JournalBackend;
}

/**
 * Reads journal entries one at a time into `onEntry`, never holding them: filters, position,
 * direction and fields from the query, limits past which matching entries are only counted
 * (`dropped`), a deadline after which it stops (`timedOut`); `onEntry` may end the read by
 * calling its `stop` argument (`stopped`). It yields to the event loop every 1024 entries, so other
 * deadlines fire while it runs. A corrupt or truncated journal file never makes it throw: what
 * libsystemd (or journalctl) skips is skipped, and said in `warnings`. It throws for a query that
 * makes no sense (a field name journald would refuse, a negative limit), and when it has no way
 * to read a journal at all (neither libsystemd nor journalctl is there, or the requested one isn't).
 *
 * koffi and execa are loaded on first use, not when this module is imported.
 */
export async function readJournal(
  query: JournalQuery,
  onEntry: JournalEntryHandler,
  options: ReadJournalOptions = {},
): Promise<JournalReadStats> {
  const requested = options.backend ?? "auto";
  const session = new ReadSession(
    query,
    onEntry,
    requested === "journalctl" ? "journalctl" : "sd-journal",
    options,
  );
  let useSdJournal = requested !== "journalctl";
  if (useSdJournal) {
    const { loadSdJournal } = await import("./sdjournal.js");
    try {
      await loadSdJournal();
    } catch (error) {
      if (requested === "sd-journal") throw error;
      useSdJournal = false;
      session.stats.backend = "journalctl";
      session.warn(
        `libsystemd's sd-journal is not usable here (${(error as Error).message}): read with journalctl`,
      );
    }
  }
  if (session.matchesNothing) return session.finish();
  await session.prepareFiles(query.source);
  if (useSdJournal) {
    const { readWithSdJournal } = await import("./sdjournal.js");
    await readWithSdJournal(session);
  } else {
    const { readWithJournalctl } = await import("./journalctl.js");
    await readWithJournalctl(session);
  }
  return session.finish();
}

/** Entries newer than the one looked for that findCursor steps over (appended since) before it gives up. */
const FIND_CURSOR_SKIP = 10_000;

/**
 * The cursor of `entry`, the last entry a forward read of `query` delivered when it asked for no
 * cursors (`cursors: "none"`): read backward from the end with the same filters, fields and
 * start, the first entry with its time and the same fields. Entries appended since are stepped
 * over (a newer time); null when the entry is not found that way (the journal changed under the
 * read, or the clock went back), or the read fails: the caller then cannot tell where it stopped.
 */
export async function findCursor(
  query: Omit<JournalQuery, "direction" | "cursors">,
  entry: JournalEntry,
  options: ReadJournalOptions = {},
): Promise<string | null> {
  let found: string | null = null;
  let skipped = 0;
  try {
    await readJournal(
      { ...query, direction: "backward", cursors: "each" },
      (candidate, stop) => {
        if (candidate.realtimeUsec > entry.realtimeUsec && ++skipped <= FIND_CURSOR_SKIP) return;
        if (candidate.realtimeUsec === entry.realtimeUsec && sameFields(candidate.fields, entry.fields))
          found = candidate.cursor;
        stop();
      },
      options,
    );
  } catch {
    return null;
  }
  return found;
}

function sameFields(a: JournalEntry["fields"], b: JournalEntry["fields"]): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    const x = a[key];
    const y = b[key];
    if (typeof x === "string" || typeof y === "string") {
      if (x !== y) return false;
    } else if (y === undefined || !x!.equals(y)) return false;
  }
  return true;
}
