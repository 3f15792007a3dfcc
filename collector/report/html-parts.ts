import type { Facts, Snapshot, SourceName } from "../snapshot.js";
import type { SourceResult } from "../sources/source.js";

/**
 * Building blocks of the HTML report. Every string from a snapshot goes through `esc` (or `cell`,
 * `code`...), which escapes it for text and for double-quoted attribute values alike; nothing from
 * a snapshot is ever put into a script, a style or an unquoted attribute.
 */

// C0 controls other than tab, newline and carriage return, and DEL: shown as \xNN, seen, not hidden.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;
// A lone UTF-16 surrogate (JSON may hold one) cannot be written as UTF-8: show U+FFFD instead.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function escapeHtml(text: unknown): string {
  return String(text ?? "")
    .replace(LONE_SURROGATE, "\ufffd")
    .replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
    .replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export const esc = escapeHtml;

/** Template tag: interpolated values are escaped unless they are `Html` (already built markup). */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

type Part = Html | string | number | boolean | null | undefined | Part[];

function piece(value: Part): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(piece).join("");
  if (value === null || value === undefined || value === false) return "";
  return esc(value);
}

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0]!;
  values.forEach((value, i) => {
    out += piece(value) + strings[i + 1]!;
  });
  return new Html(out);
}

export function join(parts: Part[], separator = ""): Html {
  return new Html(parts.map(piece).join(separator));
}

/** A table with a header row; rows are cells already built (or plain values, escaped). */
export function table(headers: string[], rows: Part[][], attrs: { class?: string; id?: string } = {}): Html {
  return html`<div class="scroll"><table${attrs.class ? html` class="${attrs.class}"` : ""}${attrs.id ? html` id="${attrs.id}"` : ""}>
<thead><tr>${headers.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
<tbody>${rows.map((row) => html`<tr>${row.map((c) => html`<td>${c}</td>`)}</tr>\n`)}</tbody></table></div>`;
}

export function code(text: unknown): Html {
  return html`<code>${String(text ?? "")}</code>`;
}

/** What a section shows when its source did not run to completion. */
export function notCollected(snapshot: Snapshot, name: SourceName): Html {
  const result = snapshot.sources[name] as
    | { status?: string; error?: string; reason?: string; facts?: unknown }
    | undefined;
  if (!result) return html`<p class="not-collected" data-source="${name}">${name}: not in this snapshot</p>`;
  const why = result.status === "absent" ? result.reason : result.error;
  return html`<p class="not-collected" data-source="${name}">not collected: source <b>${name}</b> is
<span class="status status-${String(result.status)}">${String(result.status)}</span>${why ? html`: ${why}` : ""}</p>`;
}

/** The facts of a source that ran to completion, else undefined. */
export function factsOrNull<K extends SourceName>(snapshot: Snapshot, name: K): Facts[K] | null {
  const result: SourceResult<Facts[K]> | undefined = snapshot.sources[name];
  return result?.status === "ok" ? result.facts : null;
}

/** An SVG bar of `fraction` (0..1) with optional marks (0..1), e.g. eviction thresholds. */
export function bar(
  fraction: number,
  options: { state?: "ok" | "warn" | "crit"; marks?: number[]; label: string },
): Html {
  const width = clamp(fraction) * 100;
  const marks = (options.marks ?? []).map(
    (m) =>
      html`<line class="mark" x1="${fmt(clamp(m) * 100)}" x2="${fmt(clamp(m) * 100)}" y1="0" y2="10" vector-effect="non-scaling-stroke"/>`,
  );
  return html`<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="${options.label}"><title>${options.label}</title><rect class="track" width="100" height="10"/><rect class="fill ${options.state ?? "ok"}" width="${fmt(width)}" height="10"/>${marks}</svg>`;
}

/** A bar of several parts side by side (layer classes), each with its CSS class. */
export function stackedBar(parts: { value: number; class: string; label: string }[], label: string): Html {
  const total = parts.reduce((sum, p) => sum + Math.max(p.value, 0), 0);
  let x = 0;
  const rects = parts
    .filter((p) => p.value > 0 && total > 0)
    .map((p) => {
      const width = (p.value / total) * 100;
      const rect = html`<rect class="${p.class}" x="${fmt(x)}" width="${fmt(width)}" height="10"><title>${p.label}</title></rect>`;
      x += width;
      return rect;
    });
  return html`<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="${label}"><title>${label}</title><rect class="track" width="100" height="10"/>${rects}</svg>`;
}

export function clamp(value: number): number {
  return Number.isFinite(value) ? Math.min(Math.max(value, 0), 1) : 0;
}

/** A number for an SVG attribute: at most two decimals. */
export function fmt(value: number): string {
  return String(Math.round((Number.isFinite(value) ? value : 0) * 100) / 100);
}

export function count(value: unknown): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "?";
  return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function yesNo(value: boolean | null | undefined, unknown = "unknown"): string {
  return value === true ? "yes" : value === false ? "no" : unknown;
}
