/**
 * Every metric imagefs-doctor exports, in one list: the Prometheus exporter, the OpenTelemetry
 * exporter and docs/metrics.md are all built from it. Names follow Prometheus conventions: the
 * imagefs_ prefix, base units, _total for counters, _info for metadata. Every series also carries
 * `node`. Label values are bounded: roles, SELinux types, reasons, ordinals — never a path or an
 * image reference (those go into findings).
 */
export type MetricType = "gauge" | "counter" | "histogram";

export interface MetricDefinition {
  name: string;
  type: MetricType;
  help: string;
  labels: readonly string[];
  /** Histograms only: bucket upper bounds, in the metric's unit. */
  buckets?: readonly number[];
}

/** Probe latency buckets, in seconds: 100 µs to 10 s (collector/model/latency.ts uses the same). */
export const PROBE_BUCKETS = [
  0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

export const METRICS = [
  // The collector itself.
  {
    name: "imagefs_build_info",
    type: "gauge",
    help: "Always 1; the imagefs-doctor version.",
    labels: ["version"],
  },
  { name: "imagefs_collections_total", type: "counter", help: "Collection cycles completed.", labels: [] },
  {
    name: "imagefs_collection_duration_seconds",
    type: "gauge",
    help: "Duration of the last collection cycle.",
    labels: [],
  },
  {
    name: "imagefs_collection_timestamp_seconds",
    type: "gauge",
    help: "When the last collection cycle ended (Unix time).",
    labels: [],
  },
  {
    name: "imagefs_source_success",
    type: "gauge",
    help: "1 when the source ran to completion (ok or absent) in the last cycle, 0 on error or timeout.",
    labels: ["source"],
  },
  {
    name: "imagefs_source_duration_seconds",
    type: "gauge",
    help: "How long the source took in the last cycle.",
    labels: ["source"],
  },
  {
    name: "imagefs_finding",
    type: "gauge",
    help: "Number of findings with this id and severity in the last cycle (absent when none).",
    labels: ["id", "severity"],
  },

  // Filesystems per role (nodefs, imagefs, containerfs, runroot, additional stores by ordinal).
  {
    name: "imagefs_filesystem_size_bytes",
    type: "gauge",
    help: "Size of the filesystem holding the role's path.",
    labels: ["role", "store"],
  },
  {
    name: "imagefs_filesystem_available_bytes",
    type: "gauge",
    help: "Bytes available to unprivileged writers (what the kubelet compares with its thresholds).",
    labels: ["role", "store"],
  },
  {
    name: "imagefs_filesystem_free_bytes",
    type: "gauge",
    help: "Free bytes, including those reserved for root.",
    labels: ["role", "store"],
  },
  {
    name: "imagefs_filesystem_files",
    type: "gauge",
    help: "Inodes of the filesystem.",
    labels: ["role", "store"],
  },
  {
    name: "imagefs_filesystem_files_free",
    type: "gauge",
    help: "Free inodes of the filesystem.",
    labels: ["role", "store"],
  },
  {
    name: "imagefs_filesystem_readonly",
    type: "gauge",
    help: "1 when the filesystem is mounted read-only.",
    labels: ["role", "store"],
  },
  {
    name: "imagefs_filesystem_up",
    type: "gauge",
    help: "1 when the role's path could be examined, 0 when missing, failing or unresponsive.",
    labels: ["role", "store"],
  },
  {
    name: "imagefs_filesystem_info",
    type: "gauge",
    help: "Always 1; the role's filesystem type and device (major:minor).",
    labels: ["role", "store", "fstype", "device"],
  },
  {
    name: "imagefs_eviction_threshold_bytes",
    type: "gauge",
    help: "Effective kubelet eviction threshold on the role's filesystem, as available bytes (the kubelet acts below it).",
    labels: ["role", "signal", "kind"],
  },
  {
    name: "imagefs_eviction_threshold_files",
    type: "gauge",
    help: "Effective kubelet eviction threshold on the role's filesystem, as free inodes.",
    labels: ["role", "signal", "kind"],
  },
  {
    name: "imagefs_eviction_defaults_dropped",
    type: "gauge",
    help: "Default eviction signals no longer watched because evictionHard replaced the defaults.",
    labels: [],
  },
  {
    name: "imagefs_image_gc_high_threshold_ratio",
    type: "gauge",
    help: "imageGCHighThresholdPercent as a ratio: image GC starts when imagefs usage reaches it.",
    labels: [],
  },
  {
    name: "imagefs_topology_info",
    type: "gauge",
    help: "Always 1; the filesystem layout (single, split-image, separate-runtime, three-way, containerfs-only, unknown).",
    labels: ["topology"],
  },
  { name: "imagefs_runtime_up", type: "gauge", help: "1 when a CRI endpoint answered.", labels: [] },
  {
    name: "imagefs_runtime_info",
    type: "gauge",
    help: "Always 1; the runtime that answered over CRI.",
    labels: ["runtime", "version"],
  },
  {
    name: "imagefs_orphaned_images",
    type: "gauge",
    help: "Images left in a store the runtime no longer writes to.",
    labels: ["store_role"],
  },

  // SELinux.
  {
    name: "imagefs_selinux_mode",
    type: "gauge",
    help: "1 for the SELinux mode in force (enforcing, permissive, disabled).",
    labels: ["mode"],
  },
  {
    name: "imagefs_selinux_files_checked",
    type: "gauge",
    help: "Files whose label the last scan of the store read.",
    labels: ["store_role"],
  },
  {
    name: "imagefs_selinux_scan_sampled",
    type: "gauge",
    help: "1 when the budget ended the store's label scan before the whole tree was seen.",
    labels: ["store_role"],
  },
  {
    name: "imagefs_selinux_mislabeled_files",
    type: "gauge",
    help: "Files of the store whose SELinux type differs from the expected one, per (actual, expected) type pair.",
    labels: ["store_role", "actual_type", "expected_type"],
  },
  {
    name: "imagefs_selinux_avc_denials_total",
    type: "counter",
    help: "AVC denials of container processes on files with store-ish types, seen since the exporter started.",
    labels: ["source_type", "target_type", "tclass"],
  },
  {
    name: "imagefs_container_loader_errors",
    type: "gauge",
    help: "Container logs with dynamic-loader Permission denied errors, by kind (relocation, map-segment, shared-object).",
    labels: ["kind"],
  },

  // Journal.
  {
    name: "imagefs_log_events_total",
    type: "counter",
    help: "Journal entries classified by a log rule pack, seen since the exporter started.",
    labels: ["pack", "unit", "reason"],
  },
  {
    name: "imagefs_journal_entries_dropped_total",
    type: "counter",
    help: "Journal entries matched but not read because a per-cycle limit was reached.",
    labels: ["source"],
  },

  // Lazy pulling.
  {
    name: "imagefs_layers",
    type: "gauge",
    help: "Layers by how they were pulled (lazy, partial, full, missing, unknown).",
    labels: ["mode"],
  },
  {
    name: "imagefs_layer_bytes",
    type: "gauge",
    help: "Bytes of layers by how they were pulled.",
    labels: ["mode"],
  },
  {
    name: "imagefs_layer_store_mounted",
    type: "gauge",
    help: "1 when a FUSE mount is at the additional layer store's path.",
    labels: ["store"],
  },
  {
    name: "imagefs_layer_store_process_up",
    type: "gauge",
    help: "1 when a process serving the additional layer store was found.",
    labels: ["store"],
  },
  {
    name: "imagefs_layer_store_up",
    type: "gauge",
    help: "1 when every probe of the store's FUSE mount answered within the deadline.",
    labels: ["store"],
  },
  {
    name: "imagefs_layer_store_unresponsive_since_seconds",
    type: "gauge",
    help: "When the store was first seen unresponsive, in this run of the exporter (Unix time); 0 while it answers.",
    labels: ["store"],
  },
  {
    name: "imagefs_layer_store_probe_duration_seconds",
    type: "histogram",
    help: "Duration of probe operations on the store's FUSE mount (answered ones).",
    labels: ["store", "op"],
    buckets: PROBE_BUCKETS,
  },
  {
    name: "imagefs_layer_store_probe_failures_total",
    type: "counter",
    help: "Probe operations on the store's FUSE mount that failed or ran past the deadline.",
    labels: ["store", "op", "outcome"],
  },
  {
    name: "imagefs_layer_store_fuse_waiting_requests",
    type: "gauge",
    help: "Requests waiting for the store's FUSE server (fusectl).",
    labels: ["store"],
  },
  {
    name: "imagefs_layer_store_broken_layers",
    type: "gauge",
    help: "Lazily pulled layers of the store whose path in the store no longer exists.",
    labels: ["store"],
  },

  // Additional image and artifact stores (read-only caches), and CRI-O's configuration in effect.
  {
    name: "imagefs_additional_store_up",
    type: "gauge",
    help: "1 when an additional image or artifact store answers (exists, readable, its probe within the deadline).",
    labels: ["kind", "store"],
  },
  {
    name: "imagefs_additional_store_readonly",
    type: "gauge",
    help: "1 when the filesystem of an additional image or artifact store is mounted read-only.",
    labels: ["kind", "store"],
  },
  {
    name: "imagefs_additional_store_probe_duration_seconds",
    type: "gauge",
    help: "How long reaching the store took in the last cycle (the child-process probe for network stores).",
    labels: ["kind", "store"],
  },
  {
    name: "imagefs_additional_store_size_bytes",
    type: "gauge",
    help: "Bytes the store takes: its filesystem's used bytes when it is that filesystem's mount point and holds no other mount inside, else its tree walked within budget (local stores only).",
    labels: ["kind", "store"],
  },
  {
    name: "imagefs_additional_image_store_images",
    type: "gauge",
    help: "Images listed in an additional image store's images.json.",
    labels: ["store"],
  },
  {
    name: "imagefs_additional_image_store_incomplete_images",
    type: "gauge",
    help: "Images of an additional image store with a layer found neither in the store nor in graphroot.",
    labels: ["store"],
  },
  {
    name: "imagefs_additional_image_store_missing_layers",
    type: "gauge",
    help: "Distinct layers that images of an additional image store name but no store holds.",
    labels: ["store"],
  },
  {
    name: "imagefs_artifact_store_artifacts",
    type: "gauge",
    help: "Artifacts listed in an additional artifact store's artifacts/index.json.",
    labels: ["store"],
  },
  {
    name: "imagefs_runtime_config_drift",
    type: "gauge",
    help: "Store settings whose value in the configuration files differs from what the running CRI-O reports on /config.",
    labels: [],
  },
  {
    name: "imagefs_runtime_config_files_changed",
    type: "gauge",
    help: "Configuration files CRI-O reads that changed after the running CRI-O started.",
    labels: [],
  },
  {
    name: "imagefs_runtime_unclean_shutdown",
    type: "gauge",
    help: "1 when CRI-O is stopped and its last stop was not clean (clean_shutdown_file missing).",
    labels: [],
  },
] as const satisfies readonly MetricDefinition[];

export type MetricName = (typeof METRICS)[number]["name"];
