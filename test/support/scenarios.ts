import { createHash } from "node:crypto";
import { collect } from "../../collector/collect.js";
import type { Snapshot } from "../../collector/snapshot.js";
import { type CrioStorage, startFakeCrio } from "./fake-crio.js";
import { HostTree, type LoopFs } from "./host-tree.js";

/**
 * Node layouts built from real mounts, shared by the tests and by examples/generate.ts (which
 * writes the snapshots in examples/). Each starts from a CRI-O node whose "/" is its own ext4.
 */

export const GRAPHROOT = "/var/lib/containers/storage";
export const RUNROOT = "/run/containers/storage";
export const KUBELET_ROOT = "/var/lib/kubelet";
export const IMAGESTORE = "/var/lib/images";

export async function baseNode(
  tree: HostTree,
  options: { rootMiB?: number; rootInodes?: number } = {},
): Promise<void> {
  await tree.mountRootLoop("ext4", { sizeMiB: options.rootMiB ?? 256, inodes: options.rootInodes });
  await tree.write("/etc/hostname", "worker-0\n");
  await tree.mkdir("/run");
  await tree.symlink("../run", "/var/run");
  await tree.write(
    "/etc/containers/storage.conf",
    `# written by the test: storage.conf as CRI-O nodes ship it
[storage]
driver = "overlay"
graphroot = "${GRAPHROOT}"
runroot = "${RUNROOT}"

[storage.options.overlay]
mountopt = "nodev,metacopy=on"
`,
  );
  await tree.write(
    "/etc/crio/crio.conf",
    `[crio]\nlog_dir = "/var/log/crio/pods"\n\n[crio.runtime]\ndefault_runtime = "crun"\n`,
  );
  for (const dir of ["overlay", "overlay-images", "overlay-layers", "overlay-containers"]) {
    await tree.mkdir(`${GRAPHROOT}/${dir}`);
  }
  await tree.mkdir(RUNROOT);
  await tree.mkdir(`${KUBELET_ROOT}/pods`);
  await writeKubeletConfig(tree, {});
}

export async function writeKubeletConfig(tree: HostTree, extra: Record<string, unknown>): Promise<void> {
  const lines = [
    "apiVersion: kubelet.config.k8s.io/v1beta1",
    "kind: KubeletConfiguration",
    "cgroupDriver: systemd",
  ];
  for (const [key, value] of Object.entries(extra)) lines.push(`${key}: ${JSON.stringify(value)}`);
  await tree.write(`${KUBELET_ROOT}/config.yaml`, `${lines.join("\n")}\n`);
}

/** KEP-4191: imagestore on a disk of its own, set in a CRI-O drop-in. */
export async function splitImageNode(
  tree: HostTree,
  options: { imagestoreFs?: LoopFs | "unmounted"; fstab?: boolean; rootInodes?: number } = {},
): Promise<void> {
  await baseNode(tree, { rootInodes: options.rootInodes });
  await tree.write("/etc/crio/crio.conf.d/10-imagestore.conf", `[crio]\nimagestore = "${IMAGESTORE}"\n`);
  const fs = options.imagestoreFs ?? "xfs";
  if (fs !== "unmounted") await tree.mountLoop(IMAGESTORE, fs, { sizeMiB: fs === "xfs" ? 320 : 128 });
  else await tree.mkdir(IMAGESTORE);
  for (const dir of ["overlay", "overlay-images", "overlay-layers"]) await tree.mkdir(`${IMAGESTORE}/${dir}`);
  if (options.fstab) {
    await tree.write(
      "/etc/fstab",
      `# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/vdb ${IMAGESTORE} xfs defaults 0 0\n`,
    );
  }
}

/** The whole runtime on its own disk: /var/lib/containers mounted separately. */
export async function separateRuntimeNode(tree: HostTree): Promise<void> {
  await baseNode(tree);
  await tree.mountLoop("/var/lib/containers", "ext4", { sizeMiB: 128 });
  for (const dir of ["overlay", "overlay-images", "overlay-layers", "overlay-containers"]) {
    await tree.mkdir(`${GRAPHROOT}/${dir}`);
  }
}

/** A storage.conf for the node's graphroot and runroot with additional stores, as written by hand. */
export function storageConf(stores: { imageStores?: string[]; layerStores?: string[] }): string {
  const list = (paths: string[]) => `[${paths.map((p) => JSON.stringify(p)).join(", ")}]`;
  const options = [
    stores.imageStores ? `additionalimagestores = ${list(stores.imageStores)}` : "",
    stores.layerStores ? `additionallayerstores = ${list(stores.layerStores)}` : "",
  ].filter(Boolean);
  return `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\nrunroot = "${RUNROOT}"\n\n[storage.options]\n${options.join("\n")}\n`;
}

/** An images.json with `count` images, in containers/storage's format. */
export function imagesJson(count: number, prefix = "registry.example.com/app"): string {
  const images = Array.from({ length: count }, (_, i) => ({
    id: `${String(i).padStart(2, "0")}${"ab".repeat(31)}`,
    names: [`${prefix}-${i}:latest`],
    layer: `${String(i).padStart(2, "0")}${"cd".repeat(31)}`,
    metadata: "{}",
    created: "2026-11-01T10:00:00Z",
  }));
  return JSON.stringify(images);
}

export function layersJson(count: number, bytesEach: number): string {
  const layers = Array.from({ length: count }, (_, i) => ({
    id: `${String(i).padStart(2, "0")}${"cd".repeat(31)}`,
    created: "2026-11-01T10:00:00Z",
    "compressed-diff-digest": `sha256:${"ef".repeat(32)}`,
    "compressed-size": Math.round(bytesEach / 2),
    "diff-digest": `sha256:${"01".repeat(32)}`,
    "diff-size": bytesEach,
    compression: 2,
  }));
  return JSON.stringify(layers);
}

/** Starts the CRI-O stand-in on the tree's /run/crio/crio.sock, serving the given storage. */
export async function startRuntime(tree: HostTree, storage: Partial<CrioStorage> = {}): Promise<void> {
  const server = await startFakeCrio(tree.local("/run/crio/crio.sock"), { graphroot: GRAPHROOT, ...storage });
  tree.onCleanup(() => server.close());
}

/** Collects a tree with the test's private /proc view and short deadlines. */
export function collectTree(
  tree: HostTree,
  extra: { criEndpoint?: string; guardedStatMs?: number } = {},
): Promise<Snapshot> {
  return collect({
    hostRoot: tree.root,
    procRoot: tree.procRoot,
    criTimeoutMs: 1000,
    guardedStatMs: extra.guardedStatMs ?? 1000,
    criEndpoint: extra.criEndpoint,
  });
}

export { HostTree };

/**
 * The parts every overlay layer directory of `home` has (containers/storage drivers/overlay
 * Create): `link` with its short name, `lower` naming the parent's, `work`, and the short link in
 * `overlay/l`. Returns the directory's host path.
 */
export async function overlayLayerDir(
  tree: HostTree,
  home: string,
  id: string,
  parent: string | null,
): Promise<string> {
  const short = (layer: string) =>
    `L${createHash("sha256").update(layer).digest("hex").slice(0, 25).toUpperCase()}`;
  const dir = `${home}/overlay/${id}`;
  await tree.write(`${dir}/link`, short(id));
  if (parent) await tree.write(`${dir}/lower`, `l/${short(parent)}`);
  await tree.mkdir(`${dir}/work`);
  await tree.symlink(`../${id}/diff`, `${home}/overlay/l/${short(id)}`);
  return dir;
}
