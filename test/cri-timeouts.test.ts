import { readFile, rename } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import { collect } from "../collector/collect.js";
import type { Snapshot } from "../collector/snapshot.js";
import type { CriFacts } from "../collector/sources/cri.js";
import { parseCrictlImageFsInfo } from "../collector/sources/crictl-output.js";
import type { FilesystemRoleFact } from "../collector/sources/filesystems.js";
import { CLI, treeFlags } from "./support/cli.js";
import { HostTree } from "./support/host-tree.js";
import { requireParts } from "./support/requirements.js";
import { GRAPHROOT } from "./support/scenarios.js";

const FIXTURES = fileURLToPath(new URL("./fixtures/crictl/", import.meta.url));
/** Stand-in crictl scripts; each one's header says what real crictl behaviour it replays. */
const crictl = (name: "crictl-v1.29" | "crictl-hang" | "crictl-unimplemented") =>
  path.join(FIXTURES, "bin", name);
/** A hang guard for a whole collection against a silent socket; not a performance figure. */
const HANG_BOUND_MS = 5000;

function criOf(snapshot: Snapshot): CriFacts {
  const cri = snapshot.sources.cri;
  if (cri.status !== "ok") throw new Error(`cri source: ${cri.status}`);
  return cri.facts;
}

/** A server on a unix socket that accepts connections and never says a word. */
async function silentServer(socket: string) {
  const connections = new Set<net.Socket>();
  let accepted = 0;
  let grpc = 0;
  const server = net.createServer((connection) => {
    accepted += 1;
    // A gRPC client opens with the HTTP/2 preface; CRI-O's /info and /config are asked over HTTP/1.
    connection.once("data", (first: Buffer) => {
      if (first.toString("latin1").startsWith("PRI * HTTP/2.0")) grpc += 1;
    });
    connections.add(connection);
    connection.on("error", () => {});
    connection.on("close", () => connections.delete(connection));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, resolve);
  });
  return {
    get accepted() {
      return accepted;
    },
    /** Connections that spoke gRPC (CRI calls). */
    get grpc() {
      return grpc;
    },
    close: async () => {
      for (const connection of connections) connection.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A server that hangs up on every connection at once, as a crashing runtime would. */
async function hangUpServer(socket: string) {
  const server = net.createServer((connection) => connection.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, resolve);
  });
  return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/**
 * A server that answers whatever it is sent with an HTTP/1.1 error and hangs up, as a web server
 * listening where the CRI socket should be would: gRPC gets an error at once, not a silence.
 */
async function http1ErrorServer(socket: string) {
  const server = net.createServer((connection) => {
    connection.on("error", () => {});
    connection.once("data", () =>
      connection.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, resolve);
  });
  return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A node that looks like a CRI-O node (so an unreachable runtime is critical), with no runtime running. */
async function crioNode(): Promise<HostTree> {
  const tree = await HostTree.create();
  await tree.write("/etc/crio/crio.conf", '[crio.runtime]\ndefault_runtime = "crun"\n');
  await tree.mkdir("/run");
  await tree.mkdir("/run/crio");
  return tree;
}

function collectWith(tree: HostTree, criEndpoint: string, crictlPath?: string) {
  return collect({
    hostRoot: tree.root,
    procRoot: tree.procRoot,
    criEndpoint,
    crictl: crictlPath,
    criTimeoutMs: 1000,
    guardedStatMs: 1000,
  });
}

describe("CRI endpoints that do not answer properly", () => {
  let tree: HostTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  it("gives up on a socket that accepts and never answers at the deadline, and reports the runtime unreachable", async () => {
    tree = await crioNode();
    const server = await silentServer(tree.local("/run/silent.sock"));
    tree.onCleanup(server.close);
    const endpoint = "unix:///run/silent.sock";

    const started = performance.now();
    const snapshot = await collectWith(tree, endpoint);
    const elapsed = performance.now() - started;

    expect(elapsed).toBeLessThan(HANG_BOUND_MS);
    expect(server.accepted).toBeGreaterThan(0); // the client got through: the silence timed out, not a lookup
    expect(snapshot.sources.cri.status).toBe("ok");
    const cri = criOf(snapshot);
    expect(cri.answeredBy).toBeNull();
    expect(cri.attempts).toHaveLength(1);
    expect(cri.attempts[0]).toMatchObject({ endpoint, reason: "--cri-endpoint", status: "timeout" });
    expect(cri.attempts[0]!.error).toContain("DEADLINE_EXCEEDED");
    expect(cri.attempts[0]!.latencyMs).toBeGreaterThanOrEqual(900);

    const finding = runChecks(snapshot).find((f) => f.id === "RUNTIME_UNREACHABLE");
    expect(finding?.severity).toBe("critical");
    expect(finding?.evidence[0]).toContain(`${endpoint} (--cri-endpoint): timeout`);
  });

  it("waits for a silent socket once, not once for each of its names (/var/run -> /run)", async () => {
    tree = await crioNode();
    await tree.symlink("../run", "/var/run");
    await tree.mkdir("/run/crio");
    const server = await silentServer(tree.local("/run/crio/crio.sock"));
    tree.onCleanup(server.close);

    // No --cri-endpoint: discovery tries /var/run/crio/crio.sock, then /run/crio/crio.sock.
    const snapshot = await collect({ hostRoot: tree.root, procRoot: tree.procRoot, criTimeoutMs: 1000 });
    const attempts = criOf(snapshot).attempts;
    expect(attempts.filter((a) => a.status === "timeout").map((a) => a.endpoint)).toEqual([
      "unix:///var/run/crio/crio.sock",
    ]);
    // One wait for the deadline, not two: the second name is recognised before it is called.
    expect(server.grpc).toBe(1);
    expect(attempts.find((a) => a.endpoint === "unix:///run/containerd/containerd.sock")?.status).toBe(
      "missing",
    );
  });

  it("reports a socket that hangs up at once as an error, well before the deadline", async () => {
    tree = await crioNode();
    const server = await hangUpServer(tree.local("/run/hangup.sock"));
    tree.onCleanup(server.close);

    const snapshot = await collectWith(tree, "unix:///run/hangup.sock");
    const attempt = criOf(snapshot).attempts[0];
    expect(attempt?.status).toBe("error");
    expect(attempt?.error).toContain("UNAVAILABLE");
    expect(attempt?.latencyMs).toBeLessThan(1000);
    expect(runChecks(snapshot).map((f) => f.id)).toContain("RUNTIME_UNREACHABLE");
  });

  it("reports a regular file where the socket should be as an error, without calling it", async () => {
    tree = await crioNode();
    await tree.write("/run/crio/crio.sock", "");

    const snapshot = await collectWith(tree, "unix:///run/crio/crio.sock");
    expect(snapshot.sources.cri.status).toBe("ok");
    const cri = criOf(snapshot);
    expect(cri.attempts).toEqual([
      {
        endpoint: "unix:///run/crio/crio.sock",
        reason: "--cri-endpoint",
        status: "error",
        error: "not a socket",
      },
    ]);
    const finding = runChecks(snapshot).find((f) => f.id === "RUNTIME_UNREACHABLE");
    expect(finding?.evidence).toContain("unix:///run/crio/crio.sock (--cri-endpoint): error - not a socket");
  });

  it("reports a missing socket as missing, naming the path", async () => {
    tree = await crioNode();

    const snapshot = await collectWith(tree, "unix:///run/containerd/containerd.sock");
    expect(snapshot.sources.cri.status).toBe("ok");
    expect(criOf(snapshot).attempts).toEqual([
      {
        endpoint: "unix:///run/containerd/containerd.sock",
        reason: "--cri-endpoint",
        status: "missing",
        error: "no socket at /run/containerd/containerd.sock",
      },
    ]);
    expect(runChecks(snapshot).map((f) => f.id)).toContain("RUNTIME_UNREACHABLE");
  });

  it("refuses a socket whose path does not fit in sun_path instead of failing obscurely", async () => {
    tree = await crioNode();
    // connect(2) cannot reach a socket at a path of 108 bytes or more; such a path is a host root
    // nested deep. The socket is made at a short path and moved there.
    const deepHostDir = `/run/${"d".repeat(60)}/${"e".repeat(60)}`;
    await tree.mkdir(deepHostDir);
    const server = await silentServer(tree.local("/run/short.sock"));
    tree.onCleanup(server.close);
    await rename(tree.local("/run/short.sock"), tree.local(`${deepHostDir}/crio.sock`));

    const snapshot = await collectWith(tree, `unix://${deepHostDir}/crio.sock`);
    const attempt = criOf(snapshot).attempts[0];
    expect(attempt?.status).toBe("error");
    expect(attempt?.error).toBe(
      `socket path longer than 107 bytes, cannot connect: ${tree.local(`${deepHostDir}/crio.sock`)}`,
    );
    expect(server.accepted).toBe(0);
  });
});

function roleOf(snapshot: Snapshot, name: string): FilesystemRoleFact | undefined {
  const fs = snapshot.sources.filesystems;
  return fs.status === "ok" ? fs.facts.roles.find((r) => r.role === name) : undefined;
}

const mountsReady = requireParts("crictl fallback onto a mounted graphroot", ["root"]);

describe("the crictl fallback, run with stand-in crictl scripts (test/fixtures/crictl/bin)", () => {
  const endpoint = "unix:///run/crio/crio.sock";
  let tree: HostTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  /** A CRI-O node whose socket answers gRPC with an HTTP/1.1 error. */
  async function nodeWithErroringSocket(): Promise<HostTree> {
    const node = await crioNode();
    const server = await http1ErrorServer(node.local("/run/crio/crio.sock"));
    node.onCleanup(server.close);
    return node;
  }

  it.skipIf(!mountsReady)(
    "asks crictl when the socket answers gRPC with an error, and reports the image filesystem it names on its device",
    async () => {
      tree = await nodeWithErroringSocket();
      await tree.mountTmpfs(GRAPHROOT);
      await tree.mkdir(`${GRAPHROOT}/overlay-images`);

      const snapshot = await collectWith(tree, endpoint, crictl("crictl-v1.29"));
      const cri = criOf(snapshot);
      expect(cri.answeredBy).toEqual({ endpoint, via: "crictl" });
      expect(cri.attempts.map((a) => [a.reason, a.status])).toEqual([
        ["--cri-endpoint", "error"],
        [`crictl (${crictl("crictl-v1.29")})`, "ok"],
      ]);
      // The mountpoint crictl printed, joined to the device it is on in this host tree: the
      // graphroot's own tmpfs, which is what the filesystems source calls imagefs.
      const imagefs = roleOf(snapshot, "imagefs");
      expect(imagefs).toMatchObject({ path: GRAPHROOT, mount: { fstype: "tmpfs" } });
      const reported = {
        mountpoint: `${GRAPHROOT}/overlay-images`,
        usedBytes: 21474836480,
        inodesUsed: 0,
        timestamp: "1764000000987654321",
        device: imagefs?.device,
      };
      expect(cri.imageFilesystems).toEqual([reported]);
      expect(cri.containerFilesystems).toEqual([reported]);
      const ids = runChecks(snapshot).map((f) => f.id);
      expect(ids).not.toContain("RUNTIME_UNREACHABLE");
      expect(ids).not.toContain("CRI_IMAGEFS_MISMATCH");

      // What a user sees: the built CLI with --crictl names how the runtime was reached.
      const run = await execa(
        process.execPath,
        [
          CLI,
          "diagnose",
          ...treeFlags(tree, { criMs: 1000 }),
          "--cri-endpoint",
          endpoint,
          "--crictl",
          crictl("crictl-v1.29"),
        ],
        { reject: false, timeout: 60_000 },
      );
      const unwrapped = run.stdout.replace(/\s+/g, " "); // the header wraps at 80 columns
      expect(unwrapped).toContain(`runtime: answered at ${endpoint} (crictl)`);
      expect(unwrapped).toContain(`imagefs ${GRAPHROOT} [${imagefs?.device}]`);
      expect(run.stdout).not.toContain("RUNTIME_UNREACHABLE");
    },
  );

  it("records a crictl that never answers as a timeout, killed at the deadline", async () => {
    tree = await nodeWithErroringSocket();

    const started = performance.now();
    const snapshot = await collectWith(tree, endpoint, crictl("crictl-hang"));
    const elapsed = performance.now() - started;

    expect(elapsed).toBeLessThan(HANG_BOUND_MS);
    const cri = criOf(snapshot);
    expect(cri.answeredBy).toBeNull();
    const attempt = cri.attempts[1];
    expect(attempt).toMatchObject({ reason: `crictl (${crictl("crictl-hang")})`, status: "timeout" });
    // crictl's --timeout 1s, plus the second it is given to say so before the SIGKILL.
    expect(attempt?.error).toMatch(/^crictl gave no answer within \d+ ms$/);
    expect(attempt?.latencyMs).toBeGreaterThanOrEqual(1900);
    const finding = runChecks(snapshot).find((f) => f.id === "RUNTIME_UNREACHABLE");
    expect(finding?.evidence).toContain(
      `${endpoint} (crictl (${crictl("crictl-hang")})): timeout - ${attempt?.error}`,
    );
  });

  it("records a crictl that exits non-zero as an error, with what it printed on stderr", async () => {
    tree = await nodeWithErroringSocket();

    const snapshot = await collectWith(tree, endpoint, crictl("crictl-unimplemented"));
    const cri = criOf(snapshot);
    expect(cri.answeredBy).toBeNull();
    const attempt = cri.attempts[1];
    expect(attempt?.status).toBe("error");
    expect(attempt?.error).toContain("Command failed with exit code 1");
    // crictl is pointed at the socket as this process reaches it, inside the host tree.
    expect(attempt?.error).toContain(
      `validate service connection: CRI v1 runtime API is not implemented for endpoint \\"unix://${tree.local("/run/crio/crio.sock")}\\"`,
    );
    expect(runChecks(snapshot).map((f) => f.id)).toContain("RUNTIME_UNREACHABLE");
  });

  it("does not ask crictl about a socket that stayed silent: that would wait out the deadline twice", async () => {
    tree = await crioNode();
    const server = await silentServer(tree.local("/run/crio/crio.sock"));
    tree.onCleanup(server.close);

    const snapshot = await collectWith(tree, endpoint, crictl("crictl-v1.29"));
    const cri = criOf(snapshot);
    expect(cri.attempts.map((a) => [a.reason, a.status])).toEqual([["--cri-endpoint", "timeout"]]);
    expect(cri.answeredBy).toBeNull();
  });
});

describe("crictl imagefsinfo -o json output", () => {
  const fixture = (name: string) => readFile(path.join(FIXTURES, name), "utf8");

  it("reads crictl >= v1.31 (sorted keys) with an imagestore: image and container filesystems apart", async () => {
    const info = parseCrictlImageFsInfo(await fixture("imagefsinfo-v1.31-imagestore.stdout"));
    expect(info.imageFilesystems).toEqual([
      {
        mountpoint: "/var/lib/images/overlay-images",
        usedBytes: 5368709120,
        inodesUsed: 48213,
        timestamp: "1764000000123456789",
      },
    ]);
    expect(info.containerFilesystems).toEqual([
      {
        mountpoint: "/var/lib/containers/storage/overlay-containers",
        usedBytes: 104857600,
        inodesUsed: 1507,
        timestamp: "1764000000123456789",
      },
    ]);
  });

  it("reads crictl v1.29-v1.30 (proto field order): both lists name graphroot's overlay-images", async () => {
    const info = parseCrictlImageFsInfo(await fixture("imagefsinfo-v1.29.stdout"));
    const expected = {
      mountpoint: "/var/lib/containers/storage/overlay-images",
      usedBytes: 21474836480,
      inodesUsed: 0, // "0" is printed (EmitDefaults) and is a real zero, not unknown
      timestamp: "1764000000987654321",
    };
    expect(info.imageFilesystems).toEqual([expected]);
    expect(info.containerFilesystems).toEqual([expected]);
  });

  it("reads crictl <= v1.28: one document per image filesystem, back to back", async () => {
    const info = parseCrictlImageFsInfo(await fixture("imagefsinfo-v1.28.stdout"));
    expect(
      info.imageFilesystems.map((fs) => [fs.mountpoint, fs.usedBytes, fs.inodesUsed, fs.timestamp]),
    ).toEqual([
      ["/var/lib/images/overlay-images", 5368709120, 48213, "1764000000000000001"],
      ["/var/lib/containers/storage/overlay-images", 8192, 2, "1764000000000000002"],
    ]);
    expect(info.containerFilesystems).toEqual([]);
  });

  it("throws a clear error on output cut off in the middle of a document", async () => {
    const text = await fixture("imagefsinfo-v1.31-imagestore.stdout");
    const cut = text.slice(0, text.indexOf("/var/lib/images") + 5); // inside a string
    expect(() => parseCrictlImageFsInfo(cut)).toThrow("truncated JSON: a document is not closed");
    const cutInSecond = (await fixture("imagefsinfo-v1.28.stdout")).slice(0, -20);
    expect(() => parseCrictlImageFsInfo(cutInSecond)).toThrow("truncated JSON: a document is not closed");
  });

  it("throws a clear error on output that is not JSON", () => {
    expect(() => parseCrictlImageFsInfo("")).toThrow("crictl printed no JSON");
    expect(() =>
      parseCrictlImageFsInfo('time="2026-11-23T08:00:00Z" level=fatal msg="connect: connection refused"\n'),
    ).toThrow("crictl printed no JSON");
    expect(() => parseCrictlImageFsInfo("}{")).toThrow("unbalanced JSON at offset 0");
    expect(() => parseCrictlImageFsInfo('{"status": nope}')).toThrow(SyntaxError);
  });
});
