import type { Snapshot } from "../snapshot.js";
import type { ImageStoreFact } from "../sources/image-stores.js";
import { factsOf } from "../sources/source.js";
import { parseDriverOptions } from "../sources/storage-config.js";
import type { StoreAccess } from "../sources/store-access.js";
import { imageStoreFacts, storageFacts } from "./view.js";

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

/** A setting that differs between the files on disk and what the running CRI-O reports on /config. */
export interface ConfigDifference {
  setting: string;
  /** "<setting>: files say ..., CRI-O runs with ..." */
  text: string;
}

/** The settings of /config that CRI_IMAGEFS_MISMATCH also judges (from ImageFsInfo and /info). */
export const ROOT_SETTINGS: readonly string[] = ["root (graphroot)", "imagestore"];

/**
 * Settings compared between the files on disk and what the running CRI-O reports on /config: all
 * of them (the imagefs_runtime_config_drift gauge counts them); a check that leaves some to another
 * check filters them itself.
 */
export function configDifferenceEntries(snapshot: Snapshot): ConfigDifference[] {
  const inspect = crioInspect(snapshot);
  const storage = storageFacts(snapshot);
  if (inspect?.config.status !== "ok" || !storage) return [];
  const running = inspect.config.value;
  const cs = storage.containersStorage;
  const inEffect = parseDriverOptions(running.storageOption);
  const pairs: [string, unknown, unknown][] = [
    ["root (graphroot)", cs.graphroot.value, running.root],
    ["imagestore", cs.imagestore.value ?? "", running.imagestore],
    ["runroot", cs.runroot.value, running.runroot],
    ["storage_driver", cs.driver.value, running.storageDriver || cs.driver.value],
    // Only the stores of storage_option: the rest (mountopt, ...) is not rebuilt from storage.conf here.
    ["additionalimagestores (storage_option)", cs.additionalImageStores.value, inEffect.imageStores],
    [
      "additionallayerstores (storage_option)",
      cs.additionalLayerStores.value.map((s) => s.raw),
      inEffect.layerStores.map((s) => s.raw),
    ],
  ];
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
    .map(([setting, onDisk, inEffect]) => ({
      setting,
      text: `${setting}: files say ${JSON.stringify(onDisk)}, CRI-O runs with ${JSON.stringify(inEffect)}`,
    }));
}

/** The texts of configDifferenceEntries. */
export function configDifferences(snapshot: Snapshot): string[] {
  return configDifferenceEntries(snapshot).map((d) => d.text);
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
