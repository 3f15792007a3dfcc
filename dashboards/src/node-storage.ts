/**
 * Node storage overview: the filesystem layout, each kubelet role's disk and inodes against the
 * eviction thresholds the kubelet really enforces, read-only and unreachable filesystems, the
 * runtime, and the findings of the last cycle.
 */
import type { Dashboard } from "@grafana/grafana-foundation-sdk/dashboard";
import {
  BY_NODE,
  boolMapping,
  dashboardBuilder,
  finish,
  row,
  sel,
  stat,
  stateTimeline,
  table,
  timeseries,
  UP_DOWN,
  ZERO_GOOD,
} from "../common.js";

/** The roles the kubelet sets eviction thresholds on. */
const KUBELET_ROLES = 'role=~"nodefs|imagefs|containerfs"';

/** Below zero the kubelet evicts: red under 0, green above. */
const HEADROOM = [
  { value: null, color: "red" },
  { value: 0, color: "green" },
];

/**
 * Available minus the highest threshold on the role (hard or soft, any signal): the first level
 * at which the kubelet starts evicting.
 */
function headroom(available: "bytes" | "files"): string {
  const value =
    available === "bytes"
      ? sel("imagefs_filesystem_available_bytes", KUBELET_ROLES)
      : sel("imagefs_filesystem_files_free", KUBELET_ROLES);
  const threshold =
    available === "bytes" ? sel("imagefs_eviction_threshold_bytes") : sel("imagefs_eviction_threshold_files");
  return `min by (${BY_NODE}, role) (${value}) - on (${BY_NODE}, role) max by (${BY_NODE}, role) (${threshold})`;
}

