import { access, readdir } from "node:fs/promises";
import path from "node:path";
import type { Host, MountFact } from "../host/host.js";
import { isWithin, longestPrefixMount, mayHang } from "../host/mountinfo.js";
import { describeError, isErrno } from "../host/root.js";
import { containersStorageOf, type FstabEntry } from "./filesystems.js";
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
    const stores = await Promise.all(all.map((store) => readStore(host, driver, store.path, store.role)));
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
  let text: string;
  try {
    const read = await host.readText(hostPath, MAX_METADATA_BYTES);
    if (read.truncated) {
      return {
        file: { status: "error", error: `${hostPath} is larger than ${MAX_METADATA_BYTES} bytes`, count: 0 },
        records: [],
      };
    }
    text = read.text;
  } catch (error) {
    if (isErrno(error, "ENOENT")) return { file: { status: "missing", count: 0 }, records: [] };
    return { file: { status: "error", error: describeError(error), count: 0 }, records: [] };
  }
  try {
    const parsed = JSON.parse(text) as unknown;
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
