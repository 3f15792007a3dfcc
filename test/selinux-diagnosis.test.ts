import { existsSync, readlinkSync, statSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import type { Finding } from "../collector/checks/finding.js";
import { runChecks } from "../collector/checks/registry.js";
import { progressBar, type ScanIo, selinuxScan } from "../collector/commands/selinux-scan.js";
import { deviceId } from "../collector/host/device.js";
import type { MountFact } from "../collector/host/host.js";
import { Host } from "../collector/host/host.js";
import type { Snapshot } from "../collector/snapshot.js";
import {
  kernelDeviceName,
  mountLabelSupport,
  readSelinuxConfig,
  type SelinuxFacts,
  storageDriver,
} from "../collector/sources/selinux.js";
import type { StorageConfigFacts } from "../collector/sources/storage-config.js";
import { journalEntry, MACHINE_ID, writeJournalFile } from "./support/journal.js";
import { mountBindfs } from "./support/lazy-pull.js";
import { requireParts } from "./support/requirements.js";
import {
  collectTree,
  GRAPHROOT,
  HostTree,
  IMAGESTORE,
  KUBELET_ROOT,
  splitImageNode,
  startRuntime,
  storageConf,
} from "./support/scenarios.js";
import { ctx, FILE_CONTEXTS, labelStore, layoutStore, SUBS, writeSelinux } from "./support/selinux.js";

describe("the mode and policy type in /etc/selinux/config, read as libselinux reads them", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it.each([
    ["SELINUX=permissive\nSELINUXTYPE=targeted\n", "permissive", "targeted"],
    ["SELINUX= Permissive   # set by hand\n", "permissive", "targeted"],
    ["SELINUX=ENFORCING\r\n", "enforcing", "targeted"],
    // Only a line that starts with the exact tag counts, and the first one naming a mode wins.
    [
      "# SELINUX=disabled\n SELINUX=disabled\nselinux=disabled\nSELINUX=permissive\nSELINUX=enforcing\n",
      "permissive",
      "targeted",
    ],
    ["SELINUX=bogus\n", "bogus", "targeted"],
    ["SELINUX=enforcing\nSELINUXTYPE=mls\n", "enforcing", "mls"],
    // SELINUXTYPE= in any case after leading blanks, trailing blanks and CR cut; the last one wins.
    ["  selinuxtype=  mls \t\r\n", null, "mls"],
    ["SELINUXTYPE=mls\nSELINUXTYPE=minimum\n", null, "minimum"],
    ["SELINUXTYPE = mls\n", null, "targeted"],
  ])("reads %j as mode %s, policy %s", async (text, mode, policyType) => {
    tree = await HostTree.create();
    await tree.write("/etc/selinux/config", text);
    const host = new Host({ root: tree.root, procRoot: tree.procRoot });
    expect(await readSelinuxConfig(host)).toEqual({ found: true, mode, policyType });
  });

  it("says so when the file is missing", async () => {
    tree = await HostTree.create();
    const host = new Host({ root: tree.root, procRoot: tree.procRoot });
    expect(await readSelinuxConfig(host)).toEqual({ found: false, mode: null, policyType: "targeted" });
  });
});

describe("whether a network or FUSE mount can hold labels, from its options", () => {
  const mount = (fstype: string, options: string[], superOptions: string[]): MountFact => ({
    mountPoint: "/mnt/shared",
    fstype,
    source: "nfs.example.com:/images",
    readOnly: true,
    options,
    superOptions,
  });

  it("trusts context= (categories and all) and seclabel, and nothing else", () => {
    // mountinfo splits options at commas, also inside the quoted context.
    const context = mount(
      "nfs4",
      ["ro", 'context="system_u:object_r:container_ro_file_t:s0:c1', 'c2"'],
      ["ro"],
    );
    expect(mountLabelSupport(context)).toMatchObject({
      xattrSupported: true,
      context: "system_u:object_r:container_ro_file_t:s0:c1,c2",
    });
    // NFS 4.2 with security_label on an SELinux kernel: the kernel labels each file.
    expect(mountLabelSupport(mount("nfs4", ["ro"], ["ro", "vers=4.2", "seclabel"]))).toMatchObject({
      xattrSupported: true,
      context: null,
    });
    expect(mountLabelSupport(mount("nfs", ["ro"], ["ro", "vers=3"]))).toEqual({
      xattrSupported: false,
      context: null,
      reason: "nfs mounted without context= and without seclabel: its files cannot carry their own labels",
    });
  });
});

