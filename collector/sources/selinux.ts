import { readFile, readlink } from "node:fs/promises";
import path from "node:path";
import type { Host, MountFact } from "../host/host.js";
import { isWithin, type MountTable, mayHang, mountContext } from "../host/mountinfo.js";
import { describeError } from "../host/root.js";
import { contextType } from "../selinux/context.js";
import {
  type FileContexts,
  loadPolicyFileContexts,
  type PolicyFileFact,
  type SubstitutionRule,
} from "../selinux/file-contexts.js";
import { type LabelPair, type LabelScanResult, type ScanErrorCount, scanLabels } from "../selinux/scan.js";
import { readLabel, XattrError } from "../selinux/xattr.js";
import type { AvcFacts } from "./avc.js";
import { decideRuntime } from "./filesystems.js";
import type { KubeletConfigFacts } from "./kubelet-config.js";
import { factsOf, type SourceDefinition } from "./source.js";
import type { StorageConfigFacts } from "./storage-config.js";

/** "path" is a directory named on the selinux-scan command line. */
export type StoreRole =
  | "graphroot"
  | "imagestore"
  | "additional-image-store"
  | "layer-store"
  | "kubelet-root"
  | "path";

/** A store root or one of its overlay directories: its label and what it should be. */
export interface DirLabel {
  path: string;
  label: string | null;
  /** The policy's type for it (after equivalence substitution), when the policy has one. */
  expectedType: string | null;
  /** The type of the same relative path under graphroot, when it exists there. */
  referenceType: string | null;
  referencePath: string | null;
}

export interface LabelMismatch {
  actual: string;
  expected: string;
  basis: "policy" | "reference";
  count: number;
  samples: string[];
}

export interface StoreScan {
  filesChecked: number;
  elapsedMs: number;
  sampled: boolean;
  unlabeled: number;
  /** Entries below the store whose type differs, per (actual → expected) pair. */
  mismatches: LabelMismatch[];
  errors: ScanErrorCount[];
}

export interface StoreLabels {
  role: StoreRole;
  path: string;
  status: "scanned" | "missing" | "not-scanned" | "error";
  reason?: string;
  fstype: string | null;
  mountPoint: string | null;
  /** The mount's source as mountinfo gives it (server:/export, a device, "none"): for a mount command. */
  mountSource?: string | null;
  /** False when the filesystem cannot hold labels (ENOTSUP, or NFS/FUSE without context=). */
  xattrSupported: boolean | null;
  /** The label a context= mount option gives the whole filesystem, if any. */
  mountContext: string | null;
  dirs: DirLabel[];
  /** The policy's type for <store>/<driver> after substitution, and the .subs line that maps the store. */
  equivalence: { expectedType: string | null; via: string | null };
  scan: StoreScan | null;
}

export interface SelinuxFacts {
  state: "enforcing" | "permissive" | "disabled";
  stateEvidence: string[];
  config: { found: boolean; mode: string | null; policyType: string };
  kernel: { enforce: 0 | 1 | null; from: string | null };
  policy: {
    type: string;
    /** True when file_contexts was read: expected labels are known. */
    loaded: boolean;
    files: PolicyFileFact[];
    localSubstitutions: SubstitutionRule[];
    distSubstitutions: SubstitutionRule[];
  };
  compare: "type" | "full";
  /** The store other stores are compared with. */
  graphroot: string;
  stores: StoreLabels[];
  /** Files named by AVC records (dev + ino) found in a store during the scan. */
  avcPaths: { dev: string; ino: number; hostPath: string }[];
}

type Inputs = {
  "storage-config": StorageConfigFacts;
  "kubelet-config": KubeletConfigFacts;
  avc: AvcFacts;
  selinux: SelinuxFacts;
};

