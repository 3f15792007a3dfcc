import type { Snapshot } from "../snapshot.js";

export type Severity = "critical" | "warning" | "info";

export const SEVERITIES: readonly Severity[] = ["critical", "warning", "info"];

export function severityRank(severity: Severity): number {
  return SEVERITIES.length - SEVERITIES.indexOf(severity);
}

export interface Remediation {
  /** What to do, in one or two sentences. */
  summary: string;
  /** Exact commands for this node's paths, in the order to run them. */
  commands: string[];
}

export interface Finding {
  id: string;
  severity: Severity;
  title: string;
  /** What the finding is about when one check can report several (a filesystem, a file). */
  subject?: string;
  /** The facts that triggered it, with host paths. */
  evidence: string[];
  remediation: Remediation;
  /** Link into the findings catalog, which holds the runbook. */
  runbook: string;
}

/** What a check returns for each problem; id and runbook come from its definition. */
export interface FindingDraft {
  severity?: Severity;
  title?: string;
  subject?: string;
  evidence: string[];
  remediation: Remediation;
}

export interface CheckOptions {
  /** Warn when a filesystem's headroom above its eviction threshold is below this share of its size. */
  pressureMarginPercent: number;
  /** A layer-store probe operation slower than this is reported (LAYER_STORE_SLOW). */
  probeSlowMs: number;
}

export const DEFAULT_CHECK_OPTIONS: CheckOptions = { pressureMarginPercent: 5, probeSlowMs: 500 };

export interface CheckDefinition {
  id: string;
  /** The usual severity; a draft may raise or lower it. */
  severity: Severity;
  title: string;
  area: string;
  /** For the catalog: what the finding means and why it matters. */
  description: string;
  /** For the runbook: commands that show the problem on a node, with <placeholders> for its paths. */
  confirm: string[];
  run(snapshot: Snapshot, options: CheckOptions): FindingDraft[];
}

export const RUNBOOK_BASE = "docs/findings.md";

export function runbookLink(id: string): string {
  return `${RUNBOOK_BASE}#${id.toLowerCase()}`;
}
