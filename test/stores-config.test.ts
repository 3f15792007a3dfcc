import { readFile, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import { gaugeSamples } from "../collector/export/samples.js";
import type { CriFacts } from "../collector/sources/cri.js";
import { openBundle } from "./support/bundle-archive.js";
import { mustGather } from "./support/cli.js";
import { startFakeCrio } from "./support/fake-crio.js";
import { journalEntry, MACHINE_ID, writeJournalFile } from "./support/journal.js";
import { requireParts } from "./support/requirements.js";
import { collectTree, GRAPHROOT, HostTree } from "./support/scenarios.js";

/**
 * The configuration side of additional stores, judged from real collections of a host tree: the
 * lists as written (STORE_LIST_INVALID), CRI-O's running configuration on its socket against the
 * files (STORE_CONFIG_NOT_IN_EFFECT) and the clean-shutdown file and journal (UNCLEAN_SHUTDOWN).
 * CRI-O is not packaged for Debian 12: its /config answer is the fixture test/fixtures/crio/config.toml
 * (its header says where it comes from), served on a real unix socket.
 */

const FIXTURE = fileURLToPath(new URL("./fixtures/crio/config.toml", import.meta.url));
const SOCKET = "/run/crio/crio.sock";
const journalReady = requireParts("unclean shutdown from the journal", ["journal-remote"]);

const ARTIFACT_STORES = ["/mnt/nfs-artifacts", "/var/lib/ssd-artifacts"];

type Snapshot = Awaited<ReturnType<typeof collectTree>>;

/** The imagefs_runtime_config_drift gauge of a snapshot. */
const configDrift = (snapshot: Snapshot) =>
  gaugeSamples(snapshot, []).find((s) => s.name === "imagefs_runtime_config_drift")?.value;

/** The drop-in naming the imagestore and the artifact stores (what the tests edit after CRI-O started). */
async function writeStores(tree: HostTree, imagestore: string, artifactStores: string[]): Promise<void> {
  await tree.write(
    "/etc/crio/crio.conf.d/10-stores.conf",
    `[crio]\nimagestore = "${imagestore}"\n\n[crio.runtime]\nadditional_artifact_stores = ${JSON.stringify(artifactStores)}\n`,
  );
}

/** The node the fixture describes: its files give exactly what the fixture's CRI-O runs with. */
async function fixtureNode(tree: HostTree): Promise<void> {
  await tree.mkdir("/run/crio");
  await tree.symlink("../run", "/var/run");
  await tree.write(
    "/etc/containers/storage.conf",
    `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\nrunroot = "/run/containers/storage"\n\n[storage.options.overlay]\nmountopt = "nodev,metacopy=on"\n`,
  );
  await tree.write("/etc/crio/crio.conf", `[crio]\nlog_dir = "/var/log/crio/pods"\n`);
  await writeStores(tree, "/var/lib/images", ARTIFACT_STORES);
  const server = await startFakeCrio(
    tree.local(SOCKET),
    { graphroot: GRAPHROOT, imagestore: "/var/lib/images" },
    { config: await readFile(FIXTURE, "utf8") },
  );
  tree.onCleanup(() => server.close());
}

/** The snapshot with the cri source's facts changed (as if the CRI had answered otherwise). */
function withCri(snapshot: Snapshot, change: (facts: CriFacts) => Partial<CriFacts>): Snapshot {
  const cri = snapshot.sources.cri;
  if (cri.status !== "ok") throw new Error(`cri: ${cri.status}`);
  const facts = { ...cri.facts, ...change(cri.facts) };
  return { ...snapshot, sources: { ...snapshot.sources, cri: { ...cri, facts } } };
}

describe("STORE_CONFIG_NOT_IN_EFFECT: files against CRI-O's /config", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  /** The fixture node after its imagestore was edited to /var/lib/images2 without a restart. */
  async function imagestoreEdited(): Promise<Snapshot> {
    tree = await HostTree.create();
    await fixtureNode(tree);
    await writeStores(tree, "/var/lib/images2", ARTIFACT_STORES);
    return collectTree(tree);
  }

  it("is silent when the files say what CRI-O runs with", async () => {
    tree = await HostTree.create();
    await fixtureNode(tree);
    const snapshot = await collectTree(tree);
    expect(snapshot.sources["crio-inspect"].status).toBe("ok");
    expect(runChecks(snapshot).map((f) => f.id)).not.toContain("STORE_CONFIG_NOT_IN_EFFECT");
    expect(configDrift(snapshot)).toBe(0);
  });

  it("names each setting changed on disk but not yet in effect", async () => {
    tree = await HostTree.create();
    await fixtureNode(tree);
    // An edit after CRI-O started: a new imagestore and one artifact store fewer.
    await writeStores(tree, "/var/lib/images2", ["/var/lib/ssd-artifacts"]);
    const snapshot = await collectTree(tree);
    expect(snapshot.sources.cri.status === "ok" && snapshot.sources.cri.facts.answeredBy).toBeTruthy();
    const findings = runChecks(snapshot);
    const finding = findings.find((f) => f.id === "STORE_CONFIG_NOT_IN_EFFECT");
    expect(finding?.severity).toBe("warning");
    // The CRI answered and /info was read: the imagestore is CRI_IMAGEFS_MISMATCH's (from ImageFsInfo and /info), not a
    // second finding here with other advice.
    expect(finding?.title).toBe("CRI-O runs with 1 store setting other than its configuration files say");
    expect(finding?.evidence).toEqual([
      'additional_artifact_stores: files say ["/var/lib/ssd-artifacts"], CRI-O runs with ["/mnt/nfs-artifacts","/var/lib/ssd-artifacts"]',
    ]);
    expect(finding?.remediation.commands).toContain("systemctl restart crio");
    expect(findings.find((f) => f.id === "CRI_IMAGEFS_MISMATCH")?.evidence).toContain(
      "CRI-O /info storage_image is /var/lib/images; imagestore is configured as /var/lib/images2 (/etc/crio/crio.conf.d/10-stores.conf)",
    );
    // The gauge counts every setting that differs from /config, the imagestore too.
    expect(configDrift(snapshot)).toBe(2);
  });

  it("gives one finding, CRI_IMAGEFS_MISMATCH, for an imagestore edited without a restart while the CRI answers", async () => {
    const snapshot = await imagestoreEdited();
    // That the new path is no mounted disk is another matter (IMAGESTORE_NOT_MOUNTED): of the
    // findings that say the edit is not in effect, there is one.
    const about = runChecks(snapshot).filter(
      (f) => f.id !== "IMAGESTORE_NOT_MOUNTED" && f.evidence.some((e) => e.includes("/var/lib/images2")),
    );
    expect(about.map((f) => f.id)).toEqual(["CRI_IMAGEFS_MISMATCH"]);
    // The finding is one, but the setting still differs from what CRI-O runs with.
    expect(configDrift(snapshot)).toBe(1);
  });

  it("compares root and imagestore with /config itself when the CRI does not answer", async () => {
    const snapshot = await imagestoreEdited();
    // As if the gRPC side were down: judged from the same snapshot with no CRI answer (and so no /info).
    const findings = runChecks(withCri(snapshot, () => ({ answeredBy: null, crioInfo: null })));
    expect(findings.map((f) => f.id)).not.toContain("CRI_IMAGEFS_MISMATCH");
    expect(findings.find((f) => f.id === "STORE_CONFIG_NOT_IN_EFFECT")?.evidence).toEqual([
      'imagestore: files say "/var/lib/images2", CRI-O runs with "/var/lib/images"',
    ]);
  });

  it("compares root and imagestore with /config itself when the CRI answered without /info (crictl)", async () => {
    const snapshot = await imagestoreEdited();
    // CRI_IMAGEFS_MISMATCH has no /info to compare the imagestore with: this check speaks for it.
    const viaCrictl = withCri(snapshot, (facts) => {
      if (!facts.answeredBy) throw new Error("the CRI did not answer");
      return { answeredBy: { ...facts.answeredBy, via: "crictl" }, crioInfo: null };
    });
    expect(runChecks(viaCrictl).find((f) => f.id === "STORE_CONFIG_NOT_IN_EFFECT")?.evidence).toEqual([
      'imagestore: files say "/var/lib/images2", CRI-O runs with "/var/lib/images"',
    ]);
  });
});

