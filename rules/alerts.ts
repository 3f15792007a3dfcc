/**
 * The alert rules, one group per area. This file is the source: `npm run rules` (rules/generate.ts)
 * writes rules/<area>.yaml, which promtool checks and tests, and deploy/prometheusrule.yaml, the
 * same groups as a PrometheusRule. Conventions (kubernetes-mixin): CamelCase names with the
 * `Imagefs` prefix; `severity` critical (page), warning (ticket) or info (no routing); annotations
 * `summary` (static), `description` (templated: node and values) and `runbook_url`, one
 * docs/runbooks/<alert>.md each. Only metrics of collector/export/catalog.ts are used, plus
 * Prometheus's own `up`. Every series carries `node`; joins are on `node` (and `role`), never on
 * `job`/`instance`, so they survive any scrape configuration.
 */

/** Where every runbook_url points: the one place to change for a fork or a mirror. */
export const RUNBOOK_BASE = "https://github.com/imagefs-doctor/imagefs-doctor/blob/main/docs/runbooks/";

export type Severity = "critical" | "warning" | "info";

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  severity: Severity;
  /** A static sentence ending with a period. */
  summary: string;
  /** Templated: names the node and shows the values. */
  description: string;
  /**
   * Findings (docs/findings.md) that report the same problem. The runbook links them, and the
   * catch-all ImagefsCriticalFinding leaves them to this alert.
   */
  findings?: string[];
  /** Why the rule looks the way it does; written as a comment above the rule in the YAML. */
  why?: string;
}

export interface RuleFile {
  /** rules/<file> */
  file: string;
  group: string;
  rules: AlertRule[];
}

/** Selectors and thresholds, in one place (kubernetes-mixin's `_config`). */
export const CONFIG = {
  /** Jobs that scrape `imagefs-doctor serve` (a ServiceMonitor names the job after the Service, a PodMonitor `namespace/name`). */
  jobSelector: 'job=~".*imagefs-doctor.*"',
  /** Warn when less than this share of a filesystem's size is left above its eviction threshold (`diagnose --margin 5`). */
  marginRatio: 0.05,
  /** How long a role may stay below its eviction threshold before it pages. */
  pressureFor: "15m",
  /** How long a role may stay within the margin before it opens a ticket. */
  imminentFor: "30m",
  /** Prediction: the trend over `predictWindow` and over `recentWindow` both cross within `horizonHours`. */
  predictWindow: "6h",
  recentWindow: "30m",
  horizonHours: 4,
  fillingFor: "1h",
  /** The exporter collects every 60 s by default (`serve --interval`): ten cycles missed is stuck. */
  staleAfterSeconds: 600,
  /** LAYER_STORE_SLOW's default (`diagnose --probe-slow-ms 500`). */
  slowProbeSeconds: 0.5,
} as const;

/** Removes the common indentation of a template literal, and its first and last empty lines. */
function promql(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = strings.reduce((out, s, i) => out + s + (i < values.length ? String(values[i]) : ""), "");
  const lines = text
    .replace(/^\n/, "")
    .replace(/\n\s*$/, "")
    .split("\n");
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.match(/^ */)![0].length));
  return lines.map((l) => l.slice(indent)).join("\n");
}

// Several thresholds can apply to one role: a hard and a soft one (acted on after its grace
// period), or the copy the kubelet derives for containerfs. The highest level is where the kubelet
// acts first. The threshold series have `signal` and `kind` and no `store`: hence max by.
const THRESHOLD_BYTES = "max by (node, role) (imagefs_eviction_threshold_bytes)";
const THRESHOLD_FILES = "max by (node, role) (imagefs_eviction_threshold_files)";
const GC_HIGH = "max by (node) (imagefs_image_gc_high_threshold_ratio)";

/** A template that prints the role's threshold, queried at alert time. */
function thresholdOf(metric: string, humanize: string): string {
  return `{{ with printf \`max(${metric}{node="%s",role="%s"})\` $labels.node $labels.role | query }}{{ . | first | value | ${humanize} }}{{ end }}`;
}
const BYTES_THRESHOLD = `${thresholdOf("imagefs_eviction_threshold_bytes", "humanize1024")}B`;
const FILES_THRESHOLD = thresholdOf("imagefs_eviction_threshold_files", "humanize");
const GC_HIGH_TEXT =
  '{{ with printf `max(imagefs_image_gc_high_threshold_ratio{node="%s"})` $labels.node | query }}{{ . | first | value | humanizePercentage }}{{ end }}';

const margin = `${CONFIG.marginRatio * 100}%`;
const horizon = `${CONFIG.horizonHours} * 3600`;

/**
 * How many events a counter counted in the last hour, by `by`. increase() never counts a series'
 * first value, and the exporter creates a series on its first increment, with it: a relabel run
 * that fails logs all its errors in one cycle, so increase() alone would never see them. So a
 * series that did not exist an hour ago counts whole, on a node that was exported an hour ago: that
 * gate keeps a newly deployed exporter, whose first cycle reads the journal's lookback window, from
 * alerting on old events (with --state-dir a restarted one resumes after the last entry it read).
 */