describe("the kernel's name of a store's filesystem when sysfs does not name it", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });
  // No such device: neither the tree's nor this machine's /sys/dev/block has it.
  const NO_SYSFS = "4095:1048575";

  it("follows the source's /dev symlinks under the host root, else takes the source's or the type's name", async () => {
    tree = await HostTree.create();
    await tree.mkdir("/dev/mapper");
    await tree.write("/dev/dm-7", "");
    await tree.symlink("../dm-7", "/dev/mapper/vg-images");
    await tree.mkdir("/dev/disk/by-label");
    // An absolute link resolves under the host root too, through another link.
    await tree.symlink("/dev/mapper/vg-images", "/dev/disk/by-label/images");
    const host = new Host({ root: tree.root, procRoot: tree.procRoot });
    expect(existsSync(`/sys/dev/block/${NO_SYSFS}`)).toBe(false);
    expect(await kernelDeviceName(host, NO_SYSFS, "/dev/mapper/vg-images", "xfs")).toBe("dm-7");
    expect(await kernelDeviceName(host, NO_SYSFS, "/dev/disk/by-label/images", "xfs")).toBe("dm-7");
    // Not in the tree's /dev: the source's own name.
    expect(await kernelDeviceName(host, NO_SYSFS, "/dev/mapper/gone", "xfs")).toBe("gone");
    expect(await kernelDeviceName(host, NO_SYSFS, "/dev/sdz9", "ext4")).toBe("sdz9");
    // No block device: the filesystem type's name, as the kernel's default s_id.
    expect(await kernelDeviceName(host, NO_SYSFS, "none", "tmpfs")).toBe("tmpfs");
    expect(await kernelDeviceName(host, NO_SYSFS, "sshfs#me@host:/srv", "fuse.sshfs")).toBe("fuse");
  });
});

describe("the storage driver whose directories are labelled", () => {
  const storage = (value: string | null) =>
    ({ containersStorage: { driver: { value } } }) as unknown as StorageConfigFacts;

  it("is overlay when storage.conf names none or an empty one, as containers/storage reads it", () => {
    expect(storageDriver(undefined)).toBe("overlay");
    expect(storageDriver(storage(null))).toBe("overlay");
    expect(storageDriver(storage(""))).toBe("overlay");
    expect(storageDriver(storage("vfs"))).toBe("vfs");
  });
});

/** A stand-in for a terminal (stderr with isTTY and columns), keeping what was written. */
function fakeStderr(isTTY: boolean, columns = 100): ScanIo["stderr"] & { writes: string[] } {
  const writes: string[] = [];
  return { isTTY, columns, writes, write: (text: string) => writes.push(text) };
}

describe("selinux-scan's progress display", () => {
  it("draws a bar from the estimate at most ten times a second, below 100 % until done, then erases it", () => {
    const stderr = fakeStderr(true);
    let now = 5000;
    const bar = progressBar(stderr, "/var/lib/images", 1000, () => now);
    bar.update(250);
    now += 50;
    bar.update(300); // within 100 ms of the last drawing: skipped
    now += 60;
    bar.update(500);
    now += 100;
    bar.update(1200); // more entries than estimated (hard links): still not 100 %
    bar.done();
    expect(stderr.writes).toEqual([
      `\r[#######-----------------------] 25% 250 of ~1,000 files in /var/lib/images\x1b[K`,
      `\r[###############---------------] 50% 500 of ~1,000 files in /var/lib/images\x1b[K`,
      `\r[#############################-] 99% 1,200 of ~1,000 files in /var/lib/images\x1b[K`,
      "\r\x1b[K",
    ]);
  });

  it("shows a spinner and the count without an estimate, fits the terminal, and erases nothing it did not draw", () => {
    const stderr = fakeStderr(true, 30);
    let now = 0;
    const spinner = progressBar(stderr, "/var/lib/containers/storage", null, () => now);
    spinner.update(4096);
    now += 100;
    spinner.update(8192);
    spinner.done();
    expect(stderr.writes).toEqual([
      "\r| 4,096 files checked in /va…\x1b[K",
      "\r/ 8,192 files checked in /va…\x1b[K",
      "\r\x1b[K",
    ]);
    const idle = fakeStderr(true);
    progressBar(idle, "/srv", 10).done();
    expect(idle.writes).toEqual([]);
    // A pseudo-terminal without a size (script(1), some CI runners) says 0 columns: 80 are assumed.
    const sizeless = fakeStderr(true, 0);
    progressBar(sizeless, "/var/lib/containers/storage", null, () => 0).update(1);
    expect(sizeless.writes).toEqual(["\r| 1 files checked in /var/lib/containers/storage\x1b[K"]);
  });
});