export function nodeStorage(): Dashboard {
  return finish(
    dashboardBuilder(
      "imagefs-node-storage",
      "imagefs-doctor / Node storage",
      "Filesystem layout, disk and inode usage per kubelet role against the effective eviction thresholds, and the findings of imagefs-doctor.",
    )
      .withRow(row("Node"))
      .withPanel(
        table({
          title: "Filesystem layout",
          description:
            "How the node's container storage is laid out: single (one filesystem), split-image (images on their own filesystem, KEP-4191 or CRI-O imagestore), separate-runtime, three-way, containerfs-only or unknown.",
          unit: "none",
          width: 8,
          queries: [{ expr: `max by (${BY_NODE}, topology) (${sel("imagefs_topology_info")})` }],
          hide: ["Value"],
          columns: { cluster: "Cluster", node: "Node", topology: "Layout" },
        }),
      )
      .withPanel(
        table({
          title: "Container runtime",
          description: "The runtime that answered over CRI, and its version.",
          unit: "none",
          width: 8,
          queries: [{ expr: `max by (${BY_NODE}, runtime, version) (${sel("imagefs_runtime_info")})` }],
          hide: ["Value"],
          columns: { cluster: "Cluster", node: "Node", runtime: "Runtime", version: "Version" },
        }),
      )
      .withPanel(
        stat({
          title: "Runtime up",
          description: "Whether a CRI endpoint (CRI-O or containerd) answered in the last collection cycle.",
          unit: "none",
          width: 8,
          height: 8,
          queries: [{ expr: `max by (${BY_NODE}) (${sel("imagefs_runtime_up")})`, legend: "{{node}}" }],
          mappings: UP_DOWN,
        }),
      )
      .withRow(row("Filesystems"))
      .withPanel(
        stateTimeline({
          title: "Filesystem up",
          description:
            "Whether each role's path could be examined: down when the path is missing, its stat failed or the filesystem did not answer within the deadline (a hung FUSE or network mount).",
          unit: "none",
          queries: [
            {
              expr: `min by (${BY_NODE}, role, store) (${sel("imagefs_filesystem_up")})`,
              legend: "{{node}} {{role}}/{{store}}",
            },
          ],
          mappings: UP_DOWN,
        }),
      )
      .withPanel(
        stateTimeline({
          title: "Read-only filesystems",
          description:
            "Whether the filesystem holding each role's path is mounted read-only (after an I/O error the kernel may remount it so); pulls and container starts then fail.",
          unit: "none",
          queries: [
            {
              expr: `max by (${BY_NODE}, role, store) (${sel("imagefs_filesystem_readonly")})`,
              legend: "{{node}} {{role}}/{{store}}",
            },
          ],
          mappings: boolMapping(["read-write", "green"], ["read-only", "red"]),
        }),
      )
      .withPanel(
        table({
          title: "Filesystems per role",
          description:
            "The filesystem type and device (major:minor) under each role: two roles on the same device share one filesystem, whatever their paths look like.",
          unit: "none",
          width: 24,
          queries: [
            {
              expr: `max by (${BY_NODE}, role, store, fstype, device) (${sel("imagefs_filesystem_info")})`,
            },
          ],
          hide: ["Value"],
          columns: {
            cluster: "Cluster",
            node: "Node",
            role: "Role",
            store: "Store",
            fstype: "Type",
            device: "Device",
          },
        }),
      )
      .withPanel(
        table({
          title: "Capacity per role",
          description:
            "Like df for each role's filesystem: size, free bytes (including those reserved for root), bytes available to unprivileged writers (what the kubelet compares with its thresholds), inodes and free inodes.",
          unit: "bytes",
          width: 24,
          merge: true,
          queries: [
            { expr: `max by (${BY_NODE}, role, store) (${sel("imagefs_filesystem_size_bytes")})` },
            { expr: `max by (${BY_NODE}, role, store) (${sel("imagefs_filesystem_free_bytes")})` },
            { expr: `max by (${BY_NODE}, role, store) (${sel("imagefs_filesystem_available_bytes")})` },
            { expr: `max by (${BY_NODE}, role, store) (${sel("imagefs_filesystem_files")})` },
            { expr: `max by (${BY_NODE}, role, store) (${sel("imagefs_filesystem_files_free")})` },
          ],
          columns: {
            cluster: "Cluster",
            node: "Node",
            role: "Role",
            store: "Store",
            "Value #A": "Size",
            "Value #B": "Free",
            "Value #C": "Available",
            "Value #D": "Inodes",
            "Value #E": "Free inodes",
          },
          columnUnits: { Inodes: "short", "Free inodes": "short" },
        }),
      )
      .withRow(row("Disk space against the eviction thresholds"))
      .withPanel(
        timeseries({
          title: "Available bytes and eviction thresholds",
          description:
            "Bytes available to unprivileged writers on each kubelet role's filesystem (what the kubelet compares), with the effective eviction thresholds on that role drawn dashed: below a hard threshold the kubelet evicts pods at once, below a soft one after its grace period.",
          unit: "bytes",
          min: 0,
          queries: [
            {
              expr: sel("imagefs_filesystem_available_bytes", KUBELET_ROLES),
              legend: "{{node}} {{role}} available",
            },
            {
              expr: sel("imagefs_eviction_threshold_bytes"),
              legend: "{{node}} {{role}} {{kind}} threshold ({{signal}})",
            },
          ],
          dashed: ["B"],
        }),
      )
      .withPanel(
        timeseries({
          title: "Disk headroom above the eviction threshold",
          description:
            "Available bytes minus the highest eviction threshold on the role (hard or soft): how much more can be written before the kubelet starts evicting. Below zero the node is under disk pressure.",
          unit: "bytes",
          queries: [{ expr: headroom("bytes"), legend: "{{node}} {{role}}" }],
          thresholds: HEADROOM,
          showThresholds: true,
        }),
      )
      .withPanel(
        timeseries({
          title: "Disk usage and the image GC threshold",
          description:
            "Share of each role's filesystem in use (size minus available, over size), with the kubelet's imageGCHighThresholdPercent drawn dashed: image garbage collection starts when the image filesystem's usage reaches it.",
          unit: "percentunit",
          min: 0,
          max: 1,
          width: 24,
          queries: [
            {
              expr: `1 - ${sel("imagefs_filesystem_available_bytes")} / ${sel("imagefs_filesystem_size_bytes")}`,
              legend: "{{node}} {{role}}/{{store}}",
            },
            {
              expr: `max by (${BY_NODE}) (${sel("imagefs_image_gc_high_threshold_ratio")})`,
              legend: "{{node}} image GC high threshold",
            },
          ],
          dashed: ["B"],
        }),
      )
      .withRow(row("Inodes against the eviction thresholds"))
      .withPanel(
        timeseries({
          title: "Free inodes and eviction thresholds",
          description:
            "Free inodes on each kubelet role's filesystem, with the effective inodesFree eviction thresholds drawn dashed. Image layers hold many small files: an image filesystem can run out of inodes long before bytes.",
          unit: "short",
          min: 0,
          queries: [
            {
              expr: sel("imagefs_filesystem_files_free", KUBELET_ROLES),
              legend: "{{node}} {{role}} free",
            },
            {
              expr: sel("imagefs_eviction_threshold_files"),
              legend: "{{node}} {{role}} {{kind}} threshold ({{signal}})",
            },
          ],
          dashed: ["B"],
        }),
      )
      .withPanel(
        timeseries({
          title: "Inode headroom above the eviction threshold",
          description:
            "Free inodes minus the highest inodesFree eviction threshold on the role (hard or soft). Below zero the kubelet evicts for inode pressure.",
          unit: "short",
          queries: [{ expr: headroom("files"), legend: "{{node}} {{role}}" }],
          thresholds: HEADROOM,
          showThresholds: true,
        }),
      )
      .withRow(row("Findings"))
      .withPanel(
        stat({
          title: "Findings by severity",
          description:
            "Findings of the last collection cycle on the selected nodes, per severity (critical, warning, info). The finding ids and their runbooks are in the table next to it and in docs/findings.md.",
          unit: "short",
          width: 8,
          height: 8,
          queries: [{ expr: `sum by (severity) (${sel("imagefs_finding")})`, legend: "{{severity}}" }],
          thresholds: ZERO_GOOD,
          noValue: "0",
          showName: true,
        }),
      )
      .withPanel(
        table({
          title: "Findings",
          description:
            "Every finding of the last cycle per node, by id and severity. `imagefs-doctor diagnose` on the node shows the evidence and the commands that fix it.",
          unit: "short",
          width: 16,
          queries: [{ expr: `sum by (${BY_NODE}, id, severity) (${sel("imagefs_finding")})` }],
          columns: { cluster: "Cluster", node: "Node", severity: "Severity", id: "Finding", Value: "Count" },
          sortBy: "Count",
          noValue: "No findings",
        }),
      )
      .withPanel(
        timeseries({
          title: "Orphaned images",
          description:
            "Images left in a store the runtime no longer writes to (graphroot after imagestore was turned on, or a store nothing configures any more): they take space and are never garbage-collected.",
          unit: "short",
          min: 0,
          queries: [
            {
              expr: `max by (${BY_NODE}, store_role) (${sel("imagefs_orphaned_images")})`,
              legend: "{{node}} {{store_role}}",
            },
          ],
        }),
      )
      .withPanel(
        stat({
          title: "Default eviction signals dropped",
          description:
            "Default eviction signals the kubelet no longer watches because evictionHard replaced the defaults (setting one signal drops the others): a filesystem can then fill up with no eviction at all.",
          unit: "short",
          width: 12,
          height: 8,
          queries: [
            {
              expr: `max by (${BY_NODE}) (${sel("imagefs_eviction_defaults_dropped")})`,
              legend: "{{node}}",
            },
          ],
          thresholds: ZERO_GOOD,
        }),
      ),
  );
}
