import { Worker } from "node:worker_threads";
import { describeError } from "../host/root.js";
import { findCursor, readJournal } from "../journal/reader.js";
import type { JournalEntry, JournalFilter } from "../journal/types.js";
import { fieldText, filterTest, type LogPack, type PackError } from "../logrules/pack.js";
import type { JournalFacts } from "../sources/journal.js";
import { type AheadWorker, endJournalWorker } from "./journal-worker-ahead.js";
import type { RedactionCount } from "./redact.js";

/**
 * A journal excerpt of the bundle (journal/<unit>.log, journal/audit-avc.log): the newest lines of
 * the window that fit in the item's cap, oldest first, as journalctl's short-iso-precise prints
 * them. The journal is read backward, from its end, and the read ends at the first line that does
 * not fit: a busy unit costs the cap's worth of entries, not the whole window's.
 *
 * must-gather reads the excerpts it knows of from the start (the usual units, the AVC records) in
 * a worker thread (ExcerptPrefetch), on another core than the snapshot's collection; what the
 * worker could not read is read in this thread when its step comes.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
/** The excerpts' read limits. */
const EXCERPT_LIMITS = { maxEntries: 1_000_000, maxBytes: 512 * MiB, maxFieldBytes: 16 * KiB };

export interface ExcerptJob {
  /** Local paths of the journal directories. */
  directories: string[];
  filters: JournalFilter[];
  /** Start of the window, in ms since the epoch. */
  sinceMs: number;
  /** The item's cap, in bytes of text. */
  maxBytes: number;
  deadlineMs: number;
  /** Keep only the entries whose MESSAGE contains this. */
  messageIncludes?: string;
}

export interface Excerpt {
  text: string;
  /** Lines older than those kept were left out (the cap, or the read's own limits). */
  truncated: boolean;
  timedOut: boolean;
  /** Entries read. */
  delivered: number;
  durationMs: number;
  error?: string;
}

/** The fields journalLine prints: the only ones an excerpt decodes. */
const LINE_FIELDS = ["_HOSTNAME", "SYSLOG_IDENTIFIER", "_COMM", "_PID", "MESSAGE"];

/** The last minute's ISO text ("2026-11-23T16:41:"): entries come many to a minute. */
let isoMinute = Number.NaN;
let isoPrefix = "";

/** An entry's time as toISOString gives it, the date, hour and minute formatted once per minute. */
export function isoTime(realtimeUsec: number): string {
  const ms = Math.floor(realtimeUsec / 1000);
  // Outside years 0000-9999 toISOString writes a sign and six digits: no fixed-width prefix.
  if (ms < -62167219200000 || ms >= 253402300800000) return new Date(ms).toISOString();
  const minute = Math.floor(ms / 60_000);
  if (minute !== isoMinute) {
    isoMinute = minute;
    isoPrefix = new Date(minute * 60_000).toISOString().slice(0, 17);
  }
  const inMinute = ms - minute * 60_000;
  const second = Math.floor(inMinute / 1000);
  const milli = inMinute - second * 1000;
  return `${isoPrefix}${second < 10 ? "0" : ""}${second}.${milli < 10 ? "00" : milli < 100 ? "0" : ""}${milli}Z`;
}

/** journalctl's short-iso-precise format: time host identifier[pid]: message. */
function journalLine(entry: JournalEntry): string {
  const time = isoTime(entry.realtimeUsec);
  const identifier = fieldText(entry, "SYSLOG_IDENTIFIER") ?? fieldText(entry, "_COMM") ?? "-";
  const pid = fieldText(entry, "_PID");
  const raw = fieldText(entry, "MESSAGE") ?? "";
  const message = raw.includes("\n") ? raw.replace(/\n/g, "\n    ") : raw;
  return `${time} ${fieldText(entry, "_HOSTNAME") ?? "-"} ${identifier}${pid ? `[${pid}]` : ""}: ${message}`;
}

