import { lstat, readdir } from "node:fs/promises";
import path from "node:path";
import { probeMount } from "../host/fuse-probe.js";
import type { ProbeOp, ProbeOpResult, ProbeRun } from "../host/fuse-probe-types.js";
import type { Host, MountFact } from "../host/host.js";
import {
  isWithin,
  longestPrefixMount,
  type MountEntry,
  mayHang,
  mountContext,
  mountOption,
} from "../host/mountinfo.js";
import { describeError, errnoCode } from "../host/root.js";
import { type FstabEntry, readFstab } from "./filesystems.js";

/**
 * How a configured store directory is reached. A network or FUSE store is touched only by the
 * child-process probe, so a dead server makes it "unresponsive", never hangs the collection.
 */
export interface StoreAccess {
  /**
   * ok: the directory answers; missing: the path does not exist; unresponsive: the probe ran past
   * its deadline; error: it exists but cannot be read (permission, I/O error).
   */
  status: "ok" | "missing" | "unresponsive" | "error";
  error?: string;
  /** The mount holding the store (its own mount, or the filesystem it lies on). */
  mount: MountFact | null;
  /** The store directory is itself a mount point (a cache mounted there). */
  isMountPoint: boolean;
  /** An /etc/fstab line that would mount a filesystem at or above the store but is not mounted. */
  fstabNotMounted: FstabEntry | null;
  /** Mounted read-only (mount or superblock option ro). */
  readOnly: boolean | null;
  /** The context= mount option (SELinux label for a filesystem without xattr labels), if any. */
  selinuxContext: string | null;
  /** A network or FUSE filesystem (nfs, nfs4, cifs, ceph, fuse.*): probed in a child process. */
  remote: boolean;
  /** NFS protocol version from the superblock options (vers=4.2), when NFS. */
  nfsVersion: string | null;
  /** Wall time of the probe (or of the local reads) of the store root, in ms. */
  probeMs: number;
  /**
   * Bytes the store takes: its filesystem's used bytes when the store is that filesystem's mount
   * point (and holds no other mount), else its directory tree walked within budget; null otherwise.
   */
  sizeBytes: number | null;
}

// Additional stores (image stores in image-stores.ts, artifact stores in artifact-stores.ts): how a
// configured store directory is reached, and reading inside it without ever hanging on a network mount.

/**
 * All probe runs on one network or FUSE store together, from its first operation to its last
 * (after the host's guarded stat of the store root, which has its own deadline).
 */
export const REMOTE_STORE_DEADLINE_MS = 3000;
/** What the probe child reads of one file on a network or FUSE store (its own ceiling is 16 MiB). */
const REMOTE_MAX_READ_BYTES = 16 * 1024 * 1024;
/** A layer-directory probe run is not started with less time than this left. */
const MIN_PROBE_RUN_MS = 250;
/** Budget of the du-like walk of a local store; past it, sizeBytes is null. */
export const SIZE_BUDGET = { maxEntries: 100_000, maxMs: 1500 };
/** Local lstat calls in flight at once. */
const STAT_BATCH = 64;
const SLASH = Buffer.from("/");

export type FileRead =
  | { ok: true; text: string; truncated: boolean; maxBytes: number }
  | { ok: false; code: string; message: string };

export type EntryStat =
  | { ok: true; fileType: "file" | "dir" | "symlink" | "other" }
  | { ok: false; code: string; message: string };

export interface StoreVisitRequest {
  /** Files to read, relative to the store root. */
  read: { path: string; maxBytes: number }[];
  /** Entries to lstat, relative to the store root. */
  stat: string[];
}

/** A configured store after its first look: how it is reached, and what was asked of it. */
export interface StoreVisit {
  access: StoreAccess;
  /** Host path of the store root, symlinks followed as far as is safe; null when not reachable. */
  resolved: string | null;
  /** Everything under the store goes through the probe child (a network or FUSE mount is in the way). */
  guarded: boolean;
  /** performance.now() after which no further probe run on this store starts. */
  deadline: number;
  /** Results of the request's reads and stats, in order; empty when the store was not readable. */
  reads: FileRead[];
  stats: EntryStat[];
  /** Host path of an entry of the store, as configured. */
  hostPath(relative: string): string;
  /** Local mount points strictly inside the store: a walk neither enters nor stats them. */
  innerMounts: Set<string>;
  /** The fstype named in timeout messages. */
  fstype: string;
  /** Used bytes of the store's own filesystem, when the store is its mount point and holds no mount. */
  usedBytes: number | null;
}

function emptyAccess(): StoreAccess {
  return {
    status: "error",
    mount: null,
    isMountPoint: false,
    fstabNotMounted: null,
    readOnly: null,
    selinuxContext: null,
    remote: false,
    nfsVersion: null,
    probeMs: 0,
    sizeBytes: null,
  };
}

