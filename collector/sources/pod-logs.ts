import { readdir } from "node:fs/promises";
import path from "node:path";
import { readTailBytes } from "../host/files.js";
import type { Host } from "../host/host.js";
import { Absent, type SourceDefinition } from "./source.js";

/**
 * Loader errors in container logs: what a container prints when SELinux denies it its own image
 * files. glibc: "error while loading shared libraries: libc.so.6: cannot apply additional memory
 * protection after relocation: Permission denied"; musl: "RELRO protection failed".
 */
export type LoaderErrorKind = "relocation" | "map-segment" | "shared-object";

export interface LoaderError {
  namespace: string;
  pod: string;
  container: string;
  kind: LoaderErrorKind;
  count: number;
  /** Time of the last occurrence, from the CRI log line. */
  lastSeen: string;
  example: string;
  /** Host path of the log file. */
  file: string;
}

export interface PodLogsFacts {
  filesScanned: number;
  bytesRead: number;
  /** True when a budget (files or bytes) ended the scan before every log was read. */
  truncated: boolean;
  errors: LoaderError[];
}

const PODS_DIR = "/var/log/pods";
const BUDGET = { files: 5000, bytesPerFile: 128 * 1024, bytes: 32 * 1024 * 1024 };
const EXAMPLE_CHARS = 300;

const PATTERNS: { kind: LoaderErrorKind; match: RegExp }[] = [
  {
    kind: "relocation",
    match:
      /cannot apply additional memory protection after relocation: Permission denied|RELRO protection failed/,
  },
  { kind: "map-segment", match: /failed to map segment from shared object: Permission denied/ },
  { kind: "shared-object", match: /error while loading shared libraries: .*: Permission denied/ },
];
/**
 * Every pattern as one alternative: a line it matches holds a loader error of some kind. A log
 * tail it finds nothing in has none on any line (no pattern crosses a line end), and is not split
 * into lines at all; most logs are such. must-gather's pod-loader-errors item keeps the lines it matches.
 */
export const LOADER_ERROR = new RegExp(PATTERNS.map((p) => `(?:${p.match.source})`).join("|"));
/** Text every loader error holds one of: a log tail without any is not decoded at all. */
export const LOADER_ERROR_WORDS = ["Permission denied", "RELRO protection failed"];

export const podLogsSource: SourceDefinition<{ "pod-logs": PodLogsFacts }, "pod-logs"> = {
  name: "pod-logs",
  deadlineMs: 10_000,
  async collect({ host }) {
    let podDirs: string[];
    try {
      podDirs = (await readdir(host.root.local(PODS_DIR))).sort();
    } catch {
      return new Absent(`${PODS_DIR} does not exist`);
    }
    const facts: PodLogsFacts = { filesScanned: 0, bytesRead: 0, truncated: false, errors: [] };
    for (const podDir of podDirs) {
      const [namespace, pod] = podDir.split("_");
      if (!namespace || !pod) continue;
      for (const { container, file } of await containerLogs(host, podDir)) {
        if (facts.filesScanned >= BUDGET.files || facts.bytesRead >= BUDGET.bytes) {
          facts.truncated = true;
          return facts;
        }
        await scanLog(host, file, { namespace, pod, container }, facts);
      }
    }
    return facts;
  },
};

/** The current log of each container of a pod: /var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log */
async function containerLogs(host: Host, podDir: string): Promise<{ container: string; file: string }[]> {
  const out: { container: string; file: string }[] = [];
  const podPath = path.posix.join(PODS_DIR, podDir);
  let containers: string[];
  try {
    containers = await readdir(host.root.local(podPath));
  } catch {
    return out;
  }
  for (const container of containers.sort()) {
    let files: string[];
    try {
      files = await readdir(host.root.local(path.posix.join(podPath, container)));
    } catch {
      continue;
    }
    for (const name of files.filter((n) => /^\d+\.log$/.test(n)).sort()) {
      out.push({ container, file: path.posix.join(podPath, container, name) });
    }
  }
  return out;
}

/** Reads the end of one log (the budget's worth) and counts loader errors per kind. */
async function scanLog(
  host: Host,
  file: string,
  who: { namespace: string; pod: string; container: string },
  facts: PodLogsFacts,
) {
  const tail = await readTailBytes(
    host.root.local(file),
    Math.min(BUDGET.bytesPerFile, BUDGET.bytes - facts.bytesRead),
  );
  facts.filesScanned += 1;
  if (!tail) return;
  facts.bytesRead += tail.bytes;
  if (!LOADER_ERROR_WORDS.some((word) => tail.data.includes(word))) return;
  const text = tail.data.toString("utf8");
  if (!LOADER_ERROR.test(text)) return;
  const lines = text.split("\n");
  if (tail.cut) lines.shift(); // the first line may start mid-way
  for (const line of lines) {
    const cri = /^(\S+) (?:stdout|stderr) [PF] (.*)$/.exec(line);
    if (!cri) continue;
    const [, time, message] = cri;
    const kind = PATTERNS.find((p) => p.match.test(message!))?.kind;
    if (!kind) continue;
    const existing = facts.errors.find((e) => e.file === file && e.kind === kind);
    if (existing) {
      existing.count += 1;
      existing.lastSeen = time!;
      existing.example = message!.slice(0, EXAMPLE_CHARS);
    } else {
      facts.errors.push({
        ...who,
        kind,
        count: 1,
        lastSeen: time!,
        example: message!.slice(0, EXAMPLE_CHARS),
        file,
      });
    }
  }
}