export const selinuxSource: SourceDefinition<Inputs, "selinux"> = {
  name: "selinux",
  deadlineMs: 30_000,
  async collect({ host, options, result }) {
    const [storage, kubelet, avc] = await Promise.all([
      result("storage-config"),
      result("kubelet-config"),
      result("avc"),
    ]);
    const config = await readSelinuxConfig(host);
    const kernel = await readEnforce(host);
    const state = kernel.enforce === null ? "disabled" : kernel.enforce === 1 ? "enforcing" : "permissive";
    const stateEvidence = [
      kernel.from
        ? `${kernel.from} reads ${kernel.enforce}`
        : "no /sys/fs/selinux/enforce: SELinux is not enabled in the kernel",
      config.found
        ? `/etc/selinux/config: SELINUX=${config.mode ?? "(unset)"} SELINUXTYPE=${config.policyType}`
        : "/etc/selinux/config is missing",
    ];
    const policy = await loadPolicyFileContexts(host, config.policyType);
    const stores = storesToAudit(decideRuntime(storage, kubelet).kind, factsOf(storage), factsOf(kubelet));
    const graphroot = stores.find((s) => s.role === "graphroot")?.path ?? "/var/lib/containers/storage";
    const table = await host.mounts().catch(() => undefined);
    const wanted = wantedInodes(factsOf(avc));
    const avcPaths: SelinuxFacts["avcPaths"] = [];
    const audited: StoreLabels[] = [];
    for (const store of stores) {
      audited.push(
        await auditStore(host, store, {
          table,
          contexts: policy.contexts,
          graphroot,
          driver: storageDriver(factsOf(storage)),
          scan: options.labelScan,
          wanted,
          avcPaths,
          selinuxDisabled: state === "disabled",
        }),
      );
    }
    return {
      state,
      stateEvidence,
      config,
      kernel,
      policy: {
        type: config.policyType,
        loaded: policy.contexts !== null,
        files: policy.facts.files,
        localSubstitutions: policy.facts.localSubstitutions,
        distSubstitutions: policy.facts.distSubstitutions,
      },
      compare: options.labelScan.compare,
      graphroot,
      stores: audited,
      avcPaths,
    };
  },
};

/**
 * /etc/selinux/config as libselinux reads it (selinux_config.c): the first `SELINUX=` line (at the
 * very start of a line) whose value starts, in any case, with a mode decides it; `SELINUXTYPE=`
 * (any case, after leading whitespace) is the last such line, trailing blanks cut, default targeted.
 */
export async function readSelinuxConfig(host: Host): Promise<SelinuxFacts["config"]> {
  let text: string;
  try {
    text = (await host.readText("/etc/selinux/config", 64 * 1024)).text;
  } catch {
    return { found: false, mode: null, policyType: "targeted" };
  }
  const lines = text.split("\n");
  return { found: true, mode: configMode(lines), policyType: configPolicyType(lines) ?? "targeted" };
}

const MODES = ["enforcing", "permissive", "disabled"];

/** selinux_getenforcemode: the first line that names a mode; else what the last SELINUX= said, for the evidence. */
function configMode(lines: string[]): string | null {
  let unknown: string | null = null;
  for (const line of lines) {
    if (!line.startsWith("SELINUX=")) continue;
    const value = line.slice("SELINUX=".length).trimStart().toLowerCase();
    const mode = MODES.find((m) => value.startsWith(m));
    if (mode) return mode;
    unknown = value.trimEnd();
  }
  return unknown;
}

/** init_selinux_config: the last SELINUXTYPE= line wins; "SELINUXTYPE =" is not the tag. */
function configPolicyType(lines: string[]): string | null {
  let type: string | null = null;
  for (const line of lines) {
    const trimmed = line.trimStart();
    if (!trimmed.toUpperCase().startsWith("SELINUXTYPE=")) continue;
    // libselinux cuts trailing white space and control characters (a CR from an edited file).
    type = trimmed
      .slice("SELINUXTYPE=".length)
      .trimStart()
      .replace(/[\s\p{Cc}]+$/u, "");
  }
  return type;
}

/**
 * A kernel file under /sys. Under a host root the host's /sys is tried first; a container shares
 * the host's kernel, so its own /sys tells the same when the host's is not mounted.
 */
function kernelPaths(host: Host, sysPath: string): string[] {
  const candidates = [host.root.local(sysPath)];
  if (!host.root.isSystemRoot) candidates.push(sysPath);
  return candidates;
}

/** The kernel's mode from selinuxfs. */
async function readEnforce(host: Host): Promise<SelinuxFacts["kernel"]> {
  for (const file of kernelPaths(host, "/sys/fs/selinux/enforce")) {
    try {
      const value = (await readFile(file, "utf8")).trim();
      if (/^\d+$/.test(value))
        return { enforce: Number(value) === 0 ? 0 : 1, from: host.root.toHost(file) ?? file };
    } catch {
      // next
    }
  }
  return { enforce: null, from: null };
}

