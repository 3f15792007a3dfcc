import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Finding } from "../collector/checks/finding.js";
import { runChecks } from "../collector/checks/registry.js";
import { collect } from "../collector/collect.js";
import type { Snapshot } from "../collector/snapshot.js";
import type { LayerStoreFacts } from "../collector/sources/layer-stores.js";
import type { LayersFacts } from "../collector/sources/layers.js";
import { HostTree } from "./support/host-tree.js";
import {
  type Bindfs,
  layOutStore,
  mountBindfs,
  podman,
  pushImages,
  type Registry,
  startRegistry,
} from "./support/lazy-pull.js";
import { requireParts } from "./support/requirements.js";

const ready = requireParts("lazy pull tests", ["root", "bindfs", "podman"]);

/** The bound the whole collection must stay within while the store hangs: a hang guard, not a benchmark. */
const HANG_BOUND_MS = 10_000;

/**
 * One real setup for the whole file: podman (Debian's 4.3.1) pulls test/app:1 through a layer
 * store that bindfs serves, and test/full:1 normally. The collector runs on this machine's own
 * root ("/"), as podman wrote real paths; a stand-in crio process (its environment names the
 * storage.conf) and the bindfs process are what its private /proc shows.
 */
describe.skipIf(!ready)("lazy pulling through a real additional layer store", () => {
  let dir: string;
  let tree: HostTree;
  let registry: Registry;
  let bindfs: Bindfs;
  let storageConf: string;
  let store: string;
  let storeSource: string;
  let appRef: string;
  let appDigests: string[];
  /** Each layer directory's digest -> the blob digest its stat file is named by. */
  const blobOf = new Map<string, string>();
  let fullRef: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "imagefs-lazy-"));
    tree = await HostTree.create();
    registry = await startRegistry(path.join(dir, "registry"));
    await pushImages(dir, registry);
    storeSource = path.join(dir, "store-src");
    store = path.join(dir, "store");
    const app = await layOutStore(storeSource, registry, "test/app", "1");
    appRef = app.ref;
    appDigests = app.digests;
    // stargz-store's stat file in each layer root, named by the layer's blob digest
    // (fs/layer/node.go), which from v0.16 is not the digest the layer's directory is named by
    // (a TOC digest): here each file gets a digest of its own, so only listing the directory finds it.
    // fetchedPercent is written as a string, a type stargz-store never writes: it must be dropped.
    for (const digest of appDigests) {
      const state = path.join(
        storeSource,
        Buffer.from(appRef).toString("base64"),
        digest,
        "diff",
        ".stargz-snapshotter",
      );
      const blob = `sha256:${createHash("sha256").update(`blob of ${digest}`).digest("hex")}`;
      blobOf.set(digest, blob);
      await mkdir(state, { recursive: true });
      await writeFile(
        path.join(state, `${blob}.json`),
        JSON.stringify({ digest: blob, size: 2000, fetchedSize: 2000, fetchedPercent: "100" }),
      );
    }
    fullRef = `${registry.host}/test/full:1`;
    bindfs = await mountBindfs(storeSource, store);
    storageConf = path.join(dir, "storage.conf");
    await writeFile(
      storageConf,
      `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/root"\nrunroot = "${dir}/run"\n[storage.options]\nadditionallayerstores = ["${store}:ref"]\n`,
    );
    for (const ref of [appRef, fullRef]) {
      const pull = await podman(storageConf, ["pull", "--tls-verify=false", ref]);
      if (pull.exitCode !== 0) throw new Error(`podman pull ${ref}: ${pull.stderr}`);
    }
    await tree.startProcess("crio", ["--log-level", "info"], { CONTAINERS_STORAGE_CONF: storageConf });
    await tree.exposeProcess(bindfs.pid);
  }, 180_000);

  afterAll(async () => {
    await podman(storageConf, ["rmi", "--all", "--force"]).catch(() => undefined);
    signal(bindfs?.pid, "SIGCONT");
    signal(bindfs?.pid, "SIGKILL");
    await execa("fusermount3", ["-uz", store], { reject: false });
    await execa("umount", ["-l", store], { reject: false });
    // containers/storage bind-mounts <graphroot>/overlay on itself.
    await execa("umount", ["-l", path.join(dir, "root", "overlay")], { reject: false });
    await registry?.stop();
    await tree?.cleanup();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  const collectHere = () =>
    collect({ hostRoot: "/", procRoot: tree.procRoot, criTimeoutMs: 500, guardedStatMs: 1000 });

  it("classifies podman's layers as lazy or full, per image, and finds the store healthy", async () => {
    const snapshot = await collectHere();
    const layers = sourceFacts<LayersFacts>(snapshot, "layers");
    expect(layers.totals.lazy.layers).toBe(3);
    expect(layers.totals.full.layers).toBe(2);
    const app = layers.images.find((image) => image.name === appRef);
    expect(app?.layers).toMatchObject({ lazy: 3, full: 0 });
    expect(layers.images.find((image) => image.name === fullRef)?.layers).toMatchObject({ lazy: 0, full: 2 });
    expect(layers.lazyLayers.every((layer) => layer.layerStore === store && layer.ref === appRef)).toBe(true);

    const facts = storeFacts(snapshot);
    expect(facts.mount?.fstype).toMatch(/^fuse/);
    expect(facts.process?.pid).toBe(bindfs.pid);
    expect(facts.responsive).toBe(true);
    // This containers/storage asks by blob digest and reads the older info format.
    expect(facts.sampleInfo).toHaveProperty("compressed-diff-digest");
    // The sampled layer's fetch progress, read through the mount from the layer podman recorded.
    // The sampled layer is the store's first lazy layer; its stat file has its own (blob) digest.
    const sampled = layers.lazyLayers.find((layer) => layer.layerStore === store);
    // A layer of the app image, in the store: its stat file is named by a digest of its own.
    expect(sampled).toMatchObject({ ref: appRef, layerStore: store });
    expect(appDigests).toContain(path.basename(sampled?.target ?? ""));
    const blob = blobOf.get(path.basename(sampled?.target ?? ""));
    // fetchedPercent ("100", a string) is dropped; the fields of the right type are kept.
    expect(facts.sampleProgress).toEqual({ digest: blob, size: 2000, fetchedSize: 2000 });
    expect(facts.brokenLayers).toEqual([]);
    expect(facts.checkedLayers).toBe(3);

    const ids = runChecks(snapshot)
      .filter((f) => f.severity !== "info")
      .map((f) => f.id);
    expect(ids.filter((id) => /LAZY|LAYER_STORE|STORE_CONFUSION/.test(id))).toEqual([]);
  });

  it("diagnose reports slow store operations against --probe-slow-ms", async () => {
    const snapshot = await collectHere();
    const facts = storeFacts(snapshot);
    expect(facts.probe?.results.length).toBeGreaterThan(0);
    // A store that answered its first operation in 800 ms: a real snapshot, that one figure set.
    facts.probe!.results[0]!.ms = 800;
    const file = path.join(dir, "slow-store.json");
    await writeFile(file, JSON.stringify(snapshot));
    const slowIds = async (...flags: string[]) => {
      const run = await execa(
        process.execPath,
        [
          path.resolve("dist/collector/cli.js"),
          "diagnose",
          "--snapshot",
          file,
          "--json",
          "--fail-on",
          "never",
          ...flags,
        ],
        { reject: false },
      );
      expect(run.exitCode, run.stderr).toBe(0);
      const report = JSON.parse(run.stdout) as { findings: Finding[] };
      return report.findings.filter((f) => f.id === "LAYER_STORE_SLOW").map((f) => f.subject);
    };
    expect(await slowIds()).toEqual([store]);
    expect(await slowIds("--probe-slow-ms", "1000")).toEqual([]);
  });

  it("reports a stopped store as unresponsive within bounded time, and recovers", async () => {
    process.kill(bindfs.pid, "SIGSTOP");
    try {
      // The kernel answers from its FUSE attribute cache for about a second: wait it out.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const started = performance.now();
      const snapshot = await collectHere();
      expect(performance.now() - started).toBeLessThan(HANG_BOUND_MS);
      for (const [name, result] of Object.entries(snapshot.sources)) {
        expect(["ok", "absent"], `source ${name}`).toContain(result.status);
      }
      const facts = storeFacts(snapshot);
      expect(facts.responsive).toBe(false);
      expect(facts.probe?.hungAt?.op).toBe("statfs");
      const finding = byId(runChecks(snapshot), "LAYER_STORE_UNRESPONSIVE")[0];
      expect(finding?.severity).toBe("critical");
      // One-shot collect knows only this run: the hang was first seen now.
      expect(finding?.evidence[0]).toBe(
        `unresponsive since ${facts.unresponsiveSince} (first seen now, by this collection)`,
      );
      expect(finding?.remediation.commands).toContain(`systemctl restart stargz-store`);
    } finally {
      process.kill(bindfs.pid, "SIGCONT");
    }
    expect(storeFacts(await collectHere()).responsive).toBe(true);
  });

  it("finds every lazy layer broken when the server dies, and when the store is unmounted", async () => {
    process.kill(bindfs.pid, "SIGKILL");
    await bindfs.process;
    const dead = await collectHere();
    const findings = runChecks(dead);
    const down = byId(findings, "LAYER_STORE_SERVICE_DOWN")[0];
    expect(down?.evidence.join("\n")).toContain("Transport endpoint is not connected");
    expect(down?.remediation.commands).toContain(`fusermount3 -uz ${store}`);
    const broken = byId(findings, "LAZY_LAYERS_BROKEN")[0];
    expect(broken?.title).toBe("3 lazily pulled layers are broken");
    expect(broken?.remediation.commands).toContain(`crictl rmi ${appRef}`);

    await execa("fusermount3", ["-uz", store], { reject: false });
    const gone = byId(runChecks(await collectHere()), "LAZY_LAYERS_BROKEN")[0];
    expect(gone?.evidence[0]).toContain("the store is not mounted");
  });
});

function signal(pid: number | undefined, name: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

function sourceFacts<T>(snapshot: Snapshot, name: keyof Snapshot["sources"]): T {
  const result = snapshot.sources[name];
  if (result.status !== "ok")
    throw new Error(`${name}: ${result.status} ${"error" in result ? result.error : ""}`);
  return result.facts as T;
}

function storeFacts(snapshot: Snapshot): LayerStoreFacts {
  const stores = sourceFacts<{ stores: LayerStoreFacts[] }>(snapshot, "layer-stores").stores;
  if (stores.length !== 1) throw new Error(`expected one layer store, got ${stores.length}`);
  return stores[0]!;
}

function byId(findings: Finding[], id: string): Finding[] {
  return findings.filter((f) => f.id === id);
}