function eventsLastHour(series: string, identity: string, by: string): string {
  return promql`
    sum by (${by}) (
      (
        ${series}
        unless on (${identity}) ${series} offset 1h
        and on (node) imagefs_build_info offset 1h
      )
      or
      increase(${series}[1h])
    ) > 0
  `;
}

/** A finding reported by the last cycle (the gauge is absent when there is none). */
// One check can report a finding at two severities at once (two stores broken in different ways):
// without a severity filter the series are folded, or the alert's own severity label would make
// two series with the same labels and Prometheus would drop the alert.
const finding = (id: string, severity?: Severity) =>
  severity
    ? `imagefs_finding{id="${id}", severity="${severity}"} > 0`
    : `max without (severity) (imagefs_finding{id="${id}"}) > 0`;

const disk: RuleFile = {
  file: "disk.yaml",
  group: "imagefs-doctor.disk",
  rules: [
    {
      alert: "ImagefsDiskPressure",
      expr: promql`
        imagefs_filesystem_available_bytes
          < on (node, role) group_left ()
        ${THRESHOLD_BYTES}
      `,
      for: CONFIG.pressureFor,
      severity: "critical",
      summary: "A container storage filesystem is below the kubelet's eviction threshold.",
      description: `The {{ $labels.role }} filesystem of node {{ $labels.node }} has {{ $value | humanize1024 }}B available, below the kubelet's eviction threshold of ${BYTES_THRESHOLD}, for ${CONFIG.pressureFor}: its own reclaim (unused images, dead containers) did not bring it back, so the node is under DiskPressure and pods are evicted.`,
      findings: ["DISK_PRESSURE_IMMINENT"],
      why: `Pages only after ${CONFIG.pressureFor}. At the threshold the kubelet first reclaims node-level resources
(dead containers, then unused images) within seconds, and image GC runs every 5 minutes: a pull
burst that dips below the threshold and is absorbed that way never reaches 'for'. Roles without a
threshold series (runroot, additional stores) drop out of the join.`,
    },
    {
      alert: "ImagefsDiskPressureImminent",
      expr: promql`
        (
          imagefs_filesystem_available_bytes{role!="imagefs"}
          - on (node, role) group_left ()
          ${THRESHOLD_BYTES}
        )
        < ${CONFIG.marginRatio} * imagefs_filesystem_size_bytes{role!="imagefs"}
        or
        (
          imagefs_filesystem_available_bytes{role="imagefs"}
          - on (node, role) group_left ()
          ${THRESHOLD_BYTES}
        )
        < ${CONFIG.marginRatio} * imagefs_filesystem_size_bytes{role="imagefs"}
        and on (node)
          1 - imagefs_filesystem_available_bytes{role="imagefs"} / imagefs_filesystem_size_bytes{role="imagefs"}
        >= on (node) group_left ()
          ${GC_HIGH}
      `,
      for: CONFIG.imminentFor,
      severity: "warning",
      summary: "A container storage filesystem is close to the kubelet's eviction threshold.",
      description: `The {{ $labels.role }} filesystem of node {{ $labels.node }} has {{ if lt $value 0.0 }}no space{{ else }}only {{ $value | humanize1024 }}B{{ end }} left above the kubelet's eviction threshold of ${BYTES_THRESHOLD} (less than ${margin} of its size) for ${CONFIG.imminentFor}{{ if eq $labels.role "imagefs" }}, with usage at or above the image GC high threshold (${GC_HIGH_TEXT}): image GC cannot free enough{{ end }}.`,
      findings: ["DISK_PRESSURE_IMMINENT"],
      why: `Headroom above the threshold below the margin (diagnose's 5% of the size), for ${CONFIG.imminentFor}.
For imagefs (the branch after 'or') that alone is normal: image GC keeps usage between its low
and high thresholds (80% and 85% by default), which with the default 15% threshold is exactly
the margin, so a busy, healthy image disk lives there. It is a problem only while usage also
stays at or above the GC high threshold for ${CONFIG.imminentFor} (six GC periods of 5 minutes): GC ran
and could not free enough (images in use, or other data on the disk).`,
    },
    {
      alert: "ImagefsDiskFillingUp",
      expr: promql`
        clamp_min(predict_linear(imagefs_filesystem_available_bytes[${CONFIG.predictWindow}], ${horizon}), 0)
          < on (node, role) group_left ()
          ${THRESHOLD_BYTES}
        and
        predict_linear(imagefs_filesystem_available_bytes[${CONFIG.recentWindow}], ${horizon})
          < on (node, role) group_left ()
          ${THRESHOLD_BYTES}
      `,
      for: CONFIG.fillingFor,
      severity: "warning",
      summary:
        "A container storage filesystem is predicted to reach the kubelet's eviction threshold within hours.",
      description: `At the rate of the last ${CONFIG.predictWindow} and of the last ${CONFIG.recentWindow}, the {{ $labels.role }} filesystem of node {{ $labels.node }} will have {{ $value | humanize1024 }}B available in ${CONFIG.horizonHours} hours, below the kubelet's eviction threshold of ${BYTES_THRESHOLD}.`,
      findings: ["DISK_PRESSURE_IMMINENT"],
      why: `Both trends must cross the threshold within ${CONFIG.horizonHours}h, for ${CONFIG.fillingFor}. A pull burst is a step: the
${CONFIG.predictWindow} regression keeps seeing it as a slope for hours (the false positive users delete
NodeFilesystemSpaceFillingUp for), the ${CONFIG.recentWindow} one only while the burst lasts. Image GC's saw-tooth
(pull, then free down to the low threshold every 5 minutes) is flat over both windows. So the
alert needs the disk to have kept filling for over an hour: growth GC is not absorbing.`,
    },
    {
      alert: "ImagefsInodePressure",
      expr: promql`
        imagefs_filesystem_files_free
          < on (node, role) group_left ()
        ${THRESHOLD_FILES}
      `,
      for: CONFIG.pressureFor,
      severity: "critical",
      summary: "A container storage filesystem is below the kubelet's inode eviction threshold.",
      description: `The {{ $labels.role }} filesystem of node {{ $labels.node }} has {{ $value | humanize }} free inodes, below the kubelet's eviction threshold of ${FILES_THRESHOLD}, for ${CONFIG.pressureFor}: the node is under DiskPressure and pods are evicted.`,
      findings: ["INODE_PRESSURE_IMMINENT"],
      why: `As ImagefsDiskPressure, for inodes: the kubelet reclaims unused images at the threshold first, so
a burst of many-file layers it absorbs clears within ${CONFIG.pressureFor}.`,
    },
    {
      alert: "ImagefsInodePressureImminent",
      expr: promql`
        (
          imagefs_filesystem_files_free
          - on (node, role) group_left ()
          ${THRESHOLD_FILES}
        )
        < ${CONFIG.marginRatio} * imagefs_filesystem_files
      `,
      for: CONFIG.imminentFor,
      severity: "warning",
      summary: "A container storage filesystem is close to the kubelet's inode eviction threshold.",
      description: `The {{ $labels.role }} filesystem of node {{ $labels.node }} has {{ if lt $value 0.0 }}no free inodes{{ else }}only {{ $value | humanize }} free inodes{{ end }} left above the kubelet's eviction threshold of ${FILES_THRESHOLD} (less than ${margin} of its inodes) for ${CONFIG.imminentFor}.`,
      findings: ["INODE_PRESSURE_IMMINENT"],
      why: `Image GC is triggered by bytes, not inodes, so there is no GC band to tolerate here: inodes
within the margin stay there until the threshold is met.`,
    },
    {
      alert: "ImagefsInodesFillingUp",
      expr: promql`
        clamp_min(predict_linear(imagefs_filesystem_files_free[${CONFIG.predictWindow}], ${horizon}), 0)
          < on (node, role) group_left ()
          ${THRESHOLD_FILES}
        and
        predict_linear(imagefs_filesystem_files_free[${CONFIG.recentWindow}], ${horizon})
          < on (node, role) group_left ()
          ${THRESHOLD_FILES}
      `,
      for: CONFIG.fillingFor,
      severity: "warning",
      summary:
        "A container storage filesystem is predicted to reach the kubelet's inode eviction threshold within hours.",
      description: `At the rate of the last ${CONFIG.predictWindow} and of the last ${CONFIG.recentWindow}, the {{ $labels.role }} filesystem of node {{ $labels.node }} will have {{ $value | humanize }} free inodes in ${CONFIG.horizonHours} hours, below the kubelet's eviction threshold of ${FILES_THRESHOLD}.`,
      findings: ["INODE_PRESSURE_IMMINENT"],
      why: "Two windows, as ImagefsDiskFillingUp: a pull burst of many-file layers is a step, not a trend.",
    },
    {
      alert: "ImagefsFilesystemReadOnly",
      expr: promql`
        imagefs_filesystem_readonly{role=~"nodefs|imagefs|containerfs|runroot"} == 1
      `,
      for: "5m",
      severity: "critical",
      summary: "A writable container storage filesystem is mounted read-only.",
      description:
        "The {{ $labels.role }} filesystem of node {{ $labels.node }} is mounted read-only: pulls, container creation and pod start-up fail on it.",
      findings: ["STORE_READ_ONLY"],
      why: "Additional image and layer stores may be read-only by design; the other roles are written to.",
    },
    {
      alert: "ImagefsFilesystemUnavailable",
      expr: promql`
        imagefs_filesystem_up{role!="additional-layer-store"} == 0
      `,
      for: "10m",
      severity: "critical",
      summary: "A container storage path is missing, failing or not answering.",
      description:
        "The {{ $labels.role }} path (store {{ $labels.store }}) of node {{ $labels.node }} could not be examined for 10m: it is missing, fails, or its filesystem does not answer; the runtime fails on it the same way.",
      findings: ["STORE_UNRESPONSIVE", "STORE_PATH_UNUSABLE"],
      why: "Additional layer stores are FUSE mounts with alerts of their own (rules/lazy-pull.yaml).",
    },
    {
      alert: "ImagefsImagestoreNotMounted",
      expr: finding("IMAGESTORE_NOT_MOUNTED"),
      for: "10m",
      severity: "critical",
      summary: "The image store's disk is not mounted: new images fill the root filesystem.",
      description:
        "imagestore is configured on node {{ $labels.node }}, but its path is missing or lies on the root filesystem instead of the image disk: new images land on the operating system's disk.",
      findings: ["IMAGESTORE_NOT_MOUNTED"],
      why: "No metric says where a path should have been mounted; the finding compares devices with the configuration.",
    },
    {
      alert: "ImagefsSplitFeatureGateOff",
      expr: finding("SPLIT_FEATURE_GATE_OFF"),
      for: "1h",
      severity: "warning",
      summary: "Images are split from writable layers but the kubelet's KubeletSeparateDiskGC gate is off.",
      description:
        "Node {{ $labels.node }} keeps images and writable layers on different filesystems, but KubeletSeparateDiskGC is off: the kubelet garbage-collects and evicts for the wrong disk.",
      findings: ["SPLIT_FEATURE_GATE_OFF"],
      why: `A configuration defect (the finding is critical): a ticket, not a page. What it leads to, a
disk filling unwatched, pages through the disk alerts.`,
    },
    {
      alert: "ImagefsEvictionThresholdInvalid",
      expr: finding("EVICTION_THRESHOLD_INVALID"),
      for: "15m",
      severity: "warning",
      summary:
        "An eviction threshold in the kubelet configuration is invalid: the kubelet will not start with it.",
      description:
        "The kubelet configuration of node {{ $labels.node }} has an eviction threshold the kubelet rejects: the next kubelet restart (or reboot) fails and the node goes NotReady.",
      findings: ["EVICTION_THRESHOLD_INVALID"],
      why: "A running kubelet already parsed its configuration: the failure waits for the next restart.",
    },
    {
      alert: "ImagefsEvictionDefaultsDropped",
      expr: promql`
        imagefs_eviction_defaults_dropped > 0
      `,
      for: "1h",
      severity: "warning",
      summary: "evictionHard replaced the kubelet's defaults: some disk signals are no longer watched.",
      description:
        "The kubelet of node {{ $labels.node }} no longer watches {{ $value }} of its default eviction signals because evictionHard replaced the defaults: those filesystems can fill up without DiskPressure (and without the pressure alerts, which need a threshold).",
      findings: ["EVICTION_DEFAULTS_DROPPED"],
    },
    {
      alert: "ImagefsImageFilesystemUnwatched",
      expr: finding("EVICTION_IMAGEFS_UNWATCHED"),
      for: "1h",
      severity: "warning",
      summary: "The image filesystem is on its own disk but no eviction threshold watches it.",
      description:
        "Node {{ $labels.node }} has a dedicated image filesystem but no imagefs.available or imagefs.inodesFree threshold: it can fill up without DiskPressure, and the imagefs pressure alerts have no threshold to compare with.",
      findings: ["EVICTION_IMAGEFS_UNWATCHED"],
      why: "The finding knows the topology; a missing threshold series alone is normal on a single-disk node.",
    },
    {
      alert: "ImagefsImagesOrphaned",
      expr: promql`
        imagefs_orphaned_images > 0
      `,
      for: "1h",
      severity: "info",
      summary: "Images are left in a store the runtime no longer writes to.",
      description:
        "{{ $value }} images on node {{ $labels.node }} sit in the {{ $labels.store_role }} store, which the runtime no longer writes to: they are never garbage-collected and keep using disk.",
      findings: ["IMAGES_ORPHANED"],
    },
  ],
};

