/**
 * Lazy pull: which layers were really served lazily, the additional layer stores' FUSE mounts
 * (mounted, served, answering, since when they hang, probe latency and failures, fusectl's
 * queue), broken lazy layers, and the store's and CRI-O's log lines by reason.
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
  ZERO_GOOD,
} from "../common.js";

const STORE = `${BY_NODE}, store`;

function probeQuantile(quantile: number): string {
  const buckets = rate(sel("imagefs_layer_store_probe_duration_seconds_bucket"));
  return `histogram_quantile(${quantile}, sum by (${STORE}, op, le) (${buckets}))`;
}

export function lazyPull(): Dashboard {
  return finish(
    dashboardBuilder(
      "imagefs-lazy-pull",
      "imagefs-doctor / Lazy pull",
      "Layers pulled lazily, partially or fully; health, latency and failures of the additional layer stores (stargz-store and other FUSE servers); broken lazy layers and the stores' log lines.",
    )
      .withRow(row("Layers"))
      .withPanel(
        stat({
          title: "Layers by pull mode",
          description:
            "Layers of the selected nodes now, by how they were pulled: lazy (served by an additional layer store), partial (zstd:chunked / eStargz partial pull), full. When lazy stays at zero with a store configured, the store's log lines below say why.",
          unit: "short",
          width: 24,
          queries: [
            {
              expr: `sum by (mode) (${sel("imagefs_layers", 'mode=~"lazy|partial|full"')})`,
              legend: "{{mode}}",
            },
          ],
          showName: true,
        }),
      )
      .withPanel(
        timeseries({
          title: "Layers per pull mode",
          description:
            "Layers per node by pull mode (lazy, partial, full, missing, unknown), stacked. Missing: the layer's data is gone from the store.",
          unit: "short",
          min: 0,
          stacked: true,
          queries: [
            {
              expr: `sum by (${BY_NODE}, mode) (${sel("imagefs_layers")})`,
              legend: "{{node}} {{mode}}",
            },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: "Layer bytes per pull mode",
          description:
            "Bytes of layers per node by pull mode, stacked: what lazy pulling saves on disk (a lazily served layer's bytes stay in the store's cache).",
          unit: "bytes",
          min: 0,
          stacked: true,
          queries: [
            {
              expr: `sum by (${BY_NODE}, mode) (${sel("imagefs_layer_bytes")})`,
              legend: "{{node}} {{mode}}",
            },
          ],
        }),
      )
      .withRow(row("Additional layer stores"))
      .withPanel(
        stateTimeline({
          title: "Layer store health",
          description:
            "Per additional layer store (by its ordinal in storage.conf): whether a FUSE filesystem is mounted at its path, whether a process serving it was found, and whether every probe of the mount answered within the deadline. A mount without its server hangs every pull and container start that touches it.",
          unit: "none",
          width: 24,
          queries: [
            {
              expr: `max by (${STORE}) (${sel("imagefs_layer_store_mounted")})`,
              legend: "{{node}} store {{store}} mounted",
            },
            {
              expr: `max by (${STORE}) (${sel("imagefs_layer_store_process_up")})`,
              legend: "{{node}} store {{store}} server running",
            },
            {
              expr: `min by (${STORE}) (${sel("imagefs_layer_store_up")})`,
              legend: "{{node}} store {{store}} answering",
            },
          ],
          mappings: boolMapping(["no", "red"], ["yes", "green"]),
        }),
      )
      .withPanel(
        table({
          title: "Unresponsive since",
          description:
            "Stores whose FUSE mount stopped answering probes, and since when (as first seen by this run of the exporter). Empty while every store answers.",
          unit: "dateTimeAsIso",
          queries: [
            {
              expr: `1000 * (max by (${STORE}) (${sel("imagefs_layer_store_unresponsive_since_seconds")}) > 0)`,
            },
          ],
          columns: { cluster: "Cluster", node: "Node", store: "Store", Value: "Unresponsive since" },
          noValue: "Every store answers",
        }),
      )
      .withPanel(
        timeseries({
          title: "Broken lazy layers",
          description:
            "Lazily pulled layers whose path in the store no longer exists (the store was restarted, crashed or lost its cache after the pull): containers using them fail with transport endpoint is not connected or No such file.",
          unit: "short",
          min: 0,
          queries: [
            {
              expr: `max by (${STORE}) (${sel("imagefs_layer_store_broken_layers")})`,
              legend: "{{node}} store {{store}}",
            },
          ],
          thresholds: ZERO_GOOD,
        }),
      )
      .withRow(row("FUSE probes"))
      .withPanel(
        timeseries({
          title: "FUSE probe latency",
          description:
            "99th and 50th percentile duration of the probe operations (statfs, readdir, stat, read) on each store's FUSE mount that answered, from a child process with a deadline. Slow answers here are slow container starts.",
          unit: "s",
          min: 0,
          queries: [
            { expr: probeQuantile(0.99), legend: "{{node}} store {{store}} {{op}} p99" },
            { expr: probeQuantile(0.5), legend: "{{node}} store {{store}} {{op}} p50" },
          ],
          dashed: ["B"],
        }),
      )
      .withPanel(
        timeseries({
          title: "FUSE probe failures",
          description:
            "Probe operations on each store's FUSE mount that failed or ran past the deadline, per minute, by operation and outcome.",
          unit: "cpm",
          min: 0,
          queries: [
            {
              expr: `60 * sum by (${STORE}, op, outcome) (${rate(sel("imagefs_layer_store_probe_failures_total"))})`,
              legend: "{{node}} store {{store}} {{op}} {{outcome}}",
            },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: "FUSE requests waiting",
          description:
            "Requests waiting for each store's FUSE server, from fusectl (/sys/fs/fuse/connections/*/waiting). A count that stays above zero is a server that stopped reading its queue.",
          unit: "short",
          min: 0,
          queries: [
            {
              expr: `max by (${STORE}) (${sel("imagefs_layer_store_fuse_waiting_requests")})`,
              legend: "{{node}} store {{store}}",
            },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: "FUSE probes answered",
          description:
            "Probe operations per minute that answered within the deadline, by store and operation.",
          unit: "cpm",
          min: 0,
          queries: [
            {
              expr: `60 * sum by (${STORE}, op) (${rate(sel("imagefs_layer_store_probe_duration_seconds_count"))})`,
              legend: "{{node}} store {{store}} {{op}}",
            },
          ],
        }),
      )
      .withRow(row("Log lines"))
      .withPanel(
        timeseries({
          title: "stargz-store events by reason",
          description:
            "Journal entries of stargz-store and its systemd unit per minute, by reason (the stargz-store and stargz-store-service rule packs): layers not lazily pullable (no TOC), registry 401/403, resolve or mount failures, verification failures, crashes and restarts.",
          unit: "cpm",
          min: 0,
          queries: [
            {
              expr: `60 * sum by (${BY_NODE}, pack, reason) (${rate(sel("imagefs_log_events_total", 'pack=~"stargz-store.*"'))})`,
              legend: "{{node}} {{reason}}",
            },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: "CRI-O layer store events by reason",
          description:
            "Journal entries of CRI-O and containers/storage about the additional layer store per minute, by reason (the crio-layer-store rule pack): store directory missing, invalid configuration, auth helper failures, linked layers missing.",
          unit: "cpm",
          min: 0,
          queries: [
            {
              expr: `60 * sum by (${BY_NODE}, reason) (${rate(sel("imagefs_log_events_total", 'pack="crio-layer-store"'))})`,
              legend: "{{node}} {{reason}}",
            },
          ],
        }),
      ),
  );
}
