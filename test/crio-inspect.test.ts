import { spawn } from "node:child_process";
import { access, mkdir, readFile, rename, symlink, utimes, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import type { Snapshot } from "../collector/snapshot.js";
import {
  type CrioInspectFacts,
  ENDPOINT_DEADLINE_MS,
  parseConfig,
  startTicks,
} from "../collector/sources/crio-inspect.js";
import type { StorageConfigFacts } from "../collector/sources/storage-config.js";
import { passOn, startFakeCrio } from "./support/fake-crio.js";
import { collectTree, GRAPHROOT, HostTree } from "./support/scenarios.js";

/**
 * The crio-inspect source against real HTTP servers on real unix sockets in a temporary host
 * tree. Nothing here needs root: no mounts, and processes are either real stand-ins (node started
 * with argv[0] "crio") or /proc entries written into the tree's private proc root.
 */

const FIXTURE = fileURLToPath(new URL("./fixtures/crio/config.toml", import.meta.url));
const SOCKET = "/run/crio/crio.sock";

function inspectOf(snapshot: Snapshot): CrioInspectFacts {
  const result = snapshot.sources["crio-inspect"];
  if (result.status !== "ok") throw new Error(`crio-inspect: ${JSON.stringify(result)}`);
  return result.facts;
}

function storageOf(snapshot: Snapshot): StorageConfigFacts {
  const result = snapshot.sources["storage-config"];
  if (result.status !== "ok") throw new Error(`storage-config: ${result.status}`);
  return result.facts;
}

/** A CRI-O node's files without mounts: /var/run -> ../run, crio.conf, storage.conf. */
async function crioNode(tree: HostTree): Promise<void> {
  await tree.mkdir("/run/crio");
  await tree.symlink("../run", "/var/run");
  await tree.write(
    "/etc/containers/storage.conf",
    `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\nrunroot = "/run/containers/storage"\n`,
  );
  await tree.write("/etc/crio/crio.conf", `[crio]\nlog_dir = "/var/log/crio/pods"\n`);
}

/** Any HTTP handler on the tree's CRI-O socket. */
async function serveOnSocket(tree: HostTree, handler: http.RequestListener): Promise<void> {
  const server = http.createServer(handler);
  const sockets = new Set<net.Socket>();
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await mkdir(path.dirname(tree.local(SOCKET)), { recursive: true });
  await new Promise<void>((resolve) => server.listen(tree.local(SOCKET), resolve));
  tree.onCleanup(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
}

/**
 * A /proc entry for a crio that started `secondsAfterBoot` after a boot at `bootEpochSeconds`:
 * cmdline, comm, and stat with starttime (field 22) in clock ticks; plus /proc/stat's btime.
 */
async function fakeCrioProcess(
  tree: HostTree,
  pid: number,
  bootEpochSeconds: number,
  secondsAfterBoot: number,
  argv: string[] = ["/usr/bin/crio"],
): Promise<void> {
  const dir = path.join(tree.procRoot, String(pid));
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "cmdline"), `${argv.join("\0")}\0`);
  await writeFile(path.join(dir, "comm"), "crio\n");
  const ticks = secondsAfterBoot * 100;
  // comm in parentheses may hold spaces and ")": the parser must split after the last one.
  const fields = ["S", "1", String(pid), String(pid), "0", "-1", "4194560", "1", "0", "0", "0"];
  fields.push("10", "20", "0", "0", "20", "0", "30", "0", String(ticks), "123456789", "2000");
  await writeFile(path.join(dir, "stat"), `${pid} (cr io) x) ${fields.join(" ")}\n`);
  await writeFile(
    path.join(tree.procRoot, "stat"),
    `cpu  1 2 3 4 5 6 7 0 0 0\nintr 0\nctxt 1\nbtime ${bootEpochSeconds}\nprocesses 9\n`,
  );
}

