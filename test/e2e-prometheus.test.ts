import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, statfs, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { SERVE_ENV } from "../bench/serve-scrape.js";
import { dashboardQueries, dashboardVariables, expandVariables } from "../dashboards/queries.js";
import { journalEntry, MACHINE_ID, writeJournalFile } from "./support/journal.js";
import { type Bindfs, mountBindfs } from "./support/lazy-pull.js";
import { requireParts } from "./support/requirements.js";
import {
  GRAPHROOT,
  HostTree,
  IMAGESTORE,
  imagesJson,
  KUBELET_ROOT,
  layersJson,
  overlayLayerDir,
  RUNROOT,
  splitImageNode,
  startRuntime,
  writeKubeletConfig,
} from "./support/scenarios.js";
import { ctx, labelStore, layoutStore, writeSelinux } from "./support/selinux.js";

/**
 * End to end, as a cluster runs it: two `imagefs-doctor serve` processes started the way the
 * DaemonSet starts them (the built bin, NODE_NAME, the container's memory settings), each on a
 * node built from real mounts, scraped by a real Prometheus (Debian's 2.42) that loads the
 * repository's rules/*.yaml. What a user would check: the rules load and evaluate without error,
 * the broken node raises exactly the alerts its problems call for and the healthy one none, and
 * every dashboard query and variable answers with data.
 */

const ready = requireParts("Prometheus end-to-end test", [
  "root",
  "loop",
  "xfs",
  "bindfs",
  "journal-remote",
  "attr",
  "prometheus",
]);

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLI = path.join(REPO, "dist/collector/cli.js");
const BROKEN = "broken-node";
const HEALTHY = "healthy-node";
const CLUSTER = "e2e";
/** Seconds between collections: the DaemonSet's 60 s, shortened so `for:` clocks start at once. */
const INTERVAL_S = 1;

/** The broken node's additional layer stores, in storage.conf order (their `store` label is the index). */
const STORE_HUNG = "/var/lib/stargz-store/store"; // bindfs, SIGSTOPped: store="0"
const STORE_SERVED = "/var/lib/soci-store/store"; // bindfs, answering, some layers gone: store="1"
const STORE_UNMOUNTED = "/var/lib/nydus-store/store"; // its server runs, nothing mounted: store="2"
const STORE_STOPPED = "/var/lib/overlaybd-store/store"; // no server, nothing mounted: store="3"
/** The broken node's additional image stores: one on ramfs (no xattrs), one whose disk is gone. */
const RAMFS_IMAGE_STORE = "/var/lib/shared-images";
const MISSING_IMAGE_STORE = "/mnt/nfs/images";
/** CRI-O's additional artifact stores: one holding an artifact, one whose path is gone. */
const ARTIFACT_STORE = "/var/lib/artifact-cache";
const MISSING_ARTIFACT_STORE = "/mnt/nfs/artifacts";

/**
 * The alerts the broken node must raise (pending, as every rule has a `for:` longer than the test),
 * each with the problem built below that calls for it. Exact: an extra alert fails the test as
 * much as a missing one.
 */