export async function readExcerpt(job: ExcerptJob, signal?: AbortSignal): Promise<Excerpt> {
  const started = performance.now();
  const newestFirst: string[] = [];
  let bytes = 0;
  let full = false;
  const text = () => (newestFirst.length === 0 ? "" : `${newestFirst.toReversed().join("\n")}\n`);
  const done = (rest: Omit<Excerpt, "text" | "durationMs">): Excerpt => ({
    text: text(),
    durationMs: Math.round(performance.now() - started),
    ...rest,
  });
  try {
    const stats = await readJournal(
      {
        source: { directories: job.directories },
        filters: job.filters,
        since: { realtimeUsec: job.sinceMs * 1000 },
        direction: "backward",
        fields: LINE_FIELDS,
        limits: EXCERPT_LIMITS,
      },
      (entry, stop) => {
        if (job.messageIncludes !== undefined && !fieldText(entry, "MESSAGE")?.includes(job.messageIncludes))
          return;
        const line = journalLine(entry);
        const size = Buffer.byteLength(line) + 1;
        if (bytes + size > job.maxBytes) {
          full = true;
          stop();
          return;
        }
        newestFirst.push(line);
        bytes += size;
      },
      { deadlineMs: job.deadlineMs, signal },
    );
    return done({
      truncated: full || stats.dropped > 0,
      timedOut: stats.timedOut,
      delivered: stats.delivered,
    });
  } catch (error) {
    return done({ truncated: false, timedOut: false, delivered: 0, error: describeError(error) });
  }
}

/**
 * An excerpt's text masked (Redactor.text without obfuscation, under the excerpt's name) and what
 * was masked, as the bundle entry's bytes and their hash: the worker does it when asked, after it
 * sent every excerpt as read, so that must-gather's thread need neither do it nor wait for it
 * before it needs the entry. Then it compresses each (ExcerptPrefetch.gzip).
 */
export interface MaskedExcerpt {
  /** The masked text as UTF-8. */
  bytes: Uint8Array;
  /** sha256 of `bytes`, hex. */
  sha256: string;
  counts: RedactionCount[];
}

/** What loadPacks gives. */
export interface LoadedPacks {
  packs: LogPack[];
  errors: PackError[];
}

/**
 * The journal source's part of a shared pass: its inputs. The worker parses the packs itself: a
 * worker started ahead parses the built-in ones while must-gather gets its job ready, so neither
 * thread waits for the other (the main thread parsing them for the worker held the read back
 * 40-90 ms).
 */
export interface TallyJob {
  ruleDirs: string[];
  lookbackHours: number;
  /** The source's window start, in µs since the epoch. */
  sinceUsec: number;
}

export interface WindowJob {
  directories: string[];
  excerpts: [name: string, job: ExcerptJob][];
  tally?: TallyJob;
  deadlineMs: number;
}

export interface WindowResult {
  /** One per excerpt of the job; none when the pass cannot stand for the excerpts' own reads. */
  excerpts: Map<string, Excerpt>;
  /** The journal source's facts (directories as local paths), when asked for and usable. */
  facts?: JournalFacts;
}

