import { formatBytes } from "../model/quantity.js";
import { contextType } from "../selinux/context.js";
import type { Snapshot } from "../snapshot.js";
import type { JournalFacts } from "../sources/journal.js";
import { LAYER_CLASSES, type LayerClass } from "../sources/layers.js";
import {
  code,
  count,
  factsOrNull,
  fmt,
  type Html,
  html,
  join,
  notCollected,
  stackedBar,
  table,
  yesNo,
} from "./html-parts.js";

/** Rows of the per-image table; the rest are counted, not shown. */
const MAX_IMAGE_ROWS = 200;

function typeOf(label: string | null): string | null {
  if (!label) return null;
  return contextType(label) ?? label;
}

/** SELinux mode, each store's labels, and the mismatch table (store, actual, expected, count, samples). */
export function selinuxSection(snapshot: Snapshot): Html {
  const facts = factsOrNull(snapshot, "selinux");
  if (!facts) return notCollected(snapshot, "selinux");
  const stores = table(
    ["store", "path", "status", "filesystem", "labels supported", "expected type (policy)", "checked"],
    facts.stores.map((s) => [
      s.role,
      code(s.path),
      s.reason ? `${s.status}: ${s.reason}` : s.status,
      s.fstype ? `${s.fstype} on ${s.mountPoint ?? "?"}` : "unknown",
      s.mountContext ? `context= ${s.mountContext}` : yesNo(s.xattrSupported),
      s.equivalence.expectedType
        ? `${s.equivalence.expectedType}${s.equivalence.via ? ` (via ${s.equivalence.via})` : ""}`
        : "none",
      s.scan
        ? `${count(s.scan.filesChecked)} files${s.scan.sampled ? " (budget reached: a sample)" : ""}, ${count(s.scan.unlabeled)} unlabeled`
        : "not scanned",
    ]),
  );
  const mismatches = facts.stores.flatMap((s) => (s.scan?.mismatches ?? []).map((m) => ({ store: s, m })));
  const mismatchTable =
    mismatches.length > 0
      ? table(
          ["store", "actual type", "expected type", "compared with", "files", "samples"],
          mismatches.map(({ store, m }) => [
            html`${store.role} ${code(store.path)}`,
            code(m.actual),
            code(m.expected),
            m.basis === "policy" ? "the policy's file contexts" : "the same path under graphroot",
            html`<span class="num">${count(m.count)}</span>`,
            html`<ul>${m.samples.map((p) => html`<li>${code(p)}</li>`)}</ul>`,
          ]),
          { id: "selinux-mismatches", class: "mismatches" },
        )
      : html`<p id="selinux-mismatches" class="muted">No label mismatches found in the files checked.</p>`;
  const dirRows = facts.stores.flatMap((s) =>
    s.dirs.map((d) => {
      const actual = typeOf(d.label);
      const bad =
        actual !== null &&
        ((d.expectedType !== null && actual !== d.expectedType) ||
          (d.referenceType !== null && actual !== d.referenceType));
      return { d, actual, bad };
    }),
  );
  const dirTable = table(
    ["directory", "label", "policy expects", "graphroot has"],
    dirRows.map(({ d, bad }) => [
      html`${bad ? html`<b>wrong</b> ` : ""}${code(d.path)}`,
      d.label ? code(d.label) : "none",
      d.expectedType ?? "",
      d.referenceType ? `${d.referenceType} (${d.referencePath ?? ""})` : "",
    ]),
  );
  const avc = factsOrNull(snapshot, "avc");
  const denials = avc?.storageDenials ?? [];
  const avcPart = avc
    ? denials.length > 0
      ? table(
          [
            "source type",
            "target type",
            "class",
            "permissions",
            "count",
            "mode",
            "samples (path as the container saw it)",
          ],
          denials.map((g) => [
            g.sourceType,
            g.targetType,
            g.tclass,
            g.permissions.join(" "),
            count(g.count),
            g.permissive ? "permissive" : "enforced",
            html`<ul>${g.samples.map((s) => html`<li>${s.comm ?? ""} ${code(s.path ?? "")} dev ${s.dev ?? "?"} ino ${s.ino ?? "?"}</li>`)}</ul>`,
          ]),
        )
      : html`<p class="muted">No AVC denials of containers on store files.</p>`
    : notCollected(snapshot, "avc");
  return join([
    html`<dl class="facts"><dt>Mode</dt><dd data-selinux-state="${facts.state}"><b>${facts.state}</b> (${facts.stateEvidence.join("; ")})</dd>
<dt>Policy</dt><dd>${facts.policy.type}, file contexts ${facts.policy.loaded ? "loaded" : "not loaded: expected types unknown"}</dd>
<dt>Compared</dt><dd>${facts.compare === "full" ? "full contexts (restorecon -F)" : "types (restorecon)"}; graphroot ${code(facts.graphroot)}</dd></dl>`,
    html`<h3>Label mismatches</h3>`,
    mismatchTable,
    html`<h3>Stores</h3>`,
    stores,
    html`<h3>Store directories</h3>`,
    dirTable,
    html`<h3>AVC denials on store files</h3>`,
    avcPart,
  ]);
}

