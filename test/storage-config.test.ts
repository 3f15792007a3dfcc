import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import type { Snapshot } from "../collector/snapshot.js";
import type { StorageConfigFacts } from "../collector/sources/storage-config.js";
import { parseDriverOptions } from "../collector/sources/storage-config.js";
import { requireParts } from "./support/requirements.js";
import { baseNode, collectTree, GRAPHROOT, HostTree } from "./support/scenarios.js";

const ready = requireParts("storage configuration tests", ["root", "loop"]);

function storage(snapshot: Snapshot): StorageConfigFacts {
  const result = snapshot.sources["storage-config"];
  if (result.status !== "ok") throw new Error(`storage-config: ${result.status}`);
  return result.facts;
}

describe.skipIf(!ready)("storage configuration", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("applies crio.conf, then crio.conf.d in lexical order, over storage.conf, and says where each value came from", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write(
      "/etc/crio/crio.conf",
      `[crio]\nroot = "/var/lib/from-crio-conf"\nrunroot = "/run/from-crio-conf"\n`,
    );
    await tree.write(
      "/etc/crio/crio.conf.d/10-first.conf",
      `[crio]\nroot = "/var/lib/from-10"\nimagestore = "/var/lib/images-10"\n`,
    );
    await tree.write("/etc/crio/crio.conf.d/20-second.conf", `[crio]\nimagestore = "/var/lib/images-20"\n`);
    await tree.write("/etc/crio/crio.conf.d/README", "not a drop-in: no .conf suffix\n");
    const cs = storage(await collectTree(tree)).containersStorage;
    expect(cs.graphroot).toEqual({ value: "/var/lib/from-10", from: "/etc/crio/crio.conf.d/10-first.conf" });
    expect(cs.runroot).toEqual({ value: "/run/from-crio-conf", from: "/etc/crio/crio.conf" });
    expect(cs.imagestore).toEqual({
      value: "/var/lib/images-20",
      from: "/etc/crio/crio.conf.d/20-second.conf",
    });
    expect(cs.driver).toEqual({ value: "overlay", from: "/etc/containers/storage.conf" });
  });

  it("reads stores from storage.conf options; CRI-O appends each file's storage_option to them", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\n[storage.options]\nadditionalimagestores = ["/mnt/shared"]\nadditionallayerstores = ["/var/lib/stargz-store/store:ref"]\n[storage.options.pull_options]\nenable_partial_images = "true"\n`,
    );
    let cs = storage(await collectTree(tree)).containersStorage;
    expect(cs.additionalImageStores.value).toEqual(["/mnt/shared"]);
    expect(cs.additionalLayerStores.value).toEqual([
      {
        raw: "/var/lib/stargz-store/store:ref",
        path: "/var/lib/stargz-store/store",
        ref: true,
        unknownOptions: [],
      },
    ]);
    expect(cs.pullOptions.value).toEqual({ enable_partial_images: "true" });

    // cri-o pkg/config UpdateFromDropInFile (since v1.23): storage.conf's options, then each
    // file's storage_option, each option once at its last place.
    await tree.write(
      "/etc/crio/crio.conf.d/50-opts.conf",
      `[crio]\nstorage_option = ["overlay.mountopt=nodev", "overlay.imagestore=/mnt/shared"]\n`,
    );
    await tree.write(
      "/etc/crio/crio.conf.d/60-cache.conf",
      `[crio]\nstorage_option = ["overlay.imagestore=/mnt/cache2"]\n`,
    );
    cs = storage(await collectTree(tree)).containersStorage;
    expect(cs.driverOptions).toEqual({
      value: [
        "overlay.additionallayerstore=/var/lib/stargz-store/store:ref",
        "overlay.mountopt=nodev",
        "overlay.imagestore=/mnt/shared",
        "overlay.imagestore=/mnt/cache2",
      ],
      from: "/etc/crio/crio.conf.d/60-cache.conf",
    });
    expect(cs.additionalImageStores.value).toEqual(["/mnt/shared", "/mnt/cache2"]);
    expect(cs.additionalLayerStores.value.map((s) => s.path)).toEqual(["/var/lib/stargz-store/store"]);
  });

  it("parses driver options the way the overlay driver does", () => {
    const parsed = parseDriverOptions([
      "Overlay.ImageStore=/a,/b",
      "overlay2.additionalimagestore=/c",
      ".additionallayerstore=/als:ref:bogus",
      "overlay.mountopt=nodev",
    ]);
    expect(parsed.imageStores).toEqual(["/a", "/b", "/c"]);
    expect(parsed.layerStores).toEqual([
      { raw: "/als:ref:bogus", path: "/als", ref: true, unknownOptions: ["bogus"] },
    ]);
  });

  it("follows the running CRI-O: its --config-dir, --root flag and CONTAINERS_STORAGE_CONF environment", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write("/etc/custom/storage.conf", `[storage]\ndriver = "overlay"\nrunroot = "/run/custom"\n`);
    await tree.write("/opt/crio.d/10-x.conf", `[crio]\nimagestore = "/var/lib/opt-images"\n`);
    await tree.startProcess("crio", ["--config-dir=/opt/crio.d", "--root", "/var/lib/flag-root"], {
      CONTAINERS_STORAGE_CONF: "/etc/custom/storage.conf",
      REGISTRY_PASSWORD: "hunter2",
    });
    const snapshot = await collectTree(tree);
    const facts = storage(snapshot);
    expect(facts.runtimeGuess.kind).toBe("crio");
    expect(facts.containersStorage.storageConf).toBe("/etc/custom/storage.conf");
    expect(facts.containersStorage.runroot).toEqual({
      value: "/run/custom",
      from: "/etc/custom/storage.conf",
    });
    expect(facts.containersStorage.graphroot).toEqual({
      value: "/var/lib/flag-root",
      from: "crio flag --root",
    });
    expect(facts.containersStorage.imagestore.value).toBe("/var/lib/opt-images");
    // Only the named variables are read from the environment: no secret reaches the snapshot.
    expect(JSON.stringify(snapshot)).not.toContain("hunter2");
  });

  it("reports a malformed drop-in with its file and line, and keeps every other setting", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write("/etc/crio/crio.conf.d/10-good.conf", `[crio]\nimagestore = "/var/lib/images"\n`);
    await tree.write("/etc/crio/crio.conf.d/20-bad.conf", `[crio]\n# a comment\nroot = "/var/lib/x\n`);
    const snapshot = await collectTree(tree);
    const facts = storage(snapshot);
    const bad = facts.files.find((f) => f.path === "/etc/crio/crio.conf.d/20-bad.conf");
    expect(bad?.status).toBe("error");
    expect(bad?.error?.line).toBe(3);
    expect(facts.containersStorage.imagestore.value).toBe("/var/lib/images");
    const finding = runChecks(snapshot).find((f) => f.id === "CONFIG_PARSE_ERROR");
    expect(finding?.evidence[0]).toMatch(/^\/etc\/crio\/crio\.conf\.d\/20-bad\.conf:3:\d+: /);
    expect(finding?.remediation.commands).toContain("systemctl restart crio");
  });

  it("reports a symlink loop and a symlink to a directory named like drop-ins, and applies the other drop-ins", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write("/etc/crio/crio.conf.d/05-good.conf", `[crio]\nimagestore = "/var/lib/images"\n`);
    // A link to itself: opening it fails with ELOOP.
    await tree.symlink("10-loop.conf", "/etc/crio/crio.conf.d/10-loop.conf");
    // A link to a directory: not a regular file (a walk does not follow links, so it is not entered).
    await tree.write("/etc/crio/elsewhere/30-hidden.conf", `[crio]\nroot = "/var/lib/hidden"\n`);
    await tree.symlink("../elsewhere", "/etc/crio/crio.conf.d/15-x.conf");
    await tree.write("/etc/crio/crio.conf.d/20-good.conf", `[crio]\nlog_dir = "/var/log/crio/pods"\n`);
    const snapshot = await collectTree(tree);
    const facts = storage(snapshot);
    const file = (name: string) => facts.files.find((f) => f.path === `/etc/crio/crio.conf.d/${name}`);
    expect(file("10-loop.conf")?.status).toBe("error");
    expect(file("10-loop.conf")?.error?.message).toMatch(/ELOOP/);
    expect(file("15-x.conf")?.status).toBe("error");
    expect(file("15-x.conf")?.error?.message).toMatch(/not a regular file/);
    expect(facts.files.map((f) => f.path)).not.toContain("/etc/crio/crio.conf.d/15-x.conf/30-hidden.conf");
    expect(facts.containersStorage.imagestore).toEqual({
      value: "/var/lib/images",
      from: "/etc/crio/crio.conf.d/05-good.conf",
    });
    expect(facts.containersStorage.graphroot.value).not.toBe("/var/lib/hidden");
    expect(file("20-good.conf")?.status).toBe("ok");
    // One CONFIG_PARSE_ERROR per file, each with its reason.
    const findings = runChecks(snapshot).filter((f) => f.id === "CONFIG_PARSE_ERROR");
    expect(findings.map((f) => f.subject)).toEqual([
      "/etc/crio/crio.conf.d/10-loop.conf",
      "/etc/crio/crio.conf.d/15-x.conf",
    ]);
    expect(findings[0]?.evidence[0]).toMatch(/^\/etc\/crio\/crio\.conf\.d\/10-loop\.conf: ELOOP/);
    expect(findings[1]?.evidence[0]).toMatch(/^\/etc\/crio\/crio\.conf\.d\/15-x\.conf: .*not a regular file/);
    expect(findings[1]?.remediation.commands).toContain("systemctl restart crio");
  });

  it("ignores keys and tables it does not know in storage.conf and crio.conf, as the runtime does", async () => {
    // containers/storage warns "Failed to decode the keys ..." and CRI-O logs them at debug level
    // (toml meta.Undecoded()); neither refuses the file, so neither may this: the known settings
    // next to the unknown ones apply, and nothing reports a parse error.
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]\ndriver = "overlay"\ngraphroot = "/var/lib/graph"\nfuture_key = "x"\n\n[storage.options.future_driver]\nsetting = true\n\n[experimental]\nflag = 1\n`,
    );
    await tree.write(
      "/etc/crio/crio.conf",
      `[crio]\nsome_future_key = "y"\nimagestore = "/var/lib/images"\n\n[crio.future_table]\nvalue = [1, 2]\n`,
    );
    const snapshot = await collectTree(tree);
    const facts = storage(snapshot);
    expect(
      facts.files
        .filter((f) => ["/etc/containers/storage.conf", "/etc/crio/crio.conf"].includes(f.path))
        .map((f) => [f.path, f.status]),
    ).toEqual([
      ["/etc/containers/storage.conf", "ok"],
      ["/etc/crio/crio.conf", "ok"],
    ]);
    expect(facts.containersStorage.graphroot).toEqual({
      value: "/var/lib/graph",
      from: "/etc/containers/storage.conf",
    });
    expect(facts.containersStorage.imagestore).toEqual({
      value: "/var/lib/images",
      from: "/etc/crio/crio.conf",
    });
    const findings = runChecks(snapshot);
    expect(findings.map((f) => f.id)).not.toContain("CONFIG_PARSE_ERROR");
    for (const key of ["future_key", "future_driver", "experimental", "some_future_key", "future_table"]) {
      expect(findings.filter((f) => JSON.stringify(f).includes(key))).toEqual([]);
    }
  });

  it("walks crio.conf.d as CRI-O does: every file whatever its name, subdirectories where they sort", async () => {
    // CRI-O's UpdateFromPath (pkg/config/config.go) is a filepath.Walk that applies every entry
    // that is not a directory: a backup left by an editor or rpm counts as much as a .conf.
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write("/etc/crio/crio.conf.d/10-split.conf", `[crio]\nimagestore = "/var/lib/images"\n`);
    await tree.write("/etc/crio/crio.conf.d/10-split.conf.rpmsave", `[crio]\nimagestore = "/var/lib/old"\n`);
    await tree.write("/etc/crio/crio.conf.d/15-site/00-root", `[crio]\nroot = "/var/lib/site-root"\n`);
    await tree.write("/etc/crio/crio.conf.d/20-later.conf", `[crio]\nrunroot = "/run/later"\n`);
    const facts = storage(await collectTree(tree));
    expect(facts.files.filter((f) => f.kind === "crio.conf.d").map((f) => f.path)).toEqual([
      "/etc/crio/crio.conf.d/10-split.conf",
      "/etc/crio/crio.conf.d/10-split.conf.rpmsave",
      "/etc/crio/crio.conf.d/15-site/00-root",
      "/etc/crio/crio.conf.d/20-later.conf",
    ]);
    expect(facts.containersStorage.imagestore).toEqual({
      value: "/var/lib/old",
      from: "/etc/crio/crio.conf.d/10-split.conf.rpmsave",
    });
    expect(facts.containersStorage.graphroot).toEqual({
      value: "/var/lib/site-root",
      from: "/etc/crio/crio.conf.d/15-site/00-root",
    });
    expect(facts.containersStorage.runroot.from).toBe("/etc/crio/crio.conf.d/20-later.conf");
  });

  it("stops walking crio.conf.d past 8 levels of directories, says so, and keeps what it read", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    const deep = Array.from({ length: 10 }, (_, i) => `d${i}`).join("/");
    await tree.write("/etc/crio/crio.conf.d/10-top.conf", `[crio]\nimagestore = "/var/lib/images"\n`);
    await tree.write(`/etc/crio/crio.conf.d/${deep}/99-deep.conf`, `[crio]\nroot = "/var/lib/too-deep"\n`);
    const facts = storage(await collectTree(tree));
    const dir = facts.files.find((f) => f.path === "/etc/crio/crio.conf.d" && f.status === "error");
    expect(dir?.error?.message).toMatch(/more than 8 levels of directories: not followed$/);
    expect(facts.containersStorage.imagestore.from).toBe("/etc/crio/crio.conf.d/10-top.conf");
    expect(facts.containersStorage.graphroot.value).not.toBe("/var/lib/too-deep");
  });

  it.each([
    { files: 501, emptyDir: false, cut: true },
    { files: 500, emptyDir: true, cut: false },
  ])(
    "walks at most 500 files in crio.conf.d: $files files (and an empty directory: $emptyDir), cut: $cut",
    async ({ files, emptyDir, cut }) => {
      tree = await HostTree.create();
      await baseNode(tree);
      for (let i = 0; i < files; i++) {
        // Each file names its own imagestore: the last one read wins.
        await tree.write(
          `/etc/crio/crio.conf.d/${String(i).padStart(3, "0")}.conf`,
          `[crio]\nimagestore = "/var/lib/images-${i}"\n`,
        );
      }
      // Sorts after the files: an entry, but no file to read.
      if (emptyDir) await tree.mkdir("/etc/crio/crio.conf.d/README");
      const facts = storage(await collectTree(tree));
      const dir = facts.files.find((f) => f.path === "/etc/crio/crio.conf.d" && f.status === "error");
      expect(dir?.error?.message).toBe(cut ? "more than 500 files: the rest was not read" : undefined);
      expect(
        facts.files.filter((f) => f.kind === "crio.conf.d" && f.path !== "/etc/crio/crio.conf.d"),
      ).toHaveLength(500);
      expect(facts.containersStorage.imagestore).toEqual({
        value: "/var/lib/images-499",
        from: "/etc/crio/crio.conf.d/499.conf",
      });
    },
  );

  it("reads a drop-in whose name is not UTF-8, and shows the name escaped", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    const name = Buffer.concat([
      Buffer.from(tree.local("/etc/crio/crio.conf.d/30-caf")),
      Buffer.from([0xe9]),
      Buffer.from(".conf"),
    ]);
    const { mkdir, writeFile } = await import("node:fs/promises");
    await mkdir(tree.local("/etc/crio/crio.conf.d"), { recursive: true });
    await writeFile(name, `[crio]\nimagestore = "/var/lib/latin1"\n`);
    // And a file below a directory whose name is not UTF-8 (CRI-O walks subdirectories).
    const dir = Buffer.concat([Buffer.from(tree.local("/etc/crio/crio.conf.d/40-dir")), Buffer.from([0xe9])]);
    await mkdir(dir);
    await writeFile(Buffer.concat([dir, Buffer.from("/50-x.conf")]), `[crio]\nrunroot = "/run/latin1"\n`);
    const facts = storage(await collectTree(tree));
    expect(facts.containersStorage.imagestore).toEqual({
      value: "/var/lib/latin1",
      from: "/etc/crio/crio.conf.d/30-caf\\xe9.conf",
    });
    expect(facts.containersStorage.runroot).toEqual({
      value: "/run/latin1",
      from: "/etc/crio/crio.conf.d/40-dir\\xe9/50-x.conf",
    });
  });

  it("does not block on a FIFO where a config file should be, and survives a symlink loop", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.mkdir("/etc/crio/crio.conf.d");
    await execa("mkfifo", [tree.local("/etc/crio/crio.conf.d/10-fifo.conf")]);
    await tree.symlink("/etc/containers/loop-b", "/etc/containers/loop-a");
    await tree.symlink("/etc/containers/loop-a", "/etc/containers/loop-b");
    await tree.write(
      "/etc/crio/crio.conf.d/20-root.conf",
      `[crio]\nroot = "/etc/containers/loop-a/storage"\n`,
    );
    const snapshot = await collectTree(tree);
    const facts = storage(snapshot);
    expect(facts.files.find((f) => f.path.endsWith("10-fifo.conf"))?.error?.message).toMatch(
      /not a regular file/,
    );
    const graphroot =
      snapshot.sources.filesystems.status === "ok"
        ? snapshot.sources.filesystems.facts.roles.find((r) => r.role === "containerfs")
        : undefined;
    expect(graphroot?.status).toBe("error");
    expect(graphroot?.error).toMatch(/ELOOP/);
    const ids = runChecks(snapshot).map((f) => f.id);
    expect(ids).toContain("STORE_PATH_UNUSABLE");
    expect(ids).toContain("CONFIG_PARSE_ERROR");
  });

  it("reads containerd's config: version 2 snapshotter key, root_path override, and imports", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write(
      "/etc/containerd/config.toml",
      `version = 2\nroot = "/data/containerd"\nimports = ["/etc/containerd/conf.d/*.toml"]\n[plugins."io.containerd.grpc.v1.cri".containerd]\nsnapshotter = "native"\n`,
    );
    await tree.write("/etc/containerd/conf.d/10-state.toml", `state = "/run/other-containerd"\n`);
    let containerd = storage(await collectTree(tree)).containerd!;
    expect(containerd.snapshotter.value).toBe("native");
    expect(containerd.snapshotterRoot.value).toBe("/data/containerd/io.containerd.snapshotter.v1.native");
    expect(containerd.state).toEqual({
      value: "/run/other-containerd",
      from: "/etc/containerd/conf.d/10-state.toml",
    });

    await tree.write(
      "/etc/containerd/config.toml",
      `version = 3\n[plugins.'io.containerd.cri.v1.images']\nsnapshotter = "overlayfs"\n[plugins.'io.containerd.snapshotter.v1.overlayfs']\nroot_path = "/mnt/fast/snapshots"\n`,
    );
    containerd = storage(await collectTree(tree)).containerd!;
    expect(containerd.snapshotterRoot).toEqual({
      value: "/mnt/fast/snapshots",
      from: "/etc/containerd/config.toml",
    });
  });

  it("finds the additional-layer-store auth helper in registries.conf drop-ins", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write("/etc/containers/registries.conf", `unqualified-search-registries = ["docker.io"]\n`);
    await tree.write(
      "/etc/containers/registries.conf.d/50-stargz.conf",
      `additional-layer-store-auth-helper = "stargz-store-helper"\n`,
    );
    const facts = storage(await collectTree(tree));
    expect(facts.registries.authHelper).toEqual({
      value: "stargz-store-helper",
      from: "/etc/containers/registries.conf.d/50-stargz.conf",
    });
  });
});

describe("CRI-O settings: listen, clean_shutdown_file, additional_artifact_stores", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  /** No mounts needed: files in a temporary host tree, crio as a stand-in process. */
  async function crioFiles(files: Record<string, string>): Promise<void> {
    tree = await HostTree.create();
    for (const [hostPath, content] of Object.entries(files)) await tree.write(hostPath, content);
  }

  it("uses CRI-O's defaults when no file sets them", async () => {
    await crioFiles({ "/etc/crio/crio.conf": `[crio]\nlog_dir = "/var/log/crio/pods"\n` });
    expect(storage(await collectTree(tree)).crio).toEqual({
      listen: { value: "/var/run/crio/crio.sock", from: "default" },
      cleanShutdownFile: { value: "/var/lib/crio/clean.shutdown", from: "default" },
      additionalArtifactStores: { value: [], from: "default" },
    });
  });

  it("applies crio.conf, then the drop-ins in lexical order, each from its own table", async () => {
    await crioFiles({
      "/etc/crio/crio.conf": `[crio]\nclean_shutdown_file = "/main/cs"\n[crio.api]\nlisten = "/main.sock"\n[crio.runtime]\nadditional_artifact_stores = ["/main/a"]\n`,
      "/etc/crio/crio.conf.d/10-a.conf": `[crio.api]\nlisten = "/ten.sock"\n[crio.runtime]\nadditional_artifact_stores = ["/ten/a", "/ten/b"]\n`,
      "/etc/crio/crio.conf.d/20-b.conf": `[crio.api]\nlisten = "/twenty.sock"\n`,
      // Keys in the wrong table are not these settings.
      "/etc/crio/crio.conf.d/30-c.conf": `[crio]\nlisten = "/wrong.sock"\nadditional_artifact_stores = ["/wrong"]\n`,
    });
    expect(storage(await collectTree(tree)).crio).toEqual({
      listen: { value: "/twenty.sock", from: "/etc/crio/crio.conf.d/20-b.conf" },
      cleanShutdownFile: { value: "/main/cs", from: "/etc/crio/crio.conf" },
      // A later list replaces an earlier one whole.
      additionalArtifactStores: { value: ["/ten/a", "/ten/b"], from: "/etc/crio/crio.conf.d/10-a.conf" },
    });
  });

  it("lets crio's flags (and its environment variables) win over every file", async () => {
    await crioFiles({
      "/etc/crio/crio.conf.d/10-a.conf": `[crio]\nclean_shutdown_file = "/file/cs"\n[crio.api]\nlisten = "/file.sock"\n[crio.runtime]\nadditional_artifact_stores = ["/file/a"]\n`,
    });
    await tree.startProcess(
      "crio",
      [
        "--listen=/flag.sock",
        "--additional-artifact-stores",
        "/flag/a, /flag/b",
        "--additional-artifact-stores=/flag/a",
      ],
      { CONTAINER_CLEAN_SHUTDOWN_FILE: "/env/cs", CONTAINER_LISTEN: "/env.sock" },
    );
    expect(storage(await collectTree(tree)).crio).toEqual({
      listen: { value: "/flag.sock", from: "crio flag --listen" },
      cleanShutdownFile: { value: "/env/cs", from: "crio environment CONTAINER_CLEAN_SHUTDOWN_FILE" },
      additionalArtifactStores: {
        value: ["/flag/a", "/flag/b", "/flag/a"],
        from: "crio flag --additional-artifact-stores",
      },
    });
  });

  it("keeps artifact stores exactly as written: order, duplicates and relative paths", async () => {
    await crioFiles({
      "/etc/crio/crio.conf.d/50-stores.conf": `[crio.runtime]\nadditional_artifact_stores = ["/mnt/b", "relative/store", "/mnt/a", "/mnt/b", "./x/../y"]\n`,
    });
    expect(storage(await collectTree(tree)).crio?.additionalArtifactStores).toEqual({
      value: ["/mnt/b", "relative/store", "/mnt/a", "/mnt/b", "./x/../y"],
      from: "/etc/crio/crio.conf.d/50-stores.conf",
    });
  });

  it("is null without a crio process or a CRI-O file (a containerd node), and set when only crio runs", async () => {
    await crioFiles({ "/etc/containerd/config.toml": "version = 2\n" });
    expect(storage(await collectTree(tree)).crio).toBeNull();
    await tree.startProcess("crio", ["--config-dir", "/nowhere", "--clean-shutdown-file", ""]);
    const crio = storage(await collectTree(tree)).crio;
    expect(crio?.listen).toEqual({ value: "/var/run/crio/crio.sock", from: "default" });
    // An empty value is a value: it turns the clean-shutdown mechanism off.
    expect(crio?.cleanShutdownFile).toEqual({ value: "", from: "crio flag --clean-shutdown-file" });
  });
});
