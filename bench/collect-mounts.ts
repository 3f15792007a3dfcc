import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import type * as CollectModule from "../collector/collect.js";
import type { Snapshot } from "../collector/snapshot.js";
import { requireRoot, withScratch } from "./scratch.js";
import { interleave, median, ms, ratioLine, seriesTable, timeMs } from "./stats.js";

const MOUNTS = 50;
const STORES = "/var/lib/bench-stores";
const TARGET = 3;

/** A host root holding MOUNTS tmpfs mounts, named as additional image stores in storage.conf. */
interface Tree {
  scratch: string;
  hostRoot: string;
  procRoot: string;
  /** Host paths of the stores, and where they are mounted on this machine. */
  stores: { host: string; local: string }[];
  mounted: string[];
}

async function buildTree(tree: Tree): Promise<void> {
  const { hostRoot, procRoot } = tree;
  // "1" is the reader's own /proc entry: its mountinfo shows our mounts, and no other process leaks in.
  await mkdir(procRoot, { recursive: true });
  await symlink("/proc/self", path.join(procRoot, "1"));
  for (let i = 0; i < MOUNTS; i += 1) {
    const host = `${STORES}/store-${String(i).padStart(2, "0")}`;
    tree.stores.push({ host, local: path.join(hostRoot, host) });
  }
  for (const dir of [
    "/etc/containers",
    "/etc/crio",
    "/var/lib/containers/storage",
    "/run/containers/storage",
    "/var/lib/kubelet",
  ]) {
    await mkdir(path.join(hostRoot, dir), { recursive: true });
  }
  const list = tree.stores.map((s) => `  "${s.host}",`).join("\n");
  await writeFile(
    path.join(hostRoot, "etc/containers/storage.conf"),
    `[storage]\ndriver = "overlay"\ngraphroot = "/var/lib/containers/storage"\nrunroot = "/run/containers/storage"\n\n` +
      `[storage.options]\nadditionalimagestores = [\n${list}\n]\n`,
  );
}

async function mountAll(tree: Tree): Promise<void> {
  for (const store of tree.stores) {
    await mkdir(store.local, { recursive: true });
    await execa("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", store.local]);
    tree.mounted.push(store.local);
  }
}

/** Lazy unmounts (nothing can keep them busy), then removes the scratch directory if all went. */

/** Fails unless collect saw every store as a tmpfs mount point: otherwise we would time something else. */
function checkSnapshot(snapshot: Snapshot, tree: Tree): void {
  const fs = snapshot.sources.filesystems;
  if (fs.status !== "ok") throw new Error(`filesystems source: ${fs.status}`);
  const seen = fs.facts.roles.filter(
    (r) => r.role === "additional-image-store" && r.isMountPoint && r.mount?.fstype === "tmpfs",
  );
  if (seen.length !== tree.stores.length) {
    throw new Error(`collect saw ${seen.length} of ${tree.stores.length} stores as tmpfs mount points`);
  }
}

export async function collectMounts(repo: string): Promise<void> {
  requireRoot("collect-mounts", `mounts ${MOUNTS} tmpfs`);
  await withScratch(async (scratch) => {
    const tree: Tree = {
      scratch: scratch.dir,
      hostRoot: path.join(scratch.dir, "host"),
      procRoot: path.join(scratch.dir, "proc"),
      stores: [],
      mounted: scratch.mounted,
    };
    await buildTree(tree);
    await mountAll(tree);
    await measure(repo, tree);
  });
}

async function measure(repo: string, tree: Tree): Promise<void> {
  const cli = path.join(repo, "dist/collector/cli.js");
  const request = { hostRoot: tree.hostRoot, procRoot: tree.procRoot };
  const cliArgs = [cli, "collect", "--json", "--host-root", tree.hostRoot, "--proc-root", tree.procRoot];
  const dfArgs = tree.stores.map((s) => s.local);
  const df = async () => {
    const child = await execa("df", dfArgs, { stdin: "ignore" });
    if (child.stdout.split("\n").length !== MOUNTS + 1) throw new Error("df did not list every mount");
  };
  // Checked once here; the timed runs only need the exit status (execa throws on a failure).
  checkSnapshot(JSON.parse((await execa(process.execPath, cliArgs)).stdout) as Snapshot, tree);
  const command = () => execa(process.execPath, cliArgs, { stdin: "ignore" });
  // Reference rows, not part of any ratio: what Node's start-up and a bare spawn cost on their own.
  const nodeOnly = () => execa(process.execPath, ["-e", "0"], { stdin: "ignore" });
  const spawnOnly = () => execa("true", [], { stdin: "ignore" });

  // The first import of collect.js (and all it loads) is a one-off, reported but not a sample.
  let loaded: typeof CollectModule | undefined;
  const importMs = await timeMs(async () => {
    const url = pathToFileURL(path.join(repo, "dist/collector/collect.js")).href;
    loaded = (await import(url)) as typeof CollectModule;
  });
  const collect = loaded!.collect;
  checkSnapshot(await collect(request), tree);

  const whole = await interleave(
    [
      { label: "node cli.js collect --json …", run: command },
      { label: `df <${MOUNTS} paths>`, run: df },
      { label: "(reference) node -e 0", run: nodeOnly },
    ],
    { warmup: 3, runs: 30 },
  );
  const inProcess = await interleave(
    [
      { label: "collect({hostRoot, procRoot})", run: () => collect(request) },
      { label: `df <${MOUNTS} paths>`, run: df },
      { label: "(reference) true", run: spawnOnly },
    ],
    { warmup: 5, runs: 50 },
  );

  const ratio = (series: typeof whole) => median(series[0]!.samples) / median(series[1]!.samples);
  console.log(`collect on a host root with ${MOUNTS} tmpfs mounts (additionalimagestores) vs df on them`);
  console.log(`command: node ${path.relative(repo, cli)} ${cliArgs.slice(1).join(" ")}`);
  console.log(`\n(a) whole command, every row a child process, interleaved\n${seriesTable(whole)}`);
  console.log(`\n(b) collect() called in this process; df and true as child processes, interleaved`);
  console.log(seriesTable(inProcess));
  console.log(`first import of dist/collector/collect.js (under tsx): ${ms(importMs)}`);
  console.log(`\n(a) whole command / df: ${ratio(whole).toFixed(2)}`);
  console.log(`(b) in-process collect() / df: ${ratio(inProcess).toFixed(2)}`);
  console.log(ratioLine("collect-mounts/command", ratio(whole), TARGET));
  console.log(ratioLine("collect-mounts", ratio(inProcess), TARGET));
}
