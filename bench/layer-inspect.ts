import { closeSync, mkdirSync, openSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import type * as HostModule from "../collector/host/host.js";
import type * as LayersModule from "../collector/sources/layers.js";
import { requireRoot, withScratch } from "./scratch.js";
import { interleave, median, ms, ratioLine, seriesTable, timeMs } from "./stats.js";

const TARGET = 1.5;
const IMAGES = 500;
const LAYERS_PER_IMAGE = 10;
const GRAPHROOT = "/var/lib/containers/storage";
const RUNROOT = "/run/containers/storage";
const STORE = "/var/lib/stargz-store/store";
const WARMUP = 3;
const RUNS = 21;

interface Tree {
  scratch: string;
  hostRoot: string;
  mounted: string[];
}

interface Built {
  layers: number;
  lazy: number;
  partial: number;
  full: number;
  /** Entries below <graphroot>/overlay down to depth 2 (what `find -maxdepth 2` prints, minus the root). */
  entries: number;
  buildMs: number;
}

const hex = (n: number, salt: string) => `${salt}${n.toString(16)}`.padStart(64, "0");

function touch(local: string, content?: string): void {
  if (content === undefined) closeSync(openSync(local, "w"));
  else writeFileSync(local, content);
}

/**
 * A graphroot laid out as containers/storage lays out an overlay store: 500 images of 10 layers
 * each (5,000 layers). Images 0, 1 of every 5 were pulled lazily (a full base layer, then 9
 * layers from the layer store: `additionallayer` and a `diff` symlink into it, records in
 * stargz-store >= 0.16's format); image 2 of every 5 has a zstd:chunked partial top layer
 * (toc-digest, real files); the rest are full pulls. Every layer has `link`, `work/` and, above
 * the base, `lower`; full and partial layers a `diff/` with three files; `overlay/l/` holds the
 * short links; `overlay-layers/` a tar-split per real layer. The layer store is a plain
 * directory (never looked into).
 */
/** Lays out, under tree.hostRoot, a graphroot of 5,000 layers (lazy, partial, full) and 500 images. */
export function buildStore(tree: Pick<Tree, "hostRoot">): Built {
  const started = performance.now();
  const root = path.join(tree.hostRoot, GRAPHROOT);
  const overlay = path.join(root, "overlay");
  for (const dir of ["overlay/l", "overlay-layers", "overlay-images", "overlay-containers"]) {
    mkdirSync(path.join(root, dir), { recursive: true });
  }
  mkdirSync(path.join(tree.hostRoot, RUNROOT, "overlay-layers"), { recursive: true });
  touch(path.join(overlay, "backingFsBlockDev"));
  const records: Record<string, unknown>[] = [];
  const images: Record<string, unknown>[] = [];
  const built: Built = { layers: 0, lazy: 0, partial: 0, full: 0, entries: 2, buildMs: 0 };
  for (let image = 0; image < IMAGES; image += 1) {
    const ref = `registry.example.com/team-${image % 17}/app-${image}:v1`;
    const refDir = Buffer.from(ref).toString("base64");
    let parent: string | null = null;
    for (let k = 0; k < LAYERS_PER_IMAGE; k += 1) {
      const n = image * LAYERS_PER_IMAGE + k;
      const id = hex(n, "c0ffee");
      const dir = path.join(overlay, id);
      const lazy = image % 5 < 2 && k > 0;
      const partial = image % 5 === 2 && k === LAYERS_PER_IMAGE - 1;
      mkdirSync(dir);
      const short = `L${n.toString(36).toUpperCase().padStart(25, "0")}`;
      touch(path.join(dir, "link"), short);
      mkdirSync(path.join(dir, "work"));
      built.entries += 3; // the directory, link, work
      if (parent) {
        touch(path.join(dir, "lower"), `l/${short}`);
        built.entries += 1;
      }
      symlinkSync(`../${id}/diff`, path.join(overlay, "l", short));
      built.entries += 1;
      if (lazy) {
        const toc = `sha256:${hex(n, "70c")}`;
        const target = `${STORE}/${refDir}/${toc}`;
        touch(path.join(dir, "additionallayer"), target);
        symlinkSync(`${target}/diff`, path.join(dir, "diff"));
        built.entries += 2;
        records.push({
          id,
          parent,
          created: "2026-11-20T09:00:00Z",
          "toc-digest": toc,
          "diff-size": -1,
          compression: 2,
          flags: { "expected-layer-diffid": `sha256:${hex(n, "d1ff")}` },
        });
        built.lazy += 1;
      } else {
        for (const sub of ["diff", "diff/usr", "diff/usr/bin"]) mkdirSync(path.join(dir, sub));
        for (const file of ["tool", "helper", "README"]) touch(path.join(dir, "diff/usr/bin", file));
        touch(path.join(root, "overlay-layers", `${id}.tar-split.gz`));
        built.entries += 1;
        records.push({
          id,
          ...(parent ? { parent } : {}),
          created: "2026-11-20T09:00:00Z",
          "compressed-diff-digest": `sha256:${hex(n, "b10b")}`,
          "compressed-size": 4_000_000 + n,
          "diff-digest": `sha256:${hex(n, "d1ff")}`,
          "diff-size": 9_000_000 + n,
          compression: partial ? 4 : 2,
          ...(partial ? { "toc-digest": `sha256:${hex(n, "70c")}` } : {}),
          uidset: [0],
          gidset: [0],
        });
        if (partial) built.partial += 1;
        else built.full += 1;
      }
      built.layers += 1;
      parent = id;
    }
    images.push({
      id: hex(image, "1a"),
      names: [ref],
      layer: parent,
      metadata: "{}",
      "big-data-names": ["manifest", "sha256:..."],
      created: "2026-11-20T09:00:00Z",
    });
  }
  writeFileSync(path.join(root, "overlay-layers", "layers.json"), JSON.stringify(records));
  writeFileSync(path.join(root, "overlay-images", "images.json"), JSON.stringify(images));
  built.buildMs = performance.now() - started;
  return built;
}

export async function layerInspect(repo: string): Promise<void> {
  requireRoot("layer-inspect", "mounts a tmpfs");
  await withScratch(async (scratch) => {
    const tree: Tree = {
      scratch: scratch.dir,
      hostRoot: path.join(scratch.dir, "host"),
      mounted: scratch.mounted,
    };
    mkdirSync(tree.hostRoot);
    await execa("mount", ["-t", "tmpfs", "-o", "size=512m,nr_inodes=1m", "tmpfs", tree.hostRoot]);
    tree.mounted.push(tree.hostRoot);
    await measure(repo, tree, buildStore(tree));
  });
}

async function measure(repo: string, tree: Tree, built: Built): Promise<void> {
  const load = async <T>(rel: string) =>
    (await import(pathToFileURL(path.join(repo, "dist/collector", rel)).href)) as T;
  const { inspectLayers } = await load<typeof LayersModule>("sources/layers.js");
  const { Host } = await load<typeof HostModule>("host/host.js");
  const request = {
    driver: "overlay",
    homes: [{ path: GRAPHROOT, role: "graphroot" as const }],
    runroot: RUNROOT,
    layerStores: [{ raw: `${STORE}:ref`, path: STORE, ref: true, unknownOptions: [] }],
  };
  // A fresh Host per run, as per collection: nothing cached from the previous run.
  const inspect = () => inspectLayers(new Host({ root: tree.hostRoot }), request);

  // Checked once: every layer seen and classified as built, every image walked.
  const facts = await inspect();
  const { totals } = facts;
  if (
    totals.lazy.layers !== built.lazy ||
    totals.partial.layers !== built.partial ||
    totals.full.layers !== built.full ||
    facts.images.length !== IMAGES ||
    facts.unrecorded.layers !== 0 ||
    facts.anomalyCount !== 0 ||
    facts.images.some((image) => image.chainLength !== LAYERS_PER_IMAGE)
  ) {
    throw new Error(`unexpected facts: ${JSON.stringify({ totals, unrecorded: facts.unrecorded })}`);
  }

  const overlay = path.join(tree.hostRoot, GRAPHROOT, "overlay");
  const findArgs = [overlay, "-maxdepth", "2"];
  // What the layers source lists: the same, without the short links in overlay/l.
  const prunedArgs = [overlay, "-maxdepth", "2", "-path", `${overlay}/l`, "-prune", "-o", "-print"];
  const find = (args: string[], lines: number) => async () => {
    const child = await execa("find", args, { stdin: "ignore", stdout: "ignore" });
    if (child.exitCode !== 0) throw new Error(`find failed (${child.exitCode})`);
    return lines;
  };
  const printed = (await execa("find", findArgs)).stdout.split("\n").length;
  const prunedPrinted = (await execa("find", prunedArgs)).stdout.split("\n").length;
  if (printed !== built.entries + 1) {
    throw new Error(`find printed ${printed} lines, expected ${built.entries + 1}`);
  }
  const spawnOnly = () => execa("true", [], { stdin: "ignore" });

  const series = await interleave(
    [
      { label: "inspectLayers (layers source)", run: inspect },
      { label: "find <graphroot>/overlay -maxdepth 2", run: find(findArgs, printed) },
      { label: "(reference) find … -path …/l -prune", run: find(prunedArgs, prunedPrinted) },
      { label: "(reference) true", run: spawnOnly },
    ],
    { warmup: WARMUP, runs: RUNS },
  );
  // How long the synchronous slices hold the event loop: the longest stall over a few runs.
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  for (let i = 0; i < 5; i += 1) await inspect();
  delay.disable();
  const parseMs: number[] = [];
  const layersJson = path.join(tree.hostRoot, GRAPHROOT, "overlay-layers", "layers.json");
  for (let i = 0; i < 9; i += 1)
    parseMs.push(await timeMs(async () => JSON.parse(readFileSync(layersJson, "utf8"))));

  const ours = median(series[0]!.samples);
  const ratio = ours / median(series[1]!.samples);
  const prunedRatio = ours / median(series[2]!.samples);
  const size = JSON.stringify(facts).length;
  console.log(
    `layer inspection of an overlay graphroot on tmpfs: ${built.layers} layers (${built.lazy} lazy, ` +
      `${built.partial} partial, ${built.full} full), ${IMAGES} images, ${built.entries} entries to depth 2 ` +
      `(built in ${(built.buildMs / 1000).toFixed(1)} s)`,
  );
  console.log(
    `command: find ${findArgs.join(" ")} > /dev/null (prints ${printed} lines; pruned: ${prunedPrinted})`,
  );
  console.log(`${RUNS} interleaved runs each after ${WARMUP} warm-up rounds (node ${process.version})\n`);
  console.log(seriesTable(series));
  console.log(
    `inspectLayers: ${((ours * 1000) / built.layers).toFixed(2)} µs per layer; of it, read + JSON.parse of ` +
      `layers.json (${(Buffer.byteLength(readFileSync(layersJson)) / 2 ** 20).toFixed(1)} MiB): ${ms(median(parseMs))}`,
  );
  console.log(
    `facts: ${(size / 1024).toFixed(0)} KiB of JSON (${facts.lazyLayers.length} lazy layers in detail, ` +
      `${facts.images.length} images)`,
  );
  console.log(
    `longest event-loop stall during 5 runs: ${ms(delay.max / 1e6)} (the directories are read in slices of 256 layers)`,
  );
  console.log(`(reference) inspectLayers / pruned find: ${prunedRatio.toFixed(2)}`);
  console.log(ratioLine("layer-inspect", ratio, TARGET));
}
