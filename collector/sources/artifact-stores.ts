import type { Host } from "../host/host.js";
import { Absent, type SourceDefinition } from "./source.js";
import { crioOf, type StorageConfigFacts } from "./storage-config.js";
import { type StoreAccess, storeSize, visitStore } from "./store-access.js";

/**
 * One `[crio.runtime] additional_artifact_stores` entry: a read-only OCI artifact store whose
 * `artifacts/` directory (an OCI image layout: oci-layout, index.json, blobs/) CRI-O reads
 * before its own store.
 *
 * What CRI-O does with an entry, read in cri-o/cri-o at f954a17e (v1.36.3; the option came with
 * c608ffc3 "feat: add support for additional read-only artifact stores", 2026-01-08):
 * - pkg/config/config.go RuntimeConfig.Validate: a relative entry is a configuration error,
 *   `additional_artifact_stores entry must be absolute: %q` (CRI-O does not start).
 * - internal/ociartifact/store.go NewStore: for each entry, `filepath.Join(path, "artifacts")`
 *   is opened with go.podman.io/common pkg/libartifact NewArtifactStore; on error it logs
 *   `Skipping additional artifact store %q: %v` and goes on without it. Additional stores are
 *   searched before the main one (`<graphroot>/artifacts`) by List and Inspect, their artifacts
 *   are reported pinned, and a pull is skipped when an additional store has the artifact.
 * - libartifact NewArtifactStore (vendored go.podman.io/common v0.66.2-0.20260126213724-1e46b0756b39,
 *   same code in containers/container-libs common/pkg/libartifact/store.go at f0ddf1a7):
 *   os.MkdirAll(`<path>/artifacts`), then lockfile.GetLockFile(`<path>/artifacts/index.lock`),
 *   which opens the lock O_RDWR|O_CREATE, then writes an empty index.json
 *   (`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":null}`,
 *   Go's nil slice) when none exists. The artifacts are `index.json`'s `manifests`, read with
 *   containers/image oci/layout List (each manifest's org.opencontainers.image.ref.name is its name).
 * - (inference, from that code) so CRI-O creates `artifacts/` itself in a writable store that
 *   lacks it, and a store on a read-only mount is skipped: open(2) with O_RDWR fails with EROFS
 *   even when index.lock exists. Not confirmed by a CRI-O test (its bats tests use writable
 *   directories).
 */
export interface ArtifactStoreFact {
  path: string;
  access: StoreAccess;
  /** `<path>/artifacts` exists and is a directory. */
  hasArtifactsDir: boolean;
  /** `artifacts/index.json`: parsed, and how many manifests it lists. */
  index: { status: "ok" | "missing" | "error"; error?: string; artifacts: number };
}

export interface ArtifactStoresFacts {
  stores: ArtifactStoreFact[];
}

type Inputs = { "storage-config": StorageConfigFacts; "artifact-stores": ArtifactStoresFacts };

/** index.json is one small file per store: a manifest descriptor is ~300 bytes. */
const MAX_INDEX_BYTES = 4 * 1024 * 1024;

export const artifactStoresSource: SourceDefinition<Inputs, "artifact-stores"> = {
  name: "artifact-stores",
  deadlineMs: 10_000,
  async collect({ host, result }) {
    const found = crioOf(await result("storage-config"));
    if (found instanceof Absent) return found;
    const entries = found.crio.additionalArtifactStores.value;
    if (entries.length === 0) return new Absent("no additional_artifact_stores configured");
    // Every entry as written, in order; a path listed twice is looked at once.
    const stores = await Promise.all(
      entries.map((entry) =>
        host
          .shared(`artifact-store:${entry}`, () => inspectArtifactStore(host, entry))
          .then((fact) => structuredClone(fact)),
      ),
    );
    return { stores };
  },
};

async function inspectArtifactStore(host: Host, storePath: string): Promise<ArtifactStoreFact> {
  const visit = await visitStore(host, storePath, {
    stat: ["artifacts"],
    read: [{ path: "artifacts/index.json", maxBytes: MAX_INDEX_BYTES }],
  });
  const fact: ArtifactStoreFact = {
    path: storePath,
    access: visit.access,
    hasArtifactsDir: false,
    index: { status: "error", error: visit.access.error ?? "not read", artifacts: 0 },
  };
  if (visit.access.status === "missing") fact.index = { status: "missing", artifacts: 0 };
  if (visit.access.status !== "ok") return fact;
  const dir = visit.stats[0];
  fact.hasArtifactsDir = dir?.ok === true && dir.fileType === "dir";
  const read = visit.reads[0]!;
  const indexPath = visit.hostPath("artifacts/index.json");
  if (!read.ok) {
    fact.index =
      read.code === "ENOENT" || read.code === "ENOTDIR"
        ? { status: "missing", artifacts: 0 }
        : { status: "error", error: read.message, artifacts: 0 };
  } else {
    fact.index = parseIndex(indexPath, read.text, read.truncated, read.maxBytes);
  }
  visit.access.sizeBytes = await storeSize(host, visit);
  return fact;
}

/** An OCI image index (image-spec image-index.md): an object whose `manifests` is an array. */
export function parseIndex(
  hostPath: string,
  text: string,
  truncated: boolean,
  maxBytes: number,
): ArtifactStoreFact["index"] {
  if (truncated)
    return { status: "error", error: `${hostPath} is larger than ${maxBytes} bytes`, artifacts: 0 };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { status: "error", error: `${hostPath}: ${(error as Error).message}`, artifacts: 0 };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { status: "error", error: `${hostPath}: not a JSON object`, artifacts: 0 };
  }
  const manifests = (parsed as { manifests?: unknown }).manifests;
  // libartifact writes an empty store's index with "manifests": null (a nil Go slice).
  if (manifests === null) return { status: "ok", artifacts: 0 };
  if (!Array.isArray(manifests)) {
    return {
      status: "error",
      error: `${hostPath}: no "manifests" array (not an OCI image index)`,
      artifacts: 0,
    };
  }
  return { status: "ok", artifacts: manifests.length };
}
