import { isUtf8 } from "node:buffer";
import { closeSync, constants, type Dirent, openSync, readdirSync, readlinkSync, readSync } from "node:fs";
import path from "node:path";
import { displayName, joinRaw } from "../host/files.js";
import type { Host } from "../host/host.js";
import { isWithin, type MountTable, mayHang } from "../host/mountinfo.js";
import { describeError } from "../host/root.js";
import { containersStorageOf } from "./filesystems.js";
import {
  type JsonRecord,
  layerIdOf,
  layerRecordBytes,
  MAX_CHAIN,
  type MetadataFile,
  readJsonArray,
} from "./image-stores.js";
import type { KubeletConfigFacts } from "./kubelet-config.js";
import { Absent, type SourceDefinition } from "./source.js";
import type { LayerStoreEntry, StorageConfigFacts } from "./storage-config.js";

/**
 * How a layer's files are served:
 * - lazy: from an additional layer store (stargz-store...): an `additionallayer` file and a `diff`
 *   symlink into the store;
 * - partial: pulled by containers/storage itself from a zstd:chunked or eStargz blob (its record
 *   has a `toc-digest`) into real files;
 * - full: real files from a whole-blob pull (or anything else with a real `diff/`);
 * - missing: a layers.json record without a layer directory;
 * - unknown: a layer whose directory could not be read (or was not looked at: see `directories`).
 */
export type LayerClass = "lazy" | "partial" | "full" | "missing" | "unknown";

export const LAYER_CLASSES: readonly LayerClass[] = ["lazy", "partial", "full", "missing", "unknown"];

/** Layers and the bytes they account for (`diff-size` when > 0, else `compressed-size`), per class. */
export type ClassTally = Record<LayerClass, { layers: number; bytes: number }>;

export type LayerHomeRole = "graphroot" | "imagestore" | "runroot";

export interface LayerMetadataFileFact extends MetadataFile {
  /** Host path, e.g. /var/lib/containers/storage/overlay-layers/layers.json. */
  path: string;
  kind: "images" | "layers" | "volatile-layers";
  home: LayerHomeRole;
}

export interface LayerDirectoryFact {
  /** `<home>/<driver>`, the directory holding one directory per layer. */
  path: string;
  home: LayerHomeRole;
  /** skipped: on a FUSE or network filesystem, or a driver without per-layer directories. */
  status: "ok" | "missing" | "error" | "skipped";
  error?: string;
  /** Layer directories found (the `l` directory of short links excluded). */
  layers: number;
}

export interface LazyLayerFact {
  id: string;
  /** Store root holding the layer directory. */
  home: string;
  /**
   * The layer's directory in the store, what is mounted from: host path. The `additionallayer`
   * file names it and `diff` links to `<target>/diff`; when they disagree, `anomalies` says so.
   */
  target: string;
  /** The additionallayerstores entry's path (as configured) the target lies in; null when none configured holds it. */
  layerStore: string | null;
  /** The store root the target was found under: the configured entry, or a guess from the path's shape. */
  storePath: string;
  /** The image reference decoded from the base64 path element (stores with `:ref`), or null. */
  ref: string | null;
  /** The digest path element: a blob digest (containers/storage < 1.54) or a TOC digest. */
  digest: string;
  /** Whether a layers.json / volatile-layers.json record exists for it. */
  recorded: boolean;
  /** Record format: `toc` (toc-digest + expected-layer-diffid, stargz-store >= 0.16), `digests` (compressed-diff-digest...). */
  recordFormat: "toc" | "digests" | "other" | null;
  tocDigest: string | null;
  diffSize: number | null;
  /** Names of the first images using it (the id's start for an image without a name), and how many do. */
  imageNames: string[];
  imageCount: number;
}

