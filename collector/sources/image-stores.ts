import { access, readdir } from "node:fs/promises";
import path from "node:path";
import type { Host } from "../host/host.js";
import { isWithin } from "../host/mountinfo.js";
import { describeError, errnoCode } from "../host/root.js";
import { containersStorageOf } from "./filesystems.js";
import type { KubeletConfigFacts } from "./kubelet-config.js";
import { Absent, type SourceDefinition } from "./source.js";
import type { StorageConfigFacts } from "./storage-config.js";
import {
  type FileRead,
  type StoreAccess,
  type StoreVisit,
  statInStore,
  storeSize,
  visitStore,
} from "./store-access.js";

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
    const stores = await Promise.all(
      all.map((store) =>
        store.role === "additional-image-store"
          ? host
              .shared(`additional-image-store:${store.path}`, () =>
                readAdditionalStore(host, driver, store.path, homes),
              )
              .then((fact) => structuredClone(fact))
          : readStore(host, driver, store.path, store.role),
      ),
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
    const code = errnoCode(error);
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

/** A layer id a record names under `key` (an image's "layer", a layer's "parent"), or null. */
export function layerIdOf(record: JsonRecord, key: "layer" | "parent"): string | null {
  const id = record[key];
  return typeof id === "string" && id !== "" ? id : null;
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
      if (host.riskyMount(mounts, place)) continue;
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
/** Images whose layer chains are followed, and layer directories looked up, per store. */
export const MAX_CHECKED_IMAGES = 5000;
export const MAX_LAYER_STATS = 20_000;
const MAX_EXAMPLES = 5;
/**
 * A chain longer than this is a loop in the parent links nobody noticed (containers/storage
 * images have fewer than 128 layers): the image-stores and layers sources stop there.
 */
export const MAX_CHAIN = 1000;

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
    let id = layerIdOf(record, "layer");
    // A parent link back into the chain (a damaged layers.json) ends it: each layer once.
    const walked = new Set<string>();
    for (let steps = 0; id && steps < MAX_CHAIN && !walked.has(id); steps++) {
      walked.add(id);
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
    map.set(record.id, layerIdOf(record, "parent"));
  }
  return map;
}

/** An image as people name it: its first name, else its id. */
function imageLabel(record: JsonRecord): string {
  const names = Array.isArray(record.names) ? record.names : [];
  return typeof names[0] === "string" ? names[0] : String(record.id ?? "");
}
