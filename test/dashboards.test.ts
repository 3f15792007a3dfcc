import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { METRICS } from "../collector/export/catalog.js";
import { DASHBOARD_DIR, DASHBOARDS, staleDashboards } from "../dashboards/generate.js";
import {
  dashboardQueries,
  dashboardVariables,
  EXAMPLE_VALUES,
  expandVariables,
  loadDashboards,
} from "../dashboards/queries.js";
import { requireParts } from "./support/requirements.js";

/** The uids other dashboards, links and bookmarks rely on: changing one breaks them. */
const UIDS: Record<string, string> = {
  "node-storage.json": "imagefs-node-storage",
  "selinux.json": "imagefs-selinux",
  "lazy-pull.json": "imagefs-lazy-pull",
  "collector-health.json": "imagefs-collector",
};

/**
 * Grafana unit ids these dashboards may use: a subset of the ones grafana/dashboard-linter's
 * panel-units-rule accepts (lint/rule_panel_units.go, from Grafana's valueFormats/categories.ts).
 */
const UNITS = new Set([
  "none",
  "string",
  "short",
  "percent",
  "percentunit",
  "bytes",
  "decbytes",
  "ns",
  "µs",
  "ms",
  "s",
  "m",
  "h",
  "d",
  "dtdurations",
  "dtdurationms",
  "dateTimeAsIso",
  "dateTimeAsLocal",
  "dateTimeFromNow",
  "cps",
  "ops",
  "cpm",
  "opm",
  "bool",
  "bool_yes_no",
  "bool_on_off",
]);

/** Variables Grafana defines itself. */
const BUILTIN_VARIABLES = new Set(["__rate_interval", "__interval", "__range"]);

const CATALOG = new Map<string, { type: string; labels: readonly string[] }>(
  METRICS.map((m) => [m.name, { type: m.type, labels: m.labels }]),
);
/** Labels every series may carry: `node` from the exporter, `cluster` from the Prometheus setup. */
const COMMON_LABELS = ["node", "cluster"];

interface Panel {
  id?: number;
  type: string;
  title?: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: {
    refId?: string;
    expr?: string;
    legendFormat?: string;
    datasource?: { type?: string; uid?: string };
  }[];
  panels?: Panel[];
}

function allPanels(panels: Panel[] = []): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels)]);
}

const dashboards = loadDashboards().map(({ file, json }) => ({
  file,
  json: json as unknown as {
    uid: string;
    title: string;
    tags?: string[];
    panels?: Panel[];
    templating: {
      list: {
        name: string;
        type: string;
        label?: string;
        query?: string;
        datasource?: { uid?: string };
        includeAll?: boolean;
        allValue?: string;
        refresh?: number;
      }[];
    };
  },
}));

/** The expression with string literals emptied, so label values never look like names. */
function withoutStrings(expr: string): string {
  return expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
}

const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
]);
const KEYWORDS_TOO = new Set([...KEYWORDS, "bool", "offset", "inf", "nan"]);

/** Series names an expression selects (identifiers that are neither functions nor keywords). */
function seriesNames(expr: string): string[] {
  const bare = withoutStrings(expr)
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  return [...bare.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)]
    .map((m) => m[1]!)
    .filter((name) => !KEYWORDS_TOO.has(name.toLowerCase()));
}

/** Each `name{matchers}` selector with the label names its matchers use. */
function selectors(expr: string): { name: string; labels: string[]; raw: string }[] {
  return [...withoutStrings(expr).matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)].map((m) => ({
    name: m[1]!,
    labels: [...m[2]!.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!),
    raw: m[0],
  }));
}

/** Labels in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`. */
function groupingLabels(expr: string): string[] {
  return [
    ...withoutStrings(expr).matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g),
  ].flatMap((m) =>
    m[1]!
      .split(",")
      .map((l) => l.trim())
      .filter(Boolean),
  );
}

/** The catalog entry behind a series name: the metric itself, or a histogram's _bucket/_sum/_count. */
function catalogEntry(name: string): { metric: string; labels: string[] } | undefined {
  const direct = CATALOG.get(name);
  if (direct) return { metric: name, labels: [...direct.labels, ...COMMON_LABELS] };
  const suffix = /^(.*)_(bucket|sum|count)$/.exec(name);
  const histogram = suffix && CATALOG.get(suffix[1]!);
  if (!suffix || histogram?.type !== "histogram") return undefined;
  return {
    metric: suffix[1]!,
    labels: [...histogram.labels, ...COMMON_LABELS, ...(suffix[2] === "bucket" ? ["le"] : [])],
  };
}

const queries = dashboardQueries();
const variables = dashboardVariables();

