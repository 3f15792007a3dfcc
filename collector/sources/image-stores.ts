import { access, lstat, readdir } from "node:fs/promises";
import path from "node:path";
import { probeMount } from "../host/fuse-probe.js";
import type { ProbeOp, ProbeOpResult, ProbeRun } from "../host/fuse-probe-types.js";
import type { Host, MountFact } from "../host/host.js";
import { isWithin, longestPrefixMount, type MountEntry, mayHang } from "../host/mountinfo.js";
import { describeError } from "../host/root.js";
import { containersStorageOf, type FstabEntry, readFstab } from "./filesystems.js";
import type { KubeletConfigFacts } from "./kubelet-config.js";
import { Absent, type SourceDefinition } from "./source.js";
import type { StorageConfigFacts } from "./storage-config.js";

export type StoreRole = "graphroot" | "imagestore" | "additional-image-store" | "unconfigured";

export interface MetadataFile {
  status: "ok" | "missing" | "error";
  error?: string;
  count: number;
}

export interface ImageStoreFact {
  /** Store root (host path), e.g. /var/lib/containers/storage. */
  path: string;
  role: StoreRole;
  /** `<driver>-images/images.json`: image records. */
  images: MetadataFile & { names: string[] };
  /** `<driver>-layers/layers.json`: layer records and the bytes they account for. */
  layers: MetadataFile & { bytes: number };
  /** Additional image stores only: how the store is reached (a shared cache, often on NFS). */
  access?: StoreAccess;
  /** Additional image stores only, when their metadata could be read: do images have their layers. */
  completeness?: StoreCompleteness;
}

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
  /** Bytes used by the store's directory tree, when it was walked within budget; null otherwise. */
  sizeBytes: number | null;
}

export interface StoreCompleteness {
  /** Images whose top layer and parents were looked up. */
  checkedImages: number;
  /** Images with at least one layer found neither in this store nor in graphroot. */
  incompleteImages: number;
  /** Distinct layer ids missing. */
  missingLayers: number;
  /** A few examples: which image lacks which layer, and how it is missing. */
  examples: { image: string; layer: string; missing: "record" | "directory" }[];
}

export interface ImageStoresFacts {
  driver: string;
  stores: ImageStoreFact[];
  /** Directories searched for image stores nobody configures any more. */
  searched: string[];
}

type Inputs = {
  "storage-config": StorageConfigFacts;
  "kubelet-config": KubeletConfigFacts;
  "image-stores": ImageStoresFacts;
};

const MAX_METADATA_BYTES = 64 * 1024 * 1024;
const MAX_NAMES = 10;
/** Children of a mount point checked for a store one level down (e.g. /var/lib/images/storage). */
const MAX_CHILDREN = 50;

export const imageStoresSource: SourceDefinition<Inputs, "image-stores"> = {
  name: "image-stores",
  deadlineMs: 10_000,
  async collect({ host, result }) {
    const [storage, kubelet] = await Promise.all([result("storage-config"), result("kubelet-config")]);
    const cs = containersStorageOf(storage, kubelet);
    if (cs instanceof Absent) return cs;
    const driver = cs.driver.value || "overlay";
    const configured: { path: string; role: StoreRole }[] = [{ path: cs.graphroot.value, role: "graphroot" }];
    if (cs.imagestore.value) configured.push({ path: cs.imagestore.value, role: "imagestore" });
    for (const store of cs.additionalImageStores.value)
      configured.push({ path: store, role: "additional-image-store" });

    const { candidates, searched } = await findUnconfiguredStores(
      host,
      driver,
      configured.map((s) => s.path),
    );
    const all = [...configured, ...candidates.map((p) => ({ path: p, role: "unconfigured" as const }))];
    const homes = { graphroot: cs.graphroot.value, imagestore: cs.imagestore.value };
    // An entry listed twice is reported twice (checks name duplicates) but visited once.
    const additional = new Map<string, Promise<ImageStoreFact>>();
    const stores = await Promise.all(
      all.map((store) => {
        if (store.role !== "additional-image-store") return readStore(host, driver, store.path, store.role);
        let read = additional.get(store.path);
        if (!read) {
          read = readAdditionalStore(host, driver, store.path, homes);
          additional.set(store.path, read);
        }
        return read.then((fact) => structuredClone(fact));
      }),
    );
    return { driver, stores, searched };
  },
};

