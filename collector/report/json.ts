import type { Finding } from "../checks/finding.js";
import type { Snapshot } from "../snapshot.js";

export interface DiagnosisReport {
  node: string;
  generatedAt: string;
  findings: Finding[];
  snapshot: Snapshot;
}

export function buildReport(snapshot: Snapshot, findings: Finding[], now = new Date()): DiagnosisReport {
  return { node: snapshot.node, generatedAt: now.toISOString(), findings, snapshot };
}

export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
