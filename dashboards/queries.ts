/**
 * Every query of the generated dashboards (dashboards/*.json), read from the JSON itself, with the
 * template variables each one uses: for tests that parse them (test/dashboards.test.ts) or run
 * them against a real Prometheus. `expandVariables` substitutes the variables by values, as
 * Grafana does before it sends a query.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const DASHBOARD_DIR = path.dirname(fileURLToPath(import.meta.url));

/** One panel query. */
export interface DashboardQuery {
  /** The dashboard's uid. */
  dashboard: string;
  /** The JSON file in dashboards/. */
  file: string;
  panel: string;
  panelId: number;
  refId: string;
  expr: string;
  /** An instant query (stat and table panels) rather than a range query. */
  instant: boolean;
  /** Template variables the expression uses, e.g. ["cluster", "node", "__rate_interval"]. */
  variables: string[];
}

/** One query variable: `label_values(<selector>, <label>)`. */
export interface DashboardVariable {
  dashboard: string;
  file: string;
  name: string;
  query: string;
  /** The series selector, `""` when the query is `label_values(<label>)`. */
  selector: string;
  label: string;
  variables: string[];
  includeAll: boolean;
  allValue?: string;
}

/** Values that make every expression a valid query (the variables' "All" and a 5m rate window). */
export const EXAMPLE_VALUES: Readonly<Record<string, string>> = {
  __rate_interval: "5m",
  cluster: ".*",
  node: "n1",
};

/** The dashboard JSON, as far as these lists need it. */
interface PanelJson {
  id?: number;
  type: string;
  title?: string;
  targets?: { refId?: string; expr?: string; instant?: boolean; range?: boolean }[];
  panels?: PanelJson[];
}
interface DashboardJson {
  uid: string;
  panels?: PanelJson[];
  templating?: {
    list?: {
      name: string;
      type: string;
      query?: string | { query?: string };
      includeAll?: boolean;
      allValue?: string;
    }[];
  };
}

const VARIABLE = /\$(?:\{(\w+)(?::[\w]+)?\}|(\w+))/g;

/** Names of the template variables an expression uses. */
export function variablesOf(expr: string): string[] {
  return [...new Set([...expr.matchAll(VARIABLE)].map((m) => (m[1] ?? m[2])!))];
}

/** Substitutes `$name` and `${name}`; throws when a variable has no value. */
export function expandVariables(
  expr: string,
  values: Readonly<Record<string, string>> = EXAMPLE_VALUES,
): string {
  return expr.replace(VARIABLE, (_, braced?: string, bare?: string) => {
    const name = (braced ?? bare)!;
    const value = values[name];
    if (value === undefined) throw new Error(`no value for the variable $${name} in ${expr}`);
    return value;
  });
}

/** The generated dashboards, by file name. */
export function loadDashboards(dir = DASHBOARD_DIR): { file: string; json: DashboardJson }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => ({ file, json: JSON.parse(readFileSync(path.join(dir, file), "utf8")) as DashboardJson }));
}

function panelsOf(panels: PanelJson[] = []): PanelJson[] {
  return panels.flatMap((p) => [p, ...panelsOf(p.panels)]);
}

/** Every target of every panel of every generated dashboard. */
export function dashboardQueries(dir = DASHBOARD_DIR): DashboardQuery[] {
  return loadDashboards(dir).flatMap(({ file, json }) =>
    panelsOf(json.panels).flatMap((panel) =>
      (panel.targets ?? []).map((t) => ({
        dashboard: json.uid,
        file,
        panel: panel.title ?? "",
        panelId: panel.id ?? 0,
        refId: t.refId ?? "",
        expr: t.expr ?? "",
        instant: t.instant === true && t.range !== true,
        variables: variablesOf(t.expr ?? ""),
      })),
    ),
  );
}

const LABEL_VALUES = /^label_values\((?:(.*),\s*)?(\w+)\)$/s;

/** Every query variable of every generated dashboard. */
export function dashboardVariables(dir = DASHBOARD_DIR): DashboardVariable[] {
  return loadDashboards(dir).flatMap(({ file, json }) =>
    (json.templating?.list ?? [])
      .filter((v) => v.type === "query")
      .map((v) => {
        const query = typeof v.query === "string" ? v.query : (v.query?.query ?? "");
        const match = LABEL_VALUES.exec(query.trim());
        if (!match) throw new Error(`${file}: variable ${v.name}: not a label_values() query: ${query}`);
        return {
          dashboard: json.uid,
          file,
          name: v.name,
          query,
          selector: match[1] ?? "",
          label: match[2]!,
          variables: variablesOf(query),
          includeAll: v.includeAll === true,
          ...(v.allValue !== undefined ? { allValue: v.allValue } : {}),
        };
      }),
  );
}
