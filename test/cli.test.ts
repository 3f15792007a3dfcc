import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import { renderText, styleFor } from "../collector/report/text.js";
import { SCHEMA_VERSION, type Snapshot, SOURCE_NAMES } from "../collector/snapshot.js";
import { VERSION } from "../collector/version.js";
import { requireParts } from "./support/requirements.js";
import {
  baseNode,
  collectTree,
  HostTree,
  IMAGESTORE,
  KUBELET_ROOT,
  splitImageNode,
  startRuntime,
  writeKubeletConfig,
} from "./support/scenarios.js";

const CLI = path.resolve("dist/collector/cli.js");

function cli(args: string[], options: { uid?: number; env?: Record<string, string> } = {}) {
  return execa(process.execPath, [CLI, ...args], {
    reject: false,
    timeout: 60_000,
    uid: options.uid,
    env: options.env,
  });
}

describe("command line without a host", () => {
  it("prints the version of package.json", async () => {
    const packageJson = JSON.parse(await readFile("package.json", "utf8")) as { version: string };
    expect(VERSION).toBe(packageJson.version);
    const run = await cli(["--version"]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout.trim()).toBe(VERSION);
  });

  it("lists every command with --help, and --crictl in collect's, serve's and must-gather's help", async () => {
    const run = await cli(["--help"]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/^Usage: imagefs-doctor \[options\] \[command\]/);
    // One command a line, indented by two; wrapped descriptions are indented further.
    const commands = run.stdout
      .slice(run.stdout.indexOf("Commands:"))
      .split("\n")
      .filter((line) => /^ {2}\S/.test(line))
      .map((line) => line.trim().split(" ")[0]);
    expect(commands).toEqual(["collect", "diagnose", "serve", "selinux-scan", "must-gather", "help"]);
    const collect = (await cli(["collect", "--help"])).stdout.replace(/\s+/g, " ");
    expect(collect).toContain("--json print the snapshot as JSON");
    expect(collect).toContain("--crictl <path>");
    expect((await cli(["must-gather", "--help"])).stdout).toContain("--crictl <path>");
    // serve's collections fall back to crictl too.
    expect((await cli(["serve", "--help"])).stdout).toContain("--crictl <path>");
  });

  it("exits 2 on usage errors, with a message", async () => {
    const unknown = await cli(["diagnose", "--bogus"]);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--bogus'");
    const failOn = await cli(["diagnose", "--fail-on", "sometimes"]);
    expect(failOn.exitCode).toBe(2);
    const both = await cli(["diagnose", "--snapshot", "x.json", "--host-root", "/"]);
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain("--snapshot and --host-root exclude each other");
    const ftp = await cli(["serve", "--otlp-endpoint", "ftp://collector:4318"]);
    expect(ftp.exitCode).toBe(2);
    expect(ftp.stderr).toContain('--otlp-endpoint expects an http(s) URL, got "ftp://collector:4318"');
    const secret = await cli(["serve", "--otlp-endpoint", "http://user:s3cr3t@collector:4318"]);
    expect(secret.exitCode).toBe(2);
    expect(secret.stderr).toContain("set them in OTEL_EXPORTER_OTLP_HEADERS");
    expect(secret.stderr).not.toContain("s3cr3t");
    expect((await cli(["serve", "--listen", "nonsense"])).stderr).toContain(
      '--listen expects host:port, got "nonsense"',
    );
    const emptyCrictl = await cli(["collect", "--crictl", ""]);
    expect(emptyCrictl.exitCode).toBe(2);
    expect(emptyCrictl.stderr).toContain("--crictl must not be empty");
  });

  it("says clearly when serve cannot listen, and exits 2", async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as net.AddressInfo;
    try {
      const run = await cli(["serve", "--listen", `127.0.0.1:${port}`, "--host-root", "/nonexistent"]);
      expect(run.exitCode).toBe(2);
      expect(run.stderr.trim()).toBe(`imagefs-doctor: cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
    } finally {
      taken.close();
    }
  });

  it("says at start when --state-dir cannot be written, and exits 2, without hanging under /proc", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "imagefs-state-"));
    try {
      // A file where the directory should be: as root, permissions alone would not stop the write.
      const file = path.join(dir, "not-a-directory");
      await writeFile(file, "");
      // Under /proc no directory can be made: Node's recursive mkdir would loop there forever.
      for (const [stateDir, code] of [
        [path.join(file, "state"), "ENOTDIR"],
        ["/proc/imagefs-doctor-test/state", "ENOENT"],
      ] as const) {
        const run = await cli([
          "serve",
          "--listen",
          "127.0.0.1:0",
          "--host-root",
          dir,
          "--state-dir",
          stateDir,
        ]);
        expect(run.exitCode).toBe(2);
        expect(run.stderr.trim()).toBe(`imagefs-doctor: --state-dir ${stateDir}: cannot write: ${code}`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("writes a report larger than a pipe holds whole, and stops quietly when the reader goes away", async () => {
    const dir = await HostTree.create();
    try {
      // The example node with 3,000 more images: a --json report of about 1.8 MB.
      const snapshot = JSON.parse(await readFile("examples/split-image-misconfigured.json", "utf8"));
      const zero = { lazy: 0, partial: 0, full: 0, missing: 0, unknown: 0 };
      snapshot.sources.layers.facts.images = Array.from({ length: 3000 }, (_, i) => ({
        id: `image-${i}`,
        name: `registry.example.com/app-${i}:latest`,
        home: "/var/lib/images",
        topLayer: null,
        chainLength: 0,
        layers: zero,
        bytes: zero,
      }));
      const big = path.join(dir.scratch, "big.json");
      await writeFile(big, JSON.stringify(snapshot));
      const whole = await cli(["diagnose", "--snapshot", big, "--json", "--fail-on", "never"]);
      expect(whole.exitCode).toBe(0);
      expect(JSON.parse(whole.stdout).snapshot.sources.layers.facts.images).toHaveLength(3000);
      const head = await execa(process.execPath, [CLI, "diagnose", "--snapshot", big, "--json"], {
        reject: false,
      }).pipe("head", ["-c", "100"]);
      expect(head.stdout).toHaveLength(100);
      expect(head.pipedFrom[0]?.stderr).toBe("");
    } finally {
      await dir.cleanup();
    }
  });

  it("refuses a snapshot that is not JSON or of another schema, saying why", async () => {
    const dir = await HostTree.create();
    try {
      const garbage = path.join(dir.scratch, "garbage.json");
      await writeFile(garbage, "{ this is not json");
      const notJson = await cli(["diagnose", "--snapshot", garbage]);
      expect(notJson.exitCode).toBe(2);
      expect(notJson.stderr).toMatch(/garbage\.json is not valid JSON/);
      const future = path.join(dir.scratch, "future.json");
      await writeFile(future, JSON.stringify({ schemaVersion: 99, sources: {} }));
      const wrongSchema = await cli(["diagnose", "--snapshot", future]);
      expect(wrongSchema.exitCode).toBe(2);
      expect(wrongSchema.stderr).toContain("has schemaVersion 99");
      const missing = await cli(["diagnose", "--snapshot", path.join(dir.scratch, "nope.json")]);
      expect(missing.stderr).toMatch(/cannot read snapshot .*ENOENT/);
    } finally {
      await dir.cleanup();
    }
  });
});

const ready = requireParts("command line tests", ["root", "loop", "xfs"]);

describe.skipIf(!ready)("command line on a host tree", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  /** The flags that point the CLI at this test's host tree. */
  const onTree = () => ["--host-root", tree.root, "--proc-root", tree.procRoot];

  async function misconfiguredSplitNode(): Promise<void> {
    tree = await HostTree.create();
    await splitImageNode(tree, { imagestoreFs: "unmounted", fstab: true });
    await startRuntime(tree, { imagestore: IMAGESTORE });
    await writeKubeletConfig(tree, { evictionHard: { "memory.available": "100Mi" } });
  }

  it("exits 0 on a healthy node and 1 when a finding reaches --fail-on", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    const healthy = await cli(["diagnose", ...onTree()]);
    expect(healthy.stdout).toContain("No findings: the node's container storage looks healthy.");
    expect(healthy.exitCode).toBe(0);
    await tree.cleanup();

    await misconfiguredSplitNode();
    const args = ["diagnose", ...onTree()];
    expect((await cli(args)).exitCode).toBe(1);
    expect((await cli([...args, "--fail-on", "never"])).exitCode).toBe(0);
  });

  it("prints findings grouped by severity, within 80 columns, without colour when not on a terminal", async () => {
    await misconfiguredSplitNode();
    const run = await cli(["diagnose", ...onTree()]);
    const lines = run.stdout.split("\n");
    expect(lines.filter((line) => line.length > 80)).toEqual([]);
    expect(run.stdout).not.toContain("\x1b[");
    const critical = lines.findIndex((line) => line.startsWith("CRITICAL ("));
    const warning = lines.findIndex((line) => line.startsWith("WARNING ("));
    expect(critical).toBeGreaterThan(0);
    expect(warning).toBeGreaterThan(critical);
    expect(run.stdout).toContain("  IMAGESTORE_NOT_MOUNTED: The image store is on the root filesystem");
    expect(run.stdout).toContain("      $ mount /var/lib/images");
  });

  it("colours a terminal unless NO_COLOR is set", async () => {
    await misconfiguredSplitNode();
    const snapshot = await collectTree(tree);
    const findings = runChecks(snapshot);
    expect(renderText(snapshot, findings, styleFor({ isTTY: true }, {}))).toContain("\x1b[1;31mCRITICAL");
    expect(renderText(snapshot, findings, styleFor({ isTTY: true }, { NO_COLOR: "1" }))).not.toContain(
      "\x1b[",
    );
  });

  it("prints the snapshot as JSON on stdout with collect --json, every source in it", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    const run = await cli(["collect", "--json", ...onTree()]);
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toBe("");
    const snapshot = JSON.parse(run.stdout) as Snapshot;
    expect(snapshot).toMatchObject({
      schemaVersion: SCHEMA_VERSION,
      node: "worker-0",
      host: { root: tree.root },
    });
    expect(Object.keys(snapshot.sources)).toEqual([...SOURCE_NAMES]);
    for (const name of SOURCE_NAMES) {
      // On this healthy tree no source fails: each has its facts, or says why it has none.
      expect(["ok", "absent"], name).toContain(snapshot.sources[name].status);
    }
    const fs = snapshot.sources.filesystems;
    expect(fs.status === "ok" && fs.facts.roles.find((r) => r.role === "imagefs")?.path).toBe(IMAGESTORE);
    expect(snapshot.sources.cri.status === "ok" && snapshot.sources.cri.facts.answeredBy?.via).toBe("grpc");
  });

  it("writes a snapshot with collect --out that diagnose --snapshot judges the same way offline", async () => {
    await misconfiguredSplitNode();
    const file = path.join(tree.scratch, "snapshot.json");
    const collected = await cli(["collect", ...onTree(), "--out", file]);
    expect(collected.exitCode).toBe(0);
    expect(collected.stdout).toContain(`snapshot written to ${file}`);
    const live = JSON.parse((await cli(["diagnose", "--json", ...onTree()])).stdout);
    const offline = await cli(["diagnose", "--json", "--snapshot", file]);
    const report = JSON.parse(offline.stdout);
    expect(Object.keys(report).sort()).toEqual(["findings", "generatedAt", "node", "snapshot"]);
    expect(report.node).toBe("worker-0");
    expect(Object.keys(report.findings[0]).sort()).toEqual([
      "evidence",
      "id",
      "remediation",
      "runbook",
      "severity",
      "subject",
      "title",
    ]);
    const ids = (r: { findings: { id: string }[] }) => r.findings.map((f) => f.id);
    expect(ids(report)).toEqual(ids(live));
    expect(ids(report)).toEqual(
      expect.arrayContaining(["IMAGESTORE_NOT_MOUNTED", "EVICTION_DEFAULTS_DROPPED"]),
    );
  });

  it("turns a snapshot with a mangled source into a SOURCE_FAILED finding, not a crash", async () => {
    await misconfiguredSplitNode();
    const snapshot = await collectTree(tree);
    const mangled = {
      ...snapshot,
      sources: {
        ...snapshot.sources,
        cri: "garbage",
        filesystems: { status: "ok", facts: { roles: "nope" } },
      },
    };
    const file = path.join(tree.scratch, "mangled.json");
    await writeFile(file, JSON.stringify(mangled));
    const run = await cli(["diagnose", "--json", "--snapshot", file, "--fail-on", "never"]);
    expect(run.exitCode).toBe(0);
    const findings = JSON.parse(run.stdout).findings as { id: string; subject?: string }[];
    expect(findings).toContainEqual(expect.objectContaining({ id: "SOURCE_FAILED", subject: "cri" }));
    expect(findings.some((f) => f.id === "CHECK_FAILED")).toBe(true);
  });

  it("reports a full disk when writing --out, and leaves no partial file", async () => {
    await misconfiguredSplitNode();
    const full = path.join(tree.scratch, "full");
    await tree.mountTmpfs("/../full", "size=64k");
    await tree.fill("/../full", 0);
    const run = await cli(["collect", ...onTree(), "--out", path.join(full, "snap.json")]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/cannot write .*snap\.json: ENOSPC/);
    expect((await readdir(full)).filter((name) => name.startsWith("snap"))).toEqual([]);
  });

  it("runs unprivileged: unreadable files become findings, not a crash", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await startRuntime(tree);
    await chmod(tree.scratch, 0o755);
    await chmod(tree.local(KUBELET_ROOT), 0o700);
    await chmod(tree.local("/etc/crio"), 0o700);
    const run = await cli(["diagnose", "--json", ...onTree(), "--fail-on", "never"], { uid: 65534 });
    expect(run.exitCode).toBe(0);
    const report = JSON.parse(run.stdout);
    const files = report.snapshot.sources["storage-config"].facts.files as {
      path: string;
      status: string;
      error?: { message: string };
    }[];
    const crio = files.find((f) => f.path === "/etc/crio/crio.conf");
    expect(crio?.status).toBe("error");
    expect(crio?.error?.message).toContain("EACCES");
    const ids = report.findings.map((f: { id: string }) => f.id);
    expect(ids).toContain("CONFIG_PARSE_ERROR");
  });
});