/**
 * Looks at a configured store directory (an additional image store, an artifact store): its
 * mount and the facts of it, an /etc/fstab line that should have mounted it, and whether it
 * answers; then reads and stats what `request` asks for. A store on (or with, below it) a
 * network or FUSE mount is touched only from the probe child, with REMOTE_STORE_DEADLINE_MS for
 * everything; a probe that runs past it makes the store "unresponsive". A relative path is
 * reported, never resolved against this process's working directory.
 */
export async function visitStore(
  host: Host,
  storePath: string,
  request: StoreVisitRequest,
): Promise<StoreVisit> {
  const started = performance.now();
  const access = emptyAccess();
  const visit: StoreVisit = {
    access,
    resolved: null,
    guarded: false,
    deadline: started + REMOTE_STORE_DEADLINE_MS,
    reads: [],
    stats: [],
    hostPath: (relative) => path.posix.join(storePath, relative),
    innerMounts: new Set(),
    usedBytes: null,
    fstype: "",
  };
  if (!storePath.startsWith("/")) {
    access.error = `${JSON.stringify(storePath)} is a relative path: store paths must be absolute (containers/storage and CRI-O refuse relative ones), so it was not looked at`;
    return visit;
  }
  const table = await host.mounts().catch(() => undefined);
  const riskyAt = (hostPath: string) => host.riskyMount(table, hostPath);
  let resolved: string;
  try {
    resolved = (await host.root.resolve(storePath, host.stopAtRisky(table))).host;
  } catch (error) {
    access.error = describeError(error);
    access.probeMs = elapsedMs(started);
    return visit;
  }
  visit.resolved = resolved;
  const local = host.root.local(resolved);
  const risky = riskyAt(resolved);
  const inner = (table?.entries ?? []).filter(
    (entry) => entry.mountPoint !== local && isWithin(entry.mountPoint, local),
  );
  visit.innerMounts = new Set(inner.map((entry) => entry.mountPoint));
  visit.guarded = risky !== undefined || inner.some((entry) => mayHang(entry.fstype));

  const [inspection, fstab] = await Promise.all([
    host.inspectPath(storePath),
    host.shared("fstab", () => readFstab(host)),
  ]);
  const holding = table ? longestPrefixMount(table.entries, host.seenAs(resolved)) : undefined;
  const mount =
    inspection.status === "ok" || inspection.status === "unresponsive"
      ? inspection.mount
      : holding
        ? host.toMountFact(holding)
        : null;
  describeMount(access, mount);
  visit.fstype = mount?.fstype ?? risky?.fstype ?? "";
  access.isMountPoint = inspection.status === "ok" ? inspection.isMountPoint : mount?.mountPoint === resolved;
  access.fstabNotMounted = unmountedFstabEntry(host, table?.entries, fstab, [storePath, resolved]);

  switch (inspection.status) {
    case "missing":
      access.status = "missing";
      access.error = inspection.error;
      break;
    case "unresponsive":
      access.status = "unresponsive";
      access.error = inspection.error;
      break;
    case "error":
      access.status = "error";
      access.error = inspection.error;
      break;
    default:
      if (!inspection.isDirectory) {
        access.status = "error";
        access.error = `${storePath} is not a directory`;
      } else {
        access.status = "ok";
        // A dedicated cache disk: what statfs says is used is what a walk would count.
        if (inspection.isMountPoint && inner.length === 0)
          visit.usedBytes = inspection.usage.totalBytes - inspection.usage.freeBytes;
      }
  }
  if (access.status !== "ok") {
    access.probeMs = elapsedMs(started);
    return visit;
  }
  // The probe runs' deadline starts here: the stat above has its own (the host's guarded stat).
  visit.deadline = performance.now() + REMOTE_STORE_DEADLINE_MS;
  if (visit.guarded) await probeStoreRoot(host, visit, local, request);
  else await readLocally(host, visit, request);
  access.probeMs = elapsedMs(started);
  return visit;
}

function elapsedMs(since: number): number {
  return Math.round((performance.now() - since) * 1000) / 1000;
}

function describeMount(access: StoreAccess, mount: MountFact | null): void {
  access.mount = mount;
  if (!mount) return;
  access.readOnly = mount.readOnly;
  access.remote = mayHang(mount.fstype);
  access.selinuxContext = mountContext(mount);
  if (/^nfs4?$/.test(mount.fstype)) access.nfsVersion = mountOption(mount.superOptions, "vers");
}

