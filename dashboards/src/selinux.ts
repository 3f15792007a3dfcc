/**
 * SELinux and relabel: the mode in force, files of the image stores whose label did not follow a
 * move (per store and actual/expected type pair), AVC denials of containers on store files,
 * relabel failures from the journal, and containers dying on dynamic-loader Permission denied.
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
  table,
  timeseries,
  ZERO_GOOD,
} from "../common.js";

export function selinux(): Dashboard {
  return finish(
    dashboardBuilder(
      "imagefs-selinux",
      "imagefs-doctor / SELinux and relabel",
      "SELinux mode, mislabeled files in the image stores, AVC denials of containers on store files, relabel failures and container loader errors.",
    )
      .withRow(row("Mode and label scan"))
      .withPanel(
        table({
          title: "SELinux mode",
          description: "The SELinux mode in force on each node: enforcing, permissive or disabled.",
          unit: "none",
          width: 8,
          queries: [{ expr: `max by (${BY_NODE}, mode) (${sel("imagefs_selinux_mode")}) == 1` }],
          hide: ["Value"],
          columns: { cluster: "Cluster", node: "Node", mode: "Mode" },
        }),
      )
      .withPanel(
        stat({
          title: "Nodes not enforcing",
          description:
            "Selected nodes where SELinux is permissive or disabled: labels are not enforced there, so a mislabeled store works until the node enforces again.",
          unit: "short",
          width: 4,
          height: 8,
          queries: [
            {
              expr: `count(max by (${BY_NODE}, mode) (${sel("imagefs_selinux_mode", 'mode!="enforcing"')}) == 1) or vector(0)`,
              legend: "not enforcing",
            },
          ],
          thresholds: ZERO_GOOD,
        }),
      )
      .withPanel(
        timeseries({
          title: "Files checked per store",
          description:
            "Files whose label the last scan of each store read (within the scan's budget of files and time).",
          unit: "short",
          width: 6,
          min: 0,
          queries: [
            {
              expr: `max by (${BY_NODE}, store_role) (${sel("imagefs_selinux_files_checked")})`,
              legend: "{{node}} {{store_role}}",
            },
          ],
        }),
      )
      .withPanel(
        stat({
          title: "Label scan coverage",
          description:
            "Whether the budget ended the store's label scan before the whole tree was seen (sampled): counts of mislabeled files are then lower bounds. `imagefs-doctor selinux-scan` audits every file.",
          unit: "none",
          width: 6,
          height: 8,
          queries: [
            {
              expr: `max by (${BY_NODE}, store_role) (${sel("imagefs_selinux_scan_sampled")})`,
              legend: "{{node}} {{store_role}}",
            },
          ],
          mappings: boolMapping(["whole tree", "green"], ["sampled", "yellow"]),
          showName: true,
        }),
      )
      .withRow(row("Mislabeled files"))
      .withPanel(
        table({
          title: "Mislabeled files per store and type pair",
          description:
            "Files of each store whose SELinux type differs from the one the policy's file contexts (and graphroot's own labels) expect, per actual and expected type. The usual fix is `semanage fcontext -a -e /var/lib/containers <store>` then `restorecon -R -v <store>`.",
          unit: "short",
          queries: [
            {
              expr: `sum by (${BY_NODE}, store_role, actual_type, expected_type) (${sel("imagefs_selinux_mislabeled_files")})`,
            },
          ],
          columns: {
            cluster: "Cluster",
            node: "Node",
            store_role: "Store",
            actual_type: "Actual type",
            expected_type: "Expected type",
            Value: "Files",
          },
          sortBy: "Files",
          noValue: "No mislabeled files",
        }),
      )
      .withPanel(
        timeseries({
          title: "Mislabeled files per store",
          description: "Mislabeled files per store over time: a relabel that worked brings the line to zero.",
          unit: "short",
          min: 0,
          queries: [
            {
              expr: `sum by (${BY_NODE}, store_role) (${sel("imagefs_selinux_mislabeled_files")})`,
              legend: "{{node}} {{store_role}}",
            },
          ],
        }),
      )
      .withRow(row("Denials and failures"))
      .withPanel(
        timeseries({
          title: "AVC denials on store files",
          description:
            "AVC denials of container processes on files with store types, per minute, by source type, target type and class. A container_t process denied on var_lib_t or default_t files usually means a store that was not relabeled after a move.",
          unit: "cpm",
          min: 0,
          queries: [
            {
              expr: `60 * sum by (${BY_NODE}, source_type, target_type, tclass) (${rate(sel("imagefs_selinux_avc_denials_total"))})`,
              legend: "{{node}} {{source_type}} → {{target_type}}:{{tclass}}",
            },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: "Relabel failures by reason",
          description:
            "Journal entries of restorecon, chcon, semanage and the runtime failing to relabel, per minute, by reason (the selinux-relabel rule pack): a filesystem that cannot hold labels, a read-only one, a denied relabel, an equivalence conflict.",
          unit: "cpm",
          min: 0,
          queries: [
            {
              expr: `60 * sum by (${BY_NODE}, unit, reason) (${rate(sel("imagefs_log_events_total", 'pack="selinux-relabel"'))})`,
              legend: "{{node}} {{reason}} ({{unit}})",
            },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: "Container loader errors",
          description:
            "Container logs with dynamic-loader Permission denied errors (e.g. `cannot apply additional memory protection after relocation`), by kind: the symptom of image files with the wrong label.",
          unit: "short",
          width: 18,
          min: 0,
          queries: [
            {
              expr: `sum by (${BY_NODE}, kind) (${sel("imagefs_container_loader_errors")})`,
              legend: "{{node}} {{kind}}",
            },
          ],
        }),
      )
      .withPanel(
        stat({
          title: "Loader errors now",
          description:
            "Container logs with dynamic-loader Permission denied errors in the last cycle, by kind.",
          unit: "short",
          width: 6,
          height: 8,
          queries: [
            { expr: `sum by (kind) (${sel("imagefs_container_loader_errors")})`, legend: "{{kind}}" },
          ],
          thresholds: ZERO_GOOD,
          showName: true,
        }),
      ),
  );
}
