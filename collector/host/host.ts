import { statSync } from "node:fs";
import {
  type BoundedText,
  DEFAULT_MAX_FILE_BYTES,
  decodeUtf8,
  readBoundedText,
  readBoundedTextNow,
} from "./files.js";
import { type FsUsage, readFileGuarded, statPath, statPathGuarded } from "./fsstat.js";
import {
  findMount,
  isReadOnly,
  isWithin,
  longestPrefixMount,
  type MountEntry,
  type MountTable,
  mayHang,
  readMountTable,
} from "./mountinfo.js";
import { listProcesses, type ProcessInfo } from "./proc.js";
import { describeError, HostRoot, type ResolvedPath } from "./root.js";

/**
 * Files up to this size on a local filesystem are read on this thread (a config file, a small
 * layers.json): cheaper than a promise per open, stat, read and close. A larger one (images.json
 * of many MiB, must-gather's copies) is read asynchronously, so a cold read does not block the
 * event loop and deadlines can still fire.
 */
export const SYNC_READ_MAX_BYTES = 1024 * 1024;

export interface MountFact {
  /** Host path of the mount point (mountinfo paths outside the host root are kept as read). */
  mountPoint: string;
  fstype: string;
  source: string;
  readOnly: boolean;
  options: string[];
  /** The filesystem's own options (mountinfo's last field), e.g. context=..., seclabel. */
  superOptions: string[];
}

export type PathInspection =
  | {
      status: "ok";
      /** Host path after following symlinks. */
      resolved: string;
      device: string;
      isDirectory: boolean;
      /** True when the path itself is the mount point of its filesystem. */
      isMountPoint: boolean;
      mount: MountFact | null;
      usage: FsUsage;
    }
  | { status: "missing"; resolved: string; error: string }
  | { status: "error"; error: string; code?: string }
  | { status: "unresponsive"; mount: MountFact; error: string };

/** Where a path lies: resolved as far as is safe, and the FUSE/network mount it is on, if any. */
interface Placed {
  resolved: ResolvedPath;
  risky?: MountEntry;
  table?: MountTable;
}

export interface HostOptions {
  root: string;
  /** Where the host's /proc is; it is never taken from under the host root in a container. */
  procRoot?: string;
  /** Deadline for a stat that runs in a child process because its filesystem may hang. */
  guardedStatMs?: number;
}

/** The host model: paths under the host root, its mount table and processes, safe stat. */
export class Host {
  readonly root: HostRoot;
  readonly procRoot: string;
  readonly guardedStatMs: number;
  #mounts?: Promise<MountTable>;
  #processes?: Promise<ProcessInfo[]>;
  #risky?: { table: MountTable; entries: MountEntry[] };
  /**
   * Mounts that already gave no answer in this collection, with what was said: a later guarded
   * operation on them answers at once instead of waiting another deadline.
   */
  #silent = new Map<number, string>();
  #inspections = new Map<string, Promise<PathInspection>>();
  #shared = new Map<string, Promise<unknown>>();

  constructor(options: HostOptions) {
    this.root = new HostRoot(options.root);
    this.procRoot = options.procRoot ?? "/proc";
    this.guardedStatMs = options.guardedStatMs ?? 2000;
  }

  mounts(): Promise<MountTable> {
    this.#mounts ??= readMountTable(this.procRoot);
    return this.#mounts;
  }

  processes(): Promise<ProcessInfo[]> {
    this.#processes ??= listProcesses(this.procRoot);
    return this.#processes;
  }

  /**
   * Reads a host file (following symlinks inside the host root), bounded in size. A file on a
   * FUSE or network filesystem (images.json in an additional image store) is read, like
   * inspectPath's stat, from a child process with a deadline; the error then carries a code.
   */
  async readText(hostPath: string, maxBytes = DEFAULT_MAX_FILE_BYTES): Promise<BoundedText> {
    const { resolved, risky, table } = await this.#place(hostPath);
    if (risky) return this.#readGuarded(resolved, risky, maxBytes);
    // On a local filesystem (the mount table says so) a small file is read on this thread.
    if (table && Math.min(localFileSize(resolved.local), maxBytes) <= SYNC_READ_MAX_BYTES)
      return readBoundedTextNow(resolved.local, maxBytes);
    return readBoundedText(resolved.local, maxBytes);
  }