/**
 * The deepest /etc/fstab line (other than "/") that mounts a filesystem at or above the store and
 * whose mount point is not mounted now: the store directory is then just a directory on the
 * filesystem below (a cache that was not mounted after a reboot).
 */
function unmountedFstabEntry(
  host: Host,
  mounts: MountEntry[] | undefined,
  fstab: FstabEntry[],
  paths: string[],
): FstabEntry | null {
  let found: FstabEntry | null = null;
  for (const entry of fstab) {
    const point = path.posix.normalize(entry.mountPoint).replace(/(.)\/$/, "$1");
    if (point === "/" || !paths.some((p) => isWithin(p, point))) continue;
    const mounted = (mounts ?? []).some((m) => host.root.toHost(m.mountPoint) === point);
    if (mounted) continue;
    if (!found || point.length > found.mountPoint.length) found = { ...entry, mountPoint: point };
  }
  return found;
}

function timeoutMessage(visit: StoreVisit, deadlineMs: number, op: string, localPath: string, host?: Host) {
  const where = host?.root.toHost(localPath) ?? localPath;
  return `no answer from ${visit.fstype || "network or FUSE"} filesystem within ${Math.round(deadlineMs)} ms (${op} of ${where})`;
}

/** The first probe run on a guarded store: the root, then the requested reads and stats. */
async function probeStoreRoot(
  host: Host,
  visit: StoreVisit,
  local: string,
  request: StoreVisitRequest,
): Promise<void> {
  const ops: ProbeOp[] = [
    { op: "stat", path: local },
    ...request.read.map((r) => ({
      op: "read" as const,
      path: path.posix.join(local, r.path),
      maxBytes: Math.min(r.maxBytes, REMOTE_MAX_READ_BYTES),
    })),
    ...request.stat.map((relative) => ({ op: "stat" as const, path: path.posix.join(local, relative) })),
  ];
  const deadlineMs = Math.max(visit.deadline - performance.now(), MIN_PROBE_RUN_MS);
  const run = await probeMount(ops, deadlineMs);
  const results = ops.map((_, i) => run.results[i]);
  const cut = (i: number) => {
    const op = ops[i]!;
    if (run.hungAt === op) {
      return timeoutMessage(visit, deadlineMs, op.op === "read" ? "reading" : "stat", op.path, host);
    }
    return run.error
      ? `${run.error.code}: ${run.error.message}`
      : "not reached: the probe stopped at its deadline on an earlier operation";
  };
  const root = results[0];
  if (!root) {
    visit.access.status = run.timedOut ? "unresponsive" : "error";
    visit.access.error = cut(0);
    return;
  }
  if (!root.ok) {
    visit.access.status = root.code === "ENOENT" || root.code === "ENOTDIR" ? "missing" : "error";
    visit.access.error = `${root.code}: ${root.message}`;
    return;
  }
  // The root answered (perhaps from the kernel's cache) but a read of the metadata did not.
  if (run.timedOut) {
    visit.access.status = "unresponsive";
    visit.access.error = cut(ops.indexOf(run.hungAt ?? ops[0]!));
  }
  visit.reads = request.read.map((r, i): FileRead => {
    const result = results[1 + i];
    if (!result) return { ok: false, code: run.timedOut ? "ETIMEDOUT" : "EPROBE", message: cut(1 + i) };
    if (!result.ok) return { ok: false, code: result.code, message: `${result.code}: ${result.message}` };
    if (result.value.kind !== "read")
      return { ok: false, code: "EPROBE", message: "unexpected probe answer" };
    return {
      ok: true,
      text: result.value.text,
      truncated: result.value.truncated,
      maxBytes: Math.min(r.maxBytes, REMOTE_MAX_READ_BYTES),
    };
  });
  visit.stats = request.stat.map((_, i) =>
    toEntryStat(results[1 + request.read.length + i], run, cut(1 + request.read.length + i)),
  );
}

function toEntryStat(result: ProbeOpResult | undefined, run: ProbeRun, cut: string): EntryStat {
  if (!result) return { ok: false, code: run.timedOut ? "ETIMEDOUT" : "EPROBE", message: cut };
  if (!result.ok) return { ok: false, code: result.code, message: `${result.code}: ${result.message}` };
  if (result.value.kind !== "stat") return { ok: false, code: "EPROBE", message: "unexpected probe answer" };
  return { ok: true, fileType: result.value.fileType };
}

async function readLocally(host: Host, visit: StoreVisit, request: StoreVisitRequest): Promise<void> {
  const resolved = visit.resolved!;
  visit.reads = await Promise.all(
    request.read.map(async (r): Promise<FileRead> => {
      try {
        const read = await host.readText(path.posix.join(resolved, r.path), r.maxBytes);
        return { ok: true, text: read.text, truncated: read.truncated, maxBytes: r.maxBytes };
      } catch (error) {
        const code = errnoCode(error);
        return { ok: false, code, message: describeError(error) };
      }
    }),
  );
  const local = host.root.local(resolved);
  visit.stats = await lstatAll(request.stat.map((relative) => path.posix.join(local, relative)));
}

