import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { execa, execaSync, type ResultPromise } from "execa";
import type * as CollectModule from "../collector/collect.js";
import type * as ProbeModule from "../collector/host/fuse-probe.js";
import type { ProbeOp } from "../collector/host/fuse-probe-types.js";
import type { Snapshot } from "../collector/snapshot.js";
import { requireRoot, withScratch } from "./scratch.js";
import { interleave, median, ms, ratioLine, seriesTable, table } from "./stats.js";

const TARGET = 1.2;
/** The guarded-operation deadline of the hung-mount part (collect's guardedStatMs). */
const DEADLINE_MS = 1000;
/** How far past the deadline a whole collection may run with one stopped mount. */
const HUNG_BOUND_MS = DEADLINE_MS + 200;
const HUNG_RUNS = 5;
const STORE = "/var/lib/shared-images";

// The peer of probeMount([{op: "stat"}]): the same node start-up in a child started by execa, one
// lstat of the same path, and the answer printed for the parent to check. No protocol, no timing
// inside, no deadline: what any guarded stat must cost at least.
const PEER_SCRIPT = `
const s = require("node:fs").lstatSync(process.argv[1]);
process.stdout.write(s.isDirectory() ? "dir" : "other");
`;

interface Tree {
  scratch: string;
  hostRoot: string;
  procRoot: string;
  /** The store's mount point on this machine (under the host root), served by bindfs. */
  target: string;
  bindfs?: { pid: number; process: ResultPromise };
}