const selinux: RuleFile = {
  file: "selinux.yaml",
  group: "imagefs-doctor.selinux",
  rules: [
    {
      alert: "ImagefsSELinuxRelabelFailed",
      expr: eventsLastHour(
        'imagefs_log_events_total{pack="selinux-relabel"}',
        "node, pack, unit, reason",
        "node, reason",
      ),
      for: "5m",
      severity: "warning",
      summary: "SELinux relabelling failed on a node.",
      description:
        'restorecon, chcon, semanage or the container runtime logged {{ $value | printf "%.0f" }} relabel failures ({{ $labels.reason }}) on node {{ $labels.node }} in the last hour.',
      findings: ["SELINUX_RELABEL_FAILED"],
      why: `A counter of journal entries (see eventsLastHour in rules/alerts.ts for series born with their
first events). The finding lives only in the cycle that read the entries: it cannot carry an alert.`,
    },
    {
      alert: "ImagefsSELinuxFilesMislabeled",
      expr: promql`
        imagefs_selinux_mislabeled_files > 0
        unless on (node)
          imagefs_selinux_mode{mode="disabled"} == 1
      `,
      for: "30m",
      severity: "warning",
      summary: "Files of an image store carry the wrong SELinux type.",
      description:
        "{{ $value }} files of the {{ $labels.store_role }} store on node {{ $labels.node }} are labelled {{ $labels.actual_type }} where {{ $labels.expected_type }} is expected.",
      findings: ["SELINUX_LAYER_FILES_MISLABELED"],
      why: "With SELinux disabled wrong labels break nothing today (the finding is info then).",
    },
    {
      alert: "ImagefsSELinuxStoreMislabeled",
      expr: finding("SELINUX_STORE_MISLABELED", "critical"),
      for: "10m",
      severity: "critical",
      summary: "An image store root or its overlay directories carry the wrong SELinux type.",
      description:
        "A store root or overlay directory on node {{ $labels.node }} has the wrong SELinux type while SELinux enforces: new layers inherit it and containers fail to start.",
      findings: ["SELINUX_STORE_MISLABELED"],
      why: "The finding is critical only while SELinux enforces (warning when permissive, info when disabled).",
    },
    {
      alert: "ImagefsSELinuxLabelsUnsupported",
      expr: finding("SELINUX_NO_XATTR_SUPPORT", "critical"),
      for: "10m",
      severity: "critical",
      summary: "An image store is on a filesystem that cannot hold SELinux labels.",
      description:
        "An image store of node {{ $labels.node }} is on a filesystem without SELinux label support, and SELinux enforces: containers are denied its files and restorecon cannot fix it.",
      findings: ["SELINUX_NO_XATTR_SUPPORT"],
      why: `Two rules of one alert, one per severity of the finding, which follows the node's SELinux mode (one
mode per node, so never both at once): critical while SELinux enforces, warning while it is permissive
(denials are only logged, until it enforces). Disabled (info) does not alert.`,
    },
    {
      alert: "ImagefsSELinuxLabelsUnsupported",
      expr: finding("SELINUX_NO_XATTR_SUPPORT", "warning"),
      for: "10m",
      severity: "warning",
      summary: "An image store is on a filesystem that cannot hold SELinux labels.",
      description:
        "An image store of node {{ $labels.node }} is on a filesystem without SELinux label support, and SELinux is permissive: denials are only logged today, but containers will be denied its files once it enforces, and restorecon cannot fix it.",
      findings: ["SELINUX_NO_XATTR_SUPPORT"],
    },
    {
      alert: "ImagefsSELinuxAVCDenials",
      expr: eventsLastHour(
        "imagefs_selinux_avc_denials_total",
        "node, source_type, target_type, tclass",
        "node, source_type, target_type, tclass",
      ),
      for: "5m",
      severity: "warning",
      summary: "SELinux denies containers access to files with store-ish labels.",
      description:
        'SELinux logged {{ $value | printf "%.0f" }} denials of {{ $labels.source_type }} processes on {{ $labels.target_type }} objects (class {{ $labels.tclass }}) on node {{ $labels.node }} in the last hour.',
      findings: ["SELINUX_AVC_STORAGE_DENIALS"],
      why: `A warning: a denial may or may not break the container (permissive mode logs without denying).
Containers that really die of it page through ImagefsContainerLoaderErrors.`,
    },
    {
      alert: "ImagefsContainerLoaderErrors",
      expr: promql`
        imagefs_container_loader_errors > 0
      `,
      for: "5m",
      severity: "critical",
      summary: "Containers fail to load their own libraries: Permission denied.",
      description:
        "{{ $value }} container logs on node {{ $labels.node }} show dynamic-loader Permission denied errors ({{ $labels.kind }}): those containers cannot start, usually because image layers lack container SELinux labels.",
      findings: ["RELOCATION_PERMISSION_DENIED"],
    },
  ],
};