describe("dashboards", () => {
  it("the generated JSON is up to date (npm run dashboards:check)", async () => {
    expect(await staleDashboards()).toEqual([]);
  });

  it("every source in dashboards/src builds one dashboard, and building is deterministic", async () => {
    const sources = (await readdir(path.join(DASHBOARD_DIR, "src"))).filter((f) => f.endsWith(".ts")).sort();
    expect(DASHBOARDS.map((d) => d.source).sort()).toEqual(sources);
    for (const { build } of DASHBOARDS) expect(JSON.stringify(build())).toBe(JSON.stringify(build()));
  });

  it("every dashboard has its fixed uid, unique, a title and the project tag", () => {
    expect(dashboards.map((d) => d.file).sort()).toEqual(Object.keys(UIDS).sort());
    for (const { file, json } of dashboards) {
      expect(json.uid, file).toBe(UIDS[file]);
      expect(json.title, file).toMatch(/^imagefs-doctor \/ /);
      expect(json.tags, file).toContain("imagefs-doctor");
    }
    const uids = dashboards.map((d) => d.json.uid);
    expect(new Set(uids).size).toBe(uids.length);
  });

  it("is self-contained: no import inputs, library panels or fixed datasource uids", () => {
    for (const { file, json } of dashboards) {
      const text = JSON.stringify(json);
      expect(text, file).not.toMatch(/__inputs|__requires|libraryPanel|\$\{DS_/);
      const uids = [...text.matchAll(/"datasource":\{[^}]*"uid":"([^"]*)"/g)].map((m) => m[1]);
      expect(new Set(uids), file).toEqual(new Set(["$datasource"]));
    }
  });

  it("every panel has a title, a description, a unit and the templated datasource; ids are unique", () => {
    for (const { file, json } of dashboards) {
      const panels = allPanels(json.panels);
      const ids = panels.map((p) => p.id);
      expect(
        ids.every((id) => typeof id === "number"),
        file,
      ).toBe(true);
      expect(new Set(ids).size, file).toBe(ids.length);
      for (const panel of panels.filter((p) => p.type !== "row")) {
        const where = `${file}: panel ${panel.id} "${panel.title}"`;
        expect(panel.title, where).toBeTruthy();
        expect(panel.description?.length ?? 0, where).toBeGreaterThan(20);
        expect(UNITS.has(panel.fieldConfig?.defaults?.unit ?? ""), `${where}: unit`).toBe(true);
        expect(panel.datasource, where).toEqual({ type: "prometheus", uid: "$datasource" });
        expect(panel.targets?.length ?? 0, `${where}: targets`).toBeGreaterThan(0);
        const refIds = (panel.targets ?? []).map((t) => t.refId);
        expect(new Set(refIds).size, where).toBe(refIds.length);
        for (const target of panel.targets ?? []) {
          expect(target.datasource, where).toEqual({ type: "prometheus", uid: "$datasource" });
          expect(target.expr, where).toBeTruthy();
        }
      }
    }
  });

  it("has the datasource, cluster and node variables, the cluster one tolerating its absence", () => {
    for (const { file, json } of dashboards) {
      const list = json.templating.list;
      expect(
        list.map((v) => [v.name, v.type]),
        file,
      ).toEqual([
        ["datasource", "datasource"],
        ["cluster", "query"],
        ["node", "query"],
      ]);
      const [datasource, cluster, node] = list;
      expect(datasource).toMatchObject({ label: "Data source", query: "prometheus" });
      expect(cluster).toMatchObject({
        query: "label_values(imagefs_build_info, cluster)",
        includeAll: true,
        allValue: ".*",
        datasource: { uid: "$datasource" },
        refresh: 2,
      });
      expect(node).toMatchObject({
        query: 'label_values(imagefs_build_info{cluster=~"$cluster"}, node)',
        includeAll: true,
        datasource: { uid: "$datasource" },
        refresh: 2,
      });
    }
  });

  it("lists every panel query with its variables for the tests that run them", () => {
    const targets = dashboards.flatMap(({ json }) => allPanels(json.panels).flatMap((p) => p.targets ?? []));
    expect(queries).toHaveLength(targets.length);
    expect(new Set(queries.map((q) => q.dashboard))).toEqual(new Set(Object.values(UIDS)));
    for (const q of queries) {
      const defined = new Set([
        ...dashboards.find((d) => d.json.uid === q.dashboard)!.json.templating.list.map((v) => v.name),
        ...BUILTIN_VARIABLES,
      ]);
      expect(
        q.variables.filter((v) => !defined.has(v)),
        `${q.dashboard} ${q.panel}`,
      ).toEqual([]);
      expect(expandVariables(q.expr)).not.toContain("$");
    }
    expect(variables.map((v) => [v.dashboard, v.name, v.selector, v.label])).toContainEqual([
      "imagefs-node-storage",
      "node",
      'imagefs_build_info{cluster=~"$cluster"}',
      "node",
    ]);
  });

  it("every selector filters on the cluster and node variables", () => {
    for (const q of queries) {
      const raw = [...q.expr.matchAll(/(?<![\w:.])(imagefs_\w+)\s*(\{[^}]*\})?/g)];
      expect(raw.length, `${q.dashboard} ${q.panel}`).toBeGreaterThan(0);
      for (const m of raw) {
        expect(m[2], `${q.dashboard} ${q.panel}: ${m[0]}`).toContain('cluster=~"$cluster"');
        expect(m[2], `${q.dashboard} ${q.panel}: ${m[0]}`).toContain('node=~"$node"');
      }
    }
  });

  it("uses $__rate_interval in every range, and counters and buckets only inside rate() or increase()", () => {
    for (const q of queries) {
      const where = `${q.dashboard} ${q.panel} ${q.refId}: ${q.expr}`;
      for (const range of q.expr.matchAll(/\[([^\]]*)\]/g)) expect(range[1], where).toBe("$__rate_interval");
      for (const fn of q.expr.matchAll(/\b(rate|irate|increase|delta|deriv|idelta)\s*\(/g))
        expect(["rate", "increase"], where).toContain(fn[1]);
      for (const m of q.expr.matchAll(/(?<![\w:.])(imagefs_\w+)\s*\{[^}]*\}/g)) {
        const entry = catalogEntry(m[1]!);
        const cumulative = m[1] !== entry?.metric || CATALOG.get(m[1]!)?.type === "counter";
        const inside = ["rate", "increase"].some((fn) => q.expr.includes(`${fn}(${m[0]}[$__rate_interval])`));
        if (cumulative) expect(inside, `${where}: ${m[1]} outside rate()/increase()`).toBe(true);
      }
    }
  });

  it("names only metrics of collector/export/catalog.ts, with their own labels", () => {
    const exprs = [
      ...queries.map((q) => ({ where: `${q.dashboard} ${q.panel} ${q.refId}`, expr: q.expr, legend: "" })),
      ...variables.map((v) => ({ where: `${v.dashboard} $${v.name}`, expr: v.selector, legend: "" })),
    ];
    const legends = new Map<string, string>(
      dashboards.flatMap(({ json }) =>
        allPanels(json.panels).flatMap((p) =>
          (p.targets ?? []).map((t) => [`${json.uid} ${p.title} ${t.refId}`, t.legendFormat ?? ""] as const),
        ),
      ),
    );
    const used = new Set<string>();
    for (const { where, expr } of exprs) {
      const names = seriesNames(expr);
      if (expr) expect(names.length, where).toBeGreaterThan(0);
      const available = new Set<string>();
      for (const name of names) {
        const entry = catalogEntry(name);
        expect(entry, `${where}: ${name} is not in the metric catalog`).toBeDefined();
        if (!entry) continue;
        used.add(entry.metric);
        for (const l of entry.labels) available.add(l);
      }
      for (const s of selectors(expr)) {
        const entry = catalogEntry(s.name);
        for (const label of s.labels) expect(entry?.labels, `${where}: ${s.raw}`).toContain(label);
      }
      for (const label of groupingLabels(expr))
        expect([...available], `${where}: by/on ${label}`).toContain(label);
      const legend = legends.get(where) ?? "";
      for (const m of legend.matchAll(/\{\{\s*(\w+)\s*\}\}/g))
        expect([...available], `${where}: legend {{${m[1]}}}`).toContain(m[1]);
    }
    // The dashboards show every metric the exporter has, so a new metric gets a panel too.
    expect(METRICS.map((m) => m.name).filter((m) => !used.has(m))).toEqual([]);
  });

  describe("PromQL, parsed by promtool", () => {
    const run = requireParts("dashboard PromQL tests", ["promtool"]);
    let dir = "";
    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), "imagefs-dashboards-"));
    });
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    /** Runs `promtool check rules` on the expressions written as recording rules, one group per dashboard. */
    async function checkRules(groups: Map<string, { record: string; expr: string }[]>) {
      const file = path.join(dir, `rules-${groups.size}-${Date.now()}.yaml`);
      await writeFile(
        file,
        stringify({ groups: [...groups].map(([name, rules]) => ({ name, rules })) }, { lineWidth: 0 }),
      );
      return execa("promtool", ["check", "rules", file], { reject: false, all: true });
    }

    it.runIf(run)(
      "every panel query and variable selector parses, with example variable values",
      async () => {
        const groups = new Map<string, { record: string; expr: string }[]>();
        const add = (group: string, record: string, expr: string) => {
          groups.set(group, [
            ...(groups.get(group) ?? []),
            { record, expr: expandVariables(expr, EXAMPLE_VALUES) },
          ]);
        };
        const record = (uid: string, what: string) => `dashboard:${uid.replaceAll("-", "_")}:${what}`;
        for (const q of queries)
          add(q.dashboard, record(q.dashboard, `panel_${q.panelId}_${q.refId}`), q.expr);
        for (const v of variables.filter((v) => v.selector))
          add(v.dashboard, record(v.dashboard, `variable_${v.name}`), v.selector);
        expect([...groups.values()].flat().length).toBe(
          queries.length + variables.filter((v) => v.selector).length,
        );
        const result = await checkRules(groups);
        expect(result.all).toMatch(/SUCCESS: \d+ rules found/);
        expect(result.exitCode, result.all).toBe(0);
      },
    );

    it.runIf(run)("and promtool does reject a broken expression", async () => {
      const result = await checkRules(
        new Map([
          [
            "broken",
            [
              {
                record: "dashboard:broken",
                expr: expandVariables('sum by (node (rate(imagefs_collections_total{node=~"$node"}[5m]))'),
              },
            ],
          ],
        ]),
      );
      expect(result.exitCode).not.toBe(0);
      expect(result.all).toContain("could not parse expression");
    });
  });
});
