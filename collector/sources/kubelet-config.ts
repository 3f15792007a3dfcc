import path from "node:path";
import type { Host } from "../host/host.js";
import { flagValue, type ProcessInfo } from "../host/proc.js";
import { type EvictionFacts, effectiveEviction } from "../model/eviction.js";
import {
  type ConfigFileFact,
  type LoadedConfig,
  loadDropIns,
  loadYamlOrJson,
  type Table,
} from "./config-files.js";
import { Absent, type SourceDefinition } from "./source.js";
import type { ProcessFact, Setting } from "./storage-config.js";

export interface KubeletConfigFacts {
  process: ProcessFact | null;
  /** How the configuration file was found: the running kubelet's --config, or a well-known path. */
  configFile: { path: string; foundBy: "cmdline" | "well-known path" } | null;
  dropInDir: string | null;
  /** Every file consulted, in the order applied; kubeconfigs met on the way are listed and skipped. */
  files: ConfigFileFact[];
  rootDir: Setting<string>;
  containerRuntimeEndpoint: Setting<string>;
  featureGates: Record<string, boolean>;
  /** KubeletSeparateDiskGC as set, or null when left at its default (on since v1.31, off before). */
  separateDiskGC: Setting<boolean | null>;
  imageGC: { highThresholdPercent: Setting<number>; lowThresholdPercent: Setting<number> };
  eviction: EvictionFacts;
}

const KUBELET_DEFAULTS = {
  rootDir: "/var/lib/kubelet",
  containerRuntimeEndpoint: "unix:///run/containerd/containerd.sock",
  imageGCHigh: 85,
  imageGCLow: 80,
};

/** Where kubelets keep their configuration when no running kubelet tells us (kubeadm, OpenShift). */
const WELL_KNOWN_CONFIGS = [
  { path: "/etc/kubernetes/kubelet.conf", dropInDir: "/etc/openshift/kubelet.conf.d" },
  { path: "/var/lib/kubelet/config.yaml", dropInDir: null },
];

/** The only kind a drop-in may be (mergeKubeletConfigurations refuses any other, and none). */
const DROP_IN_KIND = { apiVersion: "kubelet.config.k8s.io/v1beta1", kind: "KubeletConfiguration" };

/** Why the kubelet refuses a drop-in file that parsed, or undefined when it takes it. */
function refusedDropIn(data: Table): string | undefined {
  const { apiVersion, kind } = data;
  if (apiVersion === undefined || kind === undefined) {
    return `no apiVersion/kind: the kubelet refuses a drop-in without them and does not start (want apiVersion: ${DROP_IN_KIND.apiVersion}, kind: ${DROP_IN_KIND.kind})`;
  }
  if (apiVersion !== DROP_IN_KIND.apiVersion || kind !== DROP_IN_KIND.kind) {
    return `unknown apiVersion/kind ${String(apiVersion)}/${String(kind)}: the kubelet refuses the drop-in and does not start`;
  }
  return undefined;
}

export const kubeletConfigSource: SourceDefinition<
  { "kubelet-config": KubeletConfigFacts },
  "kubelet-config"
> = {
  name: "kubelet-config",
  deadlineMs: 5000,
  async collect({ host }) {
    const kubelet = findKubelet(await host.processes());
    const argv = kubelet?.argv ?? [];
    const files: ConfigFileFact[] = [];
    const located = await locateConfig(host, argv, files);
    if (!kubelet && !located) {
      return new Absent("no running kubelet and no kubelet configuration at a well-known path");
    }
    let merged: Table = located?.loaded.data ?? {};
    const origins = new Map<string, string>();
    if (located?.loaded.data) recordTopLevel(located.loaded.data, located.loaded.fact.path, origins);
    const dropInDir = flagValue(argv, ["config-dir"]) ?? located?.dropInDir ?? null;
    if (dropInDir) {
      // mergeKubeletConfigurations walks the directory (filepath.WalkDir) for *.conf files.
      const dropIns = await loadDropIns(host, dropInDir, "kubelet.conf.d", "yaml-or-json", {
        suffix: ".conf",
        walk: true,
      });
      if (dropIns.dir) files.push(dropIns.dir);
      for (const file of dropIns.files) {
        files.push(file.fact);
        if (!file.data) continue;
        const refused = refusedDropIn(file.data);
        if (refused) {
          // The kubelet does not start with it: there is no effective configuration to merge into.
          file.fact.status = "error";
          file.fact.error = { message: refused };
          continue;
        }
        merged = mergeKubeletConfig(merged, file.data);
        recordTopLevel(file.data, file.fact.path, origins);
      }
    }
    return buildFacts(kubelet, located, dropInDir, files, merged, origins);
  },
};