const lazyPull: RuleFile = {
  file: "lazy-pull.yaml",
  group: "imagefs-doctor.lazy-pull",
  rules: [
    {
      alert: "ImagefsLayerStoreServiceDown",
      expr: promql`
        imagefs_layer_store_process_up == 0
      `,
      for: "5m",
      severity: "critical",
      summary: "No process serves a configured additional layer store.",
      description:
        "Additional layer store {{ $labels.store }} of node {{ $labels.node }} has no serving process (stargz-store stopped or crashed): lazily pulled images cannot start.",
      findings: ["LAYER_STORE_SERVICE_DOWN"],
    },
    {
      alert: "ImagefsLayerStoreNotMounted",
      expr: promql`
        imagefs_layer_store_mounted == 0
        and
        imagefs_layer_store_process_up == 1
      `,
      for: "5m",
      severity: "critical",
      summary: "A configured additional layer store is not mounted.",
      description:
        "Additional layer store {{ $labels.store }} of node {{ $labels.node }} has its server running but no FUSE mount at its path: CRI-O cannot use it and lazily pulled images cannot start.",
      findings: ["LAYER_STORE_NOT_MOUNTED"],
      why: "A store whose server is down is not mounted either: ImagefsLayerStoreServiceDown reports that case.",
    },
    {
      alert: "ImagefsLayerStoreUnresponsive",
      expr: promql`
        time() - imagefs_layer_store_unresponsive_since_seconds
        and
        imagefs_layer_store_up == 0
      `,
      for: "5m",
      severity: "critical",
      summary: "An additional layer store's FUSE mount does not answer.",
      description:
        "The FUSE mount of additional layer store {{ $labels.store }} on node {{ $labels.node }} has not answered probes for {{ $value | humanizeDuration }}: every process that touches it, CRI-O included, hangs.",
      findings: ["LAYER_STORE_UNRESPONSIVE"],
    },
    {
      alert: "ImagefsLayerStoreSlow",
      expr: promql`
        histogram_quantile(0.9,
          sum by (node, store, le) (rate(imagefs_layer_store_probe_duration_seconds_bucket[10m]))
        ) > ${CONFIG.slowProbeSeconds}
      `,
      for: "15m",
      severity: "warning",
      summary: "An additional layer store's FUSE mount answers slowly.",
      description:
        "90% of probe operations on additional layer store {{ $labels.store }} of node {{ $labels.node }} took up to {{ $value | humanizeDuration }} over the last 10 minutes: container start and reads from lazy layers are slow.",
      findings: ["LAYER_STORE_SLOW"],
    },
    {
      alert: "ImagefsLazyLayersBroken",
      expr: promql`
        imagefs_layer_store_broken_layers > 0
      `,
      for: "5m",
      severity: "critical",
      summary: "Lazily pulled layers point at a store path that no longer exists.",
      description:
        "{{ $value }} lazily pulled layers on node {{ $labels.node }} link into additional layer store {{ $labels.store }} at paths that no longer exist: their images cannot start and are not pulled again.",
      findings: ["LAZY_LAYERS_BROKEN"],
    },
    {
      alert: "ImagefsLazyPullIneffective",
      expr: promql`
        sum by (node) (imagefs_layers{mode="full"}) > 0
        and on (node)
          sum by (node) (imagefs_layers{mode="lazy"}) == 0
        and on (node)
          max by (node) (imagefs_layer_store_mounted) == 1
      `,
      for: "3h",
      severity: "warning",
      summary: "An additional layer store is mounted but no layer is served lazily.",
      description:
        "Node {{ $labels.node }} has a mounted additional layer store, yet all {{ $value }} layers were pulled in full for 3h: lazy pulling silently does nothing.",
      findings: ["LAZY_PULL_INEFFECTIVE"],
      why: "3h: a store set up on a node full of older images needs new pulls before anything can be lazy.",
    },
    {
      alert: "ImagefsLayerStoreVerificationFailed",
      expr: eventsLastHour(
        'imagefs_log_events_total{pack="stargz-store", reason="VerificationFailed"}',
        "node, pack, unit, reason",
        "node",
      ),
      for: "5m",
      severity: "critical",
      summary: "Layer content served lazily failed verification.",
      description:
        'stargz-store on node {{ $labels.node }} logged {{ $value | printf "%.0f" }} verification failures in the last hour: the registry or something in between served content other than what the image names.',
      findings: ["LAYER_STORE_VERIFICATION_FAILURES"],
      why: `A content-integrity problem, so it pages. Events come from the journal counter. The finding
LAYER_STORE_VERIFICATION_FAILURES is critical only for such events (verification switched off in
the store's configuration makes it a warning), so the catch-all leaves it to this alert.`,
    },
    {
      alert: "ImagefsLayerStoreAuthFailures",
      expr: eventsLastHour(
        'imagefs_log_events_total{pack="stargz-store", reason="RegistryAuthFailed"}',
        "node, pack, unit, reason",
        "node",
      ),
      for: "15m",
      severity: "warning",
      summary: "The registry refuses the layer store's requests (401/403).",
      description:
        'stargz-store on node {{ $labels.node }} was refused by a registry {{ $value | printf "%.0f" }} times in the last hour, even after refreshing credentials: those layers are pulled in full or their reads fail.',
      findings: ["LAYER_STORE_AUTH_FAILURES"],
    },
  ],
};

