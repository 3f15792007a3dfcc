import {
  type DiskResource,
  type DiskRole,
  type Threshold,
  thresholdLevel,
  thresholdsForRole,
} from "../model/eviction.js";
import { formatBytes, formatPercent } from "../model/quantity.js";
import { describeMount, filesystemFacts, kubeletFacts, layout } from "../model/view.js";
import type { Snapshot } from "../snapshot.js";
import type { FilesystemRoleFact } from "../sources/filesystems.js";
import type { CheckDefinition, CheckOptions, FindingDraft } from "./finding.js";

const AREA = "disk pressure";

/** Roles that share one filesystem (one device): they fill up together. */
interface DeviceGroup {
  device: string;
  roles: FilesystemRoleFact[];
}

function deviceGroups(snapshot: Snapshot): DeviceGroup[] {
  const groups = new Map<string, FilesystemRoleFact[]>();
  for (const fact of filesystemFacts(snapshot)?.roles ?? []) {
    if (fact.status !== "ok" || !fact.device || !fact.usage) continue;
    const list = groups.get(fact.device) ?? [];
    if (!list.some((r) => r.role === fact.role && r.path === fact.path)) list.push(fact);
    groups.set(fact.device, list);
  }
  return [...groups].map(([device, roles]) => ({ device, roles }));
}

const KUBELET_ROLES: DiskRole[] = ["nodefs", "imagefs", "containerfs"];

/** Hard and soft thresholds that watch this filesystem, for one resource. */
function thresholdsOn(snapshot: Snapshot, group: DeviceGroup, resource: DiskResource): Threshold[] {
  const eviction = kubeletFacts(snapshot)?.eviction;
  if (!eviction) return [];
  const diskLayout = layout(filesystemFacts(snapshot));
  const out: Threshold[] = [];
  for (const fact of group.roles) {
    if (!KUBELET_ROLES.includes(fact.role as DiskRole)) continue;
    for (const set of [eviction.hard, eviction.soft]) {
      for (const t of thresholdsForRole(set, fact.role as DiskRole, resource, diskLayout)) {
        if (!out.some((o) => o.signal === t.signal && o.raw === t.raw && o.gracePeriod === t.gracePeriod))
          out.push(t);
      }
    }
  }
  return out;
}

interface Reading {
  available: number;
  capacity: number;
  format: (n: number) => string;
  noun: string;
}

function reading(fact: FilesystemRoleFact, resource: DiskResource): Reading | undefined {
  const usage = fact.usage!;
  if (resource === "available") {
    return {
      available: usage.availableBytes,
      capacity: usage.totalBytes,
      format: formatBytes,
      noun: "space",
    };
  }
  if (usage.totalInodes === 0) return undefined; // filesystems without a fixed inode table (btrfs) report 0
  return {
    available: usage.freeInodes,
    capacity: usage.totalInodes,
    format: (n) => `${n} inodes`,
    noun: "inodes",
  };
}

function describeThreshold(t: Threshold, capacity: number, format: (n: number) => string): string {
  const kind = t.gracePeriod ? `soft (grace ${t.gracePeriod})` : "hard";
  return `${kind} threshold ${t.signal} < ${t.raw} = ${format(thresholdLevel(t, capacity))} (${t.from})`;
}

function pressureDrafts(snapshot: Snapshot, options: CheckOptions, resource: DiskResource): FindingDraft[] {
  const drafts: FindingDraft[] = [];
  for (const group of deviceGroups(snapshot)) {
    const first = group.roles[0]!;
    const read = reading(first, resource);
    if (!read || read.capacity === 0) continue;
    const thresholds = thresholdsOn(snapshot, group, resource);
    const margin = (options.pressureMarginPercent / 100) * read.capacity;
    const binding = thresholds.reduce<Threshold | undefined>(
      (best, t) =>
        !best || thresholdLevel(t, read.capacity) > thresholdLevel(best, read.capacity) ? t : best,
      undefined,
    );
    const level = binding ? thresholdLevel(binding, read.capacity) : 0;
    const headroom = read.available - level;
    const crossed = thresholds.filter((t) => read.available < thresholdLevel(t, read.capacity));
    const nearlyFull = !binding && read.available < 0.01 * read.capacity;
    if (crossed.length === 0 && !nearlyFull && headroom >= margin) continue;

    const names = group.roles.map((r) => r.role).join(" + ");
    const paths = [...new Set(group.roles.map((r) => r.path))].join(", ");
    const share = formatPercent(read.available / read.capacity);
    const evidence = [
      `${names} (${paths}) on ${describeMount(first)}, device ${group.device}`,
      `${read.noun} available: ${read.format(read.available)} of ${read.format(read.capacity)} (${share})`,
      ...thresholds.map((t) => describeThreshold(t, read.capacity, read.format)),
    ];
    if (!binding)
      evidence.push("no eviction threshold watches this filesystem; it is judged against being full");
    if (resource === "available") evidence.push(...imageGcLine(snapshot, group, read));
    let severity: FindingDraft["severity"] = "warning";
    let title: string;
    if (crossed.length > 0) {
      severity = "critical";
      title = `The ${names} filesystem is below its eviction threshold: the kubelet reclaims ${read.noun} and evicts pods`;
      evidence.push(`threshold met: ${crossed.map((t) => t.signal).join(", ")}`);
    } else if (nearlyFull) {
      severity = "critical";
      title = `The ${names} filesystem is out of ${read.noun}`;
    } else {
      title = `The ${names} filesystem is ${read.format(Math.max(headroom, 0))} away from ${binding ? "eviction" : "full"}`;
      evidence.push(
        `headroom ${read.format(headroom)} is below the ${options.pressureMarginPercent}% margin (${read.format(margin)})`,
      );
    }
    drafts.push({
      severity,
      title,
      subject: `${names} ${group.device}`,
      evidence,
      remediation: remediation(group, resource, first),
    });
  }
  return drafts;
}

