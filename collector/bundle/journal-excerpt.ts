import { Worker } from "node:worker_threads";
import { describeError } from "../host/root.js";
import { readJournal } from "../journal/reader.js";
import type { JournalEntry, JournalFilter } from "../journal/types.js";

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

function field(entry: JournalEntry, name: string): string | undefined {
  const value = entry.fields[name];
  if (value === undefined) return undefined;
  return typeof value === "string" ? value : value.toString("utf8");
}

/** journalctl's short-iso-precise format: time host identifier[pid]: message. */
function journalLine(entry: JournalEntry): string {
  const time = new Date(Math.floor(entry.realtimeUsec / 1000)).toISOString();
  const identifier = field(entry, "SYSLOG_IDENTIFIER") ?? field(entry, "_COMM") ?? "-";
  const pid = field(entry, "_PID");
  const message = (field(entry, "MESSAGE") ?? "").replace(/\n/g, "\n    ");
  return `${time} ${field(entry, "_HOSTNAME") ?? "-"} ${identifier}${pid ? `[${pid}]` : ""}: ${message}`;
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
        limits: { maxEntries: 1_000_000, maxBytes: 512 * MiB, maxFieldBytes: 16 * KiB },
      },
      (entry, stop) => {
        if (job.messageIncludes !== undefined && !field(entry, "MESSAGE")?.includes(job.messageIncludes))
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
 * Excerpts read in a worker thread (journal-worker.ts) from the moment it is made. `take` gives
 * one's result, or undefined when it was not asked for or the worker failed before reading it.
 */
export class ExcerptPrefetch {
  readonly #results = new Map<string, Promise<Excerpt | undefined>>();
  readonly #worker: Worker | undefined;

  constructor(jobs: Map<string, ExcerptJob>) {
    const settle = new Map<string, (excerpt: Excerpt | undefined) => void>();
    for (const name of jobs.keys())
      this.#results.set(name, new Promise((resolve) => settle.set(name, resolve)));
    // Resolving a promise twice does nothing: what the worker sent stays.
    const giveUp = () => {
      for (const resolve of settle.values()) resolve(undefined);
    };
    try {
      this.#worker = new Worker(new URL("./journal-worker.js", import.meta.url), {
        workerData: { jobs: [...jobs] },
      });
      this.#worker.on("message", ({ name, excerpt }: { name: string; excerpt: Excerpt }) =>
        settle.get(name)?.(excerpt),
      );
      this.#worker.on("error", giveUp);
      this.#worker.on("exit", giveUp);
    } catch {
      giveUp();
    }
  }

  take(name: string): Promise<Excerpt | undefined> | undefined {
    return this.#results.get(name);
  }

  /** Stops the worker, whatever it was doing: must-gather always does once the gathering ends. */
  async stop(): Promise<void> {
    await this.#worker?.terminate();
  }
}