const collector: RuleFile = {
  file: "collector.yaml",
  group: "imagefs-doctor.collector",
  rules: [
    {
      alert: "ImagefsDoctorAbsent",
      expr: promql`
        absent(imagefs_build_info)
      `,
      for: "15m",
      severity: "warning",
      summary: "No node exports imagefs-doctor metrics.",
      description:
        "Prometheus has no imagefs-doctor series from any node for 15m: the DaemonSet is not running or not scraped, and none of the container storage alerts can fire.",
      why: "No node label here: nothing exports at all. One scrape target down is ImagefsDoctorScrapeFailing.",
    },
    {
      alert: "ImagefsDoctorScrapeFailing",
      expr: promql`
        up{${CONFIG.jobSelector}} == 0
      `,
      for: "15m",
      severity: "warning",
      summary: "Prometheus cannot scrape an imagefs-doctor exporter.",
      description:
        "Prometheus has failed to scrape imagefs-doctor at {{ $labels.instance }}{{ with $labels.node }} on node {{ . }}{{ end }} (job {{ $labels.job }}) for 15m: that node's storage is not watched.",
      why: `Prometheus's own 'up' (the only metric here not in docs/metrics.md). 'node' is there only if
the scrape configuration copies the pod's node name into the target labels.`,
    },
    {
      alert: "ImagefsCollectionStale",
      expr: promql`
        time() - imagefs_collection_timestamp_seconds > ${CONFIG.staleAfterSeconds}
      `,
      for: "5m",
      severity: "warning",
      summary: "imagefs-doctor has not completed a collection cycle for a long time.",
      description:
        "The last collection cycle on node {{ $labels.node }} ended {{ $value | humanizeDuration }} ago: the exporter still answers scrapes, but with stale data.",
      why: `serve collects every 60s by default and never overlaps cycles; every source has a deadline. Ten
missed cycles means the loop is stuck. Raise staleAfterSeconds with --interval.`,
    },
    {
      alert: "ImagefsSourceFailing",
      expr: promql`
        imagefs_source_success == 0
      `,
      for: "30m",
      severity: "warning",
      summary: "A source of imagefs-doctor fails or times out.",
      description:
        "Source {{ $labels.source }} on node {{ $labels.node }} has failed or timed out in every collection for 30m: the findings and metrics that depend on it are missing.",
      findings: ["SOURCE_FAILED"],
    },
    {
      alert: "ImagefsRuntimeUnreachable",
      expr: promql`
        imagefs_runtime_up == 0
      `,
      for: "10m",
      severity: "critical",
      summary: "No container runtime answers on its CRI socket.",
      description:
        "No CRI endpoint answered imagefs-doctor on node {{ $labels.node }} for 10m: the runtime is down or hung (or the exporter cannot reach its socket).",
      findings: ["RUNTIME_UNREACHABLE"],
    },
    {
      alert: "ImagefsConfigUnparsable",
      expr: finding("CONFIG_PARSE_ERROR"),
      for: "15m",
      severity: "warning",
      summary: "A storage, runtime, registries or kubelet configuration file cannot be parsed.",
      description:
        "A configuration file on node {{ $labels.node }} is malformed or unreadable: the program that reads it fails at its next start, and imagefs-doctor cannot see the settings in it.",
      findings: ["CONFIG_PARSE_ERROR"],
      why: `The finding is critical, the alert a warning: running daemons parsed their files at start-up,
so the failure waits for a restart; a runtime that already failed pages as ImagefsRuntimeUnreachable.`,
    },
    {
      alert: "ImagefsCheckFailed",
      expr: finding("CHECK_FAILED"),
      for: "30m",
      severity: "warning",
      summary: "A check of imagefs-doctor fails.",
      description:
        "A check threw an error on node {{ $labels.node }} for 30m: its findings are missing. This is a bug in imagefs-doctor.",
      findings: ["CHECK_FAILED"],
    },
    {
      alert: "ImagefsJournalEntriesDropped",
      expr: eventsLastHour("imagefs_journal_entries_dropped_total", "node, source", "node, source"),
      for: "15m",
      severity: "info",
      summary: "imagefs-doctor skipped journal entries to stay within its per-cycle limits.",
      description:
        '{{ $value | printf "%.0f" }} matching journal entries ({{ $labels.source }}) on node {{ $labels.node }} were not read in the last hour: a log flood, and event counts are low.',
    },
  ],
};