/**
 * How AVC records name a filesystem (`dev=`, the superblock's s_id): for a block device, the
 * kernel's name of the disk, which /sys/dev/block/MAJ:MIN links to (dm-3 for a store mounted as
 * /dev/mapper/vg-images, sda3, loop0). A filesystem without a block device (tmpfs, overlay,
 * FUSE) keeps the s_id the kernel gives by default, its filesystem type's name: "tmpfs" even when
 * mountinfo's source is "none", "fuse" for a fuse.sshfs mount. The mount source names the disk
 * only when it is a /dev path that sysfs did not resolve: the name its /dev symlinks lead to
 * under the host root (dm-3 for /dev/mapper/vg-images), else its own.
 */
export async function kernelDeviceName(
  host: Host,
  device: string,
  source: string,
  fstype: string,
): Promise<string> {
  for (const link of kernelPaths(host, `/sys/dev/block/${device}`)) {
    try {
      return path.basename(await readlink(link));
    } catch {
      // next
    }
  }
  if (source.startsWith("/dev/")) return path.basename(await resolveDevLink(host, source));
  return fstype.split(".")[0] || path.basename(source);
}

/**
 * A /dev path with its symlinks followed under the host root (/dev/mapper/vg-images → /dev/dm-3,
 * /dev/disk/by-uuid/… → /dev/sda3), as far as they resolve: the kernel names the disk by the
 * link's target, not by the link. The path as written when it cannot be followed.
 */
async function resolveDevLink(host: Host, source: string): Promise<string> {
  try {
    return (await host.root.resolve(source)).host;
  } catch {
    return source;
  }
}

/** The storage driver of the effective containers-storage configuration (overlay when unknown or empty, as containers/storage reads it). */
export function storageDriver(storage: StorageConfigFacts | undefined): string {
  return storage?.containersStorage.driver.value || "overlay";
}

export interface StoreToAudit {
  role: StoreRole;
  path: string;
}

export function storesToAudit(
  runtime: "crio" | "containerd" | "unknown",
  storage: StorageConfigFacts | undefined,
  kubelet: KubeletConfigFacts | undefined,
): StoreToAudit[] {
  const stores: StoreToAudit[] = [];
  if (runtime === "containerd" && storage?.containerd) {
    stores.push({ role: "graphroot", path: storage.containerd.root.value });
  } else if (storage) {
    const cs = storage.containersStorage;
    stores.push({ role: "graphroot", path: cs.graphroot.value });
    if (cs.imagestore.value) stores.push({ role: "imagestore", path: cs.imagestore.value });
    for (const store of cs.additionalImageStores.value)
      stores.push({ role: "additional-image-store", path: store });
    for (const store of cs.additionalLayerStores.value) {
      if (store.path.startsWith("/")) stores.push({ role: "layer-store", path: store.path });
    }
  }
  stores.push({ role: "kubelet-root", path: kubelet?.rootDir.value ?? "/var/lib/kubelet" });
  return stores;
}

/** Inodes named by storage denials, keyed by the s_id of the device they are on. */
function wantedInodes(avc: AvcFacts | undefined) {
  const byDev = new Map<string, Set<bigint>>();
  for (const group of avc?.storageDenials ?? []) {
    for (const sample of group.samples) {
      if (!sample.dev || sample.ino === null) continue;
      const set = byDev.get(sample.dev) ?? new Set<bigint>();
      set.add(BigInt(sample.ino));
      byDev.set(sample.dev, set);
    }
  }
  return byDev;
}

export interface AuditContext {
  table: MountTable | undefined;
  contexts: FileContexts | null;
  graphroot: string;
  driver: string;
  scan: {
    maxFiles: number;
    maxMs: number;
    compare: "type" | "full";
    onProgress?: (checked: number) => void;
    progressEvery?: number;
  };
  wanted: Map<string, Set<bigint>>;
  avcPaths: SelinuxFacts["avcPaths"];
  /** SELinux is disabled: a store without any label is not walked (every file would just be "unlabeled"). */
  selinuxDisabled?: boolean;
}

