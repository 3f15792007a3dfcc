import { readdir } from "node:fs/promises";
import path from "node:path";
import type { Host } from "../host/host.js";
import { findProcess, flagValue, flagValues, type ProcessInfo, readEnvironment } from "../host/proc.js";
import {
  type ConfigFileFact,
  type LoadedConfig,
  loadDropIns,
  loadToml,
  stringList,
  stringValue,
  type Table,
  table,
} from "./config-files.js";
import { Absent, factsOf, type SourceDefinition, type SourceResult } from "./source.js";

/** A resolved setting and where its value came from: a host file path, a flag, or "default". */
export interface Setting<T> {
  value: T;
  from: string;
}

export interface LayerStoreEntry {
  /** The entry as written, e.g. "/var/lib/stargz-store/store:ref". */
  raw: string;
  path: string;
  /** The ":ref" suffix: layers are looked up under base64(image reference)/. */
  ref: boolean;
  /** Suffixes other than "ref", which containers/storage rejects. */
  unknownOptions: string[];
}

/** The containers/storage settings CRI-O (and podman as root) really use. */
export interface ContainersStorageFacts {
  /** The storage.conf that was read, or null when none exists and built-in defaults apply. */
  storageConf: string | null;
  driver: Setting<string>;
  graphroot: Setting<string>;
  runroot: Setting<string>;
  imagestore: Setting<string | null>;
  transientStore: Setting<boolean>;
  /** Driver options that decide the additional stores (CRI-O's storage_option replaces the list). */
  driverOptions: Setting<string[]>;
  additionalImageStores: Setting<string[]>;
  additionalLayerStores: Setting<LayerStoreEntry[]>;
  pullOptions: Setting<Record<string, string>>;
}

export interface ProcessFact {
  pid: number;
  argv: string[];
}

export interface ContainerdFacts {
  process: ProcessFact | null;
  configPath: string;
  configVersion: number;
  root: Setting<string>;
  state: Setting<string>;
  address: Setting<string>;
  snapshotter: Setting<string>;
  /** The directory containerd reports as its image filesystem in ImageFsInfo. */
  snapshotterRoot: Setting<string>;
}

export interface StorageConfigFacts {
  /** Every configuration file consulted, in the order it was applied. */
  files: ConfigFileFact[];
  runtimeGuess: { kind: "crio" | "containerd" | "unknown"; evidence: string };
  crioProcess: ProcessFact | null;
  containersStorage: ContainersStorageFacts;
  registries: { authHelper: Setting<string | null> };
  containerd: ContainerdFacts | null;
  /** CRI-O's own store settings; null when neither a crio process nor a crio configuration exists. */
  crio: CrioSettingsFacts | null;
}

/** Settings of CRI-O (flag, then crio.conf and drop-ins, then CRI-O's default) beyond storage. */
export interface CrioSettingsFacts {
  /** `[crio.api] listen`: the socket serving CRI and the /info and /config endpoints. */
  listen: Setting<string>;
  /** `[crio] clean_shutdown_file`. */
  cleanShutdownFile: Setting<string>;
  /**
   * `[crio.runtime] additional_artifact_stores` exactly as written: order kept, duplicates and
   * relative paths not removed (checks report them).
   */
  additionalArtifactStores: Setting<string[]>;
}

/** What a source that looks at CRI-O builds on, or why there is nothing to look at. */
export function crioOf(
  result: SourceResult<StorageConfigFacts>,
): { storage: StorageConfigFacts; crio: CrioSettingsFacts } | Absent {
  const storage = factsOf(result);
  if (!storage) return new Absent("storage configuration unavailable");
  if (!storage.crio) return new Absent("no crio process and no CRI-O configuration");
  return { storage, crio: storage.crio };
}

const STORAGE_DEFAULTS = {
  driver: "overlay",
  graphroot: "/var/lib/containers/storage",
  runroot: "/run/containers/storage",
};

export const storageConfigSource: SourceDefinition<
  { "storage-config": StorageConfigFacts },
  "storage-config"
