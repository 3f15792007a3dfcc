import path from "node:path";
import { type ProbeOp, probeMount } from "../host/fuse-probe.js";
import type { ProbeOpResult, ProbeRun } from "../host/fuse-probe-types.js";
import { readFuseConnection } from "../host/fusectl.js";
import type { Host, MountFact } from "../host/host.js";
import { findProcess, flagValue, type ProcessInfo } from "../host/proc.js";
import { loadToml, type Table, table } from "./config-files.js";
import type { LayersFacts } from "./layers.js";
import { Absent, factsOf, type SourceDefinition } from "./source.js";
import type { ProcessFact, StorageConfigFacts } from "./storage-config.js";

/** What stargz-store's config.toml sets, without any secret (header values are never kept). */
export interface StoreConfigFacts {
  path: string;
  status: "ok" | "missing" | "error";
  error?: string;
  /** Top-level and [blob]/[fuse]/[directory_cache] settings the store reads, as set. */
  settings: Record<string, string | number | boolean>;
  /** Mirrors per registry host: their hosts, and the names (only) of the headers sent to them. */
  mirrors: { registry: string; host: string; insecure: boolean; headerNames: string[] }[];
  kubeconfigKeychain: boolean;
  /** Keys stargz-store has no field for (metrics_address, cri_keychain...): set, but silently ignored. */
  unknownKeys: string[];
}

export interface LayerStoreFacts {
  /** The additionallayerstores entry as written and its path. */
  entry: string;
  path: string;
  ref: boolean;
  /** The mount at exactly this path (a FUSE mount when the store is up), or null. */
  mount: (MountFact & { device: string }) | null;
  process:
    | (ProcessFact & {
        kind: string;
        root: string | null;
        /**
         * Where --root really lies: resolved through the host (symlinks followed inside the host
         * root: on Fedora CoreOS/RHCOS /srv, /opt or /usr/local may lead into /var) and the mount
         * holding it; null without a --root. mountPoint and fstype are null when it is not there.
         */
        rootPlace: RootPlace | null;
        config: string | null;
        mountpoint: string | null;
      })
    | null;
  /** What the command line and files tell about the store's version (v0.16 changed lookups and auth). */
  versionHints: string[];
  config: StoreConfigFacts | null;
  fusectl: {
    waiting: number | null;
    maxBackground: number | null;
    congestionThreshold: number | null;
    source: string;
    error?: string;
  } | null;
  /** Timed operations on the mount; null when there is no FUSE mount to probe. */
  probe: ProbeRun | null;
  responsive: boolean | null;
  /**
   * When the mount was first seen unresponsive: this collection's probe, or in `serve` the first
   * of the cycles in a row that found it so (then unresponsiveSinceEarlierCycle is true).
   */
  unresponsiveSince: string | null;
  /** Set by `serve` when unresponsiveSince is carried over from an earlier cycle. */
  unresponsiveSinceEarlierCycle?: boolean;
  /** The layer's info JSON as the store serves it (field names tell the format), for one lazy layer. */
  sampleInfo: Record<string, unknown> | null;
  /**
   * Per-layer fetch progress of the sampled layer: diff/.stargz-snapshotter/<layer blob digest>.json,
   * found by listing that directory (from v0.16 the layer's path is named by its TOC digest instead).
   */
  sampleProgress: {
    digest?: string;
    size?: number;
    fetchedSize?: number;
    fetchedPercent?: number;
    error?: string;
  } | null;
  /** Lazy layers of this store whose path in the store no longer exists (checked ones only). */
  brokenLayers: { id: string; target: string; reason: string }[];
  /** Lazy layers of this store whose path was checked, and those left unchecked (budget, or no mount). */
  checkedLayers: number;
  uncheckedLayers: number;
}

export interface RootPlace {
  /** Host path after following symlinks (as far as the path exists). */
  resolved: string;
  status: "ok" | "missing" | "error" | "unresponsive";
  mountPoint: string | null;
  fstype: string | null;
}

export interface LayerStoresFacts {
  stores: LayerStoreFacts[];
  /** registries.conf's additional-layer-store-auth-helper. */
  authHelper: string | null;
}

type Inputs = { "storage-config": StorageConfigFacts; layers: LayersFacts; "layer-stores": LayerStoresFacts };

