import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, statfs, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Finding } from "../collector/checks/finding.js";
import { runChecks } from "../collector/checks/registry.js";
import { Host, type PathInspection } from "../collector/host/host.js";
import { longestPrefixMount, mountContext, mountOption } from "../collector/host/mountinfo.js";
import type { Snapshot } from "../collector/snapshot.js";
import { type ArtifactStoreFact, parseIndex } from "../collector/sources/artifact-stores.js";
import type { ImageStoreFact } from "../collector/sources/image-stores.js";
import { REMOTE_STORE_DEADLINE_MS, visitStore } from "../collector/sources/store-access.js";
import { mountBindfs, podman, pushImages, type Registry, startRegistry } from "./support/lazy-pull.js";
import { requireParts } from "./support/requirements.js";
import { baseNode, collectTree, HostTree, startRuntime, storageConf } from "./support/scenarios.js";
import { writeSelinux } from "./support/selinux.js";

/**
 * Additional image stores and artifact stores with real parts: a shared image cache that podman
 * (Debian's 4.3.1) pulled two images into from a docker-registry on 127.0.0.1, kept as a loop
 * ext4 image and mounted read-only (or writable, or damaged, or behind a stopped bindfs) at the
 * path storage.conf lists under additionalimagestores; and artifact stores configured in a CRI-O
 * drop-in, each an OCI image layout written by hand after the OCI image-layout spec (skopeo and
 * CRI-O are not in Debian 12).
 */

const STORE = "/var/lib/image-cache";

/** The findings about a store (its path in the subject or the evidence) whose remediation gives a context= label. */
function labelAdviceFor(findings: Finding[], store: string): Finding[] {
  return findings.filter(
    (f) =>
      (f.subject?.includes(store) || f.evidence.some((line) => line.includes(store))) &&
      [f.remediation.summary, ...f.remediation.commands].some((text) => text.includes("context=")),
  );
}
/** The bound the whole collection must stay within while the store hangs: a hang guard, not a benchmark. */
const HANG_BOUND_MS = 10_000;

const ready = requireParts("additional image store tests", ["root", "loop", "podman", "bindfs"]);

function imageStore(snapshot: Snapshot, storePath = STORE): ImageStoreFact {
  const source = snapshot.sources["image-stores"];
  if (source.status !== "ok") throw new Error(`image-stores source: ${source.status}`);
  const found = source.facts.stores.find((s) => s.path === storePath && s.role === "additional-image-store");
  if (!found) throw new Error(`no additional image store ${storePath}`);
  return found;
}

function artifactStores(snapshot: Snapshot): ArtifactStoreFact[] {
  const source = snapshot.sources["artifact-stores"];
  if (source.status !== "ok") throw new Error(`artifact-stores source: ${JSON.stringify(source)}`);
  return source.facts.stores;
}

/** A CRI-O node whose storage.conf lists `stores` as additional image stores. */
async function nodeWithStores(tree: HostTree, stores: string[]): Promise<void> {
  await baseNode(tree);
  await tree.write("/etc/containers/storage.conf", storageConf({ imageStores: stores }));
  await startRuntime(tree);
}

/** A host whose look at a store root always answers, as the kernel's attribute cache can. */
class RootAnsweredHost extends Host {
  override async inspectPath(hostPath: string): Promise<PathInspection> {
    const mount = longestPrefixMount((await this.mounts()).entries, [this.root.local(hostPath)]);
    return {
      status: "ok",
      resolved: hostPath,
      device: mount?.device ?? "0:0",
      isDirectory: true,
      isMountPoint: true,
      mount: mount ? this.toMountFact(mount) : null,
      usage: {
        blockSize: 4096,
        totalBytes: 0,
        freeBytes: 0,
        availableBytes: 0,
        totalInodes: 0,
        freeInodes: 0,
      },
    };
  }
}