function findKubelet(processes: ProcessInfo[]): ProcessInfo | undefined {
  return processes.find((p) => {
    const exe = path.basename(p.argv[0] ?? "");
    return exe === "kubelet" || (exe === "hyperkube" && p.argv[1] === "kubelet");
  });
}

async function locateConfig(host: Host, argv: string[], files: ConfigFileFact[]) {
  const fromFlag = flagValue(argv, ["config"]);
  if (fromFlag) {
    const loaded = await loadYamlOrJson(host, fromFlag, "kubelet config");
    files.push(loaded.fact);
    return { loaded, foundBy: "cmdline" as const, dropInDir: null };
  }
  for (const candidate of WELL_KNOWN_CONFIGS) {
    const loaded = await loadYamlOrJson(host, candidate.path, "kubelet config");
    if (loaded.fact.status === "missing") continue;
    if (loaded.data && !isKubeletConfiguration(loaded.data)) {
      // kubeadm's /etc/kubernetes/kubelet.conf is a kubeconfig, not a KubeletConfiguration.
      files.push({ ...loaded.fact, kind: `not a KubeletConfiguration (kind: ${String(loaded.data.kind)})` });
      continue;
    }
    files.push(loaded.fact);
    return { loaded, foundBy: "well-known path" as const, dropInDir: candidate.dropInDir };
  }
  return undefined;
}

function isKubeletConfiguration(data: Table): boolean {
  return data.kind === undefined || data.kind === "KubeletConfiguration";
}

/**
 * Drop-ins merge like this (kubelet-config-directory-merging): structures and maps merge key by
 * key, lists are replaced whole. So an evictionHard map in a drop-in adds to the main file's.
 */
