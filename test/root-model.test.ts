import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import type { RootModelFacts } from "../collector/sources/root-model.js";
import { requireParts } from "./support/requirements.js";
import { baseNode, collectTree, GRAPHROOT, HostTree } from "./support/scenarios.js";
import { SUBS } from "./support/selinux.js";

const ready = requireParts("image-based root tests", ["root", "loop"]);

/**
 * An ostree/bootc node with a transient root, as ostree-prepare-root builds it: "/" is an
 * overlay whose upper directory lives on a tmpfs under /run (/run/ostree/.private/root/upper), so
 * whatever is written outside /var is gone at the next boot. Built from real mounts: the tree's
 * files go into the overlay's lower directory.
 */
async function transientRootNode(tree: HostTree, options: { varOnItsOwnDisk: boolean }): Promise<void> {
  const lower = path.join(tree.scratch, "deployment");
  const write = async (hostPath: string, content: string) => {
    await mkdir(path.dirname(path.join(lower, hostPath)), { recursive: true });
    await writeFile(path.join(lower, hostPath), content);
  };
  await write("/etc/hostname", "bootc-node\n");
  await write("/run/ostree-booted", "");
  await write(
    "/usr/lib/ostree/prepare-root.conf",
    "# written by the test, in ostree-prepare-root's format\n[composefs]\nenabled = yes\n[root]\ntransient = true\n[etc]\ntransient = true\n",
  );
  await write("/etc/containers/storage.conf", `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\n`);
  await write("/etc/crio/crio.conf", "[crio]\n");
  await write("/etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=targeted\n");
  await write("/etc/selinux/targeted/contexts/files/file_contexts.subs", SUBS);
  await mkdir(path.join(lower, GRAPHROOT), { recursive: true });
  await mkdir(path.join(lower, "var/lib/kubelet"), { recursive: true });
  await tree.mountTmpfs("/run", "size=16m");
  await mkdir(tree.local("/run/ostree/.private/root/upper"), { recursive: true });
  await mkdir(tree.local("/run/ostree/.private/root/work"), { recursive: true });
  const options_ = `lowerdir=${lower},upperdir=${tree.local("/run/ostree/.private/root/upper")},workdir=${tree.local("/run/ostree/.private/root/work")}`;
  await execa("mount", ["-t", "overlay", "-o", options_, "composefs", tree.root]);
  tree.onCleanup(async () => {
    await execa("umount", ["-l", tree.root], { reject: false });
  });
  if (options.varOnItsOwnDisk) {
    await tree.mountLoop("/var", "ext4", { sizeMiB: 64 });
    await tree.mkdir(GRAPHROOT);
    await tree.mkdir("/var/lib/kubelet");
  }
}