function classBar(values: Record<LayerClass, number>, label: string, unit: (n: number) => string): Html {
  return stackedBar(
    LAYER_CLASSES.map((c) => ({
      value: values[c] ?? 0,
      class: `cls-${c}`,
      label: `${c}: ${unit(values[c] ?? 0)}`,
    })),
    label,
  );
}

const CLASS_KEY = html`<p class="muted">${LAYER_CLASSES.map(
  (c) =>
    html`<svg class="key" viewBox="0 0 10 10"><rect class="cls-${c}" width="10" height="10"/></svg>${c} `,
)}</p>`;

/** Layers by class (lazy/partial/full/missing) per store and per image, and each layer store's liveness. */
export function lazyPullSection(snapshot: Snapshot): Html {
  const layers = factsOrNull(snapshot, "layers");
  const stores = factsOrNull(snapshot, "layer-stores");
  const parts: (Html | string)[] = [];
  if (!layers) parts.push(notCollected(snapshot, "layers"));
  else {
    const layerCounts = Object.fromEntries(
      LAYER_CLASSES.map((c) => [c, layers.totals[c]?.layers ?? 0]),
    ) as Record<LayerClass, number>;
    parts.push(html`<h3>Every layer on the node</h3>`, CLASS_KEY);
    parts.push(
      table(
        ["class", "layers", "bytes"],
        LAYER_CLASSES.map((c) => [
          c,
          html`<span class="num" data-class="${c}">${count(layers.totals[c]?.layers)}</span>`,
          formatBytes(layers.totals[c]?.bytes ?? 0),
        ]),
        { id: "layer-totals" },
      ),
      classBar(layerCounts, "layers by class", count),
    );
    const byHome = Array.isArray(layers.byHome) ? layers.byHome : null;
    parts.push(
      html`<h3>Per store</h3>`,
      byHome
        ? table(
            ["store", ...LAYER_CLASSES, ""],
            byHome.map(({ home, tally }) => {
              const counts = Object.fromEntries(
                LAYER_CLASSES.map((c) => [c, tally[c]?.layers ?? 0]),
              ) as Record<LayerClass, number>;
              return [
                code(home),
                ...LAYER_CLASSES.map((c) => html`<span data-class="${c}">${count(counts[c])}</span>`),
                html`<span class="wide">${classBar(counts, `layers of ${home}`, count)}</span>`,
              ];
            }),
            { id: "store-layers" },
          )
        : html`<p class="muted">This snapshot has no per-store figures (taken by an older imagefs-doctor).</p>`,
    );
    parts.push(
      html`<h3>Layer directories per store</h3>`,
      table(
        ["store", "directory", "status", "layer directories"],
        layers.directories.map((d) => [
          d.home,
          code(d.path),
          d.error ? `${d.status}: ${d.error}` : d.status,
          count(d.layers),
        ]),
      ),
    );
    const notes = [
      layers.unrecorded.layers > 0
        ? `${layers.unrecorded.layers} layer directories without a record (${layers.unrecorded.lazy} lazy)`
        : "",
      layers.withoutDirectory.layers > 0
        ? `${layers.withoutDirectory.layers} records without a layer directory`
        : "",
      layers.notInAnyImage > 0
        ? `${layers.notInAnyImage} layers in no image (container layers, leftovers)`
        : "",
      layers.anomalyCount > 0 ? `${layers.anomalyCount} layer directories neither plainly lazy nor full` : "",
    ].filter(Boolean);
    if (notes.length > 0) parts.push(html`<ul>${notes.map((n) => html`<li>${n}</li>`)}</ul>`);
    const shown = layers.images.slice(0, MAX_IMAGE_ROWS);
    parts.push(
      html`<h3>Per image</h3>`,
      shown.length === 0
        ? html`<p class="muted">No images.</p>`
        : table(
            ["image", "store", "layers", ...LAYER_CLASSES, ""],
            shown.map((image) => [
              image.name
                ? code(image.name)
                : html`<span class="muted">${image.id.slice(0, 12)} (no name)</span>`,
              code(image.home),
              html`${count(image.chainLength)}${image.chainError ? html` <span class="muted">(${image.chainError})</span>` : ""}`,
              ...LAYER_CLASSES.map((c) => count(image.layers[c] ?? 0)),
              html`<span class="wide">${classBar(image.layers, `layers of ${image.name ?? image.id}`, count)}</span>`,
            ]),
            { id: "image-layers" },
          ),
      layers.images.length > shown.length || layers.imagesTruncated
        ? html`<p class="muted">${count(layers.images.length - shown.length)} more images not shown${layers.imagesTruncated ? "; the collector also stopped at its image cap" : ""}.</p>`
        : "",
    );
  }
  parts.push(html`<h3>Additional layer stores</h3>`);
  if (!stores) parts.push(notCollected(snapshot, "layer-stores"));
  else {
    const lazyBy = layers?.lazyByStore ?? [];
    parts.push(
      table(
        [
          "store",
          "lazy layers",
          "mount",
          "server",
          "responsive",
          "broken lazy layers",
          "fetch progress (sample)",
        ],
        stores.stores.map((s) => {
          const lazy = lazyBy.filter((l) => l.layerStore === s.path).reduce((n, l) => n + l.layers, 0);
          const alive =
            s.responsive === true
              ? "yes"
              : s.responsive === false
                ? `no${s.unresponsiveSince ? ` (since ${s.unresponsiveSince})` : ""}`
                : "not probed";
          const progress = s.sampleProgress;
          return [
            code(s.entry),
            count(lazy),
            s.mount
              ? html`${s.mount.fstype} [${s.mount.device}] from ${code(s.mount.source)}`
              : html`<b>not mounted</b>`,
            s.process ? html`${s.process.kind} (pid ${s.process.pid})` : html`<b>no server process</b>`,
            html`<span data-liveness="${s.responsive === true ? "up" : s.responsive === false ? "down" : "unknown"}">${alive}</span>`,
            html`${count(s.brokenLayers.length)} of ${count(s.checkedLayers)} checked${s.uncheckedLayers > 0 ? `, ${s.uncheckedLayers} unchecked` : ""}`,
            progress
              ? progress.error
                ? progress.error
                : `${progress.fetchedPercent ?? "?"}% of ${progress.size === undefined ? "?" : formatBytes(progress.size)}`
              : "",
          ];
        }),
        { id: "layer-stores" },
      ),
    );
    const orphans = lazyBy.filter((l) => l.layerStore === null);
    if (orphans.length > 0) {
      parts.push(
        html`<p>Lazy layers in stores no longer configured: ${orphans.map((o) => html`${code(o.storePath)} (${count(o.layers)}) `)}</p>`,
      );
    }
    const broken = stores.stores.flatMap((s) => s.brokenLayers.map((b) => ({ s, b })));
    if (broken.length > 0) {
      parts.push(
        table(
          ["store", "layer", "path in the store", "why"],
          broken
            .slice(0, 50)
            .map(({ s, b }) => [code(s.path), code(b.id.slice(0, 12)), code(b.target), b.reason]),
        ),
      );
    }
  }
  return join(parts);
}

