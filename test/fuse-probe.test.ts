import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { probeMount } from "../collector/host/fuse-probe.js";
import type { ProbeOp, ProbeOpKind, ProbeRun } from "../collector/host/fuse-probe-types.js";
import { readFuseConnection } from "../collector/host/fusectl.js";
import { parseMountinfo } from "../collector/host/mountinfo.js";
import { LatencyHistogram, ProbeLatencies } from "../collector/model/latency.js";
import { requireParts } from "./support/requirements.js";

const ready = requireParts("FUSE probe and fusectl tests", ["root", "bindfs"]);

const REPO = fileURLToPath(new URL("..", import.meta.url));
/** statfs(2) f_type of every FUSE filesystem. */
const FUSE_SUPER_MAGIC = 0x65735546;
/** The deadline of the probes that are meant to hang, and how far past it a probe may return. */
const DEADLINE_MS = 1000;
const HANG_SLACK_MS = 2000;
const CONTENT = "hello from the FUSE server\n";

interface Bindfs {
  pid: number;
  /** The mount point: only ever touched from probe children. */
  target: string;
  /** The directory bindfs serves: a local path. */
  source: string;
  /** "0:minor" from mountinfo. */
  device: string;
  process: ResultPromise;
}

async function mountinfo() {
  return parseMountinfo(await readFile("/proc/self/mountinfo", "utf8")).entries;
}

async function waitFor(what: string, test: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** bindfs in the foreground as our own child (we hold its PID), serving a small local tree. */
async function startBindfs(scratch: string): Promise<Bindfs> {
  const source = path.join(scratch, "src");
  const target = path.join(scratch, "mnt");
  await mkdir(path.join(source, "dir"), { recursive: true });
  await mkdir(target);
  await writeFile(path.join(source, "file.txt"), CONTENT);
  for (const name of ["a", "b", "c"]) await writeFile(path.join(source, "dir", `${name}.txt`), name);
  await symlink("file.txt", path.join(source, "link"));
  const child = execa("bindfs", ["-f", source, target], { reject: false, stdin: "ignore" });
  if (child.pid === undefined) throw new Error("bindfs did not start");
  let device = "";
  await waitFor(`bindfs at ${target}`, async () => {
    const entry = (await mountinfo()).find((e) => e.mountPoint === target && e.fstype.startsWith("fuse"));
    device = entry?.device ?? "";
    return entry !== undefined;
  });
  return { pid: child.pid, target, source, device, process: child };
}

/** Resumes the server, drops the mount lazily, then makes sure the server is gone. */
async function stopBindfs(bindfs: Bindfs): Promise<void> {
  signal(bindfs.pid, "SIGCONT");
  await execa("fusermount3", ["-uz", bindfs.target], { reject: false });
  await execa("umount", ["-l", bindfs.target], { reject: false });
  signal(bindfs.pid, "SIGKILL");
  await bindfs.process;
}

/** Counts the ticks of a 10 ms interval and the longest gap between two, while `fn` runs. */
async function ticking<T>(fn: () => Promise<T>): Promise<{ value: T; ticks: number; maxGapMs: number }> {
  let ticks = 0;
  let last = performance.now();
  let maxGapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    ticks += 1;
  }, 10);
  try {
    const value = await fn();
    maxGapMs = Math.max(maxGapMs, performance.now() - last);
    return { value, ticks, maxGapMs };
  } finally {
    clearInterval(timer);
  }
}

/** Temporary fusectl mounts of ours still mounted, and their directories still there. */
async function fusectlLeftovers(): Promise<string[]> {
  const mounts = (await mountinfo())
    .filter((e) => e.fstype === "fusectl" && e.mountPoint !== "/sys/fs/fuse/connections")
    .map((e) => `mounted: ${e.mountPoint}`);
  const dirs = (await readdir(os.tmpdir()))
    .filter((name) => name.startsWith("imagefs-fusectl-"))
    .map((name) => `left: ${path.join(os.tmpdir(), name)}`);
  return [...mounts, ...dirs];
}