async function readStore(
  host: Host,
  driver: string,
  storePath: string,
  role: StoreRole,
): Promise<ImageStoreFact> {
  const images = await readJsonArray(host, path.posix.join(storePath, `${driver}-images`, "images.json"));
  const layers = await readJsonArray(host, path.posix.join(storePath, `${driver}-layers`, "layers.json"));
  return {
    path: storePath,
    role,
    images: { ...images.file, names: imageNames(images.records) },
    layers: { ...layers.file, bytes: layerBytes(layers.records) },
  };
}

/**
 * An `additionalimagestores` entry: how the store is reached (its mount, read-only or not,
 * answering or not), its metadata, whether each image's layers are there, and its size. A store
 * on a network or FUSE mount is read only by the probe child, with one deadline for all of it.
 */
async function readAdditionalStore(
  host: Host,
  driver: string,
  storePath: string,
  homes: { graphroot: string; imagestore: string | null },
): Promise<ImageStoreFact> {
  const imagesFile = `${driver}-images/images.json`;
  const layersFile = `${driver}-layers/layers.json`;
  const visit = await visitStore(host, storePath, {
    read: [
      { path: imagesFile, maxBytes: MAX_METADATA_BYTES },
      { path: layersFile, maxBytes: MAX_METADATA_BYTES },
    ],
    stat: [],
  });
  const fact: ImageStoreFact = {
    path: storePath,
    role: "additional-image-store",
    images: { status: "error", error: visit.access.error ?? "not read", count: 0, names: [] },
    layers: { status: "error", error: visit.access.error ?? "not read", count: 0, bytes: 0 },
    access: visit.access,
  };
  if (visit.access.status !== "ok") {
    if (visit.access.status === "missing") {
      fact.images = { status: "missing", count: 0, names: [] };
      fact.layers = { status: "missing", count: 0, bytes: 0 };
    }
    return fact;
  }
  const images = jsonArrayOf(visit.hostPath(imagesFile), visit.reads[0]!);
  const layers = jsonArrayOf(visit.hostPath(layersFile), visit.reads[1]!);
  fact.images = { ...images.file, names: imageNames(images.records) };
  fact.layers = { ...layers.file, bytes: layerBytes(layers.records) };
  const [completeness, size] = await Promise.all([
    images.file.status === "ok" && layers.file.status !== "error"
      ? checkCompleteness(host, visit, driver, images.records, layers.records, homes)
      : undefined,
    storeSize(host, visit),
  ]);
  if (completeness) fact.completeness = completeness;
  visit.access.sizeBytes = size;
  return fact;
}

export type JsonRecord = Record<string, unknown>;

/**
 * Reads a containers/storage metadata file (images.json, layers.json, volatile-layers.json): a
 * JSON array of records. Missing, unreadable, oversized or malformed files come back as a status
 * with the error, never as an exception. Shared with the layers source.
 */
export function readJsonArray(
  host: Host,
  hostPath: string,
): Promise<{ file: MetadataFile; records: readonly JsonRecord[] }> {
  return host.shared(`json-array:${hostPath}`, () => readJsonArrayOnce(host, hostPath));
}

async function readJsonArrayOnce(
  host: Host,
  hostPath: string,
): Promise<{ file: MetadataFile; records: readonly JsonRecord[] }> {
  try {
    const read = await host.readText(hostPath, MAX_METADATA_BYTES);
    return jsonArrayOf(hostPath, {
      ok: true,
      text: read.text,
      truncated: read.truncated,
      maxBytes: MAX_METADATA_BYTES,
    });
  } catch (error) {
    const code = (error as { code?: string }).code ?? "EUNKNOWN";
    return jsonArrayOf(hostPath, { ok: false, code, message: describeError(error) });
  }
}

