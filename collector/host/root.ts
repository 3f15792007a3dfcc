import { lstatSync, readlinkSync } from "node:fs";
import { lstat, readlink } from "node:fs/promises";
import path from "node:path";

/** Linux gives up after 40 symlinks in one lookup (MAXSYMLINKS); so do we. */
const MAX_SYMLINKS = 40;

export interface ResolvedPath {
  /** The path as the host sees it after following symlinks, e.g. /run/crio/crio.sock. */
  host: string;
  /** Where that path is on this machine: the host path joined under the host root. */
  local: string;
}

/**
 * The host's filesystem as seen from here: the node itself (root "/"), a container with the
 * host mounted at /host, or a test's temporary tree. Every path a source reads is a host path
 * and goes through this object, so an absolute symlink such as /var/run -> /run resolves inside
 * the host tree and never escapes into the tool's own container.
 */
type PathEntry = { kind: "missing" } | { kind: "link"; target: string } | { kind: "other" };

export class HostRoot {
  readonly root: string;
  /**
   * What each path component turned out to be. One collection resolves the same prefixes
   * (/var, /var/lib, ...) hundreds of times; a HostRoot lives for one collection, so caching is safe.
   */
  #entries = new Map<string, Promise<PathEntry>>();

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  get isSystemRoot(): boolean {
    return this.root === "/";
  }

  /** Joins a host path under the root without touching the filesystem. */
  local(hostPath: string): string {
    const normal = normalizeHostPath(hostPath);
    return this.isSystemRoot ? normal : path.join(this.root, normal);
  }

  /** Turns a path on this machine back into a host path, or undefined when it is outside the root. */
  toHost(localPath: string): string | undefined {
    if (this.isSystemRoot) return localPath;
    if (localPath === this.root) return "/";
    if (localPath.startsWith(`${this.root}/`)) return localPath.slice(this.root.length);
    return undefined;
  }

  /**
   * Follows symlinks component by component as if the host root were "/" (like chroot or
   * openat2's RESOLVE_IN_ROOT). `..` never climbs above the root. A missing component ends the
   * walk: the rest of the path is kept as written, so callers can still report where it points.
   * Throws an ELOOP error after 40 links, as the kernel does. `stopAt` ends the walk before a
   * component is touched (one on a filesystem that may hang); the rest is kept as written. A
   * caller that gives stopAt vouches for the components it lets through: they are looked up on
   * this thread (Host.stopAtRisky gives none when it cannot tell).
   */
  async resolve(hostPath: string, stopAt?: (hostPath: string) => boolean): Promise<ResolvedPath> {
    const pending = splitComponents(normalizeHostPath(hostPath));
    const done: string[] = [];
    let links = 0;
    while (pending.length > 0) {
      const name = pending.shift()!;
      if (name === "..") {
        done.pop();
        continue;
      }
      const candidate = done.length === 0 ? `/${name}` : `/${done.join("/")}/${name}`;
      if (stopAt?.(candidate)) {
        done.push(name, ...pending);
        break;
      }
      // A component stopAt let through is on no FUSE or network mount: looked up synchronously.
      const entry = await this.#lookup(candidate, stopAt !== undefined);
      if (entry.kind === "missing") {
        done.push(name, ...pending);
        break;
      }
      const target = entry.kind === "link" ? entry.target : undefined;
      if (target === undefined) {
        done.push(name);
        continue;
      }
      links += 1;
      if (links > MAX_SYMLINKS) {
        throw Object.assign(new Error(`ELOOP: too many levels of symbolic links, resolving ${hostPath}`), {
          code: "ELOOP",
        });
      }
      if (target.startsWith("/")) done.length = 0;
      pending.unshift(...splitComponents(target));
    }
    const host = `/${done.join("/")}`;
    return { host, local: this.local(host) };
  }

  #lookup(hostPath: string, vouched: boolean): Promise<PathEntry> {
    let entry = this.#entries.get(hostPath);
    if (!entry) {
      entry = vouched ? this.#lstatNow(hostPath) : this.#lstat(hostPath);
      this.#entries.set(hostPath, entry);
      // A failure other than "missing" is not remembered: the next lookup tries again.
      entry.catch(() => this.#entries.delete(hostPath));
    }
    return entry;
  }

  /**
   * lstat(2) on this thread, for a path on a local filesystem (the caller's stopAt ruled out FUSE
   * and network mounts, as the label reads of selinux/xattr.ts do): it takes a microsecond there,
   * while a promise through libuv's thread pool costs several of this thread's. A collection
   * resolves some hundred components per store.
   */
  async #lstatNow(hostPath: string): Promise<PathEntry> {
    const local = this.local(hostPath);
    try {
      const info = lstatSync(local, { throwIfNoEntry: false });
      if (info === undefined) return { kind: "missing" };
      return info.isSymbolicLink() ? { kind: "link", target: readlinkSync(local) } : { kind: "other" };
    } catch (error) {
      return missingOrThrow(error);
    }
  }

  async #lstat(hostPath: string): Promise<PathEntry> {
    const local = this.local(hostPath);
    try {
      const info = await lstat(local);
      return info.isSymbolicLink() ? { kind: "link", target: await readlink(local) } : { kind: "other" };
    } catch (error) {
      return missingOrThrow(error);
    }
  }
}

/** A component that is not there (or under a file) ends the walk; any other error is the caller's. */
function missingOrThrow(error: unknown): PathEntry {
  if (isErrno(error, "ENOENT") || isErrno(error, "ENOTDIR")) return { kind: "missing" };
  throw error;
}

export function normalizeHostPath(hostPath: string): string {
  return path.posix.normalize(`/${hostPath}`);
}

function splitComponents(p: string): string[] {
  return p.split("/").filter((part) => part !== "" && part !== ".");
}

export function isErrno(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === code;
}

/** The errno name of an fs error ("ENOENT", ...), "EUNKNOWN" for anything without one. */
export function errnoCode(error: unknown): string {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : "EUNKNOWN";
}

/** A one-line message for an fs error, without the stack. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