export interface ImageLayersFact {
  id: string;
  /** First of `names`, or null for an image without a name. */
  name: string | null;
  /** Store root whose images.json lists it. */
  home: string;
  /** The image's top layer (`layer`). */
  topLayer: string | null;
  /** Layers in its chain (top layer down through `parent` links), in all and per class. */
  chainLength: number;
  layers: Record<LayerClass, number>;
  /** Bytes per class (`diff-size` when > 0, else `compressed-size`). */
  bytes: Record<LayerClass, number>;
  /** Why the walk down the chain stopped early (a layer without record, a loop). */
  chainError?: string;
}

export interface LayersFacts {
  driver: string;
  /** Every metadata file looked for, with its status. */
  files: LayerMetadataFileFact[];
  directories: LayerDirectoryFact[];
  /** Every layer on the node, once by id (directories and records joined), by class. */
  totals: ClassTally;
  /** The same per store root: where its directory is, else the store whose layers.json records it. */
  byHome: { home: string; tally: ClassTally }[];
  /** Layer directories with no record in any layers.json / volatile-layers.json. */
  unrecorded: { layers: number; lazy: number; examples: string[] };
  /** Records without a layer directory (class "missing"). */
  withoutDirectory: { layers: number; examples: string[] };
  /** Layers no image uses (container layers, leftovers). */
  notInAnyImage: number;
  images: ImageLayersFact[];
  imagesTruncated: boolean;
  /** Lazy layers per store: every lazy layer counted, also past the detail cap. */
  lazyByStore: { layerStore: string | null; storePath: string; layers: number }[];
  /** Per-layer detail of lazy layers only (their store paths are checked by the layer-stores source). */
  lazyLayers: LazyLayerFact[];
  lazyLayersTruncated: boolean;
  /** Layer directories that are neither plainly lazy nor plainly full, or could not be read. */
  anomalies: { id: string; path: string; problem: string }[];
  anomalyCount: number;
}

type Inputs = {
  "storage-config": StorageConfigFacts;
  "kubelet-config": KubeletConfigFacts;
  layers: LayersFacts;
};

export const MAX_LAZY_LAYERS = 5000;
export const MAX_IMAGES = 2000;
const MAX_ANOMALIES = 100;
const MAX_EXAMPLES = 10;
const MAX_USED_BY = 3;
/** Layer directories read between two turns of the event loop. */
const LAYERS_PER_TURN = 256;
/** Reads of `additionallayer` are synchronous, so one buffer serves them all. */
const markerBuffer = Buffer.alloc(4096);

export const layersSource: SourceDefinition<Inputs, "layers"> = {
  name: "layers",
  deadlineMs: 15_000,
  async collect({ host, result }) {
    const [storage, kubelet] = await Promise.all([result("storage-config"), result("kubelet-config")]);
    const cs = containersStorageOf(storage, kubelet);
    if (cs instanceof Absent) return cs;
    const homes: LayerHome[] = [{ path: cs.graphroot.value, role: "graphroot" }];
    if (cs.imagestore.value && cs.imagestore.value !== cs.graphroot.value) {
      homes.push({ path: cs.imagestore.value, role: "imagestore" });
    }
    return inspectLayers(host, {
      driver: cs.driver.value || "overlay",
      homes,
      runroot: cs.runroot.value,
      layerStores: cs.additionalLayerStores.value,
    });
  },
};

export interface LayerHome {
  path: string;
  role: "graphroot" | "imagestore";
}

export interface InspectRequest {
  driver: string;
  homes: LayerHome[];
  runroot: string | null;
  layerStores: LayerStoreEntry[];
}

/** A layer directory as read from disk. */
interface DirLayer {
  id: string;
  home: string;
  /** Host path of the layer directory (display form when the name is not UTF-8). */
  path: string;
  kind: "lazy" | "real" | "unknown";
  diffLink?: string;
  additionalLayer?: string | null;
}

interface RecordedLayer {
  record: JsonRecord;
  parent: string | null;
  bytes: number;
  /** Store root of the layers file holding the record. */
  home: string;
}

/**
 * The core of the source, without the runtime decision: reads the metadata and the layer
 * directories of each home and classifies every layer. Exported for the benchmark.
 */