> = {
  name: "storage-config",
  deadlineMs: 5000,
  async collect({ host }) {
    const processes = await host.processes();
    const crio = findProcess(processes, ["crio"]);
    const containerd = findProcess(processes, ["containerd"]);
    const env = crio
      ? await readEnvironment(host.procRoot, crio.pid, [
          "CONTAINERS_STORAGE_CONF",
          "CONTAINERS_REGISTRIES_CONF",
          ...CRIO_ENVIRONMENT,
        ])
      : {};
    const files: ConfigFileFact[] = [];
    const crioConf = await loadCrioConfig(host, crio, env);
    const containersStorage = await resolveContainersStorage(host, crio, crioConf, env, files);
    const registries = await resolveRegistries(host, env, files);
    const containerdFacts = await resolveContainerd(host, containerd, files);
    return {
      files,
      runtimeGuess: await guessRuntime(host, crio, containerd),
      crioProcess: crio ? { pid: crio.pid, argv: crio.argv } : null,
      containersStorage,
      registries,
      containerd: containerdFacts,
      crio: crio || crioConf.found ? resolveCrioSettings(crio, crioConf.layered, env) : null,
    };
  },
};

async function guessRuntime(
  host: Host,
  crio: ProcessInfo | undefined,
  containerd: ProcessInfo | undefined,
): Promise<StorageConfigFacts["runtimeGuess"]> {
  if (crio) return { kind: "crio", evidence: `crio is running (pid ${crio.pid})` };
  if (containerd) return { kind: "containerd", evidence: `containerd is running (pid ${containerd.pid})` };
  if (await host.exists("/etc/crio"))
    return { kind: "crio", evidence: "/etc/crio exists; no runtime process seen" };
  if (await host.exists("/etc/containerd/config.toml")) {
    return { kind: "containerd", evidence: "/etc/containerd/config.toml exists; no runtime process seen" };
  }
  return { kind: "unknown", evidence: "no crio or containerd process or configuration found" };
}

/** Deep-merges TOML tables: later keys win, nested tables merge, arrays are replaced. */
function mergeTables(base: Table, over: Table): Table {
  const out: Table = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const existing = out[key];
    const bothTables = isTable(existing) && isTable(value);
    out[key] = bothTables ? mergeTables(existing as Table, value as Table) : value;
  }
  return out;
}

