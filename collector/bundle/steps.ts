import { access, constants, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { readTailBytes } from "../host/files.js";
import { readFuseConnection } from "../host/fusectl.js";
import type { Host } from "../host/host.js";
import { isWithin, mayHang } from "../host/mountinfo.js";
import { describeError, isErrno } from "../host/root.js";
import { httpGet } from "../host/unix-http.js";
import { journalDirectories } from "../journal/locate.js";
import type { JournalFilter } from "../journal/types.js";
import { linesContaining } from "../logrules/lines.js";
import type { Snapshot } from "../snapshot.js";
import { AUDIT_LOGS, auditLogTail } from "../sources/avc.js";
import type { ConfigFileFact } from "../sources/config-files.js";
import type { JournalFacts } from "../sources/journal.js";
import { LOADER_ERROR, LOADER_ERROR_WORDS } from "../sources/pod-logs.js";
import { factsOf } from "../sources/source.js";
import { hostEntry, listFiles, type StepContext } from "./items.js";
import { type ExcerptJob, type ExcerptPrefetch, type MaskedExcerpt, readExcerpt } from "./journal-excerpt.js";
import { secretFileReason } from "./redact.js";

/** What every step needs: the host, the snapshot (null when collection failed), and the limits. */
export interface StepInputs {
  host: Host;
  snapshot: Snapshot | null;
  /** Cap of one item's content, in bytes. */
  itemBytes: number;
  /** Start of the journal and log window, in ms since the epoch. */
  sinceMs: number;
  criEndpoint?: string;
  /** The crictl named with --crictl: used as it is, instead of looking for one. */
  crictl?: string;
  /** PATH of this process, where crictl is looked for first. */
  searchPath: string;
  /** Journal excerpts read ahead in a worker thread. */
  prefetched?: ExcerptPrefetch;
  /** The journal source's facts from the same pass, for the collection (see CollectOptions). */
  journalFacts?: Promise<JournalFacts | undefined>;
  /**
   * Item contents the worker masked already, by bundle path: `raw` is the very string the item
   * holds, so a content that was cut or replaced since is masked again as usual.
   */
  premasked?: Map<
    string,
    { raw: string; masked: Promise<MaskedExcerpt | undefined>; gzip: Promise<Uint8Array | undefined> }
  >;
}

const KiB = 1024;
const MiB = 1024 * KiB;

function facts<K extends keyof Snapshot["sources"]>(inputs: StepInputs, name: K) {
  return inputs.snapshot ? factsOf(inputs.snapshot.sources[name]) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Host files

/**
 * Reads one host file into the bundle as `host/<path>`, through the Host (symlinks resolved in
 * the host root, a file on a FUSE or network filesystem read in a child process with a deadline).
 * A credential file is recorded as skipped and never read; a missing file is left out.
 */
export async function copyHostFile(
  inputs: StepInputs,
  context: StepContext,
  hostPath: string,
): Promise<void> {
  const item = context.begin(hostEntry(hostPath), hostPath);
  const byName = secretFileReason(hostPath);
  if (byName) {
    item.fail("skipped", `not collected: ${byName}`);
    return;
  }
  try {
    const read = await inputs.host.readText(hostPath, inputs.itemBytes);
    const byContent = secretFileReason(hostPath, read.text);
    if (byContent) {
      item.fail("skipped", `not collected: ${byContent}`);
      return;
    }
    item.ok(read.text, { truncated: read.truncated });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") item.drop();
    else if (code === "ETIMEDOUT") item.fail("timeout", describeError(error));
    else item.fail("error", describeError(error));
  }
}

/**
 * Host files in a directory, when it is one on a filesystem that cannot hang (listing a FUSE
 * directory would run in this process); `suffix` filters names.
 */
async function hostDirectoryFiles(host: Host, hostDir: string, suffix?: string): Promise<string[]> {
  const inspected = await host.inspectPath(hostDir);
  if (inspected.status !== "ok" || !inspected.isDirectory) return [];
  if (inspected.mount && mayHang(inspected.mount.fstype)) return [];
  const names = await listFiles(host.root.local(inspected.resolved));
  return names.filter((n) => !suffix || n.endsWith(suffix)).map((n) => path.posix.join(hostDir, n));
}

const UNIT_DIRS = [
  "/etc/systemd/system",
  "/run/systemd/system",
  "/usr/lib/systemd/system",
  "/lib/systemd/system",
];

/** Units whose files and journal go into the bundle: the runtime, the kubelet and the layer stores. */
export function unitsOfInterest(inputs: StepInputs): string[] {
  const units = [...USUAL_UNITS];
  for (const store of facts(inputs, "layer-stores")?.stores ?? []) {
    const kind = store.process?.kind;
    if (kind && kind !== "unknown") units.push(`${kind}.service`);
  }
  if (facts(inputs, "storage-config")?.containerd) units.push("containerd.service");
  return [...new Set(units)];
}

/** Every configuration file the bundle copies: what the sources read, plus the usual places. */
export async function configFiles(inputs: StepInputs): Promise<string[]> {
  const { host } = inputs;
  const files = new Set<string>();
  const fromFacts = (list: ConfigFileFact[] | undefined) => {
    for (const f of list ?? []) if (f.status !== "missing") files.add(f.path);
  };
  const storage = facts(inputs, "storage-config");
  const kubelet = facts(inputs, "kubelet-config");
  fromFacts(storage?.files);
  fromFacts(kubelet?.files);
  for (const file of [
    "/etc/containers/storage.conf",
    "/usr/share/containers/storage.conf",
    "/etc/crio/crio.conf",
    "/etc/containers/registries.conf",
    "/etc/containerd/config.toml",
    // The kubelet's configuration on OpenShift and on kubeadm nodes (where kubelet.conf is a
    // kubeconfig, and is then recorded as skipped).
    "/etc/kubernetes/kubelet.conf",
    "/var/lib/kubelet/config.yaml",
    "/etc/selinux/config",
    "/etc/fstab",
    "/etc/ostree/prepare-root.conf",
    "/usr/lib/ostree/prepare-root.conf",
    "/etc/stargz-store/config.toml",
    "/etc/crictl.yaml",
  ])
    files.add(file);
  const dropInDirs: [string, string | undefined][] = [
    ["/etc/containers/storage.conf.d", ".conf"],
    ["/usr/share/containers/storage.conf.d", ".conf"],
    ["/etc/containers/storage.rootful.conf.d", ".conf"],
    ["/usr/share/containers/storage.rootful.conf.d", ".conf"],
    ["/etc/crio/crio.conf.d", undefined],
    ["/etc/containers/registries.conf.d", undefined],
  ];
  if (kubelet?.dropInDir) dropInDirs.push([kubelet.dropInDir, undefined]);
  for (const [dir, suffix] of dropInDirs) {
    for (const file of await hostDirectoryFiles(host, dir, suffix)) files.add(file);
  }
  for (const store of facts(inputs, "layer-stores")?.stores ?? []) {
    if (store.config?.path) files.add(store.config.path);
    if (store.process?.config) files.add(store.process.config);
  }
  const selinux = facts(inputs, "selinux");
  const policyDir = `/etc/selinux/${selinux?.policy.type ?? "targeted"}/contexts/files`;
  for (const name of ["file_contexts.local", "file_contexts.subs", "file_contexts.subs_dist"])
    files.add(`${policyDir}/${name}`);
  for (const f of selinux?.policy.files ?? []) {
    // file_contexts itself is the distribution's policy (hundreds of KiB): named, not copied.
    if (f.status !== "missing" && !f.path.endsWith("/file_contexts")) files.add(f.path);
  }
  for (const unit of unitsOfInterest(inputs)) {
    for (const dir of UNIT_DIRS) {
      files.add(`${dir}/${unit}`);
      for (const file of await hostDirectoryFiles(host, `${dir}/${unit}.d`, ".conf")) files.add(file);
    }
  }
  return resolveAll(host, files);
}

/**
 * Host paths with symlinks resolved in the host root (/lib -> usr/lib, /var/run -> /run), each
 * once. A path on a filesystem that may hang keeps its name: the Host reads it from a child.
 */
async function resolveAll(host: Host, paths: Iterable<string>): Promise<string[]> {
  const out = new Set<string>();
  const table = await host.mounts().catch(() => undefined);
  const risky = (table?.entries ?? []).filter((e) => mayHang(e.fstype)).map((e) => e.mountPoint);
  for (const hostPath of sortPaths(paths)) {
    const local = host.root.local(hostPath);
    if (risky.some((m) => isWithin(local, m) || isWithin(hostPath, m))) {
      out.add(hostPath);
      continue;
    }
    try {
      out.add((await host.root.resolve(hostPath)).host);
    } catch {
      out.add(hostPath);
    }
  }
  return sortPaths(out);
}

/**
 * containers/storage metadata of each store (images.json, layers.json, volatile-layers.json) and
 * the index of each CRI-O artifact store. A hung store's files are still asked for (through a
 * child process with a deadline): the manifest then says so.
 */
export function storeMetadataFiles(inputs: StepInputs): string[] {
  const files = new Set<string>();
  for (const f of facts(inputs, "layers")?.files ?? []) if (f.status !== "missing") files.add(f.path);
  const stores = facts(inputs, "image-stores");
  const driver = stores?.driver ?? "overlay";
  for (const store of stores?.stores ?? []) {
    files.add(path.posix.join(store.path, `${driver}-images`, "images.json"));
    files.add(path.posix.join(store.path, `${driver}-layers`, "layers.json"));
  }
  for (const store of facts(inputs, "artifact-stores")?.stores ?? [])
    if (path.posix.isAbsolute(store.path)) files.add(path.posix.join(store.path, "artifacts", "index.json"));
  return sortPaths(files);
}

/**
 * Credential files a node usually has: named in the manifest as skipped (so the engineer knows
 * they exist), never read.
 */
export async function credentialFiles(inputs: StepInputs): Promise<string[]> {
  const candidates = new Set([
    "/var/lib/kubelet/config.json",
    "/run/containers/0/auth.json",
    "/etc/containers/auth.json",
    "/root/.docker/config.json",
    "/root/.config/containers/auth.json",
    "/var/lib/kubelet/kubeconfig",
    "/etc/kubernetes/kubeconfig",
    "/etc/kubernetes/admin.conf",
  ]);
  const found: string[] = [];
  for (const candidate of sortPaths(candidates)) {
    const inspected = await inputs.host.inspectPath(candidate);
    if (inspected.status === "ok" && !inspected.isDirectory) found.push(candidate);
  }
  return found;
}

function sortPaths(paths: Iterable<string>): string[] {
  return [...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

// ---------------------------------------------------------------------------------------------
// Derived from the snapshot and the kernel

export async function mountTable(inputs: StepInputs, context: StepContext): Promise<void> {
  const { host } = inputs;
  let from = path.join(host.procRoot, "1/mountinfo");
  try {
    from = (await host.mounts()).from;
  } catch {
    // reported below when the read fails
  }
  const name = `host/proc/${path.basename(path.dirname(from))}/mountinfo`;
  const item = context.begin(name, from);
  try {
    // procfs files have no size (stat says 0): read to the end, then cap.
    const data = await readFile(from);
    const truncated = data.length > inputs.itemBytes;
    item.ok(data.subarray(0, inputs.itemBytes).toString("utf8"), { truncated });
  } catch (error) {
    item.fail("error", describeError(error));
  }
}

function human(bytes: number | undefined): string {
  if (bytes === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)}${units[unit]}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return `${rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

/** A df-like table of every store role, from the snapshot's statfs figures (nothing touched again). */
export function filesystemsTable(inputs: StepInputs, context: StepContext): void {
  const item = context.begin("facts/filesystems.txt", "snapshot: sources.filesystems (stat + statfs)");
  const fs = facts(inputs, "filesystems");
  if (!fs) {
    item.fail("skipped", "the filesystems source has no facts in the snapshot");
    return;
  }
  const rows = [
    [
      "ROLE",
      "PATH",
      "STATUS",
      "DEVICE",
      "FSTYPE",
      "MOUNTPOINT",
      "SIZE",
      "AVAIL",
      "USE%",
      "INODES",
      "IFREE",
      "CONFIGURED-BY",
    ],
  ];
  for (const role of fs.roles) {
    const u = role.usage;
    const used =
      u && u.totalBytes > 0
        ? `${Math.round(((u.totalBytes - u.availableBytes) / u.totalBytes) * 100)}%`
        : "-";
    rows.push([
      role.role,
      role.path,
      role.status,
      role.device ?? "-",
      role.mount?.fstype ?? "-",
      role.mount?.mountPoint ?? "-",
      human(u?.totalBytes),
      human(u?.availableBytes),
      used,
      u ? String(u.totalInodes) : "-",
      u ? String(u.freeInodes) : "-",
      role.configuredBy,
    ]);
  }
  const lines = [
    `# topology: ${fs.topology}; runtime: ${fs.runtime.kind} (${fs.runtime.evidence}); root device ${fs.rootDevice ?? "-"}`,
    table(rows),
  ];
  for (const role of fs.roles) if (role.error) lines.push(`# ${role.role} ${role.path}: ${role.error}`);
  item.ok(`${lines.join("\n")}\n`);
}

export function criFacts(inputs: StepInputs, context: StepContext): void {
  const item = context.begin(
    "facts/cri-imagefsinfo.json",
    "snapshot: sources.cri (ImageFsInfo, Version, /info)",
    "json",
  );
  const cri = inputs.snapshot?.sources.cri;
  if (!cri) {
    item.fail("skipped", "no snapshot");
    return;
  }
  item.ok(`${JSON.stringify(cri, null, 2)}\n`, { kind: "json" });
}

/** Labels of each store's root and overlay directories against what the policy expects. */
export function storeLabels(inputs: StepInputs, context: StepContext): void {
  const item = context.begin(
    "facts/selinux-store-labels.txt",
    "snapshot: sources.selinux (security.selinux xattrs)",
  );
  const selinux = facts(inputs, "selinux");
  if (!selinux) {
    item.fail("skipped", "the selinux source has no facts in the snapshot");
    return;
  }
  const rows = [["ROLE", "PATH", "LABEL", "EXPECTED-TYPE", "REFERENCE-TYPE", "FSTYPE"]];
  for (const store of selinux.stores) {
    rows.push([
      store.role,
      store.path,
      store.status === "scanned" ? "" : `(${store.status})`,
      "",
      "",
      store.fstype ?? "-",
    ]);
    for (const dir of store.dirs) {
      rows.push(["", dir.path, dir.label ?? "(none)", dir.expectedType ?? "-", dir.referenceType ?? "-", ""]);
    }
  }
  const header = `# SELinux ${selinux.state}; policy ${selinux.policy.type} (${selinux.policy.loaded ? "file contexts loaded" : "file contexts not loaded"}); compare by ${selinux.compare}`;
  item.ok(`${header}\n${table(rows)}`);
}

/** fusectl's counters of every FUSE connection behind a mount (answered by the kernel, not the server). */
export async function fuseConnections(inputs: StepInputs, context: StepContext): Promise<void> {
  const item = context.begin(
    "facts/fusectl.json",
    "/sys/fs/fuse/connections/<device>/{waiting,max_background,congestion_threshold}",
    "json",
  );
  let entries: Awaited<ReturnType<Host["mounts"]>>["entries"];
  try {
    entries = (await inputs.host.mounts()).entries;
  } catch (error) {
    item.fail("error", describeError(error));
    return;
  }
  const fuse = entries.filter((e) => e.fstype.startsWith("fuse") && e.fstype !== "fusectl");
  const out = [];
  for (const entry of fuse) {
    const fact = inputs.host.toMountFact(entry);
    const connection = await readFuseConnection(entry.device).catch((error: Error) => ({
      error: error.message,
    }));
    out.push({
      mountPoint: fact.mountPoint,
      fstype: fact.fstype,
      source: fact.source,
      device: entry.device,
      ...connection,
    });
  }
  item.ok(`${JSON.stringify(out, null, 2)}\n`, { kind: "json" });
}

// ---------------------------------------------------------------------------------------------
// Commands

/** A program's outcome: output kept up to a cap, the process group SIGKILLed at the deadline. */
export interface CommandOutcome {
  outcome: "ok" | "failed" | "timeout" | "missing";
  stdout: string;
  stderr: string;
  truncated: boolean;
  message: string;
}

/**
 * Runs a program with an argument array (never a shell) in a process group of its own, stdin
 * closed, a minimal environment; at the deadline the whole group is SIGKILLed, so a script that
 * started a child of its own cannot keep our pipes open.
 */
export async function runBounded(
  file: string,
  args: string[],
  options: { timeoutMs: number; maxBytes: number; signal?: AbortSignal },
): Promise<CommandOutcome> {
  const { execa } = await import("execa");
  const child = execa(file, args, {
    reject: false,
    stdin: "ignore",
    detached: true,
    maxBuffer: options.maxBytes,
    timeout: options.timeoutMs + 1000,
    killSignal: "SIGKILL",
    extendEnv: false,
    env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" },
  });
  let timedOut = false;
  const killGroup = () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, options.timeoutMs);
  const onAbort = () => {
    timedOut = true;
    killGroup();
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const result = await child;
  clearTimeout(timer);
  options.signal?.removeEventListener("abort", onAbort);
  const stdout = String(result.stdout ?? "");
  const stderr = String(result.stderr ?? "");
  const truncated = Boolean((result as { isMaxBuffer?: boolean }).isMaxBuffer);
  if (timedOut || result.timedOut) {
    return { outcome: "timeout", stdout, stderr, truncated, message: `killed after ${options.timeoutMs} ms` };
  }
  if ((result as { code?: string }).code === "ENOENT") {
    return { outcome: "missing", stdout, stderr, truncated, message: `${file}: not found` };
  }
  if (result.failed && !truncated) {
    return { outcome: "failed", stdout, stderr, truncated, message: result.shortMessage ?? `${file} failed` };
  }
  return { outcome: "ok", stdout, stderr, truncated, message: "" };
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/**
 * crictl: the one named with --crictl, else on this process's PATH (a must-gather image), else the
 * host's own (a static Go binary).
 */
export async function findCrictl(inputs: StepInputs): Promise<string | undefined> {
  if (inputs.crictl !== undefined) return inputs.crictl;
  for (const dir of inputs.searchPath.split(":")) {
    if (!dir.startsWith("/")) continue;
    const candidate = path.join(dir, "crictl");
    if (await isExecutable(candidate)) return candidate;
  }
  for (const hostPath of ["/usr/bin/crictl", "/usr/local/bin/crictl"]) {
    try {
      const local = (await inputs.host.root.resolve(hostPath)).local;
      if (await isExecutable(local)) return local;
    } catch {
      // next
    }
  }
  return undefined;
}

/** The CRI socket to point crictl at (a local path): the one that answered, else the first that exists. */
export async function criSocket(inputs: StepInputs): Promise<string | undefined> {
  const cri = facts(inputs, "cri");
  const endpoints = [
    cri?.answeredBy?.endpoint,
    inputs.criEndpoint,
    ...(cri?.attempts ?? []).filter((a) => a.status !== "missing").map((a) => a.endpoint),
  ].filter((e): e is string => typeof e === "string");
  for (const endpoint of endpoints) {
    const hostPath = endpoint.startsWith("unix://")
      ? endpoint.slice(7)
      : endpoint.startsWith("/")
        ? endpoint
        : undefined;
    if (!hostPath) continue;
    try {
      const local = (await inputs.host.root.resolve(hostPath)).local;
      if ((await stat(local)).isSocket()) return local;
    } catch {
      // next
    }
  }
  return undefined;
}

/** CRI-O's own view of itself: GET /config (the configuration it runs with) and /info on its socket. */
export async function crioEndpoints(inputs: StepInputs, context: StepContext): Promise<void> {
  const inspect = facts(inputs, "crio-inspect");
  if (!inspect) return;
  for (const [name, endpoint, kind] of [
    ["commands/crio-config.toml", "/config", "text"],
    ["commands/crio-info.json", "/info", "json"],
  ] as const) {
    const item = context.begin(name, `GET ${endpoint} on ${inspect.socket}`, kind);
    try {
      const socket = (await inputs.host.root.resolve(inspect.socket)).local;
      const deadlineMs = Math.max(100, Math.min(2000, context.remainingMs() - 100));
      item.ok(await httpGet(socket, endpoint, deadlineMs, inputs.itemBytes));
    } catch (error) {
      item.fail("error", `GET ${endpoint} on ${inspect.socket}: ${describeError(error)}`);
    }
  }
}

export async function crictlOutputs(inputs: StepInputs, context: StepContext): Promise<void> {
  const commands: [string, string[]][] = [
    ["commands/crictl-info.json", ["info"]],
    ["commands/crictl-images.json", ["images", "-o", "json"]],
  ];
  const crictl = await findCrictl(inputs);
  const socket = crictl ? await criSocket(inputs) : undefined;
  for (const [index, [name, sub]] of commands.entries()) {
    const argv = [
      crictl ?? "crictl",
      ...(socket ? ["--runtime-endpoint", `unix://${socket}`, "--image-endpoint", `unix://${socket}`] : []),
      "--timeout",
      "10s",
      ...sub,
    ];
    const item = context.begin(name, argv, "json");
    if (!crictl) {
      item.fail("skipped", "crictl is not on PATH nor at the host's /usr/bin or /usr/local/bin");
      continue;
    }
    if (!socket) {
      item.fail("skipped", "no CRI socket answered or exists");
      continue;
    }
    // Each command gets its share of what is left of the step, so one that hangs leaves time for the next.
    const share = (context.remainingMs() - 200) / (commands.length - index);
    const timeoutMs = Math.max(500, Math.min(share, 30_000));
    argv[argv.indexOf("--timeout") + 1] = `${Math.max(1, Math.floor(timeoutMs / 1000) - 1)}s`;
    const run = await runBounded(argv[0]!, argv.slice(1), {
      timeoutMs,
      maxBytes: inputs.itemBytes,
      signal: context.signal,
    });
    if (run.outcome === "ok")
      item.ok(run.stdout, { truncated: run.truncated, kind: run.truncated ? "text" : "json" });
    else if (run.outcome === "timeout")
      item.fail("timeout", `crictl ${sub.join(" ")}: ${run.message}`, run.stdout || undefined);
    else
      item.fail(
        "error",
        `${run.message}${run.stderr ? `: ${run.stderr.trim().split("\n").slice(-3).join(" / ")}` : ""}`,
        run.stdout || undefined,
      );
  }
}

// ---------------------------------------------------------------------------------------------
// Logs

/** Keeps the newest lines within a byte budget. */
class Tail {
  lines: string[] = [];
  bytes = 0;
  dropped = 0;
  constructor(readonly maxBytes: number) {}
  push(line: string): void {
    this.lines.push(line);
    this.bytes += Buffer.byteLength(line) + 1;
    while (this.bytes > this.maxBytes && this.lines.length > 0) {
      this.bytes -= Buffer.byteLength(this.lines.shift()!) + 1;
      this.dropped++;
    }
  }
  text(): string {
    return this.lines.length === 0 ? "" : `${this.lines.join("\n")}\n`;
  }
}

/** One journal excerpt of the bundle: its entry, what it says it is of, and its filters. */
export interface JournalExcerptSpec {
  name: string;
  source: string;
  filters: JournalFilter[];
  /** Only entries whose MESSAGE contains this. */
  messageIncludes?: string;
}

/** The units whose journal every bundle has, known before the snapshot is. */
export const USUAL_UNITS = ["crio.service", "kubelet.service", "stargz-store.service"];

/** A unit's own entries and systemd's messages about it. */
export function unitExcerpt(unit: string): JournalExcerptSpec {
  return {
    name: `journal/${unit}.log`,
    source: `journal: _SYSTEMD_UNIT=${unit} + UNIT=${unit}`,
    filters: [{ _SYSTEMD_UNIT: unit }, { UNIT: unit }],
  };
}

export const AVC_EXCERPT: JournalExcerptSpec = {
  name: "journal/audit-avc.log",
  source: "journal: _TRANSPORT=audit _AUDIT_TYPE_NAME=AVC + _TRANSPORT=kernel (avc:)",
  filters: [{ _TRANSPORT: "audit", _AUDIT_TYPE_NAME: "AVC" }, { _TRANSPORT: "kernel" }],
  messageIncludes: "avc:",
};

export function excerptJob(
  inputs: StepInputs,
  directories: string[],
  spec: JournalExcerptSpec,
  deadlineMs: number,
): ExcerptJob {
  return {
    directories,
    filters: spec.filters,
    sinceMs: inputs.sinceMs,
    maxBytes: inputs.itemBytes,
    deadlineMs,
    ...(spec.messageIncludes === undefined ? {} : { messageIncludes: spec.messageIncludes }),
  };
}

/** An excerpt as an item: what the prefetching worker read, else read now, within the step's deadline. */
async function journalExcerpt(
  inputs: StepInputs,
  context: StepContext,
  spec: JournalExcerptSpec,
): Promise<void> {
  const item = context.begin(spec.name, spec.source);
  const directories = await journalDirectories(inputs.host);
  if (directories.length === 0) {
    item.fail("skipped", "no journal in /var/log/journal or /run/log/journal");
    return;
  }
  const prefetched = await inputs.prefetched?.take(spec.name);
  const excerpt =
    prefetched ??
    (await readExcerpt(
      excerptJob(inputs, directories, spec, Math.max(100, context.remainingMs() - 100)),
      context.signal,
    ));
  if (excerpt.error) item.fail("error", excerpt.error, excerpt.text || undefined);
  else if (excerpt.timedOut)
    item.fail(
      "timeout",
      `the journal read stopped at its deadline after the newest ${excerpt.delivered} entries`,
      excerpt.text,
    );
  else {
    item.ok(excerpt.text, { truncated: excerpt.truncated, durationMs: excerpt.durationMs });
    const masked = prefetched && inputs.prefetched?.masked(spec.name);
    if (masked) {
      inputs.premasked ??= new Map();
      const gzip = inputs.prefetched?.gzip(spec.name) ?? Promise.resolve(undefined);
      inputs.premasked.set(spec.name, { raw: excerpt.text, masked, gzip });
    }
  }
}

/** The journal of each unit of interest over the window, the newest entries within the item cap. */
export async function unitJournals(inputs: StepInputs, context: StepContext): Promise<void> {
  for (const unit of unitsOfInterest(inputs)) {
    if (context.signal.aborted) return;
    await journalExcerpt(inputs, context, unitExcerpt(unit));
  }
}

/** What auditd's logs hold for logs/audit-avc.log. */
export interface AuditAvc {
  /** Some audit log exists. */
  found: boolean;
  /** A log was read from its end only (longer than AUDIT_TAIL_BYTES). */
  cut: boolean;
  /** The AVC records of the window, each file's after a "# file" line. */
  text: string;
}

/** The AVC records of auditd's logs (newest file first, each from its end) within the window. */
export async function readAuditAvc(inputs: StepInputs): Promise<AuditAvc> {
  const lines: string[] = [];
  let found = false;
  let cut = false;
  for (const file of AUDIT_LOGS) {
    const read = await auditLogTail(inputs.host, file);
    if (!read) continue;
    found = true;
    cut ||= read.cut;
    // Every line the test below keeps holds "AVC" or "avc:": only those lines are cut out (the
    // first one left out when the read began inside it).
    const kept = linesContaining(read.data, ["AVC", "avc:"], read.cut).filter((line) => {
      if (!/type=(USER_)?AVC\b|avc:/.test(line)) return false;
      const stamp = /audit\((\d+)(?:\.\d+)?:/.exec(line);
      return !stamp || Number(stamp[1]) * 1000 >= inputs.sinceMs;
    });
    if (kept.length > 0) lines.push(`# ${file}`, ...kept);
  }
  return { found, cut, text: lines.length ? `${lines.join("\n")}\n` : "" };
}

/** AVC records: auditd's log (readAuditAvc) and journald's audit copies. */
export async function avcRecords(inputs: StepInputs, context: StepContext): Promise<void> {
  const item = context.begin("logs/audit-avc.log", AUDIT_LOGS.join(" "));
  const { found, cut, text } = await readAuditAvc(inputs);
  if (!found) item.drop();
  else
    item.ok(truncateStart(text, inputs.itemBytes), {
      truncated: cut || Buffer.byteLength(text) > inputs.itemBytes,
    });
  await journalExcerpt(inputs, context, AVC_EXCERPT);
}

/** The last `maxBytes` of a text, from a line start. */
function truncateStart(text: string, maxBytes: number): string {
  const buffer = Buffer.from(text);
  if (buffer.length <= maxBytes) return text;
  const rest = buffer.subarray(buffer.length - maxBytes).toString("utf8");
  return rest.slice(rest.indexOf("\n") + 1);
}

/** Lines of container logs with dynamic-loader errors, from the logs the pod-logs source found them in. */
export async function podLoaderErrors(inputs: StepInputs, context: StepContext): Promise<void> {
  const podLogs = facts(inputs, "pod-logs");
  if (!podLogs || podLogs.errors.length === 0) return;
  const files = sortPaths(new Set(podLogs.errors.map((e) => e.file)));
  const item = context.begin("logs/pod-loader-errors.log", files.length === 1 ? files[0]! : files);
  const out = new Tail(inputs.itemBytes);
  for (const file of files) {
    let local: string;
    try {
      local = (await inputs.host.root.resolve(file)).local;
    } catch (error) {
      if (!isErrno(error, "ENOENT")) out.push(`# ${file}: ${describeError(error)}`);
      continue;
    }
    const read = await readTailBytes(local, 1 * MiB);
    if (!read) continue;
    // The lines with a word every loader error holds, decoded; then the patterns themselves.
    for (const line of linesContaining(read.data, LOADER_ERROR_WORDS))
      if (LOADER_ERROR.test(line)) out.push(`${file}: ${line}`);
  }
  item.ok(out.text(), { truncated: out.dropped > 0 });
}