function signal(pid: number | undefined, name: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

describe.skipIf(!ready)("an additional image store populated by podman", () => {
  let dir: string;
  let registry: Registry | undefined;
  /** The populated cache: an ext4 image file, copied for each test. */
  let cacheImage: string;
  let appRef: string;
  let fullRef: string;
  let appTopLayer: string;
  let fullBaseLayer: string;
  let copies = 0;
  let tree: HostTree | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "imagefs-stores-"));
    registry = await startRegistry(path.join(dir, "registry"));
    await pushImages(dir, registry);
    appRef = `${registry.host}/test/app:1`;
    fullRef = `${registry.host}/test/full:1`;

    // The cache is filled the way a cache is: podman with the store as its graphroot.
    cacheImage = path.join(dir, "cache.ext4");
    const build = path.join(dir, "cache-build");
    await execa("truncate", ["-s", "128M", cacheImage]);
    await execa("mkfs.ext4", ["-q", "-F", cacheImage]);
    await mkdir(build, { recursive: true });
    await execa("mount", ["-o", "loop", cacheImage, build]);
    try {
      const conf = path.join(dir, "build-storage.conf");
      await writeFile(
        conf,
        `[storage]\ndriver = "overlay"\ngraphroot = "${build}"\nrunroot = "${dir}/build-run"\n`,
      );
      for (const ref of [appRef, fullRef]) {
        const pull = await podman(conf, ["pull", "-q", "--tls-verify=false", ref]);
        if (pull.exitCode !== 0) throw new Error(`podman pull ${ref}: ${pull.stderr}`);
      }
      const images = JSON.parse(await readFile(path.join(build, "overlay-images/images.json"), "utf8")) as {
        names: string[];
        layer: string;
      }[];
      const layers = JSON.parse(await readFile(path.join(build, "overlay-layers/layers.json"), "utf8")) as {
        id: string;
        parent?: string;
      }[];
      appTopLayer = images.find((i) => i.names.includes(appRef))!.layer;
      let base = images.find((i) => i.names.includes(fullRef))!.layer;
      for (let parent = layers.find((l) => l.id === base)?.parent; parent; ) {
        base = parent;
        parent = layers.find((l) => l.id === base)?.parent;
      }
      fullBaseLayer = base;
    } finally {
      await execa("umount", ["-l", path.join(build, "overlay")], { reject: false });
      await execa("umount", [build], { reject: false });
    }
  }, 180_000);

  afterAll(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  /**
   * Mounts a copy of the populated cache at `localTarget`, read-only unless asked otherwise;
   * `damage` runs on the copy (mounted writable at its local path) first.
   */
  async function mountCache(
    t: HostTree,
    localTarget: string,
    options: { readOnly: boolean; damage?: (local: string) => Promise<void> },
  ): Promise<void> {
    copies += 1;
    const copy = path.join(t.scratch, `cache-${copies}.ext4`);
    await execa("cp", ["--sparse=always", cacheImage, copy]);
    if (options.damage) {
      const work = path.join(t.scratch, `damage-${copies}`);
      await mkdir(work, { recursive: true });
      await execa("mount", ["-o", "loop", copy, work]);
      try {
        await options.damage(work);
      } finally {
        await execa("umount", [work]);
      }
    }
    await mkdir(localTarget, { recursive: true });
    await execa("mount", ["-o", options.readOnly ? "loop,ro" : "loop", copy, localTarget]);
    t.onCleanup(async () => {
      await execa("umount", ["-l", localTarget], { reject: false });
    });
  }

  it("reads a read-only cache podman uses: mounted ro, two images, every layer there, its size", async () => {
    tree = await HostTree.create();
    await nodeWithStores(tree, [STORE]);
    await mountCache(tree, tree.local(STORE), { readOnly: true });

    // podman itself uses the read-only store as an additional image store.
    const conf = path.join(tree.scratch, "podman-storage.conf");
    await writeFile(
      conf,
      `[storage]\ndriver = "overlay"\ngraphroot = "${tree.scratch}/podman-root"\nrunroot = "${tree.scratch}/podman-run"\n[storage.options]\nadditionalimagestores = ["${tree.local(STORE)}"]\n`,
    );
    tree.onCleanup(async () => {
      await execa("umount", ["-l", `${tree!.scratch}/podman-root/overlay`], { reject: false });
    });
    const exists = await podman(conf, ["image", "exists", appRef]);
    expect(exists.exitCode, exists.stderr).toBe(0);
    const listed = await podman(conf, ["images", "--format", "{{.Repository}}:{{.Tag}} {{.ReadOnly}}"]);
    expect(listed.stdout.split("\n").sort()).toEqual([`${appRef} true`, `${fullRef} true`]);

    const snapshot = await collectTree(tree);
    const store = imageStore(snapshot);
    expect(store.access).toMatchObject({
      status: "ok",
      readOnly: true,
      remote: false,
      isMountPoint: true,
      fstabNotMounted: null,
      selinuxContext: null,
      nfsVersion: null,
    });
    expect(store.access?.mount?.fstype).toBe("ext4");
    expect(store.images).toMatchObject({ status: "ok", count: 2 });
    expect(store.images.names.sort()).toEqual([appRef, fullRef]);
    expect(store.layers).toMatchObject({ status: "ok", count: 5 });
    expect(store.completeness).toEqual({
      checkedImages: 2,
      incompleteImages: 0,
      missingLayers: 0,
      examples: [],
    });
    // Five layers of ~270 KB in all, plus podman's metadata: more than the layers, less than the disk.
    expect(store.access?.sizeBytes).toBeGreaterThan(200_000);
    expect(store.access?.sizeBytes).toBeLessThan(64 * 2 ** 20);
    // The store is its disk's mount point: its size is what statfs says is used, not walked.
    const disk = await statfs(tree.local(STORE));
    expect(store.access?.sizeBytes).toBe((disk.blocks - disk.bfree) * disk.bsize);
    // The store root's reads were timed (a real stat takes more than the microsecond it is rounded
    // to), within the image-stores source's own run (whose duration is rounded to the millisecond).
    expect(store.access?.probeMs).toBeGreaterThan(0);
    expect(store.access?.probeMs).toBeLessThanOrEqual(snapshot.sources["image-stores"].durationMs + 0.5);
    const ids = runChecks(snapshot).map((f) => f.id);
    for (const id of ["IMAGE_STORE_UNAVAILABLE", "IMAGE_STORE_NOT_READONLY", "IMAGE_STORE_INCOMPLETE"]) {
      expect(ids).not.toContain(id);
    }
  });

  it("names the image and layer when a layer's directory or record is gone", async () => {
    tree = await HostTree.create();
    await nodeWithStores(tree, [STORE]);
    await mountCache(tree, tree.local(STORE), {
      readOnly: true,
      damage: async (local) => {
        // test/app:1 loses its top layer's directory; test/full:1 its base layer's record.
        await rm(path.join(local, "overlay", appTopLayer), { recursive: true });
        const file = path.join(local, "overlay-layers/layers.json");
        const layers = JSON.parse(await readFile(file, "utf8")) as { id: string }[];
        await writeFile(file, JSON.stringify(layers.filter((l) => l.id !== fullBaseLayer)));
      },
    });

    const snapshot = await collectTree(tree);
    const store = imageStore(snapshot);
    expect(store.access?.status).toBe("ok");
    expect(store.layers.count).toBe(4);
    expect(store.completeness).toMatchObject({ checkedImages: 2, incompleteImages: 2, missingLayers: 2 });
    expect(store.completeness?.examples).toEqual(
      expect.arrayContaining([
        { image: appRef, layer: appTopLayer, missing: "directory" },
        { image: fullRef, layer: fullBaseLayer, missing: "record" },
      ]),
    );
    const finding = runChecks(snapshot).find((f) => f.id === "IMAGE_STORE_INCOMPLETE");
    expect(finding?.subject).toBe(STORE);
    expect(finding?.evidence.join("\n")).toContain(appTopLayer);
  });

  it("sees a cache mounted writable", async () => {
    tree = await HostTree.create();
    await nodeWithStores(tree, [STORE]);
    await mountCache(tree, tree.local(STORE), { readOnly: false });
    const snapshot = await collectTree(tree);
    const store = imageStore(snapshot);
    expect(store.access).toMatchObject({ status: "ok", readOnly: false, isMountPoint: true });
    expect(store.completeness?.incompleteImages).toBe(0);
    expect(runChecks(snapshot).find((f) => f.id === "IMAGE_STORE_NOT_READONLY")?.subject).toBe(STORE);
  });

  it("reads a cache behind FUSE only from the probe child, and reports it unresponsive when its server stops", async () => {
    tree = await HostTree.create();
    const t = tree;
    // The same store is also listed as an artifact store: both sources meet the stopped server.
    await nodeWithStores(t, [STORE]);
    await t.write(
      "/etc/crio/crio.conf.d/20-artifacts.conf",
      `[crio.runtime]\nadditional_artifact_stores = ["${STORE}"]\n`,
    );
    const source = path.join(t.scratch, "cache-src");
    await mountCache(t, source, { readOnly: true });
    await t.mkdir(STORE);
    const bindfs = await mountBindfs(source, t.local(STORE));
    // Registered after mountCache's, so it runs first: resume, unmount, end the server.
    t.onCleanup(async () => {
      signal(bindfs.pid, "SIGCONT");
      await execa("fusermount3", ["-uz", bindfs.target], { reject: false });
      await execa("umount", ["-l", bindfs.target], { reject: false });
      signal(bindfs.pid, "SIGKILL");
      await bindfs.process;
    });

    const snapshot = await collectTree(t);
    const running = imageStore(snapshot);
    expect(running.access).toMatchObject({ status: "ok", remote: true, isMountPoint: true, sizeBytes: null });
    expect(running.access?.mount?.fstype).toMatch(/^fuse/);
    expect(running.images.count).toBe(2);
    // Layer directories were looked up by the probe child too.
    expect(running.completeness).toMatchObject({ checkedImages: 2, incompleteImages: 0 });
    // FUSE carries no SELinux labels and the mount gives none (no context=): that matters only
    // on a node with SELinux on.
    // (SELinux is off here: at most a note for when it is turned on, never a warning.)
    const offNode = labelAdviceFor(runChecks(snapshot), STORE);
    expect(offNode.map((f) => [f.id, f.severity])).toEqual([["SELINUX_NO_XATTR_SUPPORT", "info"]]);
    await writeSelinux(t, { kernel: 1 });
    // One finding about it that gives label advice, SELINUX_NO_XATTR_SUPPORT: a second one with other advice fails this.
    const labelled = labelAdviceFor(runChecks(await collectTree(t)), STORE);
    expect(labelled.map((f) => f.id)).toEqual(["SELINUX_NO_XATTR_SUPPORT"]);
    expect(labelled[0]?.subject).toBe(`additional-image-store ${STORE}`);
    expect(labelled[0]?.severity).toBe("critical");
    expect(labelled[0]?.evidence[0]).toMatch(/^SELinux is enforcing/);
    // FUSE is mounted by its server, not by mount(8): unmount it and start the server again with the label.
    expect(labelled[0]?.remediation.commands).toEqual(
      expect.arrayContaining([
        `fusermount -u ${STORE}`,
        `# start the FUSE server that mounts ${STORE} again with -o ro,context="system_u:object_r:container_ro_file_t:s0" added to its options`,
      ]),
    );
    expect(labelled[0]?.remediation.commands.filter((c) => /^(u?mount)\b/.test(c))).toEqual([]);

    process.kill(bindfs.pid, "SIGSTOP");
    const started = performance.now();
    const hung = await collectTree(t, { guardedStatMs: 1000 });
    expect(performance.now() - started).toBeLessThan(HANG_BOUND_MS);
    const store = imageStore(hung);
    expect(store.access?.status).toBe("unresponsive");
    expect(store.access?.error).toContain("no answer from fuse filesystem");
    expect(store.access?.remote).toBe(true);
    expect(store.completeness).toBeUndefined();
    const [artifacts] = artifactStores(hung);
    expect(artifacts?.access.status).toBe("unresponsive");
    expect(artifacts?.hasArtifactsDir).toBe(false);
    for (const [name, result] of Object.entries(hung.sources)) {
      expect(["ok", "absent"], `source ${name}`).toContain(result.status);
    }
    const hungIds = runChecks(hung).map((f) => f.id);
    expect(runChecks(hung).find((f) => f.id === "IMAGE_STORE_UNAVAILABLE")?.subject).toBe(STORE);
    // One finding for one problem: the unread metadata is not reported again.
    expect(hungIds).not.toContain("STORE_METADATA_UNREADABLE");
    expect(hungIds.filter((id) => id === "ARTIFACT_STORE_INVALID")).toHaveLength(1);

    // The kernel may answer the host's stat of the root from its cache while the server is
    // stopped: then the probe child (root, then metadata) is what hangs, and its deadline ends it.
    const host = new RootAnsweredHost({ root: t.root, procRoot: t.procRoot, guardedStatMs: 1000 });
    const before = performance.now();
    const visit = await visitStore(host, STORE, {
      read: [{ path: "overlay-images/images.json", maxBytes: 1 << 20 }],
      stat: [],
    });
    expect(performance.now() - before).toBeLessThan(REMOTE_STORE_DEADLINE_MS + 3000);
    expect(visit.access.status).toBe("unresponsive");
    expect(visit.access.error).toContain(
      `no answer from fuse filesystem within ${REMOTE_STORE_DEADLINE_MS} ms (stat of ${STORE})`,
    );
  });

  it("reports a store that does not exist, and fstab lines that mount nothing", async () => {
    tree = await HostTree.create();
    const t = tree;
    const below = "/mnt/cache/images";
    const mounted = "/srv/mounted-cache";
    await nodeWithStores(t, [STORE, below, mounted]);
    await t.mkdir(below);
    await t.mountTmpfs(mounted, "size=8m");
    await t.write(
      "/etc/fstab",
      [
        "# <file system> <mount point> <type> <options> <dump> <pass>",
        "/dev/vda1 / ext4 defaults 0 1",
        `nfs.example.com:/exports/cache ${STORE} nfs4 ro,vers=4.2 0 0`,
        "/dev/vdc /mnt/cache xfs ro,nofail 0 0",
        `tmpfs ${mounted} tmpfs size=8m 0 0`,
        "",
      ].join("\n"),
    );
    const snapshot = await collectTree(t);

    const missing = imageStore(snapshot, STORE);
    expect(missing.access?.status).toBe("missing");
    expect(missing.access?.fstabNotMounted).toEqual({
      spec: "nfs.example.com:/exports/cache",
      mountPoint: STORE,
      fstype: "nfs4",
      options: "ro,vers=4.2",
    });
    expect(missing.images.status).toBe("missing");
    expect(missing.completeness).toBeUndefined();

    // An empty directory where the cache should be mounted: the fstab line is one level up.
    const empty = imageStore(snapshot, below);
    expect(empty.access).toMatchObject({ status: "ok", isMountPoint: false });
    expect(empty.access?.fstabNotMounted?.mountPoint).toBe("/mnt/cache");
    expect(empty.images.status).toBe("missing");

    const fine = imageStore(snapshot, mounted);
    expect(fine.access).toMatchObject({ status: "ok", isMountPoint: true, fstabNotMounted: null });
    expect(fine.access?.mount?.fstype).toBe("tmpfs");

    const unavailable = runChecks(snapshot).filter((f) => f.id === "IMAGE_STORE_UNAVAILABLE");
    expect(unavailable.map((f) => f.subject).sort()).toEqual([below, STORE].sort());
  });
});