function isTable(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Applies loaded files in order, remembering which file last set each [section] key. */
class Layered {
  data: Table = {};
  #from = new Map<string, string>();

  apply(loaded: LoadedConfig, files: ConfigFileFact[], merge = mergeTables): void {
    files.push(loaded.fact);
    if (!loaded.data) return;
    this.data = merge(this.data, loaded.data);
    recordOrigins(loaded.data, loaded.fact.path, [], this.#from);
  }

  /** Where `section.key` was last set, e.g. origin("storage", "graphroot"). */
  origin(...keys: string[]): string | undefined {
    return this.#from.get(keys.join("."));
  }
}

function recordOrigins(data: Table, file: string, prefix: string[], into: Map<string, string>): void {
  for (const [key, value] of Object.entries(data)) {
    const keys = [...prefix, key];
    into.set(keys.join("."), file);
    if (isTable(value)) recordOrigins(value as Table, file, keys, into);
  }
}

function setting<T>(
  value: T | undefined,
  from: string | undefined,
  fallback: T,
  fallbackFrom = "default",
): Setting<T> {
  return value === undefined ? { value: fallback, from: fallbackFrom } : { value, from: from ?? "unknown" };
}

async function resolveContainersStorage(
  host: Host,
  crio: ProcessInfo | undefined,
  crioFiles: CrioConfig,
  env: Record<string, string>,
  files: ConfigFileFact[],
): Promise<ContainersStorageFacts> {
  const conf = new Layered();
  const storageConf = await pickStorageConf(host, env);
  if (storageConf) conf.apply(storageConf, files);
  // Newer containers/storage (the container-libs loader) also reads drop-in directories.
  for (const dir of [
    "/usr/share/containers/storage.conf.d",
    "/usr/share/containers/storage.rootful.conf.d",
    "/etc/containers/storage.conf.d",
    "/etc/containers/storage.rootful.conf.d",
  ]) {
    const dropIns = await loadDropIns(host, dir, "storage.conf.d", "toml");
    if (dropIns.dir) files.push(dropIns.dir);
    for (const file of dropIns.files) conf.apply(file, files);
  }
  const storage = table(conf.data, "storage");
  const options = table(conf.data, "storage", "options");

  // crio.conf and its drop-ins are listed after storage.conf's files: CRI-O applies them over it.
  for (const fact of crioFiles.facts) files.push(fact);
  const crioConf = crioFiles.layered;
  const crioTable = table(crioConf.data, "crio");
  const crioFrom = (key: string) => crioConf.origin("crio", key);
  const flag = (names: string[]) => (crio ? flagValue(crio.argv, names) : undefined);
  const flagFrom = (name: string) => `crio flag --${name}`;

  const pick = (
    flagNames: string[],
    crioKey: string,
    storageKey: string,
    fallback: string,
  ): Setting<string> => {
    const fromFlag = flag(flagNames);
    if (fromFlag !== undefined) return { value: fromFlag, from: flagFrom(flagNames[0]!) };
    const fromCrio = stringValue(crioTable, crioKey);
    if (fromCrio) return { value: fromCrio, from: crioFrom(crioKey)! };
    return setting(
      stringValue(storage, storageKey) || undefined,
      conf.origin("storage", storageKey),
      fallback,
    );
  };

  const driver = pick(["storage-driver", "s"], "storage_driver", "driver", STORAGE_DEFAULTS.driver);
  const graphroot = pick(["root", "r"], "root", "graphroot", STORAGE_DEFAULTS.graphroot);
  const runroot = pick(["runroot"], "runroot", "runroot", STORAGE_DEFAULTS.runroot);
  const imagestoreSetting = pick(["imagestore"], "imagestore", "imagestore", "");
  const imagestore: Setting<string | null> = {
    value: imagestoreSetting.value === "" ? null : imagestoreSetting.value,
    from: imagestoreSetting.from,
  };

  const driverOptions = effectiveDriverOptions(crio, crioFiles.storageOptionLists, options, conf);
  const stores = parseDriverOptions(driverOptions.value);
  const pullOptions = table(options, "pull_options") ?? {};
  return {
    storageConf: storageConf?.data ? storageConf.fact.path : null,
    driver,
    graphroot,
    runroot,
    imagestore,
    transientStore: setting(
      typeof storage?.transient_store === "boolean" ? storage.transient_store : undefined,
      conf.origin("storage", "transient_store"),
      false,
    ),
    driverOptions,
    additionalImageStores: { value: stores.imageStores, from: driverOptions.from },
    additionalLayerStores: { value: stores.layerStores, from: driverOptions.from },
    pullOptions: {
      value: Object.fromEntries(Object.entries(pullOptions).map(([k, v]) => [k, String(v)])),
      from: conf.origin("storage", "options", "pull_options") ?? "default",
    },
  };
}

/** containers/storage reads the first storage.conf that exists: $CONTAINERS_STORAGE_CONF, /etc, /usr/share. */
async function pickStorageConf(host: Host, env: Record<string, string>): Promise<LoadedConfig | undefined> {
  const candidates = env.CONTAINERS_STORAGE_CONF
    ? [env.CONTAINERS_STORAGE_CONF]
    : ["/etc/containers/storage.conf", "/usr/share/containers/storage.conf"];
  for (const candidate of candidates) {
    const loaded = await loadToml(host, candidate, "storage.conf");
    if (loaded.fact.status !== "missing") return loaded;
  }
  return undefined;
}

/**
 * The environment variables of the crio process that stand for the flags read here
 * (internal/criocli/criocli.go: EnvVars of each flag). Only these are ever read.
 */
const CRIO_ENVIRONMENT = [
  "CONTAINER_CONFIG",
  "CONTAINER_CONFIG_DIR",
  "CONTAINER_LISTEN",
  "CONTAINER_CLEAN_SHUTDOWN_FILE",
];

/** CRI-O's built-in values (pkg/config/config_unix.go, DefaultConfig in pkg/config/config.go). */
const CRIO_DEFAULTS = {
  config: "/etc/crio/crio.conf",
  configDir: "/etc/crio/crio.conf.d",
  listen: "/var/run/crio/crio.sock",
  cleanShutdownFile: "/var/lib/crio/clean.shutdown",
};

/**
 * A crio flag as urfave/cli resolves it: on the command line, else the flag's environment
 * variable in crio's own environment, else undefined.
 */
function crioFlag(
  crio: ProcessInfo | undefined,
  env: Record<string, string>,
  names: string[],
  envName: string,
): Setting<string> | undefined {
  if (!crio) return undefined;
  const fromFlag = flagValue(crio.argv, names);
  if (fromFlag !== undefined) return { value: fromFlag, from: `crio flag --${names[0]}` };
  const fromEnv = env[envName];
  if (fromEnv !== undefined) return { value: fromEnv, from: `crio environment ${envName}` };
  return undefined;
}

interface CrioConfig {
  layered: Layered;
  /** The files read, in the order they were applied (the drop-in directory when unreadable). */
  facts: ConfigFileFact[];
  /** True when crio.conf or at least one drop-in exists (readable or not). */
  found: boolean;
  /** Each file's own `[crio] storage_option`, in the order applied: CRI-O merges them (see below). */
  storageOptionLists: { file: string; value: string[] }[];
}

/**
 * crio.conf, then every file of crio.conf.d in lexical order, subdirectories walked where they sort
 * (UpdateFromPath's filepath.Walk, whatever the names: crio.conf.d(5) says *.conf, the code does
 * not look): the file applied last wins.
 * `--config ""` turns the main file off (internal/criocli/criocli.go mergeConfigFiles).
 */
async function loadCrioConfig(
  host: Host,
  crio: ProcessInfo | undefined,
  env: Record<string, string>,
): Promise<CrioConfig> {
  const layered = new Layered();
  const facts: ConfigFileFact[] = [];
  const storageOptionLists: CrioConfig["storageOptionLists"] = [];
  const apply = (loaded: LoadedConfig) => {
    layered.apply(loaded, facts);
    const value = stringList(table(loaded.data ?? {}, "crio"), "storage_option");
    if (value !== undefined) storageOptionLists.push({ file: loaded.fact.path, value });
  };
  let found = false;
  const configPath = crioFlag(crio, env, ["config", "c"], "CONTAINER_CONFIG")?.value ?? CRIO_DEFAULTS.config;
  const configDir =
    crioFlag(crio, env, ["config-dir", "d"], "CONTAINER_CONFIG_DIR")?.value ?? CRIO_DEFAULTS.configDir;
  if (configPath !== "") {
    const main = await loadToml(host, configPath, "crio.conf");
    if (main.fact.status !== "missing") {
      apply(main);
      found = true;
    }
  }
  const dropIns = await loadDropIns(host, configDir, "crio.conf.d", "toml", { walk: true });
  if (dropIns.dir) facts.push(dropIns.dir);
  for (const file of dropIns.files) {
    apply(file);
    found = true;
  }
  return { layered, facts, found, storageOptionLists };
}

/**
 * `[crio.api] listen`, `[crio] clean_shutdown_file` and `[crio.runtime] additional_artifact_stores`:
 * crio's flag (or its environment variable), else the files in merge order, else CRI-O's default
 * (internal/criocli/criocli.go mergeConfig: a flag that is set overrides the files).
 */
function resolveCrioSettings(
  crio: ProcessInfo | undefined,
  conf: Layered,
  env: Record<string, string>,
): CrioSettingsFacts {
  const fromFiles = (section: string[], key: string, fallback: string): Setting<string> =>
    setting(stringValue(table(conf.data, ...section), key), conf.origin(...section, key), fallback);
  const listen =
    crioFlag(crio, env, ["listen"], "CONTAINER_LISTEN") ??
    fromFiles(["crio", "api"], "listen", CRIO_DEFAULTS.listen);
  const cleanShutdownFile =
    crioFlag(crio, env, ["clean-shutdown-file"], "CONTAINER_CLEAN_SHUTDOWN_FILE") ??
    fromFiles(["crio"], "clean_shutdown_file", CRIO_DEFAULTS.cleanShutdownFile);
  return { listen, cleanShutdownFile, additionalArtifactStores: artifactStores(crio, conf) };
}

/**
 * `--additional-artifact-stores` is a string-slice flag: repeated, or one comma-separated value
 * (urfave/cli splits on commas; criocli's StringSliceTrySplit trims each entry). It has no
 * environment variable. The list from the files is kept exactly as written; an array in a later
 * file replaces the earlier one (BurntSushi/toml decodes an array over a slice by replacing it).
 */
function artifactStores(crio: ProcessInfo | undefined, conf: Layered): Setting<string[]> {
  const flags = crio ? flagValues(crio.argv, ["additional-artifact-stores"]) : [];
  if (flags.length > 0) {
    return {
      value: flags.flatMap((value) => value.split(",")).map((value) => value.trim()),
      from: "crio flag --additional-artifact-stores",
    };
  }
  const runtime = table(conf.data, "crio", "runtime");
  return setting(
    stringList(runtime, "additional_artifact_stores"),
    conf.origin("crio", "runtime", "additional_artifact_stores"),
    [],
  );
}

/**
 * The graph-driver options in force. storage.conf turns additionalimagestores and
 * additionallayerstores into `<driver>.imagestore=` and `<driver>.additionallayerstore=` options;
 * CRI-O (since v1.23, pkg/config UpdateFromDropInFile) appends each of its files' storage_option
 * to them and drops duplicates, keeping the last; the --storage-opt flag replaces the whole list.
 */
function effectiveDriverOptions(
  crio: ProcessInfo | undefined,
  crioLists: CrioConfig["storageOptionLists"],
  storageOptions: Table | undefined,
  conf: Layered,
): Setting<string[]> {
  const fromFlags = crio ? flagValues(crio.argv, ["storage-opt"]) : [];
  if (fromFlags.length > 0) return { value: fromFlags, from: "crio flag --storage-opt" };
  const imageStores = stringList(storageOptions, "additionalimagestores") ?? [];
  const layerStores = stringList(storageOptions, "additionallayerstores") ?? [];
  let value = [
    ...imageStores.map((store) => `overlay.imagestore=${store}`),
    ...layerStores.map((store) => `overlay.additionallayerstore=${store}`),
  ];
  for (const list of crioLists) value = withoutEarlierDuplicates([...value, ...list.value]);
  const from =
    crioLists.at(-1)?.file ??
    conf.origin("storage", "options", "additionallayerstores") ??
    conf.origin("storage", "options", "additionalimagestores") ??
    "default";
  return { value, from };
}

/** CRI-O's removeDupStorageOpts: each option once, at its last place. */
function withoutEarlierDuplicates(options: string[]): string[] {
  return options.filter((option, index) => options.lastIndexOf(option) === index);
}

/** Mirrors the overlay driver's option parsing: keys lower-cased, `overlay.`/`overlay2.`/`.` trimmed. */
export function parseDriverOptions(options: string[]): {
  imageStores: string[];
  layerStores: LayerStoreEntry[];
} {
  const imageStores: string[] = [];
  const layerStores: LayerStoreEntry[] = [];
  for (const option of options) {
    const eq = option.indexOf("=");
    if (eq < 0) continue;
    const key = option
      .slice(0, eq)
      .trim()
      .toLowerCase()
      .replace(/^(overlay2?\.|\.)/, "");
    const values = option
      .slice(eq + 1)
      .split(",")
      .map((v) => v.trim())
      .filter(Boolean);
    if (key === "imagestore" || key === "additionalimagestore") imageStores.push(...values);
    if (key === "additionallayerstore") layerStores.push(...values.map(parseLayerStoreEntry));
  }
  return { imageStores, layerStores };
}

export function parseLayerStoreEntry(raw: string): LayerStoreEntry {
  const [storePath = "", ...suffixes] = raw.split(":");
  return {
    raw,
    path: storePath,
    ref: suffixes.includes("ref"),
    unknownOptions: suffixes.filter((suffix) => suffix !== "ref"),
  };
}

async function resolveRegistries(host: Host, env: Record<string, string>, files: ConfigFileFact[]) {
  const layered = new Layered();
  const main = await loadToml(
    host,
    env.CONTAINERS_REGISTRIES_CONF ?? "/etc/containers/registries.conf",
    "registries.conf",
  );
  if (main.fact.status !== "missing") layered.apply(main, files);
  const dropIns = await loadDropIns(host, "/etc/containers/registries.conf.d", "registries.conf.d", "toml");
  if (dropIns.dir) files.push(dropIns.dir);
  for (const file of dropIns.files) layered.apply(file, files);
  const helper = stringValue(layered.data, "additional-layer-store-auth-helper");
  return {
    authHelper: setting<string | null>(helper, layered.origin("additional-layer-store-auth-helper"), null),
  };
}

const CONTAINERD_DEFAULTS = {
  root: "/var/lib/containerd",
  state: "/run/containerd",
  address: "/run/containerd/containerd.sock",
  snapshotter: "overlayfs",
};

async function resolveContainerd(
  host: Host,
  process: ProcessInfo | undefined,
  files: ConfigFileFact[],
): Promise<ContainerdFacts | null> {
  const configPath = (process && flagValue(process.argv, ["config", "c"])) ?? "/etc/containerd/config.toml";
  const main = await loadToml(host, configPath, "containerd config.toml");
  if (!process && main.fact.status === "missing") return null;
  const layered = new Layered();
  layered.apply(main, files);
  // containerd merges imported files section by section over the main file.
  for (const pattern of stringList(main.data, "imports") ?? []) {
    for (const file of await expandImport(host, pattern, configPath)) {
      layered.apply(await loadToml(host, file, "containerd import"), files, mergeContainerdImport);
    }
  }
  const data = layered.data;
  const version = typeof data.version === "number" ? data.version : 1;
  const root = setting(stringValue(data, "root"), layered.origin("root"), CONTAINERD_DEFAULTS.root);
  const snapshotterKey = containerdSnapshotterPath(version);
  const snapshotterValue = stringValue(table(data, ...snapshotterKey.slice(0, -1)), snapshotterKey.at(-1)!);
  const snapshotter = setting(
    snapshotterValue,
    layered.origin(...snapshotterKey),
    CONTAINERD_DEFAULTS.snapshotter,
  );
  const pluginId = `io.containerd.snapshotter.v1.${snapshotter.value}`;
  const rootPath = stringValue(table(data, "plugins", pluginId), "root_path");
  return {
    process: process ? { pid: process.pid, argv: process.argv } : null,
    configPath,
    configVersion: version,
    root,
    state: setting(stringValue(data, "state"), layered.origin("state"), CONTAINERD_DEFAULTS.state),
    address: setting(
      stringValue(table(data, "grpc"), "address"),
      layered.origin("grpc", "address"),
      CONTAINERD_DEFAULTS.address,
    ),
    snapshotter,
    snapshotterRoot: rootPath
      ? { value: rootPath, from: layered.origin("plugins", pluginId, "root_path")! }
      : { value: path.posix.join(root.value, pluginId), from: `derived from root (${root.from})` },
  };
}

function containerdSnapshotterPath(version: number): string[] {
  if (version >= 3) return ["plugins", "io.containerd.cri.v1.images", "snapshotter"];
  if (version === 2) return ["plugins", "io.containerd.grpc.v1.cri", "containerd", "snapshotter"];
  return ["plugins", "cri", "containerd", "snapshotter"];
}

/** Top-level keys are replaced; each plugin's table is replaced whole, as containerd does. */
function mergeContainerdImport(base: Table, imported: Table): Table {
  const out: Table = { ...base, ...imported };
  if (isTable(base.plugins) && isTable(imported.plugins)) {
    out.plugins = { ...(base.plugins as Table), ...(imported.plugins as Table) };
  }
  return out;
}

/** containerd imports are paths or globs, relative to the main config's directory. */
async function expandImport(host: Host, pattern: string, configPath: string): Promise<string[]> {
  const absolute = path.posix.isAbsolute(pattern)
    ? pattern
    : path.posix.join(path.posix.dirname(configPath), pattern);
  const base = path.posix.basename(absolute);
  if (!base.includes("*")) return [absolute];
  const dir = path.posix.dirname(absolute);
  const matcher = new RegExp(`^${base.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`);
  try {
    const names = await readdir((await host.root.resolve(dir)).local);
    return names
      .filter((name) => matcher.test(name))
      .sort()
      .map((name) => path.posix.join(dir, name));
  } catch {
    return [];
  }
}
