import { stat, statfs } from "node:fs/promises";
import { execa } from "execa";
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
  const started = performance.now();
  const child = await execa(process.execPath, ["-e", STAT_CHILD_SCRIPT, localPath], {
    timeout: deadlineMs,
    killSignal: "SIGKILL",
    reject: false,
    stdin: "ignore",
    maxBuffer: 64 * 1024,
  });
  if (child.timedOut) return { outcome: "timeout", afterMs: Math.round(performance.now() - started) };
  let parsed: RawStat | { error: { code: string; message: string } };
  try {
    parsed = JSON.parse(child.stdout);
  } catch {
    return {
      outcome: "error",
      code: "EPROBE",
      message: `stat probe failed: ${child.stderr || child.shortMessage}`,
    };
  }
  if ("error" in parsed) return { outcome: "error", ...parsed.error };
  return { outcome: "ok", stat: toPathStat(parsed) };
}