/** A unix socket with nobody listening: its server was SIGKILLed, so the file stayed behind. */
async function staleSocket(localPath: string): Promise<void> {
  await mkdir(path.dirname(localPath), { recursive: true });
  const child = spawn(
    process.execPath,
    ["-e", `require("net").createServer().listen(${JSON.stringify(localPath)}, () => console.log("up"))`],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
  child.kill("SIGKILL");
  await new Promise((resolve) => child.once("exit", resolve));
  await access(localPath);
}

describe("crio-inspect", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("asks the running CRI-O's /config (fixture) on its socket (not /info: the cri source asks that), with the process and its start time", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    const config = await readFile(FIXTURE, "utf8");
    const server = await startFakeCrio(
      tree.local(SOCKET),
      { graphroot: GRAPHROOT, imagestore: "/var/lib/images" },
      { config },
    );
    tree.onCleanup(() => server.close());
    // The private proc root shows no /proc/stat; a node's /proc has it (btime).
    await symlink("/proc/stat", path.join(tree.procRoot, "stat"));
    const before = Date.now();
    const pid = await tree.startProcess("crio", []);
    const facts = inspectOf(await collectTree(tree));
    expect(facts.socket).toBe("/var/run/crio/crio.sock");
    expect(facts).not.toHaveProperty("info");
    expect(facts.config).toEqual({
      status: "ok",
      value: {
        root: "/var/lib/containers/storage",
        runroot: "/run/containers/storage",
        imagestore: "/var/lib/images",
        storageDriver: "overlay",
        storageOption: ["overlay.mountopt=nodev,metacopy=on"],
        additionalArtifactStores: ["/mnt/nfs-artifacts", "/var/lib/ssd-artifacts"],
        cleanShutdownFile: "/var/lib/crio/clean.shutdown",
      },
    });
    expect(facts.process?.pid).toBe(pid);
    // Real /proc: start time from starttime ticks + btime, which is whole seconds (truncated).
    const started = Date.parse(facts.process!.startedAt);
    expect(started).toBeGreaterThan(before - 2000);
    expect(started).toBeLessThan(Date.now() + 1000);
    expect(facts.cleanShutdown.state).toBe("running");
    // Nothing was written after crio started.
    expect(facts.changedSinceStart).toEqual([]);
  });

  it("reports /config that differs from the files on disk (a restart pending), and the files changed since the start", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    // The running CRI-O still has the old list; the drop-in on disk was edited since.
    const running = (await readFile(FIXTURE, "utf8")).replace(
      '    additional_artifact_stores = ["/mnt/nfs-artifacts", "/var/lib/ssd-artifacts"]',
      '    additional_artifact_stores = ["/mnt/old-artifacts"]',
    );
    expect(running).toContain("/mnt/old-artifacts");
    const server = await startFakeCrio(tree.local(SOCKET), { graphroot: GRAPHROOT }, { config: running });
    tree.onCleanup(() => server.close());
    const boot = Math.floor(Date.now() / 1000) - 86_400;
    await fakeCrioProcess(tree, 4242, boot, 3600); // started 23 hours ago
    await tree.write(
      "/etc/crio/crio.conf.d/50-artifacts.conf",
      `[crio.runtime]\nadditional_artifact_stores = ["/mnt/new-artifacts"]\n`,
    );
    const snapshot = await collectTree(tree);
    const facts = inspectOf(snapshot);
    expect(storageOf(snapshot).crio?.additionalArtifactStores).toEqual({
      value: ["/mnt/new-artifacts"],
      from: "/etc/crio/crio.conf.d/50-artifacts.conf",
    });
    expect(facts.config.status === "ok" && facts.config.value.additionalArtifactStores).toEqual([
      "/mnt/old-artifacts",
    ]);
    expect(facts.process).toEqual({ pid: 4242, startedAt: new Date((boot + 3600) * 1000).toISOString() });
    expect(facts.changedSinceStart.map((c) => c.path).sort()).toEqual([
      "/etc/containers/storage.conf",
      "/etc/crio/crio.conf",
      "/etc/crio/crio.conf.d/50-artifacts.conf",
    ]);
  });

  it("lists only the files modified after crio's start time (from /proc/<pid>/stat and btime)", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    await tree.write("/etc/crio/crio.conf.d/10-old.conf", `[crio]\nimagestore = "/var/lib/images"\n`);
    await tree.write("/etc/crio/crio.conf.d/20-new.conf", `[crio.api]\nlisten = "/run/crio/crio.sock"\n`);
    const boot = Math.floor(Date.now() / 1000) - 7200;
    await fakeCrioProcess(tree, 4243, boot, 3600); // started an hour ago
    const start = (boot + 3600) * 1000;
    const at = (ms: number) => new Date(ms);
    // Before the start, and within btime's one-second rounding after it: not pending.
    for (const file of ["/etc/containers/storage.conf", "/etc/crio/crio.conf"]) {
      await utimes(tree.local(file), at(start - 600_000), at(start - 600_000));
    }
    await utimes(tree.local("/etc/crio/crio.conf.d/10-old.conf"), at(start + 500), at(start + 500));
    await utimes(
      tree.local("/etc/crio/crio.conf.d/20-new.conf"),
      at(start + 1_800_000),
      at(start + 1_800_000),
    );
    // A drop-in whose name is not UTF-8, changed after the start: found by the time it was read at.
    const latin1 = Buffer.concat([
      Buffer.from(tree.local("/etc/crio/crio.conf.d/30-caf")),
      Buffer.from([0xe9, 0x2e, 0x63, 0x6f, 0x6e, 0x66]),
    ]);
    await writeFile(latin1, `[crio]\nlog_level = "info"\n`);
    await utimes(latin1, at(start + 60_000), at(start + 60_000));
    const facts = inspectOf(await collectTree(tree));
    expect(facts.process?.startedAt).toBe(new Date(start).toISOString());
    expect(facts.changedSinceStart).toEqual([
      { path: "/etc/crio/crio.conf.d/20-new.conf", modifiedAt: new Date(start + 1_800_000).toISOString() },
      { path: "/etc/crio/crio.conf.d/30-caf\\xe9.conf", modifiedAt: new Date(start + 60_000).toISOString() },
    ]);
    // Nothing answers on the socket of this fake process.
    expect(facts.config.status).toBe("unreachable");
  });

  it("finds btime past the first 64 KiB of /proc/stat, as on a many-CPU host", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    const boot = Math.floor(Date.now() / 1000) - 7200;
    await fakeCrioProcess(tree, 4246, boot, 3600);
    // 1,024 CPUs and an intr line with a count per interrupt: btime lies ~100 KiB in.
    const cpus = Array.from({ length: 1024 }, (_, i) => `cpu${i} 123456 0 654321 98765432 1234 0 5678 0 0 0`);
    const intr = `intr 123456789 ${Array.from({ length: 16384 }, (_, i) => String(i % 97)).join(" ")}`;
    const stat = `cpu  1 2 3 4 5 6 7 0 0 0\n${cpus.join("\n")}\n${intr}\nctxt 1\nbtime ${boot}\nprocesses 9\n`;
    expect(stat.indexOf("btime")).toBeGreaterThan(64 * 1024);
    await writeFile(path.join(tree.procRoot, "stat"), stat);
    const facts = inspectOf(await collectTree(tree));
    expect(facts.process).toEqual({ pid: 4246, startedAt: new Date((boot + 3600) * 1000).toISOString() });
  });

  it("says unreachable when the socket is missing, and when nobody listens on it", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    await fakeCrioProcess(tree, 4244, Math.floor(Date.now() / 1000) - 60, 10);
    let facts = inspectOf(await collectTree(tree));
    expect(facts.config).toMatchObject({ status: "unreachable", error: expect.stringMatching(/ENOENT/) });

    await staleSocket(tree.local(SOCKET));
    facts = inspectOf(await collectTree(tree));
    expect(facts.config).toMatchObject({
      status: "unreachable",
      error: expect.stringMatching(/ECONNREFUSED/),
    });
  });

  it("says error for an HTTP 500, and does not follow a redirect", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    const asked: string[] = [];
    await serveOnSocket(tree, (request, response) => {
      asked.push(request.url ?? "");
      // The first /config is refused, the second redirected.
      if (asked.filter((url) => url === "/config").length === 1)
        response.writeHead(500).end("internal error");
      else response.writeHead(302, { location: "http://127.0.0.1:9/config" }).end();
    });
    const askedBefore = () => asked.filter((url) => url === "/config").length;
    let facts = inspectOf(await collectTree(tree));
    expect(askedBefore()).toBe(1);
    expect(facts.config).toEqual({ status: "error", error: "GET /config answered HTTP 500" });
    facts = inspectOf(await collectTree(tree));
    expect(facts.config).toEqual({
      status: "error",
      error: "GET /config answered HTTP 302 (redirect to http://127.0.0.1:9/config, not followed)",
    });
    // /info is the cri source's (crioInfo), asked only when the CRI answered, which this plain HTTP
    // server never does; crio-inspect never asks it.
    expect(asked.filter((url) => url === "/info")).toEqual([]);
    expect(askedBefore()).toBe(2);
  });

  it("says error, with what was wrong, for garbage and for answers past the size limit", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    let answer = '[crio]\n  root = "/var/lib/containers/storage\n';
    await serveOnSocket(tree, (_request, response) => {
      response.end(answer);
    });
    let facts = inspectOf(await collectTree(tree));
    expect(facts.config).toMatchObject({
      status: "error",
      error: expect.stringMatching(/answer is not TOML \(line 2, column \d+\)/),
    });
    // TOML, but not what CRI-O sends: no [crio] table, a root that is not a string.
    answer = '[storage]\n  root = "/x"\n';
    facts = inspectOf(await collectTree(tree));
    expect(facts.config).toEqual({
      status: "error",
      error: expect.stringMatching(/answer has no \[crio\] table/),
    });
    answer = "[crio]\n  root = 7\n";
    facts = inspectOf(await collectTree(tree));
    expect(facts.config).toEqual({
      status: "error",
      error: expect.stringMatching(/\[crio\] root is not a string/),
    });
    await tree.cleanup();

    tree = await HostTree.create();
    await crioNode(tree);
    await serveOnSocket(tree, (_request, response) => {
      // 5 MiB of TOML comments: more than the 4 MiB an answer may have.
      const chunk = `#${"x".repeat(1023)}\n`;
      let sent = 0;
      const more = () => {
        while (sent < 5 * 1024 && response.write(chunk)) sent += 1;
        if (sent >= 5 * 1024) response.end();
        else response.once("drain", () => more());
      };
      response.on("error", () => {});
      more();
    });
    facts = inspectOf(await collectTree(tree));
    expect(facts.config).toMatchObject({
      status: "error",
      error: expect.stringMatching(/larger than 4194304 bytes/),
    });
  });

  it("gives up on a server that never answers at the endpoint deadline, well within the source's", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    await serveOnSocket(tree, () => {
      /* reads the request and never answers */
    });
    const snapshot = await collectTree(tree);
    const facts = inspectOf(snapshot);
    const silent = new RegExp(`no answer within ${ENDPOINT_DEADLINE_MS} ms`);
    expect(facts.config).toMatchObject({ status: "unreachable", error: expect.stringMatching(silent) });
    // One deadline, never the source's 5 s.
    expect(snapshot.sources["crio-inspect"].durationMs).toBeLessThan(ENDPOINT_DEADLINE_MS + 1500);
  });

  it("refuses a socket path longer than sun_path holds (107 bytes), and never connects", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    // Such a path is a listen nested deep under a host root: the socket is made at a short path
    // and moved there, as connect(2) could not reach it.
    const deepHostDir = `/run/${"d".repeat(60)}/${"e".repeat(60)}`;
    await tree.mkdir(deepHostDir);
    await tree.write(
      "/etc/crio/crio.conf.d/10-listen.conf",
      `[crio.api]\nlisten = "${deepHostDir}/crio.sock"\n`,
    );
    const asked: string[] = [];
    const server = http.createServer((request, response) => {
      asked.push(request.url ?? "");
      response.end();
    });
    await new Promise<void>((resolve) => server.listen(tree.local("/run/short.sock"), resolve));
    tree.onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
    await rename(tree.local("/run/short.sock"), tree.local(`${deepHostDir}/crio.sock`));
    const local = tree.local(`${deepHostDir}/crio.sock`);
    expect(Buffer.byteLength(local)).toBeGreaterThan(107);

    const facts = inspectOf(await collectTree(tree));
    expect(facts.socket).toBe(`${deepHostDir}/crio.sock`);
    expect(facts.config).toEqual({
      status: "error",
      error: `socket path longer than 107 bytes, cannot connect: ${local}`,
    });
    expect(asked).toEqual([]);
  });

  it("tells the four clean-shutdown states from the file, its .supported marker and the process", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    await tree.write(
      "/etc/crio/crio.conf.d/10-shutdown.conf",
      `[crio]\nclean_shutdown_file = "/var/lib/crio/cs"\n`,
    );
    const state = async () => inspectOf(await collectTree(tree)).cleanShutdown;

    // Never started with this mechanism (or the file is elsewhere): nothing to tell.
    expect(await state()).toEqual({
      file: "/var/lib/crio/cs",
      present: false,
      supportedMarker: false,
      state: "unknown",
    });
    // Started once (it wrote .supported), then died without writing the file: unclean.
    await tree.write("/var/lib/crio/cs.supported", "");
    expect(await state()).toMatchObject({ present: false, supportedMarker: true, state: "unclean" });
    // Stopped cleanly: the file is back.
    await tree.write("/var/lib/crio/cs", "");
    expect(await state()).toMatchObject({ present: true, supportedMarker: true, state: "clean" });
    // Running: CRI-O deleted the file at start; whatever the files say, the state is "running".
    await fakeCrioProcess(tree, 4245, Math.floor(Date.now() / 1000) - 60, 10);
    expect(await state()).toMatchObject({ file: "/var/lib/crio/cs", state: "running" });
  });

  it("is absent on a containerd node and where no CRI-O is configured", async () => {
    tree = await HostTree.create();
    await tree.write("/etc/containerd/config.toml", `version = 2\n`);
    let snapshot = await collectTree(tree);
    expect(storageOf(snapshot).crio).toBeNull();
    expect(snapshot.sources["crio-inspect"]).toMatchObject({ status: "absent" });
    await tree.cleanup();

    tree = await HostTree.create();
    snapshot = await collectTree(tree);
    expect(storageOf(snapshot).crio).toBeNull();
    expect(snapshot.sources["crio-inspect"]).toMatchObject({
      status: "absent",
      reason: "no crio process and no CRI-O configuration",
    });
  });
});