export async function inspectLayers(host: Host, request: InspectRequest): Promise<LayersFacts> {
  const { driver } = request;
  const files: LayerMetadataFileFact[] = [];
  const anomalies = new Anomalies();
  const table = await host.mounts().catch(() => undefined);

  const metadata: {
    hostPath: string;
    kind: LayerMetadataFileFact["kind"];
    home: LayerHomeRole;
    root: string;
  }[] = [];
  for (const home of request.homes) {
    const images = path.posix.join(home.path, `${driver}-images`, "images.json");
    const layersDir = path.posix.join(home.path, `${driver}-layers`);
    metadata.push({ hostPath: images, kind: "images", home: home.role, root: home.path });
    metadata.push({ hostPath: `${layersDir}/layers.json`, kind: "layers", home: home.role, root: home.path });
    metadata.push({
      hostPath: `${layersDir}/volatile-layers.json`,
      kind: "volatile-layers",
      home: home.role,
      root: home.path,
    });
  }
  if (request.runroot && !request.homes.some((h) => h.path === request.runroot)) {
    metadata.push({
      hostPath: path.posix.join(request.runroot, `${driver}-layers`, "volatile-layers.json"),
      kind: "volatile-layers",
      home: "runroot",
      root: request.runroot,
    });
  }

  const [reads, walks] = await Promise.all([
    Promise.all(metadata.map((m) => readJsonArray(host, m.hostPath))),
    walkHomes(host, table, request, anomalies),
  ]);

  // Records of every layers file, joined by id: with imagestore, older containers/storage keeps
  // the records in graphroot while the directories are in imagestore.
  const records = new Map<string, RecordedLayer>();
  const imageRecords: { record: JsonRecord; home: string }[] = [];
  for (const [index, m] of metadata.entries()) {
    const read = reads[index]!;
    files.push({ path: m.hostPath, kind: m.kind, home: m.home, ...read.file });
    if (m.kind === "images") {
      for (const record of read.records) imageRecords.push({ record, home: m.root });
      continue;
    }
    for (const record of read.records) {
      const id = record.id;
      if (typeof id !== "string" || records.has(id)) continue;
      records.set(id, {
        record,
        parent: layerIdOf(record, "parent"),
        bytes: layerRecordBytes(record),
        home: m.root,
      });
    }
  }

  // Classify every layer: by its directory, and by its record for partial pulls.
  const classes = new Map<string, LayerClass>();
  const lazyDirs: DirLayer[] = [];
  const unrecorded = { layers: 0, lazy: 0, examples: [] as string[] };
  for (const layer of walks.layers.values()) {
    const recorded = records.get(layer.id);
    let cls: LayerClass;
    if (layer.kind === "lazy") cls = "lazy";
    else if (layer.kind === "unknown") cls = "unknown";
    else cls = recorded && typeof recorded.record["toc-digest"] === "string" ? "partial" : "full";
    classes.set(layer.id, cls);
    if (cls === "lazy") lazyDirs.push(layer);
    if (!recorded) {
      unrecorded.layers += 1;
      if (cls === "lazy") unrecorded.lazy += 1;
      if (unrecorded.examples.length < MAX_EXAMPLES) unrecorded.examples.push(layer.path);
    }
  }
  const withoutDirectory = { layers: 0, examples: [] as string[] };
  for (const id of records.keys()) {
    if (classes.has(id)) continue;
    // A directory that could not be listed leaves its layers unknown, not missing.
    classes.set(id, walks.complete ? "missing" : "unknown");
    if (!walks.complete) continue;
    withoutDirectory.layers += 1;
    if (withoutDirectory.examples.length < MAX_EXAMPLES) withoutDirectory.examples.push(id);
  }

  const totals = emptyTally();
  const perHome = new Map<string, ClassTally>();
  for (const [id, cls] of classes) {
    const bytes = records.get(id)?.bytes ?? 0;
    totals[cls].layers += 1;
    totals[cls].bytes += bytes;
    const home = walks.layers.get(id)?.home ?? records.get(id)?.home ?? "unknown";
    const tally = perHome.get(home) ?? emptyTally();
    tally[cls].layers += 1;
    tally[cls].bytes += bytes;
    perHome.set(home, tally);
  }

  // Per image: walk the chain from the top layer through `parent` links.
  const used = new Set<string>();
  const usedBy = new Map<string, { names: string[]; count: number }>();
  const images: ImageLayersFact[] = [];
  for (const { record, home } of imageRecords) {
    if (typeof record.id !== "string") continue;
    const names = Array.isArray(record.names) ? record.names : [];
    const name = typeof names[0] === "string" ? names[0] : null;
    const image: ImageLayersFact = {
      id: record.id,
      name,
      home,
      topLayer: layerIdOf(record, "layer"),
      chainLength: 0,
      layers: zeroes(),
      bytes: zeroes(),
    };
    const seen = new Set<string>();
    let id = image.topLayer;
    while (id !== null) {
      if (seen.has(id) || seen.size >= MAX_CHAIN) {
        image.chainError = `the parent links loop back to layer ${id}`;
        break;
      }
      seen.add(id);
      const cls = classes.get(id) ?? "missing";
      const recorded = records.get(id);
      image.chainLength += 1;
      image.layers[cls] += 1;
      image.bytes[cls] += recorded?.bytes ?? 0;
      used.add(id);
      if (cls === "lazy") {
        const entry = usedBy.get(id) ?? { names: [], count: 0 };
        entry.count += 1;
        if (entry.names.length < MAX_USED_BY) entry.names.push(name ?? image.id.slice(0, 12));
        usedBy.set(id, entry);
      }
      if (!recorded) {
        if (id !== image.topLayer || classes.has(id)) {
          image.chainError = `layer ${id} has no record in layers.json: its parents are unknown`;
        } else {
          image.chainError = `top layer ${id} has neither a record nor a directory`;
        }
        break;
      }
      id = recorded.parent;
    }
    if (images.length < MAX_IMAGES) images.push(image);
  }

  // Lazy layers: the details, and a count per store beyond the cap.
  const byStore = new Map<string, { layerStore: string | null; storePath: string; layers: number }>();
  const lazyLayers: LazyLayerFact[] = [];
  const stores = [...request.layerStores]
    .filter((s) => s.path.startsWith("/"))
    .map((s) => ({ entry: s, path: path.posix.normalize(s.path).replace(/(.)\/$/, "$1"), ref: s.ref }))
    .sort((a, b) => b.path.length - a.path.length);
  for (const layer of lazyDirs) {
    const detail = describeLazy(layer, stores, records.get(layer.id), anomalies);
    const key = `${detail.layerStore ?? ""}\0${detail.storePath}`;
    const counted = byStore.get(key) ?? {
      layerStore: detail.layerStore,
      storePath: detail.storePath,
      layers: 0,
    };
    counted.layers += 1;
    byStore.set(key, counted);
    if (lazyLayers.length >= MAX_LAZY_LAYERS) continue;
    const users = usedBy.get(layer.id);
    lazyLayers.push({ ...detail, imageNames: users?.names ?? [], imageCount: users?.count ?? 0 });
  }

  let notInAnyImage = 0;
  for (const id of classes.keys()) if (!used.has(id)) notInAnyImage += 1;

  return {
    driver,
    files,
    directories: walks.directories,
    totals,
    byHome: [...perHome].map(([home, tally]) => ({ home, tally })),
    unrecorded,
    withoutDirectory,
    notInAnyImage,
    images,
    imagesTruncated: images.length < imageRecords.length,
    lazyByStore: [...byStore.values()],
    lazyLayers,
    lazyLayersTruncated: lazyLayers.length < lazyDirs.length,
    anomalies: anomalies.list,
    anomalyCount: anomalies.count,
  };
}

