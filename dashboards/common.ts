/**
 * What every imagefs-doctor dashboard shares: the datasource, cluster and node variables, the
 * selector every query starts from, and panel builders with the project's defaults (a unit, a
 * description and the templated datasource on every panel, fixed refIds). Dashboards are built
 * with the Grafana foundation SDK; `generate.ts` writes them as JSON (the classic dashboard model,
 * which Grafana's provisioning and dashboard sidecar load on every supported version).
 */
import * as common from "@grafana/grafana-foundation-sdk/common";
import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import * as prometheus from "@grafana/grafana-foundation-sdk/prometheus";
import { PanelBuilder as StatPanelBuilder } from "@grafana/grafana-foundation-sdk/stat";
import { PanelBuilder as StateTimelinePanelBuilder } from "@grafana/grafana-foundation-sdk/statetimeline";
import { PanelBuilder as TablePanelBuilder } from "@grafana/grafana-foundation-sdk/table";
import { PanelBuilder as TimeseriesPanelBuilder } from "@grafana/grafana-foundation-sdk/timeseries";
import type { MetricName } from "../collector/export/catalog.js";

/** Every panel and every query reads from the dashboard's datasource variable. */
export const DATASOURCE = { type: "prometheus", uid: "$datasource" } as const;

/** All imagefs-doctor dashboards carry this tag; the dashboards' link menu lists them by it. */
export const TAG = "imagefs-doctor";

/** A series name a query may use: a catalog metric, or a histogram's _bucket, _sum or _count. */
type HistogramName = "imagefs_layer_store_probe_duration_seconds";
export type SeriesName = MetricName | `${HistogramName}_${"bucket" | "sum" | "count"}`;

/**
 * The selector every query starts from: the cluster and node variables, then extra matchers.
 * `cluster=~"$cluster"` also matches series without a cluster label (the variable's "All" is ".*").
 */
export function sel(metric: SeriesName, ...matchers: string[]): string {
  return `${metric}{${['cluster=~"$cluster"', 'node=~"$node"', ...matchers].join(", ")}}`;
}

/** `rate()` over the window Grafana computes from the scrape interval. */
export function rate(selector: string): string {
  return `rate(${selector}[$__rate_interval])`;
}

/** Labels every aggregation keeps, so nodes (and clusters) are never summed together. */
export const BY_NODE = "cluster, node";

export interface Query {
  expr: string;
  legend?: string;
  /** An instant query shown as a table (one row per series, labels as columns). */
  table?: boolean;
  /** An instant query (stat panels showing the current value). */
  instant?: boolean;
}

function target(query: Query, refId: string): prometheus.DataqueryBuilder {
  const builder = new prometheus.DataqueryBuilder()
    .datasource(DATASOURCE)
    .expr(query.expr)
    .refId(refId)
    .legendFormat(query.legend ?? "__auto");
  if (query.table) builder.format(prometheus.PromQueryFormat.Table).instant();
  else if (query.instant) builder.instant();
  else builder.range();
  return builder;
}

/** What every panel has: a title, a description, a unit, a size and its queries. */
export interface PanelSpec {
  title: string;
  description: string;
  /** A Grafana unit id (see test/dashboards.test.ts for those accepted). */
  unit: string;
  queries: Query[];
  /** Width on the 24-column grid and height in grid rows. */
  width?: number;
  height?: number;
  min?: number;
  max?: number;
  decimals?: number;
  mappings?: dashboard.ValueMapping[];
  /** Threshold steps: the first one's value is null (the base colour). */
  thresholds?: dashboard.Threshold[];
  noValue?: string;
}

type AnyPanelBuilder =
  | TimeseriesPanelBuilder
  | StatPanelBuilder
  | TablePanelBuilder
  | StateTimelinePanelBuilder;

function configure<T extends AnyPanelBuilder>(builder: T, spec: PanelSpec): T {
  builder
    .title(spec.title)
    .description(spec.description)
    .datasource(DATASOURCE)
    .unit(spec.unit)
    .span(spec.width ?? 12)
    .height(spec.height ?? 8);
  spec.queries.forEach((query, index) => {
    builder.withTarget(target(query, String.fromCharCode(65 + index)));
  });
  if (spec.min !== undefined) builder.min(spec.min);
  if (spec.max !== undefined) builder.max(spec.max);
  if (spec.decimals !== undefined) builder.decimals(spec.decimals);
  if (spec.mappings) builder.mappings(spec.mappings);
  if (spec.noValue !== undefined) builder.noValue(spec.noValue);
  if (spec.thresholds)
    builder.thresholds(
      new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps(spec.thresholds),
    );
  return builder;
}

export interface TimeseriesSpec extends PanelSpec {
  stacked?: boolean;
  /** refIds whose series are drawn dashed: thresholds next to the values they bound. */
  dashed?: string[];
  /** Draw the panel's thresholds as dashed lines. */
  showThresholds?: boolean;
}

export function timeseries(spec: TimeseriesSpec): TimeseriesPanelBuilder {
  const builder = configure(new TimeseriesPanelBuilder(), spec)
    .lineWidth(1)
    .fillOpacity(spec.stacked ? 40 : 10)
    .showPoints(common.VisibilityMode.Never)
    .spanNulls(false)
    .legend(
      new common.VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(common.LegendDisplayMode.Table)
        .placement(common.LegendPlacement.Bottom)
        .calcs(["lastNotNull", "max"]),
    )
    .tooltip(
      new common.VizTooltipOptionsBuilder()
        .mode(common.TooltipDisplayMode.Multi)
        .sort(common.SortOrder.Descending),
    );
  if (spec.stacked)
    builder.stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal).group("A"));
  for (const refId of spec.dashed ?? []) {
    builder.overrideByQuery(refId, [
      { id: "custom.lineStyle", value: { fill: "dash", dash: [10, 10] } },
      { id: "custom.fillOpacity", value: 0 },
    ]);
  }
  if (spec.showThresholds)
    builder.thresholdsStyle(
      new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Dashed),
    );
  return builder;
}

