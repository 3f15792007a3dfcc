import { runChildScript } from "./fsstat.js";
import type { ProbeOp, ProbeOpKind, ProbeOpResult, ProbeRun } from "./fuse-probe-types.js";

export type { ProbeOp, ProbeOpKind, ProbeOpResult, ProbeRun } from "./fuse-probe-types.js";

/** Default and ceiling of a "read" operation's maxBytes. */
export const DEFAULT_PROBE_READ_BYTES = 64 * 1024;
const MAX_PROBE_READ_BYTES = 16 * 1024 * 1024;
const MAX_PROBE_NAMES = 10_000;

const OP_KINDS: ReadonlySet<string> = new Set<ProbeOpKind>(["statfs", "readdir", "stat", "read"]);

// Runs in the child: the operations one after another, each timed with the monotonic clock around
// the system calls alone, and each reported as one JSON line the moment it is done, written with
// writeSync so it has left the process before the next operation can hang. A first line says the
// child is up, so a deadline kill before it names no operation. A read's bytes come back
// base64-encoded (decoded in the parent), so no content can blow up or break a line.
const PROBE_CHILD_SCRIPT = `
const fs = require("node:fs");
const ops = JSON.parse(fs.readFileSync(0, "utf8"));
const pause = new Int32Array(new SharedArrayBuffer(4));
function emit(message) {
  const line = Buffer.from(JSON.stringify(message) + "\\n");
  let done = 0;
  while (done < line.length) {
    try {
      done += fs.writeSync(1, line, done);
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}
function fileType(s) {
  return s.isFile() ? "file" : s.isDirectory() ? "dir" : s.isSymbolicLink() ? "symlink" : "other";
}
function picked(dir, suffix) {
  const name = fs.readdirSync(dir).filter((n) => n.endsWith(suffix)).sort()[0];
  if (name === undefined) {
    throw Object.assign(new Error("no entry ending in " + suffix + " in " + dir), { code: "ENOENT" });
  }
  return dir + "/" + name;
}
function run(o) {
  switch (o.op) {
    case "stat": {
      const s = fs.lstatSync(o.path);
      return { kind: "stat", fileType: fileType(s), size: s.size };
    }
    case "statfs":
      return { kind: "statfs", type: fs.statfsSync(o.path).type };
    case "readdir": {
      const dir = fs.opendirSync(o.path);
      const names = [];
      let entries = 0;
      try {
        for (let d = dir.readSync(); d !== null; d = dir.readSync()) {
          if (names.length < o.maxNames) names.push(d.name);
          entries += 1;
        }
      } finally {
        dir.closeSync();
      }
      return { kind: "readdir", entries, names };
    }
    case "read": {
      const fd = fs.openSync(o.pick ? picked(o.path, o.pick) : o.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      try {
        if (!fs.fstatSync(fd).isFile()) {
          throw Object.assign(new Error("not a regular file: " + o.path), { code: "ENOTREG" });
        }
        const buf = Buffer.alloc(o.maxBytes + 1);
        let n = 0;
        while (n < buf.length) {
          const r = fs.readSync(fd, buf, n, buf.length - n, n);
          if (r === 0) break;
          n += r;
        }
        return { kind: "read", b64: buf.subarray(0, Math.min(n, o.maxBytes)).toString("base64"), truncated: n > o.maxBytes };
      } finally {
        fs.closeSync(fd);
      }
    }
    default:
      throw Object.assign(new Error("unknown probe operation " + o.op), { code: "EINVAL" });
  }
}
emit({ ready: ops.length });
for (let i = 0; i < ops.length; i += 1) {
  const started = process.hrtime.bigint();
  let out;
  try {
    const value = run(ops[i]);
    out = { i, ok: true, ns: String(process.hrtime.bigint() - started), value };
  } catch (e) {
    const ns = String(process.hrtime.bigint() - started);
    out = { i, ok: false, ns, code: (e && e.code) || "EUNKNOWN", message: String(e && e.message) };
  }
  emit(out);
}
`;

/** What the child prints: one "ready" line, then one line per operation. */
type ChildLine =
  | { ready: number }
  | {
      i: number;
      ok: true;
      ns: string;
      value:
        | { kind: "statfs"; type: number }
        | { kind: "readdir"; entries: number; names: string[] }
        | { kind: "stat"; fileType: "file" | "dir" | "symlink" | "other"; size: number }
        | { kind: "read"; b64: string; truncated: boolean };
    }
  | { i: number; ok: false; ns: string; code: string; message: string };

