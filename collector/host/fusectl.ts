import { mkdtemp, readdir, readFile, realpath, rmdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { runCommand } from "./exec.js";
import { parseMountinfo } from "./mountinfo.js";

/** Where systemd (sys-fs-fuse-connections.mount) mounts the FUSE control filesystem. */
export const FUSECTL_DIR = "/sys/fs/fuse/connections";

/**
 * The kernel's side of one FUSE connection, from the fusectl filesystem: how many requests are
 * waiting for the server (queued or being served), and its background-request limits.
 */
export interface FuseConnection {
  /** Requests allocated and not yet answered: > 0 for long on an idle node means a stuck server. */
  waiting: number | null;
  /** Limit of background (asynchronous: readahead, writeback) requests in flight. */
  maxBackground: number | null;
  /** Background requests above which the connection counts as congested. */
  congestionThreshold: number | null;
  /**
   * "mounted": read from a fusectl mount that was there; "temporary mount": fusectl was not
   * mounted, so it was mounted on a private temporary directory, read and unmounted;
   * "unavailable": not read (see error).
   */
  source: "mounted" | "temporary mount" | "unavailable";
  error?: string;
}

export interface FuseConnectionOptions {
  /** Where /proc is; its self/mountinfo tells whether and where fusectl is mounted (default /proc). */
  procRoot?: string;
  /** The usual fusectl directory, checked when mountinfo cannot be read (default /sys/fs/fuse/connections). */
  connectionsDir?: string;
  /** Mount fusectl on a temporary directory when it is not mounted and we are root (default true). */
  temporaryMount?: boolean;
  /** Deadline for each of mount and umount (default 5000 ms). */
  commandTimeoutMs?: number;
}

/** "0:45" -> 45: the connection's directory name is its device number, which for major 0 is the minor. */
function connectionName(device: string): string | { error: string } {
  const match = /^(\d+):(\d+)$/.exec(device);
  if (!match) return { error: `"${device}" is not a major:minor device number` };
  if (match[1] !== "0") return { error: `${device} is not a FUSE connection (FUSE mounts have major 0)` };
  return String(Number(match[2]));
}

/** Where fusectl is mounted in our mount namespace; null when it is not, undefined when we cannot tell. */
async function fusectlMountPoint(procRoot: string): Promise<string | null | undefined> {
  try {
    const { entries } = parseMountinfo(await readFile(path.join(procRoot, "self/mountinfo"), "utf8"));
    const mounts = entries.filter((e) => e.fstype === "fusectl");
    return (mounts.find((e) => e.mountPoint === FUSECTL_DIR) ?? mounts[0])?.mountPoint ?? null;
  } catch {
    return undefined;
  }
}

async function readCounter(dir: string, name: string): Promise<number> {
  const text = (await readFile(path.join(dir, name), "utf8")).trim();
  if (!/^\d+$/.test(text)) throw new Error(`${path.join(dir, name)}: not a number: "${text.slice(0, 40)}"`);
  return Number(text);
}

/** Reads one connection's files. fusectl's files are answered by the kernel, never by the FUSE server. */
async function readConnection(
  controlDir: string,
  name: string,
  source: "mounted" | "temporary mount",
): Promise<FuseConnection> {
  const dir = path.join(controlDir, name);
  try {
    const [waiting, maxBackground, congestionThreshold] = await Promise.all([
      readCounter(dir, "waiting"),
      readCounter(dir, "max_background"),
      readCounter(dir, "congestion_threshold"),
    ]);
    return { waiting, maxBackground, congestionThreshold, source };
  } catch (error) {
    const code = (error as { code?: string }).code;
    const message =
      code === "ENOENT"
        ? `no FUSE connection ${name} in ${controlDir} (the mount is gone, or belongs to another user namespace)`
        : (error as Error).message;
    return unavailable(message, source);
  }
}

function unavailable(error: string, source: FuseConnection["source"] = "unavailable"): FuseConnection {
  return { waiting: null, maxBackground: null, congestionThreshold: null, source, error };
}

/**
 * The fusectl counters of the FUSE connection behind a mount (`device`: mountinfo's "major:minor").
 * When fusectl is not mounted and we run as root, it is mounted on a private temporary directory
 * (`mount -t fusectl fusectl <tmpdir>`), read, and always unmounted and the directory removed;
 * nothing is ever mounted over /sys.
 */
export async function readFuseConnection(
  device: string,
  options: FuseConnectionOptions = {},
): Promise<FuseConnection> {
  const name = connectionName(device);
  if (typeof name !== "string") return unavailable(name.error);
  const connectionsDir = options.connectionsDir ?? FUSECTL_DIR;
  let mountedAt = await fusectlMountPoint(options.procRoot ?? "/proc");
  if (mountedAt === undefined) {
    const listed = await readdir(connectionsDir).catch(() => []);
    mountedAt = listed.length > 0 ? connectionsDir : null;
  }
  if (mountedAt !== null) return readConnection(mountedAt, name, "mounted");
  if (options.temporaryMount === false) return unavailable("fusectl is not mounted");
  if (process.getuid?.() !== 0) return unavailable("fusectl is not mounted, and mounting it needs root");
  return withTemporaryFusectl(options.commandTimeoutMs ?? 5000, (dir) =>
    readConnection(dir, name, "temporary mount"),
  );
}

/**
 * Mounts fusectl on a fresh directory under the temporary directory, runs `read`, then unmounts
 * (lazily if a plain umount fails) and removes the directory, whatever happened. rmdir, never a
 * recursive removal: should the unmount have failed, rmdir fails on the mount point (EBUSY) and
 * nothing below it is touched. A failure to clean up is added to the result's error.
 */
async function withTemporaryFusectl(
  timeoutMs: number,
  read: (dir: string) => Promise<FuseConnection>,
): Promise<FuseConnection> {
  let dir: string;
  try {
    // The real path: it is what mountinfo shows, and what we check is not below /sys or /proc.
    dir = await realpath(await mkdtemp(path.join(os.tmpdir(), "imagefs-fusectl-")));
  } catch (error) {
    return unavailable(`cannot create a directory to mount fusectl on: ${(error as Error).message}`);
  }
  if (["/sys", "/proc"].some((top) => dir === top || dir.startsWith(`${top}/`))) {
    await rmdir(dir).catch(() => undefined);
    return unavailable(
      `refusing to mount fusectl on ${dir}: the temporary directory is inside ${dir.split("/")[1]}`,
    );
  }
  let result = unavailable("fusectl was not read");
  let mounted = false;
  const problems: string[] = [];
  try {
    const mount = await runCommand("mount", ["-t", "fusectl", "fusectl", dir], { timeoutMs });
    // A mount that timed out may still have happened: unmount in any case but "missing".
    mounted = mount.outcome !== "missing";
    if (mount.outcome === "ok") result = await read(dir);
    else {
      const why =
        mount.outcome === "timeout"
          ? `no answer within ${mount.afterMs} ms`
          : (mount.outcome === "failed" && mount.stderr.trim().split("\n")[0]) || mount.message;
      result = unavailable(`fusectl is not mounted, and mounting it failed: ${why}`);
    }
  } finally {
    if (mounted && (await mountedAt(dir))) {
      const umount = await runCommand("umount", [dir], { timeoutMs });
      if (umount.outcome !== "ok" && (await mountedAt(dir))) {
        await runCommand("umount", ["-l", dir], { timeoutMs });
        if (await mountedAt(dir)) problems.push(`could not unmount the temporary fusectl mount at ${dir}`);
      }
    }
    await rmdir(dir).catch((error: Error) => problems.push(`could not remove ${dir}: ${error.message}`));
  }
  if (problems.length === 0) return result;
  return { ...result, error: [result.error, ...problems].filter(Boolean).join("; ") };
}

/** Whether anything is mounted at `dir` in our mount namespace (true when we cannot tell). */
async function mountedAt(dir: string): Promise<boolean> {
  try {
    const { entries } = parseMountinfo(await readFile("/proc/self/mountinfo", "utf8"));
    return entries.some((e) => e.mountPoint === dir);
  } catch {
    return true;
  }
}
