import type { Finding } from "../checks/finding.js";
import { type DiskResource, type DiskRole, thresholdLevel, thresholdsForRole } from "../model/eviction.js";
import { additionalImageStores, artifactStores, configDifferences, crioInspect } from "../model/stores.js";
import { filesystemFacts, kubeletFacts, layout } from "../model/view.js";
import type { Snapshot, SourceName } from "../snapshot.js";
import { factsOf } from "../sources/source.js";
import type { StoreAccess } from "../sources/store-access.js";
import { VERSION } from "../version.js";
import type { MetricName } from "./catalog.js";

/** One value of one series: what both exporters publish. */
export interface Sample {
  name: MetricName;
  labels: Record<string, string>;
  value: number;
}

const g = (name: MetricName, labels: Record<string, string>, value: number): Sample => ({
  name,
  labels,
  value,
});

/** The gauges of one cycle, computed from its snapshot and findings. */
export function gaugeSamples(snapshot: Snapshot, findings: Finding[]): Sample[] {
  return [
    g("imagefs_build_info", { version: VERSION }, 1),
    ...sourceSamples(snapshot),
    ...findingSamples(findings),
    ...filesystemSamples(snapshot),
    ...evictionSamples(snapshot),
    ...runtimeSamples(snapshot),
    ...selinuxSamples(snapshot),
    ...layerSamples(snapshot),
    ...additionalStoreSamples(snapshot),
  ];
}

function sourceSamples(snapshot: Snapshot): Sample[] {
  return (Object.keys(snapshot.sources) as SourceName[]).flatMap((source) => {
    const result = snapshot.sources[source];
    const success = result.status === "ok" || result.status === "absent" ? 1 : 0;
    return [
      g("imagefs_source_success", { source }, success),
      g("imagefs_source_duration_seconds", { source }, result.durationMs / 1000),
    ];
  });
}

function findingSamples(findings: Finding[]): Sample[] {
  const counts = new Map<string, Sample>();
  for (const finding of findings) {
    const key = `${finding.id}\0${finding.severity}`;
    const sample = counts.get(key) ?? g("imagefs_finding", { id: finding.id, severity: finding.severity }, 0);
    sample.value += 1;
    counts.set(key, sample);
  }
  return [...counts.values()];
}

/** Several stores can share a role (additional image stores): they are told apart by ordinal. */
function roleStores(snapshot: Snapshot) {
  const seen = new Map<string, number>();
  return (filesystemFacts(snapshot)?.roles ?? []).map((fact) => {
    const ordinal = seen.get(fact.role) ?? 0;
    seen.set(fact.role, ordinal + 1);
    return { fact, labels: { role: fact.role, store: String(ordinal) } };
  });
}

function filesystemSamples(snapshot: Snapshot): Sample[] {
  const samples: Sample[] = [];
  for (const { fact, labels } of roleStores(snapshot)) {
    samples.push(g("imagefs_filesystem_up", labels, fact.status === "ok" ? 1 : 0));
    if (fact.status !== "ok" || !fact.usage) continue;
    const u = fact.usage;
    samples.push(
      g("imagefs_filesystem_size_bytes", labels, u.totalBytes),
      g("imagefs_filesystem_available_bytes", labels, u.availableBytes),
      g("imagefs_filesystem_free_bytes", labels, u.freeBytes),
      g("imagefs_filesystem_files", labels, u.totalInodes),
      g("imagefs_filesystem_files_free", labels, u.freeInodes),
      g("imagefs_filesystem_readonly", labels, fact.mount?.readOnly ? 1 : 0),
      g(
        "imagefs_filesystem_info",
        { ...labels, fstype: fact.mount?.fstype ?? "unknown", device: fact.device ?? "unknown" },
        1,
      ),
    );
  }
  const topology = filesystemFacts(snapshot)?.topology;
  if (topology) samples.push(g("imagefs_topology_info", { topology }, 1));
  return samples;
}

const KUBELET_ROLES: DiskRole[] = ["nodefs", "imagefs", "containerfs"];