describe("a CRI-O drop-in changed without a restart (CRI_IMAGEFS_MISMATCH)", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("names the root the running CRI-O reports and the one the new drop-in sets", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    // CRI-O started with the storage of that moment: graphroot from storage.conf.
    const server = await startFakeCrio(tree.local(SOCKET), { graphroot: GRAPHROOT });
    tree.onCleanup(() => server.close());
    const mismatch = (snapshot: Snapshot) => runChecks(snapshot).find((f) => f.id === "CRI_IMAGEFS_MISMATCH");
    expect(mismatch(await collectTree(tree))).toBeUndefined();

    // Then an administrator moves the storage in a drop-in, and does not restart crio.
    await tree.write("/etc/crio/crio.conf.d/20-root.conf", '[crio]\nroot = "/var/lib/crio-storage"\n');
    const finding = mismatch(await collectTree(tree));
    expect(finding?.severity).toBe("warning");
    expect(finding?.evidence).toEqual([
      "runtime: cri-o 1.31.3 at unix:///var/run/crio/crio.sock",
      `runtime reports its image filesystem at ${GRAPHROOT}/overlay-images; the configuration says /var/lib/crio-storage/overlay-images`,
      `runtime reports its container filesystem at ${GRAPHROOT}/overlay-images; the configuration says /var/lib/crio-storage/overlay-images`,
      `CRI-O /info storage_root is ${GRAPHROOT}; graphroot is configured as /var/lib/crio-storage (/etc/crio/crio.conf.d/20-root.conf)`,
    ]);
    expect(finding?.remediation.commands).toContain("systemctl restart crio");
  });
});

