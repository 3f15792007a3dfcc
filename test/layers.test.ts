import { createHash } from "node:crypto";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { Snapshot } from "../collector/snapshot.js";
import { decodeRef, type LayersFacts, MAX_LAZY_LAYERS } from "../collector/sources/layers.js";
import { requireParts } from "./support/requirements.js";
import {
  collectTree,
  GRAPHROOT,
  HostTree,
  IMAGESTORE,
  overlayLayerDir,
  RUNROOT,
  splitImageNode,
  writeKubeletConfig,
} from "./support/scenarios.js";

/**
 * Layer trees laid out as containers/storage lays them out (drivers/overlay, layers.go,
 * images.go): `overlay/<id>/` with `link`, `lower`, `work/` and either a real `diff/` or, for a
 * layer taken from an additional layer store (additionalLayer.CreateAs), an `additionallayer`
 * file holding the layer's path in the store and a `diff` symlink to `<that path>/diff`;
 * `overlay/l/<short>` links; `overlay-layers/layers.json` records with the fields of
 * layers.go's Layer; `overlay-images/images.json`. The store itself is a plain directory
 * standing for stargz-store's FUSE mount: the collector never looks into it.
 */

const STORE = "/var/lib/stargz-store/store";
const OLD_STORE = "/var/lib/old-store";
const CREATED = "2026-11-20T09:00:00.000000000Z";

const sha = (seed: string) => createHash("sha256").update(seed).digest("hex");
const digest = (seed: string) => `sha256:${sha(seed)}`;
const b64 = (ref: string) => Buffer.from(ref).toString("base64");

type Record = { [key: string]: unknown };

/** A layer record as a whole-blob pull writes it. */
function fullRecord(id: string, parent: string | null, diffSize: number, compressedSize: number): Record {
  return {
    id,
    ...(parent ? { parent } : {}),
    created: CREATED,
    "compressed-diff-digest": digest(`blob-${id}`),
    "compressed-size": compressedSize,
    "diff-digest": digest(`diff-${id}`),
    "diff-size": diffSize,
    compression: 2,
    uidset: [0],
    gidset: [0],
  };
}

/** What PutAdditionalLayer records from stargz-store >= 0.16's info: TOC digest, diff-size -1. */
function tocRecord(id: string, parent: string | null, toc: string): Record {
  return {
    id,
    ...(parent ? { parent } : {}),
    created: CREATED,
    "toc-digest": toc,
    "diff-size": -1,
    compression: 2,
    flags: { "expected-layer-diffid": digest(`diffid-${id}`) },
  };
}

/** What PutAdditionalLayer records from stargz-store <= 0.15's info: the digests and sizes. */
function digestsRecord(id: string, parent: string | null, blob: string, diffSize: number): Record {
  return {
    id,
    ...(parent ? { parent } : {}),
    created: CREATED,
    "compressed-diff-digest": blob,
    "compressed-size": 300_000,
    "diff-digest": digest(`diff-${id}`),
    "diff-size": diffSize,
    compression: 2,
  };
}

/** A zstd:chunked partial pull by containers/storage itself: TOC digest, real files. */
function partialRecord(id: string, parent: string | null, diffSize: number): Record {
  return {
    id,
    ...(parent ? { parent } : {}),
    created: CREATED,
    "compressed-diff-digest": digest(`blob-${id}`),
    "compressed-size": 20_000,
    "toc-digest": digest(`toc-${id}`),
    "diff-size": diffSize,
    compression: 4,
    flags: { "expected-layer-diffid": digest(`diffid-${id}`) },
    "big-data-names": ["zstd-chunked-manifest", "zstd-chunked-layer-data"],
  };
}

async function fullLayer(tree: HostTree, home: string, id: string, parent: string | null): Promise<void> {
  const dir = await overlayLayerDir(tree, home, id, parent);
  await tree.write(`${dir}/diff/etc/os-release`, `ID=${id.slice(0, 8)}\n`);
  await tree.write(`${home}/overlay-layers/${id}.tar-split.gz`, "");
}