// ---------------------------------------------------------------------------------------------
// Damaged stores

describe.skipIf(!requireParts("damaged image store tests", ["root", "loop"]))(
  "additional image stores that are damaged",
  () => {
    let tree: HostTree | undefined;
    afterEach(async () => {
      await tree?.cleanup();
      tree = undefined;
    });

    it("reports malformed metadata, a symlink loop and a parent loop in layers.json, without hanging", async () => {
      tree = await HostTree.create();
      const t = tree;
      const malformed = "/var/lib/cache-malformed";
      const looped = "/var/lib/cache-looped";
      const cyclic = "/var/lib/cache-cyclic";
      await nodeWithStores(t, [malformed, looped, cyclic]);
      await t.write(`${malformed}/overlay-images/images.json`, '[{"id": "aa", "layer": ');
      await t.write(`${malformed}/overlay-layers/layers.json`, "[]");
      await t.symlink("/var/lib/cache-looped-too", looped);
      await t.symlink(looped, "/var/lib/cache-looped-too");
      // Two layers naming each other as parent: the chain of the image on top must end.
      const [a, b] = ["a".repeat(64), "b".repeat(64)];
      await t.write(
        `${cyclic}/overlay-images/images.json`,
        JSON.stringify([{ id: "c".repeat(64), names: ["quay.io/example/cyclic:1"], layer: a }]),
      );
      await t.write(
        `${cyclic}/overlay-layers/layers.json`,
        JSON.stringify([
          { id: a, parent: b },
          { id: b, parent: a },
        ]),
      );
      // b's directory is gone: the image names it once, not once per lap of the loop.
      await t.mkdir(`${cyclic}/overlay/${a}/diff`);

      const snapshot = await collectTree(t);
      expect(snapshot.sources["image-stores"].status).toBe("ok");
      const bad = imageStore(snapshot, malformed);
      expect(bad.access?.status).toBe("ok");
      expect(bad.images.status).toBe("error");
      expect(bad.images.error).toContain(`${malformed}/overlay-images/images.json`);
      expect(bad.completeness).toBeUndefined();
      const loop = imageStore(snapshot, looped);
      expect(loop.access?.status).toBe("error");
      expect(loop.access?.error).toMatch(/ELOOP|symbolic links/);
      expect(imageStore(snapshot, cyclic).completeness).toEqual({
        checkedImages: 1,
        incompleteImages: 1,
        missingLayers: 1,
        examples: [{ image: "quay.io/example/cyclic:1", layer: b, missing: "directory" }],
      });

      const findings = runChecks(snapshot);
      expect(findings.find((f) => f.id === "STORE_METADATA_UNREADABLE")?.subject).toBe(malformed);
      expect(findings.find((f) => f.id === "IMAGE_STORE_UNAVAILABLE")?.title).toBe(
        `Additional image store ${looped} cannot be read`,
      );
    });
  },
);

