/**
 * One journal entry. Field values are strings when they are valid UTF-8, else the raw bytes. A
 * field an entry carries more than once (rare: journald writes each one once) keeps its first
 * value, in the order libsystemd enumerates them, with either backend.
 */
export interface JournalEntry {
  cursor: string;
  /** Microseconds since the epoch (__REALTIME_TIMESTAMP); fits a double for the next 250 years. */
  realtimeUsec: number;
  fields: Record<string, string | Buffer>;
}

/**
 * Which entries to read. Inside one filter every field must match (AND) and a field given several
 * values matches any of them (OR); several filters are alternatives (OR), as journalctl's "+".
 */
export type JournalFilter = Record<string, string | string[]>;

export interface JournalLimits {
  /** Entries delivered per read; past it the rest is counted as dropped. */
  maxEntries: number;
  /** Bytes of field data delivered per read; past it the rest is counted as dropped. */
  maxBytes: number;
  /**
   * A longer field value is cut to this many bytes (and counted in truncatedFields). A cut never
   * splits a UTF-8 character: a value that is text up to the cut stays a (shorter) string.
   * Values are cut at 512 MiB whatever this says.
   */
  maxFieldBytes: number;
  /**
   * Past maxEntries/maxBytes, at most this many further matching entries are counted as dropped
   * (each costs one step through the journal, none is decoded); default 100,000. When the cap is
   * hit the count is a lower bound and `droppedCapped` is set.
   */
  maxDroppedCount?: number;
}

export interface JournalQuery {
  /** Local paths (already resolved under the host root): journal directories, or single files. */
  source: { directories: string[] } | { files: string[] };
  filters?: JournalFilter[];
  /**
   * "most": the filters match most entries of the window (the units that write most of a node's
   * journal). Read forward with sd-journal, each entry is then tested here rather than with
   * libsystemd's matches, which look every match up again on each step, until too few entries
   * turn out to match (collector/journal/scan.ts). "few" (the default): libsystemd's matches.
   */
  filtersMatch?: "most" | "few";
  /** Start after this cursor (a persisted position), or at this time (a lookback); else at the start. */
  since?: { afterCursor: string } | { realtimeUsec: number };
  /**
   * "forward" (the default): oldest entry first. "backward": newest first, from the end of the
   * journal back to `since.realtimeUsec` (or its start): the first older entry ends the read, as
   * it ends `journalctl --reverse --since`. A reader that wants a log's newest lines stops when it
   * has them, instead of decoding the whole window to keep its end. Not with `afterCursor`.
   */
  direction?: "forward" | "backward";
  /**
   * Only these fields are decoded and delivered (and counted in `bytes`); the others are skipped
   * unread. Default: every field.
   */
  fields?: string[];
  /**
   * "each" (the default): every entry carries its cursor. "none": entries carry an empty cursor
   * and `lastCursor` stays null, for a reader that needs no cursor or only the last of some
   * entries (findCursor): with sd-journal that saves a call that formats a string per entry.
   */
  cursors?: "each" | "none";
  limits: JournalLimits;
}

/** What the reader hands each entry to; calling `stop` ends the read after this entry (`stopped`). */
export type JournalEntryHandler = (entry: JournalEntry, stop: () => void) => void;

export interface JournalReadStats {
  backend: "sd-journal" | "journalctl";
  /** Entries delivered to the callback. */
  delivered: number;
  /** Bytes of field data delivered: "NAME=value" of every field, values as delivered (after cuts). */
  bytes: number;
  /** Entries that matched but were not delivered because a limit was reached (counted, not read). */
  dropped: number;
  /** True when counting dropped entries stopped at limits.maxDroppedCount: `dropped` is a lower bound. */
  droppedCapped: boolean;
  truncatedFields: number;
  /**
   * Cursor of the last delivered entry: where the next read should continue (dropped entries are
   * then read again). Null when nothing was delivered: keep the cursor you had.
   */
  lastCursor: string | null;
  /** True when the read stopped at its deadline (or was aborted) before reaching the end. */
  timedOut: boolean;
  /** True when the callback ended the read (it called `stop`). */
  stopped: boolean;
  /** Problems met on the way (a corrupt file, a cursor that no longer exists); reading went on. */
  warnings: string[];
}
