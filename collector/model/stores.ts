import type { Snapshot } from "../snapshot.js";
import type { ImageStoreFact } from "../sources/image-stores.js";
import { factsOf } from "../sources/source.js";
import { parseDriverOptions } from "../sources/storage-config.js";
import type { StoreAccess } from "../sources/store-access.js";
import { criFacts, imageStoreFacts, storageFacts } from "./view.js";

/** Read-only views of the additional image and artifact stores, shared by checks and metrics. */
export function additionalImageStores(snapshot: Snapshot): (ImageStoreFact & { access: StoreAccess })[] {
  return (imageStoreFacts(snapshot)?.stores ?? []).filter(
    (s): s is ImageStoreFact & { access: StoreAccess } => s.role === "additional-image-store" && !!s.access,
  );
}

export function artifactStores(snapshot: Snapshot) {
  return factsOf(snapshot.sources["artifact-stores"])?.stores ?? [];
}

export function crioInspect(snapshot: Snapshot) {
  return factsOf(snapshot.sources["crio-inspect"]);
}

/** Settings compared between the files on disk and what the running CRI-O reports on /config. */
export function configDifferences(snapshot: Snapshot): string[] {
  const inspect = crioInspect(snapshot);
  const storage = storageFacts(snapshot);
  if (inspect?.config.status !== "ok" || !storage) return [];
  const running = inspect.config.value;
  const cs = storage.containersStorage;
  const inEffect = parseDriverOptions(running.storageOption);
  const pairs: [string, unknown, unknown][] = [];
  // When the CRI answered, CRI_IMAGEFS_MISMATCH judges root and imagestore from ImageFsInfo and
  // /info, with its own advice: one edit, one finding.
  if (!criFacts(snapshot)?.answeredBy) {
    pairs.push(
      ["root (graphroot)", cs.graphroot.value, running.root],
      ["imagestore", cs.imagestore.value ?? "", running.imagestore],
    );
  }
  pairs.push(
    ["runroot", cs.runroot.value, running.runroot],
    ["storage_driver", cs.driver.value, running.storageDriver || cs.driver.value],
    // Only the stores of storage_option: the rest (mountopt, ...) is not rebuilt from storage.conf here.
    ["additionalimagestores (storage_option)", cs.additionalImageStores.value, inEffect.imageStores],
    [
      "additionallayerstores (storage_option)",
      cs.additionalLayerStores.value.map((s) => s.raw),
      inEffect.layerStores.map((s) => s.raw),
    ],
  );
  if (storage.crio) {
    pairs.push(
      [
        "additional_artifact_stores",
        storage.crio.additionalArtifactStores.value,
        running.additionalArtifactStores,
      ],
      ["clean_shutdown_file", storage.crio.cleanShutdownFile.value, running.cleanShutdownFile],
    );
  }
  return pairs
    .filter(([, onDisk, inEffect]) => JSON.stringify(onDisk) !== JSON.stringify(inEffect))
    .map(
      ([key, onDisk, inEffect]) =>
        `${key}: files say ${JSON.stringify(onDisk)}, CRI-O runs with ${JSON.stringify(inEffect)}`,
    );
}

/**
 * The stores a store check judges: each absolute entry once, at its first place. A duplicated or
 * relative entry is STORE_LIST_INVALID's (the runtime refuses a relative one outright), not a
 * second problem with other advice.
 */
export function storesToJudge<T extends { path: string }>(stores: T[]): T[] {
  return stores.filter(
    (store, index) => store.path.startsWith("/") && stores.findIndex((s) => s.path === store.path) === index,
  );
}