function mergeKubeletConfig(base: Table, over: Table): Table {
  const out: Table = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const existing = out[key];
    out[key] = isPlainObject(existing) && isPlainObject(value) ? mergeKubeletConfig(existing, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Remembers the file that last set each top-level key, and each key of the mergeable maps. */
function recordTopLevel(data: Table, file: string, origins: Map<string, string>): void {
  for (const [key, value] of Object.entries(data)) {
    origins.set(key, file);
    if (isPlainObject(value)) for (const inner of Object.keys(value)) origins.set(`${key}/${inner}`, file);
  }
}

/** "a=true,b=false" (the --feature-gates flag) or a featureGates map. */
function parseFeatureGates(value: unknown): Record<string, boolean> {
  const gates: Record<string, boolean> = {};
  if (typeof value === "string") {
    for (const pair of value.split(",")) {
      const [name, setting] = pair.split("=");
      if (name?.trim()) gates[name.trim()] = setting?.trim().toLowerCase() === "true";
    }
  } else if (isPlainObject(value)) {
    for (const [name, setting] of Object.entries(value)) gates[name] = setting === true || setting === "true";
  }
  return gates;
}

/** The deprecated --eviction-hard flag: "memory.available<100Mi,nodefs.available<10%". */
function parseEvictionFlag(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const statement of value.split(",")) {
    const [signal, quantity] = statement.split("<");
    if (signal?.trim() && quantity !== undefined) out[signal.trim()] = quantity.trim();
  }
  return out;
}

function stringMap(value: unknown): Record<string, string> | null {
  if (!isPlainObject(value)) return null;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
}

function numberSetting(
  config: Table,
  origins: Map<string, string>,
  argv: string[],
  key: string,
  flag: string,
  fallback: number,
): Setting<number> {
  const fromFlag = flagValue(argv, [flag]);
  if (fromFlag !== undefined && Number.isFinite(Number(fromFlag))) {
    return { value: Number(fromFlag), from: `kubelet flag --${flag}` };
  }
  const value = config[key];
  if (typeof value === "number") return { value, from: origins.get(key) ?? "unknown" };
  return { value: fallback, from: "default" };
}

function buildFacts(
  kubelet: ProcessInfo | undefined,
  located: { loaded: LoadedConfig; foundBy: "cmdline" | "well-known path" } | undefined,
  dropInDir: string | null,
  files: ConfigFileFact[],
  config: Table,
  origins: Map<string, string>,
): KubeletConfigFacts {
  const argv = kubelet?.argv ?? [];
  const flagOr = (flag: string, key: string, fallback: string): Setting<string> => {
    const fromFlag = flagValue(argv, [flag]);
    if (fromFlag) return { value: fromFlag, from: `kubelet flag --${flag}` };
    const value = key ? config[key] : undefined;
    if (typeof value === "string" && value) return { value, from: origins.get(key) ?? "unknown" };
    return { value: fallback, from: "default" };
  };

  const featureGates = {
    ...parseFeatureGates(config.featureGates),
    ...parseFeatureGates(flagValue(argv, ["feature-gates"])),
  };
  const gateFrom = flagValue(argv, ["feature-gates"])?.includes("KubeletSeparateDiskGC")
    ? "kubelet flag --feature-gates"
    : (origins.get("featureGates/KubeletSeparateDiskGC") ?? "default");
  const separate = featureGates.KubeletSeparateDiskGC;

  const hardFlag = flagValue(argv, ["eviction-hard"]);
  const softFlag = flagValue(argv, ["eviction-soft"]);
  const eviction = effectiveEviction({
    hard: hardFlag !== undefined ? parseEvictionFlag(hardFlag) : stringMap(config.evictionHard),
    hardFrom: (signal) =>
      hardFlag !== undefined
        ? "kubelet flag --eviction-hard"
        : (origins.get(`evictionHard/${signal}`) ?? "unknown"),
    soft: softFlag !== undefined ? parseEvictionFlag(softFlag) : stringMap(config.evictionSoft),
    softFrom: (signal) =>
      softFlag !== undefined
        ? "kubelet flag --eviction-soft"
        : (origins.get(`evictionSoft/${signal}`) ?? "unknown"),
    softGracePeriod: stringMap(config.evictionSoftGracePeriod) ?? {},
    mergeDefaults: config.mergeDefaultEvictionSettings === true,
  });

  return {
    process: kubelet ? { pid: kubelet.pid, argv: kubelet.argv } : null,
    configFile: located ? { path: located.loaded.fact.path, foundBy: located.foundBy } : null,
    dropInDir,
    files,
    rootDir: flagOr("root-dir", "", KUBELET_DEFAULTS.rootDir),
    containerRuntimeEndpoint: flagOr(
      "container-runtime-endpoint",
      "containerRuntimeEndpoint",
      KUBELET_DEFAULTS.containerRuntimeEndpoint,
    ),
    featureGates,
    separateDiskGC:
      separate === undefined ? { value: null, from: "default" } : { value: separate, from: gateFrom },
    imageGC: {
      highThresholdPercent: numberSetting(
        config,
        origins,
        argv,
        "imageGCHighThresholdPercent",
        "image-gc-high-threshold",
        KUBELET_DEFAULTS.imageGCHigh,
      ),
      lowThresholdPercent: numberSetting(
        config,
        origins,
        argv,
        "imageGCLowThresholdPercent",
        "image-gc-low-threshold",
        KUBELET_DEFAULTS.imageGCLow,
      ),
    },
    eviction,
  };
}
