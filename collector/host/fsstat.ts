import { stat, statfs } from "node:fs/promises";
import { deviceId } from "./device.js";

export interface FsUsage {
  blockSize: number;
  totalBytes: number;
  freeBytes: number;
  /** What an unprivileged writer can still use: the figure the kubelet and df report. */
  availableBytes: number;
  totalInodes: number;
  freeInodes: number;
}

export interface PathStat {
  /** "major:minor" from stat().dev. */
  device: string;
  isDirectory: boolean;
  usage: FsUsage;
}

export type GuardedStat =
  | { outcome: "ok"; stat: PathStat }
  | { outcome: "error"; code: string; message: string }
  | { outcome: "timeout"; afterMs: number };

/** The raw numbers stat(2) and statfs(2) give, as decimal strings so 64-bit values survive JSON. */
interface RawStat {
  dev: string;
  dir: boolean;
  bsize: string;
  blocks: string;
  bfree: string;
  bavail: string;
  files: string;
  ffree: string;
}

function toPathStat(raw: RawStat): PathStat {
  const bsize = BigInt(raw.bsize);
  const bytes = (blocks: string) => Number(BigInt(blocks) * bsize);
  return {
    device: deviceId(BigInt(raw.dev)),
    isDirectory: raw.dir,
    usage: {
      blockSize: Number(bsize),
      totalBytes: bytes(raw.blocks),
      freeBytes: bytes(raw.bfree),
      availableBytes: bytes(raw.bavail),
      totalInodes: Number(raw.files),
      freeInodes: Number(raw.ffree),
    },
  };
}

/** stat + statfs in this process: for local filesystems, which answer or fail but never hang. */
export async function statPath(localPath: string): Promise<PathStat> {
  const [info, fs] = await Promise.all([
    stat(localPath, { bigint: true }),
    statfs(localPath, { bigint: true }),
  ]);
  return toPathStat({
    dev: info.dev.toString(),
    dir: info.isDirectory(),
    bsize: fs.bsize.toString(),
    blocks: fs.blocks.toString(),
    bfree: fs.bfree.toString(),
    bavail: fs.bavail.toString(),
    files: fs.files.toString(),
    ffree: fs.ffree.toString(),
  });
}

// Runs in a child process so that a FUSE or NFS server that never answers blocks only the child,
// which is SIGKILLed at the deadline. A thread of ours stuck in that syscall would hold one of
// libuv's four pool threads forever and, after four such paths, freeze every file operation.
const STAT_CHILD_SCRIPT = `
const fs = require("node:fs");
const p = process.argv[1];
try {
  const s = fs.statSync(p, { bigint: true });
  const f = fs.statfsSync(p, { bigint: true });
  const out = { dev: s.dev, dir: s.isDirectory(), bsize: f.bsize, blocks: f.blocks, bfree: f.bfree,
    bavail: f.bavail, files: f.files, ffree: f.ffree };
  process.stdout.write(JSON.stringify(out, (k, v) => (typeof v === "bigint" ? v.toString() : v)));
} catch (e) {
  process.stdout.write(JSON.stringify({ error: { code: e.code || "EUNKNOWN", message: e.message } }));
}
`;

/** stat + statfs in a child process that is SIGKILLed at the deadline. */
export async function statPathGuarded(localPath: string, deadlineMs: number): Promise<GuardedStat> {
  const probe = await runProbe("stat", STAT_CHILD_SCRIPT, [localPath], deadlineMs, 64 * 1024);
  if (probe.outcome !== "ok") return probe;
  return { outcome: "ok", stat: toPathStat(probe.value as RawStat) };
}

// The same guard for reading a file (images.json on an additional image store over NFS, say).
// Opened with O_NONBLOCK and checked to be a regular file, as readBoundedText does; the bytes
// come back base64-encoded so any content survives JSON.
const READ_CHILD_SCRIPT = `
const fs = require("node:fs");
const p = process.argv[1];
const max = Number(process.argv[2]);
try {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const s = fs.fstatSync(fd);
  if (!s.isFile()) throw Object.assign(new Error("not a regular file: " + p), { code: "ENOTREG" });
  const buf = Buffer.alloc(Math.min(max, Math.max(s.size, 0)) + 1);
  let n = 0;
  while (n < buf.length) {
    const r = fs.readSync(fd, buf, n, buf.length - n, n);
    if (r === 0) break;
    n += r;
  }
  process.stdout.write(JSON.stringify({ data: buf.subarray(0, n).toString("base64") }));
} catch (e) {
  process.stdout.write(JSON.stringify({ error: { code: e.code || "EUNKNOWN", message: e.message } }));
}
`;

