import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Finding } from "../collector/checks/finding.js";
import { runChecks } from "../collector/checks/registry.js";
import type { LayerStoresFacts } from "../collector/sources/layer-stores.js";
import { journalEntry, MACHINE_ID, writeJournalFile } from "./support/journal.js";
import { mountBindfs } from "./support/lazy-pull.js";
import { requireParts } from "./support/requirements.js";
import {
  baseNode,
  collectTree,
  GRAPHROOT,
  HostTree,
  imagesJson,
  layersJson,
  RUNROOT,
  startRuntime,
} from "./support/scenarios.js";

const ready = requireParts("lazy-pull log tests", ["root", "loop", "bindfs", "journal-remote"]);

const STORE = "/var/lib/stargz-store/store";
const SECRET = "Bearer s3cr3t-t0ken";

/**
 * A CRI-O node set up for stargz-store: the store is a real FUSE mount (bindfs over a directory
 * laid out as a store), stargz-store's command line is that of the reference unit
 * (script/config-cri-o/etc/systemd/system/stargz-store.service, plus --addr of v0.16), and its
 * config.toml holds a mirror with an Authorization header.
 */
async function stargzNode(tree: HostTree, options: { storageOptions: string }) {
  await baseNode(tree);
  await tree.write(
    "/etc/containers/storage.conf",
    `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\nrunroot = "${RUNROOT}"\n[storage.options]\n${options.storageOptions}\n`,
  );
  await tree.write(
    "/etc/stargz-store/config.toml",
    `# written by the test, with stargz-store's keys (fs/config/config.go, cmd/stargz-store/main.go)
metrics_address = "127.0.0.1:8234"
prefetch_timeout_sec = 10
[blob]
fetching_timeout_sec = 300
[[resolver.host."registry.example.com".mirrors]]
host = "mirror.example.com"
insecure = false
[resolver.host."registry.example.com".mirrors.header]
Authorization = "${SECRET}"
`,
  );
  const source = path.join(tree.scratch, "store-src");
  await mkdir(source, { recursive: true });
  const bindfs = await mountBindfs(source, tree.local(STORE));
  tree.onCleanup(async () => {
    bindfs.process.kill("SIGKILL");
    await bindfs.process;
  });
  await tree.startProcess("/usr/local/bin/stargz-store", [
    "--log-level=debug",
    "--config=/etc/stargz-store/config.toml",
    "--addr=/var/lib/stargz-store/store.sock",
    STORE,
  ]);
  await startRuntime(tree);
  return source;
}

/** Two fully pulled images in graphroot, laid out and recorded as containers/storage does. */
async function fullImages(tree: HostTree): Promise<void> {
  await tree.write(`${GRAPHROOT}/overlay-images/images.json`, imagesJson(2));
  await tree.write(`${GRAPHROOT}/overlay-layers/layers.json`, layersJson(2, 4096));
  for (const layer of JSON.parse(layersJson(2, 4096)) as { id: string }[]) {
    await tree.write(`${GRAPHROOT}/overlay/${layer.id}/diff/etc/os-release`, "ID=test\n");
  }
}

/** stargz-store's logrus JSON line, as journald stores its MESSAGE. */
const logrus = (level: string, msg: string, error?: string) =>
  JSON.stringify({ ...(error ? { error } : {}), level, msg, time: new Date().toISOString() });

function byId(findings: Finding[], id: string): Finding | undefined {
  return findings.find((f) => f.id === id);
}

