/**
 * Collector health: whether imagefs-doctor itself is collecting — cycles, their duration and age,
 * each source's success and duration, journal entries it had to drop, and the versions running.
 */
import type { Dashboard } from "@grafana/grafana-foundation-sdk/dashboard";
import {
  BY_NODE,
  boolMapping,
  dashboardBuilder,
  finish,
  rate,
  row,
  sel,
  stat,
  stateTimeline,
  table,
  timeseries,
} from "../common.js";

export function collectorHealth(): Dashboard {
  return finish(
    dashboardBuilder(
      "imagefs-collector",
      "imagefs-doctor / Collector health",
      "Whether imagefs-doctor serve is collecting on each node: cycles, their duration and age, each source's success and duration, dropped journal entries and versions.",
    )
      .withRow(row("Collection cycles"))
      .withPanel(
        stat({
          title: "Nodes reporting",
          description: "Selected nodes whose imagefs-doctor exporter is scraped.",
          unit: "short",
          queries: [{ expr: `count(${sel("imagefs_build_info")})`, legend: "nodes" }],
        }),
      )
      .withPanel(
        timeseries({
          title: "Age of the last collection",
          description:
            "Time since each node's last collection cycle ended. It should stay under the serve --interval (60 s by default) plus one cycle's duration; a growing age is a collector stuck in a cycle.",
          unit: "s",
          width: 18,
          min: 0,
          queries: [
            {
              expr: `time() - max by (${BY_NODE}) (${sel("imagefs_collection_timestamp_seconds")})`,
              legend: "{{node}}",
            },
          ],
          thresholds: [
            { value: null, color: "green" },
            { value: 180, color: "yellow" },
            { value: 600, color: "red" },
          ],
          showThresholds: true,
        }),
      )
      .withPanel(
        timeseries({
          title: "Collection duration",
          description: "How long each node's last collection cycle took, all sources included.",
          unit: "s",
          min: 0,
          queries: [
            {
              expr: `max by (${BY_NODE}) (${sel("imagefs_collection_duration_seconds")})`,
              legend: "{{node}}",
            },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: "Collections per minute",
          description:
            "Collection cycles completed per minute on each node (one per minute at the default interval).",
          unit: "cpm",
          min: 0,
          queries: [
            {
              expr: `60 * sum by (${BY_NODE}) (${rate(sel("imagefs_collections_total"))})`,
              legend: "{{node}}",
            },
          ],
        }),
      )
      .withRow(row("Sources"))
      .withPanel(
        stateTimeline({
          title: "Source success",
          description:
            "Whether each source ran to completion (ok, or absent on this node) in the cycle: failed means an error or its deadline. The findings that depend on a failed source are missing; `imagefs-doctor collect` on the node shows the error.",
          unit: "none",
          width: 24,
          height: 10,
          queries: [
            {
              expr: `min by (${BY_NODE}, source) (${sel("imagefs_source_success")})`,
              legend: "{{node}} {{source}}",
            },
          ],
          mappings: boolMapping(["failed", "red"], ["ok", "green"]),
        }),
      )
      .withPanel(
        timeseries({
          title: "Source duration",
          description:
            "How long each source took in the last cycle. A source close to its deadline (e.g. the filesystems or layer-stores source on a hung mount) is the first to fail.",
          unit: "s",
          min: 0,
          queries: [
            {
              expr: `max by (${BY_NODE}, source) (${sel("imagefs_source_duration_seconds")})`,
              legend: "{{node}} {{source}}",
            },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: "Journal entries dropped",
          description:
            "Journal entries per minute that matched a rule pack or the AVC filter but were not read because a per-cycle limit was reached: event counts are then lower bounds.",
          unit: "cpm",
          min: 0,
          queries: [
            {
              expr: `60 * sum by (${BY_NODE}, source) (${rate(sel("imagefs_journal_entries_dropped_total"))})`,
              legend: "{{node}} {{source}}",
            },
          ],
        }),
      )
      .withRow(row("Build"))
      .withPanel(
        table({
          title: "Versions per node",
          description: "The imagefs-doctor version each node runs.",
          unit: "none",
          width: 16,
          queries: [{ expr: `max by (${BY_NODE}, version) (${sel("imagefs_build_info")})` }],
          hide: ["Value"],
          columns: { cluster: "Cluster", node: "Node", version: "Version" },
        }),
      )
      .withPanel(
        stat({
          title: "Nodes per version",
          description:
            "How many selected nodes run each imagefs-doctor version: more than one during a rollout.",
          unit: "short",
          width: 8,
          height: 8,
          queries: [{ expr: `count by (version) (${sel("imagefs_build_info")})`, legend: "{{version}}" }],
          showName: true,
        }),
      ),
  );
}