/** Known layer-store servers; any process whose arguments name the mount point also counts. */
const STORE_SERVERS = ["stargz-store", "nydus-store", "soci-store", "nix-storage-plugin"];
const STARGZ_DEFAULTS = {
  root: "/var/lib/stargz-store",
  config: "/etc/stargz-store/config.toml",
  addr: "/var/lib/stargz-store/store.sock",
};
/** Lazy layers whose store path is checked per run: a stat each, in the probe's child process. */
const MAX_CHECKED_LAYERS = 200;
/** The probe's deadline is the host's guarded-stat deadline, but never below this. */
const PROBE_MIN_DEADLINE_MS = 1000;

export const layerStoresSource: SourceDefinition<Inputs, "layer-stores"> = {
  name: "layer-stores",
  deadlineMs: 20_000,
  async collect({ host, result }) {
    const [storage, layers] = await Promise.all([result("storage-config"), result("layers")]);
    const config = factsOf(storage);
    const entries = config?.containersStorage.additionalLayerStores.value ?? [];
    if (entries.length === 0) return new Absent("no additionallayerstores configured");
    const processes = await host.processes();
    const table = await host.mounts().catch(() => undefined);
    const lazy = factsOf(layers)?.lazyLayers ?? [];
    const stores: LayerStoreFacts[] = [];
    for (const entry of entries) {
      if (!entry.path.startsWith("/")) continue; // STORAGE_CONF_STORE_CONFUSION reports it
      const mount = table?.entries.find(
        (m) => m.mountPoint === entry.path || m.mountPoint === host.root.local(entry.path),
      );
      const mountFact = mount ? { ...host.toMountFact(mount), device: mount.device } : null;
      const serving = findServer(processes, entry.path, host.root.local(entry.path));
      const store = await describeStore(host, entry, mountFact, serving);
      const mine = lazy.filter((layer) => layer.layerStore === entry.path);
      await probeStore(host, store, mine);
      stores.push(store);
    }
    return { stores, authHelper: config?.registries.authHelper.value ?? null };
  },
};

function findServer(processes: ProcessInfo[], hostPath: string, localPath: string): ProcessInfo | undefined {
  const byArgs = processes.find((p) => p.argv.slice(1).some((arg) => arg === hostPath || arg === localPath));
  return byArgs ?? findProcess(processes, STORE_SERVERS);
}

/** The first argument that is not a flag or a flag's value: stargz-store's mount point. */
function positional(argv: string[]): string | null {
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") continue;
    if (arg.startsWith("-")) {
      if (!arg.includes("=") && i + 1 < argv.length && !argv[i + 1]!.startsWith("-")) i++;
      continue;
    }
    return arg;
  }
  return null;
}

async function describeStore(
  host: Host,
  entry: { raw: string; path: string; ref: boolean },
  mount: LayerStoreFacts["mount"],
  serving: ProcessInfo | undefined,
): Promise<LayerStoreFacts> {
  const kind = serving
    ? (STORE_SERVERS.find((name) => path.basename(serving.argv[0] ?? "") === name || serving.comm === name) ??
      "unknown")
    : null;
  const stargz = kind === "stargz-store";
  const root = serving ? (flagValue(serving.argv, ["root"]) ?? (stargz ? STARGZ_DEFAULTS.root : null)) : null;
  const configPath = serving
    ? (flagValue(serving.argv, ["config"]) ?? (stargz ? STARGZ_DEFAULTS.config : null))
    : stargzDefaultConfig(entry.path);
  const versionHints: string[] = [];
  if (serving && flagValue(serving.argv, ["addr"]) !== undefined)
    versionHints.push("--addr flag: stargz-store v0.16 or later");
  const socket = serving ? (flagValue(serving.argv, ["addr"]) ?? STARGZ_DEFAULTS.addr) : STARGZ_DEFAULTS.addr;
  if (stargz || !serving) {
    const inspection = await host.inspectPath(socket);
    if (inspection.status === "ok")
      versionHints.push(`${socket} exists: the credential socket of stargz-store v0.16 or later`);
  }
  return {
    entry: entry.raw,
    path: entry.path,
    ref: entry.ref,
    mount,
    process: serving
      ? {
          pid: serving.pid,
          argv: serving.argv,
          kind: kind ?? "unknown",
          root,
          rootPlace: root ? await placeOf(host, root) : null,
          config: configPath,
          mountpoint: positional(serving.argv),
        }
      : null,
    versionHints,
    config: configPath ? await readStoreConfig(host, configPath) : null,
    fusectl: null,
    probe: null,
    responsive: null,
    unresponsiveSince: null,
    sampleInfo: null,
    sampleProgress: null,
    brokenLayers: [],
    checkedLayers: 0,
    uncheckedLayers: 0,
  };
}

