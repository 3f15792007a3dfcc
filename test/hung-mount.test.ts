import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import { parseMountinfo } from "../collector/host/mountinfo.js";
import type { Snapshot } from "../collector/snapshot.js";
import type { FilesystemRoleFact } from "../collector/sources/filesystems.js";
import type { ImageStoreFact } from "../collector/sources/image-stores.js";
import { requireParts } from "./support/requirements.js";
import { baseNode, collectTree, GRAPHROOT, HostTree, RUNROOT, startRuntime } from "./support/scenarios.js";

const ready = requireParts("hung FUSE mount tests", ["root", "loop", "bindfs"]);

const SHARED = "/var/lib/shared-images";
/** The bound the whole collection must stay within while a store hangs: a hang guard, not a benchmark. */
const HANG_BOUND_MS = 8000;

function sharedStore(snapshot: Snapshot): ImageStoreFact {
  const stores = snapshot.sources["image-stores"];
  if (stores.status !== "ok") throw new Error(`image-stores source: ${stores.status}`);
  const found = stores.facts.stores.find((s) => s.path === SHARED);
  if (!found) throw new Error(`no image store at ${SHARED}`);
  return found;
}

function storeRole(snapshot: Snapshot): FilesystemRoleFact {
  const fs = snapshot.sources.filesystems;
  if (fs.status !== "ok") throw new Error(`filesystems source: ${fs.status}`);
  const found = fs.facts.roles.find((r) => r.role === "additional-image-store");
  if (!found) throw new Error("no additional-image-store role");
  return found;
}

/** Reads our own mountinfo (never the FUSE path itself) to see whether `target` is a FUSE mount. */
async function fuseMountAt(target: string): Promise<boolean> {
  const { entries } = parseMountinfo(await readFile("/proc/self/mountinfo", "utf8"));
  return entries.some((e) => e.mountPoint === target && e.fstype.startsWith("fuse"));
}

async function waitFor(what: string, test: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Bindfs {
  pid: number;
  target: string;
  process: ResultPromise;
}

/**
 * A CRI-O node whose storage.conf lists an additional image store, with bindfs (run in the
 * foreground as our own child, so we hold its PID) mounted at the store's path.
 */
async function nodeWithFuseStore(
  tree: HostTree,
  { mountAt = SHARED, configured = SHARED } = {},
): Promise<Bindfs> {
  await baseNode(tree);
  await tree.write(
    "/etc/containers/storage.conf",
    `[storage]
driver = "overlay"
graphroot = "${GRAPHROOT}"
runroot = "${RUNROOT}"

[storage.options]
additionalimagestores = ["${configured}"]
`,
  );
  const source = path.join(tree.scratch, "shared-src");
  await mkdir(path.join(source, "overlay-images"), { recursive: true });
  await writeFile(path.join(source, "overlay-images", "images.json"), "[]");
  await tree.mkdir(mountAt);
  // A configured path other than the mount point reaches the mount through a symlink.
  if (configured !== mountAt) await tree.symlink(mountAt, configured);
  const target = tree.local(mountAt);
  const child = execa("bindfs", ["-f", source, target], { reject: false, stdin: "ignore" });
  const pid = child.pid;
  if (pid === undefined) throw new Error("bindfs did not start");
  const bindfs = { pid, target, process: child };
  // Runs before HostTree unmounts its loop devices: resume the server so nothing stays frozen,
  // drop the mount lazily, then make sure the server is gone.
  tree.onCleanup(async () => {
    signal(bindfs.pid, "SIGCONT");
    await execa("fusermount3", ["-uz", target], { reject: false });
    await execa("umount", ["-l", target], { reject: false });
    signal(bindfs.pid, "SIGKILL");
    await child;
  });
  await waitFor(`bindfs at ${target}`, () => fuseMountAt(target));
  await startRuntime(tree);
  return bindfs;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; elapsedMs: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, elapsedMs: performance.now() - started };
}

