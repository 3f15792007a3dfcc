import { randomBytes } from "node:crypto";
import { chmod, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { parseMountinfo } from "../collector/host/mountinfo.js";
import { type ManifestItem, type OpenedBundle, openBundle } from "./support/bundle-archive.js";
import { mustGather } from "./support/cli.js";
import { mountBindfs } from "./support/lazy-pull.js";
import { requireParts } from "./support/requirements.js";
import { baseNode, GRAPHROOT, HostTree, layersJson, RUNROOT, startRuntime } from "./support/scenarios.js";

/**
 * must-gather under pressure: a FUSE store that never answers and a crictl that never returns
 * still give a complete bundle before the deadline; a nearly full output filesystem gives a clear
 * error or a smaller bundle, never a partial file or a temporary one left behind.
 */
const ready = requireParts("must-gather under hung mounts, hung commands and full disks", [
  "root",
  "loop",
  "bindfs",
]);

const SHARED = "/var/lib/shared-images";

async function fuseMountAt(target: string): Promise<boolean> {
  const { entries } = parseMountinfo(await readFile("/proc/self/mountinfo", "utf8"));
  return entries.some((e) => e.mountPoint === target && e.fstype.startsWith("fuse"));
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** An additional image store on bindfs (our own child, so we hold its PID), as in hung-mount.test.ts. */
async function nodeWithFuseStore(tree: HostTree): Promise<number> {
  await baseNode(tree);
  await tree.write(
    "/etc/containers/storage.conf",
    `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\nrunroot = "${RUNROOT}"\n\n[storage.options]\nadditionalimagestores = ["${SHARED}"]\n`,
  );
  const source = path.join(tree.scratch, "shared-src");
  await mkdir(path.join(source, "overlay-images"), { recursive: true });
  await writeFile(path.join(source, "overlay-images", "images.json"), "[]");
  await tree.mkdir(SHARED);
  const target = tree.local(SHARED);
  const child = execa("bindfs", ["-f", source, target], { reject: false, stdin: "ignore" });
  const pid = child.pid!;
  tree.onCleanup(async () => {
    signal(pid, "SIGCONT");
    await execa("fusermount3", ["-uz", target], { reject: false });
    await execa("umount", ["-l", target], { reject: false });
    signal(pid, "SIGKILL");
    await child;
  });
  for (let i = 0; !(await fuseMountAt(target)); i++) {
    if (i > 200) throw new Error("bindfs did not mount");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await startRuntime(tree);
  return pid;
}

function item(bundle: OpenedBundle, predicate: (i: ManifestItem) => boolean): ManifestItem {
  const found = bundle.manifest.items.find(predicate);
  if (!found) throw new Error("no such manifest item");
  return found;
}

describe.skipIf(!ready)("must-gather when parts of the node hang or the disk is full", () => {
  let tree: HostTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  it("finishes a complete bundle within the deadline past a stopped FUSE server and a crictl that never returns", async () => {
    tree = await HostTree.create();
    const bindfs = await nodeWithFuseStore(tree);
    const bin = path.join(tree.scratch, "bin");
    await mkdir(bin);
    // Not `exec sleep`: the shell's child holds the pipes, so only killing the group ends it.
    await writeFile(path.join(bin, "crictl"), "#!/bin/sh\nsleep 600\necho never\n");
    await chmod(path.join(bin, "crictl"), 0o755);
    process.kill(bindfs, "SIGSTOP");

    const file = path.join(tree.scratch, "hung.tar.gz");
    const started = performance.now();
    const run = await mustGather(
      tree,
      // Named with --crictl, not found on PATH: the steps run the crictl they are given.
      [
        "-o",
        file,
        "--stat-timeout",
        "1000",
        "--timeout",
        "60s",
        "--step-timeout",
        "4s",
        "--crictl",
        path.join(bin, "crictl"),
      ],
    );
    const elapsedMs = performance.now() - started;
    process.stderr.write(
      `must-gather figures (hung FUSE store + hung crictl): ${(await stat(file)).size} bytes in ${Math.round(elapsedMs)} ms\n`,
    );
    expect(run.exitCode, Buffer.from(run.stderr).toString()).toBe(0);
    // A hang guard, not a benchmark: well inside --timeout.
    expect(elapsedMs).toBeLessThan(60_000);

    const bundle = await openBundle(file);
    for (const name of [
      "snapshot.json",
      "findings.json",
      "report.html",
      "host/etc/containers/storage.conf",
    ]) {
      expect(bundle.names, name).toContain(name);
    }
    for (const name of ["commands/crictl-info.json", "commands/crictl-images.json"]) {
      const crictl = item(
        bundle,
        (i) => Array.isArray(i.source) && i.source.includes(name.includes("info") ? "info" : "images"),
      );
      expect((crictl.source as string[])[0], name).toBe(path.join(bin, "crictl"));
      expect(crictl.status, name).toBe("timeout");
      expect(crictl.error).toMatch(/killed after|deadline/);
    }
    const images = item(bundle, (i) => i.source === `${SHARED}/overlay-images/images.json`);
    expect(images.status).toBe("timeout");
    expect(images.error).toContain("no answer from fuse filesystem");
    // The snapshot saw the store hang too, and said so.
    const snapshot = bundle.json<{
      sources: { filesystems: { facts: { roles: { path: string; status: string }[] } } };
    }>("snapshot.json");
    expect(snapshot.sources.filesystems.facts.roles.find((r) => r.path === SHARED)?.status).toBe(
      "unresponsive",
    );
    expect(bundle.json<unknown[]>("facts/fusectl.json").length).toBeGreaterThan(0);
    // No sleep left behind: the whole process group was killed.
    const sleeping = await execa("pgrep", ["-f", "^sleep 600$"], { reject: false });
    expect(sleeping.stdout.trim()).toBe("");
  });

  it("writes a bundle that says what the run's deadline cut off, when even the snapshot could not finish", async () => {
    tree = await HostTree.create();
    const bindfs = await nodeWithFuseStore(tree);
    process.kill(bindfs, "SIGSTOP");
    const file = path.join(tree.scratch, "cut.tar.gz");
    // Each stat of the stopped store waits 8 s; the whole run may take 3.
    const run = await mustGather(tree, ["-o", file, "--stat-timeout", "8000", "--timeout", "3s"]);
    expect(run.exitCode, Buffer.from(run.stderr).toString()).toBe(0);
    const bundle = await openBundle(file);
    expect(bundle.names).toEqual(["version", "timestamp", "manifest.json", "redactions.json"]);
    const snapshot = item(bundle, (i) => i.source === "imagefs-doctor collect");
    expect(snapshot.status).toBe("timeout");
    expect(snapshot.error).toContain("deadline");
    expect(
      item(bundle, (i) => i.source === "imagefs-doctor" && i.error === "no snapshot to judge").status,
    ).toBe("skipped");
    const steps = bundle.manifest.steps;
    expect(steps[0]).toMatchObject({ name: "collect snapshot", status: "timeout" });
    expect(steps.slice(1).every((s) => s.status === "skipped")).toBe(true);
    expect(bundle.manifest.node).toBe("worker-0");
  });

  it("stops cleanly when the disk fills up while it gathers: an error, no file under the final name, no temporary file", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await startRuntime(tree);
    const bin = path.join(tree.scratch, "bin");
    await mkdir(bin);
    // crictl holds the run for its step's deadline, after the free space was read.
    await writeFile(path.join(bin, "crictl"), "#!/bin/sh\nsleep 600\n");
    await chmod(path.join(bin, "crictl"), 0o755);
    const out = path.join(tree.scratch, "out");
    await mkdir(out);
    await execa("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", out]);
    tree.onCleanup(async () => {
      await execa("umount", ["-l", out], { reject: false });
    });
    const running = mustGather(tree, ["-o", path.join(out, "bundle.tar.gz"), "--step-timeout", "6s"], {
      bin,
    });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    // Someone else fills the disk while the bundle is being gathered.
    await execa("dd", ["if=/dev/zero", `of=${path.join(out, ".fill")}`, "bs=1M"], { reject: false });
    const run = await running;
    expect(run.exitCode, Buffer.from(run.stderr).toString()).toBe(2);
    // Seen when the free space is read again before writing: stopped before a byte was written.
    expect(Buffer.from(run.stderr).toString()).toMatch(/not enough space for a bundle in/);
    expect(await readdir(out)).toEqual([".fill"]);
  });

  it("removes the temporary file when the disk runs out in the middle of writing the archive", async () => {
    tree = await HostTree.create();
    const out = path.join(tree.scratch, "out");
    await mkdir(out);
    await execa("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", out]);
    tree.onCleanup(async () => {
      await execa("umount", ["-l", out], { reject: false });
    });
    const { writeArchiveToFile } = await import("../collector/bundle/archive.js");
    // Random bytes do not compress: 3 MiB cannot fit in 1 MiB, and no bound says so beforehand.
    const entries = [{ name: "big.bin", data: randomBytes(3 * 1024 * 1024) }];
    await expect(
      writeArchiveToFile(entries, path.join(out, "bundle.tar.gz"), {
        top: "t",
        mtime: new Date(),
        maxBytes: Number.MAX_SAFE_INTEGER,
      }),
    ).rejects.toMatchObject({ code: "ENOSPC" });
    expect(await readdir(out)).toEqual([]);
  });

  it("refuses clearly when the output filesystem is nearly full, and writes a smaller bundle when some room is left", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    const out = path.join(tree.scratch, "out");
    await mkdir(out);
    await execa("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", out]);
    tree.onCleanup(async () => {
      await execa("umount", ["-l", out], { reject: false });
    });
    // 8 MiB keep a margin of 4 MiB; leave 3 MiB free: no room at all.
    const fill = async (leave: number) => {
      await execa("rm", ["-f", path.join(out, ".fill")]);
      const fs = await import("node:fs/promises").then((m) => m.statfs(out));
      await execa("fallocate", ["-l", String(fs.bavail * fs.bsize - leave), path.join(out, ".fill")]);
    };
    await fill(3 * 1024 * 1024);
    const refused = await mustGather(tree, ["-o", path.join(out, "bundle.tar.gz")]);
    expect(refused.exitCode).toBe(2);
    expect(Buffer.from(refused.stderr).toString()).toMatch(
      /not enough space for a bundle in .*must stay free/,
    );
    expect(await readdir(out)).toEqual([".fill"]);

    // 4 MiB + 100 KiB free: a bundle that fits in 100 KiB, the big layers.json left out and marked.
    await tree.write(`${GRAPHROOT}/overlay-layers/layers.json`, layersJson(2000, 4096));
    await fill(4 * 1024 * 1024 + 100 * 1024);
    const capped = await mustGather(tree, ["-o", path.join(out, "bundle.tar.gz")]);
    expect(capped.exitCode, Buffer.from(capped.stderr).toString()).toBe(0);
    expect((await readdir(out)).sort()).toEqual([".fill", "bundle.tar.gz"]);
    const size = (await stat(path.join(out, "bundle.tar.gz"))).size;
    expect(size).toBeLessThanOrEqual(100 * 1024);
    const bundle = await openBundle(path.join(out, "bundle.tar.gz"));
    expect(bundle.names).toContain("findings.json");
    expect(bundle.manifest.capped).toBe(true);
    expect(bundle.manifest.items.some((i) => i.status === "skipped" && i.error?.includes("size cap"))).toBe(
      true,
    );
    // Still at least the margin free.
    const after = await import("node:fs/promises").then((m) => m.statfs(out));
    expect(after.bavail * after.bsize).toBeGreaterThanOrEqual(4 * 1024 * 1024);
  });
});

