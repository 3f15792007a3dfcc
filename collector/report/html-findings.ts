import { type Finding, SEVERITIES } from "../checks/finding.js";
import { code, type Html, html, join } from "./html-parts.js";

/** A command with its copy button. */
function command(text: string): Html {
  return html`<div class="cmd"><pre>${code(text)}</pre><button type="button" class="copy" title="Copy this command">Copy</button></div>`;
}

/** Commands in order; consecutive lines starting with "#" are one note (what to edit where), indentation kept. */
function commands(list: string[]): Html[] {
  const out: Html[] = [];
  let note: string[] = [];
  const flush = () => {
    if (note.length > 0) out.push(html`<pre class="note">${note.join("\n")}</pre>`);
    note = [];
  };
  for (const line of list) {
    if (line.startsWith("#")) note.push(line.replace(/^# ?/, ""));
    else {
      flush();
      out.push(command(line));
    }
  }
  flush();
  return out;
}

function finding(f: Finding, index: number): Html {
  const severity = SEVERITIES.includes(f.severity) ? f.severity : "info";
  return html`<article class="finding ${severity}" id="finding-${index}" data-finding="${f.id}">
<h4><span class="badge ${severity}">${String(f.severity)}</span> <code class="fid">${f.id}</code> <span class="title">${f.title}</span></h4>
${f.subject ? html`<div class="muted">about ${code(f.subject)}</div>` : ""}
${(f.evidence ?? []).length > 0 ? html`<ul class="evidence">${f.evidence.map((e) => html`<li>${e}</li>`)}</ul>` : ""}
<p><b>Fix:</b> ${f.remediation?.summary ?? ""}</p>
${commands(f.remediation?.commands ?? [])}
<p class="muted">runbook: ${code(f.runbook)}</p>
</article>`;
}

/** Findings grouped by severity, each with evidence and copyable remediation commands. */
export function findingsSection(findings: Finding[]): Html {
  if (findings.length === 0) {
    return html`<p class="no-findings">No findings: the node's container storage looks healthy.</p>`;
  }
  const counts = SEVERITIES.map((s) => [s, findings.filter((f) => f.severity === s).length] as const);
  let index = 0;
  const groups = SEVERITIES.map((severity) => {
    const group = findings.filter((f) => f.severity === severity);
    if (group.length === 0) return "";
    return html`<section class="severity" data-severity="${severity}"><h3>${severity[0]!.toUpperCase()}${severity.slice(1)} (${group.length})</h3>
${group.map((f) => finding(f, index++))}</section>`;
  });
  const other = findings.filter((f) => !SEVERITIES.includes(f.severity));
  return join([
    html`<div class="counts">${counts.map(([s, n]) => html`<span class="badge ${s}">${n} ${s}</span>`)}</div>`,
    ...groups,
    other.length > 0
      ? html`<section class="severity"><h3>Other</h3>${other.map((f) => finding(f, index++))}</section>`
      : "",
  ]);
}