/** The op each probe run names first on the mount, and the one the hung-probe test expects to hang. */
function firstFuseOp(kind: ProbeOpKind, bindfs: Bindfs, fresh: string): ProbeOp {
  switch (kind) {
    case "statfs":
      return { op: "statfs", path: bindfs.target };
    case "readdir":
      return { op: "readdir", path: path.join(bindfs.target, "dir") };
    case "read":
      return { op: "read", path: path.join(bindfs.target, "file.txt") };
    case "stat":
      // A name never looked up: the kernel has no cached entry and must ask the server.
      return { op: "stat", path: path.join(bindfs.target, fresh) };
  }
}

// A child in a private mount namespace (unshare -m, propagation private): whatever it mounts or
// unmounts stays there. It puts fusectl into the state asked for, optionally drops root, then
// calls readFuseConnection and prints the result and what is left mounted or on disk.
const NAMESPACE_SCRIPT = `
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import os from "node:os";
const [modulePath, device, state, user] = process.argv.slice(1);
const fusectlMounts = () => readFileSync("/proc/self/mountinfo", "utf8").split("\\n")
  .filter((line) => line.includes(" - fusectl ")).map((line) => line.split(" ")[4]);
for (const at of fusectlMounts()) execFileSync("umount", [at]);
if (state === "mounted") execFileSync("mount", ["-t", "fusectl", "fusectl", "/sys/fs/fuse/connections"]);
const before = fusectlMounts();
const { readFuseConnection } = await import(modulePath);
if (user === "nobody") { process.setgid(65534); process.setuid(65534); }
const result = await readFuseConnection(device);
const tmpLeft = readdirSync(os.tmpdir()).filter((n) => n.startsWith("imagefs-fusectl-"));
process.stdout.write(JSON.stringify({ result, before, after: fusectlMounts(), tmpLeft }));
`;

interface NamespaceRun {
  result: Awaited<ReturnType<typeof readFuseConnection>>;
  before: string[];
  after: string[];
  tmpLeft: string[];
}

async function inPrivateNamespace(
  device: string,
  state: "mounted" | "not mounted",
  user: "root" | "nobody" = "root",
): Promise<NamespaceRun> {
  const child = await execa(
    "unshare",
    [
      "--mount",
      "--propagation",
      "private",
      "--",
      process.execPath,
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      NAMESPACE_SCRIPT,
      path.join(REPO, "collector/host/fusectl.ts"),
      device,
      state,
      user,
    ],
    { cwd: REPO, stdin: "ignore", timeout: 30_000 },
  );
  return JSON.parse(child.stdout) as NamespaceRun;
}