describe("crio-inspect parsing", () => {
  it("reads starttime after the last parenthesis of comm", () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    expect(startTicks(`77 (a) b) c) ${fields.join(" ")}`)).toBe(22);
    expect(startTicks("77 (crio) S 1")).toBeUndefined();
  });

  it("takes each key from its table in /config, and an absent list as empty", () => {
    const value = parseConfig(
      '[crio]\n  root = "/r"\n  storage_driver = "overlay"\n  [crio.api]\n    listen = "/s"\n  [crio.runtime]\n    default_runtime = "crun"\n',
    );
    expect(value).toEqual({
      root: "/r",
      runroot: "",
      imagestore: "",
      storageDriver: "overlay",
      storageOption: [],
      additionalArtifactStores: [],
      cleanShutdownFile: "",
    });
    // additional_artifact_stores is [crio.runtime]'s, not [crio]'s.
    expect(parseConfig('[crio]\n  additional_artifact_stores = ["/x"]\n').additionalArtifactStores).toEqual(
      [],
    );
    expect(() => parseConfig("[crio.image]\n")).not.toThrow();
    expect(() => parseConfig('title = "x"\n')).toThrow(/no \[crio\] table/);
    expect(() => parseConfig("[crio]\n  storage_option = [1]\n")).toThrow(
      /storage_option is not a list of strings/,
    );
  });
});