describe.skipIf(!ready)("image-based nodes: where runtime state persists", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("sees a composefs transient root and reports the stores and equivalences it would lose", async () => {
    tree = await HostTree.create();
    await transientRootNode(tree, { varOnItsOwnDisk: false });
    const snapshot = await collectTree(tree);
    const result = snapshot.sources["root-model"];
    if (result.status !== "ok") throw new Error(result.status);
    const facts: RootModelFacts = result.facts;
    expect(facts.ostreeBooted).toBe(true);
    expect(facts.prepareRoot).toMatchObject({
      file: "/usr/lib/ostree/prepare-root.conf",
      composefs: "yes",
      rootTransient: true,
      etcTransient: true,
    });
    expect(facts.composefs).toBe(true);
    expect(facts.transientRoot).toBe(true);
    const finding = runChecks(snapshot).find((f) => f.id === "RUNTIME_STATE_NOT_PERSISTENT");
    const evidence = finding?.evidence.join("\n") ?? "";
    expect(evidence).toContain(`containerfs ${GRAPHROOT} is on the transient root`);
    expect(evidence).toContain(
      "the local SELinux equivalences (/var/lib/images → /var/lib/containers/storage) are lost at reboot",
    );
  });

  it("is satisfied when /var, with the stores, is a disk of its own", async () => {
    tree = await HostTree.create();
    await transientRootNode(tree, { varOnItsOwnDisk: true });
    const finding = runChecks(await collectTree(tree)).find((f) => f.id === "RUNTIME_STATE_NOT_PERSISTENT");
    // Only the transient /etc remains to tell about: the stores are safe on /var.
    expect(
      finding?.evidence.filter((line) => line.includes("transient root") || line.includes("volatile")),
    ).toEqual([]);
    expect(finding?.evidence.join("\n")).toContain("/etc is transient");
  });

  it("tells nothing on an ordinary node", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    const snapshot = await collectTree(tree);
    const result = snapshot.sources["root-model"];
    if (result.status !== "ok") throw new Error(result.status);
    expect(result.facts).toMatchObject({ ostreeBooted: false, composefs: false, transientRoot: false });
    expect(runChecks(snapshot).map((f) => f.id)).not.toContain("RUNTIME_STATE_NOT_PERSISTENT");
  });

  it("follows a graphroot through a symlink into a tmpfs and reports it as volatile", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    // The configured path lies on the persistent root; the store itself on a tmpfs a reboot empties.
    await tree.mountTmpfs("/mnt/ram", "size=16m");
    await tree.mkdir("/mnt/ram/storage");
    await tree.mkdir("/var/lib/containers");
    await tree.symlink("/mnt/ram/storage", "/var/lib/containers/ramstore");
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]\ndriver = "overlay"\ngraphroot = "/var/lib/containers/ramstore"\n`,
    );
    const snapshot = await collectTree(tree);
    const finding = runChecks(snapshot).find((f) => f.id === "RUNTIME_STATE_NOT_PERSISTENT");
    expect(finding?.evidence).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^\S+ \/var\/lib\/containers\/ramstore \(→ \/mnt\/ram\/storage\) is on a volatile mount \(\/mnt\/ram\)$/,
        ),
      ]),
    );
  });

  /**
   * An ostree deployment with a persistent (not transient) root: /run/ostree-booted, the stores
   * where storage.conf puts them, and optionally state overlays on /opt and /usr/local mounted as
   * ostree-state-overlay@.service mounts them (overlayfs, upper directory under
   * /var/ostree/state-overlays/<name>/upper, the deployment's directory as lower).
   */
  async function ostreeDeployment(options: {
    graphroot: string;
    stateOverlays: boolean;
    srvInVar?: boolean;
  }) {
    tree = await HostTree.create();
    await baseNode(tree);
    if (options.srvInVar) {
      // Fedora CoreOS/RHCOS: /srv is a symlink into /var (relative, as the image ships it).
      await tree.mkdir("/var/srv/stargz");
      await tree.symlink("var/srv", "/srv");
    }
    await tree.write("/run/ostree-booted", "");
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]\ndriver = "overlay"\ngraphroot = "${options.graphroot}"\n[storage.options]\nadditionallayerstores = ["/var/lib/stargz-store/store:ref"]\n`,
    );
    await tree.mkdir("/var/lib/stargz-store/store");
    await tree.startProcess("/usr/local/bin/stargz-store", [
      "--root=/srv/stargz",
      "/var/lib/stargz-store/store",
    ]);
    for (const dir of options.stateOverlays ? ["opt", "usr/local"] : []) {
      const name = dir.replace("/", "-");
      const lower = path.join(tree.scratch, `deployment-${name}`);
      await mkdir(lower, { recursive: true });
      await tree.mkdir(`/var/ostree/state-overlays/${name}/upper`);
      await tree.mkdir(`/var/ostree/state-overlays/${name}/work`);
      await tree.mkdir(`/${dir}`);
      const overlay = `lowerdir=${lower},upperdir=${tree.local(`/var/ostree/state-overlays/${name}/upper`)},workdir=${tree.local(`/var/ostree/state-overlays/${name}/work`)}`;
      await execa("mount", ["-t", "overlay", "-o", overlay, "overlay", tree.local(`/${dir}`)]);
      tree.onCleanup(async () => {
        await execa("umount", ["-l", tree.local(`/${dir}`)], { reject: false });
      });
    }
    await tree.mkdir(options.graphroot);
    const snapshot = await collectTree(tree);
    const result = snapshot.sources["root-model"];
    if (result.status !== "ok") throw new Error(result.status);
    return {
      facts: result.facts,
      snapshot,
      finding: runChecks(snapshot).find((f) => f.id === "RUNTIME_STATE_NOT_PERSISTENT"),
    };
  }

  it("reports state an ostree update leaves behind: outside /var, in the deployment's own tree", async () => {
    const { facts, finding } = await ostreeDeployment({
      graphroot: "/opt/containers/storage",
      stateOverlays: false,
    });
    expect(facts).toMatchObject({ ostreeBooted: true, transientRoot: false, stateOverlays: [] });
    expect(finding?.evidence).toEqual(
      expect.arrayContaining([
        "ostree-booted node",
        expect.stringMatching(
          /^\S+ \/opt\/containers\/storage is in the ostree deployment's own tree, outside \/var: the next update boots a new deployment without it$/,
        ),
        "stargz-store --root /srv/stargz is in the ostree deployment's own tree, outside /var: the next update boots a new deployment without it",
      ]),
    );
  });

  it("follows a --root through a symlink into /var: /srv -> var/srv is carried over by an update", async () => {
    const { snapshot, finding } = await ostreeDeployment({
      graphroot: "/opt/containers/storage",
      stateOverlays: false,
      srvInVar: true,
    });
    const stores = snapshot.sources["layer-stores"];
    if (stores.status !== "ok") throw new Error(stores.status);
    expect(stores.facts.stores[0]?.process).toMatchObject({
      root: "/srv/stargz",
      rootPlace: { resolved: "/var/srv/stargz", status: "ok", mountPoint: "/" },
    });
    const evidence = finding?.evidence ?? [];
    // The store in /opt is still left behind, so the finding stands; stargz-store's root is not in it.
    expect(evidence).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\S+ \/opt\/containers\/storage is in the ostree deployment's own tree/),
      ]),
    );
    expect(evidence.filter((line) => line.includes("stargz"))).toEqual([]);
  });

  it("sees /opt and /usr/local state overlays, whose state an update carries over", async () => {
    const { facts, finding } = await ostreeDeployment({
      graphroot: "/opt/containers/storage",
      stateOverlays: true,
    });
    expect(facts.stateOverlays.map((o) => o.mountPoint).sort()).toEqual(["/opt", "/usr/local"]);
    // The upper directories as the test mounted them, under the host root (mountinfo's options are local paths).
    expect(
      facts.stateOverlays
        .map((o) => ({ mountPoint: o.mountPoint, upperdir: o.upperdir }))
        .sort((a, b) => a.mountPoint.localeCompare(b.mountPoint)),
    ).toEqual([
      { mountPoint: "/opt", upperdir: tree.local("/var/ostree/state-overlays/opt/upper") },
      { mountPoint: "/usr/local", upperdir: tree.local("/var/ostree/state-overlays/usr-local/upper") },
    ]);
    const evidence = finding?.evidence ?? [];
    // The store in /opt is safe now; stargz-store's --root (/srv) is still left behind.
    expect(evidence.filter((line) => line.includes("/opt/containers/storage"))).toEqual([]);
    expect(evidence).toContain(
      "stargz-store --root /srv/stargz is in the ostree deployment's own tree, outside /var: the next update boots a new deployment without it",
    );
    expect(evidence.filter((line) => line.includes("is a state overlay")).length).toBe(2);
  });
});