/** A CRI-O-looking host root whose storage.conf lists STORE, a bindfs mount, as an additional image store. */
async function buildTree(tree: Tree): Promise<void> {
  await mkdir(tree.procRoot, { recursive: true });
  // "1" is the reader's own /proc entry: its mountinfo shows our mounts, and no other process leaks in.
  await symlink("/proc/self", path.join(tree.procRoot, "1"));
  for (const dir of [
    "/etc/containers",
    "/etc/crio",
    "/var/lib/containers/storage",
    "/run/containers/storage",
    "/var/lib/kubelet",
  ]) {
    await mkdir(path.join(tree.hostRoot, dir), { recursive: true });
  }
  await writeFile(
    path.join(tree.hostRoot, "etc/containers/storage.conf"),
    `[storage]\ndriver = "overlay"\ngraphroot = "/var/lib/containers/storage"\nrunroot = "/run/containers/storage"\n\n` +
      `[storage.options]\nadditionalimagestores = ["${STORE}"]\n`,
  );
  const source = path.join(tree.scratch, "store-src");
  for (const [dir, file] of [
    ["overlay-images", "images.json"],
    ["overlay-layers", "layers.json"],
  ] as const) {
    await mkdir(path.join(source, dir), { recursive: true });
    await writeFile(path.join(source, dir, file), "[]");
  }
  await mkdir(tree.target, { recursive: true });
  const child = execa("bindfs", ["-f", source, tree.target], { reject: false, stdin: "ignore" });
  if (child.pid === undefined) throw new Error("bindfs did not start");
  tree.bindfs = { pid: child.pid, process: child };
  const until = Date.now() + 10_000;
  while (!(await fuseMounted(tree.target))) {
    if (Date.now() > until) throw new Error(`bindfs did not mount ${tree.target}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Reads our own mountinfo, never the FUSE path. */
async function fuseMounted(target: string): Promise<boolean> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  return text.split("\n").some((line) => line.split(" ")[4] === target && line.includes(" - fuse"));
}

function signal(pid: number | undefined, name: NodeJS.Signals): void {
  try {
    if (pid !== undefined) process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** Resumes and stops the server, drops the mount lazily; returns false if the mount is still there. */
function teardown(tree: Tree): boolean {
  signal(tree.bindfs?.pid, "SIGCONT");
  execaSync("fusermount3", ["-uz", tree.target], { reject: false });
  execaSync("umount", ["-l", tree.target], { reject: false });
  signal(tree.bindfs?.pid, "SIGKILL");
  const left = execaSync("findmnt", ["-n", tree.target], { reject: false });
  return left.stdout.trim() === "";
}

export async function fuseProbe(repo: string): Promise<void> {
  requireRoot("fuse-probe", "mounts bindfs");
  if (execaSync("bindfs", ["--version"], { reject: false }).failed)
    throw new Error("fuse-probe needs bindfs");
  let tree: Tree | undefined;
  await withScratch(
    async (scratch) => {
      const hostRoot = path.join(scratch.dir, "host");
      tree = {
        scratch: scratch.dir,
        hostRoot,
        procRoot: path.join(scratch.dir, "proc"),
        target: path.join(hostRoot, STORE),
      };
      await buildTree(tree);
      await roundTrip(repo, tree);
      await hungCollect(repo, tree);
    },
    () => (tree ? teardown(tree) : true),
  );
  await tree?.bindfs?.process;
}

async function importDist<T>(repo: string, file: string): Promise<T> {
  return (await import(pathToFileURL(path.join(repo, "dist", file)).href)) as T;
}

/** (a) One stat on a healthy FUSE mount through probeMount vs the bare child doing the same stat. */
async function roundTrip(repo: string, tree: Tree): Promise<void> {
  const { probeMount } = await importDist<typeof ProbeModule>(repo, "collector/host/fuse-probe.js");
  const statOp: ProbeOp = { op: "stat", path: tree.target };
  const inChild: number[] = [];
  const probe = async () => {
    const run = await probeMount([statOp], 5000);
    const result = run.results[0];
    if (!result?.ok || result.value.kind !== "stat" || result.value.fileType !== "dir") {
      throw new Error(`probeMount did not stat ${tree.target}: ${JSON.stringify(run)}`);
    }
    inChild.push(result.ms);
  };
  const peer = async () => {
    const child = await execa(process.execPath, ["-e", PEER_SCRIPT, tree.target], { stdin: "ignore" });
    if (child.stdout !== "dir") throw new Error(`the peer's stat printed ${child.stdout}`);
  };
  const coreutils = () => execa("stat", ["-c", "%F", tree.target], { stdin: "ignore" });
  await probe(); // loads execa, checked once
  const series = await interleave(
    [
      { label: 'probeMount([{op:"stat"}])', run: probe },
      { label: "node -e <lstatSync> (execa)", run: peer },
      { label: "(reference) stat -c %F (execa)", run: coreutils },
    ],
    { warmup: 5, runs: 40 },
  );
  const ratio = median(series[0]!.samples) / median(series[1]!.samples);
  console.log(`(a) one stat on a bindfs mount (${tree.target}), 40 interleaved runs after 5 warm-up rounds`);
  console.log(seriesTable(series));
  console.log(`the lstat itself, timed inside the probe child: median ${ms(median(inChild))}`);
  console.log(ratioLine("fuse-probe", ratio, TARGET));
}

/** A child of ours seen by the sampler: a guarded operation's process. */
interface Sighting {
  pid: number;
  kind: string;
  path: string;
  firstMs: number;
  lastMs: number;
}

/**
 * Watches this process's children (the main thread's, where libuv forks) every 5 ms and names
 * each guarded child by its script and argument: which operations wait on the stopped mount, when.
 */
function watchChildren(hostRoot: string, since: number, ignore: number[]): { stop: () => Sighting[] } {
  const seen = new Map<number, Sighting>();
  const childrenFile = `/proc/${process.pid}/task/${process.pid}/children`;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const now = performance.now() - since;
      const pids = (await readFile(childrenFile, "utf8")).split(" ").filter(Boolean).map(Number);
      for (const pid of pids) {
        if (ignore.includes(pid)) continue;
        const known = seen.get(pid);
        if (known && known.kind !== "?") {
          known.lastMs = now;
          continue;
        }
        const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0");
        const sighting = known ?? { pid, kind: "?", path: "", firstMs: now, lastMs: now };
        sighting.lastMs = now;
        if (argv[1] === "-e") Object.assign(sighting, classify(argv.slice(2), hostRoot));
        else if (argv[0] && !argv[0].endsWith("node")) sighting.kind = path.basename(argv[0]);
        seen.set(pid, sighting);
      }
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), 5);
  return {
    stop: () => {
      clearInterval(timer);
      return [...seen.values()].sort((a, b) => a.firstMs - b.firstMs);
    },
  };
}

function classify([script = "", ...args]: string[], hostRoot: string): { kind: string; path: string } {
  const host = (local = "") => (local.startsWith(hostRoot) ? local.slice(hostRoot.length) || "/" : local);
  if (script.includes("JSON.parse(process.argv[1])")) {
    const ops = JSON.parse(args[0] ?? "[]") as ProbeOp[];
    return { kind: "probeMount", path: ops.map((o) => `${o.op} ${host(o.path)}`).join(", ") };
  }
  if (script.includes("statfsSync(p")) return { kind: "stat+statfs (inspectPath)", path: host(args[0]) };
  if (script.includes("readSync(fd")) return { kind: "read (readText)", path: host(args[0]) };
  return { kind: "other node -e", path: host(args[0]) };
}

