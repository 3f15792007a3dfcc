import type { FsUsage } from "../host/fsstat.js";
import type { Host, MountFact } from "../host/host.js";
import { isWithin, unescapeOctal } from "../host/mountinfo.js";
import type { KubeletConfigFacts } from "./kubelet-config.js";
import { Absent, factsOf, type SourceDefinition, type SourceResult } from "./source.js";
import type { ContainersStorageFacts, StorageConfigFacts } from "./storage-config.js";

export type FilesystemRole =
  | "nodefs"
  | "imagefs"
  | "containerfs"
  | "runroot"
  | "additional-image-store"
  | "additional-layer-store";

export type Runtime = "crio" | "containerd" | "unknown";

export interface FilesystemRoleFact {
  role: FilesystemRole;
  /** The configured host path for the role. */
  path: string;
  /** Which setting named the path, e.g. "imagestore (/etc/crio/crio.conf.d/10-split.conf)". */
  configuredBy: string;
  status: "ok" | "missing" | "error" | "unresponsive";
  error?: string;
  /** Host path after following symlinks. */
  resolved?: string;
  /** "major:minor" from stat().dev: two roles share a filesystem exactly when this is equal. */
  device?: string;
  isMountPoint?: boolean;
  mount?: MountFact | null;
  usage?: FsUsage;
}

export type Topology =
  /** nodefs, imagefs and containerfs on one filesystem. */
  | "single"
  /** KEP-4191: images on their own filesystem; writable layers with the kubelet on nodefs. */
  | "split-image"
  /** The whole runtime (images and writable layers) on a filesystem apart from nodefs. */
  | "separate-runtime"
  /** Images, writable layers and nodefs each on their own filesystem: not supported by the kubelet. */
  | "three-way"
  /** Writable layers apart from both nodefs and images, images on nodefs: not supported. */
  | "containerfs-only"
  | "unknown";

export interface FilesystemsFacts {
  runtime: { kind: Runtime; evidence: string };
  roles: FilesystemRoleFact[];
  /** The device of the host's "/" filesystem. */
  rootDevice: string | null;
  topology: Topology;
  /** Lines of /etc/fstab that mount a filesystem at or above a role's path (other than "/"). */
  fstab: FstabEntry[];
  mountTable: { from: string; entries: number; malformedLines: number } | null;
}

export interface FstabEntry {
  spec: string;
  mountPoint: string;
  fstype: string;
  options: string;
}

type Inputs = {
  "storage-config": StorageConfigFacts;
  "kubelet-config": KubeletConfigFacts;
  filesystems: FilesystemsFacts;
};

export const filesystemsSource: SourceDefinition<Inputs, "filesystems"> = {
  name: "filesystems",
  deadlineMs: 10_000,
  async collect({ host, result }) {
    const [storage, kubelet] = await Promise.all([result("storage-config"), result("kubelet-config")]);
    const runtime = decideRuntime(storage, kubelet);
    const wanted = rolesToInspect(runtime.kind, factsOf(storage), factsOf(kubelet));
    const [roles, root, mountTable, fstab] = await Promise.all([
      Promise.all(wanted.map((role) => inspectRole(host, role))),
      host.inspectPath("/"),
      host.mounts().catch(() => null),
      readFstab(host),
    ]);
    return {
      runtime,
      roles,
      rootDevice: root.status === "ok" ? root.device : null,
      topology: topologyOf(roles),
      fstab: fstab.filter(
        (entry) => entry.mountPoint !== "/" && wanted.some((r) => relatedPaths(r.path, entry.mountPoint)),
      ),
      mountTable: mountTable
        ? {
            from: mountTable.from,
            entries: mountTable.entries.length,
            malformedLines: mountTable.malformedLines,
          }
        : null,
    };
  },
};

/**
 * The containers/storage settings a source that reads the stores works from, or why there are
 * none: no storage configuration, or a containerd node, whose images are in its content store.
 */
export function containersStorageOf(
  storage: SourceResult<StorageConfigFacts>,
  kubelet: SourceResult<KubeletConfigFacts>,
): ContainersStorageFacts | Absent {
  const facts = factsOf(storage);
  if (!facts) return new Absent("storage configuration unavailable");
  if (decideRuntime(storage, kubelet).kind === "containerd") {
    return new Absent("containerd keeps images in its content store, not in containers/storage");
  }
  return facts.containersStorage;
}

/** The kubelet's runtime endpoint is the strongest hint; processes and config files come next. */
export function decideRuntime(
  storage: SourceResult<StorageConfigFacts>,
  kubelet: SourceResult<KubeletConfigFacts>,
): FilesystemsFacts["runtime"] {
  const endpoint = factsOf(kubelet)?.containerRuntimeEndpoint;
  if (endpoint && endpoint.from !== "default") {
    if (endpoint.value.includes("crio"))
      return { kind: "crio", evidence: `kubelet runtime endpoint ${endpoint.value}` };
    if (endpoint.value.includes("containerd")) {
      return { kind: "containerd", evidence: `kubelet runtime endpoint ${endpoint.value}` };
    }
  }
  const guess = factsOf(storage)?.runtimeGuess;
  return guess ?? { kind: "unknown", evidence: "storage configuration could not be read" };
}

