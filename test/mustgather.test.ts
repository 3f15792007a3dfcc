/**
 * mustgather/: the must-gather image's gather script, run against a stand-in `oc` on PATH that
 * records every call (argv and times, one JSON line each) and answers exactly the command lines
 * the script is expected to use: pod and node listings, and for `oc exec ... must-gather -o -` a
 * support bundle built here with tar-stream in the layout `imagefs-doctor must-gather` writes, or
 * a failure, a hang, or a hostile archive. What is checked is what a support engineer would
 * check in the result; the Containerfile, which no container engine can build here, is checked
 * statically and the script is run as the image would run it.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { execa } from "execa";
import tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { requireParts } from "./support/requirements.js";

const REPO = path.resolve(import.meta.dirname, "..");
const GATHER = path.join(REPO, "mustgather/gather");
const PACKAGE = JSON.parse(await readFile(path.join(REPO, "package.json"), "utf8")) as { version: string };

const runnable = requireParts("mustgather/gather", ["jq"]);
const lintable = requireParts("mustgather/gather (shellcheck)", ["shellcheck"]);

// ---------------------------------------------------------------------------------------------
// What the script must target: the DaemonSet of deploy/kubernetes and the image of deploy/Containerfile.

interface Target {
  namespace: string;
  selector: string;
  container: string;
  program: string[];
}

async function deployTarget(): Promise<Target> {
  const kustomization = parseYaml(
    await readFile(path.join(REPO, "deploy/kubernetes/kustomization.yaml"), "utf8"),
  ) as { namespace: string };
  const ds = parseYaml(await readFile(path.join(REPO, "deploy/kubernetes/daemonset.yaml"), "utf8")) as {
    spec: {
      selector: { matchLabels: Record<string, string> };
      template: { spec: { containers: { name: string }[] } };
    };
  };
  const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(
    await readFile(path.join(REPO, "deploy/Containerfile"), "utf8"),
  );
  return {
    namespace: kustomization.namespace,
    selector: Object.entries(ds.spec.selector.matchLabels)
      .map(([k, v]) => `${k}=${v}`)
      .join(","),
    container: ds.spec.template.spec.containers[0]!.name,
    program: JSON.parse(entrypoint![1]!) as string[],
  };
}

const GET_PODS_OUTPUT =
  'jsonpath={range .items[*]}{.metadata.name}{"\\t"}{.spec.nodeName}{"\\t"}{.status.phase}{"\\n"}{end}';
const GET_NODES_OUTPUT = 'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}';

// ---------------------------------------------------------------------------------------------
// The stand-in oc

interface Route {
  argv: string[];
  stdout?: string;
  stderr?: string;
  exit?: number;
  delayMs?: number;
  /** Never answers (until a signal ends it). */
  hang?: boolean;
  /** A .tar.gz written to stdout. */
  bundle?: string;
}

interface Call {
  event: "start" | "end";
  pid: number;
  t: number;
  argv: string[];
  exitCode?: number;
  signal?: string;
}

const FAKE_OC = `#!${process.execPath}
const fs = require("node:fs");
const config = JSON.parse(fs.readFileSync(process.env.FAKE_OC_CONFIG, "utf8"));
const argv = process.argv.slice(2);
const record = (event, extra = {}) =>
  fs.appendFileSync(config.log, JSON.stringify({ event, pid: process.pid, t: Date.now(), argv, ...extra }) + "\\n");
record("start");
const route = config.routes.find((r) => JSON.stringify(r.argv) === JSON.stringify(argv));
if (!route) {
  process.stderr.write("fake oc: unexpected call " + JSON.stringify(argv) + "\\n");
  record("end", { exitCode: 99 });
  process.exit(99);
}
process.on("SIGTERM", () => {
  record("end", { signal: "SIGTERM" });
  process.exit(143);
});
const finish = () => {
  if (route.stderr) fs.writeSync(2, route.stderr);
  const data = route.bundle ? fs.readFileSync(route.bundle) : Buffer.from(route.stdout ?? "");
  process.stdout.write(data, () => {
    record("end", { exitCode: route.exit ?? 0 });
    process.exit(route.exit ?? 0);
  });
};
if (route.hang) setInterval(() => {}, 60000);
else setTimeout(finish, route.delayMs ?? 0);
`;

// ---------------------------------------------------------------------------------------------
// Bundles in the layout of `imagefs-doctor must-gather -o -`

interface Finding {
  id: string;
  severity: "critical" | "warning" | "info";
  title: string;
  subject?: string;
}

interface Entry {
  name: string;
  /** Owner name in the tar header (a space in it moves `tar -tv`'s size column). */
  uname?: string;
  content?: string;
  type?: "file" | "directory" | "symlink" | "link";
  linkname?: string;
  mode?: number;
  uid?: number;
}

const STAMP = "20261123T120000Z";

function bundleEntries(node: string, findings: Finding[]): Entry[] {
  const top = `imagefs-doctor-${node}-${STAMP}`;
  const file = (name: string, content: string, mode = 0o644): Entry => ({
    name: `${top}/${name}`,
    content,
    mode,
    uid: 12345,
  });
  return [
    { name: `${top}/`, type: "directory", mode: 0o755 },
    file("version", `imagefs-doctor\n${PACKAGE.version}\n`),
    file("timestamp", "2026-11-23T12:00:00Z\n"),
    file(
      "manifest.json",
      JSON.stringify({ items: [{ path: "host/etc/containers/storage.conf", ok: true }] }),
    ),
    file("redactions.json", JSON.stringify({ obfuscated: false, rules: [] })),
    file("snapshot.json", JSON.stringify({ node, collectedAt: "2026-11-23T12:00:00Z", sources: {} }), 0o600),
    file("findings.json", JSON.stringify({ node, generatedAt: "2026-11-23T12:00:00Z", findings })),
    file("report.html", `<!doctype html><title>${node}</title>`),
    { name: `${top}/host/`, type: "directory", mode: 0o755 },
    file("host/etc/containers/storage.conf", `[storage]\ndriver = "overlay"\n# ${node}\n`),
    // A set-user-ID, world-writable file: extracted as neither.
    file("host/odd-mode", "x", 0o4777),
  ];
}