async function lstatAll(localPaths: string[]): Promise<EntryStat[]> {
  const out: EntryStat[] = [];
  for (let i = 0; i < localPaths.length; i += STAT_BATCH) {
    const batch = localPaths.slice(i, i + STAT_BATCH);
    out.push(
      ...(await Promise.all(
        batch.map(async (p): Promise<EntryStat> => {
          try {
            const info = await lstat(p);
            const fileType = info.isFile()
              ? "file"
              : info.isDirectory()
                ? "dir"
                : info.isSymbolicLink()
                  ? "symlink"
                  : "other";
            return { ok: true, fileType };
          } catch (error) {
            const code = errnoCode(error);
            return { ok: false, code, message: describeError(error) };
          }
        }),
      )),
    );
  }
  return out;
}

/**
 * lstat of entries of a store that answered its first look, relative to its root: locally, or in
 * one probe run with what is left of the store's deadline. An entry with no answer (the deadline
 * came first) is undefined.
 */
export async function statInStore(
  visit: StoreVisit,
  host: Host,
  relatives: string[],
): Promise<(EntryStat | undefined)[]> {
  if (relatives.length === 0 || !visit.resolved) return [];
  const local = host.root.local(visit.resolved);
  const paths = relatives.map((relative) => path.posix.join(local, relative));
  if (!visit.guarded) return lstatAll(paths);
  const left = visit.deadline - performance.now();
  if (left < MIN_PROBE_RUN_MS) return paths.map(() => undefined);
  const run = await probeMount(
    paths.map((p) => ({ op: "stat" as const, path: p })),
    left,
  );
  if (run.timedOut && run.results.length === 0) {
    visit.access.status = "unresponsive";
    visit.access.error = timeoutMessage(visit, left, "stat", paths[0]!, host);
  } else if (run.timedOut) {
    visit.access.error = `the store answered ${run.results.length} of ${paths.length} lookups within its ${REMOTE_STORE_DEADLINE_MS} ms deadline`;
  } else if (run.error) {
    visit.access.error = `${run.results.length} of ${paths.length} lookups answered: ${run.error.code}: ${run.error.message}`;
  }
  return paths.map((_, i) => {
    const result = run.results[i];
    return result ? toEntryStat(result, run, "") : undefined;
  });
}

/**
 * Bytes the store takes on disk: its filesystem's used bytes when it is that filesystem's mount
 * point, else its tree walked (allocated blocks, each inode once, like du -x) within SIZE_BUDGET,
 * entering no mount below the store. null for a store reached through a network or FUSE mount
 * (an NFS cache is never walked) and when the budget ran out.
 */
export async function storeSize(host: Host, visit: StoreVisit): Promise<number | null> {
  if (visit.guarded || visit.access.remote || !visit.resolved || visit.access.status !== "ok") return null;
  if (visit.usedBytes !== null) return visit.usedBytes;
  const started = performance.now();
  const root = host.root.local(visit.resolved);
  const seen = new Set<string>();
  let entries = 0;
  let bytes = 0;
  const count = (info: Awaited<ReturnType<typeof lstat>>) => {
    if (info.nlink > 1 && !info.isDirectory()) {
      const key = `${info.dev}:${info.ino}`;
      if (seen.has(key)) return;
      seen.add(key);
    }
    bytes += Number(info.blocks) * 512;
  };
  try {
    count(await lstat(root));
  } catch {
    return null;
  }
  const pending: Buffer[] = [Buffer.from(root)];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    let names: Buffer[];
    try {
      names = (await readdir(dir, { encoding: "buffer" })) as Buffer[];
    } catch {
      continue; // unreadable: its size is not counted
    }
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      // Raw bytes throughout, so a name that is not UTF-8 is still measured.
      const children = names.slice(i, i + STAT_BATCH).map((name) => Buffer.concat([dir, SLASH, name]));
      entries += children.length;
      if (entries > SIZE_BUDGET.maxEntries || performance.now() - started > SIZE_BUDGET.maxMs) return null;
      const infos = await Promise.all(
        children.map((child) =>
          visit.innerMounts.has(child.toString()) ? null : lstat(child).catch(() => null),
        ),
      );
      for (const [j, info] of infos.entries()) {
        if (!info) continue;
        count(info);
        if (info.isDirectory()) pending.push(children[j]!);
      }
    }
  }
  return bytes;
}