const EXPECTED_BROKEN_ALERTS = [
  // collector: the runtime's CRI socket accepts connections and never answers (CRI-O hung on the
  // stopped layer store); a registries.conf drop-in that is not TOML; journal floods past the
  // per-cycle read limit.
  "ImagefsRuntimeUnreachable",
  "ImagefsConfigUnparsable",
  "ImagefsJournalEntriesDropped",
  // disk: the image disk filled to 89% (imagefs.available is 15%). It is flat below the threshold,
  // so the 4 h prediction is below it too (ImagefsDiskFillingUp: "reaches it within hours" holds
  // trivially for a disk already there), and usage is above the image GC threshold of 85%.
  "ImagefsDiskPressure",
  "ImagefsDiskPressureImminent",
  "ImagefsDiskFillingUp",
  // disk: the root filesystem (nodefs, and containerfs, which copies nodefs on a split node)
  // nearly out of inodes under nodefs.inodesFree 5%.
  "ImagefsInodePressure",
  "ImagefsInodePressureImminent",
  "ImagefsInodesFillingUp",
  // disk: runroot on a read-only tmpfs; an additional image store whose path is gone.
  "ImagefsFilesystemReadOnly",
  "ImagefsFilesystemUnavailable",
  // disk/configuration: KubeletSeparateDiskGC off, an evictionSoft without grace period,
  // evictionHard that drops nodefs.available and imagefs.inodesFree (the latter leaves the
  // dedicated image disk without an inode threshold), images left in graphroot.
  "ImagefsSplitFeatureGateOff",
  "ImagefsEvictionThresholdInvalid",
  "ImagefsEvictionDefaultsDropped",
  "ImagefsImageFilesystemUnwatched",
  "ImagefsImagesOrphaned",
  // additional stores: the ramfs image store is a writable mount point, the other image store and
  // an artifact store are gone.
  "ImagefsImageStoreNotReadOnly",
  "ImagefsImageStoreUnavailable",
  "ImagefsArtifactStoreInvalid",
  // lazy pull: store 3 without a server, store 2 not mounted, store 0 hung, store 1 lost two
  // layers; stargz-store logged verification and registry auth failures.
  "ImagefsLayerStoreServiceDown",
  "ImagefsLayerStoreNotMounted",
  "ImagefsLayerStoreUnresponsive",
  "ImagefsLazyLayersBroken",
  "ImagefsLayerStoreVerificationFailed",
  "ImagefsLayerStoreAuthFailures",
  // SELinux: restorecon failures in the journal, layer files and the image store's overlay
  // directory with the wrong type, an image store on ramfs, AVC denials, relocation errors.
  "ImagefsSELinuxRelabelFailed",
  "ImagefsSELinuxFilesMislabeled",
  "ImagefsSELinuxStoreMislabeled",
  "ImagefsSELinuxLabelsUnsupported",
  "ImagefsSELinuxAVCDenials",
  "ImagefsContainerLoaderErrors",
].sort();

/**
 * Dashboard queries that return no data in this test, with the reason. Everything else must
 * answer with data for at least one of the two nodes.
 */
const NO_DATA_ALLOWED: Record<string, string> = {};

const sha = (seed: string) => createHash("sha256").update(seed).digest("hex");
const b64 = (ref: string) => Buffer.from(ref).toString("base64");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > end)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
    await sleep(250);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

