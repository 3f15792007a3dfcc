import type { DiagnosisReport } from "./json.js";

/**
 * The report as one self-contained HTML file (no network access). A first version: node and
 * findings only; the full report (topology, SELinux table, lazy-pull breakdown, journal chart)
 * replaces it.
 */
export function renderHtml(report: DiagnosisReport): string {
  const findings = report.findings
    .map((f) => `<li><b>${escapeHtml(f.severity)}</b> ${escapeHtml(f.id)}: ${escapeHtml(f.title)}</li>`)
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>imagefs-doctor: ${escapeHtml(report.node)}</title></head>
<body><h1>${escapeHtml(report.node)}</h1><p>generated ${escapeHtml(report.generatedAt)}</p><ul>
${findings}
</ul></body></html>
`;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