export interface StatSpec extends PanelSpec {
  /** Show the series' name (e.g. a label value) instead of the number. */
  showName?: boolean;
}

export function stat(spec: StatSpec): StatPanelBuilder {
  return configure(new StatPanelBuilder(), {
    ...spec,
    height: spec.height ?? 4,
    width: spec.width ?? 6,
    queries: spec.queries.map((q) => ({ ...q, instant: true })),
  })
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(["lastNotNull"]).values(false))
    .colorMode(
      spec.mappings || spec.thresholds ? common.BigValueColorMode.Background : common.BigValueColorMode.None,
    )
    .graphMode(common.BigValueGraphMode.None)
    .textMode(spec.showName ? common.BigValueTextMode.ValueAndName : common.BigValueTextMode.Auto);
}

export interface TableSpec extends PanelSpec {
  /** Columns to hide besides the query's timestamp. */
  hide?: string[];
  /** Column order and names: label name -> header. */
  columns?: Record<string, string>;
  sortBy?: string;
  /** Join the queries' series on their labels: one row per label set, one column per query. */
  merge?: boolean;
  /** Units of single columns (by their header) where they differ from the panel's. */
  columnUnits?: Record<string, string>;
}

/** One row per series: an instant query in table format, the timestamp column hidden. */
export function table(spec: TableSpec): TablePanelBuilder {
  const columns = spec.columns ?? {};
  const builder = configure(new TablePanelBuilder(), {
    ...spec,
    queries: spec.queries.map((q) => ({ ...q, table: true })),
  }).cellHeight(common.TableCellHeight.Sm);
  if (spec.merge) builder.withTransformation({ id: "merge", options: {} });
  builder.withTransformation({
    id: "organize",
    options: {
      excludeByName: Object.fromEntries(["Time", ...(spec.hide ?? [])].map((c) => [c, true])),
      indexByName: Object.fromEntries(Object.keys(columns).map((c, i) => [c, i])),
      renameByName: columns,
    },
  });
  for (const [column, unit] of Object.entries(spec.columnUnits ?? {}))
    builder.overrideByName(column, [{ id: "unit", value: unit }]);
  if (spec.sortBy)
    builder.sortBy([new common.TableSortByFieldStateBuilder().displayName(spec.sortBy).desc(true)]);
  return builder;
}

/** A state over time per series (up/down, mounted or not), from value mappings. */
export function stateTimeline(spec: PanelSpec): StateTimelinePanelBuilder {
  return configure(new StateTimelinePanelBuilder(), spec)
    .showValue(common.VisibilityMode.Never)
    .mergeValues(true)
    .fillOpacity(70)
    .legend(new common.VizLegendOptionsBuilder().showLegend(false));
}

/** A value mapping for 0/1 gauges: what 0 and 1 mean, and their colours. */
export function boolMapping(zero: [string, string], one: [string, string]): dashboard.ValueMapping[] {
  return [
    {
      type: dashboard.MappingType.ValueToText,
      options: {
        "0": { text: zero[0], color: zero[1], index: 0 },
        "1": { text: one[0], color: one[1], index: 1 },
      },
    },
  ];
}

export const UP_DOWN = boolMapping(["down", "red"], ["up", "green"]);

/** Thresholds for counts where anything above zero needs a look. */
export const ZERO_GOOD: dashboard.Threshold[] = [
  { value: null, color: "green" },
  { value: 1, color: "red" },
];

export function row(title: string): dashboard.RowBuilder {
  return new dashboard.RowBuilder(title);
}

/** The dashboard with the project's settings: tags, variables, links, time range and refresh. */
export function dashboardBuilder(
  uid: string,
  title: string,
  description: string,
): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags([TAG])
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .time({ from: "now-6h", to: "now" })
    .timezone("browser")
    .refresh("1m")
    .link(
      new dashboard.DashboardLinkBuilder("imagefs-doctor")
        .type(dashboard.DashboardLinkType.Dashboards)
        .tags([TAG])
        .asDropdown(true)
        .includeVars(true)
        .keepTime(true),
    )
    .withVariable(
      new dashboard.DatasourceVariableBuilder("datasource").label("Data source").type("prometheus"),
    )
    .withVariable(
      labelVariable("cluster", "Cluster", "label_values(imagefs_build_info, cluster)")
        .description(
          "The cluster label, when one Prometheus holds several clusters; All also matches series without a cluster label.",
        )
        .allValue(".*"),
    )
    .withVariable(
      labelVariable("node", "Node", 'label_values(imagefs_build_info{cluster=~"$cluster"}, node)')
        .description("Nodes where imagefs-doctor serve exports metrics.")
        .allValue(".+"),
    );
}

function labelVariable(name: string, label: string, query: string): dashboard.QueryVariableBuilder {
  return new dashboard.QueryVariableBuilder(name)
    .label(label)
    .query(query)
    .definition(query)
    .datasource(DATASOURCE)
    .current({ selected: true, text: "All", value: "$__all" })
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true);
}

/** Builds the dashboard and numbers its panels in order, so panel ids are stable too. */
export function finish(builder: dashboard.DashboardBuilder): dashboard.Dashboard {
  const built = builder.build();
  let id = 0;
  for (const panel of built.panels ?? []) {
    panel.id = ++id;
    for (const inner of "panels" in panel ? (panel.panels ?? []) : []) inner.id = ++id;
  }
  return built;
}