describe.skipIf(!ready)("probeMount and fusectl on a real bindfs mount", () => {
  let scratch: string | undefined;
  let bindfs: Bindfs | undefined;
  let leftoversBefore: string[] = [];

  beforeAll(async () => {
    leftoversBefore = await fusectlLeftovers();
  });

  afterEach(async () => {
    if (bindfs) await stopBindfs(bindfs);
    bindfs = undefined;
    if (scratch) await rm(scratch, { recursive: true, force: true });
    scratch = undefined;
    expect(await fusectlLeftovers()).toEqual(leftoversBefore);
  });

  async function mount(): Promise<Bindfs> {
    scratch = await mkdtemp(path.join(os.tmpdir(), "imagefs-probe-test-"));
    bindfs = await startBindfs(scratch);
    return bindfs;
  }

  it("runs each operation on a healthy mount and reports what the filesystem holds", async () => {
    const fs = await mount();
    const on = (name: string) => path.join(fs.target, name);
    const run = await probeMount(
      [
        { op: "statfs", path: fs.target },
        { op: "readdir", path: on("dir"), maxNames: 2 },
        { op: "readdir", path: fs.target },
        { op: "stat", path: on("file.txt") },
        { op: "stat", path: on("dir") },
        { op: "stat", path: on("link") },
        { op: "read", path: on("file.txt") },
        { op: "read", path: on("file.txt"), maxBytes: 5 },
        { op: "read", path: on("dir") },
        { op: "stat", path: on("missing") },
      ],
      5000,
    );
    expect(run.timedOut).toBe(false);
    expect(run.hungAt).toBeNull();
    expect(run.error).toBeUndefined();
    expect(run.elapsedMs).toBeLessThan(5000);
    const [statfs, listed, root, file, dir, link, read, cut, notFile, missing] = run.results;
    expect(statfs).toMatchObject({
      op: "statfs",
      ok: true,
      value: { kind: "statfs", type: FUSE_SUPER_MAGIC },
    });
    expect(listed).toMatchObject({ op: "readdir", ok: true, value: { kind: "readdir", entries: 3 } });
    expect(listed?.ok && listed.value.kind === "readdir" && listed.value.names).toHaveLength(2);
    expect(root).toMatchObject({ ok: true, value: { kind: "readdir", entries: 3, names: [] } });
    expect(file).toMatchObject({ ok: true, value: { kind: "stat", fileType: "file", size: CONTENT.length } });
    expect(dir).toMatchObject({ ok: true, value: { kind: "stat", fileType: "dir" } });
    expect(link).toMatchObject({ ok: true, value: { kind: "stat", fileType: "symlink" } });
    expect(read).toMatchObject({ ok: true, value: { kind: "read", text: CONTENT, truncated: false } });
    expect(cut).toMatchObject({
      ok: true,
      value: { kind: "read", text: CONTENT.slice(0, 5), truncated: true },
    });
    expect(notFile).toMatchObject({ op: "read", ok: false, code: "ENOTREG" });
    expect(missing).toMatchObject({ op: "stat", ok: false, code: "ENOENT" });
    for (const result of run.results) {
      // Timed inside the child around the system calls: well under a second on a healthy mount.
      expect(result.ms).toBeGreaterThan(0);
      expect(result.ms).toBeLessThan(1000);
    }
    // The values are the source tree's, read here through its local path, never the mount.
    expect((await stat(path.join(fs.source, "file.txt"))).size).toBe(CONTENT.length);
  });

  it("reads the first entry of a directory with a given suffix, listed in the child (pick)", async () => {
    const fs = await mount();
    const run = await probeMount(
      [
        { op: "read", path: path.join(fs.target, "dir"), pick: ".txt" },
        { op: "read", path: path.join(fs.target, "dir"), pick: ".json" },
      ],
      5000,
    );
    const [found, none] = run.results;
    // a.txt, b.txt and c.txt: the first by name.
    expect(found).toMatchObject({ op: "read", ok: true, value: { kind: "read", text: "a" } });
    expect(none).toMatchObject({ op: "read", ok: false, code: "ENOENT" });
    expect(none?.ok === false && none.message).toContain("no entry ending in .json");
    await expect(probeMount([{ op: "stat", path: fs.target, pick: ".json" }], 5000)).rejects.toThrow(
      TypeError,
    );
    await expect(probeMount([{ op: "read", path: fs.target, pick: "../x" }], 5000)).rejects.toThrow(
      TypeError,
    );
  });

  it("names the operation a stopped server hangs, keeps the ones before it, and never blocks this process", async () => {
    const fs = await mount();
    const local: ProbeOp = { op: "stat", path: path.join(fs.source, "file.txt") };
    const hung: ProbeOp = { op: "statfs", path: fs.target };
    const after: ProbeOp = { op: "read", path: path.join(fs.target, "file.txt") };
    signal(fs.pid, "SIGSTOP");

    // While the child is stuck, this process's event loop and libuv's thread pool stay free:
    // an interval keeps ticking, and a burst of local fs calls (more than the pool's 4 threads) finishes.
    let localCallsMs = Number.NaN;
    const probe = ticking(async () => {
      const run = probeMount([local, hung, after], DEADLINE_MS);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const started = performance.now();
      await Promise.all(Array.from({ length: 16 }, () => stat(fs.source)));
      localCallsMs = performance.now() - started;
      return run;
    });
    const { value: run, ticks, maxGapMs } = await probe;
    expect(run.elapsedMs).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
    expect(run.elapsedMs).toBeLessThan(DEADLINE_MS + HANG_SLACK_MS);
    expect(run.timedOut).toBe(true);
    expect(run.hungAt).toEqual(hung);
    expect(run.error).toBeUndefined();
    expect(run.results).toHaveLength(1);
    expect(run.results[0]).toMatchObject({
      op: "stat",
      path: local.path,
      ok: true,
      value: { fileType: "file" },
    });
    expect(ticks).toBeGreaterThan(DEADLINE_MS / 10 / 3);
    expect(maxGapMs).toBeLessThan(250);
    expect(localCallsMs).toBeLessThan(250);

    signal(fs.pid, "SIGCONT");
    const resumed = await probeMount([local, hung, after], DEADLINE_MS);
    expect(resumed.timedOut).toBe(false);
    expect(resumed.hungAt).toBeNull();
    expect(resumed.results.map((r) => r.ok)).toEqual([true, true, true]);
    expect(resumed.results[2]).toMatchObject({ value: { kind: "read", text: CONTENT } });

    // What the metrics issue keeps: per (mount, op), latencies of successes, and the timeout.
    const latencies = new ProbeLatencies();
    latencies.record(fs.target, run);
    latencies.record(fs.target, resumed);
    expect(latencies.series(fs.target, "statfs")).toMatchObject({ errors: 0, timeouts: 1 });
    expect(latencies.series(fs.target, "statfs").histogram.count).toBe(1);
    expect(latencies.series(fs.target, "stat").histogram.count).toBe(2);
    expect(latencies.series(fs.target, "read").histogram.count).toBe(1);
    expect(ProbeLatencies.fromJSON(JSON.parse(JSON.stringify(latencies))).toJSON()).toEqual(
      latencies.toJSON(),
    );
  });

  it.each<ProbeOpKind>(["stat", "statfs", "readdir", "read"])(
    "names a %s as the operation that hung when it is the first to reach the stopped server",
    async (kind) => {
      const fs = await mount();
      const local: ProbeOp = { op: "readdir", path: fs.source };
      const first = firstFuseOp(kind, fs, `never-looked-up-${kind}`);
      const run0 = await probeMount([{ op: "stat", path: fs.target }], 5000);
      expect(run0.results[0]?.ok).toBe(true);
      signal(fs.pid, "SIGSTOP");
      const run = await probeMount([local, first, { op: "statfs", path: fs.target }], DEADLINE_MS);
      expect(run.elapsedMs).toBeLessThan(DEADLINE_MS + HANG_SLACK_MS);
      expect(run.hungAt).toEqual(first);
      expect(run.results.map((r) => [r.op, r.ok])).toEqual([["readdir", true]]);
    },
  );

  it("reports ENOTCONN, not a hang, once the server is killed", async () => {
    const fs = await mount();
    signal(fs.pid, "SIGKILL");
    await fs.process;
    // The mount outlives its server.
    expect((await mountinfo()).some((e) => e.mountPoint === fs.target)).toBe(true);
    const ops: ProbeOp[] = (["statfs", "readdir", "read"] as const).map((kind) => firstFuseOp(kind, fs, ""));
    ops.push({ op: "stat", path: path.join(fs.target, "file.txt") });
    const run = await probeMount(ops, 5000);
    expect(run.timedOut).toBe(false);
    expect(run.hungAt).toBeNull();
    expect(run.elapsedMs).toBeLessThan(2000);
    expect(run.results).toHaveLength(ops.length);
    for (const result of run.results) expect(result).toMatchObject({ ok: false, code: "ENOTCONN" });
    const latencies = new ProbeLatencies();
    latencies.record(fs.target, run);
    expect(latencies.series(fs.target, "statfs")).toMatchObject({ errors: 1, timeouts: 0 });
    expect(latencies.series(fs.target, "statfs").histogram.count).toBe(0);
  });

  it("reads the connection's fusectl counters: waiting rises while a probe is stuck, and falls when it is killed", async () => {
    const fs = await mount();
    const systemWide = (await mountinfo()).some((e) => e.fstype === "fusectl");
    const idle = await readFuseConnection(fs.device);
    expect(idle.error).toBeUndefined();
    expect(idle.source).toBe(systemWide ? "mounted" : "temporary mount");
    expect(idle.waiting).toBe(0);
    expect(idle.maxBackground).toBeGreaterThan(0);
    expect(idle.congestionThreshold).toBeGreaterThan(0);

    signal(fs.pid, "SIGSTOP");
    let settled = false;
    const probe = probeMount([{ op: "statfs", path: fs.target }], 3000).finally(() => {
      settled = true;
    });
    let stuck = idle;
    await waitFor(
      "a waiting request",
      async () => {
        stuck = await readFuseConnection(fs.device);
        return (stuck.waiting ?? 0) > 0;
      },
      2500,
    );
    expect(settled).toBe(false); // read while the stuck child exists
    expect(stuck.waiting).toBeGreaterThanOrEqual(1);
    expect(stuck.source).toBe(idle.source);
    const run = await probe;
    expect(run.hungAt?.op).toBe("statfs");
    // The killed child's request was never read by the stopped server: the kernel drops it.
    await waitFor(
      "no waiting request",
      async () => (await readFuseConnection(fs.device)).waiting === 0,
      5000,
    );
  });

  it("mounts fusectl on a temporary directory when it is not mounted, and leaves nothing behind", async () => {
    const fs = await mount();
    const temporary = await inPrivateNamespace(fs.device, "not mounted");
    expect(temporary.before).toEqual([]);
    expect(temporary.result).toMatchObject({ source: "temporary mount", waiting: 0 });
    expect(temporary.result.error).toBeUndefined();
    expect(temporary.result.maxBackground).toBeGreaterThan(0);
    expect(temporary.after).toEqual([]);
    expect(temporary.tmpLeft).toEqual([]);

    const mounted = await inPrivateNamespace(fs.device, "mounted");
    expect(mounted.before).toEqual(["/sys/fs/fuse/connections"]);
    expect(mounted.result).toMatchObject({ source: "mounted", waiting: 0 });
    expect(mounted.result.maxBackground).toBe(temporary.result.maxBackground);
    expect(mounted.after).toEqual(["/sys/fs/fuse/connections"]);

    const unprivileged = await inPrivateNamespace(fs.device, "not mounted", "nobody");
    expect(unprivileged.result).toMatchObject({ source: "unavailable", waiting: null });
    expect(unprivileged.result.error).toContain("needs root");
    expect(unprivileged.after).toEqual([]);

    // In this process's own namespace too, whatever state fusectl is in here.
    expect((await readFuseConnection(fs.device)).waiting).toBe(0);
  });

  it("refuses devices that are not FUSE connections, and connections that do not exist", async () => {
    expect(await readFuseConnection("8:1")).toMatchObject({ source: "unavailable", waiting: null });
    expect((await readFuseConnection("nonsense")).error).toContain("major:minor");
    const gone = await readFuseConnection("0:999999");
    expect(gone.waiting).toBeNull();
    expect(gone.error).toContain("no FUSE connection 999999");
    expect(await readFuseConnection("0:999999", { temporaryMount: false })).toMatchObject({
      waiting: null,
    });
  });
});

