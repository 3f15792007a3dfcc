import { createHash } from "node:crypto";
import { journalSection, lazyPullSection, selinuxSection } from "./html-areas.js";
import { SCRIPT, STYLE } from "./html-assets.js";
import { findingsSection } from "./html-findings.js";
import { sourcesSection, summarySection, topologySection } from "./html-overview.js";
import { escapeHtml, type Html, html } from "./html-parts.js";
import type { DiagnosisReport } from "./json.js";

export { escapeHtml } from "./html-parts.js";

function sha256(text: string): string {
  return `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
}

/**
 * Nothing may be fetched (default-src 'none' covers scripts, styles, images, fonts, frames and
 * connections) and only the page's own style sheet and script run, pinned by their hashes.
 */
const CSP = [
  "default-src 'none'",
  `style-src ${sha256(STYLE)}`,
  `script-src ${sha256(SCRIPT)}`,
  "img-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

const SECTIONS = [
  ["summary", "Node"],
  ["sources", "Sources"],
  ["topology", "Storage topology"],
  ["findings", "Findings"],
  ["selinux", "SELinux labels"],
  ["lazy-pull", "Lazy pulling"],
  ["journal", "Journal over time"],
] as const;

/**
 * A section; if the snapshot's facts have a shape this version does not expect (an older or a
 * hand-edited snapshot), the section says so and the rest of the report still renders.
 */
function section(id: string, title: string, body: () => Html): Html {
  let content: Html;
  try {
    content = body();
  } catch (error) {
    content = html`<p class="not-collected">This section could not be drawn from the snapshot: ${(error as Error)?.message ?? String(error)}</p>`;
  }
  return html`<section class="part" id="${id}"><h2>${title}</h2>
${content}
</section>`;
}

/** The report as one self-contained HTML file: inline style and script, no network access at all. */
export function renderHtml(report: DiagnosisReport): string {
  const { snapshot, findings } = report;
  const bodies: Record<(typeof SECTIONS)[number][0], () => Html> = {
    summary: () => summarySection(snapshot, report.generatedAt),
    sources: () => sourcesSection(snapshot),
    topology: () => topologySection(snapshot),
    findings: () => findingsSection(findings),
    selinux: () => selinuxSection(snapshot),
    "lazy-pull": () => lazyPullSection(snapshot),
    journal: () => journalSection(snapshot),
  };
  const counts = ["critical", "warning", "info"].map(
    (s) => `${findings.filter((f) => f.severity === s).length} ${s}`,
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(CSP)}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>imagefs-doctor: ${escapeHtml(report.node)}</title>
<style>${STYLE}</style>
</head>
<body>
<header class="top"><h1>imagefs-doctor: node ${escapeHtml(report.node)}</h1>
<div class="muted">collected ${escapeHtml(snapshot.collectedAt)} · report generated ${escapeHtml(report.generatedAt)} · ${escapeHtml(counts.join(", "))}</div>
<nav class="toc">${SECTIONS.map(([id, title]) => `<a href="#${id}">${title}</a>`).join("")}</nav></header>
<main>
${SECTIONS.map(([id, title]) => section(id, title, bodies[id]).text).join("\n")}
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