const ready = requireParts("SELinux diagnosis tests", ["root", "loop", "xfs"]);

function selinux(snapshot: Snapshot): SelinuxFacts {
  const result = snapshot.sources.selinux;
  if (result.status !== "ok")
    throw new Error(`selinux source: ${result.status} ${"error" in result ? result.error : ""}`);
  return result.facts;
}

function byId(findings: Finding[], id: string): Finding[] {
  return findings.filter((f) => f.id === id);
}

/** A split CRI-O node whose graphroot and image store are laid out and labelled as the policy wants. */
async function labelledSplitNode(
  tree: HostTree,
  options: Parameters<typeof writeSelinux>[1] = { kernel: 1 },
) {
  await splitImageNode(tree);
  await startRuntime(tree, { imagestore: IMAGESTORE });
  await writeSelinux(tree, options);
  await layoutStore(tree, GRAPHROOT, "aaaa");
  const libc = await layoutStore(tree, IMAGESTORE, "bbbb");
  labelStore(tree, GRAPHROOT);
  labelStore(tree, IMAGESTORE);
  tree.label(KUBELET_ROOT, ctx("container_var_lib_t"));
  return libc;
}

describe.skipIf(!ready)("SELinux labels of split image stores, on real xattrs", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("is silent about a correctly labelled split store with its equivalence rule", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree);
    const snapshot = await collectTree(tree);
    const facts = selinux(snapshot);
    expect(facts.state).toBe("enforcing");
    expect(facts.policy.loaded).toBe(true);
    const imagestore = facts.stores.find((s) => s.role === "imagestore")!;
    expect(imagestore.status).toBe("scanned");
    expect(imagestore.equivalence).toEqual({
      expectedType: "container_ro_file_t",
      via: "/var/lib/images /var/lib/containers/storage (file_contexts.subs line 1)",
    });
    expect(imagestore.scan?.filesChecked).toBeGreaterThan(8);
    expect(
      runChecks(snapshot)
        .filter((f) => f.severity !== "info")
        .map((f) => f.id),
    ).toEqual([]);
  });

  it("reports a store relabelled wholesale to default_t, with semanage and restorecon for its path", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree, { kernel: 1, equivalence: false });
    labelStore(tree, IMAGESTORE, { root: "default_t", below: "default_t" });
    const findings = runChecks(await collectTree(tree));
    const store = byId(findings, "SELINUX_STORE_MISLABELED");
    expect(store.map((f) => f.subject)).toEqual([`imagestore ${IMAGESTORE}`]);
    expect(store[0]?.severity).toBe("critical");
    expect(store[0]?.evidence).toContain(
      `${IMAGESTORE}/overlay: ${ctx("default_t")} — expected type var_lib_t (policy)`,
    );
    const commands = store[0]!.remediation.commands;
    expect(commands[0]).toBe(`semanage fcontext -a -e ${GRAPHROOT} ${IMAGESTORE}`);
    expect(commands).toContain(`restorecon -R -v ${IMAGESTORE}`);
    // Without the equivalence the policy itself expects var_lib_t: the next relabel keeps it broken.
    expect(byId(findings, "SELINUX_EQUIVALENCE_MISSING")[0]?.evidence).toContain(
      `policy label for ${IMAGESTORE}/overlay: var_lib_t; container_ro_file_t is needed`,
    );
  });

  it("counts partial mislabels deep in layers, with samples, and asks restorecon -F for customizable types", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree);
    tree.label(`${IMAGESTORE}/overlay/bbbb/diff/usr/lib64/libc.so.6`, ctx("unlabeled_t"));
    tree.label(`${IMAGESTORE}/overlay/bbbb/diff/usr/bin/sh`, ctx("container_file_t"));
    const findings = runChecks(await collectTree(tree));
    expect(byId(findings, "SELINUX_STORE_MISLABELED")).toEqual([]);
    const files = byId(findings, "SELINUX_LAYER_FILES_MISLABELED");
    expect(files[0]?.title).toBe(`2 files in ${IMAGESTORE} carry the wrong SELinux type`);
    const evidence = files[0]!.evidence.join("\n");
    expect(evidence).toContain(
      `1 × unlabeled_t → container_ro_file_t (policy), e.g. ${IMAGESTORE}/overlay/bbbb/diff/usr/lib64/libc.so.6`,
    );
    expect(files[0]?.remediation.commands).toContain(`restorecon -R -v -F ${IMAGESTORE}`);
  });

  it("judges by graphroot's labels when the node has no policy files", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree, { kernel: 1, policy: false });
    labelStore(tree, IMAGESTORE, { root: "container_var_lib_t", below: "var_lib_t" });
    const snapshot = await collectTree(tree);
    expect(selinux(snapshot).policy.loaded).toBe(false);
    const store = byId(runChecks(snapshot), "SELINUX_STORE_MISLABELED")[0];
    expect(store?.evidence).toContain(
      `${IMAGESTORE}/overlay: ${ctx("var_lib_t")} — expected type container_ro_file_t (as in ${GRAPHROOT}/overlay)`,
    );
  });

  it("keeps label findings informational, and says so, when SELinux is disabled", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree, { kernel: null });
    labelStore(tree, IMAGESTORE, { root: "default_t", below: "default_t" });
    const findings = runChecks(await collectTree(tree));
    expect(byId(findings, "SELINUX_DISABLED")).toHaveLength(1);
    const store = byId(findings, "SELINUX_STORE_MISLABELED")[0];
    expect(store?.severity).toBe("info");
    expect(store?.evidence[0]).toContain("SELinux is disabled on this node");
  });

  it("finds a store on a filesystem without xattr support and gives the context= mount option", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree);
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\n[storage.options]\nadditionalimagestores = ["/mnt/shared"]\n`,
    );
    await tree.mountRamfs("/mnt/shared");
    await tree.mkdir("/mnt/shared/overlay-images");
    const finding = byId(runChecks(await collectTree(tree)), "SELINUX_NO_XATTR_SUPPORT")[0];
    expect(finding?.subject).toBe("additional-image-store /mnt/shared");
    expect(finding?.remediation.commands).toContainEqual(
      expect.stringMatching(
        /^mount -t ramfs -o ro,context="system_u:object_r:container_ro_file_t:s0" ramfs \/mnt\/shared$/,
      ),
    );
  });

  it("maps an AVC denial's dev and ino back to the host file in the store", async () => {
    tree = await HostTree.create();
    const libc = await labelledSplitNode(tree);
    tree.label(libc, ctx("unlabeled_t"));
    const ino = statSync(tree.local(libc)).ino;
    const first = await collectTree(tree);
    const imagefs =
      first.sources.filesystems.status === "ok"
        ? first.sources.filesystems.facts.roles.find((r) => r.role === "imagefs")
        : undefined;
    expect(imagefs?.mount?.fstype).toBe("xfs");
    // The kernel names the filesystem by its s_id: for a loop device, "loopN".
    const source = path.basename(imagefs!.mount!.source);
    await tree.write(
      "/var/log/audit/audit.log",
      `type=AVC msg=audit(1763884800.123:77): avc:  denied  { read } for  pid=4242 comm="nginx" path="/usr/lib64/libc.so.6" dev="${source}" ino=${ino} scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:unlabeled_t:s0 tclass=file permissive=0\n` +
        "type=SYSCALL msg=audit(1763884800.123:77): arch=c000003e syscall=10 success=no exit=-13\n",
    );
    const findings = runChecks(await collectTree(tree));
    const avc = byId(findings, "SELINUX_AVC_STORAGE_DENIALS")[0];
    expect(avc?.severity).toBe("critical");
    expect(avc?.evidence[0]).toContain("1 × container_t denied { read } on file unlabeled_t");
    expect(avc?.evidence).toContain(`dev ${source} ino ${ino} is ${libc} on the host`);
  });

  it("names the pods whose libc cannot be relocated, and how to restart them", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree);
    await tree.write(
      "/var/log/pods/shop_web-1_0b6c1e44-1111-4a4a-9c9c-aaaaaaaaaaaa/nginx/0.log",
      "2026-11-23T08:00:00.200000000Z stderr F nginx: error while loading shared libraries: libc.so.6: cannot apply additional memory protection after relocation: Permission denied\n",
    );
    const finding = byId(runChecks(await collectTree(tree)), "RELOCATION_PERMISSION_DENIED")[0];
    expect(finding?.title).toBe("1 pod fails to load its libraries: Permission denied");
    expect(finding?.remediation.commands).toContain("kubectl delete pod -n shop web-1");
  });

  it("scans a store fully from the command line: selinux-scan [PATH]", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree);
    tree.label(`${IMAGESTORE}/overlay/bbbb/diff/usr/lib64/libc.so.6`, ctx("default_t"));
    const cli = (args: string[]) =>
      execa(
        process.execPath,
        [
          "dist/collector/cli.js",
          "selinux-scan",
          "--host-root",
          tree.root,
          "--proc-root",
          tree.procRoot,
          ...args,
        ],
        {
          reject: false,
        },
      );
    const all = await cli([]);
    expect(all.exitCode).toBe(1);
    expect(all.stdout).toContain(`${IMAGESTORE} (imagestore): scanned`);
    expect(all.stdout).toContain("1 × default_t → container_ro_file_t (policy)");
    expect(all.stdout).toContain(`      ${IMAGESTORE}/overlay/bbbb/diff/usr/lib64/libc.so.6`);
    const one = await cli([GRAPHROOT, "--json"]);
    expect(one.exitCode).toBe(0);
    const [store] = JSON.parse(one.stdout);
    expect(store).toMatchObject({
      role: "path",
      path: GRAPHROOT,
      status: "scanned",
      scan: { mismatches: [] },
    });
  });

  it("names the .subs line that really applies (the last one), and warns when it leads away from graphroot", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree);
    // Both lines match the image store; libselinux tries the last one first.
    await tree.write(
      "/etc/selinux/targeted/contexts/files/file_contexts.subs",
      `${IMAGESTORE} ${GRAPHROOT}\n/var/lib /srv/lib\n`,
    );
    const snapshot = await collectTree(tree);
    const imagestore = selinux(snapshot).stores.find((s) => s.role === "imagestore")!;
    expect(imagestore.equivalence).toEqual({
      expectedType: "default_t",
      via: "/var/lib /srv/lib (file_contexts.subs line 2)",
    });
    const missing = byId(runChecks(snapshot), "SELINUX_EQUIVALENCE_MISSING")[0];
    expect(missing?.evidence).toContain(
      `the lookup of ${IMAGESTORE} goes through /var/lib /srv/lib (file_contexts.subs line 2), which does not lead to ${GRAPHROOT}'s labels`,
    );
    expect(missing?.remediation.commands[0]).toBe(`semanage fcontext -a -e ${GRAPHROOT} ${IMAGESTORE}`);
  });

  it("lowers a mislabel to a warning when SELinux is permissive, and says why", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree, { kernel: 0 });
    labelStore(tree, IMAGESTORE, { root: "default_t", below: "default_t" });
    const snapshot = await collectTree(tree);
    const facts = selinux(snapshot);
    expect(facts.state).toBe("permissive");
    expect(facts.stateEvidence).toEqual([
      "/sys/fs/selinux/enforce reads 0",
      "/etc/selinux/config: SELINUX=permissive SELINUXTYPE=targeted",
    ]);
    const store = byId(runChecks(snapshot), "SELINUX_STORE_MISLABELED")[0];
    expect(store?.severity).toBe("warning");
    expect(store?.evidence[0]).toBe("SELinux is permissive (policy targeted)");
  });

  it("reads the file contexts of the policy SELINUXTYPE names (mls)", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree, { kernel: 1, policy: false });
    await tree.write("/etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=mls\n");
    const files = "/etc/selinux/mls/contexts/files";
    await tree.write(`${files}/file_contexts`, FILE_CONTEXTS);
    await tree.write(`${files}/file_contexts.subs`, SUBS);
    const facts = selinux(await collectTree(tree));
    expect(facts.config).toEqual({ found: true, mode: "enforcing", policyType: "mls" });
    expect(facts.policy).toMatchObject({ type: "mls", loaded: true });
    expect(facts.policy.files[0]).toMatchObject({ path: `${files}/file_contexts`, status: "ok" });
    expect(facts.stores.find((s) => s.role === "imagestore")?.equivalence).toEqual({
      expectedType: "container_ro_file_t",
      via: `${IMAGESTORE} ${GRAPHROOT} (file_contexts.subs line 1)`,
    });
  });

  it("maps an AVC denial to a store whose device mountinfo names otherwise than the kernel (as /dev/mapper/* vs dm-N)", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree);
    const shared = "/var/lib/shared-images";
    await tree.write("/etc/containers/storage.conf", storageConf({ imageStores: [shared] }));
    const device = await mountNamedDevice(tree, shared, "vg-images");
    // The kernel names the filesystem by its disk: ext4 files its sysfs directory under the s_id.
    expect(existsSync(`/sys/fs/ext4/${device.kernelName}`)).toBe(true);
    expect(device.kernelName).not.toBe("vg-images");
    const libc = await layoutStore(tree, shared, "cccc");
    labelStore(tree, shared, { below: "unlabeled_t" });
    const ino = statSync(tree.local(libc)).ino;
    const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
    expect(mountinfo).toContain(` ${tree.local(shared)} rw,relatime - ext4 ${device.node} `);
    await tree.write(
      "/var/log/audit/audit.log",
      `type=AVC msg=audit(1763884800.123:78): avc:  denied  { map } for  pid=4243 comm="nginx" path="/usr/lib64/libc.so.6" dev="${device.kernelName}" ino=${ino} scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:unlabeled_t:s0 tclass=file permissive=0\n`,
    );
    const snapshot = await collectTree(tree);
    expect(selinux(snapshot).avcPaths).toEqual([{ dev: device.kernelName, ino, hostPath: libc }]);
    const avc = byId(runChecks(snapshot), "SELINUX_AVC_STORAGE_DENIALS")[0];
    expect(avc?.evidence).toContain(`dev ${device.kernelName} ino ${ino} is ${libc} on the host`);
  });

  it('maps an AVC denial on a tmpfs store mounted with source "none": the kernel names it tmpfs, its type', async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree);
    const shared = "/var/lib/shared-tmpfs";
    await tree.write("/etc/containers/storage.conf", storageConf({ imageStores: [shared] }));
    await tree.mkdir(shared);
    const target = tree.local(shared);
    await execa("mount", ["-t", "tmpfs", "-o", "size=16m", "none", target]);
    tree.onCleanup(async () => {
      await execa("umount", ["-l", target], { reject: false });
    });
    const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
    expect(mountinfo).toMatch(new RegExp(` ${target} [^ ]+ .*- tmpfs none `));
    const libc = await layoutStore(tree, shared, "dddd");
    labelStore(tree, shared, { below: "unlabeled_t" });
    const ino = statSync(tree.local(libc)).ino;
    await tree.write(
      "/var/log/audit/audit.log",
      `type=AVC msg=audit(1763884800.123:79): avc:  denied  { map } for  pid=4244 comm="nginx" path="/usr/lib64/libc.so.6" dev="tmpfs" ino=${ino} scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:unlabeled_t:s0 tclass=file permissive=0\n`,
    );
    const snapshot = await collectTree(tree);
    expect(selinux(snapshot).avcPaths).toEqual([{ dev: "tmpfs", ino, hostPath: libc }]);
    const avc = byId(runChecks(snapshot), "SELINUX_AVC_STORAGE_DENIALS")[0];
    expect(avc?.evidence).toContain(`dev tmpfs ino ${ino} is ${libc} on the host`);
  });

  it("selinux-scan draws its progress on a terminal only, and takes the driver from the storage configuration", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree);
    // Enough entries for several progress reports (one every 256).
    for (let i = 0; i < 1200; i += 1)
      await tree.write(`${IMAGESTORE}/overlay/bbbb/diff/usr/share/f${i}`, "x");
    labelStore(tree, IMAGESTORE);
    const request = {
      hostRoot: tree.root,
      procRoot: tree.procRoot,
      paths: [],
      compare: "type" as const,
      json: true,
    };
    const scanWith = async (stderr: ReturnType<typeof fakeStderr>) => {
      const stdout: string[] = [];
      const status = await selinuxScan(request, { stdout: { write: (t: string) => stdout.push(t) }, stderr });
      return { status, stores: JSON.parse(stdout.join("")) as SelinuxFacts["stores"] };
    };
    const tty = fakeStderr(true, 120);
    const onTty = await scanWith(tty);
    expect(onTty.status).toBe(0);
    // The image store is its filesystem's root: a bar against the inodes in use there.
    const bar = /^\r\[[#-]{30}\] \d\d?% [\d,]+ of ~[\d,]+ files in \/var\/lib\/images$/;
    const isBar = (w: string) => w.endsWith("\x1b[K") && bar.test(w.slice(0, -3));
    expect(tty.writes.length).toBeGreaterThan(1);
    expect(isBar(tty.writes[0]!)).toBe(true);
    expect(tty.writes.at(-1)).toBe("\r\x1b[K");
    expect(tty.writes.slice(0, -1).every(isBar)).toBe(true);
    const notTty = fakeStderr(false);
    await scanWith(notTty);
    expect(notTty.writes).toEqual([]);
    // A vfs node: the store's vfs* directories are the ones judged.
    const conf = await readFile(tree.local("/etc/containers/storage.conf"), "utf8");
    await tree.write("/etc/containers/storage.conf", conf.replace('driver = "overlay"', 'driver = "vfs"'));
    await tree.mkdir(`${IMAGESTORE}/vfs`);
    tree.label(`${IMAGESTORE}/vfs`, ctx("default_t"));
    const vfs = await scanWith(fakeStderr(false));
    const dirs = vfs.stores.find((s) => s.path === IMAGESTORE)?.dirs.map((d) => d.path);
    expect(dirs).toEqual([IMAGESTORE, `${IMAGESTORE}/vfs`]);
  });
});

