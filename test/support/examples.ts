import { statfs } from "node:fs/promises";
import {
  baseNode,
  GRAPHROOT,
  type HostTree,
  IMAGESTORE,
  imagesJson,
  layersJson,
  splitImageNode,
  startRuntime,
  storageConf,
  writeKubeletConfig,
} from "./scenarios.js";

/**
 * The scenarios behind examples/*.json. examples/generate.ts builds each on real mounts and runs
 * `imagefs-doctor collect --out` on it; test/examples.test.ts rebuilds them and checks that the
 * committed snapshots still give the same findings.
 */
export interface Example {
  name: string;
  description: string;
  build(tree: HostTree): Promise<void>;
}

export const EXAMPLES: Example[] = [
  {
    name: "split-image-healthy",
    description: "CRI-O with imagestore on its own xfs disk (KEP-4191), kubelet defaults: no findings.",
    async build(tree) {
      await splitImageNode(tree);
      await startRuntime(tree, { imagestore: IMAGESTORE });
    },
  },
  {
    name: "split-image-misconfigured",
    description:
      "imagestore configured but its disk (listed in /etc/fstab) not mounted, a partial evictionHard, and images " +
      "left in graphroot from before the split.",
    async build(tree) {
      await splitImageNode(tree, { imagestoreFs: "unmounted", fstab: true });
      await startRuntime(tree, { imagestore: IMAGESTORE });
      await writeKubeletConfig(tree, {
        evictionHard: { "memory.available": "200Mi", "nodefs.available": "10%" },
      });
      await tree.write(`${GRAPHROOT}/overlay-images/images.json`, imagesJson(4, "quay.io/example/service"));
      await tree.write(`${GRAPHROOT}/overlay-layers/layers.json`, layersJson(4, 20 * 2 ** 20));
    },
  },
  {
    name: "split-image-disk-full",
    description:
      "The image disk is below imagefs.available (15%) and the kubelet runs with KubeletSeparateDiskGC off.",
    async build(tree) {
      await splitImageNode(tree);
      await startRuntime(tree, { imagestore: IMAGESTORE });
      await writeKubeletConfig(tree, { featureGates: { KubeletSeparateDiskGC: false } });
      const fs = await statfs(tree.local(IMAGESTORE));
      await tree.fill(IMAGESTORE, Math.round(fs.blocks * fs.bsize * 0.11));
    },
  },
  {
    name: "shared-image-cache-broken",
    description:
      "A shared image cache (additionalimagestores) mounted writable whose images lack a layer, a second cache " +
      "whose fstab mount is not mounted, and a CRI-O artifact store without artifacts/.",
    async build(tree) {
      await baseNode(tree);
      await startRuntime(tree);
      const cache = "/var/lib/shared-images";
      const unmounted = "/mnt/image-cache";
      const artifacts = "/var/lib/artifact-cache";
      await tree.mountLoop(cache, "ext4", { sizeMiB: 32 });
      // Three images; the cache holds the layers of the first two only (a partial copy).
      await tree.write(`${cache}/overlay-images/images.json`, imagesJson(3, "quay.io/example/cached"));
      await tree.write(`${cache}/overlay-layers/layers.json`, layersJson(2, 10 * 2 ** 20));
      for (const layer of JSON.parse(layersJson(2, 0)) as { id: string }[])
        await tree.mkdir(`${cache}/overlay/${layer.id}/diff`);
      await tree.mkdir(unmounted);
      await tree.write(
        "/etc/fstab",
        `# <file system> <mount point> <type> <options> <dump> <pass>\nnfs.example.com:/images ${unmounted} nfs4 ro,_netdev 0 0\n`,
      );
      await tree.write("/etc/containers/storage.conf", storageConf({ imageStores: [cache, unmounted] }));
      await tree.mkdir(artifacts);
      await tree.write(
        "/etc/crio/crio.conf.d/20-artifacts.conf",
        `[crio.runtime]\nadditional_artifact_stores = ["${artifacts}"]\n`,
      );
    },
  },
  {
    name: "separate-runtime-inodes",
    description: "/var/lib/containers on its own ext4 disk that is nearly out of inodes.",
    async build(tree) {
      await baseNode(tree);
      await separateRuntimeNodeWithFewInodes(tree);
      await startRuntime(tree);
    },
  },
];

async function separateRuntimeNodeWithFewInodes(tree: HostTree): Promise<void> {
  await tree.mountLoop("/var/lib/containers", "ext4", { sizeMiB: 64, inodes: 4096 });
  for (const dir of ["overlay", "overlay-images", "overlay-layers", "overlay-containers"])
    await tree.mkdir(`${GRAPHROOT}/${dir}`);
  const total = (await statfs(tree.local(GRAPHROOT))).files;
  await tree.exhaustInodes("/var/lib/containers", Math.floor(total * 0.04));
}
