/**
 * Node storage overview: the filesystem layout, each kubelet role's disk and inodes against the
 * eviction thresholds the kubelet really enforces, read-only and unreachable filesystems, the
 * runtime, the findings of the last cycle, the additional image and artifact stores (read-only
 * caches, CRI-O artifact stores) and whether CRI-O runs with the store configuration on disk.
 */
import type { Dashboard } from "@grafana/grafana-foundation-sdk/dashboard";
import {
  BY_NODE,
  boolMapping,
  dashboardBuilder,
  finish,
  row,
  type SeriesName,
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

/** Additional stores are told apart by kind (image, artifact) and ordinal in their list. */
const STORE = `${BY_NODE}, kind, store`;

/** A per-store series of an additional image store (no `kind` label), given kind="image" to join the others. */
function imageStore(metric: SeriesName): string {
  return `label_replace(max by (${BY_NODE}, store) (${sel(metric)}), "kind", "image", "", "")`;
}

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
      )
      .withRow(row("Additional image and artifact stores"))
      .withPanel(
        table({
          title: "Additional stores",
          description:
            "Every additional image store (additionalimagestores: read-only caches on NFS or a local SSD) and CRI-O artifact store (additional_artifact_stores) by kind and ordinal in its list, now: whether it answers, whether it is mounted read-only, images, images lacking layers and the missing layers, artifacts, how long reaching it took and its size (local stores only). The paths are in the findings and in `imagefs-doctor diagnose`.",
          unit: "short",
          width: 24,
          merge: true,
          queries: [
            { expr: `min by (${STORE}) (${sel("imagefs_additional_store_up")})` },
            { expr: `max by (${STORE}) (${sel("imagefs_additional_store_readonly")})` },
            { expr: imageStore("imagefs_additional_image_store_images") },
            { expr: imageStore("imagefs_additional_image_store_incomplete_images") },
            { expr: imageStore("imagefs_additional_image_store_missing_layers") },
            {
              expr: `label_replace(max by (${BY_NODE}, store) (${sel("imagefs_artifact_store_artifacts")}), "kind", "artifact", "", "")`,
            },
            { expr: `max by (${STORE}) (${sel("imagefs_additional_store_probe_duration_seconds")})` },
            { expr: `max by (${STORE}) (${sel("imagefs_additional_store_size_bytes")})` },
          ],
          columns: {
            cluster: "Cluster",
            node: "Node",
            kind: "Kind",
            store: "Store",
            "Value #A": "Up",
            "Value #B": "Read-only",
            "Value #C": "Images",
            "Value #D": "Incomplete images",
            "Value #E": "Missing layers",
            "Value #F": "Artifacts",
            "Value #G": "Probe",
            "Value #H": "Size",
          },
          columnUnits: { Up: "bool_yes_no", "Read-only": "bool_yes_no", Probe: "s", Size: "bytes" },
          noValue: "No additional stores",
        }),
      )
      .withPanel(
        stateTimeline({
          title: "Additional store up",
          description:
            "Whether each additional image or artifact store answered: down when its directory is missing, cannot be read, or its probe (a child process with a deadline, for network and FUSE stores) did not answer. A missing image store keeps the runtime from starting; a hung one hangs every image operation.",
          unit: "none",
          queries: [
            {
              expr: `min by (${STORE}) (${sel("imagefs_additional_store_up")})`,
              legend: "{{node}} {{kind}} store {{store}}",
            },
          ],
          mappings: UP_DOWN,
        }),
      )
      .withPanel(
        stateTimeline({
          title: "Additional store read-only",
          description:
            "Whether the filesystem under each additional store is mounted read-only. A shared cache mounted read-write lets a tool on one node change images the other nodes run from; a plain local directory may be writable without harm (the IMAGE_STORE_NOT_READONLY finding tells them apart).",
          unit: "none",
          queries: [
            {
              expr: `max by (${STORE}) (${sel("imagefs_additional_store_readonly")})`,
              legend: "{{node}} {{kind}} store {{store}}",
            },
          ],
          mappings: boolMapping(["read-write", "orange"], ["read-only", "green"]),
        }),
      )
      .withPanel(
        timeseries({
          title: "Images per additional image store",
          description:
            "Images listed in each additional image store's images.json. A drop to zero with the store up is an empty mount point: the cache's filesystem is not mounted.",
          unit: "short",
          min: 0,
          width: 8,
          queries: [
            {
              expr: `max by (${BY_NODE}, store) (${sel("imagefs_additional_image_store_images")})`,
              legend: "{{node}} store {{store}}",
            },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: "Incomplete images and missing layers",
          description:
            "Images of each additional image store naming a layer found neither in the store nor in graphroot, and the distinct layers missing (dashed). The runtime lists such images as present and does not pull them; containers from them fail with layer not known.",
          unit: "short",
          min: 0,
          width: 8,
          queries: [
            {
              expr: `max by (${BY_NODE}, store) (${sel("imagefs_additional_image_store_incomplete_images")})`,
              legend: "{{node}} store {{store}} incomplete images",
            },
            {
              expr: `max by (${BY_NODE}, store) (${sel("imagefs_additional_image_store_missing_layers")})`,
              legend: "{{node}} store {{store}} missing layers",
            },
          ],
          dashed: ["B"],
          thresholds: ZERO_GOOD,
        }),
      )
      .withPanel(
        timeseries({
          title: "Artifacts per artifact store",
          description:
            "OCI artifacts listed in each CRI-O additional artifact store's artifacts/index.json. No line for a store: it has no artifacts/ directory or no usable index (ARTIFACT_STORE_INVALID).",
          unit: "short",
          min: 0,
          width: 8,
          queries: [
            {
              expr: `max by (${BY_NODE}, store) (${sel("imagefs_artifact_store_artifacts")})`,
              legend: "{{node}} artifact store {{store}}",
            },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: "Additional store probe duration",
          description:
            "How long reaching each additional store took in each collection cycle (for network and FUSE stores, the child-process probe with its deadline). Rising times are a slow NFS server; a store that hangs shows its deadline and goes down above.",
          unit: "s",
          min: 0,
          queries: [
            {
              expr: `max by (${STORE}) (${sel("imagefs_additional_store_probe_duration_seconds")})`,
              legend: "{{node}} {{kind}} store {{store}}",
            },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: "Additional store size",
          description:
            "Bytes in each additional store's directory tree, when walked within the collector's budget (local stores only: network stores are not walked).",
          unit: "bytes",
          min: 0,
          queries: [
            {
              expr: `max by (${STORE}) (${sel("imagefs_additional_store_size_bytes")})`,
              legend: "{{node}} {{kind}} store {{store}}",
            },
          ],
        }),
      )
      .withRow(row("CRI-O configuration in effect"))
      .withPanel(
        stat({
          title: "Store settings not in effect",
          description:
            "Store settings (root, imagestore, storage options, additional image and artifact stores) whose value in CRI-O's configuration files differs from what the running CRI-O reports on /config: a restart or the pending reboot changes them all at once. No value: CRI-O's /config could not be read.",
          unit: "short",
          width: 8,
          height: 6,
          queries: [
            { expr: `max by (${BY_NODE}) (${sel("imagefs_runtime_config_drift")})`, legend: "{{node}}" },
          ],
          thresholds: ZERO_GOOD,
        }),
      )
      .withPanel(
        stat({
          title: "Config files changed after start",
          description:
            "Configuration files CRI-O reads (crio.conf, its drop-ins, storage.conf) modified after the running CRI-O started: their changes take effect only at its next start.",
          unit: "short",
          width: 8,
          height: 6,
          queries: [
            {
              expr: `max by (${BY_NODE}) (${sel("imagefs_runtime_config_files_changed")})`,
              legend: "{{node}}",
            },
          ],
          thresholds: [
            { value: null, color: "green" },
            { value: 1, color: "orange" },
          ],
        }),
      )
      .withPanel(
        stat({
          title: "Unclean shutdown",
          description:
            "Whether CRI-O is stopped and its last stop was not clean (clean_shutdown_file missing while its .supported marker exists): at its next start CRI-O repairs storage and may remove containers.",
          unit: "none",
          width: 8,
          height: 6,
          queries: [
            {
              expr: `max by (${BY_NODE}) (${sel("imagefs_runtime_unclean_shutdown")})`,
              legend: "{{node}}",
            },
          ],
          mappings: boolMapping(["clean", "green"], ["unclean", "orange"]),
        }),
      ),
  );
}