function zeroes(): Record<LayerClass, number> {
  return { lazy: 0, partial: 0, full: 0, missing: 0, unknown: 0 };
}

function emptyTally(): ClassTally {
  return {
    lazy: { layers: 0, bytes: 0 },
    partial: { layers: 0, bytes: 0 },
    full: { layers: 0, bytes: 0 },
    missing: { layers: 0, bytes: 0 },
    unknown: { layers: 0, bytes: 0 },
  };
}

class Anomalies {
  list: LayersFacts["anomalies"] = [];
  count = 0;
  add(id: string, path: string, problem: string): void {
    this.count += 1;
    if (this.list.length < MAX_ANOMALIES) this.list.push({ id, path, problem });
  }
}

/** A configured store: its entry, and its path normalized for matching. */
interface StoreMatch {
  entry: LayerStoreEntry;
  path: string;
  ref: boolean;
}

/** Where a lazy layer points: the store it lies in, the image reference and digest of its path. */
function describeLazy(
  layer: DirLayer,
  stores: StoreMatch[],
  recorded: RecordedLayer | undefined,
  anomalies: Anomalies,
): Omit<LazyLayerFact, "imageNames" | "imageCount"> {
  const diffLink = layer.diffLink ?? "";
  const additionalLayer = layer.additionalLayer ?? null;
  // The overlay driver mounts what `diff` points to; `additionallayer` is what it tells the store
  // it uses and releases. Both should name the same store directory.
  const linkParent = diffLink.startsWith("/") && path.posix.basename(diffLink) === "diff";
  const target = linkParent
    ? path.posix.dirname(path.posix.normalize(diffLink))
    : (additionalLayer ?? path.posix.dirname(diffLink));
  if (!diffLink.startsWith("/")) {
    anomalies.add(
      layer.id,
      layer.path,
      `diff links to a relative path (${diffLink}); the overlay driver refuses it`,
    );
  } else if (additionalLayer !== null && path.posix.normalize(additionalLayer) !== target) {
    anomalies.add(
      layer.id,
      layer.path,
      `additionallayer names ${additionalLayer} but diff links to ${diffLink}`,
    );
  }
  const store = stores.find((s) => isWithin(target, s.path) && target !== s.path);
  let storePath: string;
  let ref: string | null = null;
  let digest: string;
  const parts = (from: string) => target.slice(from === "/" ? 1 : from.length + 1).split("/");
  if (store) {
    storePath = store.path;
    const rest = parts(store.path);
    digest = rest[rest.length - 1]!;
    const expected = store.ref ? 2 : 1;
    if (store.ref && rest.length >= 2) ref = decodeRef(rest[0]!);
    if (rest.length !== expected || (store.ref && ref === null)) {
      anomalies.add(
        layer.id,
        layer.path,
        `${target} is not laid out as ${store.path}/${store.ref ? "<base64 image reference>/" : ""}<digest>`,
      );
    }
  } else {
    // No configured store holds it (the configuration changed since the pull): guess from the shape.
    digest = path.posix.basename(target);
    const parent = path.posix.dirname(target);
    ref = decodeRef(path.posix.basename(parent));
    storePath = ref !== null ? path.posix.dirname(parent) : parent;
  }
  const record = recorded?.record;
  const tocDigest = typeof record?.["toc-digest"] === "string" ? record["toc-digest"] : null;
  const flags = record?.flags;
  const expectedDiffId =
    typeof flags === "object" && flags !== null && "expected-layer-diffid" in (flags as JsonRecord);
  let recordFormat: LazyLayerFact["recordFormat"] = null;
  if (record) {
    if (tocDigest !== null && expectedDiffId) recordFormat = "toc";
    else if (typeof record["compressed-diff-digest"] === "string") recordFormat = "digests";
    else recordFormat = "other";
  }
  const diffSize = Number(record?.["diff-size"]);
  return {
    id: layer.id,
    home: layer.home,
    target,
    layerStore: store?.entry.path ?? null,
    storePath,
    ref,
    digest,
    recorded: recorded !== undefined,
    recordFormat,
    tocDigest,
    diffSize: record && Number.isFinite(diffSize) ? diffSize : null,
  };
}