  /**
   * Resolves a host path without ever touching a FUSE or network filesystem in this process:
   * the walk stops at the first component on such a mount (reached directly or through a
   * symlink), and `risky` names that mount so the caller goes through a child process.
   */
  async #place(hostPath: string): Promise<Placed> {
    const table = await this.mounts().catch(() => undefined); // without a table we still report device and usage
    const resolved = await this.root.resolve(hostPath, this.stopAtRisky(table));
    return { resolved, risky: this.riskyMount(table, resolved.host), table };
  }

  async #readGuarded(resolved: ResolvedPath, mount: MountEntry, maxBytes: number): Promise<BoundedText> {
    const silent = this.#silent.get(mount.mountId);
    if (silent) throw Object.assign(new Error(silent), { code: "ETIMEDOUT" });
    const read = await readFileGuarded(resolved.local, maxBytes, this.guardedStatMs);
    if (read.outcome === "timeout") {
      const message = `no answer from ${mount.fstype} filesystem within ${read.afterMs} ms (reading ${resolved.host})`;
      this.#silent.set(mount.mountId, message);
      throw Object.assign(new Error(message), { code: "ETIMEDOUT" });
    }
    if (read.outcome === "error") {
      throw Object.assign(new Error(this.#probeMessage(read.code, read.message, mount)), { code: read.code });
    }
    return decodeUtf8(read.data.subarray(0, maxBytes), read.data.length > maxBytes);
  }

  /**
   * Node words ENOTCONN as "socket is not connected"; on a FUSE mount it is the kernel's
   * "Transport endpoint is not connected": the server died and left its mount behind.
   */
  #probeMessage(code: string, message: string, mount: MountEntry): string {
    if (code !== "ENOTCONN") return message;
    const at = this.toMountFact(mount).mountPoint;
    return `${message} (Transport endpoint is not connected: the ${mount.fstype} server of ${at} is gone, its mount is dead)`;
  }

  toMountFact(entry: MountEntry): MountFact {
    return {
      mountPoint: this.root.toHost(entry.mountPoint) ?? entry.mountPoint,
      fstype: entry.fstype,
      source: entry.source,
      readOnly: isReadOnly(entry),
      options: entry.options,
      superOptions: entry.superOptions,
    };
  }

  /** Whether a host path exists (symlinks followed), found without hanging on a FUSE or network mount. */
  async exists(hostPath: string): Promise<boolean> {
    return (await this.inspectPath(hostPath)).status === "ok";
  }

  /**
   * One result per key for this collection, for work several sources need (a layers.json of
   * 5,000 records is read and parsed once, not once per source). Callers must not mutate it.
   */
  shared<T>(key: string, compute: () => Promise<T>): Promise<T> {
    let result = this.#shared.get(key) as Promise<T> | undefined;
    if (!result) {
      result = compute();
      this.#shared.set(key, result);
    }
    return result;
  }

  /**
   * Where a host path lives: its device, mount, and usage. A path on a FUSE or network
   * filesystem is only ever touched from a child process with a deadline.
   */
  inspectPath(hostPath: string): Promise<PathInspection> {
    // Several sources ask about the same store paths; within one collection the answer stands.
    let inspection = this.#inspections.get(hostPath);
    if (!inspection) {
      inspection = this.#inspect(hostPath);
      this.#inspections.set(hostPath, inspection);
    }
    return inspection;
  }

  async #inspect(hostPath: string): Promise<PathInspection> {
    let placed: Placed;
    try {
      placed = await this.#place(hostPath);
    } catch (error) {
      return { status: "error", error: describeError(error), code: (error as { code?: string }).code };
    }
    const { resolved, risky, table } = placed;
    if (risky) return this.#inspectGuarded(resolved.host, resolved.local, risky);
    try {
      const info = await statPath(resolved.local);
      return this.#located(table, resolved, info.device, info.isDirectory, info.usage);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ENOENT" || code === "ENOTDIR") {
        return { status: "missing", resolved: resolved.host, error: describeError(error) };
      }
      return { status: "error", error: describeError(error), code };
    }
  }

  /**
   * HostRoot.resolve's stopAt for a walk that must not touch a FUSE or network mount: it vouches
   * for every component it lets through (resolve then looks them up synchronously), so without a
   * mount table there is none, and the walk stays asynchronous.
   */
  stopAtRisky(table: MountTable | undefined): ((hostPath: string) => boolean) | undefined {
    return table && ((hostPath) => this.riskyMount(table, hostPath) !== undefined);
  }

  /** The FUSE/network mount holding a path, if the innermost mount holding it is one. */
  riskyMount(table: MountTable | undefined, hostPath: string): MountEntry | undefined {
    if (!table) return undefined;
    // Asked for every component of every path: first rule out, cheaply, paths no risky mount holds.
    const risky = this.#riskyEntries(table);
    if (risky.length === 0) return undefined;
    const seenAs = this.seenAs(hostPath);
    if (!risky.some((entry) => seenAs.some((p) => isWithin(p, entry.mountPoint)))) return undefined;
    const mount = longestPrefixMount(table.entries, seenAs);
    return mount && mayHang(mount.fstype) ? mount : undefined;
  }

  #riskyEntries(table: MountTable): MountEntry[] {
    if (this.#risky?.table !== table)
      this.#risky = { table, entries: table.entries.filter((e) => mayHang(e.fstype)) };
    return this.#risky.entries;
  }

  /** A host path as mountinfo may name it: under the host root (when not "/") and as is. */
  seenAs(hostPath: string): string[] {
    const local = this.root.local(hostPath);
    return local === hostPath ? [hostPath] : [local, hostPath];
  }

  async #inspectGuarded(hostPath: string, localPath: string, mount: MountEntry): Promise<PathInspection> {
    const silent = this.#silent.get(mount.mountId);
    if (silent) return { status: "unresponsive", mount: this.toMountFact(mount), error: silent };
    const probe = await statPathGuarded(localPath, this.guardedStatMs);
    if (probe.outcome === "timeout") {
      const error = `no answer from ${mount.fstype} filesystem within ${probe.afterMs} ms (stat of ${hostPath})`;
      this.#silent.set(mount.mountId, error);
      return { status: "unresponsive", mount: this.toMountFact(mount), error };
    }
    if (probe.outcome === "error") {
      if (probe.code === "ENOENT" || probe.code === "ENOTDIR") {
        return { status: "missing", resolved: hostPath, error: probe.message };
      }
      return {
        status: "error",
        error: this.#probeMessage(probe.code, probe.message, mount),
        code: probe.code,
      };
    }
    const { stat } = probe;
    return this.#located(
      await this.mounts(),
      { host: hostPath, local: localPath },
      stat.device,
      stat.isDirectory,
      stat.usage,
    );
  }

  #located(
    table: MountTable | undefined,
    resolved: { host: string; local: string },
    device: string,
    isDirectory: boolean,
    usage: FsUsage,
  ): PathInspection {
    const seenAs = this.seenAs(resolved.host);
    const entry = table ? findMount(table, device, seenAs) : undefined;
    return {
      status: "ok",
      resolved: resolved.host,
      device,
      isDirectory,
      isMountPoint: entry !== undefined && seenAs.includes(entry.mountPoint),
      mount: entry ? this.toMountFact(entry) : null,
      usage,
    };
  }
}

/**
 * The size of a regular local file, or Infinity when it is none (missing, a FIFO, a directory):
 * those go the asynchronous way, which opens without blocking and reports what is wrong.
 */
function localFileSize(localPath: string): number {
  try {
    const info = statSync(localPath, { throwIfNoEntry: false });
    return info?.isFile() ? info.size : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
