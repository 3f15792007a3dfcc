import type { Host } from "../host/host.js";
import type { JournalFacts } from "./journal.js";

export type SourceStatus = "ok" | "error" | "timeout" | "absent";

/**
 * What one source yields. A source that found nothing to look at (no kubelet on this machine)
 * is "absent", not an error; one that failed or ran past its deadline carries the reason.
 */
export type SourceResult<F> =
  | { status: "ok"; durationMs: number; facts: F }
  | { status: "absent"; durationMs: number; reason: string; facts: null }
  | { status: "error" | "timeout"; durationMs: number; error: string; facts: null };

/** Returned by a source's collect() when the thing it looks at is not on this host. */
export class Absent {
  constructor(readonly reason: string) {}
}

export interface CollectOptions {
  /** A CRI endpoint that overrides discovery, e.g. unix:///run/crio/crio.sock. */
  criEndpoint?: string;
  /**
   * The crictl to run (a path on the machine running imagefs-doctor, not under the host root):
   * the cri source's fallback when a socket answered gRPC with an error, and must-gather's crictl
   * items. Overrides looking for crictl at its usual places.
   */
  crictl?: string;
  /** Per-call deadline for CRI requests. */
  criTimeoutMs: number;
  /** How far back journal-based sources read. */
  journalLookbackHours: number;
  /** Directories of log rule packs added to (or replacing) the built-in ones. */
  logRuleDirs: string[];
  /** Budget and comparison of the SELinux label scan, per store. */
  labelScan: { maxFiles: number; maxMs: number; compare: "type" | "full" };
  /**
   * Where the previous cycle of a long-running exporter stopped reading logs, so counts are of
   * what is new (counters); without it, log sources read the lookback window.
   */
  resume?: ResumePoints;
  /**
   * The journal source's facts, computed by another reader of the same window (must-gather's
   * journal pass, which also writes the bundle's excerpts). Undefined when it could not: the source
   * then reads the journal itself.
   */
  journalFacts?: Promise<JournalFacts | undefined>;
}

export interface ResumePoints {
  /** Journal cursor after which the journal source continues. */
  journal?: string | null;
  /** AVC records in audit.log at or before this time (ISO) were already counted. */
  avcAfter?: string | null;
}

/** The sources' options for a request: what it sets, else the defaults. */
export function collectOptions(request: Partial<CollectOptions>): CollectOptions {
  return {
    criEndpoint: request.criEndpoint,
    criTimeoutMs: request.criTimeoutMs ?? 5000,
    crictl: request.crictl,
    journalLookbackHours: request.journalLookbackHours ?? 24,
    logRuleDirs: request.logRuleDirs ?? [],
    labelScan: request.labelScan ?? { maxFiles: 20_000, maxMs: 2000, compare: "type" },
    resume: request.resume,
    journalFacts: request.journalFacts,
  };
}

/** Where a log source starts: after the last cycle's cursor, else at the start of the lookback window. */
export function journalStart(cursor: string | null | undefined, lookbackHours: number) {
  return cursor ? { afterCursor: cursor } : { realtimeUsec: Date.now() * 1000 - lookbackHours * 3600e6 };
}

export interface SourceContext<Facts> {
  host: Host;
  options: CollectOptions;
  /** The result of another source; waits for it, so sources can build on each other. */
  result<K extends keyof Facts>(name: K): Promise<SourceResult<Facts[K]>>;
}

export interface SourceDefinition<Facts, K extends keyof Facts> {
  name: K;
  /** After this long the source is reported as "timeout" and the run goes on without it. */
  deadlineMs: number;
  collect(context: SourceContext<Facts>): Promise<Facts[K] | Absent>;
}

/** The facts of a source when it ran to completion, else undefined. */
export function factsOf<F>(result: SourceResult<F> | undefined): F | undefined {
  return result?.status === "ok" ? result.facts : undefined;
}