function imageGcLine(snapshot: Snapshot, group: DeviceGroup, read: Reading): string[] {
  const gc = kubeletFacts(snapshot)?.imageGC;
  if (!gc || !group.roles.some((r) => r.role === "imagefs")) return [];
  const used = 100 - (read.available * 100) / read.capacity;
  const high = gc.highThresholdPercent.value;
  const state =
    used >= high ? "image garbage collection is running" : "image garbage collection has not started";
  return [
    `${state}: ${used.toFixed(1)}% used, imageGCHighThresholdPercent ${high} (${gc.highThresholdPercent.from})`,
  ];
}

function remediation(group: DeviceGroup, resource: DiskResource, first: FilesystemRoleFact) {
  const paths = [...new Set(group.roles.map((r) => r.path))];
  const commands: string[] = [];
  if (group.roles.some((r) => r.role === "imagefs")) commands.push("crictl rmi --prune");
  if (group.roles.some((r) => r.role === "containerfs" || r.role === "nodefs")) {
    commands.push("crictl ps -a --state exited", "crictl rm $(crictl ps -a -q --state exited)");
  }
  if (resource === "available") {
    commands.push(...paths.map((p) => `du -x -h -d 2 ${p} | sort -h | tail -20`));
    const mountPoint = first.mount?.mountPoint ?? paths[0]!;
    if (first.mount?.fstype === "xfs") commands.push(`# after growing the disk: xfs_growfs ${mountPoint}`);
    if (first.mount?.fstype?.startsWith("ext"))
      commands.push(`# after growing the disk: resize2fs ${first.mount.source}`);
  } else {
    commands.push(
      ...paths.map((p) => `find ${p} -xdev -printf '%h\\n' | sort | uniq -c | sort -n | tail -20`),
    );
  }
  const what = resource === "available" ? "space" : "inodes";
  return {
    summary: `Free ${what} on this filesystem: remove unused images and exited containers, find what else grows, or enlarge the disk.`,
    commands,
  };
}

const diskPressure: CheckDefinition = {
  id: "DISK_PRESSURE_IMMINENT",
  severity: "warning",
  title: "A filesystem is close to its eviction threshold",
  area: AREA,
  description:
    "A filesystem role (nodefs, imagefs, containerfs, runroot, additional stores) has less free space above its " +
    "effective eviction threshold than the margin (5% of its size by default). When available space drops below " +
    "the threshold the kubelet sets DiskPressure, taints the node and evicts pods. Critical once the threshold is met.",
  confirm: [
    "df -h /var/lib/kubelet /var/lib/containers/storage",
    "kubectl describe node $(hostname) | grep -A2 DiskPressure",
  ],
  run: (snapshot, options) => pressureDrafts(snapshot, options, "available"),
};

const inodePressure: CheckDefinition = {
  id: "INODE_PRESSURE_IMMINENT",
  severity: "warning",
  title: "A filesystem is close to running out of inodes",
  area: AREA,
  description:
    "As DISK_PRESSURE_IMMINENT, for inodes: many small files (image layers, logs, emptyDir volumes) can exhaust a " +
    "filesystem's inodes while bytes remain free. The *.inodesFree signals then put the node under DiskPressure.",
  confirm: ["df -i /var/lib/kubelet /var/lib/containers/storage"],
  run: (snapshot, options) => pressureDrafts(snapshot, options, "inodesFree"),
};

export const pressureChecks: CheckDefinition[] = [diskPressure, inodePressure];
