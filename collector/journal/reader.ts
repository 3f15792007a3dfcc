import { type ReadOptions, ReadSession } from "./session.js";
import type { JournalEntryHandler, JournalQuery, JournalReadStats } from "./types.js";

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