/**
 * CRI-O's /info as the cri source reads it (crioInfo): the stand-in answers gRPC and /config, and a
 * front socket in place of CRI-O's answers /info as the test says and passes everything else on.
 */
async function crioWithInfo(tree: HostTree, info: (response: net.Socket) => void): Promise<void> {
  const inner = tree.local("/run/crio/inner.sock");
  const server = await startFakeCrio(
    inner,
    { graphroot: GRAPHROOT },
    { config: await readFile(FIXTURE, "utf8") },
  );
  tree.onCleanup(() => server.close());
  const open = new Set<net.Socket>();
  const front = net.createServer((connection) => {
    open.add(connection);
    connection.on("close", () => open.delete(connection));
    connection.once("data", (first) => {
      if (first.toString("latin1").startsWith("GET /info ")) {
        info(connection);
        return;
      }
      connection.pause();
      passOn(connection, first, inner);
    });
  });
  await new Promise<void>((resolve) => front.listen(tree.local(SOCKET), resolve));
  tree.onCleanup(async () => {
    for (const connection of open) connection.destroy();
    await new Promise<void>((resolve) => front.close(() => resolve()));
  });
}

function rawAnswer(status: string, body: string) {
  return (socket: net.Socket) =>
    socket.end(
      `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
}

describe("CRI-O /info, read by the cri source", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  const criOf = (snapshot: Snapshot) => {
    const cri = snapshot.sources.cri;
    if (cri.status !== "ok") throw new Error(`cri: ${cri.status}`);
    return cri.facts;
  };

  it("reads storage_root and storage_image from a well-formed answer", async () => {
    tree = await HostTree.create();
    await crioNode(tree);
    await crioWithInfo(
      tree,
      rawAnswer(
        "200 OK",
        JSON.stringify({ storage_driver: "overlay", storage_root: GRAPHROOT, storage_image: "" }),
      ),
    );
    const cri = criOf(await collectTree(tree));
    expect(cri.answeredBy?.via).toBe("grpc");
    expect(cri.crioInfo).toEqual({ storageDriver: "overlay", storageRoot: GRAPHROOT, storageImage: "" });
  });

  it.each([
    ["an HTTP 500", rawAnswer("500 Internal Server Error", "internal error"), "GET /info answered HTTP 500"],
    ["garbage", rawAnswer("200 OK", "<html>not json</html>"), /^GET \/info answered no JSON: /],
    ["null", rawAnswer("200 OK", "null"), "GET /info answered null, not a JSON object"],
  ] as const)("has no crioInfo, and says why, for %s", async (_what, answer, error) => {
    tree = await HostTree.create();
    await crioNode(tree);
    await crioWithInfo(tree, answer);
    const cri = criOf(await collectTree(tree));
    expect(cri.answeredBy?.via).toBe("grpc");
    expect(cri.crioInfo).toBeNull();
    expect(cri.crioInfoError).toMatch(error);
  });
});