describe("STORE_LIST_INVALID: the lists as written", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("reports duplicates, relative paths, stores inside graphroot and lists over OpenShift's limits", async () => {
    tree = await HostTree.create();
    await fixtureNode(tree);
    const layerStores = Array.from({ length: 6 }, (_, i) => `"/var/lib/layers-${i}:ref"`).join(", ");
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]
driver = "overlay"
graphroot = "${GRAPHROOT}"
runroot = "/run/containers/storage"

[storage.options]
additionalimagestores = ["/mnt/cache", "/mnt/cache/", "cache2", "${GRAPHROOT}/shared"]
additionallayerstores = [${layerStores}]
`,
    );
    await tree.write(
      "/etc/crio/crio.conf.d/20-artifacts.conf",
      `[crio.runtime]\nadditional_artifact_stores = ["/var/lib/artifacts", "/var/lib/artifacts", "artifacts2"]\n`,
    );
    const snapshot = await collectTree(tree);
    const findings = runChecks(snapshot);
    const finding = findings.find((f) => f.id === "STORE_LIST_INVALID");
    // Each relative entry is reported once, by STORE_LIST_INVALID: not also as a store that cannot
    // be read, and not inspected as if it were absolute ("cache2" is not "/cache2").
    // (STORE_CONFIG_NOT_IN_EFFECT quotes the edited artifact list against what CRI-O runs with:
    // another matter, about the list as a whole.)
    for (const relative of ["cache2", "artifacts2"]) {
      const about = findings.filter(
        (f) =>
          f.id !== "STORE_CONFIG_NOT_IN_EFFECT" &&
          (f.evidence.some((e) => e.includes(relative)) || f.title.includes(relative)),
      );
      expect(about.map((f) => f.id)).toEqual(["STORE_LIST_INVALID"]);
    }
    const roles = snapshot.sources.filesystems.facts?.roles.map((r) => r.path) ?? [];
    expect(roles).not.toContain("/cache2");
    expect(roles).not.toContain("cache2");
    // A relative image store keeps containers/storage, and so the runtime, from starting.
    expect(finding?.severity).toBe("critical");
    const images = "additionalimagestores (/etc/containers/storage.conf)";
    expect(finding?.evidence).toEqual([
      `${images}: /mnt/cache/ is listed more than once: only its first place counts`,
      `${images}: cache2 is a relative path: containers/storage refuses it and the runtime does not start`,
      `${images}: ${GRAPHROOT}/shared lies inside graphroot ${GRAPHROOT}`,
      "additionallayerstores (/etc/containers/storage.conf): 6 entries; OpenShift accepts at most 5 layer stores",
      "additional_artifact_stores (/etc/crio/crio.conf.d/20-artifacts.conf): /var/lib/artifacts is listed more than once: only its first place counts",
      "additional_artifact_stores (/etc/crio/crio.conf.d/20-artifacts.conf): artifacts2 is a relative path: CRI-O refuses it and the runtime does not start",
    ]);
  });

  it("is silent on well-formed lists", async () => {
    tree = await HostTree.create();
    await fixtureNode(tree);
    // Near misses: a sibling of imagestore whose name starts with its (not inside it), a path with
    // a trailing slash listed once, and a layer store with its :ref suffix.
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]
driver = "overlay"
graphroot = "${GRAPHROOT}"
runroot = "/run/containers/storage"

[storage.options]
additionalimagestores = ["/var/lib/images-cache", "/mnt/c/"]
additionallayerstores = ["/var/lib/stargz-store/store:ref"]

[storage.options.overlay]
mountopt = "nodev,metacopy=on"
`,
    );
    const snapshot = await collectTree(tree);
    const storage = snapshot.sources["storage-config"];
    if (storage.status !== "ok") throw new Error(`storage-config: ${storage.status}`);
    const cs = storage.facts.containersStorage;
    expect(cs.imagestore.value).toBe("/var/lib/images");
    expect(cs.additionalImageStores.value).toEqual(["/var/lib/images-cache", "/mnt/c/"]);
    expect(cs.additionalLayerStores.value.map((s) => s.path)).toEqual(["/var/lib/stargz-store/store"]);
    const ids = runChecks(snapshot).map((f) => f.id);
    expect(ids).not.toContain("STORE_LIST_INVALID");
  });
});