// ---------------------------------------------------------------------------------------------
// Artifact stores

const artifactsReady = requireParts("artifact store tests", ["root", "loop"]);

const sha256 = (data: string | Buffer) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

/**
 * Writes `<store>/artifacts` as an OCI image layout (image-spec image-layout.md: oci-layout,
 * index.json, blobs/<alg>/<encoded>) holding one artifact: a manifest with an artifactType, the
 * empty config descriptor (application/vnd.oci.empty.v1+json, "{}") and one file layer, as
 * `podman artifact add` and CRI-O's libartifact store write them. Written by hand: no skopeo here.
 */
async function writeArtifactLayout(tree: HostTree, store: string, name: string): Promise<void> {
  const root = `${store}/artifacts`;
  const blob = async (content: string) => {
    const digest = sha256(content);
    await tree.write(`${root}/blobs/sha256/${digest.slice("sha256:".length)}`, content);
    return { digest, size: Buffer.byteLength(content) };
  };
  const config = await blob("{}");
  const file = await blob("seccomp profile for the test\n");
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: "application/vnd.example.test.v1",
    config: { mediaType: "application/vnd.oci.empty.v1+json", ...config, data: "e30=" },
    layers: [
      {
        mediaType: "text/plain",
        ...file,
        annotations: { "org.opencontainers.image.title": "profile.json" },
      },
    ],
  });
  const descriptor = await blob(manifest);
  await tree.write(`${root}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await tree.write(
    `${root}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...descriptor,
          artifactType: "application/vnd.example.test.v1",
          annotations: { "org.opencontainers.image.ref.name": name },
        },
      ],
    }),
  );
}

