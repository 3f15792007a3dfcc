import type { Snapshot } from "../snapshot.js";
import type { FilesystemRole, FilesystemRoleFact, FilesystemsFacts } from "../sources/filesystems.js";
import { factsOf } from "../sources/source.js";

/** Read-only helpers that checks use to look into a snapshot without repeating null checks. */
export function storageFacts(snapshot: Snapshot) {
  return factsOf(snapshot.sources["storage-config"]);
}

export function kubeletFacts(snapshot: Snapshot) {
  return factsOf(snapshot.sources["kubelet-config"]);
}

export function filesystemFacts(snapshot: Snapshot) {
  return factsOf(snapshot.sources.filesystems);
}

export function criFacts(snapshot: Snapshot) {
  return factsOf(snapshot.sources.cri);
}

export function imageStoreFacts(snapshot: Snapshot) {
  return factsOf(snapshot.sources["image-stores"]);
}

export function role(
  facts: FilesystemsFacts | undefined,
  name: FilesystemRole,
): FilesystemRoleFact | undefined {
  return facts?.roles.find((r) => r.role === name);
}

/** The runtime that answered over CRI wins; else the filesystems source's decision. */
export function runtimeKind(snapshot: Snapshot): "crio" | "containerd" | "unknown" {
  const answered = criFacts(snapshot)?.runtime?.name;
  if (answered === "cri-o") return "crio";
  if (answered === "containerd") return "containerd";
  return filesystemFacts(snapshot)?.runtime.kind ?? "unknown";
}

export function runtimeService(snapshot: Snapshot): string {
  return runtimeKind(snapshot) === "containerd" ? "containerd" : "crio";
}

/** The device where a role's data lands, when known. */
export function deviceOf(facts: FilesystemsFacts | undefined, name: FilesystemRole): string | undefined {
  const fact = role(facts, name);
  return fact?.status === "ok" ? fact.device : undefined;
}

/** The kubelet treats images as on their own disk when imagefs is not on nodefs's device. */
export function layout(facts: FilesystemsFacts | undefined) {
  const node = deviceOf(facts, "nodefs");
  const image = deviceOf(facts, "imagefs");
  const container = deviceOf(facts, "containerfs");
  return {
    dedicatedImageFs: node !== undefined && image !== undefined && node !== image,
    splitContainerFs: image !== undefined && container !== undefined && image !== container,
  };
}

/** Where a mount came from, for evidence lines: "/dev/vdb (xfs) mounted at /var/lib/images". */
export function describeMount(fact: FilesystemRoleFact): string {
  if (!fact.mount) return `device ${fact.device ?? "unknown"}`;
  return `${fact.mount.source} (${fact.mount.fstype}) mounted at ${fact.mount.mountPoint}`;
}

/** systemd's name for the mount unit of a path (systemd-escape --path --suffix=mount). */
export function mountUnitName(mountPoint: string): string {
  const trimmed = mountPoint.replace(/^\/+|\/+$/g, "");
  if (trimmed === "") return "-.mount";
  const escaped = [...Buffer.from(trimmed)]
    .map((byte, index) => {
      const char = String.fromCharCode(byte);
      if (char === "/") return "-";
      if (/[A-Za-z0-9:_]/.test(char) || (char === "." && index > 0)) return char;
      return `\\x${byte.toString(16).padStart(2, "0")}`;
    })
    .join("");
  return `${escaped}.mount`;
}
