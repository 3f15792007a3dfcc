import { formatBytes } from "../model/quantity.js";
import { imageStoreFacts, runtimeService, storageFacts } from "../model/view.js";
import type { ImageStoreFact } from "../sources/image-stores.js";
import type { CheckDefinition, FindingDraft } from "./finding.js";

const AREA = "image stores";

function describeStore(store: ImageStoreFact): string {
  const names = store.images.names.length > 0 ? `, e.g. ${store.images.names.slice(0, 3).join(", ")}` : "";
  return `${store.path}: ${store.images.count} images, ${store.layers.count} layers (${formatBytes(store.layers.bytes)})${names}`;
}

const imagesOrphaned: CheckDefinition = {
  id: "IMAGES_ORPHANED",
  severity: "warning",
  title: "Images are left in a store the runtime no longer writes to",
  area: AREA,
  description:
    "Turning imagestore on leaves the images already in graphroot behind: containers/storage mounts graphroot as a " +
    "read-only additional store, so they can be used but never garbage-collected, and they keep using the " +
    "writable-layer disk. Turning imagestore off (or moving it) hides the old store entirely: its images are pulled " +
    "again and the old disk's space is wasted.",
  confirm: ["crictl imagefsinfo", "ls /var/lib/containers/storage/overlay-images"],
  run(snapshot) {
    const facts = imageStoreFacts(snapshot);
    const cs = storageFacts(snapshot)?.containersStorage;
    if (!facts || !cs) return [];
    const drafts: FindingDraft[] = [];
    const service = runtimeService(snapshot);
    const graphroot = facts.stores.find((s) => s.role === "graphroot");
    if (cs.imagestore.value && graphroot && graphroot.images.count > 0) {
      drafts.push({
        subject: graphroot.path,
        title: `${graphroot.images.count} images were left in graphroot when imagestore was turned on`,
        evidence: [
          `imagestore = ${cs.imagestore.value} (${cs.imagestore.from}); new images go there`,
          `graphroot still holds ${describeStore(graphroot)}`,
          "the runtime sees graphroot as a read-only additional image store: these images cannot be removed by image garbage collection",
        ],
        remediation: {
          summary: `When no container uses them, remove them with a storage configuration that has no imagestore, with ${service} stopped.`,
          commands: [
            `systemctl stop ${service}`,
            `printf '[storage]\\ndriver = "${facts.driver}"\\n' > /tmp/plain-storage.conf`,
            `CONTAINERS_STORAGE_CONF=/tmp/plain-storage.conf podman --root ${graphroot.path} images`,
            `CONTAINERS_STORAGE_CONF=/tmp/plain-storage.conf podman --root ${graphroot.path} rmi --all`,
            `systemctl start ${service}`,
          ],
        },
      });
    }
    for (const store of facts.stores.filter((s) => s.role === "unconfigured" && s.images.count > 0)) {
      drafts.push({
        subject: store.path,
        title: `${store.images.count} images sit in an image store that is no longer configured`,
        evidence: [
          describeStore(store),
          `configured now: graphroot ${cs.graphroot.value}, imagestore ${cs.imagestore.value ?? "(none)"} (${cs.imagestore.from})`,
          "the runtime does not read this store: its images are pulled again into the current store",
        ],
        remediation: {
          summary: `Either point imagestore back at ${store.path} and restart ${service}, or delete the old store to reclaim its space.`,
          commands: [
            `du -sh ${store.path}`,
            `# to reuse it: imagestore = "${store.path}" in the [crio] table, then systemctl restart ${service}`,
          ],
        },
      });
    }
    return drafts;
  },
};

const metadataUnreadable: CheckDefinition = {
  id: "STORE_METADATA_UNREADABLE",
  severity: "warning",
  title: "An image store's metadata file cannot be parsed",
  area: AREA,
  description:
    "images.json or layers.json of a containers/storage store is malformed or unreadable. containers/storage refuses " +
    "to load such a store: pulls and container start-up fail until it is repaired.",
  confirm: [
    "jq length /var/lib/containers/storage/overlay-images/images.json",
    "journalctl -u crio -b | grep -iE 'images.json|layers.json'",
  ],
  run(snapshot) {
    const facts = imageStoreFacts(snapshot);
    const drafts: FindingDraft[] = [];
    for (const store of facts?.stores ?? []) {
      // An additional image store that cannot be reached is IMAGE_STORE_UNAVAILABLE's.
      if (store.access && store.access.status !== "ok") continue;
      for (const file of [store.images, store.layers]) {
        if (file.status !== "error") continue;
        drafts.push({
          subject: store.path,
          evidence: [file.error ?? `unreadable metadata in ${store.path}`],
          remediation: {
            summary:
              "Let CRI-O check and repair its storage (CRI-O 1.31 and later), or wipe the store and pull again.",
            commands: [
              `systemctl stop ${runtimeService(snapshot)}`,
              "crio check --repair",
              `systemctl start ${runtimeService(snapshot)}`,
            ],
          },
        });
      }
    }
    return drafts;
  },
};

export const imageChecks: CheckDefinition[] = [imagesOrphaned, metadataUnreadable];