/** A metadata file's JSON array of records from what was read of it, or its status and error. */
function jsonArrayOf(
  hostPath: string,
  read: FileRead,
): { file: MetadataFile; records: readonly JsonRecord[] } {
  if (!read.ok) {
    if (read.code === "ENOENT") return { file: { status: "missing", count: 0 }, records: [] };
    return { file: { status: "error", error: read.message, count: 0 }, records: [] };
  }
  if (read.truncated) {
    return {
      file: { status: "error", error: `${hostPath} is larger than ${read.maxBytes} bytes`, count: 0 },
      records: [],
    };
  }
  try {
    const parsed = JSON.parse(read.text) as unknown;
    if (!Array.isArray(parsed)) throw new Error("expected a JSON array");
    const records = parsed.filter((item): item is JsonRecord => typeof item === "object" && item !== null);
    return { file: { status: "ok", count: records.length }, records };
  } catch (error) {
    return {
      file: { status: "error", error: `${hostPath}: ${describeError(error)}`, count: 0 },
      records: [],
    };
  }
}

function imageNames(records: readonly JsonRecord[]): string[] {
  const names: string[] = [];
  for (const record of records) {
    const recordNames = Array.isArray(record.names) ? record.names : [];
    names.push(typeof recordNames[0] === "string" ? recordNames[0] : String(record.id ?? "").slice(0, 12));
    if (names.length >= MAX_NAMES) break;
  }
  return names;
}

function layerBytes(records: readonly JsonRecord[]): number {
  let total = 0;
  for (const record of records) total += layerRecordBytes(record);
  return total;
}

/** Uncompressed size when containers/storage knows it (-1 for lazily pulled layers), else compressed. */
export function layerRecordBytes(record: JsonRecord): number {
  const diff = Number(record["diff-size"]);
  if (Number.isFinite(diff) && diff > 0) return diff;
  const compressed = Number(record["compressed-size"]);
  return Number.isFinite(compressed) && compressed > 0 ? compressed : 0;
}

/**
 * Looks for `<driver>-images/images.json` at the mount point of each disk-backed filesystem and
 * one directory below it: the usual places for an image store left behind when imagestore was
 * turned off or moved.
 */
async function findUnconfiguredStores(host: Host, driver: string, configured: string[]) {
  const searched: string[] = [];
  const candidates: string[] = [];
  let mounts: Awaited<ReturnType<Host["mounts"]>>;
  try {
    mounts = await host.mounts();
  } catch {
    return { candidates, searched };
  }
  const roots = new Set<string>();
  for (const entry of mounts.entries) {
    if (!entry.source.startsWith("/dev/")) continue;
    const hostPath = host.root.toHost(entry.mountPoint);
    if (!hostPath || hostPath === "/" || isWithin(hostPath, "/boot")) continue;
    roots.add(hostPath);
  }
  const isConfigured = (p: string) => configured.some((c) => path.posix.normalize(c) === p);
  for (const root of [...roots].sort()) {
    searched.push(root);
    const places = [root, ...(await childDirectories(host, root))];
    for (const place of places) {
      if (isConfigured(place) || candidates.includes(place)) continue;
      // A FUSE or NFS mount below a disk mount is not looked into: it could hang this search.
      const mount = longestPrefixMount(mounts.entries, [host.root.local(place), place]);
      if (mount && mayHang(mount.fstype)) continue;
      if (await hasImagesJson(host, place, driver)) candidates.push(place);
    }
  }
  return { candidates, searched };
}

async function childDirectories(host: Host, hostDir: string): Promise<string[]> {
  try {
    const entries = await readdir(host.root.local(hostDir), { withFileTypes: true });
    return entries
      .filter((e) => e.isDirectory())
      .slice(0, MAX_CHILDREN)
      .map((e) => path.posix.join(hostDir, e.name));
  } catch {
    return [];
  }
}