describe("latency histogram", () => {
  it("counts in Prometheus's cumulative buckets, le inclusive, and survives JSON", () => {
    const histogram = new LatencyHistogram([0.001, 0.01, 0.1]);
    for (const seconds of [0.0005, 0.001, 0.002, 0.05, 0.5]) histogram.observe(seconds);
    expect(histogram.cumulative()).toEqual([
      { le: 0.001, count: 2 },
      { le: 0.01, count: 3 },
      { le: 0.1, count: 4 },
      { le: Number.POSITIVE_INFINITY, count: 5 },
    ]);
    expect(histogram.count).toBe(5);
    expect(histogram.sum).toBeCloseTo(0.5535, 10);
    const json = JSON.parse(JSON.stringify(histogram));
    expect(json).toEqual({ le: [0.001, 0.01, 0.1], buckets: [2, 3, 4], count: 5, sum: histogram.sum });
    expect(LatencyHistogram.fromJSON(json).toJSON()).toEqual(json);
  });

  it("rejects what is not a histogram", () => {
    expect(() => new LatencyHistogram([0.1, 0.01])).toThrow(RangeError);
    expect(() => new LatencyHistogram().observe(-1)).toThrow(RangeError);
    expect(() => LatencyHistogram.fromJSON({ le: [1, 2], buckets: [3, 2], count: 3, sum: 1 })).toThrow(
      RangeError,
    );
    expect(() => LatencyHistogram.fromJSON({ le: [1], buckets: [4], count: 3, sum: 1 })).toThrow(RangeError);
    expect(() => LatencyHistogram.fromJSON(null)).toThrow(RangeError);
  });

  it("records probe runs per mount and operation: successes timed, errors and timeouts counted", () => {
    const run: ProbeRun = {
      results: [
        { op: "stat", path: "/a", ok: true, ms: 2, value: { kind: "stat", fileType: "dir", size: 0 } },
        { op: "read", path: "/a/x", ok: false, ms: 0.1, code: "ENOENT", message: "gone" },
      ],
      hungAt: { op: "statfs", path: "/a" },
      timedOut: true,
      elapsedMs: 1000,
    };
    const latencies = new ProbeLatencies();
    latencies.record("/a", run);
    latencies.record("/b", { results: [], hungAt: null, timedOut: false, elapsedMs: 0 });
    expect(latencies.toJSON().map((s) => [s.mount, s.op, s.histogram.count, s.errors, s.timeouts])).toEqual([
      ["/a", "statfs", 0, 0, 1],
      ["/a", "stat", 1, 0, 0],
      ["/a", "read", 0, 1, 0],
    ]);
    expect(latencies.series("/a", "stat").histogram.sum).toBeCloseTo(0.002, 10);
  });
});