/** The thresholds the kubelet enforces on each role's filesystem, as levels of available bytes and free inodes. */
function evictionSamples(snapshot: Snapshot): Sample[] {
  const kubelet = kubeletFacts(snapshot);
  const fs = filesystemFacts(snapshot);
  if (!kubelet || !fs) return [];
  const samples: Sample[] = [
    g("imagefs_eviction_defaults_dropped", {}, kubelet.eviction.defaultsDropped.length),
  ];
  samples.push(
    g("imagefs_image_gc_high_threshold_ratio", {}, kubelet.imageGC.highThresholdPercent.value / 100),
  );
  const diskLayout = layout(fs);
  for (const role of KUBELET_ROLES) {
    const fact = fs.roles.find((r) => r.role === role);
    if (fact?.status !== "ok" || !fact.usage) continue;
    const resources: [DiskResource, MetricName, number][] = [
      ["available", "imagefs_eviction_threshold_bytes", fact.usage.totalBytes],
      ["inodesFree", "imagefs_eviction_threshold_files", fact.usage.totalInodes],
    ];
    for (const [resource, name, capacity] of resources) {
      for (const [kind, set] of [
        ["hard", kubelet.eviction.hard],
        ["soft", kubelet.eviction.soft],
      ] as const) {
        for (const t of thresholdsForRole(set, role, resource, diskLayout)) {
          samples.push(g(name, { role, signal: t.signal, kind }, thresholdLevel(t, capacity)));
        }
      }
    }
  }
  return samples;
}

function runtimeSamples(snapshot: Snapshot): Sample[] {
  const samples: Sample[] = [];
  const cri = factsOf(snapshot.sources.cri);
  if (cri) {
    samples.push(g("imagefs_runtime_up", {}, cri.answeredBy ? 1 : 0));
    if (cri.runtime)
      samples.push(g("imagefs_runtime_info", { runtime: cri.runtime.name, version: cri.runtime.version }, 1));
  }
  for (const store of factsOf(snapshot.sources["image-stores"])?.stores ?? []) {
    const orphaned =
      store.role === "unconfigured" ||
      (store.role === "graphroot" &&
        factsOf(snapshot.sources["storage-config"])?.containersStorage.imagestore.value);
    if (orphaned) samples.push(g("imagefs_orphaned_images", { store_role: store.role }, store.images.count));
  }
  return samples;
}

function selinuxSamples(snapshot: Snapshot): Sample[] {
  const selinux = factsOf(snapshot.sources.selinux);
  const samples: Sample[] = [];
  if (selinux) {
    for (const mode of ["enforcing", "permissive", "disabled"])
      samples.push(g("imagefs_selinux_mode", { mode }, selinux.state === mode ? 1 : 0));
    for (const store of selinux.stores) {
      if (!store.scan) continue;
      const store_role = store.role;
      samples.push(g("imagefs_selinux_files_checked", { store_role }, store.scan.filesChecked));
      samples.push(g("imagefs_selinux_scan_sampled", { store_role }, store.scan.sampled ? 1 : 0));
      for (const m of store.scan.mismatches) {
        samples.push(
          g(
            "imagefs_selinux_mislabeled_files",
            { store_role, actual_type: m.actual, expected_type: m.expected },
            m.count,
          ),
        );
      }
    }
  }
  const logs = factsOf(snapshot.sources["pod-logs"]);
  for (const kind of ["relocation", "map-segment", "shared-object"]) {
    samples.push(
      g("imagefs_container_loader_errors", { kind }, logs?.errors.filter((e) => e.kind === kind).length ?? 0),
    );
  }
  return samples;
}

function layerSamples(snapshot: Snapshot): Sample[] {
  const samples: Sample[] = [];
  const layers = factsOf(snapshot.sources.layers);
  if (layers) {
    for (const [mode, tally] of Object.entries(layers.totals)) {
      samples.push(
        g("imagefs_layers", { mode }, tally.layers),
        g("imagefs_layer_bytes", { mode }, tally.bytes),
      );
    }
  }
  const stores = factsOf(snapshot.sources["layer-stores"])?.stores ?? [];
  stores.forEach((store, index) => {
    const labels = { store: String(index) };
    samples.push(
      g("imagefs_layer_store_mounted", labels, store.mount?.fstype.startsWith("fuse") ? 1 : 0),
      g("imagefs_layer_store_process_up", labels, store.process ? 1 : 0),
      g("imagefs_layer_store_broken_layers", labels, store.brokenLayers.length),
    );
    if (store.fusectl?.waiting !== null && store.fusectl?.waiting !== undefined) {
      samples.push(g("imagefs_layer_store_fuse_waiting_requests", labels, store.fusectl.waiting));
    }
    if (store.responsive === null) return;
    samples.push(g("imagefs_layer_store_up", labels, store.responsive ? 1 : 0));
    const since = store.unresponsiveSince ? Date.parse(store.unresponsiveSince) / 1000 : 0;
    samples.push(g("imagefs_layer_store_unresponsive_since_seconds", labels, since));
  });
  return samples;
}