interface WantedRole {
  role: FilesystemRole;
  path: string;
  configuredBy: string;
}

function rolesToInspect(
  runtime: Runtime,
  storage: StorageConfigFacts | undefined,
  kubelet: KubeletConfigFacts | undefined,
): WantedRole[] {
  const roles: WantedRole[] = [];
  const rootDir = kubelet?.rootDir ?? {
    value: "/var/lib/kubelet",
    from: "default (no kubelet configuration)",
  };
  roles.push({ role: "nodefs", path: rootDir.value, configuredBy: `kubelet root dir (${rootDir.from})` });
  if (runtime === "containerd" && storage?.containerd) {
    const { snapshotterRoot, state } = storage.containerd;
    const by = `containerd snapshotter root (${snapshotterRoot.from})`;
    roles.push({ role: "imagefs", path: snapshotterRoot.value, configuredBy: by });
    roles.push({ role: "containerfs", path: snapshotterRoot.value, configuredBy: by });
    roles.push({ role: "runroot", path: state.value, configuredBy: `containerd state (${state.from})` });
    return roles;
  }
  if (!storage) return roles;
  const cs = storage.containersStorage;
  const imagestore = cs.imagestore.value;
  roles.push(
    imagestore
      ? { role: "imagefs", path: imagestore, configuredBy: `imagestore (${cs.imagestore.from})` }
      : { role: "imagefs", path: cs.graphroot.value, configuredBy: `graphroot (${cs.graphroot.from})` },
  );
  roles.push({
    role: "containerfs",
    path: cs.graphroot.value,
    configuredBy: `graphroot (${cs.graphroot.from})`,
  });
  roles.push({ role: "runroot", path: cs.runroot.value, configuredBy: `runroot (${cs.runroot.from})` });
  for (const store of cs.additionalImageStores.value) {
    if (!store.startsWith("/")) continue; // a relative path is a configuration error, reported by checks
    roles.push({
      role: "additional-image-store",
      path: store,
      configuredBy: `additionalimagestores (${cs.additionalImageStores.from})`,
    });
  }
  for (const store of cs.additionalLayerStores.value) {
    if (!store.path.startsWith("/")) continue; // a relative path is a configuration error, reported by checks
    roles.push({
      role: "additional-layer-store",
      path: store.path,
      configuredBy: `additionallayerstores (${cs.additionalLayerStores.from})`,
    });
  }
  return roles;
}

async function inspectRole(host: Host, wanted: WantedRole): Promise<FilesystemRoleFact> {
  const base = { role: wanted.role, path: wanted.path, configuredBy: wanted.configuredBy };
  const inspection = await host.inspectPath(wanted.path);
  switch (inspection.status) {
    case "ok":
      return {
        ...base,
        status: "ok",
        resolved: inspection.resolved,
        device: inspection.device,
        isMountPoint: inspection.isMountPoint,
        mount: inspection.mount,
        usage: inspection.usage,
      };
    case "missing":
      return { ...base, status: "missing", resolved: inspection.resolved, error: inspection.error };
    case "unresponsive":
      return { ...base, status: "unresponsive", mount: inspection.mount, error: inspection.error };
    default:
      return { ...base, status: "error", error: inspection.error };
  }
}

export function roleFact(facts: FilesystemsFacts, role: FilesystemRole): FilesystemRoleFact | undefined {
  return facts.roles.find((r) => r.role === role);
}

export function topologyOf(roles: FilesystemRoleFact[]): Topology {
  const device = (role: FilesystemRole) => roles.find((r) => r.role === role)?.device;
  const node = device("nodefs");
  const image = device("imagefs");
  const container = device("containerfs");
  if (!node || !image || !container) return "unknown";
  if (image === container) return image === node ? "single" : "separate-runtime";
  if (container === node) return "split-image";
  return image === node ? "containerfs-only" : "three-way";
}

function relatedPaths(rolePath: string, mountPoint: string): boolean {
  return isWithin(rolePath, mountPoint) || isWithin(mountPoint, rolePath);
}

/** Reads /etc/fstab (256 KiB at most); shared with the image and artifact store sources. */
export async function readFstab(host: Host): Promise<FstabEntry[]> {
  let text: string;
  try {
    text = (await host.readText("/etc/fstab", 256 * 1024)).text;
  } catch {
    return [];
  }
  const entries: FstabEntry[] = [];
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) continue;
    const [spec, mountPoint, fstype, options] = trimmed.split(/\s+/);
    if (!spec || !mountPoint?.startsWith("/")) continue;
    entries.push({
      spec,
      mountPoint: unescapeOctal(mountPoint),
      fstype: fstype ?? "",
      options: options ?? "",
    });
  }
  return entries;
}