/**
 * Mounts a fresh ext4 at hostPath from a block device node named `name`, as a device-mapper disk
 * is mounted from /dev/mapper/<name>: mountinfo names the source by that node, the kernel names
 * the filesystem by the disk (dm-N there, loopN here). This kernel has no device-mapper driver
 * (/dev/mapper/control: "No such device"), so a loop device under another name stands in for it.
 */
async function mountNamedDevice(
  tree: HostTree,
  hostPath: string,
  name: string,
): Promise<{ node: string; kernelName: string }> {
  const image = path.join(tree.scratch, `${name}.img`);
  await execa("truncate", ["-s", "64M", image]);
  await execa("mkfs.ext4", ["-q", "-F", image]);
  const loop = (await execa("losetup", ["--find", "--show", image])).stdout.trim();
  tree.onCleanup(async () => {
    await execa("losetup", ["-d", loop], { reject: false });
  });
  const [major, minor] = deviceId(BigInt(statSync(loop).rdev)).split(":");
  const node = path.join(tree.scratch, "mapper", name);
  await mkdir(path.dirname(node), { recursive: true });
  await execa("mknod", [node, "b", major!, minor!]);
  await tree.mkdir(hostPath);
  await execa("mount", [node, tree.local(hostPath)]);
  // Registered last, so it runs first: unmount, then free the loop device.
  tree.onCleanup(async () => {
    await execa("umount", [tree.local(hostPath)], { reject: false });
  });
  return { node, kernelName: path.basename(readlinkSync(`/sys/dev/block/${major}:${minor}`)) };
}