describe("UNCLEAN_SHUTDOWN", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("reports a stopped CRI-O whose clean-shutdown file is missing, and not one that stopped cleanly", async () => {
    tree = await HostTree.create();
    await fixtureNode(tree);
    await tree.write("/var/lib/crio/clean.shutdown.supported", "");
    const unclean = await collectTree(tree);
    const finding = runChecks(unclean).find((f) => f.id === "UNCLEAN_SHUTDOWN");
    expect(finding?.severity).toBe("info");
    expect(finding?.evidence[0]).toBe(
      "crio is not running; /var/lib/crio/clean.shutdown is missing and /var/lib/crio/clean.shutdown.supported exists",
    );
    expect(gaugeSamples(unclean, []).find((s) => s.name === "imagefs_runtime_unclean_shutdown")?.value).toBe(
      1,
    );

    await tree.write("/var/lib/crio/clean.shutdown", "");
    expect(runChecks(await collectTree(tree)).map((f) => f.id)).not.toContain("UNCLEAN_SHUTDOWN");
    await rm(tree.local("/var/lib/crio/clean.shutdown"));
  });

  it.skipIf(!journalReady)("reports the wipe CRI-O logged after an unclean shutdown", async () => {
    tree = await HostTree.create();
    await fixtureNode(tree);
    await tree.write("/var/lib/crio/clean.shutdown", "");
    const message =
      'time="2026-11-23T06:00:01Z" level=info msg="File /var/lib/crio/clean.shutdown not found. Wiping storage directory /var/lib/containers/storage because of suspected unclean shutdown"';
    await writeJournalFile(
      tree.local(`/var/log/journal/${MACHINE_ID}/system.journal`),
      [
        journalEntry(new Date(Date.now() - 3600_000), {
          _SYSTEMD_UNIT: "crio-wipe.service",
          MESSAGE: message,
        }),
      ],
      tree.scratch,
    );
    const finding = runChecks(await collectTree(tree)).find((f) => f.id === "UNCLEAN_SHUTDOWN");
    expect(finding?.subject).toBe("crio-wipe.service");
    expect(finding?.title).toMatch(/^CRI-O found an unclean shutdown and wiped storage \(1 times, last /);
    expect(finding?.evidence).toEqual([`crio-wipe.service: ${message}`]);
  });
});