/** base64.StdEncoding of an image reference, as containers/storage names the path element; else null. */
export function decodeRef(element: string): string | null {
  if (element === "" || !/^[A-Za-z0-9+/]+={0,2}$/.test(element) || element.length % 4 !== 0) return null;
  const bytes = Buffer.from(element, "base64");
  if (bytes.toString("base64") !== element || !isUtf8(bytes)) return null;
  const ref = bytes.toString("utf8");
  // References are printable ASCII without spaces: registry/repo[:tag][@digest].
  return /^[\x21-\x7e]+$/.test(ref) ? ref : null;
}

interface Walks {
  layers: Map<string, DirLayer>;
  directories: LayerDirectoryFact[];
  /** False when a layer directory could not be listed: a record without directory proves nothing then. */
  complete: boolean;
}

async function walkHomes(
  host: Host,
  table: MountTable | undefined,
  request: InspectRequest,
  anomalies: Anomalies,
): Promise<Walks> {
  const layers = new Map<string, DirLayer>();
  const directories: LayerDirectoryFact[] = [];
  let complete = true;
  for (const home of request.homes) {
    const hostDir = path.posix.join(home.path, request.driver);
    const fact: LayerDirectoryFact = { path: hostDir, home: home.role, status: "ok", layers: 0 };
    directories.push(fact);
    if (!/^overlay2?$/.test(request.driver)) {
      fact.status = "skipped";
      fact.error = `the ${request.driver} driver has no additional layer stores; layers classified by their records`;
      complete = false;
      continue;
    }
    try {
      await walkLayerDirectory(host, table, home.path, hostDir, fact, layers, anomalies);
    } catch (error) {
      fact.status = "error";
      fact.error = `${hostDir}: ${describeError(error)}`;
    }
    if (fact.status === "error" || fact.status === "skipped") complete = false;
  }
  return { layers, directories, complete };
}