/** The newest lines of one excerpt that fit its cap, kept while reading forward. */
class NewestLines {
  readonly lines: string[] = [];
  readonly sizes: number[] = [];
  #head = 0;
  bytes = 0;
  cut = false;
  constructor(readonly maxBytes: number) {}
  push(line: string): void {
    const size = Buffer.byteLength(line) + 1;
    this.lines.push(line);
    this.sizes.push(size);
    this.bytes += size;
    while (this.bytes > this.maxBytes) {
      this.bytes -= this.sizes[this.#head]!;
      this.lines[this.#head] = "";
      this.#head += 1;
      this.cut = true;
    }
  }
  get kept(): number {
    return this.lines.length - this.#head;
  }
  text(): string {
    const kept = this.lines.slice(this.#head);
    return kept.length === 0 ? "" : `${kept.join("\n")}\n`;
  }
}

/**
 * One forward pass over the journal window for every excerpt and for the journal source's count:
 * must-gather otherwise reads the same 24 hours twice, once to classify every entry and once, per
 * unit, from the end for the newest lines. The pass reads the union of the filters and fields
 * from the earliest start, and hands each entry to the readers whose filters and window it falls
 * in: the source's tally (JournalTally, which keeps the source's limits) and each excerpt's newest
 * lines within its cap (what reading backward until a line does not fit keeps). When the pass
 * cannot stand for the separate reads — it hit its own limits or deadline, failed, or the
 * excerpts' field cap differs from the source's — it returns no excerpts and no facts, and the
 * readers read for themselves.
 */
export async function readWindow(
  job: WindowJob,
  signal?: AbortSignal,
  /** The packs of job.tally.ruleDirs as loaded by the caller, else loaded here. */
  loadedPacks?: Promise<LoadedPacks>,
): Promise<WindowResult> {
  const started = performance.now();
  const none: WindowResult = { excerpts: new Map() };
  const { JOURNAL_LIMITS, JournalTally, journalFactsOf } = await import("../sources/journal.js");
  let tally: InstanceType<typeof JournalTally> | undefined;
  let packErrors: import("../logrules/pack.js").PackError[] = [];
  const filters: JournalFilter[] = [];
  const fields = new Set(LINE_FIELDS);
  let sinceUsec = Number.POSITIVE_INFINITY;
  if (job.tally) {
    if (JOURNAL_LIMITS.maxFieldBytes !== EXCERPT_LIMITS.maxFieldBytes) return none;
    const loaded = await (loadedPacks ??
      import("../logrules/pack.js").then(({ BUILTIN_PACK_DIR, loadPacks }) =>
        loadPacks([BUILTIN_PACK_DIR, ...job.tally!.ruleDirs]),
      ));
    packErrors = loaded.errors;
    tally = new JournalTally(loaded.packs);
    // No filter (no pack) would mean every entry: not a pass worth sharing.
    if (tally.filters.length === 0) return none;
    filters.push(...tally.filters);
    for (const field of tally.fields) fields.add(field);
    for (const filter of tally.filters) for (const field in filter) fields.add(field);
    sinceUsec = Math.min(sinceUsec, job.tally.sinceUsec);
  }
  const excerpts = job.excerpts.map(([name, excerpt]) => ({
    name,
    excerpt,
    selects: filterTest(excerpt.filters),
    lines: new NewestLines(excerpt.maxBytes),
  }));
  for (const { excerpt } of excerpts) {
    if (excerpt.filters.length === 0) return none; // every entry: not a pass worth sharing
    filters.push(...excerpt.filters);
    for (const filter of excerpt.filters) for (const field in filter) fields.add(field);
    sinceUsec = Math.min(sinceUsec, excerpt.sinceMs * 1000);
  }
  if (!Number.isFinite(sinceUsec)) return none;
  try {
    const tallySince = job.tally?.sinceUsec ?? 0;
    const tallySelects = filterTest(tally?.filters ?? []);
    const stats = await readJournal(
      {
        source: { directories: job.directories },
        filters,
        // The usual units and the packs' write most of a node's journal.
        filtersMatch: "most",
        since: { realtimeUsec: sinceUsec },
        fields: [...fields],
        // The tally's last cursor is looked up once the pass is over (findCursor).
        cursors: "none",
        limits: EXCERPT_LIMITS,
      },
      (entry) => {
        if (tally && entry.realtimeUsec >= tallySince && tallySelects(entry)) tally.offer(entry);
        let line: string | undefined;
        for (const { excerpt, lines, selects } of excerpts) {
          if (entry.realtimeUsec < excerpt.sinceMs * 1000 || !selects(entry)) continue;
          if (
            excerpt.messageIncludes !== undefined &&
            !fieldText(entry, "MESSAGE")?.includes(excerpt.messageIncludes)
          )
            continue;
          line ??= journalLine(entry);
          lines.push(line);
        }
      },
      { deadlineMs: job.deadlineMs, signal },
    );
    if (stats.timedOut || stats.dropped > 0 || stats.stopped) return none;
    const durationMs = Math.round(performance.now() - started);
    const result: WindowResult = {
      excerpts: new Map(
        excerpts.map(({ name, lines }) => [
          name,
          { text: lines.text(), truncated: lines.cut, timedOut: false, delivered: lines.kept, durationMs },
        ]),
      ),
    };
    let lastCursor: string | null = null;
    if (tally?.lastEntry) {
      lastCursor = await findCursor(
        {
          source: { directories: job.directories },
          filters: tally.filters,
          since: { realtimeUsec: tallySince },
          fields: [...fields],
          limits: EXCERPT_LIMITS,
        },
        tally.lastEntry,
        { deadlineMs: Math.max(1, job.deadlineMs - (performance.now() - started)), signal },
      );
      // The excerpts stand; the source reads its facts for itself.
      if (lastCursor === null) return result;
    }
    if (tally && job.tally)
      result.facts = journalFactsOf(
        job.directories,
        job.tally.lookbackHours,
        tally.packs,
        packErrors,
        {
          backend: stats.backend,
          delivered: tally.delivered,
          bytes: tally.bytes,
          dropped: tally.dropped,
          warnings: stats.warnings,
        },
        tally.counter,
        lastCursor,
        undefined,
      );
    return result;
  } catch {
    return none;
  }
}

/**
 * Excerpts read in a worker thread (journal-worker.ts) from the moment it is made, in one shared
 * pass with the journal source's count when `tally` is given (readWindow), else one by one.
 * `take` gives one's result, or undefined when it was not asked for or the worker failed before
 * reading it; `facts` gives the journal source's facts, or undefined.
 */
export class ExcerptPrefetch {
  readonly #results = new Map<string, Promise<Excerpt | undefined>>();
  readonly #masked = new Map<string, Promise<MaskedExcerpt | undefined>>();
  readonly #gzips = new Map<string, Promise<Uint8Array | undefined>>();
  readonly #facts: Promise<JournalFacts | undefined>;
  readonly #worker: Worker | undefined;
  #exited = false;

  constructor(
    jobs: Map<string, ExcerptJob>,
    shared?: { tally?: TallyJob; directories: string[]; deadlineMs: number },
    /** Mask each excerpt in the worker too (see MaskedExcerpt). */
    mask = false,
    /** A worker started ahead: given the job as its first message, unless it has ended already. */
    ahead?: AheadWorker,
  ) {
    const settle = new Map<string, (excerpt: Excerpt | undefined) => void>();
    const settleMasked = new Map<string, (masked: MaskedExcerpt | undefined) => void>();
    const settleGzip = new Map<string, (gzip: Uint8Array | undefined) => void>();
    for (const name of jobs.keys()) {
      this.#results.set(name, new Promise((resolve) => settle.set(name, resolve)));
      this.#masked.set(name, new Promise((resolve) => settleMasked.set(name, resolve)));
      this.#gzips.set(name, new Promise((resolve) => settleGzip.set(name, resolve)));
    }
    let settleFacts: (facts: JournalFacts | undefined) => void = () => {};
    this.#facts = new Promise((resolve) => {
      settleFacts = resolve;
    });
    // Resolving a promise twice does nothing: what the worker sent stays.
    const giveUp = () => {
      for (const resolve of settle.values()) resolve(undefined);
      giveUpMasking();
      settleFacts(undefined);
    };
    const window: WindowJob | undefined = shared && {
      directories: shared.directories,
      excerpts: [...jobs],
      deadlineMs: shared.deadlineMs,
      ...(shared.tally ? { tally: shared.tally } : {}),
    };
    try {
      const job = { jobs: [...jobs], window, mask };
      const started = ahead && !ahead.exited ? ahead.worker : undefined;
      started?.postMessage({ job });
      this.#worker =
        started ?? new Worker(new URL("./journal-worker.js", import.meta.url), { workerData: job });
      this.#worker.on(
        "message",
        (
          message:
            | { name: string; excerpt: Excerpt }
            | { name: string; masked: MaskedExcerpt | null }
            | { name: string; gzip: Uint8Array }
            | { facts: JournalFacts | null },
        ) => {
          if ("facts" in message) settleFacts(message.facts ?? undefined);
          else if ("masked" in message) {
            settleMasked.get(message.name)?.(message.masked ?? undefined);
            if (!message.masked) settleGzip.get(message.name)?.(undefined);
          } else if ("gzip" in message) settleGzip.get(message.name)?.(message.gzip);
          else settle.get(message.name)?.(message.excerpt);
        },
      );
      this.#worker.on("error", giveUp);
      this.#worker.on("exit", () => {
        this.#exited = true;
        giveUp();
      });
    } catch {
      giveUp();
    }
    if (!shared?.tally) settleFacts(undefined);
    if (!mask) giveUpMasking();
    function giveUpMasking() {
      for (const resolve of settleMasked.values()) resolve(undefined);
      for (const resolve of settleGzip.values()) resolve(undefined);
    }
  }

  /**
   * The excerpt as the worker masked it (after it sent every excerpt), or undefined when it was
   * not asked to mask, could not, or ended first: the text is then masked as any other.
   */
  masked(name: string): Promise<MaskedExcerpt | undefined> | undefined {
    return this.#masked.get(name);
  }

  /**
   * The masked excerpt's bytes as one gzip member (gzipMember), sent after every excerpt was
   * masked; undefined when there is none (then the archive compresses the bytes itself).
   */
  gzip(name: string): Promise<Uint8Array | undefined> | undefined {
    return this.#gzips.get(name);
  }

  take(name: string): Promise<Excerpt | undefined> | undefined {
    return this.#results.get(name);
  }

  /** The journal source's facts from the shared pass, or undefined (the source then reads itself). */
  facts(): Promise<JournalFacts | undefined> {
    return this.#facts;
  }

  /** Stops the worker, whatever it was doing: must-gather always does once the gathering ends. */
  async stop(): Promise<void> {
    if (this.#worker) await endJournalWorker(this.#worker, this.#exited);
  }
}
