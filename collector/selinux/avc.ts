/**
 * AVC records, as auditd writes them to audit.log, as journald stores them (_TRANSPORT=audit,
 * MESSAGE "AVC avc:  denied ..."), and as the kernel prints them without auditd
 * ("audit: type=1400 audit(...): avc:  denied ..."). The kernel pads with double spaces, and
 * prints untrusted strings (comm, path, name, dev) quoted, or as unquoted upper-case hex when they
 * contain a space, a quote or a byte outside 0x21..0x7e (kernel/audit.c).
 */
export interface AvcRecord {
  /** ISO time from audit(<seconds>.<millis>:<serial>), when the record carries it. */
  time: string | null;
  serial: number | null;
  /** The node= prefix of records forwarded by audisp. */
  node: string | null;
  denied: boolean;
  permissions: string[];
  pid: number | null;
  comm: string | null;
  path: string | null;
  name: string | null;
  /** The filesystem's s_id, e.g. "vdb", "dm-3", "loop1": with ino it names the file on the host. */
  dev: string | null;
  ino: number | null;
  scontext: string;
  tcontext: string;
  tclass: string;
  permissive: boolean | null;
}

const UNTRUSTED = new Set(["comm", "path", "name", "dev", "exe", "cwd"]);

function decodeValue(key: string, raw: string): string {
  if (raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2) return raw.slice(1, -1);
  if (UNTRUSTED.has(key) && /^(?:[0-9A-F]{2})+$/.test(raw)) return Buffer.from(raw, "hex").toString("utf8");
  return raw;
}

/** key=value pairs; values are a quoted string or a run of non-space characters. */
function fields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const match of text.matchAll(/([A-Za-z_][\w-]*)=("[^"]*"|\S+)/g)) {
    const [, key, raw] = match;
    if (!out.has(key!)) out.set(key!, decodeValue(key!, raw!));
  }
  return out;
}

function integer(value: string | undefined): number | null {
  if (value === undefined || !/^\d+$/.test(value)) return null;
  return Number(value);
}

/** Parses one line or MESSAGE holding an AVC record; anything else gives undefined. */
export function parseAvc(line: string): AvcRecord | undefined {
  // ENRICHED log_format appends interpreted fields after a 0x1D separator.
  const raw = line.split("\x1d")[0]!;
  const avc = /avc:\s+(denied|granted)\s+\{([^}]*)\}\s+for\s+(.*)$/.exec(raw);
  if (!avc) return undefined;
  const [, result, permissions, rest] = avc;
  const values = fields(rest!);
  const scontext = values.get("scontext");
  const tcontext = values.get("tcontext");
  const tclass = values.get("tclass");
  if (!scontext || !tcontext || !tclass) return undefined;
  const stamp = /audit\((\d+)\.(\d+):(\d+)\)/.exec(raw);
  const node = /^node=(\S+)\s/.exec(raw)?.[1] ?? null;
  const permissive = values.get("permissive");
  return {
    time: stamp ? new Date(Number(stamp[1]) * 1000 + Number(stamp[2])).toISOString() : null,
    serial: stamp ? Number(stamp[3]) : null,
    node,
    denied: result === "denied",
    permissions: permissions!.trim().split(/\s+/).filter(Boolean),
    pid: integer(values.get("pid")),
    comm: values.get("comm") ?? null,
    path: values.get("path") ?? null,
    name: values.get("name") ?? null,
    dev: values.get("dev") ?? null,
    ino: integer(values.get("ino")),
    scontext,
    tcontext,
    tclass,
    permissive: permissive === undefined ? null : permissive === "1",
  };
}

/** The type field of a context (user:role:type:level). */
export function contextType(context: string): string {
  return context.split(":")[2] ?? "";
}

/** Domains container processes run in (container-selinux), and the old name of container_t. */
export function isContainerDomain(context: string): boolean {
  const type = contextType(context);
  return /^container(_[a-z]+)*_t$/.test(type) || type === "svirt_lxc_net_t" || type === "svirt_sandbox_t";
}

const FILE_CLASSES = new Set(["file", "dir", "lnk_file", "chr_file", "blk_file", "sock_file", "fifo_file"]);

/**
 * Types a file in an image store ends up with when its labels did not follow it: never labelled
 * (unlabeled_t, file_t), labelled for the wrong place (default_t, var_lib_t, var_t, mnt_t,
 * home types), on a filesystem without labels (nfs_t, fusefs_t, cifs_t, dosfs_t), or left as the
 * store directory's own type (container_var_lib_t) where container_ro_file_t belongs.
 */
const STORE_MISLABEL_TYPES = new Set([
  "unlabeled_t",
  "file_t",
  "default_t",
  "var_lib_t",
  "var_t",
  "mnt_t",
  "tmp_t",
  "home_root_t",
  "user_home_t",
  "user_home_dir_t",
  "data_home_t",
  "nfs_t",
  "fusefs_t",
  "cifs_t",
  "dosfs_t",
  "container_var_lib_t",
]);

/** A denial of a container process on a file whose type points at an image store's labels. */
export function isStorageDenial(record: AvcRecord): boolean {
  return (
    record.denied &&
    isContainerDomain(record.scontext) &&
    FILE_CLASSES.has(record.tclass) &&
    STORE_MISLABEL_TYPES.has(contextType(record.tcontext))
  );
}
