import { statSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import type { Finding } from "../collector/checks/finding.js";
import { runChecks } from "../collector/checks/registry.js";
import type { Snapshot } from "../collector/snapshot.js";
import type { SelinuxFacts } from "../collector/sources/selinux.js";
import { journalEntry, MACHINE_ID, writeJournalFile } from "./support/journal.js";
import { requireParts } from "./support/requirements.js";
import {
  collectTree,
  GRAPHROOT,
  HostTree,
  IMAGESTORE,
  KUBELET_ROOT,
  splitImageNode,
  startRuntime,
} from "./support/scenarios.js";
import { ctx, labelStore, layoutStore, writeSelinux } from "./support/selinux.js";

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
    expect(finding?.remediation.commands).toContain(
      'mount -o context="system_u:object_r:container_ro_file_t:s0" <source> /mnt/shared',
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
