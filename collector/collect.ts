import os from "node:os";
import { TIMED_OUT, withinMs } from "./deadline.js";
import { Host, type HostOptions } from "./host/host.js";
import { describeError } from "./host/root.js";
import { type Facts, SCHEMA_VERSION, type Snapshot, SOURCE_NAMES, type SourceName } from "./snapshot.js";
import { artifactStoresSource } from "./sources/artifact-stores.js";
import { avcSource } from "./sources/avc.js";
import { criSource } from "./sources/cri.js";
import { crioInspectSource } from "./sources/crio-inspect.js";
import { filesystemsSource } from "./sources/filesystems.js";
import { imageStoresSource } from "./sources/image-stores.js";
import { journalSource } from "./sources/journal.js";
import { kubeletConfigSource } from "./sources/kubelet-config.js";
import { layerStoresSource } from "./sources/layer-stores.js";
import { layersSource } from "./sources/layers.js";
import { podLogsSource } from "./sources/pod-logs.js";
import { rootModelSource } from "./sources/root-model.js";
import { selinuxSource } from "./sources/selinux.js";
import {
  Absent,
  type CollectOptions,
  collectOptions,
  type SourceDefinition,
  type SourceResult,
} from "./sources/source.js";
import { storageConfigSource } from "./sources/storage-config.js";
import { TOOL_NAME, VERSION } from "./version.js";

type AnySource = { [K in SourceName]: SourceDefinition<Facts, K> }[SourceName];

/** Every source, in the order they appear in a snapshot. */
export const SOURCES: AnySource[] = [
  storageConfigSource as SourceDefinition<Facts, "storage-config">,
  kubeletConfigSource as SourceDefinition<Facts, "kubelet-config">,
  filesystemsSource as SourceDefinition<Facts, "filesystems">,
  criSource as SourceDefinition<Facts, "cri">,
  imageStoresSource as SourceDefinition<Facts, "image-stores">,
  artifactStoresSource as SourceDefinition<Facts, "artifact-stores">,
  crioInspectSource as SourceDefinition<Facts, "crio-inspect">,
  podLogsSource as SourceDefinition<Facts, "pod-logs">,
  journalSource as SourceDefinition<Facts, "journal">,
  avcSource as SourceDefinition<Facts, "avc">,
  selinuxSource as SourceDefinition<Facts, "selinux">,
  layersSource as SourceDefinition<Facts, "layers">,
  layerStoresSource as SourceDefinition<Facts, "layer-stores">,
  rootModelSource as SourceDefinition<Facts, "root-model">,
];

export interface CollectRequest extends Partial<CollectOptions> {
  hostRoot: string;
  procRoot?: string;
  /** Node name override; DaemonSets pass spec.nodeName through NODE_NAME. */
  nodeName?: string;
  guardedStatMs?: number;
  /**
   * Called once, as soon as every source but `pending` has its result, with the snapshot so far
   * (the pending sources marked absent, "still collecting"): must-gather starts the steps that
   * need no journal facts while the journal pass ends.
   */
  early?: { pending: SourceName[]; ready(partial: Snapshot): void };
  /**
   * The Host to read through, when the caller reads the same node too (must-gather): one mount
   * table, one path cache and one set of shared reads (auditd's logs, layers.json) for both.
   * It must be a Host of hostRoot, procRoot and guardedStatMs.
   */
  host?: Host;
}

/** Runs every source at once; each has its own deadline and none can stop the others. */
export async function collect(request: CollectRequest): Promise<Snapshot> {
  const hostOptions: HostOptions = {
    root: request.hostRoot,
    procRoot: request.procRoot,
    guardedStatMs: request.guardedStatMs,
  };
  const host = request.host ?? new Host(hostOptions);
  const options = collectOptions(request);
  const results = new Map<SourceName, Promise<SourceResult<unknown>>>();
  const context = {
    host,
    options,
    result: <K extends SourceName>(name: K) => results.get(name)! as Promise<SourceResult<Facts[K]>>,
  };
  for (const source of SOURCES) results.set(source.name, runSource(source, context));
  const node = request.nodeName ?? nodeName(host);
  const snapshotOf = async (names: readonly SourceName[]): Promise<Snapshot> => {
    const sources = Object.fromEntries(
      await Promise.all(
        SOURCE_NAMES.map(
          async (name) => [name, names.includes(name) ? await results.get(name)! : STILL_COLLECTING] as const,
        ),
      ),
    ) as Snapshot["sources"];
    return {
      schemaVersion: SCHEMA_VERSION,
      node: await node,
      collectedAt: new Date().toISOString(),
      tool: { name: TOOL_NAME, version: VERSION },
      host: { root: host.root.root },
      sources,
    };
  };
  const early = request.early;
  if (early) {
    snapshotOf(SOURCE_NAMES.filter((name) => !early.pending.includes(name))).then(early.ready, () => {
      // The whole snapshot fails the same way, and says so.
    });
  }
  return snapshotOf(SOURCE_NAMES);
}

const STILL_COLLECTING = {
  status: "absent",
  durationMs: 0,
  reason: "still collecting",
  facts: null,
} as const;

export async function runSource<K extends SourceName>(
  source: SourceDefinition<Facts, K>,
  context: Parameters<SourceDefinition<Facts, K>["collect"]>[0],
): Promise<SourceResult<Facts[K]>> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    // Microtask hop so a source that throws synchronously is still caught below.
    const outcome = await withinMs(
      Promise.resolve().then(() => source.collect(context)),
      source.deadlineMs,
    );
    if (outcome === TIMED_OUT) {
      return {
        status: "timeout",
        durationMs: elapsed(),
        error: `no result within ${source.deadlineMs} ms`,
        facts: null,
      };
    }
    if (outcome instanceof Absent)
      return { status: "absent", durationMs: elapsed(), reason: outcome.reason, facts: null };
    return { status: "ok", durationMs: elapsed(), facts: outcome };
  } catch (error) {
    return { status: "error", durationMs: elapsed(), error: describeError(error), facts: null };
  }
}

/** The node's name: NODE_NAME (the DaemonSet's downward API), else the host's /etc/hostname. */
export function resolveNodeName(
  request: Pick<CollectRequest, "hostRoot" | "procRoot" | "nodeName">,
): Promise<string> {
  if (request.nodeName) return Promise.resolve(request.nodeName);
  return nodeName(new Host({ root: request.hostRoot, procRoot: request.procRoot }));
}

async function nodeName(host: Host): Promise<string> {
  if (process.env.NODE_NAME) return process.env.NODE_NAME;
  try {
    const name = (await host.readText("/etc/hostname", 4096)).text.trim();
    if (name) return name;
  } catch {
    // fall through
  }
  return host.root.isSystemRoot ? os.hostname() : "unknown";
}