/** An operation with its defaults filled in and its limits clamped: what the child receives. */
interface ChildOp {
  op: ProbeOpKind;
  path: string;
  maxBytes: number;
  maxNames: number;
  pick: string | null;
}

function clamp(value: number | undefined, fallback: number, max: number): number {
  if (value === undefined || !Number.isFinite(value)) return fallback;
  return Math.min(Math.max(Math.floor(value), 0), max);
}

function toChildOp(op: ProbeOp): ChildOp {
  if (!OP_KINDS.has(op.op)) throw new TypeError(`unknown probe operation "${op.op}"`);
  if (typeof op.path !== "string" || op.path === "") throw new TypeError("a probe operation needs a path");
  if (op.pick !== undefined && (op.op !== "read" || op.pick === "" || op.pick.includes("/")))
    throw new TypeError("pick is a file name suffix, for a read operation");
  return {
    op: op.op,
    path: op.path,
    maxBytes: clamp(op.maxBytes, DEFAULT_PROBE_READ_BYTES, MAX_PROBE_READ_BYTES),
    maxNames: clamp(op.maxNames, 0, MAX_PROBE_NAMES),
    pick: op.pick ?? null,
  };
}

/** Room for everything the child may print: a line per operation, base64 of reads, listed names. */
function outputBound(ops: ChildOp[]): number {
  let bytes = 4096;
  for (const op of ops) {
    bytes += 1024 + op.path.length * 6;
    if (op.op === "read") bytes += Math.ceil(op.maxBytes / 3) * 4;
    if (op.op === "readdir") bytes += op.maxNames * 1600; // a 255-byte name, JSON-escaped at worst
  }
  return bytes;
}

function toResult(op: ProbeOp, line: Extract<ChildLine, { i: number }>): ProbeOpResult {
  const ms = Math.round(Number(BigInt(line.ns)) / 1000) / 1000; // to the microsecond
  if (!line.ok) return { op: op.op, path: op.path, ok: false, ms, code: line.code, message: line.message };
  const value =
    line.value.kind === "read"
      ? {
          kind: "read" as const,
          text: Buffer.from(line.value.b64, "base64").toString("utf8"),
          truncated: line.value.truncated,
        }
      : line.value;
  return { op: op.op, path: op.path, ok: true, ms, value };
}

/**
 * Runs the operations one after another in one child process (`node -e` with a constant script,
 * the operations as JSON on its stdin), SIGKILLed when `deadlineMs` has passed since the start. Each
 * operation is timed inside the child (process.hrtime, the system calls only) and reported the
 * moment it finishes, so after a kill the finished results are kept and `hungAt` names the
 * operation the child was stuck in. This process never calls an fs function on the paths.
 *
 * Put the operation most likely to reach the FUSE server first on each path (statfs and
 * readdir always do; a stat of a recently looked-up path may be answered from the kernel's
 * cache) and anything cheap and local before it, as the deadline covers the whole run.
 */
export async function probeMount(ops: ProbeOp[], deadlineMs: number): Promise<ProbeRun> {
  const started = performance.now();
  const childOps = ops.map(toChildOp);
  if (childOps.length === 0) return { results: [], hungAt: null, timedOut: false, elapsedMs: 0 };
  // The operations go in on stdin: as one argv argument they would be capped at 128 KiB
  // (MAX_ARG_STRLEN), and a thousand-odd stats would fail with E2BIG before the child started.
  const child = await runChildScript(PROBE_CHILD_SCRIPT, [], {
    deadlineMs,
    maxBuffer: outputBound(childOps),
    input: JSON.stringify(childOps),
  });
  const results: ProbeOpResult[] = [];
  let ready = false;
  for (const text of child.stdout.split("\n")) {
    let line: ChildLine;
    try {
      line = JSON.parse(text) as ChildLine;
    } catch {
      continue; // a line cut short by the kill, or nothing
    }
    if ("ready" in line) ready = true;
    else if (line.i === results.length && ops[line.i]) results.push(toResult(ops[line.i]!, line));
  }
  const run: ProbeRun = {
    results,
    hungAt: null,
    timedOut: child.timedOut,
    elapsedMs: performance.now() - started,
  };
  if (results.length === ops.length) return run;
  if (child.timedOut && ready) {
    run.hungAt = ops[results.length]!;
  } else if (child.timedOut) {
    run.error = { code: "ETIMEDOUT", message: `the probe process was not up within ${deadlineMs} ms` };
  } else {
    const message = `probe process ended after ${results.length} of ${ops.length} operations: ${child.failure}`;
    run.error = { code: "EPROBE", message };
  }
  return run;
}
