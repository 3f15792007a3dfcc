import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { execa, type ResultPromise } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import { collect } from "../collector/collect.js";
import { deviceId } from "../collector/host/device.js";
import type { Snapshot } from "../collector/snapshot.js";
import { requireParts } from "./support/requirements.js";

const ready = requireParts("containerd CRI tests", ["root", "containerd"]);

const PROTO = fileURLToPath(new URL("../collector/sources/cri-api.proto", import.meta.url));
const SNAPSHOTTER_DIR = "io.containerd.snapshotter.v1.overlayfs";

interface Daemon {
  dir: string;
  root: string;
  config: string;
  socket: string;
  procRoot: string;
  log: string;
  process: ResultPromise;
  pid: number;
}

/** containerd's configuration, everything it writes kept under `dir`. */
function containerdConfig(dir: string, root: string, socket: string): string {
  return `version = 2
root = "${root}"
state = "${path.join(dir, "state")}"

[grpc]
  address = "${socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "${path.join(dir, "opt")}"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "${path.join(dir, "cni/bin")}"
  conf_dir = "${path.join(dir, "cni/net.d")}"
`;
}

async function until(what: string, timeoutMs: number, test: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Our own CRI Version call, so the test does not use the code under test to decide containerd is up. */
function criVersion(socket: string): Promise<boolean> {
  const definition = protoLoader.loadSync(PROTO, { longs: String, defaults: true });
  const v1 = (grpc.loadPackageDefinition(definition).runtime as grpc.GrpcObject).v1 as grpc.GrpcObject;
  const Client = v1.RuntimeService as grpc.ServiceClientConstructor;
  const client = new Client(`unix:${socket}`, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.Version!({ version: "v1" }, { deadline: new Date(Date.now() + 1000) }, (error: unknown) => {
      client.close();
      // Until its CRI plugin is initialised containerd answers "server is not initialized yet".
      resolve(!error);
    });
  });
}

async function startContainerd(): Promise<Daemon> {
  // Under /tmp with a short name: the socket path must stay well inside sun_path's 108 bytes.
  const dir = await mkdtemp("/tmp/ctrd-");
  const root = path.join(dir, "root");
  const socket = path.join(dir, "c.sock");
  const config = path.join(dir, "config.toml");
  const log = path.join(dir, "containerd.log");
  const procRoot = path.join(dir, "proc");
  await mkdir(root);
  await mkdir(procRoot);
  await execa("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", root]);
  await writeFile(config, containerdConfig(dir, root, socket));
  const child = execa("containerd", ["--config", config], {
    reject: false,
    stdin: "ignore",
    stdout: "ignore",
    stderr: { file: log },
  });
  if (child.pid === undefined) throw new Error("containerd did not start");
  const daemon: Daemon = { dir, root, config, socket, procRoot, log, process: child, pid: child.pid };
  let exited = false;
  void child.then(() => {
    exited = true;
  });
  try {
    await until("containerd socket", 15_000, async () => {
      if (exited) throw new Error(`containerd exited: ${await readFile(log, "utf8")}`);
      return (await stat(socket).catch(() => undefined))?.isSocket() ?? false;
    });
    await until("CRI answer from containerd", 15_000, () => criVersion(socket));
  } catch (error) {
    await stopContainerd(daemon);
    throw error;
  }
  // A private /proc: the reader itself as "1" (its mountinfo shows the tmpfs), and containerd.
  await symlink("/proc/self", path.join(procRoot, "1"));
  await symlink(`/proc/${daemon.pid}`, path.join(procRoot, String(daemon.pid)));
  return daemon;
}

async function stopContainerd(daemon: Daemon): Promise<void> {
  const exited = daemon.process.then(() => true);
  daemon.process.kill("SIGTERM");
  const stopped = await Promise.race([
    exited,
    new Promise<false>((resolve) => setTimeout(() => resolve(false), 10_000)),
  ]);
  if (!stopped) {
    daemon.process.kill("SIGKILL");
    await exited;
  }
  await execa("umount", ["-l", daemon.root], { reject: false });
  await rm(daemon.dir, { recursive: true, force: true });
}