const fuseReady = requireParts("SELinux FUSE store tests", ["root", "loop", "xfs", "bindfs"]);

describe.skipIf(!fuseReady)("an additional image store on FUSE, never walked", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("judges from its mount options that it cannot hold labels (no context=, no seclabel)", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree);
    const shared = "/mnt/fuse-images";
    await tree.write("/etc/containers/storage.conf", storageConf({ imageStores: [shared] }));
    const source = path.join(tree.scratch, "fuse-source");
    await mkdir(path.join(source, "overlay-images"), { recursive: true });
    const bindfs = await mountBindfs(source, tree.local(shared));
    tree.onCleanup(async () => {
      await execa("fusermount3", ["-uz", bindfs.target], { reject: false });
      await bindfs.process;
    });
    const snapshot = await collectTree(tree);
    const store = selinux(snapshot).stores.find((s) => s.path === shared);
    expect(store).toMatchObject({
      role: "additional-image-store",
      status: "not-scanned",
      fstype: "fuse",
      xattrSupported: false,
      mountContext: null,
      reason: "fuse mounted without context= and without seclabel: its files cannot carry their own labels",
      scan: null,
    });
    const findings = runChecks(snapshot);
    const finding = byId(findings, "SELINUX_NO_XATTR_SUPPORT")[0];
    expect(finding?.subject).toBe(`additional-image-store ${shared}`);
    // mount(8) cannot mount FUSE: unmount it and have its server mount it again with the label.
    expect(finding?.remediation.commands).toEqual(
      expect.arrayContaining([
        `fusermount -u ${shared}`,
        `# start the FUSE server that mounts ${shared} again with -o ro,context="system_u:object_r:container_ro_file_t:s0" added to its options`,
      ]),
    );
    expect(finding?.remediation.commands.filter((c) => /^(u?mount)\b/.test(c))).toEqual([]);
    expect(store?.mountSource).toBe(source);
    // One finding for the store that gives mount-label advice, not a second one with other advice.
    const aboutStore = findings.filter(
      (f) => f.subject?.includes(shared) || f.evidence.some((line) => line.includes(shared)),
    );
    const labelAdvice = aboutStore.filter((f) =>
      [f.remediation.summary, ...f.remediation.commands].some((text) => text.includes("context=")),
    );
    expect(labelAdvice.map((f) => f.id)).toEqual(["SELINUX_NO_XATTR_SUPPORT"]);
  });
});