const CHART = { width: 860, height: 260, left: 44, right: 12, top: 12, bottom: 36 };
const HOUR = 3600_000;

function hourLabel(ms: number): string {
  const d = new Date(ms).toISOString();
  return `${d.slice(5, 10)} ${d.slice(11, 16)}`;
}

/** One line per (pack, reason) over hourly buckets, in inline SVG. */
function reasonChart(journal: JournalFacts, collectedAt: string): Html {
  const series = journal.timeline.filter((s) => s.hours.length > 0);
  const starts = series.flatMap((s) => s.hours.map((h) => Date.parse(h.start))).filter(Number.isFinite);
  const collected = Date.parse(collectedAt);
  const end = Math.max(Number.isFinite(collected) ? Math.floor(collected / HOUR) * HOUR : 0, ...starts);
  const lookbackStart = end - Math.max(journal.lookbackHours - 1, 0) * HOUR;
  const begin = Math.min(journal.from === "lookback" ? lookbackStart : end, ...starts);
  const hours = Math.min(Math.round((end - begin) / HOUR) + 1, 24 * 60);
  const first = end - (hours - 1) * HOUR;
  const max = Math.max(1, ...series.flatMap((s) => s.hours.map((h) => h.count)));
  const plotW = CHART.width - CHART.left - CHART.right;
  const plotH = CHART.height - CHART.top - CHART.bottom;
  const x = (ms: number) =>
    CHART.left + (hours === 1 ? plotW / 2 : ((ms - first) / HOUR / (hours - 1)) * plotW);
  const y = (n: number) => CHART.top + plotH - (n / max) * plotH;
  const step = Math.max(1, Math.ceil(hours / 8));
  const xTicks = Array.from({ length: hours }, (_, i) => first + i * HOUR).filter((_, i) => i % step === 0);
  const yTicks = [...new Set([0, Math.round(max / 2), max])];
  const lines = series.map((s, i) => {
    const byHour = new Map(s.hours.map((h) => [Date.parse(h.start), h.count]));
    const points = Array.from({ length: hours }, (_, k) => first + k * HOUR).map(
      (ms) => [ms, byHour.get(ms) ?? 0] as const,
    );
    const dots = points
      .filter(([, n]) => n > 0)
      .map(
        ([ms, n]) =>
          html`<circle cx="${fmt(x(ms))}" cy="${fmt(y(n))}" r="3"><title>${s.reason} (${s.pack}): ${n} at ${hourLabel(ms)} UTC</title></circle>`,
      );
    return html`<g class="series c${i % 8}${i >= 8 ? " dash" : ""}" data-series="${s.pack}/${s.reason}"><polyline points="${points.map(([ms, n]) => `${fmt(x(ms))},${fmt(y(n))}`).join(" ")}"/>${dots}</g>`;
  });
  const svg = html`<svg class="chart" id="journal-chart" viewBox="0 0 ${CHART.width} ${CHART.height}" role="img" aria-label="journal reasons per hour">
<title>Journal entries per reason and hour (UTC)</title>
${yTicks.map((t) => html`<line class="grid" x1="${CHART.left}" x2="${CHART.width - CHART.right}" y1="${fmt(y(t))}" y2="${fmt(y(t))}"/><text x="${CHART.left - 6}" y="${fmt(y(t) + 4)}" text-anchor="end">${t}</text>`)}
${xTicks.map((ms) => html`<text x="${fmt(x(ms))}" y="${CHART.height - CHART.bottom + 16}" text-anchor="middle">${hourLabel(ms)}</text>`)}
${lines}
</svg>`;
  const totals = new Map<string, number>();
  for (const c of journal.counts)
    totals.set(`${c.pack}/${c.reason}`, (totals.get(`${c.pack}/${c.reason}`) ?? 0) + c.count);
  const legend = html`<ul class="legend">${series.map(
    (s, i) =>
      html`<li data-series="${s.pack}/${s.reason}"><svg viewBox="0 0 22 10"><line class="c${i % 8}${i >= 8 ? " dash" : ""}" x1="0" x2="22" y1="5" y2="5"/></svg>${s.reason} <span class="muted">(${s.pack}) ${count(totals.get(`${s.pack}/${s.reason}`) ?? 0)}</span></li>`,
  )}</ul>`;
  const dropped = series.filter((s) => s.dropped > 0);
  return join([
    html`<p class="muted">Entries per hour (UTC) for each reason the rule packs found; hover a dot for its count.</p>`,
    svg,
    legend,
    dropped.length > 0
      ? html`<p class="muted">Entries older than the hours kept per reason are not drawn: ${dropped.map((s) => `${s.reason} ${s.dropped}`).join(", ")}.</p>`
      : "",
  ]);
}

