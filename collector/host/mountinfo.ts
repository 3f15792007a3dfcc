import { readFile } from "node:fs/promises";
import path from "node:path";

export interface MountEntry {
  mountId: number;
  parentId: number;
  /** "major:minor" of the filesystem, the key that joins mountinfo to stat().dev. */
  device: string;
  /** The path inside the filesystem that is mounted here ("/" unless a bind mount or subvolume). */
  root: string;
  /** The mount point as the reading process sees it (may carry a container prefix). */
  mountPoint: string;
  options: string[];
  fstype: string;
  source: string;
  superOptions: string[];
}

export interface MountTable {
  entries: MountEntry[];
  /** Which file the table was read from, e.g. /proc/1/mountinfo. */
  from: string;
  /** Lines that did not parse, kept so a damaged table is visible rather than silently short. */
  malformedLines: number;
}

/** mountinfo and fstab escape space, tab, newline and backslash as three octal digits. */
export function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

export function parseMountinfo(text: string): { entries: MountEntry[]; malformedLines: number } {
  const entries: MountEntry[] = [];
  let malformedLines = 0;
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const entry = parseMountinfoLine(line);
    if (entry) entries.push(entry);
    else malformedLines += 1;
  }
  return { entries, malformedLines };
}

// Format (proc(5)): id parent major:minor root mountpoint options [optional...] - fstype source superoptions
function parseMountinfoLine(line: string): MountEntry | undefined {
  const fields = line.split(" ");
  const separator = fields.indexOf("-", 6);
  if (separator < 0 || fields.length < separator + 3) return undefined;
  const [id, parent, device, root, mountPoint, options] = fields;
  if (!id || !parent || !device || !root || !mountPoint || !options) return undefined;
  if (!/^\d+:\d+$/.test(device)) return undefined;
  return {
    mountId: Number(id),
    parentId: Number(parent),
    device,
    root: unescapeOctal(root),
    mountPoint: unescapeOctal(mountPoint),
    options: options.split(","),
    fstype: fields[separator + 1]!,
    source: unescapeOctal(fields[separator + 2]!),
    superOptions: (fields[separator + 3] ?? "").split(",").filter(Boolean),
  };
}

/**
 * Reads the host's mount table: /proc/1/mountinfo shows init's mount namespace (the host's, when
 * the tool runs with hostPID); /proc/self/mountinfo is the fallback when PID 1 is not readable.
 */
export async function readMountTable(procRoot: string): Promise<MountTable> {
  const candidates = [path.join(procRoot, "1/mountinfo"), path.join(procRoot, "self/mountinfo")];
  let lastError: unknown;
  for (const file of candidates) {
    try {
      const { entries, malformedLines } = parseMountinfo(await readFile(file, "utf8"));
      if (entries.length > 0) return { entries, from: file, malformedLines };
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError ?? new Error(`no readable mountinfo under ${procRoot}`);
}

/** True when `child` is `parent` or lies below it, comparing whole path components. */
export function isWithin(child: string, parent: string): boolean {
  if (parent === "/") return child.startsWith("/");
  return child === parent || child.startsWith(`${parent}/`);
}

/**
 * The mount that holds a path. Identity is the device: only mounts of the same major:minor are
 * candidates (several, for bind mounts), and among them the one whose mount point is the longest
 * prefix of the path wins. Path prefixes alone decide only when no mount has that device (btrfs
 * subvolumes report anonymous devices to stat()).
 */
export function findMount(
  table: MountTable,
  device: string | undefined,
  pathsSeenAs: string[],
): MountEntry | undefined {
  const sameDevice = device ? table.entries.filter((entry) => entry.device === device) : [];
  const pool = sameDevice.length > 0 ? sameDevice : table.entries;
  const byPrefix = longestPrefixMount(pool, pathsSeenAs);
  if (byPrefix) return byPrefix;
  return sameDevice.find((entry) => entry.root === "/") ?? sameDevice[0];
}

/** The innermost mount whose mount point contains one of the paths; the last one mounted wins ties. */
export function longestPrefixMount(entries: MountEntry[], pathsSeenAs: string[]): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const entry of entries) {
    if (!pathsSeenAs.some((p) => isWithin(p, entry.mountPoint))) continue;
    if (!best || entry.mountPoint.length >= best.mountPoint.length) best = entry;
  }
  return best;
}

export function isReadOnly(entry: MountEntry): boolean {
  return entry.options.includes("ro") || entry.superOptions.includes("ro");
}

/** Filesystems where a stat can block for as long as a server does not answer. */
export function mayHang(fstype: string): boolean {
  return /^(fuse(\..*)?|fuseblk|nfs4?|cifs|smb3|ceph|glusterfs|9p|afs|davfs|sshfs)$/.test(fstype);
}

/**
 * A `key=value` mount option, quotes stripped. mountinfo's options were split on commas, and an
 * SELinux context with categories has commas inside its quotes (context="...:s0:c1,c2"): the
 * pieces are joined again up to the closing quote.
 */
export function mountOption(options: string[], key: string): string | null {
  const at = options.findIndex((option) => option.startsWith(`${key}=`));
  if (at < 0) return null;
  let value = options[at]!.slice(key.length + 1);
  for (const quote of ['"', "'"]) {
    if (!value.startsWith(quote)) continue;
    for (let i = at + 1; !(value.length > 1 && value.endsWith(quote)) && i < options.length; i++) {
      value += `,${options[i]}`;
    }
    value = value.slice(1, value.endsWith(quote) && value.length > 1 ? -1 : undefined);
  }
  return value;
}

/**
 * The SELinux label a mount gives all its files (context=), from its per-mount and superblock
 * options together: mountinfo lists context= among the superblock options.
 */
export function mountContext(mount: Pick<MountEntry, "options" | "superOptions">): string | null {
  return mountOption([...mount.options, ...mount.superOptions], "context");
}