/** Where the store's --root lies on the host: the check judges persistence by this, not by the path string. */
async function placeOf(host: Host, root: string): Promise<RootPlace> {
  const inspection = await host.inspectPath(root);
  switch (inspection.status) {
    case "ok":
      return {
        resolved: inspection.resolved,
        status: "ok",
        mountPoint: inspection.mount?.mountPoint ?? null,
        fstype: inspection.mount?.fstype ?? null,
      };
    case "missing":
      return { resolved: inspection.resolved, status: "missing", mountPoint: null, fstype: null };
    case "unresponsive":
      return {
        resolved: root,
        status: "unresponsive",
        mountPoint: inspection.mount.mountPoint,
        fstype: inspection.mount.fstype,
      };
    default:
      return { resolved: root, status: "error", mountPoint: null, fstype: null };
  }
}

/** Without a process to tell, the config of a store at stargz-store's usual place is its default file. */
function stargzDefaultConfig(storePath: string): string | null {
  return storePath.startsWith(`${STARGZ_DEFAULTS.root}/`) ? STARGZ_DEFAULTS.config : null;
}

const TOP_KEYS = [
  "metadata_store",
  "http_cache_type",
  "filesystem_cache_type",
  "resolve_result_entry_ttl_sec",
  "prefetch_size",
  "prefetch_timeout_sec",
  "prefetch_async_size",
  "noprefetch",
  "no_background_fetch",
  "max_concurrency",
  "debug",
  "allow_no_verification",
  "disable_verification",
  "no_prometheus",
  "log_file_access",
];
const SECTIONS: Record<string, string[]> = {
  blob: [
    "valid_interval",
    "check_always",
    "chunk_size",
    "fetching_timeout_sec",
    "force_single_range_mode",
    "prefetch_chunk_size",
    "max_retries",
    "min_wait_msec",
    "max_wait_msec",
  ],
  directory_cache: ["max_lru_cache_entry", "max_cache_fds", "sync_add", "direct", "fadv_dontneed"],
  fuse: ["attr_timeout", "entry_timeout", "passthrough", "merge_buffer_size", "merge_worker_count"],
};
const OTHER_TABLES = new Set(["resolver", "kubeconfig_keychain"]);

/** stargz-store's config.toml (cmd/stargz-store/main.go, fs/config/config.go): settings, never header values. */
async function readStoreConfig(host: Host, configPath: string): Promise<StoreConfigFacts> {
  const loaded = await loadToml(host, configPath, "stargz-store config");
  const facts: StoreConfigFacts = {
    path: configPath,
    status: loaded.fact.status,
    settings: {},
    mirrors: [],
    kubeconfigKeychain: false,
    unknownKeys: [],
  };
  if (loaded.fact.error) facts.error = loaded.fact.error.message;
  const data = loaded.data;
  if (!data) return facts;
  for (const [key, value] of Object.entries(data)) {
    if (TOP_KEYS.includes(key) && isScalar(value)) facts.settings[key] = value;
    else if (!(key in SECTIONS) && !OTHER_TABLES.has(key)) facts.unknownKeys.push(key);
  }
  for (const [section, keys] of Object.entries(SECTIONS)) {
    for (const [key, value] of Object.entries(table(data, section) ?? {})) {
      if (keys.includes(key) && isScalar(value)) facts.settings[`${section}.${key}`] = value;
      else facts.unknownKeys.push(`${section}.${key}`);
    }
  }
  const timeout = table(data, "resolver")?.request_timeout_sec;
  if (isScalar(timeout)) facts.settings["resolver.request_timeout_sec"] = timeout;
  for (const [registry, hostTable] of Object.entries(table(data, "resolver", "host") ?? {})) {
    const mirrors = (hostTable as Table).mirrors;
    for (const mirror of Array.isArray(mirrors) ? mirrors : []) {
      const m = mirror as Table;
      facts.mirrors.push({
        registry,
        host: typeof m.host === "string" ? m.host : "",
        insecure: m.insecure === true,
        headerNames: Object.keys(table(m, "header") ?? {}),
      });
    }
  }
  facts.kubeconfigKeychain = table(data, "kubeconfig_keychain")?.enable_keychain === true;
  return facts;
}

function isScalar(value: unknown): value is string | number | boolean {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
}