function collectFrom(daemon: Daemon): Promise<Snapshot> {
  // containerd reports real host paths, so the host root is "/".
  return collect({
    hostRoot: "/",
    procRoot: daemon.procRoot,
    criEndpoint: `unix://${daemon.socket}`,
    criTimeoutMs: 5000,
    guardedStatMs: 2000,
  });
}

async function deviceOf(localPath: string): Promise<string> {
  return deviceId((await stat(localPath, { bigint: true })).dev);
}

describe.skipIf(!ready)("a real containerd answering over CRI", () => {
  let daemon: Daemon | undefined;
  beforeEach(async () => {
    daemon = await startContainerd();
  });
  afterEach(async () => {
    if (daemon) await stopContainerd(daemon);
    daemon = undefined;
  });

  it("reports containerd's image filesystem on its own tmpfs, matching the running configuration", async () => {
    const d = daemon!;
    const snapshot = await collectFrom(d);

    const cri = snapshot.sources.cri;
    expect(cri.status).toBe("ok");
    if (cri.status !== "ok") return;
    expect(cri.facts.answeredBy).toEqual({ endpoint: `unix://${d.socket}`, via: "grpc" });
    expect(cri.facts.runtime?.name).toBe("containerd");
    expect(cri.facts.runtime?.apiVersion).toBe("v1");
    const imagefs = cri.facts.imageFilesystems[0];
    const snapshotterRoot = path.join(d.root, SNAPSHOTTER_DIR);
    expect(imagefs?.mountpoint).toBe(snapshotterRoot);
    // The device is the tmpfs's, not that of the directory it was mounted on.
    const tmpfsDevice = await deviceOf(d.root);
    expect(imagefs?.device).toBe(tmpfsDevice);
    expect(tmpfsDevice).not.toBe(await deviceOf(d.dir));

    const storage = snapshot.sources["storage-config"];
    if (storage.status !== "ok") throw new Error(`storage-config: ${storage.status}`);
    const containerd = storage.facts.containerd;
    expect(storage.facts.runtimeGuess.kind).toBe("containerd");
    expect(containerd?.process?.pid).toBe(d.pid);
    expect(containerd?.configPath).toBe(d.config);
    expect(containerd?.root).toEqual({ value: d.root, from: d.config });
    expect(containerd?.address).toEqual({ value: d.socket, from: d.config });
    expect(containerd?.snapshotterRoot.value).toBe(imagefs?.mountpoint);

    const fs = snapshot.sources.filesystems;
    if (fs.status !== "ok") throw new Error(`filesystems: ${fs.status}`);
    const imagefsRole = fs.facts.roles.find((r) => r.role === "imagefs");
    expect(imagefsRole?.device).toBe(tmpfsDevice);
    expect(imagefsRole?.mount).toMatchObject({ mountPoint: d.root, fstype: "tmpfs" });

    expect(runChecks(snapshot).map((f) => f.id)).not.toContain("CRI_IMAGEFS_MISMATCH");
  });

  it("notices a configuration changed without restarting containerd", async () => {
    const d = daemon!;
    const before = await collectFrom(d);
    expect(runChecks(before).map((f) => f.id)).not.toContain("CRI_IMAGEFS_MISMATCH");

    const newRoot = path.join(d.dir, "root2");
    await writeFile(d.config, containerdConfig(d.dir, newRoot, d.socket));
    const after = await collectFrom(d);

    // Still the same daemon, still answering from where it started.
    const cri = after.sources.cri.status === "ok" ? after.sources.cri.facts : undefined;
    expect(cri?.imageFilesystems[0]?.mountpoint).toBe(path.join(d.root, SNAPSHOTTER_DIR));
    const finding = runChecks(after).find((f) => f.id === "CRI_IMAGEFS_MISMATCH");
    expect(finding?.severity).toBe("warning");
    expect(finding?.evidence[0]).toBe(`runtime: containerd ${cri?.runtime?.version} at unix://${d.socket}`);
    expect(finding?.evidence).toContain(
      `runtime reports its image filesystem at ${path.join(d.root, SNAPSHOTTER_DIR)}; ` +
        `the configuration says ${path.join(newRoot, SNAPSHOTTER_DIR)}`,
    );
    expect(finding?.remediation.commands).toContain("systemctl restart containerd");
  });
});