describe.skipIf(!artifactsReady)("additional artifact stores from a CRI-O drop-in", () => {
  let tree: HostTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  it("reports each entry as written: a valid store, one without artifacts/, a malformed index, a relative path, a duplicate", async () => {
    tree = await HostTree.create();
    const t = tree;
    await baseNode(t);
    await startRuntime(t);
    const good = "/var/lib/artifact-cache";
    const bare = "/var/lib/artifacts-bare";
    const broken = "/var/lib/artifacts-broken";
    const empty = "/var/lib/artifacts-empty";
    // The valid store on a read-only disk of its own, as a shared cache would be.
    await t.mountLoop(good, "ext4", { sizeMiB: 16 });
    await writeArtifactLayout(t, good, "quay.io/example/seccomp:v1");
    await t.remountReadOnly(good);
    await t.mkdir(bare);
    await t.write(`${broken}/artifacts/index.json`, '{"schemaVersion": 2, "manifests": [');
    // What libartifact writes into a store it creates: a nil manifests slice.
    await t.write(
      `${empty}/artifacts/index.json`,
      '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":null}',
    );
    const entries = [good, bare, broken, "relative/artifacts", good, empty];
    await t.write(
      "/etc/crio/crio.conf.d/20-artifacts.conf",
      `[crio.runtime]\nadditional_artifact_stores = [${entries.map((e) => JSON.stringify(e)).join(", ")}]\n`,
    );

    const snapshot = await collectTree(t);
    const stores = artifactStores(snapshot);
    expect(stores.map((s) => s.path)).toEqual(entries);
    const [valid, noDir, malformed, relative, duplicate, fresh] = stores as ArtifactStoreFact[];

    expect(valid!.access).toMatchObject({ status: "ok", readOnly: true, isMountPoint: true, remote: false });
    expect(valid!.access.mount?.fstype).toBe("ext4");
    expect(valid!.hasArtifactsDir).toBe(true);
    expect(valid!.index).toEqual({ status: "ok", artifacts: 1 });
    expect(valid!.access.sizeBytes).toBeGreaterThan(0);
    expect(duplicate).toEqual(valid);

    expect(noDir!.access.status).toBe("ok");
    expect(noDir!.hasArtifactsDir).toBe(false);
    expect(noDir!.index).toEqual({ status: "missing", artifacts: 0 });

    expect(malformed!.hasArtifactsDir).toBe(true);
    expect(malformed!.index.status).toBe("error");
    expect(malformed!.index.error).toContain(`${broken}/artifacts/index.json`);

    expect(relative!.access.status).toBe("error");
    expect(relative!.access.error).toContain("relative path");
    expect(relative!.access.mount).toBeNull();
    expect(relative!.hasArtifactsDir).toBe(false);

    expect(fresh!.index).toEqual({ status: "ok", artifacts: 0 });

    const findings = runChecks(snapshot);
    const invalid = findings.filter((f) => f.id === "ARTIFACT_STORE_INVALID").map((f) => f.title);
    expect(invalid).toEqual([
      // A read-only store cannot give CRI-O its index.lock: it is skipped (libartifact, CRI-O 1.36).
      `Artifact store ${good} is mounted read-only, and CRI-O skips it`,
      `Artifact store ${bare} has no artifacts/ directory`,
      `Artifact store ${broken} has no usable artifacts/index.json`,
    ]);
    // The relative entry is reported once, by STORE_LIST_INVALID (CRI-O refuses it), not also as
    // a store that "cannot be read" with advice about permissions.
    expect(
      findings.filter((f) => f.evidence.some((e) => e.includes("relative/artifacts"))).map((f) => f.id),
    ).toEqual(["STORE_LIST_INVALID"]);
    const list = findings.find((f) => f.id === "STORE_LIST_INVALID");
    expect(list?.severity).toBe("critical");
    expect(list?.evidence).toEqual([
      "additional_artifact_stores (/etc/crio/crio.conf.d/20-artifacts.conf): relative/artifacts is a relative path: CRI-O refuses it and the runtime does not start",
      `additional_artifact_stores (/etc/crio/crio.conf.d/20-artifacts.conf): ${good} is listed more than once: only its first place counts`,
    ]);
  });

  it("is absent when CRI-O lists no artifact store", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    const snapshot = await collectTree(tree);
    expect(snapshot.sources["artifact-stores"].status).toBe("absent");
  });
});

