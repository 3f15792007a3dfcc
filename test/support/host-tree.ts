import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, statfs, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";

export type LoopFs = "ext4" | "xfs";

export interface LoopOptions {
  sizeMiB: number;
  /** ext4 only: the number of inodes to create (mkfs.ext4 -N). */
  inodes?: number;
  readOnly?: boolean;
}

/**
 * A throw-away host tree for tests: a temporary directory used as --host-root, with real mounts
 * (tmpfs, loop-mounted ext4/xfs) at host paths, real files and symlinks, and a private /proc view
 * so processes on the machine running the tests (a real kubelet, say) do not leak in.
 */
export class HostTree {
  readonly root: string;
  /** Scratch space outside the host tree: loop images, the private /proc view. */
  readonly scratch: string;
  readonly procRoot: string;
  #mounts: string[] = [];
  #cleanups: (() => Promise<void>)[] = [];

  private constructor(root: string, scratch: string) {
    this.root = root;
    this.scratch = scratch;
    this.procRoot = path.join(scratch, "proc");
  }

  static async create(): Promise<HostTree> {
    const scratch = await mkdtemp(path.join(os.tmpdir(), "imagefs-test-"));
    const root = path.join(scratch, "host");
    await mkdir(root);
    const tree = new HostTree(root, scratch);
    await mkdir(tree.procRoot);
    // "1" points at the reader's own /proc entry: mountinfo is then the test process's, which
    // sees every mount the test makes, and no other process is visible unless exposed.
    await symlink("/proc/self", path.join(tree.procRoot, "1"));
    return tree;
  }

  local(hostPath: string): string {
    return path.join(this.root, hostPath);
  }

  async write(hostPath: string, content: string | Buffer): Promise<void> {
    await mkdir(path.dirname(this.local(hostPath)), { recursive: true });
    await writeFile(this.local(hostPath), content);
  }

  async mkdir(hostPath: string): Promise<void> {
    await mkdir(this.local(hostPath), { recursive: true });
  }

  async symlink(target: string, hostPath: string): Promise<void> {
    await mkdir(path.dirname(this.local(hostPath)), { recursive: true });
    await symlink(target, this.local(hostPath));
  }

