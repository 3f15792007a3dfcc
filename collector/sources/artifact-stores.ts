import type { StoreAccess } from "./image-stores.js";
import { Absent, type SourceDefinition } from "./source.js";
import type { StorageConfigFacts } from "./storage-config.js";

/**
 * One `[crio.runtime] additional_artifact_stores` entry: a read-only OCI artifact store whose
 * `artifacts/` directory (an OCI image layout: oci-layout, index.json, blobs/) CRI-O reads
 * before its own store.
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

export const artifactStoresSource: SourceDefinition<Inputs, "artifact-stores"> = {
  name: "artifact-stores",
  deadlineMs: 10_000,
  async collect() {
    return new Absent("not implemented yet");
  },
};