describe("mount options and OCI indexes, as read", () => {
  it("takes context= whole from mountinfo's comma-split options, quotes and categories included", () => {
    const superOptions = ["rw", 'context="system_u:object_r:container_ro_file_t:s0:c1', 'c2"', "vers=4.2"];
    expect(mountOption(superOptions, "context")).toBe("system_u:object_r:container_ro_file_t:s0:c1,c2");
    expect(mountOption(["ro", "context=system_u:object_r:nfs_t:s0"], "context")).toBe(
      "system_u:object_r:nfs_t:s0",
    );
    expect(mountOption(superOptions, "vers")).toBe("4.2");
    expect(mountOption(["rw", "fscontext=x"], "context")).toBeNull();
    // A mount's label: from its per-mount options or its superblock options.
    expect(mountContext({ options: ["ro"], superOptions })).toBe(
      "system_u:object_r:container_ro_file_t:s0:c1,c2",
    );
    expect(
      mountContext({ options: ["ro", "context=system_u:object_r:nfs_t:s0"], superOptions: ["rw"] }),
    ).toBe("system_u:object_r:nfs_t:s0");
    expect(mountContext({ options: ["ro"], superOptions: ["rw", "seclabel"] })).toBeNull();
  });

  it("counts an index's manifests, null as none, and refuses what is not an image index", () => {
    const at = "/s/artifacts/index.json";
    expect(parseIndex(at, '{"schemaVersion":2,"manifests":[{},{}]}', false, 100)).toEqual({
      status: "ok",
      artifacts: 2,
    });
    expect(parseIndex(at, '{"schemaVersion":2,"manifests":null}', false, 100)).toEqual({
      status: "ok",
      artifacts: 0,
    });
    expect(parseIndex(at, '{"schemaVersion":2}', false, 100).status).toBe("error");
    expect(parseIndex(at, "[]", false, 100).error).toContain("not a JSON object");
    expect(parseIndex(at, '{"manifests":[]}', true, 100).error).toContain("larger than 100 bytes");
  });
});
