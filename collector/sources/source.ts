import type { Host } from "../host/host.js";

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
  /** Per-call deadline for CRI requests. */
  criTimeoutMs: number;
  /** How far back journal-based sources read. */
  journalLookbackHours: number;
  /** Directories of log rule packs added to (or replacing) the built-in ones. */
  logRuleDirs: string[];
  /** Budget and comparison of the SELinux label scan, per store. */
  labelScan: { maxFiles: number; maxMs: number; compare: "type" | "full" };
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