/** Journal reasons over time (a chart of hourly buckets) and the counts behind it. */
export function journalSection(snapshot: Snapshot): Html {
  const journal = factsOrNull(snapshot, "journal");
  if (!journal) return notCollected(snapshot, "journal");
  const read = journal.read;
  const parts: (Html | string)[] = [
    html`<p>Read ${count(read.delivered)} entries (${formatBytes(read.bytes)}) with ${read.backend} from ${journal.directories.map((d) => code(d))}, ${journal.from === "cursor" ? "since the previous cycle" : `over the last ${journal.lookbackHours} h`}${read.dropped > 0 ? html`; <b>${count(read.dropped)} dropped</b> by the read budget` : ""}. Rule packs: ${journal.packs.join(", ")}.</p>`,
  ];
  if (journal.packErrors.length > 0) {
    parts.push(
      html`<ul>${journal.packErrors.map((e) => html`<li>rule pack not loaded: ${code(e.file)}: ${e.message}</li>`)}</ul>`,
    );
  }
  if (journal.counts.length === 0) {
    parts.push(
      html`<p class="muted" id="journal-chart-empty">No journal entry matched a rule: nothing to chart.</p>`,
    );
    return join(parts);
  }
  if (!Array.isArray(journal.timeline)) {
    parts.push(
      html`<p class="muted">This snapshot has no hourly buckets (taken by an older imagefs-doctor): no chart, only the counts.</p>`,
    );
  } else parts.push(reasonChart(journal, snapshot.collectedAt));
  parts.push(
    table(
      ["reason", "pack", "unit", "entries", "first seen", "last seen", "latest message"],
      journal.counts.map((c) => [
        html`<b>${c.reason}</b>`,
        c.pack,
        code(c.unit),
        count(c.count),
        c.firstSeen,
        c.lastSeen,
        code(c.example),
      ]),
      { id: "journal-counts" },
    ),
  );
  return join(parts);
}