describe("probeMount with many operations", () => {
  it("hands 5,000 stat operations to its child on stdin and gets 5,000 results (no E2BIG: one argv argument is capped at 128 KiB)", async () => {
    const scratch = await mkdtemp(path.join(os.tmpdir(), "imagefs-probe-many-"));
    try {
      await writeFile(path.join(scratch, "present"), "x");
      // Long paths, as a store's layer directories are: 5,000 of them are ~700 KiB of JSON.
      const deep = path.join(scratch, "d".repeat(100));
      await mkdir(deep);
      const ops: ProbeOp[] = Array.from({ length: 5000 }, (_, i) => ({
        op: "stat" as const,
        path: i % 2 === 0 ? path.join(scratch, "present") : path.join(deep, `missing-${"m".repeat(20)}-${i}`),
      }));
      expect(JSON.stringify(ops).length).toBeGreaterThan(128 * 1024);
      const run = await probeMount(ops, 60_000);
      expect(run.error).toBeUndefined();
      expect(run.timedOut).toBe(false);
      expect(run.results).toHaveLength(5000);
      expect(run.results[0]).toMatchObject({ ok: true, value: { kind: "stat", fileType: "file", size: 1 } });
      expect(run.results[1]).toMatchObject({ ok: false, code: "ENOENT", path: ops[1]!.path });
      expect(run.results[4999]).toMatchObject({ ok: false, code: "ENOENT", path: ops[4999]!.path });
      expect(run.results.filter((r) => r.ok)).toHaveLength(2500);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