/** Only places on disk-backed mounts get here, so a plain access() cannot hang on a dead server. */
async function hasImagesJson(host: Host, storePath: string, driver: string): Promise<boolean> {
  try {
    await access(host.root.local(path.posix.join(storePath, `${driver}-images`, "images.json")));
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Additional stores (image stores here, artifact stores in artifact-stores.ts): how a configured
// store directory is reached, and reading inside it without ever hanging on a network mount.

/**
 * All probe runs on one network or FUSE store together, from its first operation to its last
 * (after the host's guarded stat of the store root, which has its own deadline).
 */
export const REMOTE_STORE_DEADLINE_MS = 3000;
/** What the probe child reads of one file on a network or FUSE store (its own ceiling is 16 MiB). */
const REMOTE_MAX_READ_BYTES = 16 * 1024 * 1024;
/** A layer-directory probe run is not started with less time than this left. */
const MIN_PROBE_RUN_MS = 250;
/** Images whose layer chains are followed, and layer directories looked up, per store. */
export const MAX_CHECKED_IMAGES = 5000;
export const MAX_LAYER_STATS = 20_000;
const MAX_EXAMPLES = 5;
/** A chain longer than this is a loop in the parent links (containers/storage images have < 128 layers). */
const MAX_CHAIN = 1000;
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
    fstype: "",
  };
  if (!storePath.startsWith("/")) {
    access.error = `${JSON.stringify(storePath)} is a relative path: store paths must be absolute (containers/storage and CRI-O refuse relative ones), so it was not looked at`;
    return visit;
  }
  const table = await host.mounts().catch(() => undefined);
  const riskyAt = (hostPath: string) => {
    if (!table) return undefined;
    const mount = longestPrefixMount(table.entries, seenAs(host, hostPath));
    return mount && mayHang(mount.fstype) ? mount : undefined;
  };
  let resolved: string;
  try {
    resolved = (await host.root.resolve(storePath, (candidate) => riskyAt(candidate) !== undefined)).host;
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
  const holding = table ? longestPrefixMount(table.entries, seenAs(host, resolved)) : undefined;
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

function seenAs(host: Host, hostPath: string): string[] {
  const local = host.root.local(hostPath);
  return local === hostPath ? [hostPath] : [local, hostPath];
}

function describeMount(access: StoreAccess, mount: MountFact | null): void {
  access.mount = mount;
  if (!mount) return;
  access.readOnly = mount.readOnly;
  access.remote = mayHang(mount.fstype);
  access.selinuxContext = mountOption([...mount.options, ...mount.superOptions], "context");
  if (/^nfs4?$/.test(mount.fstype)) access.nfsVersion = mountOption(mount.superOptions, "vers");
}

/**
 * A `key=value` mount option, quotes stripped. mountinfo's options were split on commas, and an
 * SELinux context with categories has commas inside its quotes (context="...:s0:c1,c2"): the
 * pieces are joined again up to the closing quote.
 */
export function mountOption(options: string[], key: string): string | null {
  const at = options.findIndex((option) => option.startsWith(`${key}=`));
  if (at < 0) return null;
  let value = options[at]!.slice(key.length + 1);
  for (const quote of ['"', "'"]) {
    if (!value.startsWith(quote)) continue;
    for (let i = at + 1; !(value.length > 1 && value.endsWith(quote)) && i < options.length; i++) {
      value += `,${options[i]}`;
    }
    value = value.slice(1, value.endsWith(quote) && value.length > 1 ? -1 : undefined);
  }
  return value;
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
        const code = (error as { code?: string }).code ?? "EUNKNOWN";
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
            const code = (error as { code?: string }).code ?? "EUNKNOWN";
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
  }
  return paths.map((_, i) => {
    const result = run.results[i];
    return result ? toEntryStat(result, run, "") : undefined;
  });
}

/**
 * Bytes the store's tree takes on disk (allocated blocks, each inode once, like du -x): a walk
 * within SIZE_BUDGET that enters no mount below the store. null for a store reached through a
 * network or FUSE mount (an NFS cache is never walked) and when the budget ran out.
 */
export async function storeSize(host: Host, visit: StoreVisit): Promise<number | null> {
  if (visit.guarded || visit.access.remote || !visit.resolved || visit.access.status !== "ok") return null;
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

/**
 * Does every image of an additional store have its layers: each image's top layer and its
 * parents are looked up in the store's layers.json, then in graphroot's (and imagestore's),
 * as containers/storage resolves layers across its stores. A layer recorded in this store must
 * have its `<driver>/<id>` directory here (a lazily pulled layer has one too, with an
 * `additionallayer` file and a `diff` symlink: the directory is what is looked up, not the link).
 * Layers found in graphroot are not looked up on disk here (the layers source does that).
 */
async function checkCompleteness(
  host: Host,
  visit: StoreVisit,
  driver: string,
  images: readonly JsonRecord[],
  layers: readonly JsonRecord[],
  homes: { graphroot: string; imagestore: string | null },
): Promise<StoreCompleteness> {
  const own = parentsById(layers);
  const others = new Map<string, string | null>();
  for (const home of [homes.graphroot, homes.imagestore]) {
    if (!home || home === visit.resolved || home === visit.hostPath("")) continue;
    const read = await readJsonArray(host, path.posix.join(home, `${driver}-layers`, "layers.json"));
    for (const [id, parent] of parentsById(read.records)) if (!others.has(id)) others.set(id, parent);
  }

  // Each image's chain, in the order of images.json, until either bound is reached.
  const chains: { image: string; ownIds: string[]; missingRecord: string | null }[] = [];
  const toStat: string[] = [];
  const queued = new Set<string>();
  for (const record of images.slice(0, MAX_CHECKED_IMAGES)) {
    const chain = { image: imageLabel(record), ownIds: [] as string[], missingRecord: null as string | null };
    let id = typeof record.layer === "string" && record.layer !== "" ? record.layer : null;
    for (let steps = 0; id && steps < MAX_CHAIN; steps++) {
      if (own.has(id)) {
        chain.ownIds.push(id);
        id = own.get(id) ?? null;
      } else if (others.has(id)) {
        id = others.get(id) ?? null;
      } else {
        chain.missingRecord = id;
        break;
      }
    }
    const fresh = chain.ownIds.filter((layer) => !queued.has(layer));
    if (toStat.length + fresh.length > MAX_LAYER_STATS) break;
    for (const layer of fresh) {
      queued.add(layer);
      toStat.push(layer);
    }
    chains.push(chain);
  }

  const stats = await statInStore(
    visit,
    host,
    toStat.map((id) => `${driver}/${id}`),
  );
  const present = new Map<string, boolean | undefined>();
  for (const [i, id] of toStat.entries()) {
    const stat = stats[i];
    // Missing means ENOENT/ENOTDIR, or something other than a directory where it should be; any
    // other error (EACCES, EIO) is no evidence either way, so the layer counts as present.
    present.set(
      id,
      stat === undefined
        ? undefined
        : stat.ok
          ? stat.fileType === "dir" || stat.fileType === "symlink"
          : stat.code !== "ENOENT" && stat.code !== "ENOTDIR",
    );
  }

  const result: StoreCompleteness = { checkedImages: 0, incompleteImages: 0, missingLayers: 0, examples: [] };
  const missing = new Set<string>();
  for (const chain of chains) {
    if (chain.ownIds.some((id) => present.get(id) === undefined)) continue; // not answered in time
    result.checkedImages += 1;
    const gaps: { layer: string; missing: "record" | "directory" }[] = chain.ownIds
      .filter((id) => present.get(id) === false)
      .map((layer) => ({ layer, missing: "directory" }));
    if (chain.missingRecord) gaps.push({ layer: chain.missingRecord, missing: "record" });
    if (gaps.length === 0) continue;
    result.incompleteImages += 1;
    for (const gap of gaps) {
      missing.add(gap.layer);
      if (result.examples.length < MAX_EXAMPLES) result.examples.push({ image: chain.image, ...gap });
    }
  }
  result.missingLayers = missing.size;
  return result;
}

function parentsById(records: readonly JsonRecord[]): Map<string, string | null> {
  const map = new Map<string, string | null>();
  for (const record of records) {
    if (typeof record.id !== "string" || map.has(record.id)) continue;
    map.set(record.id, typeof record.parent === "string" && record.parent !== "" ? record.parent : null);
  }
  return map;
}

/** An image as people name it: its first name, else its id. */
function imageLabel(record: JsonRecord): string {
  const names = Array.isArray(record.names) ? record.names : [];
  return typeof names[0] === "string" ? names[0] : String(record.id ?? "");
}
