import { type Finding, SEVERITIES, type Severity } from "../checks/finding.js";
import { filesystemFacts } from "../model/view.js";
import type { Snapshot, SourceName } from "../snapshot.js";

export const WIDTH = 80;

export interface Style {
  severity(severity: Severity, text: string): string;
  bold(text: string): string;
  dim(text: string): string;
}

const CODES: Record<Severity, string> = { critical: "31", warning: "33", info: "36" };

export const PLAIN: Style = { severity: (_, text) => text, bold: (text) => text, dim: (text) => text };
export const ANSI: Style = {
  severity: (severity, text) => `\x1b[1;${CODES[severity]}m${text}\x1b[0m`,
  bold: (text) => `\x1b[1m${text}\x1b[0m`,
  dim: (text) => `\x1b[2m${text}\x1b[0m`,
};

/** Colour only for a terminal, and never when NO_COLOR is set (no-color.org). */
export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Style {
  return stream.isTTY && !env.NO_COLOR ? ANSI : PLAIN;
}

/** Wraps at spaces so no line passes `width`; a word longer than the line is cut. */
export function wrap(text: string, width: number, indent: string, hangingIndent = indent): string[] {
  if (indent.length + text.length <= width) return [indent + text];
  const lines: string[] = [];
  let line = indent;
  let lineHasWord = false;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const room = width - line.length - (lineHasWord ? 1 : 0);
    if (word.length <= room) {
      line += (lineHasWord ? " " : "") + word;
      lineHasWord = true;
      continue;
    }
    if (lineHasWord) lines.push(line);
    let rest = word;
    let prefix = lineHasWord ? hangingIndent : line;
    while (prefix.length + rest.length > width) {
      const cut = Math.max(width - prefix.length, 1);
      lines.push(prefix + rest.slice(0, cut));
      rest = rest.slice(cut);
      prefix = hangingIndent;
    }
    line = prefix + rest;
    lineHasWord = true;
  }
  if (lineHasWord) lines.push(line);
  return lines;
}

/** Splits at spaces outside quotes: a line break inside quotes would change the command. */
function shellWords(command: string): string[] {
  return command.match(/(?:[^\s'"]+|'[^']*'|"[^"]*")+/g) ?? [command];
}

/**
 * A shell command wrapped with trailing backslashes, so it still pastes as one command. Lines
 * starting with "#" are notes (what to edit where) and are shown without the prompt.
 */
function wrapCommand(command: string, width: number, indent: string): string[] {
  if (command.startsWith("#")) return wrap(command, width, indent, `${indent}#   `);
  const lines: string[] = [];
  let line = `${indent}$ `;
  for (const word of shellWords(command)) {
    if (line.endsWith("$ ") || line.length + word.length + 3 <= width) {
      line += (line.endsWith("$ ") ? "" : " ") + word;
    } else {
      lines.push(`${line} \\`);
      line = `${indent}    ${word}`;
    }
  }
  lines.push(line);
  return lines;
}

function renderFinding(finding: Finding, style: Style): string[] {
  const lines = wrap(`${finding.id}: ${finding.title}`, WIDTH, "  ", "    ");
  lines[0] = lines[0]!.replace(finding.id, style.bold(finding.id));
  if (finding.subject) lines.push(...wrap(`about: ${finding.subject}`, WIDTH, "    ", "      "));
  for (const item of finding.evidence) lines.push(...wrap(`- ${item}`, WIDTH, "    ", "      "));
  lines.push(...wrap(`fix: ${finding.remediation.summary}`, WIDTH, "    ", "      "));
  for (const command of finding.remediation.commands) lines.push(...wrapCommand(command, WIDTH, "      "));
  lines.push(style.dim(`    runbook: ${finding.runbook}`));
  return lines;
}

function header(snapshot: Snapshot): string[] {
  const lines = [
    `imagefs-doctor ${snapshot.tool.version}: node ${snapshot.node}, collected ${snapshot.collectedAt}`,
  ];
  const fs = filesystemFacts(snapshot);
  if (fs) {
    const roles = fs.roles
      .filter((r) => ["nodefs", "imagefs", "containerfs"].includes(r.role))
      .map((r) => `${r.role} ${r.path} ${r.status === "ok" ? `[${r.device}]` : `(${r.status})`}`);
    lines.push(...wrap(`layout: ${fs.topology}; ${roles.join(", ")}`, WIDTH, "", "  "));
  }
  const cri = snapshot.sources.cri;
  if (cri.status === "ok") {
    const runtime = cri.facts.runtime;
    const answered = cri.facts.answeredBy;
    lines.push(
      ...wrap(
        answered
          ? `runtime: ${runtime ? `${runtime.name} ${runtime.version}` : "answered"} at ${answered.endpoint} (${answered.via})`
          : "runtime: no CRI endpoint answered",
        WIDTH,
        "",
        "  ",
      ),
    );
  }
  const notOk = (Object.keys(snapshot.sources) as SourceName[])
    .filter((name) => snapshot.sources[name].status !== "ok")
    .map((name) => `${name} ${snapshot.sources[name].status}`);
  if (notOk.length > 0) lines.push(...wrap(`sources not ok: ${notOk.join(", ")}`, WIDTH, "", "  "));
  return lines;
}

export function renderText(rawSnapshot: Snapshot, rawFindings: Finding[], style: Style = PLAIN): string {
  // Strings from a snapshot may come from a customer's bundle: none may drive the terminal.
  const { snapshot, findings } = printable({ snapshot: rawSnapshot, findings: rawFindings });
  const lines = header(snapshot);
  for (const severity of SEVERITIES) {
    const group = findings.filter((f) => f.severity === severity);
    if (group.length === 0) continue;
    lines.push("", style.severity(severity, `${severity.toUpperCase()} (${group.length})`));
    for (const finding of group) lines.push(...renderFinding(finding, style), "");
    lines.pop();
  }
  const counts = SEVERITIES.map((s) => `${findings.filter((f) => f.severity === s).length} ${s}`);
  lines.push(
    "",
    findings.length === 0
      ? "No findings: the node's container storage looks healthy."
      : `Summary: ${counts.join(", ")}`,
  );
  return `${lines.join("\n")}\n`;
}

/** Terminal controls (C0 but tab and newline, DEL, C1) and bidi overrides, shown as \xNN / \u{NNNN}. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** A copy of `value` whose strings show their control characters instead of sending them. */
export function printable<T>(value: T): T {
  if (typeof value === "string")
    return value.replace(CONTROLS, (c) => {
      const code = c.charCodeAt(0);
      return code > 0xff ? `\\u{${code.toString(16)}}` : `\\x${code.toString(16).padStart(2, "0")}`;
    }) as T;
  if (Array.isArray(value)) return value.map(printable) as T;
  if (value !== null && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, printable(v)])) as T;
  return value;
}
