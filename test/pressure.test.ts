import { statfs } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_CHECK_OPTIONS } from "../collector/checks/finding.js";
import { runChecks } from "../collector/checks/registry.js";
import { requireParts } from "./support/requirements.js";
import {
  baseNode,
  collectTree,
  GRAPHROOT,
  HostTree,
  IMAGESTORE,
  RUNROOT,
  splitImageNode,
  startRuntime,
} from "./support/scenarios.js";

const ready = requireParts("disk pressure tests", ["root", "loop", "xfs"]);

/** Bytes to leave available so that `fraction` of the filesystem's size is free. */
async function leaveFraction(tree: HostTree, hostPath: string, fraction: number): Promise<number> {
  const fs = await statfs(tree.local(hostPath));
  return Math.round(fs.blocks * fs.bsize * fraction);
}

describe.skipIf(!ready)("disk and inode pressure on real filesystems", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("is critical when the image disk is below imagefs.available (15%), and names the image GC state", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    await tree.fill(IMAGESTORE, await leaveFraction(tree, IMAGESTORE, 0.12));
    const findings = runChecks(await collectTree(tree));
    const pressure = findings.filter((f) => f.id === "DISK_PRESSURE_IMMINENT");
    expect(pressure).toHaveLength(1);
    expect(pressure[0]?.severity).toBe("critical");
    expect(pressure[0]?.subject).toMatch(/^imagefs /);
    const evidence = pressure[0]!.evidence.join("\n");
    expect(evidence).toContain("hard threshold imagefs.available < 15%");
    expect(evidence).toContain("threshold met: imagefs.available");
    expect(evidence).toMatch(/image garbage collection is running: 8\d\.\d% used/);
    expect(pressure[0]?.remediation.commands).toContain("crictl rmi --prune");
  });

  it("warns when the headroom above the threshold is under the margin, and not when it is above", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    await tree.fill(IMAGESTORE, await leaveFraction(tree, IMAGESTORE, 0.18));
    const snapshot = await collectTree(tree);
    const warning = runChecks(snapshot).find((f) => f.id === "DISK_PRESSURE_IMMINENT");
    expect(warning?.severity).toBe("warning");
    expect(warning?.evidence.join("\n")).toMatch(/headroom .* is below the 5% margin/);
    // A 2% margin puts 18% free comfortably above the 15% threshold.
    expect(
      runChecks(snapshot, { ...DEFAULT_CHECK_OPTIONS, pressureMarginPercent: 2 }).map((f) => f.id),
    ).not.toContain("DISK_PRESSURE_IMMINENT");
  });

  it("is critical when a filesystem is nearly out of inodes (ext4 with few inodes)", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.mountLoop("/var/lib/containers", "ext4", { sizeMiB: 64, inodes: 2048 });
    await tree.mkdir(`${GRAPHROOT}/overlay-images`);
    await startRuntime(tree);
    const total = (await statfs(tree.local(GRAPHROOT))).files;
    await tree.exhaustInodes("/var/lib/containers", Math.floor(total * 0.03));
    const snapshot = await collectTree(tree);
    const inode = runChecks(snapshot).find((f) => f.id === "INODE_PRESSURE_IMMINENT");
    expect(inode?.severity).toBe("critical");
    // The whole runtime is on its own disk: containerfs follows imagefs's thresholds.
    expect(inode?.subject).toMatch(/^imagefs \+ containerfs /);
    expect(inode?.evidence.join("\n")).toContain("imagefs.inodesFree < 5%");
    expect(runChecks(snapshot).map((f) => f.id)).not.toContain("DISK_PRESSURE_IMMINENT");
  });

  it("judges a filesystem no threshold watches (the runroot tmpfs) against being full", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.mountTmpfs(RUNROOT, "size=4m");
    await startRuntime(tree);
    await tree.fill(RUNROOT, 16 * 1024);
    const finding = runChecks(await collectTree(tree)).find((f) => f.id === "DISK_PRESSURE_IMMINENT");
    expect(finding?.severity).toBe("critical");
    expect(finding?.title).toBe("The runroot filesystem is out of space");
    expect(finding?.evidence).toContain(
      "no eviction threshold watches this filesystem; it is judged against being full",
    );
  });
});