describe.skipIf(!ready)("must-gather on a node with a lazy-pull layer store served over FUSE", () => {
  let tree: HostTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  it("copies the store's config from the server's own --config, its unit files, and fusectl's counters", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    const store = "/var/lib/stargz-store/store";
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\nrunroot = "${RUNROOT}"\n\n[storage.options]\nadditionallayerstores = ["${store}:ref"]\n`,
    );
    await tree.write(
      "/etc/stargz-store/lab.toml",
      `[[resolver.host."registry.lab".mirrors]]\nhost = "mirror.lab"\n[resolver.host."registry.lab".mirrors.header]\nAuthorization = ["Bearer lab-header-secret"]\n`,
    );
    await tree.write(
      "/etc/systemd/system/stargz-store.service",
      "[Service]\nExecStart=/usr/local/bin/stargz-store --config /etc/stargz-store/lab.toml /var/lib/stargz-store/store\n",
    );
    await tree.write(
      "/etc/systemd/system/stargz-store.service.d/10-proxy.conf",
      "[Service]\nEnvironment=HTTPS_PROXY=http://proxyuser:unit-proxy-secret@proxy.lab:3128\n",
    );
    const source = path.join(tree.scratch, "store-src");
    await mkdir(source, { recursive: true });
    const mounted = await mountBindfs(source, tree.local(store));
    tree.onCleanup(async () => {
      await execa("fusermount3", ["-uz", mounted.target], { reject: false });
      signal(mounted.pid, "SIGKILL");
      await mounted.process;
    });
    await tree.startProcess("stargz-store", [
      "--root",
      "/var/lib/stargz-store",
      "--config",
      "/etc/stargz-store/lab.toml",
      store,
    ]);

    const file = path.join(tree.scratch, "lazy.tar.gz");
    const run = await mustGather(tree, ["-o", file, "--stat-timeout", "2000"]);
    expect(run.exitCode, Buffer.from(run.stderr).toString()).toBe(0);
    const bundle = await openBundle(file);
    process.stderr.write(
      `must-gather figures (lazy-pull store on bindfs): ${(await stat(file)).size} bytes\n`,
    );
    const snapshot = bundle.json<{
      sources: { "layer-stores": { facts: { stores: { config: { path: string } }[] } } };
    }>("snapshot.json");
    expect(snapshot.sources["layer-stores"].facts.stores[0]!.config.path).toBe("/etc/stargz-store/lab.toml");
    expect(bundle.text("host/etc/stargz-store/lab.toml")).toContain('Authorization = ["[REDACTED]"]');
    expect(bundle.text("host/etc/systemd/system/stargz-store.service")).toContain("ExecStart=");
    expect(bundle.text("host/etc/systemd/system/stargz-store.service.d/10-proxy.conf")).toContain(
      "http://[REDACTED]@proxy.lab:3128",
    );
    const fuse =
      bundle.json<{ mountPoint: string; waiting?: number | null; source?: string }[]>("facts/fusectl.json");
    const entry = fuse.find((f) => f.mountPoint === store);
    expect(entry, JSON.stringify(fuse)).toBeDefined();
    expect(typeof entry!.waiting).toBe("number");
    for (const secret of ["lab-header-secret", "unit-proxy-secret"]) {
      expect(bundle.tar.toString("latin1").includes(secret), secret).toBe(false);
    }
  });
});