/** (b) The whole collect() with the store's server stopped: how long, and which operations wait. */
async function hungCollect(repo: string, tree: Tree): Promise<void> {
  const { collect } = await importDist<typeof CollectModule>(repo, "collector/collect.js");
  const { probeMount } = await importDist<typeof ProbeModule>(repo, "collector/host/fuse-probe.js");
  const request = { hostRoot: tree.hostRoot, procRoot: tree.procRoot, guardedStatMs: DEADLINE_MS };
  const healthy = await collect(request);
  checkRole(healthy, "ok");

  signal(tree.bindfs?.pid, "SIGSTOP");
  const walls: number[] = [];
  let timeline: Sighting[] = [];
  let last: Snapshot | undefined;
  for (let run = 0; run < HUNG_RUNS; run += 1) {
    const started = performance.now();
    const watcher = watchChildren(tree.hostRoot, started, tree.bindfs ? [tree.bindfs.pid] : []);
    last = await collect(request);
    walls.push(performance.now() - started);
    timeline = watcher.stop();
  }
  checkRole(last!, "unresponsive");
  // What one shared probe of the mount would cost: every operation collect makes on it, in one child.
  const local = (p: string) => path.join(tree.hostRoot, p);
  const shared: ProbeOp[] = [
    { op: "statfs", path: local(STORE) },
    { op: "stat", path: local(STORE) },
    { op: "read", path: local(`${STORE}/overlay-images/images.json`) },
    { op: "read", path: local(`${STORE}/overlay-layers/layers.json`) },
  ];
  const probeWalls: number[] = [];
  let probeRun: Awaited<ReturnType<typeof probeMount>> | undefined;
  for (let run = 0; run < HUNG_RUNS; run += 1) {
    probeRun = await probeMount(shared, DEADLINE_MS);
    probeWalls.push(probeRun.elapsedMs);
  }
  signal(tree.bindfs?.pid, "SIGCONT");

  const wall = median(walls);
  console.log(
    `\n(b) collect() with ${STORE} (bindfs) stopped by SIGSTOP, guardedStatMs ${DEADLINE_MS}, ${HUNG_RUNS} runs`,
  );
  console.log(
    `collect wall time: median ${ms(wall)} (min ${ms(Math.min(...walls))}, max ${ms(Math.max(...walls))})`,
  );
  console.log(`deadline + 200 ms: ${ms(HUNG_BOUND_MS)}`);
  console.log(`met (<= deadline + 200 ms): ${wall <= HUNG_BOUND_MS ? "yes" : "no"}`);
  console.log("\nsources (last run):");
  console.log(
    table(
      ["source", "status", "duration"],
      Object.entries(last!.sources).map(([name, r]) => [name, r.status, ms(r.durationMs)]),
    ),
  );
  console.log(
    "\nchildren of this process during the last run, bindfs aside (sampled every 5 ms; times from collect's start):",
  );
  console.log(
    table(
      ["operation", "host path", "from", "to", "alive"],
      timeline.map((s) => [s.kind, s.path, ms(s.firstMs), ms(s.lastMs), ms(s.lastMs - s.firstMs)]),
    ),
  );
  const waited = timeline.filter((s) => s.lastMs - s.firstMs >= DEADLINE_MS * 0.9);
  console.log(`operations that waited a whole deadline: ${waited.length}`);
  console.log(
    `\none probeMount of the same ${shared.length} operations on the stopped mount: median ${ms(median(probeWalls))}, ` +
      `hungAt ${probeRun?.hungAt ? `${probeRun.hungAt.op} ${probeRun.hungAt.path.slice(tree.hostRoot.length)}` : "none"}`,
  );
}

function checkRole(snapshot: Snapshot, status: string): void {
  const fs = snapshot.sources.filesystems;
  if (fs.status !== "ok") throw new Error(`filesystems source: ${fs.status}`);
  const role = fs.facts.roles.find((r) => r.role === "additional-image-store");
  if (role?.status !== status) throw new Error(`collect saw the store as ${role?.status}, not ${status}`);
}