async function partialLayer(tree: HostTree, home: string, id: string, parent: string | null): Promise<void> {
  await fullLayer(tree, home, id, parent);
  await tree.write(`${home}/overlay-layers/${id}/=enN0ZC1jaHVua2VkLW1hbmlmZXN0`, "{}");
  await tree.write(`${home}/overlay-layers/${id}/=enN0ZC1jaHVua2VkLWxheWVyLWRhdGE=`, '{"format":1}');
}

/** additionalLayer.CreateAs: `additionallayer` (no newline) and the diff symlink into the store. */
async function lazyLayer(
  tree: HostTree,
  home: string,
  id: string,
  parent: string | null,
  storeLayer: string,
): Promise<void> {
  const dir = await overlayLayerDir(tree, home, id, parent);
  await tree.write(`${dir}/additionallayer`, storeLayer);
  await tree.symlink(`${storeLayer}/diff`, `${dir}/diff`);
  // What the store serves there (never read by the collector).
  await tree.write(`${storeLayer}/diff/bin/tool`, "#!/bin/sh\n");
  await tree.write(`${storeLayer}/info`, "{}");
  await tree.write(`${storeLayer}/blob`, "");
}

function imageRecord(id: string, names: string[], top: string): Record {
  return { id, ...(names.length > 0 ? { names } : {}), layer: top, metadata: "{}", created: CREATED };
}

/** A CRI-O node with imagestore on its own disk and stargz-store configured with ":ref". */
async function lazyNode(tree: HostTree, options: { layerStores?: string } = {}): Promise<void> {
  await splitImageNode(tree, { imagestoreFs: "ext4" });
  await tree.write(
    "/etc/containers/storage.conf",
    `[storage]
driver = "overlay"
graphroot = "${GRAPHROOT}"
runroot = "${RUNROOT}"

[storage.options]
additionallayerstores = [${options.layerStores ?? `"${STORE}:ref"`}]

[storage.options.overlay]
mountopt = "nodev,metacopy=on"
`,
  );
  await tree.mkdir(`${GRAPHROOT}/overlay/l`);
  await tree.mkdir(`${IMAGESTORE}/overlay/l`);
}

function layersOf(snapshot: Snapshot): LayersFacts {
  const result = snapshot.sources.layers;
  if (result.status !== "ok") throw new Error(`layers source: ${JSON.stringify(result)}`);
  return result.facts;
}

const ready = requireParts("layers source tests", ["root", "loop"]);

describe("decodeRef", () => {
  it("decodes base64 image references and refuses anything else", () => {
    expect(decodeRef(b64("registry.example.com/app:1"))).toBe("registry.example.com/app:1");
    expect(decodeRef(b64("127.0.0.1:5000/test/app@sha256:00"))).toBe("127.0.0.1:5000/test/app@sha256:00");
    expect(decodeRef(`sha256:${"ab".repeat(32)}`)).toBeNull();
    expect(decodeRef("abc")).toBeNull();
    expect(decodeRef(b64("two words"))).toBeNull();
    expect(decodeRef(Buffer.from([0xff, 0xfe, 0x00, 0x41]).toString("base64"))).toBeNull();
    expect(decodeRef("")).toBeNull();
  });
});

