import type { ArtifactStoresFacts } from "./sources/artifact-stores.js";
import type { AvcFacts } from "./sources/avc.js";
import type { CriFacts } from "./sources/cri.js";
import type { CrioInspectFacts } from "./sources/crio-inspect.js";
import type { FilesystemsFacts } from "./sources/filesystems.js";
import type { ImageStoresFacts } from "./sources/image-stores.js";
import type { JournalFacts } from "./sources/journal.js";
import type { KubeletConfigFacts } from "./sources/kubelet-config.js";
import type { LayerStoresFacts } from "./sources/layer-stores.js";
import type { LayersFacts } from "./sources/layers.js";
import type { PodLogsFacts } from "./sources/pod-logs.js";
import type { RootModelFacts } from "./sources/root-model.js";
import type { SelinuxFacts } from "./sources/selinux.js";
import type { SourceResult } from "./sources/source.js";
import type { StorageConfigFacts } from "./sources/storage-config.js";

/** The facts each source contributes, by source name. */
export interface Facts {
  "storage-config": StorageConfigFacts;
  "kubelet-config": KubeletConfigFacts;
  filesystems: FilesystemsFacts;
  cri: CriFacts;
  "image-stores": ImageStoresFacts;
  "artifact-stores": ArtifactStoresFacts;
  "crio-inspect": CrioInspectFacts;
  "pod-logs": PodLogsFacts;
  journal: JournalFacts;
  avc: AvcFacts;
  selinux: SelinuxFacts;
  layers: LayersFacts;
  "layer-stores": LayerStoresFacts;
  "root-model": RootModelFacts;
}

export type SourceName = keyof Facts;

/** Every source, in the order a snapshot lists them. */
export const SOURCE_NAMES = [
  "storage-config",
  "kubelet-config",
  "filesystems",
  "cri",
  "image-stores",
  "artifact-stores",
  "crio-inspect",
  "pod-logs",
  "journal",
  "avc",
  "selinux",
  "layers",
  "layer-stores",
  "root-model",
] as const satisfies readonly SourceName[];

export const SCHEMA_VERSION = 1;

/**
 * The one contract between collecting and judging: everything checks may look at. It is plain
 * JSON, so a snapshot taken on a node judges the same offline, from a file or a support bundle.
 */
export interface Snapshot {
  schemaVersion: typeof SCHEMA_VERSION;
  node: string;
  collectedAt: string;
  tool: { name: string; version: string };
  host: { root: string };
  sources: { [K in SourceName]: SourceResult<Facts[K]> };
}