  /**
   * Starts a long-running process whose argv[0] is `name` (a stand-in for crio or the kubelet,
   * whose command line and environment the collector reads) and makes it visible.
   */
  async startProcess(name: string, args: string[], env: Record<string, string> = {}): Promise<number> {
    // "--" keeps node from reading the daemon's flags as its own.
    const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)", "--", ...args], {
      argv0: name,
      env: { PATH: "/usr/bin:/bin", ...env },
      stdio: "ignore",
    });
    this.onCleanup(async () => {
      child.kill("SIGKILL");
    });
    await this.exposeProcess(child.pid!);
    // The kernel fills /proc/<pid>/cmdline once node has exec'd.
    await new Promise((resolve) => setTimeout(resolve, 100));
    return child.pid!;
  }

  /** Makes a process visible to the collector, as a node's /proc would show it. */
  async exposeProcess(pid: number): Promise<void> {
    await symlink(`/proc/${pid}`, path.join(this.procRoot, String(pid)));
  }

  async mountTmpfs(hostPath: string, options = "size=64m"): Promise<void> {
    await this.#mount(hostPath, ["-t", "tmpfs", "-o", options, "tmpfs"]);
  }

  /** ramfs: a filesystem without extended attributes (every xattr call fails with ENOTSUP). */
  async mountRamfs(hostPath: string): Promise<void> {
    await this.#mount(hostPath, ["-t", "ramfs", "ramfs"]);
  }

  /** Creates a sparse image, makes a filesystem on it and loop-mounts it (the loop device is freed on umount). */
  async mountLoop(hostPath: string, fstype: LoopFs, options: LoopOptions): Promise<string> {
    const image = path.join(this.scratch, `${hostPath.replaceAll("/", "_")}.${fstype}.img`);
    await execa("truncate", ["-s", `${options.sizeMiB}M`, image]);
    const mkfs =
      fstype === "ext4"
        ? ["mkfs.ext4", ["-q", "-F", ...(options.inodes ? ["-N", String(options.inodes)] : []), image]]
        : ["mkfs.xfs", ["-q", "-f", image]];
    await execa(mkfs[0] as string, mkfs[1] as string[]);
    await this.#mount(hostPath, ["-o", options.readOnly ? "loop,ro" : "loop", image]);
    return image;
  }

  /** Mounts the whole host root on its own filesystem, as a node's "/" is. */
  async mountRootLoop(fstype: LoopFs, options: LoopOptions): Promise<void> {
    await this.mountLoop("/", fstype, options);
  }

  async #mount(hostPath: string, args: string[]): Promise<void> {
    const target = this.local(hostPath);
    await mkdir(target, { recursive: true });
    await execa("mount", [...args, target]);
    this.#mounts.push(target);
  }

  /** Sets a path's SELinux label (not following a symlink), as libselinux writes it. */
  label(hostPath: string, label: string, options: { nul?: boolean } = {}): void {
    setSelinuxLabel(this.local(hostPath), label, options);
  }

  async remountReadOnly(hostPath: string): Promise<void> {
    await execa("mount", ["-o", "remount,ro", this.local(hostPath)]);
  }

  /** Leaves about `leaveBytes` available on the filesystem holding hostPath. */
  async fill(hostPath: string, leaveBytes: number): Promise<void> {
    const fs = await statfs(this.local(hostPath));
    const fill = fs.bavail * fs.bsize - leaveBytes;
    if (fill > 0) await execa("fallocate", ["-l", String(fill), path.join(this.local(hostPath), ".fill")]);
  }

  /** Creates empty files until about `leave` inodes remain free. */
  async exhaustInodes(hostPath: string, leave: number): Promise<void> {
    const dir = path.join(this.local(hostPath), ".inodes");
    await mkdir(dir, { recursive: true });
    const count = (await statfs(dir)).ffree - leave;
    for (let i = 0; i < count; i += 1) await writeFile(path.join(dir, String(i)), "");
  }

  /** Runs `fn` at cleanup, before the mounts go (servers and processes started for this tree). */
  onCleanup(fn: () => Promise<void>): void {
    this.#cleanups.push(fn);
  }

  async cleanup(): Promise<void> {
    for (const fn of this.#cleanups.reverse()) await fn();
    this.#cleanups = [];
    for (const target of this.#mounts.reverse()) {
      await execa("umount", ["-l", target], { reject: false });
    }
    this.#mounts = [];
    await rm(this.scratch, { recursive: true, force: true });
  }
}

type Lsetxattr = (path: string | Buffer, name: string, value: Buffer, size: number, flags: number) => number;
let lsetxattr: { call: Lsetxattr; errno: () => number } | undefined;

/**
 * Sets `security.selinux` with lsetxattr through koffi (no process per file, so trees of
 * 200,000 files can be labelled). libselinux writes the label with a trailing NUL
 * (setfilecon: strlen + 1); `nul: false` writes it as `setfattr -v` does, without one.
 * Works as root on a kernel without SELinux too (tmpfs, ext4, xfs keep security.* xattrs).
 */
export function setSelinuxLabel(
  localPath: string | Buffer,
  label: string,
  options: { nul?: boolean } = {},
): void {
  if (!lsetxattr) {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
    const call = koffi
      .load("libc.so.6")
      .func(
        "int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)",
      ) as unknown as Lsetxattr;
    lsetxattr = { call, errno: () => koffi.errno() };
  }
  const value = Buffer.from(options.nul === false ? label : `${label}\0`, "latin1");
  const path = typeof localPath === "string" ? localPath : Buffer.concat([localPath, Buffer.from([0])]);
  if (lsetxattr.call(path, "security.selinux", value, value.length, 0) !== 0) {
    const errno = lsetxattr.errno();
    throw new Error(`lsetxattr security.selinux ${String(localPath)}: errno ${errno}`);
  }
}