/** Counter increments of one cycle: journal reasons and AVC denials read since the last cycle. */
export function counterIncrements(snapshot: Snapshot): Sample[] {
  const samples: Sample[] = [];
  const journal = factsOf(snapshot.sources.journal);
  for (const count of journal?.counts ?? []) {
    samples.push(
      g(
        "imagefs_log_events_total",
        { pack: count.pack, unit: count.unit, reason: count.reason },
        count.count,
      ),
    );
  }
  if (journal?.read.dropped)
    samples.push(g("imagefs_journal_entries_dropped_total", { source: "journal" }, journal.read.dropped));
  const avc = factsOf(snapshot.sources.avc);
  for (const group of avc?.storageDenials ?? []) {
    samples.push(
      g(
        "imagefs_selinux_avc_denials_total",
        { source_type: group.sourceType, target_type: group.targetType, tclass: group.tclass },
        group.count,
      ),
    );
  }
  if (avc?.journal?.dropped)
    samples.push(g("imagefs_journal_entries_dropped_total", { source: "avc" }, avc.journal.dropped));
  return samples;
}

export interface ProbeObservation {
  labels: { store: string; op: string };
  seconds: number;
}

/** Probe timings for the latency histogram, and failures (failed or past the deadline) to count. */
export function probeObservations(snapshot: Snapshot): {
  observations: ProbeObservation[];
  failures: Sample[];
} {
  const observations: ProbeObservation[] = [];
  const failures: Sample[] = [];
  (factsOf(snapshot.sources["layer-stores"])?.stores ?? []).forEach((store, index) => {
    const run = store.probe;
    if (!run) return;
    for (const result of run.results) {
      const labels = { store: String(index), op: result.op };
      if (result.ok) observations.push({ labels, seconds: result.ms / 1000 });
      else failures.push(g("imagefs_layer_store_probe_failures_total", { ...labels, outcome: "error" }, 1));
    }
    if (run.hungAt)
      failures.push(
        g(
          "imagefs_layer_store_probe_failures_total",
          { store: String(index), op: run.hungAt.op, outcome: "timeout" },
          1,
        ),
      );
  });
  return { observations, failures };
}

/** Additional image and artifact stores by ordinal (their paths go into findings), and CRI-O's config in effect. */
function additionalStoreSamples(snapshot: Snapshot): Sample[] {
  const samples: Sample[] = [];
  const access = (kind: "image" | "artifact", store: string, a: StoreAccess) => {
    const labels = { kind, store };
    samples.push(
      g("imagefs_additional_store_up", labels, a.status === "ok" ? 1 : 0),
      g("imagefs_additional_store_probe_duration_seconds", labels, a.probeMs / 1000),
    );
    if (a.readOnly !== null) samples.push(g("imagefs_additional_store_readonly", labels, a.readOnly ? 1 : 0));
    if (a.sizeBytes !== null) samples.push(g("imagefs_additional_store_size_bytes", labels, a.sizeBytes));
  };
  additionalImageStores(snapshot).forEach((fact, index) => {
    const store = String(index);
    access("image", store, fact.access);
    if (fact.access.status !== "ok") return;
    samples.push(g("imagefs_additional_image_store_images", { store }, fact.images.count));
    if (fact.completeness) {
      samples.push(
        g("imagefs_additional_image_store_incomplete_images", { store }, fact.completeness.incompleteImages),
        g("imagefs_additional_image_store_missing_layers", { store }, fact.completeness.missingLayers),
      );
    }
  });
  artifactStores(snapshot).forEach((fact, index) => {
    const store = String(index);
    access("artifact", store, fact.access);
    if (fact.index.status === "ok")
      samples.push(g("imagefs_artifact_store_artifacts", { store }, fact.index.artifacts));
  });
  const inspect = crioInspect(snapshot);
  if (inspect) {
    if (inspect.config.status === "ok")
      samples.push(g("imagefs_runtime_config_drift", {}, configDifferences(snapshot).length));
    samples.push(
      g("imagefs_runtime_config_files_changed", {}, inspect.changedSinceStart.length),
      g("imagefs_runtime_unclean_shutdown", {}, inspect.cleanShutdown.state === "unclean" ? 1 : 0),
    );
  }
  return samples;
}
