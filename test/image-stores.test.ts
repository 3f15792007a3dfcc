import { afterEach, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import { requireParts } from "./support/requirements.js";
import {
  baseNode,
  collectTree,
  GRAPHROOT,
  HostTree,
  IMAGESTORE,
  imagesJson,
  layersJson,
  splitImageNode,
  startRuntime,
} from "./support/scenarios.js";

const ready = requireParts("image store tests", ["root", "loop", "xfs"]);

describe.skipIf(!ready)("images orphaned by turning imagestore on or off", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("finds images left in graphroot after imagestore was turned on, with their size", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    await tree.write(`${GRAPHROOT}/overlay-images/images.json`, imagesJson(3, "quay.io/old/app"));
    await tree.write(`${GRAPHROOT}/overlay-layers/layers.json`, layersJson(3, 50 * 2 ** 20));
    await tree.write(`${IMAGESTORE}/overlay-images/images.json`, imagesJson(1, "quay.io/new/app"));
    const finding = runChecks(await collectTree(tree)).find((f) => f.id === "IMAGES_ORPHANED");
    expect(finding?.subject).toBe(GRAPHROOT);
    expect(finding?.title).toBe("3 images were left in graphroot when imagestore was turned on");
    expect(finding?.evidence.join("\n")).toContain(
      "3 images, 3 layers (150 MiB), e.g. quay.io/old/app-0:latest",
    );
    expect(finding?.remediation.commands).toContain(
      `CONTAINERS_STORAGE_CONF=/tmp/plain-storage.conf podman --root ${GRAPHROOT} rmi --all`,
    );
  });

  it("finds the old image store on its disk after imagestore was turned off", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await startRuntime(tree);
    await tree.mountLoop(IMAGESTORE, "ext4", { sizeMiB: 64 });
    await tree.write(`${IMAGESTORE}/overlay-images/images.json`, imagesJson(2));
    await tree.write(`${IMAGESTORE}/overlay-layers/layers.json`, layersJson(2, 2 ** 20));
    const snapshot = await collectTree(tree);
    const stores = snapshot.sources["image-stores"];
    expect(stores.status).toBe("ok");
    if (stores.status !== "ok") return;
    expect(stores.facts.searched).toContain(IMAGESTORE);
    const finding = runChecks(snapshot).find((f) => f.id === "IMAGES_ORPHANED");
    expect(finding?.subject).toBe(IMAGESTORE);
    expect(finding?.evidence.join("\n")).toContain(
      "configured now: graphroot /var/lib/containers/storage, imagestore (none)",
    );
  });

  it("is silent when every image is in the store in use", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    await tree.write(`${GRAPHROOT}/overlay-images/images.json`, "[]");
    await tree.write(`${IMAGESTORE}/overlay-images/images.json`, imagesJson(4));
    expect(runChecks(await collectTree(tree)).map((f) => f.id)).not.toContain("IMAGES_ORPHANED");
  });

  it("reports a corrupt images.json instead of failing", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await startRuntime(tree);
    await tree.write(`${GRAPHROOT}/overlay-images/images.json`, '[{"id": "abc", "names": ["x"]');
    const snapshot = await collectTree(tree);
    expect(snapshot.sources["image-stores"].status).toBe("ok");
    const finding = runChecks(snapshot).find((f) => f.id === "STORE_METADATA_UNREADABLE");
    expect(finding?.evidence[0]).toContain(`${GRAPHROOT}/overlay-images/images.json`);
  });
});