/**
 * Lists `<home>/<driver>/` and each layer directory in it, synchronously in slices of
 * LAYERS_PER_TURN with a turn of the event loop between slices: every call here is on the local
 * disk (a store on a FUSE or network filesystem is skipped), and one readdir per layer through
 * libuv's thread pool costs three times as much. Nothing below a layer directory is opened: a
 * lazy layer's `diff` is read with readlink, never followed.
 */
async function walkLayerDirectory(
  host: Host,
  table: MountTable | undefined,
  homePath: string,
  hostDir: string,
  fact: LayerDirectoryFact,
  layers: Map<string, DirLayer>,
  anomalies: Anomalies,
): Promise<void> {
  const resolved = await host.root.resolve(hostDir, host.stopAtRisky(table));
  const risky = host.riskyMount(table, resolved.host);
  if (risky) {
    fact.status = "skipped";
    fact.error = `${hostDir} is on a ${risky.fstype} filesystem, which is only ever touched from a child process`;
    return;
  }
  let entries: Dirent<Buffer>[];
  try {
    entries = readdirSync(resolved.local, { withFileTypes: true, encoding: "buffer" });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT") {
      fact.status = "missing";
      return;
    }
    throw error;
  }
  // Mount points of hanging filesystems inside the directory (a FUSE mount at a layer's place).
  const avoid = new Set<string>();
  for (const entry of table?.entries ?? []) {
    if (!mayHang(entry.fstype) || !isWithin(entry.mountPoint, resolved.local)) continue;
    const first = entry.mountPoint.slice(resolved.local.length + 1).split("/")[0];
    if (first) avoid.add(first);
  }
  const base = `${resolved.local}/`;
  let done = 0;
  for (const entry of entries) {
    if (!entry.isDirectory()) continue; // backingFsBlockDev, lock files
    const raw = entry.name;
    const utf8 = isUtf8(raw);
    const name = utf8 ? raw.toString("utf8") : displayName(raw);
    if (name === "l") continue; // the short links, not a layer
    const layerHost = `${hostDir}/${name}`;
    if (avoid.has(name)) {
      fact.layers += 1;
      anomalies.add(name, layerHost, "a FUSE or network filesystem is mounted at the layer directory");
      addLayer(layers, { id: name, home: homePath, path: layerHost, kind: "unknown" }, anomalies);
      continue;
    }
    const local = utf8 ? base + name : joinRaw(resolved.local, raw);
    fact.layers += 1;
    addLayer(layers, readLayer(name, homePath, layerHost, local, anomalies), anomalies);
    done += 1;
    if (done % LAYERS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

function addLayer(layers: Map<string, DirLayer>, layer: DirLayer, anomalies: Anomalies): void {
  const earlier = layers.get(layer.id);
  if (earlier) {
    anomalies.add(layer.id, layer.path, `the same layer id also has a directory at ${earlier.path}`);
    return;
  }
  layers.set(layer.id, layer);
}

function readLayer(
  id: string,
  home: string,
  hostPath: string,
  local: string | Buffer,
  anomalies: Anomalies,
): DirLayer {
  const layer: DirLayer = { id, home, path: hostPath, kind: "real" };
  let children: Dirent[];
  try {
    children = readdirSync(local, { withFileTypes: true });
  } catch (error) {
    anomalies.add(id, hostPath, `cannot list the layer directory: ${describeError(error)}`);
    layer.kind = "unknown";
    return layer;
  }
  let marker: Dirent | undefined;
  let diff: Dirent | undefined;
  for (const child of children) {
    if (child.name === "additionallayer") marker = child;
    else if (child.name === "diff") diff = child;
  }
  const join = (child: string) =>
    typeof local === "string" ? `${local}/${child}` : Buffer.concat([local, Buffer.from(`/${child}`)]);
  if (diff?.isSymbolicLink()) {
    try {
      layer.diffLink = readlinkSync(join("diff"), "utf8");
    } catch (error) {
      anomalies.add(id, hostPath, `cannot read the diff link: ${describeError(error)}`);
      layer.kind = "unknown";
      return layer;
    }
    if (!marker) {
      anomalies.add(id, hostPath, `diff links to ${layer.diffLink} but there is no additionallayer file`);
      return layer; // not served from a store as far as containers/storage knows: full
    }
    layer.kind = "lazy";
    layer.additionalLayer = marker.isFile()
      ? readMarker(join("additionallayer"), id, hostPath, anomalies)
      : null;
    if (!marker.isFile()) anomalies.add(id, hostPath, "additionallayer is not a regular file");
    return layer;
  }
  if (marker) {
    anomalies.add(
      id,
      hostPath,
      diff
        ? "an additionallayer file, but diff is a real directory (the layer was not created from the store)"
        : "an additionallayer file, but no diff link",
    );
  } else if (!diff) {
    anomalies.add(id, hostPath, "no diff directory");
  } else if (!diff.isDirectory()) {
    anomalies.add(id, hostPath, "diff is neither a directory nor a symlink");
  }
  return layer;
}

/** The `additionallayer` file's content, read without following a symlink and bounded. */
function readMarker(
  local: string | Buffer,
  id: string,
  hostPath: string,
  anomalies: Anomalies,
): string | null {
  let fd: number;
  try {
    fd = openSync(local, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    anomalies.add(id, hostPath, `cannot read additionallayer: ${describeError(error)}`);
    return null;
  }
  try {
    const bytes = readSync(fd, markerBuffer, 0, markerBuffer.length, 0);
    return markerBuffer.subarray(0, bytes).toString("utf8").trim();
  } catch (error) {
    anomalies.add(id, hostPath, `cannot read additionallayer: ${describeError(error)}`);
    return null;
  } finally {
    closeSync(fd);
  }
}