const journalReady = requireParts("SELinux journal tests", ["root", "loop", "xfs", "journal-remote"]);

describe.skipIf(!journalReady)("relabel failures and AVC records in the node's journal", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("counts relabel failures by reason and reads journald's copy of AVC records", async () => {
    tree = await HostTree.create();
    await labelledSplitNode(tree);
    const minutesAgo = (n: number) => new Date(Date.now() - n * 60_000);
    const avc =
      'AVC avc:  denied  { read } for  pid=4242 comm="nginx" path="/usr/lib64/libc.so.6" dev="vdb" ino=77 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:default_t:s0 tclass=file permissive=0';
    await writeJournalFile(
      tree.local(`/var/log/journal/${MACHINE_ID}/system.journal`),
      [
        journalEntry(minutesAgo(30), {
          SYSLOG_IDENTIFIER: "restorecon",
          MESSAGE: "restorecon: Could not set context for /mnt/nfs/images/overlay:  Operation not supported",
        }),
        journalEntry(minutesAgo(20), {
          SYSLOG_IDENTIFIER: "restorecon",
          MESSAGE:
            "restorecon: Could not set context for /mnt/nfs/images/overlay-images:  Operation not supported",
        }),
        journalEntry(minutesAgo(10), {
          _SYSTEMD_UNIT: "crio.service",
          MESSAGE: 'level=info msg="Pulled image"',
        }),
        journalEntry(minutesAgo(5), {
          _TRANSPORT: "audit",
          _AUDIT_TYPE_NAME: "AVC",
          _AUDIT_ID: "981",
          MESSAGE: avc,
        }),
        // Older than the 24 h lookback: not counted.
        journalEntry(new Date(Date.now() - 48 * 3600_000), {
          SYSLOG_IDENTIFIER: "chcon",
          MESSAGE: "chcon: failed to change context of '/x' to 'y': Operation not supported",
        }),
      ],
      tree.scratch,
    );
    const snapshot = await collectTree(tree);
    const journal = snapshot.sources.journal;
    if (journal.status !== "ok") throw new Error(`journal: ${journal.status}`);
    expect(journal.facts.directories).toEqual(["/var/log/journal"]);
    expect(journal.facts.counts).toEqual([
      expect.objectContaining({
        pack: "selinux-relabel",
        unit: "restorecon",
        reason: "RelabelNotSupported",
        count: 2,
      }),
    ]);
    const findings = runChecks(snapshot);
    const relabel = byId(findings, "SELINUX_RELABEL_FAILED")[0];
    expect(relabel?.evidence[0]).toMatch(/^2 × RelabelNotSupported from restorecon/);
    expect(relabel?.remediation.summary).toContain("context= option");
    const denial = byId(findings, "SELINUX_AVC_STORAGE_DENIALS")[0];
    expect(denial?.evidence[0]).toContain("1 × container_t denied { read } on file default_t");
    expect(denial?.evidence[0]).toContain("nginx: /usr/lib64/libc.so.6 (dev vdb ino 77)");
  });
});