describe.skipIf(!ready)("layers: which layers were really served lazily", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("classifies lazy, partial and full layers across graphroot and imagestore, per image and node", async () => {
    tree = await HostTree.create();
    await lazyNode(tree);
    const refA = "registry.example.com/lazy/app:1";
    const refB = "registry.example.com/old/app:2";
    const refG = "registry.example.com/moved/app:5";
    const [A1, A2, A3, U1] = ["A1", "A2", "A3", "U1"].map(sha) as [string, string, string, string];
    const [B1, B2, C2, D1, E1, F, G, H, K] = ["B1", "B2", "C2", "D1", "E1", "F", "G", "H", "K"].map(
      sha,
    ) as string[];
    const tocA2 = digest("toc-A2");
    const tocA3 = digest("toc-A3");
    const tocU1 = digest("toc-U1");
    const blobB2 = digest("blob-B2");
    const blobG = digest("blob-G");

    // imagestore (containers/storage >= 1.58): image A, a full base and two lazy layers found by
    // TOC digest, recorded in stargz-store >= 0.16's format; and a lazy layer with no record.
    await fullLayer(tree, IMAGESTORE, A1!, null);
    await lazyLayer(tree, IMAGESTORE, A2!, A1!, `${STORE}/${b64(refA)}/${tocA2}`);
    await lazyLayer(tree, IMAGESTORE, A3!, A2!, `${STORE}/${b64(refA)}/${tocA3}`);
    await lazyLayer(tree, IMAGESTORE, U1!, A3!, `${STORE}/${b64(refA)}/${tocU1}`);
    await tree.write(
      `${IMAGESTORE}/overlay-layers/layers.json`,
      JSON.stringify([
        fullRecord(A1!, null, 1_000_000, 400_000),
        tocRecord(A2!, A1!, tocA2),
        tocRecord(A3!, A2!, tocA3),
      ]),
    );
    await tree.write(
      `${IMAGESTORE}/overlay-images/images.json`,
      JSON.stringify([imageRecord(sha("image-A"), [refA], A3!)]),
    );

    // graphroot: image B (an older runtime: looked up by blob digest, digests in the record), image C
    // sharing B's base with a zstd:chunked partial layer, image D whose top layer lost its
    // directory, image E whose top layer is nowhere, image G lazily pulled from a store no longer
    // configured; an unrecorded full layer, a directory whose name is not UTF-8, a container layer
    // recorded in the runroot's volatile-layers.json, and a layer with a stray additionallayer file.
    await fullLayer(tree, GRAPHROOT, B1!, null);
    await lazyLayer(tree, GRAPHROOT, B2!, B1!, `${STORE}/${b64(refB)}/${blobB2}`);
    await partialLayer(tree, GRAPHROOT, C2!, B1!);
    await lazyLayer(tree, GRAPHROOT, G!, null, `${OLD_STORE}/${b64(refG)}/${blobG}`);
    await fullLayer(tree, GRAPHROOT, F!, null);
    await fullLayer(tree, GRAPHROOT, K!, A3!);
    await tree.mkdir(`${GRAPHROOT}/overlay/${K}/merged`);
    await fullLayer(tree, GRAPHROOT, H!, null);
    await tree.write(`${GRAPHROOT}/overlay/${H}/additionallayer`, `${STORE}/${b64(refB)}/${digest("stray")}`);
    const junk = Buffer.concat([
      Buffer.from(tree.local(`${GRAPHROOT}/overlay/`)),
      Buffer.from([0xff, 0xfe]),
      Buffer.from("-junk"),
    ]);
    mkdirSync(Buffer.concat([junk, Buffer.from("/diff")]), { recursive: true });
    writeFileSync(Buffer.concat([junk, Buffer.from("/link")]), "LJUNK");
    // Not layers: the block device stand-in and a stray symlink next to the layer directories.
    await tree.write(`${GRAPHROOT}/overlay/backingFsBlockDev`, "");
    symlinkSync("/nonexistent", tree.local(`${GRAPHROOT}/overlay/dangling`));
    await tree.write(
      `${GRAPHROOT}/overlay-layers/layers.json`,
      JSON.stringify([
        fullRecord(B1!, null, 2_000_000, 800_000),
        digestsRecord(B2!, B1!, blobB2, 700_000),
        partialRecord(C2!, B1!, 50_000),
        fullRecord(D1!, B1!, 10, 5),
        digestsRecord(G!, null, blobG, 123_000),
        fullRecord(H!, null, 5, 3),
      ]),
    );
    await tree.write(
      `${GRAPHROOT}/overlay-images/images.json`,
      JSON.stringify([
        imageRecord(sha("image-B"), [refB, "registry.example.com/old/app:latest"], B2!),
        imageRecord(sha("image-C"), ["registry.example.com/chunked/app:3"], C2!),
        imageRecord(sha("image-D"), ["registry.example.com/gone/app:4"], D1!),
        imageRecord(sha("image-E"), [], E1!),
        imageRecord(sha("image-G"), [refG], G!),
      ]),
    );
    await tree.write(
      `${RUNROOT}/overlay-layers/volatile-layers.json`,
      JSON.stringify([{ id: K, parent: A3, created: CREATED, names: ["k8s_app_container"] }]),
    );

    const facts = layersOf(await collectTree(tree));

    expect(facts.driver).toBe("overlay");
    expect(facts.directories).toEqual([
      { path: `${GRAPHROOT}/overlay`, home: "graphroot", status: "ok", layers: 8 },
      { path: `${IMAGESTORE}/overlay`, home: "imagestore", status: "ok", layers: 4 },
    ]);
    const file = (p: string) => facts.files.find((f) => f.path === p);
    expect(file(`${GRAPHROOT}/overlay-layers/layers.json`)).toMatchObject({ status: "ok", count: 6 });
    expect(file(`${IMAGESTORE}/overlay-images/images.json`)).toMatchObject({ status: "ok", count: 1 });
    expect(file(`${GRAPHROOT}/overlay-layers/volatile-layers.json`)).toMatchObject({ status: "missing" });
    expect(file(`${RUNROOT}/overlay-layers/volatile-layers.json`)).toMatchObject({
      status: "ok",
      count: 1,
      home: "runroot",
      kind: "volatile-layers",
    });

    expect(facts.totals).toEqual({
      lazy: { layers: 5, bytes: 700_000 + 123_000 },
      partial: { layers: 1, bytes: 50_000 },
      full: { layers: 6, bytes: 1_000_000 + 2_000_000 + 5 },
      missing: { layers: 1, bytes: 10 },
      unknown: { layers: 0, bytes: 0 },
    });
    // Per store: by where the directory is, else by the layers.json that records it (D1).
    expect(facts.byHome).toEqual(
      expect.arrayContaining([
        {
          home: IMAGESTORE,
          tally: {
            lazy: { layers: 3, bytes: 0 },
            partial: { layers: 0, bytes: 0 },
            full: { layers: 1, bytes: 1_000_000 },
            missing: { layers: 0, bytes: 0 },
            unknown: { layers: 0, bytes: 0 },
          },
        },
        {
          home: GRAPHROOT,
          tally: {
            lazy: { layers: 2, bytes: 823_000 },
            partial: { layers: 1, bytes: 50_000 },
            full: { layers: 5, bytes: 2_000_005 },
            missing: { layers: 1, bytes: 10 },
            unknown: { layers: 0, bytes: 0 },
          },
        },
      ]),
    );
    expect(facts.byHome).toHaveLength(2);
    expect(facts.unrecorded.layers).toBe(3);
    expect(facts.unrecorded.lazy).toBe(1);
    expect(facts.unrecorded.examples).toEqual(
      expect.arrayContaining([
        `${IMAGESTORE}/overlay/${U1}`,
        `${GRAPHROOT}/overlay/${F}`,
        `${GRAPHROOT}/overlay/\\xff\\xfe-junk`,
      ]),
    );
    expect(facts.withoutDirectory).toEqual({ layers: 1, examples: [D1] });
    expect(facts.notInAnyImage).toBe(5); // U1, F, the junk directory, K, H

    const image = (name: string | null) => facts.images.find((i) => i.name === name);
    expect(image(refA)).toMatchObject({
      home: IMAGESTORE,
      topLayer: A3,
      chainLength: 3,
      layers: { lazy: 2, partial: 0, full: 1, missing: 0, unknown: 0 },
      bytes: { lazy: 0, full: 1_000_000 },
    });
    expect(image(refA)?.chainError).toBeUndefined();
    expect(image(refB)).toMatchObject({
      home: GRAPHROOT,
      layers: { lazy: 1, full: 1 },
      bytes: { lazy: 700_000, full: 2_000_000 },
    });
    expect(image("registry.example.com/chunked/app:3")).toMatchObject({
      layers: { lazy: 0, partial: 1, full: 1 },
      bytes: { partial: 50_000, full: 2_000_000 },
    });
    expect(image("registry.example.com/gone/app:4")).toMatchObject({
      chainLength: 2,
      layers: { missing: 1, full: 1 },
      bytes: { missing: 10 },
    });
    expect(image(null)).toMatchObject({ id: sha("image-E"), chainLength: 1, layers: { missing: 1 } });
    expect(image(null)?.chainError).toContain("has neither a record nor a directory");
    expect(image(refG)).toMatchObject({ layers: { lazy: 1 }, bytes: { lazy: 123_000 } });
    expect(facts.images).toHaveLength(6);
    expect(facts.imagesTruncated).toBe(false);

    expect(facts.lazyByStore).toEqual(
      expect.arrayContaining([
        { layerStore: STORE, storePath: STORE, layers: 4 },
        { layerStore: null, storePath: OLD_STORE, layers: 1 },
      ]),
    );
    expect(facts.lazyLayersTruncated).toBe(false);
    const lazy = new Map(facts.lazyLayers.map((l) => [l.id, l]));
    expect(lazy.size).toBe(5);
    expect(lazy.get(A2!)).toEqual({
      id: A2,
      home: IMAGESTORE,
      target: `${STORE}/${b64(refA)}/${tocA2}`,
      layerStore: STORE,
      storePath: STORE,
      ref: refA,
      digest: tocA2,
      recorded: true,
      recordFormat: "toc",
      tocDigest: tocA2,
      diffSize: -1,
      imageNames: [refA],
      imageCount: 1,
    });
    expect(lazy.get(U1!)).toMatchObject({
      recorded: false,
      recordFormat: null,
      ref: refA,
      digest: tocU1,
      imageCount: 0,
    });
    expect(lazy.get(B2!)).toMatchObject({
      home: GRAPHROOT,
      ref: refB,
      digest: blobB2,
      recordFormat: "digests",
      tocDigest: null,
      diffSize: 700_000,
      imageNames: [refB],
    });
    expect(lazy.get(G!)).toMatchObject({ layerStore: null, storePath: OLD_STORE, ref: refG, digest: blobG });

    expect(facts.anomalies).toEqual([
      {
        id: H,
        path: `${GRAPHROOT}/overlay/${H}`,
        problem:
          "an additionallayer file, but diff is a real directory (the layer was not created from the store)",
      },
    ]);
    expect(facts.anomalyCount).toBe(1);
  });

  it("reports corrupt, looping and unreadable metadata as facts and still classifies the directories", async () => {
    tree = await HostTree.create();
    await lazyNode(tree);
    const ref = "registry.example.com/app:1";
    const [L1, L2] = [sha("L1"), sha("L2")];
    await fullLayer(tree, GRAPHROOT, L1, null);
    await lazyLayer(tree, GRAPHROOT, L2, L1, `${STORE}/${b64(ref)}/${digest("toc-L2")}`);
    await tree.write(`${GRAPHROOT}/overlay-layers/layers.json`, `[{"id": "${L1}", "diff-size": 10},`);
    await tree.write(
      `${GRAPHROOT}/overlay-images/images.json`,
      JSON.stringify([imageRecord(sha("image"), [ref], L2)]),
    );
    await tree.symlink("images.json.b", `${IMAGESTORE}/overlay-images/images.json`);
    await tree.symlink("images.json", `${IMAGESTORE}/overlay-images/images.json.b`);
    await tree.write(`${IMAGESTORE}/overlay-layers/layers.json`, '{"not": "an array"}');
    await tree.mkdir(`${RUNROOT}/overlay-layers/volatile-layers.json`);

    const snapshot = await collectTree(tree);
    expect(snapshot.sources.layers.status).toBe("ok");
    const facts = layersOf(snapshot);
    const file = (p: string) => facts.files.find((f) => f.path === p);
    expect(file(`${GRAPHROOT}/overlay-layers/layers.json`)?.status).toBe("error");
    expect(file(`${GRAPHROOT}/overlay-layers/layers.json`)?.error).toContain(
      `${GRAPHROOT}/overlay-layers/layers.json`,
    );
    expect(file(`${IMAGESTORE}/overlay-images/images.json`)).toMatchObject({ status: "error" });
    expect(file(`${IMAGESTORE}/overlay-images/images.json`)?.error).toMatch(/ELOOP|symbolic links/);
    expect(file(`${IMAGESTORE}/overlay-layers/layers.json`)?.error).toContain("expected a JSON array");
    expect(file(`${RUNROOT}/overlay-layers/volatile-layers.json`)?.status).toBe("error");
    expect(file(`${RUNROOT}/overlay-layers/volatile-layers.json`)?.error).toContain("not a regular file");

    // The directories still tell what is lazy; without records nothing counts as missing.
    expect(facts.totals.lazy.layers).toBe(1);
    expect(facts.totals.full.layers).toBe(1);
    expect(facts.unrecorded.layers).toBe(2);
    expect(facts.lazyLayers[0]).toMatchObject({ id: L2, recorded: false, ref, layerStore: STORE });
    const image = facts.images[0]!;
    expect(image).toMatchObject({ name: ref, chainLength: 1, layers: { lazy: 1 } });
    expect(image.chainError).toContain("has no record in layers.json");
  });

  it("stops at a looping parent chain and passes over a symlink among the layer directories", async () => {
    tree = await HostTree.create();
    await lazyNode(tree);
    const [P, Q] = [sha("P"), sha("Q")];
    await fullLayer(tree, GRAPHROOT, P, Q);
    await fullLayer(tree, GRAPHROOT, Q, P);
    await tree.write(
      `${GRAPHROOT}/overlay-layers/layers.json`,
      JSON.stringify([fullRecord(P, Q, 100, 50), fullRecord(Q, P, 200, 50)]),
    );
    await tree.write(
      `${GRAPHROOT}/overlay-images/images.json`,
      JSON.stringify([imageRecord(sha("i"), ["loop:1"], P)]),
    );
    // A layer "directory" that is a symlink loop: not a directory, so not a layer.
    await tree.symlink("loop", `${GRAPHROOT}/overlay/loop`);
    const facts = layersOf(await collectTree(tree));
    expect(facts.images[0]?.chainLength).toBe(2);
    expect(facts.images[0]?.chainError).toContain("loop back");
    expect(facts.totals.full).toEqual({ layers: 2, bytes: 300 });
    expect(facts.directories[0]?.layers).toBe(2);
  });

  it("keeps the detail of at most MAX_LAZY_LAYERS lazy layers and counts all of them", async () => {
    tree = await HostTree.create();
    await lazyNode(tree);
    const ref = b64("registry.example.com/big:1");
    const count = MAX_LAZY_LAYERS + 3;
    const overlay = tree.local(`${GRAPHROOT}/overlay`);
    for (let i = 0; i < count; i += 1) {
      const id = sha(`big-${i}`);
      const target = `${STORE}/${ref}/${digest(`toc-${i}`)}`;
      mkdirSync(`${overlay}/${id}`);
      writeFileSync(`${overlay}/${id}/additionallayer`, target);
      symlinkSync(`${target}/diff`, `${overlay}/${id}/diff`);
    }
    const facts = layersOf(await collectTree(tree));
    expect(facts.totals.lazy.layers).toBe(count);
    expect(facts.lazyLayers).toHaveLength(MAX_LAZY_LAYERS);
    expect(facts.lazyLayersTruncated).toBe(true);
    expect(facts.lazyByStore).toEqual([{ layerStore: STORE, storePath: STORE, layers: count }]);
  });

  it("is absent on a containerd node", async () => {
    tree = await HostTree.create();
    await lazyNode(tree);
    await writeKubeletConfig(tree, { containerRuntimeEndpoint: "unix:///run/containerd/containerd.sock" });
    const result = (await collectTree(tree)).sources.layers;
    expect(result.status).toBe("absent");
  });

  it("names a store without :ref by the digest alone, and flags a path that does not fit", async () => {
    tree = await HostTree.create();
    // Written with a trailing slash: matched all the same, and named as configured.
    await lazyNode(tree, { layerStores: `"${STORE}/"` });
    const [M, N] = [sha("M"), sha("N")];
    await lazyLayer(tree, GRAPHROOT, M, null, `${STORE}/${digest("blob-M")}`);
    await lazyLayer(tree, GRAPHROOT, N, M, `${STORE}/${b64("x/y:1")}/${digest("blob-N")}`);
    const facts = layersOf(await collectTree(tree));
    const byId = new Map(facts.lazyLayers.map((l) => [l.id, l]));
    expect(byId.get(M)).toMatchObject({
      layerStore: `${STORE}/`,
      storePath: STORE,
      ref: null,
      digest: digest("blob-M"),
    });
    expect(byId.get(N)).toMatchObject({ layerStore: `${STORE}/`, ref: null, digest: digest("blob-N") });
    expect(facts.anomalies.map((a) => a.id)).toEqual([N]);
    expect(facts.anomalies[0]?.problem).toContain(`is not laid out as ${STORE}/<digest>`);
  });
});
