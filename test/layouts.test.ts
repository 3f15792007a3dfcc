import { afterEach, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import type { Snapshot } from "../collector/snapshot.js";
import type { FilesystemRoleFact } from "../collector/sources/filesystems.js";
import { requireParts } from "./support/requirements.js";
import {
  baseNode,
  collectTree,
  GRAPHROOT,
  HostTree,
  IMAGESTORE,
  separateRuntimeNode,
  splitImageNode,
  startRuntime,
} from "./support/scenarios.js";

const ready = requireParts("layout tests", ["root", "loop", "xfs"]);

function roleOf(snapshot: Snapshot, name: string): FilesystemRoleFact {
  const facts = snapshot.sources.filesystems;
  if (facts.status !== "ok") throw new Error(`filesystems source: ${facts.status}`);
  const found = facts.facts.roles.find((r) => r.role === name);
  if (!found) throw new Error(`no ${name} role`);
  return found;
}

function serious(snapshot: Snapshot) {
  return runChecks(snapshot).filter((f) => f.severity !== "info");
}

describe.skipIf(!ready)("filesystem layouts on real mounts", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("sees one disk as a single layout, with nothing to warn about", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await startRuntime(tree);
    const snapshot = await collectTree(tree);
    const fs = snapshot.sources.filesystems;
    expect(fs.status).toBe("ok");
    if (fs.status !== "ok") return;
    expect(fs.facts.topology).toBe("single");
    const nodefs = roleOf(snapshot, "nodefs");
    expect(nodefs.mount?.fstype).toBe("ext4");
    expect(nodefs.mount?.mountPoint).toBe("/");
    expect(nodefs.device).toBe(fs.facts.rootDevice);
    expect(nodefs.usage!.totalBytes).toBeGreaterThan(200 * 2 ** 20);
    expect(serious(snapshot).map((f) => f.id)).toEqual([]);
  });

  it("sees an imagestore on its own xfs disk as the KEP-4191 split, with nothing to warn about", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    const snapshot = await collectTree(tree);
    const fs = snapshot.sources.filesystems;
    if (fs.status !== "ok") throw new Error(fs.status);
    expect(fs.facts.topology).toBe("split-image");
    const imagefs = roleOf(snapshot, "imagefs");
    expect(imagefs.path).toBe(IMAGESTORE);
    expect(imagefs.configuredBy).toContain("/etc/crio/crio.conf.d/10-imagestore.conf");
    expect(imagefs.mount?.fstype).toBe("xfs");
    expect(imagefs.isMountPoint).toBe(true);
    expect(imagefs.device).not.toBe(roleOf(snapshot, "containerfs").device);
    expect(serious(snapshot).map((f) => f.id)).toEqual([]);
  });

  it("sees /var/lib/containers on its own disk as a separate runtime filesystem", async () => {
    tree = await HostTree.create();
    await separateRuntimeNode(tree);
    await startRuntime(tree);
    const snapshot = await collectTree(tree);
    if (snapshot.sources.filesystems.status !== "ok") throw new Error("filesystems failed");
    expect(snapshot.sources.filesystems.facts.topology).toBe("separate-runtime");
    expect(roleOf(snapshot, "containerfs").mount?.mountPoint).toBe("/var/lib/containers");
    expect(serious(snapshot).map((f) => f.id)).toEqual([]);
  });

  it("reports an imagestore whose disk is not mounted, naming the fstab line and the mount unit", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree, { imagestoreFs: "unmounted", fstab: true });
    const findings = runChecks(await collectTree(tree));
    const finding = findings.find((f) => f.id === "IMAGESTORE_NOT_MOUNTED");
    expect(finding?.severity).toBe("critical");
    expect(finding?.evidence.join("\n")).toContain("/etc/fstab mounts /dev/vdb (xfs) at /var/lib/images");
    expect(finding?.remediation.commands).toContain("mount /var/lib/images");
    expect(finding?.remediation.commands).toContain("systemctl status var-lib-images.mount");
    expect(findings.map((f) => f.id)).not.toContain("IMAGESTORE_SAME_DEVICE");
  });

  it("reports an imagestore path that does not exist", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write("/etc/crio/crio.conf.d/10-imagestore.conf", `[crio]\nimagestore = "/mnt/images"\n`);
    const finding = runChecks(await collectTree(tree)).find((f) => f.id === "IMAGESTORE_NOT_MOUNTED");
    expect(finding?.evidence).toContain("/mnt/images does not exist");
  });

  it("reports an imagestore on graphroot's disk: the split does nothing", async () => {
    tree = await HostTree.create();
    await separateRuntimeNode(tree);
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\nimagestore = "/var/lib/containers/images"\n`,
    );
    await tree.mkdir("/var/lib/containers/images");
    const findings = runChecks(await collectTree(tree));
    const finding = findings.find((f) => f.id === "IMAGESTORE_SAME_DEVICE");
    expect(finding?.severity).toBe("warning");
    expect(finding?.evidence[0]).toContain("set in /etc/containers/storage.conf");
    expect(findings.map((f) => f.id)).not.toContain("IMAGESTORE_NOT_MOUNTED");
  });

  it("reports an imagestore moved to a new disk in the drop-in while CRI-O still uses the old one", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    const mismatch = (snapshot: Snapshot) => runChecks(snapshot).find((f) => f.id === "CRI_IMAGEFS_MISMATCH");
    expect(mismatch(await collectTree(tree))).toBeUndefined();

    // The images move to a bigger disk; the drop-in is edited, crio is not restarted.
    const moved = "/var/lib/images-ssd";
    await tree.mountLoop(moved, "ext4", { sizeMiB: 64 });
    await tree.write("/etc/crio/crio.conf.d/10-imagestore.conf", `[crio]\nimagestore = "${moved}"\n`);
    const snapshot = await collectTree(tree);
    expect(roleOf(snapshot, "imagefs")).toMatchObject({ path: moved, mount: { fstype: "ext4" } });
    const finding = mismatch(snapshot);
    expect(finding?.severity).toBe("warning");
    expect(finding?.evidence).toEqual([
      "runtime: cri-o 1.31.3 at unix:///var/run/crio/crio.sock",
      `runtime reports its image filesystem at ${IMAGESTORE}/overlay-images; the configuration says ${moved}/overlay-images`,
      `CRI-O /info storage_image is ${IMAGESTORE}; imagestore is configured as ${moved} (/etc/crio/crio.conf.d/10-imagestore.conf)`,
    ]);
  });

  it("reports a read-only image store mount", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree, { imagestoreFs: "ext4" });
    await tree.remountReadOnly(IMAGESTORE);
    const snapshot = await collectTree(tree);
    expect(roleOf(snapshot, "imagefs").mount?.readOnly).toBe(true);
    const finding = runChecks(snapshot).find((f) => f.id === "STORE_READ_ONLY");
    expect(finding?.severity).toBe("critical");
    expect(finding?.subject).toBe(`imagefs ${IMAGESTORE}`);
  });
});