function signal(pid: number | undefined, name: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

// ---------------------------------------------------------------------------------------------
// containers/storage layer layout (as in test/layers.test.ts: drivers/overlay and layers.go)

const CREATED = "2026-11-20T09:00:00.000000000Z";

function layerRecord(id: string, parent: string | null, blob: string, diffSize: number) {
  return {
    id,
    ...(parent ? { parent } : {}),
    created: CREATED,
    "compressed-diff-digest": blob,
    "compressed-size": Math.round(diffSize / 3),
    "diff-digest": `sha256:${sha(`diff-${id}`)}`,
    "diff-size": diffSize,
    compression: 2,
  };
}

/**
 * One image in `home`: a full base layer, then lazy layers taken from the layer store at `store`
 * (additionalLayer.CreateAs: an `additionallayer` file and a `diff` link into the store). The
 * store's side (diff/, info, blob and stargz-store's fetch progress) is written under
 * `storeSource`, the directory bindfs serves, for the layers whose index is in `present`.
 */
async function lazyImage(
  tree: HostTree,
  options: {
    home: string;
    ref: string;
    store: string;
    storeSource: string | null;
    lazy: number;
    present: number[];
  },
) {
  const { home, ref } = options;
  const base = sha(`${ref}-base`);
  await overlayLayerDir(tree, home, base, null);
  await tree.write(`${home}/overlay/${base}/diff/etc/os-release`, "ID=test\n");
  const records = [layerRecord(base, null, `sha256:${sha(`blob-${base}`)}`, 2_000_000)];
  let parent = base;
  for (let i = 0; i < options.lazy; i++) {
    const id = sha(`${ref}-lazy-${i}`);
    const blob = `sha256:${sha(`blob-${id}`)}`;
    const target = `${options.store}/${b64(ref)}/${blob}`;
    const dir = await overlayLayerDir(tree, home, id, parent);
    await tree.write(`${dir}/additionallayer`, target);
    await tree.symlink(`${target}/diff`, `${dir}/diff`);
    const record = layerRecord(id, parent, blob, 500_000 + i);
    records.push(record);
    if (options.storeSource && options.present.includes(i)) {
      const served = path.join(options.storeSource, b64(ref), blob);
      await mkdir(path.join(served, "diff/bin"), { recursive: true });
      await mkdir(path.join(served, "diff/.stargz-snapshotter"), { recursive: true });
      await writeFile(path.join(served, "diff/bin/tool"), "#!/bin/sh\n");
      await writeFile(
        path.join(served, "diff/.stargz-snapshotter", `${blob}.json`),
        JSON.stringify({ digest: blob, size: 300_000, fetchedSize: 120_000, fetchedPercent: 40 }),
      );
      await writeFile(path.join(served, "info"), JSON.stringify(record));
      await writeFile(path.join(served, "blob"), "");
    }
    parent = id;
  }
  const image = { id: sha(`image-${ref}`), names: [ref], layer: parent, metadata: "{}", created: CREATED };
  return { records, image };
}

// ---------------------------------------------------------------------------------------------
// The two nodes

interface Node {
  tree: HostTree;
  /** Processes and mounts the node keeps running (stopped at cleanup, before the tree's mounts go). */
  bindfs: Bindfs[];
}

/** A CRI socket that accepts connections and never answers: CRI-O hung on the stopped layer store. */
async function hungRuntime(tree: HostTree): Promise<void> {
  const socket = tree.local("/run/crio/crio.sock");
  await mkdir(path.dirname(socket), { recursive: true });
  const held = new Set<net.Socket>();
  const server = net.createServer((connection) => {
    held.add(connection);
    connection.on("error", () => undefined);
    connection.on("close", () => held.delete(connection));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  tree.onCleanup(async () => {
    for (const connection of held) connection.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
}

/** The journal entries of one batch on the broken node, `minutesAgo` before now. */
function brokenJournal(minutesAgo: number, serial: number) {
  const at = new Date(Date.now() - minutesAgo * 60_000);
  const stargz = (message: object) =>
    journalEntry(at, { _SYSTEMD_UNIT: "stargz-store.service", MESSAGE: JSON.stringify(message) });
  return [
    journalEntry(at, {
      SYSLOG_IDENTIFIER: "restorecon",
      MESSAGE: `restorecon: Could not set context for ${MISSING_IMAGE_STORE}/overlay-images:  Operation not supported`,
    }),
    stargz({
      level: "error",
      msg: "statFile error",
      error: "file.Read: chunk verification failed at offset 0: invalid chunk: not verified",
      time: at.toISOString(),
    }),
    stargz({ level: "info", msg: "Received status code: 401. Refreshing creds...", time: at.toISOString() }),
    stargz({
      level: "warning",
      msg: `failed to mount layer "diff": "sha256:${sha("x")}"`,
      error: "failed to resolve layer: failed to access to the registry with code 403",
      time: at.toISOString(),
    }),
    journalEntry(at, {
      _SYSTEMD_UNIT: "crio.service",
      MESSAGE: `level=error msg="overlay: can't stat additionallayerstore dir: stat ${STORE_UNMOUNTED}: no such file or directory"`,
    }),
    journalEntry(at, {
      _TRANSPORT: "audit",
      _AUDIT_TYPE_NAME: "AVC",
      _AUDIT_ID: String(serial),
      MESSAGE: `AVC avc:  denied  { read } for  pid=4242 comm="nginx" path="/usr/lib64/libc.so.6" dev="loop9" ino=${77 + serial} scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:default_t:s0 tclass=file permissive=0`,
    }),
  ];
}

/**
 * More matching entries than the journal source reads in one cycle (maxEntries 200,000 in
 * collector/sources/journal.ts): CRI-O's ordinary chatter, which no rule classifies. The rest are
 * counted as dropped and read in the next cycle.
 */
const FLOOD = 200_000 + 100;

function* flood(from: Date): Generator<ReturnType<typeof journalEntry>> {
  for (let i = 0; i < FLOOD; i++)
    yield journalEntry(new Date(from.getTime() + i), {
      _SYSTEMD_UNIT: "crio.service",
      MESSAGE: `level=info msg="Checking image status" n=${i}`,
    });
}

/** A CRI log line as the kubelet writes it. */
const criLine = (message: string) => `${new Date().toISOString()} stderr F ${message}\n`;

async function brokenNode(): Promise<Node> {
  const tree = await HostTree.create();
  const node: Node = { tree, bindfs: [] };
  try {
    // A root filesystem with few inodes (nodefs, and graphroot on it), imagestore on its own xfs.
    await splitImageNode(tree, { rootInodes: 4096 });
    await hungRuntime(tree);
    await writeKubeletConfig(tree, {
      // Replaces the defaults: nodefs.available and imagefs.inodesFree are no longer watched.
      evictionHard: { "memory.available": "100Mi", "imagefs.available": "15%", "nodefs.inodesFree": "5%" },
      // No evictionSoftGracePeriod: the kubelet refuses this at its next start.
      evictionSoft: { "nodefs.available": "20%" },
      featureGates: { KubeletSeparateDiskGC: false },
    });
    await tree.write(
      "/etc/containers/storage.conf",
      `# written by the test
[storage]
driver = "overlay"
graphroot = "${GRAPHROOT}"
runroot = "${RUNROOT}"

[storage.options]
additionalimagestores = ["${RAMFS_IMAGE_STORE}", "${MISSING_IMAGE_STORE}"]
additionallayerstores = ["${STORE_HUNG}:ref", "${STORE_SERVED}:ref", "${STORE_UNMOUNTED}:ref", "${STORE_STOPPED}:ref"]

[storage.options.overlay]
mountopt = "nodev,metacopy=on"
`,
    );
    await tree.write(
      "/etc/containers/registries.conf.d/50-mirror.conf",
      '[[registry]\nlocation = "quay.io"\n',
    );

    // SELinux enforcing, the policy's file contexts and the imagestore equivalence.
    await writeSelinux(tree, { kernel: 1 });
    await layoutStore(tree, GRAPHROOT, "aaaa");
    await layoutStore(tree, IMAGESTORE, "bbbb");
    await tree.mkdir(`${GRAPHROOT}/overlay/l`);
    await tree.mkdir(`${IMAGESTORE}/overlay/l`);

    // Images left in graphroot from before imagestore was set.
    await tree.write(`${GRAPHROOT}/overlay-images/images.json`, imagesJson(3, "quay.io/example/old"));
    await tree.write(`${GRAPHROOT}/overlay-layers/layers.json`, layersJson(3, 10 * 2 ** 20));

    // Lazily pulled images in imagestore: one through the hung store, one through the answering
    // store, which has lost two of its four layers.
    const hungSource = path.join(tree.scratch, "store-hung");
    const servedSource = path.join(tree.scratch, "store-served");
    await mkdir(hungSource, { recursive: true });
    await mkdir(servedSource, { recursive: true });
    const viaHung = await lazyImage(tree, {
      home: IMAGESTORE,
      ref: "registry.example.com/lazy/app:1",
      store: STORE_HUNG,
      storeSource: hungSource,
      lazy: 2,
      present: [0, 1],
    });
    const viaServed = await lazyImage(tree, {
      home: IMAGESTORE,
      ref: "registry.example.com/lazy/db:2",
      store: STORE_SERVED,
      storeSource: servedSource,
      lazy: 4,
      present: [0, 2],
    });
    await tree.write(
      `${IMAGESTORE}/overlay-layers/layers.json`,
      JSON.stringify([...viaHung.records, ...viaServed.records]),
    );
    await tree.write(
      `${IMAGESTORE}/overlay-images/images.json`,
      JSON.stringify([viaHung.image, viaServed.image]),
    );

    // Labels as the policy wants them, then the image store's overlay directory relabelled to
    // default_t (SELINUX_STORE_MISLABELED) and two layer files left unlabeled_t.
    labelStore(tree, GRAPHROOT);
    labelStore(tree, IMAGESTORE);
    tree.label(KUBELET_ROOT, ctx("container_var_lib_t"));
    tree.label(`${IMAGESTORE}/overlay`, ctx("default_t"));
    tree.label(`${IMAGESTORE}/overlay/bbbb/diff/usr/lib64/libc.so.6`, ctx("unlabeled_t"));
    tree.label(`${IMAGESTORE}/overlay/bbbb/diff/usr/bin/sh`, ctx("unlabeled_t"));

    // An additional image store on ramfs (cannot hold labels); the other one's path is missing.
    await tree.mountRamfs(RAMFS_IMAGE_STORE);
    await tree.write(`${RAMFS_IMAGE_STORE}/overlay-images/images.json`, "[]");
    await tree.write(`${RAMFS_IMAGE_STORE}/overlay-layers/layers.json`, "[]");

    // Artifact stores (CRI-O 1.36+): an OCI layout index with one artifact, and a path that is gone.
    await tree.write(
      "/etc/crio/crio.conf.d/20-artifacts.conf",
      `[crio.runtime]\nadditional_artifact_stores = ["${ARTIFACT_STORE}", "${MISSING_ARTIFACT_STORE}"]\n`,
    );
    await tree.write(
      `${ARTIFACT_STORE}/artifacts/index.json`,
      JSON.stringify({ schemaVersion: 2, manifests: [{ digest: `sha256:${sha("artifact")}`, size: 512 }] }),
    );

    // The layer stores: two bindfs mounts (ours, so we hold their PIDs), a server whose mount
    // point is not mounted, and a directory nothing serves.
    for (const [source, store] of [
      [hungSource, STORE_HUNG],
      [servedSource, STORE_SERVED],
    ] as const) {
      const bindfs = await mountBindfs(source, tree.local(store));
      node.bindfs.push(bindfs);
      await tree.exposeProcess(bindfs.pid);
    }
    await tree.mkdir(STORE_UNMOUNTED);
    await tree.mkdir(STORE_STOPPED);
    await tree.startProcess("/usr/local/bin/lazy-layer-server", [
      "--root",
      "/var/lib/nydus-store",
      STORE_UNMOUNTED,
    ]);

    // Pods whose loader was denied its libc, and the journal's first batch.
    await tree.write(
      "/var/log/pods/shop_web-7d9f_0b6c1e44-1111-4a4a-9c9c-aaaaaaaaaaaa/nginx/0.log",
      criLine(
        "nginx: error while loading shared libraries: libc.so.6: cannot apply additional memory protection after relocation: Permission denied",
      ),
    );
    await writeJournalFile(
      tree.local(`/var/log/journal/${MACHINE_ID}/system@1.journal`),
      [...flood(new Date(Date.now() - 60 * 60_000)), ...brokenJournal(30, 100)],
      tree.scratch,
    );

    // runroot on a read-only tmpfs; then the disks filled: the image disk to 89% and the root
    // filesystem's inodes to 97%.
    await tree.mountTmpfs(RUNROOT, "ro,size=8m");
    const fs = await statfs(tree.local(IMAGESTORE));
    await tree.fill(IMAGESTORE, Math.round(fs.blocks * fs.bsize * 0.11));
    const root = await statfs(tree.local("/"));
    await tree.exhaustInodes("/", Math.floor(root.files * 0.03));
    await quiesce(tree);

    // Last: stop the first store's server. Nothing in this process touches its mount again.
    process.kill(node.bindfs[0]!.pid, "SIGSTOP");
    return node;
  } catch (error) {
    await cleanupNode(node);
    throw error;
  }
}

async function healthyNode(): Promise<Node> {
  const tree = await HostTree.create();
  const node: Node = { tree, bindfs: [] };
  try {
    // examples/ "split-image-healthy", with SELinux enforcing and the stores labelled right.
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    await writeSelinux(tree, { kernel: 1 });
    await layoutStore(tree, GRAPHROOT, "aaaa");
    await layoutStore(tree, IMAGESTORE, "bbbb");
    labelStore(tree, GRAPHROOT);
    labelStore(tree, IMAGESTORE);
    tree.label(KUBELET_ROOT, ctx("container_var_lib_t"));
    await tree.write(
      "/var/log/pods/shop_web-1_22222222-2222-4b4b-9d9d-bbbbbbbbbbbb/nginx/0.log",
      criLine("starting nginx"),
    );
    await writeJournalFile(
      tree.local(`/var/log/journal/${MACHINE_ID}/system@1.journal`),
      [journalEntry(new Date(), { _SYSTEMD_UNIT: "crio.service", MESSAGE: 'level=info msg="Pulled image"' })],
      tree.scratch,
    );
    await quiesce(tree);
    return node;
  } catch (error) {
    await cleanupNode(node);
    throw error;
  }
}

/**
 * Flushes the node's disks. Until writeback, delayed allocation holds back more blocks than the
 * files end up using, and their release shows as a trend in available bytes, which
 * predict_linear() over the seconds this test has multiplies into hours.
 */
async function quiesce(tree: HostTree): Promise<void> {
  for (const hostPath of ["/", IMAGESTORE]) await execa("sync", ["-f", tree.local(hostPath)]);
}

async function cleanupNode(node: Node | undefined): Promise<void> {
  if (!node) return;
  for (const bindfs of node.bindfs) {
    signal(bindfs.pid, "SIGCONT");
    signal(bindfs.pid, "SIGKILL");
    await bindfs.process;
    await execa("fusermount3", ["-uz", bindfs.target], { reject: false });
  }
  await node.tree.cleanup();
}

// ---------------------------------------------------------------------------------------------
// serve and Prometheus

interface Serve {
  port: number;
  process: ResultPromise;
  stderr: () => string;
}

/** The built bin, as the DaemonSet runs it; `--listen 127.0.0.1:0` and the port read from its log. */
async function startServe(nodeName: string, tree: HostTree): Promise<Serve> {
  const child = execa(
    CLI,
    [
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--interval",
      String(INTERVAL_S),
      "--host-root",
      tree.root,
      "--proc-root",
      tree.procRoot,
      "--cri-timeout",
      "500",
      "--stat-timeout",
      "1000",
    ],
    { env: { ...SERVE_ENV, NODE_NAME: nodeName }, reject: false, stdin: "ignore", buffer: false },
  );
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    log += chunk.toString();
  });
  const port = await until(
    `${nodeName}'s serve to listen`,
    async () => {
      if (child.exitCode !== null) throw new Error(`serve exited: ${log}`);
      const match = /serving on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(log);
      return match ? Number(match[1]) : undefined;
    },
    20_000,
  );
  await until(
    `${nodeName}'s first collection`,
    async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok ? true : undefined),
    30_000,
  );
  return { port, process: child, stderr: () => log };
}

async function stopProcess(child: ResultPromise | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await child;
  clearTimeout(timer);
}

const RULE_FILES = (await readdir(path.join(REPO, "rules")))
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .map((f) => path.join(REPO, "rules", f));

interface RuleFile {
  groups: { name: string; rules: { alert?: string; record?: string; for?: string }[] }[];
}

async function ruleGroups() {
  return (
    await Promise.all(RULE_FILES.map(async (f) => parse(await readFile(f, "utf8")) as RuleFile))
  ).flatMap((file) => file.groups);
}

interface Prometheus {
  url: string;
  process: ResultPromise;
  dir: string;
}

async function startPrometheus(targets: number[]): Promise<Prometheus> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "imagefs-prometheus-"));
  const config = {
    global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
    rule_files: RULE_FILES,
    scrape_configs: [
      {
        job_name: "imagefs-doctor",
        static_configs: [{ targets: targets.map((p) => `127.0.0.1:${p}`), labels: { cluster: CLUSTER } }],
      },
    ],
  };
  await writeFile(path.join(dir, "prometheus.yml"), stringify(config));
  const port = await freePort();
  const child = execa(
    "prometheus",
    [
      `--config.file=${path.join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${path.join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { reject: false, stdin: "ignore", all: true },
  );
  const url = `http://127.0.0.1:${port}`;
  await until(
    "Prometheus to be ready",
    async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${(await child).all}`);
      return (await fetch(`${url}/-/ready`)).ok ? true : undefined;
    },
    30_000,
  );
  return { url, process: child, dir };
}

// ---------------------------------------------------------------------------------------------
// The HTTP API

interface Sample {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}
interface Alert {
  labels: Record<string, string>;
  state: "pending" | "firing" | "inactive";
}
interface RuleGroupStatus {
  name: string;
  file: string;
  rules: { name: string; health: string; lastError?: string; type: string }[];
}

async function api<T>(prometheus: Prometheus, route: string, params: Record<string, string | string[]> = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params))
    for (const v of Array.isArray(value) ? value : [value]) search.append(key, v);
  const response = await fetch(`${prometheus.url}/api/v1/${route}?${search}`, {
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await response.json()) as { status: string; data: T; error?: string; errorType?: string };
  return body;
}

async function query(prometheus: Prometheus, expr: string): Promise<Sample[]> {
  const body = await api<{ resultType: string; result: Sample[] }>(prometheus, "query", { query: expr });
  if (body.status !== "success") throw new Error(`${expr}: ${body.errorType}: ${body.error}`);
  return body.data.result;
}

async function activeAlerts(prometheus: Prometheus): Promise<Alert[]> {
  const body = await api<{ alerts: Alert[] }>(prometheus, "alerts");
  if (body.status !== "success") throw new Error(`alerts: ${body.error}`);
  return body.data.alerts.filter((a) => a.state === "pending" || a.state === "firing");
}

/** Alert names on `node`; the catch-all for findings without an alert of their own names the finding too. */
const alertNames = (alerts: Alert[], node: string) =>
  [
    ...new Set(
      alerts
        .filter((a) => a.labels.node === node)
        .map((a) =>
          a.labels.alertname === "ImagefsCriticalFinding"
            ? `${a.labels.alertname}(${a.labels.id})`
            : a.labels.alertname!,
        ),
    ),
  ].sort();

// ---------------------------------------------------------------------------------------------

describe.skipIf(!ready)(
  "imagefs-doctor serve scraped by a real Prometheus with the repository's rules",
  () => {
    let broken: Node | undefined;
    let healthy: Node | undefined;
    const serves: Serve[] = [];
    let prometheus: Prometheus | undefined;

    beforeAll(async () => {
      [broken, healthy] = await Promise.all([brokenNode(), healthyNode()]);
      // The mislabel is a real security.selinux xattr, as getfattr (attr) shows it.
      const label = await execa("getfattr", [
        "--only-values",
        "-n",
        "security.selinux",
        broken.tree.local(`${IMAGESTORE}/overlay`),
      ]);
      expect(label.stdout.replace(/\0$/, "")).toBe(ctx("default_t"));
      serves.push(await startServe(BROKEN, broken.tree), await startServe(HEALTHY, healthy.tree));
      prometheus = await startPrometheus(serves.map((s) => s.port));

      // Counters alert on increase(): Prometheus must have scraped each counter series at least
      // twice before the next events arrive, or there is nothing to increase from.
      const node = `node="${BROKEN}"`;
      const counters = [
        `imagefs_log_events_total{${node}, pack="selinux-relabel"}`,
        `imagefs_log_events_total{${node}, pack="stargz-store", reason="VerificationFailed"}`,
        `imagefs_log_events_total{${node}, pack="stargz-store", reason="RegistryAuthFailed"}`,
        `imagefs_log_events_total{${node}, pack="crio-layer-store"}`,
        `imagefs_selinux_avc_denials_total{${node}}`,
        `imagefs_journal_entries_dropped_total{${node}, source="journal"}`,
      ];
      await until(
        "two scrapes of every counter of the first journal batch",
        async () => {
          for (const series of counters)
            if ((await query(prometheus!, `count_over_time(${series}[5m]) >= 2`)).length === 0)
              return undefined;
          return true;
        },
        30_000,
      );
      // Written aside and moved in at once: a cycle must not read a journal file half-written.
      // The reader takes the files of /var/log/journal/<machine-id>/ only, so the staging
      // directory is not read until it is renamed to a second machine ID.
      const staging = broken.tree.local("/var/log/journal/staging");
      await writeJournalFile(
        path.join(staging, "system.journal"),
        [...flood(new Date(Date.now() - 5 * 60_000)), ...brokenJournal(0, 200)],
        broken.tree.scratch,
      );
      await rename(staging, broken.tree.local(`/var/log/journal/${"ab".repeat(16)}`));
    }, 120_000);

    afterAll(async () => {
      await stopProcess(prometheus?.process);
      for (const serve of serves) await stopProcess(serve.process);
      await cleanupNode(broken);
      await cleanupNode(healthy);
      if (prometheus) await rm(prometheus.dir, { recursive: true, force: true });
    }, 60_000);

    it("loads every rule group of rules/*.yaml and evaluates every rule without error", async () => {
      const expected = await ruleGroups();
      const groups = await until(
        "every rule to be evaluated",
        async () => {
          const body = await api<{ groups: RuleGroupStatus[] }>(prometheus!, "rules");
          const all = body.data.groups;
          return all.length > 0 && all.every((g) => g.rules.every((r) => r.health !== "unknown"))
            ? all
            : undefined;
        },
        20_000,
      );
      expect(groups.map((g) => g.name).sort()).toEqual(expected.map((g) => g.name).sort());
      for (const group of expected) {
        const loaded = groups.find((g) => g.name === group.name)!;
        expect(loaded.rules.map((r) => r.name)).toEqual(group.rules.map((r) => r.alert ?? r.record));
      }
      const unhealthy = groups.flatMap((g) =>
        g.rules
          .filter((r) => r.health !== "ok")
          .map((r) => `${g.name}/${r.name}: ${r.health} ${r.lastError}`),
      );
      expect(unhealthy).toEqual([]);
    }, 30_000);

    it("raises exactly the expected alerts for the broken node, and none for the healthy one", async () => {
      const forOf = new Map(
        (await ruleGroups()).flatMap((g) =>
          g.rules.filter((r) => r.alert).map((r) => [r.alert!, r.for ?? "0s"]),
        ),
      );
      // The set settles once every broken part has been collected and scraped; transient alerts
      // (a finding that lives for one cycle) must have gone again. Then it must stay put.
      let alerts: Alert[] = [];
      try {
        await until(
          "the broken node's alerts",
          async () => {
            alerts = await activeAlerts(prometheus!);
            return JSON.stringify(alertNames(alerts, BROKEN)) === JSON.stringify(EXPECTED_BROKEN_ALERTS)
              ? true
              : undefined;
          },
          30_000,
        );
      } catch {
        // Fall through to the assertion, which shows the difference.
      }
      expect(alertNames(alerts, BROKEN)).toEqual(EXPECTED_BROKEN_ALERTS);
      for (let i = 0; i < 3; i++) {
        await sleep(1000);
        alerts = await activeAlerts(prometheus!);
        expect(alertNames(alerts, BROKEN)).toEqual(EXPECTED_BROKEN_ALERTS);
      }
      // Every rule waits (`for:`) longer than this test runs: pending, none firing yet.
      for (const alert of alerts) {
        const waits = forOf.get(alert.labels.alertname!) !== "0s";
        expect(`${alert.labels.alertname} ${alert.state}`).toBe(
          `${alert.labels.alertname} ${waits ? "pending" : "firing"}`,
        );
      }
      expect(alertNames(alerts, HEALTHY)).toEqual([]);
      // Every alert names its node; none is about the whole setup (ImagefsDoctorAbsent, say).
      expect(alerts.filter((a) => a.labels.node !== BROKEN)).toEqual([]);
    }, 60_000);

    it("answers every dashboard query with data, as the dashboards run them", async () => {
      const now = Date.now() / 1000;
      const problems: string[] = [];
      const noData: string[] = [];
      for (const q of dashboardQueries()) {
        const name = `${q.file} "${q.panel}" ${q.refId}`;
        const withData: string[] = [];
        for (const node of [".+", BROKEN, HEALTHY]) {
          const expr = expandVariables(q.expr, { cluster: ".*", node, __rate_interval: "1m" });
          const body = q.instant
            ? await api<{ resultType: string; result: Sample[] }>(prometheus!, "query", {
                query: expr,
                time: String(now),
              })
            : await api<{ resultType: string; result: Sample[] }>(prometheus!, "query_range", {
                query: expr,
                start: String(now - 60),
                end: String(now),
                step: "2",
              });
          if (body.status !== "success") {
            problems.push(`${name} (node=~"${node}"): ${body.errorType}: ${body.error}`);
            continue;
          }
          const values = body.data.result.flatMap((s) => (s.value ? [s.value] : (s.values ?? [])));
          if (values.some(([, v]) => Number.isFinite(Number(v)))) withData.push(node);
        }
        if (!withData.includes(BROKEN) && !withData.includes(HEALTHY)) noData.push(name);
        else if (!withData.includes(".+")) problems.push(`${name}: data per node but none for All`);
      }
      expect(problems).toEqual([]);
      expect(noData.sort()).toEqual(Object.keys(NO_DATA_ALLOWED).sort());
    }, 60_000);

    it("answers every dashboard variable query with both nodes", async () => {
      const variables = dashboardVariables();
      expect(variables.length).toBeGreaterThan(0);
      for (const variable of variables) {
        // Grafana's label_values(selector, label) is the label values API with match[]=selector.
        for (const cluster of [".*", CLUSTER]) {
          const selector = expandVariables(variable.selector, { cluster });
          const body = await api<string[]>(prometheus!, `label/${variable.label}/values`, {
            ...(selector ? { "match[]": selector } : {}),
            start: String(Date.now() / 1000 - 300),
            end: String(Date.now() / 1000),
          });
          expect(body.status, `${variable.file} $${variable.name}: ${body.error}`).toBe("success");
          const expected = variable.label === "node" ? [BROKEN, HEALTHY] : [CLUSTER];
          expect(body.data.sort(), `${variable.file} $${variable.name}`).toEqual(expected);
        }
      }
    }, 30_000);
  },
);