/** Labels of one store: its root and overlay directories, and a (budgeted) scan of everything below. */
export async function auditStore(host: Host, store: StoreToAudit, ctx: AuditContext): Promise<StoreLabels> {
  const base: StoreLabels = {
    ...store,
    status: "scanned",
    fstype: null,
    mountPoint: null,
    xattrSupported: null,
    mountContext: null,
    dirs: [],
    equivalence: equivalenceOf(store.path, ctx),
    scan: null,
  };
  const inspection = await host.inspectPath(store.path);
  if (inspection.status === "missing") return { ...base, status: "missing" };
  if (inspection.status === "error") return { ...base, status: "error", reason: inspection.error };
  if (inspection.status === "unresponsive") {
    return { ...base, status: "not-scanned", reason: inspection.error, fstype: inspection.mount.fstype };
  }
  const mount = inspection.mount;
  const withMount = {
    ...base,
    fstype: mount?.fstype ?? null,
    mountPoint: mount?.mountPoint ?? null,
    mountSource: mount?.source ?? null,
  };
  if (mount && mayHang(mount.fstype)) {
    // Never walked in-process; whether it can carry labels shows in its mount options.
    const support = mountLabelSupport(mount);
    return {
      ...withMount,
      status: "not-scanned",
      // A layer store (a FUSE server) is labelled as a whole: by context=, else fusefs_t by the policy.
      reason: store.role === "layer-store" ? `${mount.fstype} filesystem: not walked` : support.reason,
      xattrSupported: store.role === "layer-store" ? null : support.xattrSupported,
      mountContext: support.context,
    };
  }
  if (store.role === "layer-store") {
    return {
      ...withMount,
      status: "not-scanned",
      reason: "not a FUSE mount: the layer store serves nothing here",
    };
  }
  const local = host.root.local(inspection.resolved);
  const dirs = topDirectories(host, store, inspection.resolved, ctx);
  if (ctx.selinuxDisabled && dirs.every((dir) => dir.label === null)) {
    return {
      ...withMount,
      dirs,
      status: "not-scanned",
      reason: "SELinux is disabled and the store carries no labels",
    };
  }
  if (store.role === "kubelet-root") {
    // Pod volumes below it carry container_file_t on purpose (the runtime relabels them): only its root is judged.
    return { ...withMount, dirs };
  }
  const referenceLocal = store.role === "graphroot" ? null : host.root.local(ctx.graphroot);
  const devName = await kernelDeviceName(host, inspection.device, mount?.source ?? "", mount?.fstype ?? "");
  let scan: LabelScanResult;
  try {
    scan = scanLabels({
      root: local,
      hostPath: inspection.resolved,
      contexts: ctx.contexts,
      reference: referenceLocal,
      compare: ctx.scan.compare,
      skip: mountPointsBelow(host, ctx.table, local),
      maxFiles: ctx.scan.maxFiles,
      maxMs: ctx.scan.maxMs,
      wantedInodes: ctx.wanted.get(devName),
      onProgress: ctx.scan.onProgress,
      progressEvery: ctx.scan.progressEvery,
    });
  } catch (error) {
    return { ...withMount, status: "error", reason: describeError(error) };
  }
  for (const [ino, paths] of Object.entries(scan.inodes)) {
    for (const hostPath of paths) ctx.avcPaths.push({ dev: devName, ino: Number(ino), hostPath });
  }
  return {
    ...withMount,
    xattrSupported: !scan.noXattrSupport,
    reason: scan.noXattrSupport ? "reading security.selinux fails with ENOTSUP" : undefined,
    dirs,
    scan: summarize(scan),
  };
}

/**
 * Whether a network or FUSE filesystem (never walked here) can hold SELinux labels, from its mount
 * options: `context=` gives the whole mount one label; `seclabel`, which an SELinux kernel shows
 * on mounts that support labelling, says its files keep their own (NFS 4.2 with security_label).
 * Without either, every file gets the policy's genfs type (nfs_t, fusefs_t) and relabelling fails.
 */