export type GuardedRead =
  | { outcome: "ok"; data: Buffer }
  | { outcome: "error"; code: string; message: string }
  | { outcome: "timeout"; afterMs: number };

/** Reads at most maxBytes + 1 bytes of a regular file in a child process that is SIGKILLed at the deadline. */
export async function readFileGuarded(
  localPath: string,
  maxBytes: number,
  deadlineMs: number,
): Promise<GuardedRead> {
  const base64Bytes = Math.ceil((maxBytes + 1) / 3) * 4;
  const probe = await runProbe(
    "read",
    READ_CHILD_SCRIPT,
    [localPath, String(maxBytes)],
    deadlineMs,
    base64Bytes + 4096,
  );
  if (probe.outcome !== "ok") return probe;
  return { outcome: "ok", data: Buffer.from((probe.value as { data: string }).data, "base64") };
}

type ProbeResult =
  | { outcome: "ok"; value: unknown }
  | { outcome: "error"; code: string; message: string }
  | { outcome: "timeout"; afterMs: number };

/** Runs a probe script in a child node process; it prints one JSON document, {error} on failure. */
async function runProbe(
  kind: "stat" | "read",
  script: string,
  args: string[],
  deadlineMs: number,
  maxBuffer: number,
): Promise<ProbeResult> {
  const child = await runChildScript(script, args, { deadlineMs, maxBuffer });
  if (child.timedOut) return { outcome: "timeout", afterMs: Math.round(child.elapsedMs) };
  let parsed: { error?: { code: string; message: string } };
  try {
    parsed = JSON.parse(child.stdout);
  } catch {
    return { outcome: "error", code: "EPROBE", message: `${kind} probe failed: ${child.failure}` };
  }
  if (parsed.error) return { outcome: "error", ...parsed.error };
  return { outcome: "ok", value: parsed };
}

export interface ChildRun {
  /** The deadline came first and the child was SIGKILLed. */
  timedOut: boolean;
  /** What the child printed on stdout: all of it, or up to the kill (final newline stripped). */
  stdout: string;
  /** Why the child did not succeed, for messages: its stderr, else execa's short message (or exit status). */
  failure: string;
  /** Wall time from the call to the child's end, as the caller saw it. */
  elapsedMs: number;
}

/**
 * The one child runner for everything that may touch a FUSE or network filesystem: `node -e` with
 * a constant script and an argument array (never a shell), stdin closed unless `input` is given
 * (then it is written to the child's stdin: for data of any size, as one argv argument is capped
 * at 128 KiB by Linux's MAX_ARG_STRLEN and fails with E2BIG), stdout kept up to maxBuffer,
 * SIGKILLed at the deadline. A child killed by the deadline still hands back what it
 * printed before, so a script that reports each step as one line tells which step hung.
 * execa is loaded on first use: most runs never start a child, and it costs the CLI's cold start.
 */
export async function runChildScript(
  script: string,
  args: string[],
  options: { deadlineMs: number; maxBuffer: number; input?: string },
): Promise<ChildRun> {
  const started = performance.now();
  const { execa } = await import("execa");
  const child = await execa(process.execPath, ["-e", script, ...args], {
    timeout: options.deadlineMs,
    killSignal: "SIGKILL",
    reject: false,
    ...(options.input === undefined ? { stdin: "ignore" as const } : { input: options.input }),
    maxBuffer: options.maxBuffer,
  });
  return {
    timedOut: child.timedOut,
    stdout: String(child.stdout ?? ""),
    failure: String(child.stderr ?? "") || child.shortMessage || `exit status ${child.exitCode}`,
    elapsedMs: performance.now() - started,
  };
}
