import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runSource } from "../collector/collect.js";
import { deviceId } from "../collector/host/device.js";
import { Host } from "../collector/host/host.js";
import { findMount, parseMountinfo, readMountTable } from "../collector/host/mountinfo.js";
import { errnoCode, HostRoot } from "../collector/host/root.js";
import { socketPathOf } from "../collector/host/unix-http.js";
import { Absent } from "../collector/sources/source.js";
import { requireParts } from "./support/requirements.js";

describe("host root path resolution", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "imagefs-root-"));
    await mkdir(path.join(root, "run/crio"), { recursive: true });
    await mkdir(path.join(root, "var"), { recursive: true });
    await writeFile(path.join(root, "run/crio/crio.sock"), "");
    await symlink("/run", path.join(root, "var/run"));
    await symlink("../../../../../../etc", path.join(root, "var/escape"));
    await symlink("/loop-b", path.join(root, "loop-a"));
    await symlink("/loop-a", path.join(root, "loop-b"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("keeps absolute symlinks inside the host root", async () => {
    const resolved = await new HostRoot(root).resolve("/var/run/crio/crio.sock");
    expect(resolved).toEqual({ host: "/run/crio/crio.sock", local: path.join(root, "run/crio/crio.sock") });
  });

  it("reads small files on this thread and large ones asynchronously, with the same result", async () => {
    const host = new Host({ root });
    await writeFile(path.join(root, "small.json"), "[]");
    await writeFile(path.join(root, "large.json"), "x".repeat(2 * 1024 * 1024 + 3));
    await expect(host.readText("/small.json")).resolves.toMatchObject({ text: "[]", truncated: false });
    const large = await host.readText("/large.json", 4 * 1024 * 1024);
    expect(large.text.length).toBe(2 * 1024 * 1024 + 3);
    expect(large.truncated).toBe(false);
    await expect(host.readText("/large.json", 10)).resolves.toMatchObject({
      text: "x".repeat(10),
      truncated: true,
    });
    await expect(host.readText("/absent.json")).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("never climbs above the host root with ..", async () => {
    const resolved = await new HostRoot(root).resolve("/var/escape/passwd");
    expect(resolved.host).toBe("/etc/passwd");
    expect(resolved.local).toBe(path.join(root, "etc/passwd"));
  });

  it("stops a symlink loop with ELOOP", async () => {
    await expect(new HostRoot(root).resolve("/loop-a/x")).rejects.toMatchObject({ code: "ELOOP" });
  });

  it("keeps the rest of a path that does not exist", async () => {
    expect((await new HostRoot(root).resolve("/var/run/missing/dir")).host).toBe("/run/missing/dir");
  });

  // With a stopAt, resolve looks components up on this thread (lstatSync): the same answers.
  it.each([
    ["through the thread pool", undefined],
    ["on this thread, vouched for by stopAt", () => false],
  ])("resolves links, .., loops, missing parts and a path under a file alike %s", async (_how, stopAt) => {
    const host = new HostRoot(root);
    expect((await host.resolve("/var/run/crio/crio.sock", stopAt)).host).toBe("/run/crio/crio.sock");
    expect((await host.resolve("/var/escape/passwd", stopAt)).host).toBe("/etc/passwd");
    await expect(host.resolve("/loop-a/x", stopAt)).rejects.toMatchObject({ code: "ELOOP" });
    expect((await host.resolve("/var/run/missing/dir", stopAt)).host).toBe("/run/missing/dir");
    // crio.sock is a regular file here: what lies below it is missing (ENOTDIR), not an error.
    expect((await host.resolve("/run/crio/crio.sock/below", stopAt)).host).toBe("/run/crio/crio.sock/below");
  });

  it("maps local paths back to host paths, and refuses paths outside the root", () => {
    const host = new HostRoot(root);
    expect(host.toHost(path.join(root, "var/lib"))).toBe("/var/lib");
    expect(host.toHost("/elsewhere")).toBeUndefined();
    expect(new HostRoot("/").local("/var/lib")).toBe("/var/lib");
  });
});

describe("mountinfo", () => {
  const text = [
    "22 1 253:0 / / rw,relatime shared:1 - xfs /dev/mapper/rhel-root rw,attr2",
    "95 22 252:16 / /var/lib/images rw,nosuid shared:50 master:3 - xfs /dev/vdb rw,seclabel",
    "96 22 252:16 /sub /var/lib/bind\\040mount ro,relatime - xfs /dev/vdb rw",
    "97 22 0:52 / /var/lib/stargz-store/store rw,nosuid,nodev - fuse.rawBridge stargzstore rw,user_id=0",
    "this line is damaged",
  ].join("\n");

  it("parses fields, octal escapes and optional fields, and counts damaged lines", () => {
    const { entries, malformedLines } = parseMountinfo(text);
    expect(malformedLines).toBe(1);
    expect(entries).toHaveLength(4);
    expect(entries[2]).toMatchObject({
      device: "252:16",
      root: "/sub",
      mountPoint: "/var/lib/bind mount",
      options: ["ro", "relatime"],
    });
    expect(entries[3]).toMatchObject({ fstype: "fuse.rawBridge", source: "stargzstore" });
  });

  it("picks the mount by device first, then by the longest mount point that holds the path", () => {
    const table = { ...parseMountinfo(text), from: "test" };
    expect(findMount(table, "252:16", ["/var/lib/images/overlay"])?.mountPoint).toBe("/var/lib/images");
    expect(findMount(table, "252:16", ["/var/lib/bind mount/x"])?.root).toBe("/sub");
    // The same path on the root device: a string prefix alone would wrongly say /var/lib/images.
    expect(findMount(table, "253:0", ["/var/lib/images/overlay"])?.mountPoint).toBe("/");
  });

  it("splits dev_t like glibc", () => {
    expect(deviceId(0xfd00n)).toBe("253:0");
    expect(deviceId((259n << 8n) | 3n)).toBe("259:3");
    expect(deviceId(((0x12345n & 0xfffn) << 8n) | ((0x12345n & ~0xfffn) << 32n) | 0x10n)).toBe(
      `${0x12345}:16`,
    );
  });

  it("still inspects paths when no mount table can be read", async () => {
    const proc = await mkdtemp(path.join(os.tmpdir(), "imagefs-noproc-"));
    try {
      const host = new Host({ root: "/", procRoot: proc });
      await expect(host.mounts()).rejects.toThrow();
      const inspection = await host.inspectPath("/");
      expect(inspection.status).toBe("ok");
      if (inspection.status === "ok") expect(inspection.mount).toBeNull();
    } finally {
      await rm(proc, { recursive: true, force: true });
    }
  });
});

describe("which mount table is read", () => {
  const INIT = "22 1 253:0 / / rw,relatime - xfs /dev/vda rw";
  const SELF = "30 29 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/l";
  let proc: string;
  beforeEach(async () => {
    proc = await mkdtemp(path.join(os.tmpdir(), "imagefs-proc-"));
  });
  afterEach(async () => {
    await rm(proc, { recursive: true, force: true });
  });

  /** Writes <proc>/<pid>/mountinfo. */
  async function mountinfo(pid: "1" | "self", text: string): Promise<void> {
    await mkdir(path.join(proc, pid), { recursive: true });
    await writeFile(path.join(proc, pid, "mountinfo"), text);
  }

  it("reads PID 1's table (the host's, with hostPID) when it is readable", async () => {
    await mountinfo("1", `${INIT}\n`);
    await mountinfo("self", `${SELF}\n`);
    const table = await readMountTable(proc);
    expect(table.from).toBe(path.join(proc, "1/mountinfo"));
    expect(table.entries.map((e) => e.fstype)).toEqual(["xfs"]);
  });

  it("falls back to its own table when PID 1 is not there (hidepid) or shows no mounts", async () => {
    await mountinfo("self", `${SELF}\n`);
    expect((await readMountTable(proc)).from).toBe(path.join(proc, "self/mountinfo"));
    await mountinfo("1", ""); // a PID 1 being torn down shows an empty table
    const table = await readMountTable(proc);
    expect(table.from).toBe(path.join(proc, "self/mountinfo"));
    expect(table.entries.map((e) => e.fstype)).toEqual(["overlay"]);
  });

  it("fails, saying what it could not open, when neither table can be read", async () => {
    await expect(readMountTable(proc)).rejects.toMatchObject({
      code: "ENOENT",
      path: path.join(proc, "self/mountinfo"),
    });
  });

  const ready = requireParts("mount table under hidepid", ["root"]);

  it.skipIf(!ready)(
    "falls back to /proc/self/mountinfo for an unprivileged reader of a real /proc mounted with hidepid=2",
    async () => {
      const hidden = path.join(proc, "hidepid");
      await mkdir(hidden);
      await chmod(proc, 0o755); // mkdtemp's 0700 would stop nobody before /proc's own rules do
      await execa("mount", ["-t", "proc", "-o", "hidepid=2", "proc", hidden]);
      try {
        // The built module, run as nobody: root would see PID 1 whatever hidepid says.
        const module = path.resolve(import.meta.dirname, "../dist/collector/host/mountinfo.js");
        const script = `const { readMountTable } = await import(${JSON.stringify(module)});
          const table = await readMountTable(${JSON.stringify(hidden)});
          console.log(JSON.stringify({ from: table.from, entries: table.entries.length }));`;
        const run = await execa(process.execPath, ["--input-type=module", "-e", script], {
          uid: 65534,
          gid: 65534,
          timeout: 30_000,
        });
        const result = JSON.parse(run.stdout) as { from: string; entries: number };
        expect(result.from).toBe(path.join(hidden, "self/mountinfo"));
        expect(result.entries).toBeGreaterThan(0);
      } finally {
        await execa("umount", [hidden], { reject: false });
      }
    },
  );
});

describe("source contract", () => {
  const context = {
    host: new Host({ root: "/" }),
    options: { criTimeoutMs: 1000 },
    result: () => Promise.reject(new Error("unused")),
  };
  const source = (collect: () => Promise<unknown>) =>
    ({ name: "filesystems", deadlineMs: 200, collect }) as unknown as Parameters<typeof runSource>[0];

  it("reports a source past its deadline as timeout", async () => {
    const result = await runSource(
      source(() => new Promise(() => {})),
      context as never,
    );
    expect(result).toMatchObject({ status: "timeout", error: "no result within 200 ms", facts: null });
  });

  it("reports a failing source as error with its message", async () => {
    const result = await runSource(
      source(() => Promise.reject(new Error("boom"))),
      context as never,
    );
    expect(result).toMatchObject({ status: "error", error: "boom" });
  });

  it("reports an absent component with its reason", async () => {
    const result = await runSource(
      source(async () => new Absent("no kubelet here")),
      context as never,
    );
    expect(result).toMatchObject({ status: "absent", reason: "no kubelet here" });
  });
});

describe("small host helpers", () => {
  it("names the errno of a real fs error, and EUNKNOWN for what has none", async () => {
    const error = await import("node:fs/promises").then((fs) =>
      fs.lstat("/nonexistent/imagefs").catch((e) => e),
    );
    expect(errnoCode(error)).toBe("ENOENT");
    expect(errnoCode(new Error("plain"))).toBe("EUNKNOWN");
    expect(errnoCode({ code: 13 })).toBe("EUNKNOWN");
    expect(errnoCode(null)).toBe("EUNKNOWN");
  });

  it("takes a socket path from unix:// endpoints and absolute paths only", () => {
    expect(socketPathOf("unix:///run/crio/crio.sock")).toBe("/run/crio/crio.sock");
    expect(socketPathOf("/run/crio/crio.sock")).toBe("/run/crio/crio.sock");
    expect(socketPathOf("tcp://127.0.0.1:10010")).toBeUndefined();
    expect(socketPathOf("run/crio.sock")).toBeUndefined();
  });
});