async function writeBundle(file: string, entries: Entry[]): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createGzip(), createWriteStream(file));
  for (const entry of entries) {
    await new Promise<void>((resolve, reject) => {
      pack.entry(
        {
          name: entry.name,
          type: entry.type ?? "file",
          linkname: entry.linkname,
          mode: entry.mode ?? 0o644,
          uid: entry.uid ?? 0,
          gid: entry.uid ?? 0,
          ...(entry.uname === undefined ? {} : { uname: entry.uname }),
          mtime: new Date("2026-11-23T12:00:00Z"),
        },
        entry.content ?? "",
        (error) => (error ? reject(error) : resolve()),
      );
    });
  }
  pack.finalize();
  await done;
}

function finding(id: string, severity: Finding["severity"], subject?: string): Finding {
  return { id, severity, title: `${id} title`, ...(subject ? { subject } : {}) };
}

// ---------------------------------------------------------------------------------------------
// A run of gather

interface Run {
  exitCode: number | undefined;
  stderr: string;
  ms: number;
  out: string;
  calls: Call[];
}

class Cluster {
  routes: Route[] = [];
  constructor(
    readonly dir: string,
    readonly target: Target,
  ) {}

  static async create(target: Target): Promise<Cluster> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "imagefs-mustgather-"));
    await mkdir(path.join(dir, "bin"));
    await mkdir(path.join(dir, "bundles"));
    await writeFile(path.join(dir, "bin/oc"), FAKE_OC);
    await chmod(path.join(dir, "bin/oc"), 0o755);
    return new Cluster(dir, target);
  }

  pods(rows: [pod: string, node: string, phase: string][], answer: Partial<Route> = {}): void {
    this.routes.push({
      argv: ["get", "pods", "-n", this.target.namespace, "-l", this.target.selector, "-o", GET_PODS_OUTPUT],
      stdout: rows.map((r) => `${r.join("\t")}\n`).join(""),
      ...answer,
    });
  }

  nodes(selector: string, names: string[]): void {
    this.routes.push({
      argv: ["get", "nodes", "-l", selector, "-o", GET_NODES_OUTPUT],
      stdout: names.map((n) => `${n}\n`).join(""),
    });
  }

  execArgv(pod: string, extra: string[]): string[] {
    const t = this.target;
    return [
      "exec",
      "-n",
      t.namespace,
      pod,
      "-c",
      t.container,
      "--",
      ...t.program,
      "must-gather",
      "-o",
      "-",
      ...extra,
    ];
  }

  async exec(pod: string, extra: string[], answer: Omit<Route, "argv">, entries?: Entry[]): Promise<void> {
    const route: Route = { argv: this.execArgv(pod, extra), ...answer };
    if (entries) {
      route.bundle = path.join(this.dir, "bundles", `${pod}.tar.gz`);
      await writeBundle(route.bundle, entries);
    }
    this.routes.push(route);
  }

  async run(env: Record<string, string>, out = path.join(this.dir, "out")): Promise<Run> {
    const log = path.join(this.dir, `calls-${Date.now()}.jsonl`);
    const config = path.join(this.dir, "oc.json");
    await writeFile(config, JSON.stringify({ log, routes: this.routes }));
    await writeFile(log, "");
    const started = Date.now();
    const result = await execa(GATHER, [], {
      reject: false,
      timeout: 120_000,
      env: {
        PATH: `${path.join(this.dir, "bin")}:${process.env.PATH}`,
        FAKE_OC_CONFIG: config,
        MUST_GATHER_DIR: out,
        ...env,
      },
      extendEnv: false,
    });
    const ms = Date.now() - started;
    // Let a call ended by a signal write its last line.
    await new Promise((r) => setTimeout(r, 200));
    const calls = (await readFile(log, "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Call);
    return { exitCode: result.exitCode, stderr: result.stderr, ms, out, calls };
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

interface NodeSummary {
  node: string;
  status: string;
  exitCode: number;
  durationMs: number;
  reason: string | null;
  findings: {
    total: number;
    bySeverity: Record<string, number>;
    critical: string[];
    warning: string[];
  } | null;
}

interface Summary {
  product: string;
  version: string;
  error: string | null;
  nodeSelector: string | null;
  imagefsDoctorArgs: string[];
  nodes: NodeSummary[];
  failed: { node: string; status: string; reason: string | null }[];
}

async function summaryOf(out: string): Promise<Summary> {
  return JSON.parse(await readFile(path.join(out, "summary.json"), "utf8")) as Summary;
}

/** Key: value lines of nodes/<node>/gather.log. */
async function nodeLog(out: string, node: string): Promise<{ text: string; fields: Record<string, string> }> {
  const text = await readFile(path.join(out, "nodes", node, "gather.log"), "utf8");
  const fields: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^([a-z ]+): (.*)$/.exec(line);
    if (match && !(match[1]! in fields)) fields[match[1]!] = match[2]!;
  }
  return { text, fields };
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    out.push(full);
    if (entry.isDirectory()) out.push(...(await walk(full)));
  }
  return out;
}

function execCalls(calls: Call[]): Call[] {
  return calls.filter((c) => c.argv[0] === "exec");
}

/** The most exec calls that were running at one moment, from their start and end records. */
function maxConcurrentExecs(calls: Call[]): number {
  const events = calls
    .filter((c) => c.argv[0] === "exec")
    .map((c) => ({ t: c.t, d: c.event === "start" ? 1 : -1 }))
    // At equal times an end comes first: a slot freed and taken in the same millisecond is not overlap.
    .sort((a, b) => a.t - b.t || a.d - b.d);
  let running = 0;
  let most = 0;
  for (const e of events) {
    running += e.d;
    most = Math.max(most, running);
  }
  return most;
}

// ---------------------------------------------------------------------------------------------

describe.runIf(runnable)("mustgather/gather against a stand-in oc", () => {
  let target: Target;
  beforeAll(async () => {
    target = await deployTarget();
  });

  describe("six nodes, two at a time: good, empty, failing, hung, hostile and partial bundles", () => {
    let cluster: Cluster;
    let run: Run;
    const marker = `imagefs-mustgather-${process.pid}-${Date.now()}`;
    const SINCE = ["--since", "2h0m0s"];
    const prepared: Record<string, Finding[]> = {
      "node-a": [
        finding("IMAGESTORE_NOT_MOUNTED", "critical", "/var/lib/images"),
        finding("EVICTION_SIGNAL_UNWATCHED", "critical", "imagefs"),
        finding("EVICTION_SIGNAL_UNWATCHED", "critical", "containerfs"),
        finding("SELINUX_STORE_LABEL_WRONG", "warning", "/var/lib/images"),
        finding("LAZY_PULL_INACTIVE", "info"),
      ],
      "node-b": [],
      "node-e": [finding("DISK_PRESSURE_NEAR", "warning", "nodefs")],
      "node-f": [finding("SOURCE_FAILED", "warning", "journal"), finding("FUSE_STORE_SLOW", "info")],
    };
    const stderrLines = Array.from({ length: 30 }, (_, i) => `line ${i + 1} of the stderr`);

    beforeAll(async () => {
      cluster = await Cluster.create(target);
      cluster.pods([
        ["imagefs-doctor-aaaaa", "node-a", "Running"],
        ["imagefs-doctor-bbbbb", "node-b", "Running"],
        ["imagefs-doctor-ccccc", "node-c", "Running"],
        ["imagefs-doctor-ddddd", "node-d", "Running"],
        ["imagefs-doctor-eeeee", "node-e", "Running"],
        ["imagefs-doctor-fffff", "node-f", "Running"],
        ["imagefs-doctor-ggggg", "node-g", "Pending"],
      ]);
      await cluster.exec(
        "imagefs-doctor-aaaaa",
        SINCE,
        { delayMs: 400 },
        bundleEntries("node-a", prepared["node-a"]!),
      );
      await cluster.exec(
        "imagefs-doctor-bbbbb",
        SINCE,
        { delayMs: 400 },
        bundleEntries("node-b", prepared["node-b"]!),
      );
      await cluster.exec("imagefs-doctor-ccccc", SINCE, {
        delayMs: 100,
        exit: 1,
        stderr: `${stderrLines.join("\n")}\nerror: unable to upgrade connection: container not found ("imagefs-doctor")\n`,
      });
      await cluster.exec("imagefs-doctor-ddddd", SINCE, { hang: true });
      await cluster.exec("imagefs-doctor-eeeee", SINCE, { delayMs: 400 }, [
        ...bundleEntries("node-e", prepared["node-e"]!),
        { name: `../${marker}-dotdot`, content: "escaped" },
        { name: `imagefs-doctor-node-e-${STAMP}/../../${marker}-deep`, content: "escaped" },
        { name: `/etc/${marker}-absolute`, content: "escaped" },
        { name: `imagefs-doctor-node-e-${STAMP}/out`, type: "symlink", linkname: "../../.." },
        { name: `imagefs-doctor-node-e-${STAMP}/out/${marker}-through-link`, content: "escaped" },
        { name: `imagefs-doctor-node-e-${STAMP}/etc`, type: "symlink", linkname: "/etc" },
        { name: `imagefs-doctor-node-e-${STAMP}/etc/${marker}-through-absolute-link`, content: "escaped" },
        { name: `imagefs-doctor-node-e-${STAMP}/passwd`, type: "link", linkname: "/etc/passwd" },
      ]);
      // Exits 3 with a whole bundle: some items failed, and manifest.json says which.
      await cluster.exec(
        "imagefs-doctor-fffff",
        SINCE,
        { delayMs: 400, exit: 3, stderr: "2 items failed, see manifest.json\n" },
        bundleEntries("node-f", prepared["node-f"]!),
      );
      run = await cluster.run({ PARALLELISM: "2", NODE_TIMEOUT: "2", MUST_GATHER_SINCE: "2h0m0s" });
    }, 60_000);

    afterAll(async () => {
      await cluster?.remove();
    });

    it("exits 0, and writes the two-line version file and the timestamps", async () => {
      expect(run.exitCode, run.stderr).toBe(0);
      expect(await readFile(path.join(run.out, "version"), "utf8")).toBe(
        "imagefs-doctor/must-gather\n0.0.0-unknown\n",
      );
      const stamps = (await readFile(path.join(run.out, "timestamp"), "utf8")).trim().split("\n");
      expect(stamps).toHaveLength(2);
      for (const s of stamps) expect(s).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      // No scratch space left behind in the output.
      expect((await readdir(run.out)).sort()).toEqual(
        ["gather.logs", "nodes", "summary.json", "summary.txt", "timestamp", "version"].sort(),
      );
    });

    it("asks for the DaemonSet's pods exactly as deploy/kubernetes names them, and nothing else", () => {
      const unexpected = run.calls.filter((c) => c.event === "end" && c.exitCode === 99);
      expect(unexpected.map((c) => c.argv)).toEqual([]);
      const gets = run.calls.filter((c) => c.event === "start" && c.argv[0] === "get");
      expect(gets.map((c) => c.argv)).toEqual([cluster.routes[0]!.argv]);
      // No NODE_SELECTOR: no node listing; a node whose pod is not Running is not exec'd into.
      const pods = execCalls(run.calls)
        .filter((c) => c.event === "start")
        .map((c) => c.argv[3])
        .sort();
      expect(pods).toEqual(["a", "b", "c", "d", "e", "f"].map((x) => `imagefs-doctor-${x.repeat(5)}`));
    });

    it("runs imagefs-doctor must-gather -o - in the DaemonSet's container with MUST_GATHER_SINCE as --since", () => {
      const a = execCalls(run.calls).find(
        (c) => c.event === "start" && c.argv[3] === "imagefs-doctor-aaaaa",
      )!;
      expect(a.argv).toEqual([
        "exec",
        "-n",
        target.namespace,
        "imagefs-doctor-aaaaa",
        "-c",
        target.container,
        "--",
        ...target.program,
        "must-gather",
        "-o",
        "-",
        "--since",
        "2h0m0s",
      ]);
    });

    it("unpacks a good node's bundle under nodes/<node>/, owned by the gatherer, without odd modes", async () => {
      for (const node of ["node-a", "node-b"]) {
        const dir = path.join(run.out, "nodes", node);
        const files = (await walk(dir)).map((f) => path.relative(dir, f)).sort();
        expect(files).toEqual(
          [
            "findings.json",
            "gather.log",
            "host",
            "host/etc",
            "host/etc/containers",
            "host/etc/containers/storage.conf",
            "host/odd-mode",
            "manifest.json",
            "redactions.json",
            "report.html",
            "snapshot.json",
            "timestamp",
            "version",
          ].sort(),
        );
        const snapshot = JSON.parse(await readFile(path.join(dir, "snapshot.json"), "utf8"));
        expect(snapshot.node).toBe(node);
        const findings = JSON.parse(await readFile(path.join(dir, "findings.json"), "utf8"));
        expect(findings.findings).toEqual(prepared[node]);
        expect(await readFile(path.join(dir, "host/etc/containers/storage.conf"), "utf8")).toContain(
          `# ${node}`,
        );
        const odd = await stat(path.join(dir, "host/odd-mode"));
        expect(odd.uid).toBe(process.getuid?.());
        expect(odd.mode & 0o7022).toBe(0); // no set-user-ID, nothing group- or world-writable
        expect((await stat(path.join(dir, "snapshot.json"))).mode & 0o777).toBe(0o600);
        const log = await nodeLog(run.out, node);
        expect(log.fields).toMatchObject({ node, status: "ok", "exit code": "0" });
      }
    });

    it("marks the hung node timeout at NODE_TIMEOUT, while the others complete", async () => {
      const log = await nodeLog(run.out, "node-d");
      expect(log.fields.status).toBe("timeout");
      expect(log.fields["exit code"]).toBe("124");
      const ms = Number(log.fields.duration!.replace(/ ms$/, ""));
      expect(ms).toBeGreaterThanOrEqual(2000);
      expect(ms).toBeLessThan(4000);
      // The stand-in oc was ended by timeout's SIGTERM, not left running.
      const d = execCalls(run.calls).filter((c) => c.argv[3] === "imagefs-doctor-ddddd");
      expect(d.map((c) => c.event)).toEqual(["start", "end"]);
      expect(d[1]!.signal).toBe("SIGTERM");
      // The whole run: the hang in one slot, the five others (400 ms each) in the other.
      expect(run.ms).toBeLessThan(8000);
      const summary = await summaryOf(run.out);
      expect(summary.nodes.filter((n) => n.status === "ok").map((n) => n.node)).toEqual(["node-a", "node-b"]);
    });

    it("marks the failing node failed, with its exit code and the end of its stderr", async () => {
      const log = await nodeLog(run.out, "node-c");
      expect(log.fields).toMatchObject({ status: "failed", "exit code": "1" });
      expect(log.text).toContain(
        'error: unable to upgrade connection: container not found ("imagefs-doctor")',
      );
      expect(log.text).toContain("line 30 of the stderr");
      expect(log.text).not.toContain("line 11 of the stderr"); // the last 20 lines only
      expect(log.fields.command).toBe(
        cluster.execArgv("imagefs-doctor-ccccc", SINCE).join(" ").replace(/^/, "oc "),
      );
    });

    it("keeps a bundle that came with a non-zero exit, and marks the node failed", async () => {
      const log = await nodeLog(run.out, "node-f");
      expect(log.fields).toMatchObject({ status: "failed", "exit code": "3" });
      expect(log.text).toContain("2 items failed, see manifest.json");
      expect(
        JSON.parse(await readFile(path.join(run.out, "nodes/node-f/manifest.json"), "utf8")),
      ).toHaveProperty("items");
    });

    it("lets nothing of a hostile archive escape nodes/<node>/, and keeps no link", async () => {
      // Nothing outside the output directory but what the test made.
      const made = (await readdir(cluster.dir)).filter((f) => !f.startsWith("calls-"));
      expect(made.sort()).toEqual(["bin", "bundles", "oc.json", "out"]);
      await expect(stat(path.join("/etc", `${marker}-absolute`))).rejects.toThrow();
      await expect(stat(path.join("/etc", `${marker}-through-absolute-link`))).rejects.toThrow();
      await expect(stat(path.join(os.tmpdir(), `${marker}-dotdot`))).rejects.toThrow();
      await expect(stat(path.join(os.tmpdir(), `${marker}-deep`))).rejects.toThrow();
      await expect(stat(path.join(os.tmpdir(), `${marker}-through-link`))).rejects.toThrow();
      const everything = await walk(run.out);
      for (const file of everything) {
        expect((await lstat(file)).isSymbolicLink(), file).toBe(false);
        if (path.basename(file).startsWith(marker)) {
          // The one allowed place: inside the hostile node's directory (GNU tar drops a leading "/").
          expect(file).toBe(path.join(run.out, "nodes/node-e", `${marker}-absolute`));
        }
      }
      const log = await nodeLog(run.out, "node-e");
      expect(log.fields.status).toBe("failed");
      expect(log.fields.reason).toMatch(/could not be unpacked cleanly/);
      expect(log.text).toContain("Member name contains '..'");
      expect(log.text).toMatch(/removed links and special files:\n.*nodes\/node-e\/(out|etc)/);
      // What was safe to unpack is there.
      expect(JSON.parse(await readFile(path.join(run.out, "nodes/node-e/findings.json"), "utf8")).node).toBe(
        "node-e",
      );
    });

    it("never runs more than PARALLELISM execs at once, and does use them all", () => {
      const ends = execCalls(run.calls).filter((c) => c.event === "end");
      expect(ends).toHaveLength(6);
      expect(maxConcurrentExecs(run.calls)).toBe(2);
    });

    it("summarises each node's findings by severity, with the critical and warning ids, and the nodes that failed", async () => {
      const summary = await summaryOf(run.out);
      expect(summary.product).toBe("imagefs-doctor/must-gather");
      expect(summary.error).toBeNull();
      expect(summary.imagefsDoctorArgs).toEqual(SINCE);
      expect(summary.nodes.map((n) => n.node)).toEqual([
        "node-a",
        "node-b",
        "node-c",
        "node-d",
        "node-e",
        "node-f",
        "node-g",
      ]);
      for (const [node, findings] of Object.entries(prepared)) {
        const s = summary.nodes.find((n) => n.node === node)!;
        const count = (severity: string) => findings.filter((f) => f.severity === severity).length;
        const ids = (severity: string) =>
          [...new Set(findings.filter((f) => f.severity === severity).map((f) => f.id))].sort();
        expect(s.findings, node).toEqual({
          total: findings.length,
          bySeverity: { critical: count("critical"), warning: count("warning"), info: count("info") },
          critical: ids("critical"),
          warning: ids("warning"),
        });
      }
      for (const node of ["node-c", "node-d", "node-g"]) {
        expect(summary.nodes.find((n) => n.node === node)!.findings, node).toBeNull();
      }
      expect(summary.failed).toEqual([
        { node: "node-c", status: "failed", reason: expect.stringContaining("exited with 1") },
        { node: "node-d", status: "timeout", reason: "no complete answer within 2s" },
        { node: "node-e", status: "failed", reason: expect.stringContaining("could not be unpacked") },
        { node: "node-f", status: "failed", reason: expect.stringContaining("exited with 3") },
        { node: "node-g", status: "failed", reason: "pod imagefs-doctor-ggggg is Pending, not Running" },
      ]);
      const text = await readFile(path.join(run.out, "summary.txt"), "utf8");
      expect(text).toContain("7 node(s), 5 not gathered completely");
      expect(text).toContain(
        "node-a: ok; 3 critical (EVICTION_SIGNAL_UNWATCHED, IMAGESTORE_NOT_MOUNTED), 1 warning (SELINUX_STORE_LABEL_WRONG), 1 info",
      );
      expect(text).toContain("node-d: timeout - no complete answer within 2s; no findings.json");
    });

    it("logs every node in gather.logs", async () => {
      const logs = await readFile(path.join(run.out, "gather.logs"), "utf8");
      for (const [node, status] of [
        ["node-a", "ok"],
        ["node-c", "failed"],
        ["node-d", "timeout"],
        ["node-g", "failed"],
      ]) {
        expect(logs).toMatch(new RegExp(`^\\S+Z node ${node}: ${status}\\b`, "m"));
      }
    });
  });

  describe("NODE_SELECTOR, MUST_GATHER_SINCE_TIME and OBFUSCATE", () => {
    let cluster: Cluster;
    let run: Run;
    const SELECTOR = "node-role.kubernetes.io/worker=";

    beforeAll(async () => {
      cluster = await Cluster.create(target);
      cluster.pods([
        ["imagefs-doctor-w1", "worker-1", "Running"],
        ["imagefs-doctor-w2", "worker-2", "Running"],
        ["imagefs-doctor-m1", "master-1", "Running"],
      ]);
      cluster.nodes(SELECTOR, ["worker-1", "worker-2", "worker-3"]);
      for (const [pod, node] of [
        ["imagefs-doctor-w1", "worker-1"],
        ["imagefs-doctor-w2", "worker-2"],
      ] as const) {
        // The --since value depends on the clock: routes for every second around an hour.
        for (let s = 3590; s <= 3610; s++) {
          await cluster.exec(
            pod,
            ["--since", `${s}s`, "--obfuscate"],
            {},
            s === 3590 ? bundleEntries(node, [finding("X", "critical")]) : undefined,
          );
          cluster.routes.at(-1)!.bundle = path.join(cluster.dir, "bundles", `${pod}.tar.gz`);
        }
      }
      const since = new Date(Date.now() - 3600_000).toISOString().replace(/\.\d+Z$/, "Z");
      run = await cluster.run({ NODE_SELECTOR: SELECTOR, MUST_GATHER_SINCE_TIME: since, OBFUSCATE: "true" });
    }, 60_000);

    afterAll(async () => {
      await cluster?.remove();
    });

    it("lists the nodes with the selector and gathers only those, with --since in seconds and --obfuscate", async () => {
      expect(run.exitCode, run.stderr).toBe(0);
      const starts = run.calls.filter((c) => c.event === "start");
      expect(starts.filter((c) => c.argv[1] === "nodes").map((c) => c.argv)).toEqual([
        ["get", "nodes", "-l", SELECTOR, "-o", GET_NODES_OUTPUT],
      ]);
      const execs = starts.filter((c) => c.argv[0] === "exec");
      expect(execs.map((c) => c.argv[3]).sort()).toEqual(["imagefs-doctor-w1", "imagefs-doctor-w2"]);
      for (const c of execs) {
        expect(c.argv.slice(-3)[0]).toBe("--since");
        expect(Number(c.argv.slice(-2)[0]!.replace(/s$/, ""))).toBeCloseTo(3600, -1);
        expect(c.argv.at(-1)).toBe("--obfuscate");
      }
      expect(run.calls.filter((c) => c.event === "end" && c.exitCode === 99)).toEqual([]);
    });

    it("reports a selected node without a pod as failed, and leaves unselected nodes out", async () => {
      const summary = await summaryOf(run.out);
      expect(summary.nodeSelector).toBe(SELECTOR);
      expect(summary.nodes.map((n) => [n.node, n.status])).toEqual([
        ["worker-1", "ok"],
        ["worker-2", "ok"],
        ["worker-3", "failed"],
      ]);
      expect(summary.failed[0]!.reason).toMatch(/^no imagefs-doctor pod on this node/);
      expect((await nodeLog(run.out, "worker-3")).fields.status).toBe("failed");
      await expect(stat(path.join(run.out, "nodes/master-1"))).rejects.toThrow();
    });
  });

  describe("a node that streams too much: without end, or a small archive that inflates", () => {
    let cluster: Cluster;
    let run: Run;
    beforeAll(async () => {
      cluster = await Cluster.create(target);
      cluster.pods([
        ["imagefs-doctor-big", "node-big", "Running"],
        ["imagefs-doctor-bomb", "node-bomb", "Running"],
        ["imagefs-doctor-fine", "node-fine", "Running"],
      ]);
      // 3 MiB of noise against NODE_MAX_SIZE=1.
      const noise = path.join(cluster.dir, "bundles", "noise.bin");
      await writeFile(noise, randomBytes(3 * 1024 * 1024));
      await cluster.exec("imagefs-doctor-big", [], { bundle: noise });
      // 40 MiB of zeros compress to some 40 KiB: past 16 x NODE_MAX_SIZE once unpacked.
      await cluster.exec("imagefs-doctor-bomb", [], {}, [
        ...bundleEntries("node-bomb", []),
        {
          name: `imagefs-doctor-node-bomb-${STAMP}/logs/zeros.log`,
          content: "0".repeat(40 * 1024 * 1024),
          // An owner name with a space: a size read from tar -tv's third column would be missed.
          uname: "a b",
        },
      ]);
      await cluster.exec("imagefs-doctor-fine", [], {}, bundleEntries("node-fine", []));
      run = await cluster.run({ NODE_MAX_SIZE: "1" });
    }, 60_000);
    afterAll(async () => {
      await cluster?.remove();
    });

    it("cuts a stream off at NODE_MAX_SIZE, refuses to unpack what would inflate past 16 times it, and gathers the rest", async () => {
      expect(run.exitCode, run.stderr).toBe(0);
      const big = await nodeLog(run.out, "node-big");
      expect(big.fields.status).toBe("failed");
      expect(big.fields.reason).toBe("the node streamed more than NODE_MAX_SIZE=1 MiB: cut off there");
      const bomb = await nodeLog(run.out, "node-bomb");
      expect(bomb.fields.status).toBe("failed");
      expect(bomb.fields.reason).toBe(
        "the bundle inflates to more than 16777216 bytes (16 x NODE_MAX_SIZE): not unpacked",
      );
      await expect(stat(path.join(run.out, "nodes/node-bomb/logs/zeros.log"))).rejects.toThrow();
      expect((await nodeLog(run.out, "node-fine")).fields.status).toBe("ok");
      // Nothing big was kept anywhere under the output directory.
      for (const file of await walk(run.out)) expect((await stat(file)).size, file).toBeLessThan(1024 * 1024);
    });
  });

  describe("settings that are not numbers", () => {
    let cluster: Cluster;
    afterAll(async () => {
      await cluster?.remove();
    });

    it("logs each bad PARALLELISM, NODE_TIMEOUT and NODE_MAX_SIZE, uses its default, and gathers the node", async () => {
      cluster = await Cluster.create(target);
      cluster.pods([["imagefs-doctor-fine", "node-fine", "Running"]]);
      await cluster.exec("imagefs-doctor-fine", [], {}, bundleEntries("node-fine", []));
      const run = await cluster.run({ PARALLELISM: "x", NODE_TIMEOUT: "-1", NODE_MAX_SIZE: "big" });
      expect(run.exitCode, run.stderr).toBe(0);
      const logs = await readFile(path.join(run.out, "gather.logs"), "utf8");
      for (const line of [
        "PARALLELISM=x is not a positive integer: using 4",
        "NODE_TIMEOUT=-1 is not a number of seconds: using 300",
        "NODE_MAX_SIZE=big is not a number of MiB: using 64",
      ])
        expect(logs).toContain(line);
      expect((await nodeLog(run.out, "node-fine")).fields.status).toBe("ok");
    }, 60_000);
  });

  describe("when things around the nodes fail", () => {
    let cluster: Cluster;
    beforeAll(async () => {
      cluster = await Cluster.create(target);
    });
    afterAll(async () => {
      await cluster?.remove();
    });

    it("still exits 0 with a version file and a summary saying why when the pods cannot be listed", async () => {
      cluster.routes = [];
      cluster.pods([], {
        exit: 1,
        stderr:
          'Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:x:y" cannot list\n',
      });
      const run = await cluster.run({}, path.join(cluster.dir, "out-forbidden"));
      expect(run.exitCode, run.stderr).toBe(0);
      expect((await readFile(path.join(run.out, "version"), "utf8")).split("\n")[0]).toBe(
        "imagefs-doctor/must-gather",
      );
      const summary = await summaryOf(run.out);
      expect(summary.error).toMatch(/cannot list the imagefs-doctor pods .*Forbidden/);
      expect(summary.nodes).toEqual([]);
      expect(await readFile(path.join(run.out, "summary.txt"), "utf8")).toContain("error: cannot list");
      expect(execCalls(run.calls)).toEqual([]);
    });

    it("uses only node names that are DNS names as directory names", async () => {
      cluster.routes = [];
      cluster.pods([
        ["imagefs-doctor-evil", "../../evil", "Running"],
        ["imagefs-doctor-dots", "..", "Running"],
        ["imagefs-doctor-fine", "node-fine", "Pending"],
      ]);
      const run = await cluster.run({}, path.join(cluster.dir, "out-names"));
      expect(run.exitCode, run.stderr).toBe(0);
      expect(execCalls(run.calls)).toEqual([]);
      expect(await readdir(path.join(run.out, "nodes"))).toEqual(["node-fine"]);
      await expect(stat(path.join(cluster.dir, "evil"))).rejects.toThrow();
      expect(await readFile(path.join(run.out, "gather.logs"), "utf8")).toContain(
        "skipping a node name that is not a DNS subdomain: ../../evil",
      );
    });

    it("exits non-zero only when it cannot write its output directory", async () => {
      const blocker = path.join(cluster.dir, "a-file");
      await writeFile(blocker, "");
      cluster.routes = [];
      cluster.pods([]);
      const run = await cluster.run({}, path.join(blocker, "out"));
      expect(run.exitCode).not.toBe(0);
      expect(run.stderr).toContain("cannot write to");
      expect(run.calls).toEqual([]);
    });

    it("on SIGTERM (oc adm must-gather's --timeout), stops the nodes still running and writes the summary", async () => {
      cluster.routes = [];
      cluster.pods([
        ["imagefs-doctor-ok", "node-ok", "Running"],
        ["imagefs-doctor-hang", "node-hang", "Running"],
      ]);
      await cluster.exec("imagefs-doctor-ok", [], {}, bundleEntries("node-ok", [finding("A", "warning")]));
      await cluster.exec("imagefs-doctor-hang", [], { hang: true });
      const out = path.join(cluster.dir, "out-term");
      const log = path.join(cluster.dir, "calls-term.jsonl");
      const config = path.join(cluster.dir, "oc.json");
      await writeFile(config, JSON.stringify({ log, routes: cluster.routes }));
      await writeFile(log, "");
      const child = execa(GATHER, [], {
        reject: false,
        env: {
          PATH: `${path.join(cluster.dir, "bin")}:${process.env.PATH}`,
          FAKE_OC_CONFIG: config,
          MUST_GATHER_DIR: out,
          NODE_TIMEOUT: "60",
        },
        extendEnv: false,
      });
      // Wait until node-ok is done and node-hang's exec is running.
      const deadline = Date.now() + 15_000;
      for (;;) {
        const text = await readFile(log, "utf8");
        const okDone = await stat(path.join(out, "nodes/node-ok/gather.log")).catch(() => undefined);
        if (text.includes("imagefs-doctor-hang") && okDone) break;
        if (Date.now() > deadline) throw new Error("the gather never reached the hung node");
        await new Promise((r) => setTimeout(r, 50));
      }
      const sent = Date.now();
      child.kill("SIGTERM");
      const result = await child;
      expect(result.exitCode, result.stderr).toBe(0);
      expect(Date.now() - sent).toBeLessThan(5000);
      const summary = await summaryOf(out);
      expect(summary.error).toMatch(/interrupted/);
      expect(summary.nodes.map((n) => [n.node, n.status])).toEqual([
        ["node-hang", "interrupted"],
        ["node-ok", "ok"],
      ]);
      expect(summary.nodes[1]!.findings?.bySeverity.warning).toBe(1);
      // The hung oc was stopped too, not left to run to NODE_TIMEOUT.
      await new Promise((r) => setTimeout(r, 500));
      const calls = (await readFile(log, "utf8"))
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Call);
      const hang = calls.filter((c) => c.argv[3] === "imagefs-doctor-hang");
      expect(hang.map((c) => c.event)).toEqual(["start", "end"]);
      expect(hang[1]!.signal).toBe("SIGTERM");
      expect((await readdir(out)).filter((f) => f.startsWith("."))).toEqual([]);
    });
  });
});