describe("the support bundle of a node with additional stores", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("holds CRI-O's running configuration and /info, the artifact stores' indexes, and the store findings", async () => {
    tree = await HostTree.create();
    await fixtureNode(tree);
    // The fixture's first artifact store exists (a writable one); the second is missing.
    const index = JSON.stringify({ schemaVersion: 2, manifests: [] });
    await tree.write("/mnt/nfs-artifacts/artifacts/index.json", index);
    const run = await mustGather(tree, ["-o", "-"]);
    expect(run.exitCode, run.stderr.toString()).toBe(0);
    const bundle = await openBundle(Buffer.from(run.stdout));
    expect(bundle.text("commands/crio-config.toml")).toBe(await readFile(FIXTURE, "utf8"));
    expect(bundle.json("commands/crio-info.json")).toMatchObject({ storage_image: "/var/lib/images" });
    expect(bundle.text("host/mnt/nfs-artifacts/artifacts/index.json")).toBe(index);
    const item = bundle.manifest.items.find((i) => i.path === "commands/crio-config.toml");
    expect(item).toMatchObject({ status: "ok", source: "GET /config on /var/run/crio/crio.sock" });
    const ids = bundle.json<{ findings: { id: string; subject?: string }[] }>("findings.json").findings;
    expect(ids).toContainEqual(
      expect.objectContaining({ id: "ARTIFACT_STORE_INVALID", subject: "/var/lib/ssd-artifacts" }),
    );
  });
});