export function mountLabelSupport(mount: MountFact): {
  xattrSupported: boolean;
  context: string | null;
  reason: string;
} {
  const context = mountContext(mount);
  if (context !== null)
    return { xattrSupported: true, context, reason: `${mount.fstype} mounted with context=: not walked` };
  if ([...mount.options, ...mount.superOptions].includes("seclabel"))
    return { xattrSupported: true, context, reason: `${mount.fstype} with seclabel: not walked` };
  return {
    xattrSupported: false,
    context,
    reason: `${mount.fstype} mounted without context= and without seclabel: its files cannot carry their own labels`,
  };
}

/** Mount points strictly below a store (container rootfs mounts, a FUSE store): never entered. */
function mountPointsBelow(host: Host, table: MountTable | undefined, local: string): Set<string> {
  const skip = new Set<string>();
  for (const entry of table?.entries ?? []) {
    const seen = [entry.mountPoint, host.root.local(entry.mountPoint)];
    for (const candidate of seen) if (candidate !== local && isWithin(candidate, local)) skip.add(candidate);
  }
  return skip;
}

/** The store root and its <driver>* directories: labels, policy types and graphroot's types. */
function topDirectories(host: Host, store: StoreToAudit, resolved: string, ctx: AuditContext): DirLabel[] {
  const storePath = store.path;
  const names =
    store.role === "kubelet-root"
      ? [""]
      : ["", ctx.driver, `${ctx.driver}-images`, `${ctx.driver}-layers`, `${ctx.driver}-containers`];
  const dirs: DirLabel[] = [];
  for (const name of names) {
    const label = labelOf(host.root.local(path.posix.join(resolved, name)));
    if (label === undefined) continue;
    const hostPath = name ? path.posix.join(storePath, name) : storePath;
    const referencePath = storePath === ctx.graphroot ? null : path.posix.join(ctx.graphroot, name);
    const reference = referencePath ? labelOf(host.root.local(referencePath)) : undefined;
    dirs.push({
      path: hostPath,
      label,
      expectedType: expectedType(ctx.contexts, hostPath),
      referenceType: reference ? contextType(reference) : null,
      referencePath: reference ? referencePath : null,
    });
  }
  return dirs;
}

/** A directory's label; null when it has none; undefined when it does not exist or cannot be read. */
function labelOf(local: string): string | null | undefined {
  const label = readLabel(local);
  if (label instanceof XattrError) return label.code === "ENOENT" ? undefined : null;
  return label;
}

function expectedType(contexts: FileContexts | null, hostPath: string): string | null {
  const result = contexts?.lookup(hostPath, "dir");
  return result?.kind === "label" ? contextType(result.context) : null;
}

/**
 * Whether the policy labels <store>/<driver> like graphroot's, and the .subs/.subs_dist lines the
 * lookup of the store really goes through (the lookup's own choice: last line first, .subs first).
 */
function equivalenceOf(storePath: string, ctx: AuditContext): StoreLabels["equivalence"] {
  const lines = ctx.contexts?.substitutionsOf(storePath) ?? [];
  return {
    expectedType: expectedType(ctx.contexts, path.posix.join(storePath, ctx.driver)),
    via: lines.length > 0 ? lines.map(describeSubstitution).join(", then ") : null,
  };
}

/** "alias original (file_contexts.subs line N)". */
function describeSubstitution(rule: SubstitutionRule): string {
  return `${rule.alias} ${rule.original} (${path.posix.basename(rule.file)} line ${rule.line})`;
}

function summarize(scan: LabelScanResult): StoreScan {
  const mismatches: LabelMismatch[] = [];
  const add = (pairs: LabelPair[], basis: "policy" | "reference") => {
    for (const pair of pairs) {
      if (pair.actual === pair.expected || pair.expected.startsWith("<")) continue;
      mismatches.push({
        actual: pair.actual,
        expected: pair.expected,
        basis,
        count: pair.count,
        samples: pair.samples,
      });
    }
  };
  add(scan.totals.policyPairs, "policy");
  // The reference speaks only where the policy could not: no policy files, or no spec matched.
  if (scan.totals.policy.matching + scan.totals.policy.mismatched === 0)
    add(scan.totals.referencePairs, "reference");
  return {
    filesChecked: scan.checked,
    elapsedMs: Math.round(scan.durationMs),
    sampled: scan.sampled,
    unlabeled: scan.totals.unlabeled,
    mismatches: mismatches.sort((a, b) => b.count - a.count),
    errors: scan.errors,
  };
}