/**
 * Probes the store's FUSE mount from a child process: statfs and a readdir of its root, then for
 * one lazy layer its info and fetch progress, then whether each lazy layer's path still exists.
 */
async function probeStore(
  host: Host,
  store: LayerStoreFacts,
  lazy: LayersFacts["lazyLayers"],
): Promise<void> {
  const checked = lazy.slice(0, MAX_CHECKED_LAYERS);
  store.uncheckedLayers = lazy.length - checked.length;
  if (!store.mount) {
    // Nothing serves the store: every lazy layer of it is gone.
    for (const layer of lazy)
      store.brokenLayers.push({ id: layer.id, target: layer.target, reason: "the store is not mounted" });
    store.checkedLayers = lazy.length;
    store.uncheckedLayers = 0;
    return;
  }
  if (!store.mount.fstype.startsWith("fuse")) return;
  store.fusectl = await readFuseConnection(store.mount.device).catch((error: Error) => ({
    waiting: null,
    maxBackground: null,
    congestionThreshold: null,
    source: "unavailable",
    error: error.message,
  }));
  const local = (hostPath: string) => host.root.local(hostPath);
  const sample = checked[0];
  const ops: ProbeOp[] = [
    { op: "statfs", path: local(store.path) },
    { op: "readdir", path: local(store.path), maxNames: 8 },
  ];
  if (sample) {
    ops.push({ op: "read", path: local(path.posix.join(sample.target, "info")), maxBytes: 16 * 1024 });
    // The file is named by the layer's blob digest, which the path (a TOC digest from v0.16) does
    // not tell: the child lists the directory, as only it may touch the mount.
    ops.push({
      op: "read",
      path: local(path.posix.join(sample.target, "diff", ".stargz-snapshotter")),
      pick: ".json",
      maxBytes: 16 * 1024,
    });
  }
  const layerOps = checked.map((layer) => ({ op: "stat" as const, path: local(layer.target) }));
  const run = await probeMount([...ops, ...layerOps], Math.max(host.guardedStatMs, PROBE_MIN_DEADLINE_MS));
  store.probe = run;
  store.responsive = !run.timedOut && run.hungAt === null;
  if (!store.responsive) store.unresponsiveSince = new Date().toISOString();
  const byPath = new Map(run.results.map((r) => [r.path, r] as const));
  // A dead connection (the server is gone, its mount left behind) breaks every layer at once,
  // even those the kernel still answers from its attribute cache for a moment.
  const dead = run.results.find((r) => !r.ok && r.code === "ENOTCONN" && r.path === local(store.path));
  if (dead) {
    for (const layer of lazy)
      store.brokenLayers.push({
        id: layer.id,
        target: layer.target,
        reason: "the store's mount is dead: Transport endpoint is not connected",
      });
    store.checkedLayers = lazy.length;
    store.uncheckedLayers = 0;
    return;
  }
  if (sample) {
    store.sampleInfo = parseJson(byPath.get(ops[2]!.path));
    store.sampleProgress = progressOf(parseJson(byPath.get(ops[3]!.path)));
  }
  for (const layer of checked) {
    const result = byPath.get(local(layer.target));
    if (!result) continue; // the probe hung before it got here
    store.checkedLayers += 1;
    if (!result.ok && (result.code === "ENOENT" || result.code === "ENOTDIR")) {
      store.brokenLayers.push({
        id: layer.id,
        target: layer.target,
        reason: `${layer.target} does not exist in the store`,
      });
    } else if (!result.ok) {
      store.brokenLayers.push({
        id: layer.id,
        target: layer.target,
        reason: `${result.code}: ${result.message}`,
      });
    }
  }
}

/** The fields of stargz-store's stat file (fs/layer/node.go statJSON), each kept only with its type. */
function progressOf(json: Record<string, unknown> | null): LayerStoreFacts["sampleProgress"] {
  if (!json) return null;
  const progress: NonNullable<LayerStoreFacts["sampleProgress"]> = {};
  for (const key of ["digest", "error"] as const)
    if (typeof json[key] === "string") progress[key] = json[key];
  for (const key of ["size", "fetchedSize", "fetchedPercent"] as const)
    if (typeof json[key] === "number") progress[key] = json[key];
  return progress;
}

function parseJson(result: ProbeOpResult | undefined): Record<string, unknown> | null {
  if (!result?.ok || result.value.kind !== "read") return null;
  try {
    const parsed = JSON.parse(result.value.text) as unknown;
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}