describe.skipIf(!ready)("stargz-store and CRI-O in the journal, and the store's configuration", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("explains why nothing is served lazily, from the store's own log lines", async () => {
    tree = await HostTree.create();
    await stargzNode(tree, { storageOptions: `additionallayerstores = ["${STORE}:ref"]` });
    await fullImages(tree);
    const ago = (minutes: number) => new Date(Date.now() - minutes * 60_000);
    const stargz = (minutes: number, message: string) =>
      journalEntry(ago(minutes), { _SYSTEMD_UNIT: "stargz-store.service", MESSAGE: message });
    await writeJournalFile(
      tree.local(`/var/log/journal/${MACHINE_ID}/system.journal`),
      [
        stargz(50, logrus("info", "Received status code: 401. Refreshing creds...")),
        stargz(
          49,
          logrus(
            "warning",
            'failed to mount layer "diff": "sha256:aa"',
            "failed to resolve layer: failed to access to the registry with code 401",
          ),
        ),
        stargz(
          40,
          logrus(
            "debug",
            "error resolving layer (context error: <nil>)",
            "failed to parse footer: blob is too small; 41 < 51",
          ),
        ),
        stargz(
          30,
          logrus(
            "error",
            "statFile error",
            "file.Read: chunk verification failed at offset 0: invalid chunk: not verified",
          ),
        ),
        journalEntry(ago(20), {
          UNIT: "stargz-store.service",
          SYSLOG_IDENTIFIER: "systemd",
          MESSAGE: "stargz-store.service: Main process exited, code=killed, status=9/KILL",
        }),
        journalEntry(ago(10), {
          _SYSTEMD_UNIT: "crio.service",
          MESSAGE: `level=error msg="overlay: can't stat additionallayerstore dir: stat ${STORE}: transport endpoint is not connected"`,
        }),
      ],
      tree.scratch,
    );
    const snapshot = await collectTree(tree);
    expect(JSON.stringify(snapshot)).not.toContain("s3cr3t");

    const stores = snapshot.sources["layer-stores"];
    if (stores.status !== "ok") throw new Error(stores.status);
    const facts: LayerStoresFacts = stores.facts;
    const store = facts.stores[0]!;
    expect(store.process).toMatchObject({
      kind: "stargz-store",
      config: "/etc/stargz-store/config.toml",
      mountpoint: STORE,
    });
    expect(store.config?.mirrors).toEqual([
      {
        registry: "registry.example.com",
        host: "mirror.example.com",
        insecure: false,
        headerNames: ["Authorization"],
      },
    ]);
    expect(store.config?.unknownKeys).toEqual(["metrics_address"]);
    expect(store.versionHints[0]).toContain("v0.16");

    const findings = runChecks(snapshot);
    const ineffective = byId(findings, "LAZY_PULL_INEFFECTIVE");
    const reasons = ineffective?.evidence.join("\n") ?? "";
    expect(reasons).toContain("1 × NotLazyPullable from stargz-store.service");
    expect(reasons).toContain("1 × RegistryAuthFailed from stargz-store.service");
    expect(byId(findings, "LAYER_STORE_AUTH_FAILURES")?.evidence.join("\n")).toContain("RegistryAuthFailed");
    expect(byId(findings, "LAYER_STORE_VERIFICATION_FAILURES")?.severity).toBe("critical");
    expect(byId(findings, "LAYER_STORE_AUTH_HELPER_MISSING")?.remediation.commands[0]).toContain(
      "stargz-store-helper",
    );
    const journal = snapshot.sources.journal;
    if (journal.status !== "ok") throw new Error(journal.status);
    expect(journal.facts.counts.map((c) => `${c.pack}/${c.reason}`).sort()).toEqual([
      "crio-layer-store/LayerStoreDirMissing",
      "stargz-store-service/ServiceCrashed",
      "stargz-store/NotLazyPullable",
      "stargz-store/RegistryAuthFailed",
      "stargz-store/RegistryAuthRefresh",
      // The read error names its cause: the first matching rule, verification, wins.
      "stargz-store/VerificationFailed",
    ]);
  });

  it("finds a layer store listed as an image store, a missing :ref and an unknown option", async () => {
    tree = await HostTree.create();
    await stargzNode(tree, {
      storageOptions: `additionalimagestores = ["${STORE}"]\nadditionallayerstores = ["${STORE}:refs"]`,
    });
    const finding = byId(runChecks(await collectTree(tree)), "STORAGE_CONF_STORE_CONFUSION");
    expect(finding?.evidence).toEqual(
      expect.arrayContaining([
        `additionallayerstores entry ${STORE}:refs: unknown option refs (only :ref exists)`,
        `additionallayerstores entry ${STORE}:refs: stargz-store needs ':ref' (it resolves layers by image reference)`,
        `additionalimagestores entry ${STORE} is a layer store: it belongs in additionallayerstores`,
      ]),
    );
  });

  it("tells a runtime that asks by TOC digest from a store that names layers by blob digest", async () => {
    tree = await HostTree.create();
    const source = await stargzNode(tree, { storageOptions: `additionallayerstores = ["${STORE}:ref"]` });
    // One lazy layer, recorded as containers/storage records it, served in stargz-store v0.15's format.
    const ref = Buffer.from("registry.example.com/app:1").toString("base64");
    const digest = `sha256:${"ab".repeat(32)}`;
    await mkdir(path.join(source, ref, digest, "diff"), { recursive: true });
    await writeFile(
      path.join(source, ref, digest, "info"),
      JSON.stringify({
        "compressed-diff-digest": digest,
        "compressed-size": 10,
        "diff-digest": `sha256:${"cd".repeat(32)}`,
        "diff-size": 20,
        compression: 2,
      }),
    );
    const id = "ef".repeat(32);
    await tree.write(`${GRAPHROOT}/overlay/${id}/additionallayer`, `${STORE}/${ref}/${digest}`);
    await tree.symlink(`${STORE}/${ref}/${digest}/diff`, `${GRAPHROOT}/overlay/${id}/diff`);
    await tree.write(
      `${GRAPHROOT}/overlay-layers/layers.json`,
      JSON.stringify([{ id, "compressed-diff-digest": digest, "diff-size": 20 }]),
    );
    const snapshot = await collectTree(tree);
    const skew = byId(runChecks(snapshot), "LAYER_STORE_VERSION_SKEW");
    expect(skew?.evidence).toEqual([
      "runtime cri-o 1.31.3 looks layers up by TOC digest",
      "the store serves layers named by blob digest (info has compressed-diff-digest: v0.15 or older)",
    ]);
    expect(byId(runChecks(snapshot), "LAZY_LAYERS_BROKEN")).toBeUndefined();
  });

  // stargz-store names the stat file after the layer's blob digest (fs/layer/node.go); the path
  // element is the blob digest up to v0.15 and the TOC digest from v0.16 (fact sheet §1.4-§1.5).
  it.each([
    ["v0.16: path by TOC digest", "toc"],
    ["v0.15 and older: path by blob digest", "blob"],
  ] as const)("reads a lazy layer's fetch progress through the real mount (%s)", async (_layout, pathBy) => {
    tree = await HostTree.create();
    const source = await stargzNode(tree, { storageOptions: `additionallayerstores = ["${STORE}:ref"]` });
    const ref = Buffer.from("registry.example.com/app:1").toString("base64");
    const blob = `sha256:${"b1".repeat(32)}`;
    const toc = `sha256:${"c2".repeat(32)}`;
    const element = pathBy === "toc" ? toc : blob;
    const layer = path.join(source, ref, element);
    await mkdir(path.join(layer, "diff", ".stargz-snapshotter"), { recursive: true });
    await writeFile(
      path.join(layer, "info"),
      JSON.stringify(
        pathBy === "toc"
          ? { "diff-size": -1, compression: 2, "toc-digest": toc, flags: { "expected-layer-diffid": blob } }
          : {
              "compressed-diff-digest": blob,
              "compressed-size": 4000,
              "diff-digest": blob,
              "diff-size": 9000,
              compression: 2,
            },
      ),
    );
    // What stargz-store's statJSON holds after a read failed at a quarter of the layer.
    await writeFile(
      path.join(layer, "diff", ".stargz-snapshotter", `${blob}.json`),
      JSON.stringify({
        error: "file.Read: failed to access to the registry with code 401",
        digest: blob,
        size: 4000,
        fetchedSize: 1000,
        fetchedPercent: 25,
      }),
    );
    const id = "ef".repeat(32);
    await tree.write(`${GRAPHROOT}/overlay/${id}/additionallayer`, `${STORE}/${ref}/${element}`);
    await tree.symlink(`${STORE}/${ref}/${element}/diff`, `${GRAPHROOT}/overlay/${id}/diff`);
    await tree.write(
      `${GRAPHROOT}/overlay-layers/layers.json`,
      JSON.stringify([
        pathBy === "toc"
          ? { id, "toc-digest": toc, "diff-size": -1, flags: { "expected-layer-diffid": blob } }
          : { id, "compressed-diff-digest": blob, "diff-size": 9000 },
      ]),
    );
    const stores = (await collectTree(tree)).sources["layer-stores"];
    if (stores.status !== "ok") throw new Error(stores.status);
    const store = stores.facts.stores[0]!;
    expect(store.responsive).toBe(true);
    expect(store.sampleProgress).toEqual({
      digest: blob,
      error: "file.Read: failed to access to the registry with code 401",
      size: 4000,
      fetchedSize: 1000,
      fetchedPercent: 25,
    });
    // The directory was listed and read in the probe's child, as one timed operation.
    const read = store.probe?.results.find((r) => r.path.endsWith("/diff/.stargz-snapshotter"));
    expect(read).toMatchObject({ op: "read", ok: true });
  });

  /** A CRI-O node whose storage.conf says `storageOptions`, stargz-store running for STORE, and no FUSE mount. */
  async function unmountedStoreNode(storageOptions: string): Promise<Finding[]> {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\nrunroot = "${RUNROOT}"\n[storage.options]\n${storageOptions}\n`,
    );
    await tree.mkdir(STORE); // the directory is there, as the unit's ExecStartPre would leave it
    await tree.startProcess("/usr/local/bin/stargz-store", ["--log-level=debug", STORE]);
    await startRuntime(tree);
    return runChecks(await collectTree(tree));
  }

  it("finds a configured store that its running server has not mounted", async () => {
    const findings = await unmountedStoreNode(`additionallayerstores = ["${STORE}:ref"]`);
    const finding = byId(findings, "LAYER_STORE_NOT_MOUNTED");
    expect(finding).toMatchObject({ severity: "critical", subject: STORE });
    expect(finding?.evidence).toContain(`nothing is mounted at ${STORE}`);
    expect(finding?.remediation.commands).toEqual([
      "systemctl restart stargz-store",
      `findmnt ${STORE}`,
      "systemctl restart crio",
    ]);
    expect(byId(findings, "LAYER_STORE_SERVICE_DOWN")).toBeUndefined();
  });

  it("says partial pulls are off beside a layer store, and not once they are on", async () => {
    const off = byId(
      await unmountedStoreNode(`additionallayerstores = ["${STORE}:ref"]`),
      "PARTIAL_PULLS_DISABLED",
    );
    expect(off?.severity).toBe("info");
    expect(off?.evidence[0]).toMatch(/^pull_options: \{\} \(/);
    expect(off?.remediation.commands).toContain('#   enable_partial_images = "true"');
    await tree.cleanup();
    const on = await unmountedStoreNode(
      `additionallayerstores = ["${STORE}:ref"]\n[storage.options.pull_options]\nenable_partial_images = "true"`,
    );
    expect(byId(on, "PARTIAL_PULLS_DISABLED")).toBeUndefined();
  });

  it("finds a relative layer store path, which containers/storage refuses", async () => {
    const findings = await unmountedStoreNode(`additionallayerstores = ["var/lib/stargz-store/store:ref"]`);
    const finding = byId(findings, "STORAGE_CONF_STORE_CONFUSION");
    expect(finding?.severity).toBe("warning");
    expect(finding?.evidence).toContain(
      "additionallayerstores entry var/lib/stargz-store/store:ref: the path is not absolute",
    );
    // The relative entry is not probed as a store (nothing to mount-check at a relative path).
    expect(byId(findings, "LAYER_STORE_NOT_MOUNTED")).toBeUndefined();
  });
});