/** Every critical finding that no alert above stands for still gets one: new checks are never silent. */
function catchAll(files: RuleFile[]): AlertRule {
  const covered = [...new Set(files.flatMap((f) => f.rules.flatMap((r) => r.findings ?? [])))].sort();
  return {
    alert: "ImagefsCriticalFinding",
    expr: `imagefs_finding{severity="critical", id!~"${covered.join("|")}"} > 0`,
    for: "30m",
    severity: "warning",
    summary: "imagefs-doctor reports a critical finding that has no alert of its own.",
    description:
      "imagefs-doctor has reported {{ $labels.id }} ({{ $value }} in the last cycle) on node {{ $labels.node }} for 30m. See docs/findings.md and `imagefs-doctor diagnose` on the node.",
    why: `The findings that an alert above stands for are excluded (generated from their 'findings'
lists). A warning: without a reviewed alert of its own, a finding does not page.`,
  };
}

const stores: RuleFile = {
  file: "stores.yaml",
  group: "imagefs-doctor.stores",
  rules: [
    {
      alert: "ImagefsImageStoreUnavailable",
      expr: promql`
        imagefs_additional_store_up{kind="image"} == 0
      `,
      for: "5m",
      severity: "critical",
      summary: "An additional image store is missing, unreadable or does not answer.",
      description:
        "Additional image store {{ $labels.store }} on node {{ $labels.node }} has not been usable for 5m: missing, the runtime does not start; hung (NFS, FUSE), every image operation hangs.",
      findings: ["IMAGE_STORE_UNAVAILABLE"],
    },
    {
      alert: "ImagefsImageStoreNotMounted",
      expr: finding("IMAGE_STORE_UNAVAILABLE", "warning"),
      for: "15m",
      severity: "warning",
      summary: "An additional image store's filesystem is not mounted.",
      description:
        "An additional image store on node {{ $labels.node }} has had its filesystem unmounted for 15m (an /etc/fstab line not mounted, or an empty directory): the runtime sees none of the cache's images and pulls them again, or fails to without network.",
      findings: ["IMAGE_STORE_UNAVAILABLE"],
      why: `The finding is a warning when the store's directory exists but its filesystem is not mounted
(imagefs_additional_store_up is 1 then: the directory answers); missing or hung stores page above.`,
    },
    {
      alert: "ImagefsImageStoreNotReadOnly",
      expr: finding("IMAGE_STORE_NOT_READONLY"),
      for: "30m",
      severity: "warning",
      summary: "A shared image cache is mounted writable.",
      description:
        "A shared additional image store on node {{ $labels.node }} has been mounted read-write for 30m: a tool on this node can change images other nodes run from.",
      findings: ["IMAGE_STORE_NOT_READONLY"],
      why: "From the finding, not imagefs_additional_store_readonly: a plain local directory may be writable; a mounted cache may not.",
    },
    {
      alert: "ImagefsImageStoreIncomplete",
      expr: promql`
        imagefs_additional_image_store_incomplete_images > 0
      `,
      for: "15m",
      severity: "warning",
      summary: "Images in an additional image store lack layers.",
      description:
        "{{ $value }} images in additional image store {{ $labels.store }} on node {{ $labels.node }} name layers that no store holds: containers from them fail with 'layer not known'.",
      findings: ["IMAGE_STORE_INCOMPLETE"],
    },
    {
      alert: "ImagefsArtifactStoreInvalid",
      expr: finding("ARTIFACT_STORE_INVALID"),
      for: "15m",
      severity: "warning",
      summary: "An additional artifact store of CRI-O cannot be used.",
      description:
        "An additional artifact store on node {{ $labels.node }} has been missing, hung, without artifacts/ or without a usable index.json for 15m: pods using its OCI artifacts pull them again or fail offline.",
      findings: ["ARTIFACT_STORE_INVALID"],
    },
    {
      alert: "ImagefsStoreConfigNotInEffect",
      expr: promql`
        imagefs_runtime_config_drift > 0
      `,
      for: "1h",
      severity: "warning",
      summary: "CRI-O runs with other store settings than its configuration files say.",
      description:
        "CRI-O on node {{ $labels.node }} has run for 1h with {{ $value }} store settings other than its files: a restart or the pending reboot changes its stores at once.",
      findings: ["STORE_CONFIG_NOT_IN_EFFECT"],
      why: `An hour: the Machine Config Operator writes files before it drains and reboots, and a rollout
over a pool takes a while; a node stuck that long needs a look.`,
    },
    {
      alert: "ImagefsStoreListInvalid",
      expr: finding("STORE_LIST_INVALID"),
      for: "15m",
      severity: "warning",
      summary: "A list of additional stores has duplicates, relative paths or too many entries.",
      description:
        "The lists of additional image, layer or artifact stores on node {{ $labels.node }} are malformed: see the finding for the entries.",
      findings: ["STORE_LIST_INVALID"],
      why: `A warning even when the finding is critical (a relative store path): the running runtime read
its lists long ago; it fails at its next start, and a runtime that does not start pages as
ImagefsRuntimeUnreachable.`,
    },
    {
      alert: "ImagefsUncleanShutdown",
      expr: promql`
        imagefs_runtime_unclean_shutdown == 1
      `,
      for: "10m",
      severity: "info",
      summary: "CRI-O is stopped and its last stop was not clean.",
      description:
        "CRI-O on node {{ $labels.node }} is stopped without its clean-shutdown file: the next start repairs storage and may remove containers.",
      findings: ["UNCLEAN_SHUTDOWN"],
    },
  ],
};

collector.rules.push(catchAll([disk, selinux, lazyPull, stores, collector]));

export const RULE_FILES: readonly RuleFile[] = [disk, selinux, lazyPull, stores, collector];

/** Each alert name once, in file order. */
export function alertNames(): string[] {
  return [...new Set(RULE_FILES.flatMap((f) => f.rules.map((r) => r.alert)))];
}