describe.skipIf(!ready)("an additional image store on a FUSE mount that hangs or dies", () => {
  let tree: HostTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  it("reports a stopped FUSE server as unresponsive without hanging, and recovers when it resumes", async () => {
    tree = await HostTree.create();
    const bindfs = await nodeWithFuseStore(tree);

    process.kill(bindfs.pid, "SIGSTOP");
    const hung = await timed(() => collectTree(tree!, { guardedStatMs: 1000 }));
    expect(hung.elapsedMs).toBeLessThan(HANG_BOUND_MS);
    const stuck = storeRole(hung.value);
    expect(stuck.status).toBe("unresponsive");
    expect(stuck.path).toBe(SHARED);
    expect(stuck.error).toContain("no answer from fuse filesystem");
    expect(stuck.mount?.fstype).toBe("fuse");
    // Additional image stores are IMAGE_STORE_UNAVAILABLE's, which knows their mounts and content.
    const finding = runChecks(hung.value).find((f) => f.id === "IMAGE_STORE_UNAVAILABLE");
    expect(finding?.severity).toBe("critical");
    expect(finding?.subject).toBe(SHARED);
    expect(finding?.title).toBe(`Additional image store ${SHARED} does not answer`);
    expect(finding?.remediation.commands).toContain(`umount -l ${SHARED}`);
    expect(runChecks(hung.value).map((f) => f.id)).not.toContain("STORE_UNRESPONSIVE");
    // images.json on the stopped store is read from a child process too: an error, not a hang.
    expect(sharedStore(hung.value).images.status).toBe("error");
    expect(sharedStore(hung.value).images.error).toContain("no answer from fuse filesystem");
    // The other sources finished on their own; none was cut off by its deadline.
    for (const [name, result] of Object.entries(hung.value.sources)) {
      expect(["ok", "absent"], `source ${name}`).toContain(result.status);
    }

    process.kill(bindfs.pid, "SIGCONT");
    const resumed = await timed(() => collectTree(tree!, { guardedStatMs: 1000 }));
    expect(resumed.elapsedMs).toBeLessThan(HANG_BOUND_MS);
    const store = storeRole(resumed.value);
    expect(store.status).toBe("ok");
    expect(store.mount?.fstype).toMatch(/^fuse/);
    expect(store.isMountPoint).toBe(true);
    expect(sharedStore(resumed.value).images).toMatchObject({ status: "ok", count: 0 });
    const ids = runChecks(resumed.value).map((f) => f.id);
    expect(ids).not.toContain("IMAGE_STORE_UNAVAILABLE");
  });

  it("reports a FUSE mount whose server was killed as unusable (ENOTCONN), without hanging", async () => {
    tree = await HostTree.create();
    const bindfs = await nodeWithFuseStore(tree);

    process.kill(bindfs.pid, "SIGKILL");
    await bindfs.process;
    // The mount outlives its server: that is the dead-mount state users meet.
    expect(await fuseMountAt(bindfs.target)).toBe(true);

    const dead = await timed(() => collectTree(tree!, { guardedStatMs: 1000 }));
    expect(dead.elapsedMs).toBeLessThan(HANG_BOUND_MS);
    const store = storeRole(dead.value);
    expect(store.status).toBe("error");
    expect(store.error).toContain("Transport endpoint is not connected");
    expect(sharedStore(dead.value).images.error).toContain("Transport endpoint is not connected");
    const finding = runChecks(dead.value).find((f) => f.id === "IMAGE_STORE_UNAVAILABLE");
    expect(finding?.subject).toBe(SHARED);
    expect(finding?.title).toBe(`Additional image store ${SHARED} cannot be read`);
    expect(finding?.evidence.join("\n")).toContain("Transport endpoint is not connected");
  });

  it("never enters a stopped mount through a symlink, nor while searching disks for old image stores", async () => {
    tree = await HostTree.create();
    // /lazy: a FUSE mount right below the root disk, which the search for unconfigured stores
    // walks; the configured store reaches it only through a symlink.
    const bindfs = await nodeWithFuseStore(tree, { mountAt: "/lazy", configured: "/var/lib/linked-images" });

    process.kill(bindfs.pid, "SIGSTOP");
    const hung = await timed(() => collectTree(tree!, { guardedStatMs: 1000 }));
    expect(hung.elapsedMs).toBeLessThan(HANG_BOUND_MS);
    const linked = storeRole(hung.value);
    expect(linked.path).toBe("/var/lib/linked-images");
    expect(linked.status).toBe("unresponsive");
    expect(linked.error).toContain("(stat of /lazy)");
    for (const [name, result] of Object.entries(hung.value.sources)) {
      expect(["ok", "absent"], `source ${name}`).toContain(result.status);
    }
  });
});