describe.runIf(lintable)("mustgather/gather as shell", () => {
  it("passes shellcheck", async () => {
    const result = await execa("shellcheck", ["--severity=style", GATHER], { reject: false });
    expect(result.stdout + result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
  });

  it("uses strict mode, and never eval", async () => {
    const text = await readFile(GATHER, "utf8");
    expect(text.split("\n")[0]).toBe("#!/usr/bin/env bash");
    expect(text).toMatch(/^set -euo pipefail$/m);
    expect(text).not.toMatch(/^\s*[^#\n]*\beval\b/m);
  });
});

// ---------------------------------------------------------------------------------------------
// The Containerfile

interface Instruction {
  keyword: string;
  args: string;
}

function parseContainerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (line.trimStart().startsWith("#") || (pending === "" && line.trim() === "")) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = "";
    const match = /^(\w+)\s+(.*)$/s.exec(full);
    if (!match) throw new Error(`cannot read "${full}"`);
    out.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.replace(/\s+/g, " ").trim() });
  }
  return out;
}

describe("mustgather/Containerfile", async () => {
  const instructions = parseContainerfile(
    await readFile(path.join(REPO, "mustgather/Containerfile"), "utf8"),
  );
  const froms = instructions.filter((i) => i.keyword === "FROM").map((i) => i.args);
  const lastFrom = instructions.findLastIndex((i) => i.keyword === "FROM");
  const final = instructions.slice(lastFrom + 1);
  const args = Object.fromEntries(
    instructions.filter((i) => i.keyword === "ARG").map((i) => i.args.split("=") as [string, string]),
  );

  it("takes oc from the OpenShift CLI image onto UBI 9 minimal", () => {
    expect(froms).toEqual([`\${OC_IMAGE} AS oc`, `\${BASE_IMAGE}`]);
    expect(args.OC_IMAGE).toMatch(/^quay\.io\/openshift\/origin-cli:4\.\d+$/);
    expect(args.BASE_IMAGE).toMatch(/^registry\.access\.redhat\.com\/ubi9\/ubi-minimal(:|$)/);
  });

  it("copies oc from its stage and the gather script, which exists and is executable in git, to /usr/bin", async () => {
    const copies = final.filter((i) => i.keyword === "COPY").map((i) => i.args);
    expect(copies).toEqual(["--from=oc /usr/bin/oc /usr/bin/oc", "mustgather/gather /usr/bin/gather"]);
    expect((await stat(GATHER)).mode & 0o111).toBe(0o111);
    const staged = await execa("git", ["ls-files", "-s", "mustgather/gather"], { cwd: REPO });
    if (staged.stdout !== "") expect(staged.stdout).toMatch(/^100755 /);
    // The build context is cut down to that one file, and the file is in it.
    const ignore = (await readFile(path.join(REPO, "mustgather/Containerfile.dockerignore"), "utf8"))
      .split("\n")
      .filter((l) => l && !l.startsWith("#"));
    expect(ignore).toEqual(["*", "!mustgather/gather"]);
  });

  it("runs /usr/bin/gather as its command, and versions it like package.json", () => {
    const cmd = final.find((i) => i.keyword === "CMD")!;
    expect(JSON.parse(cmd.args)).toEqual(["/usr/bin/gather"]);
    expect(final.find((i) => i.keyword === "ENTRYPOINT")).toBeUndefined();
    expect(final.find((i) => i.keyword === "ARG")?.args).toBe(`VERSION=${PACKAGE.version}`);
    expect(final.find((i) => i.keyword === "ENV")?.args).toBe(
      `IMAGEFS_DOCTOR_MUST_GATHER_VERSION=\${VERSION}`,
    );
  });

  it("installs every tool the script runs", async () => {
    const install = final.find((i) => i.keyword === "RUN" && i.args.includes("microdnf install"))!;
    const packages = install.args
      .split("microdnf install")[1]!
      .split("&&")[0]!
      .split(" ")
      .filter((w) => w && !w.startsWith("-"));
    // RPM packages of the commands gather calls (oc is copied, bash is in the base image).
    const provides: Record<string, string> = {
      jq: "jq",
      tar: "tar",
      gzip: "gzip",
      find: "findutils",
      grep: "grep",
      sed: "sed",
      timeout: "coreutils-single",
      date: "coreutils-single",
      stat: "coreutils-single",
      head: "coreutils-single",
      wc: "coreutils-single",
      mktemp: "coreutils-single",
    };
    const script = await readFile(GATHER, "utf8");
    for (const [command, pkg] of Object.entries(provides)) {
      if (new RegExp(`(^|[\\s|(!])${command} `, "m").test(script)) expect(packages, command).toContain(pkg);
    }
    expect(packages.sort()).toEqual(
      Object.values(provides)
        .filter((v, i, a) => a.indexOf(v) === i)
        .sort(),
    );
  });

  it.runIf(runnable)("writes the image's version into /must-gather/version", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "imagefs-mustgather-image-"));
    try {
      // oc as the image has it, but with nothing to find: a cluster without the DaemonSet.
      await mkdir(path.join(dir, "bin"));
      await writeFile(path.join(dir, "bin/oc"), "#!/bin/sh\nexit 0\n");
      await chmod(path.join(dir, "bin/oc"), 0o755);
      const result = await execa(GATHER, [], {
        reject: false,
        env: {
          PATH: `${path.join(dir, "bin")}:${process.env.PATH}`,
          IMAGEFS_DOCTOR_MUST_GATHER_VERSION: PACKAGE.version,
          MUST_GATHER_DIR: path.join(dir, "must-gather"),
        },
        extendEnv: false,
      });
      expect(result.exitCode, result.stderr).toBe(0);
      expect(await readFile(path.join(dir, "must-gather/version"), "utf8")).toBe(
        `imagefs-doctor/must-gather\n${PACKAGE.version}\n`,
      );
      const summary = await summaryOf(path.join(dir, "must-gather"));
      expect(summary).toMatchObject({ version: PACKAGE.version, error: null, nodes: [] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
