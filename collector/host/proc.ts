import { readdir, readFile } from "node:fs/promises";
import path from "node:path";

export interface ProcessInfo {
  pid: number;
  /** Short name from /proc/<pid>/comm (at most 15 bytes, as the kernel truncates it). */
  comm: string;
  argv: string[];
}

const MAX_CMDLINE_BYTES = 64 * 1024;

/** Every process whose cmdline is readable; kernel threads (empty cmdline) are left out. */
export async function listProcesses(procRoot: string): Promise<ProcessInfo[]> {
  let names: string[];
  try {
    names = await readdir(procRoot);
  } catch {
    return [];
  }
  const pids = names.filter((name) => /^\d+$/.test(name)).map(Number);
  const infos = await Promise.all(pids.map((pid) => readProcess(procRoot, pid)));
  return infos.filter((info): info is ProcessInfo => info !== undefined && info.argv.length > 0);
}

async function readProcess(procRoot: string, pid: number): Promise<ProcessInfo | undefined> {
  try {
    const dir = path.join(procRoot, String(pid));
    const [cmdline, comm] = await Promise.all([
      readFile(path.join(dir, "cmdline")),
      readFile(path.join(dir, "comm"), "utf8"),
    ]);
    const argv = cmdline.subarray(0, MAX_CMDLINE_BYTES).toString("utf8").split("\0");
    if (argv.at(-1) === "") argv.pop();
    return { pid, comm: comm.trim(), argv };
  } catch {
    return undefined; // the process exited while we looked, or is not ours to read
  }
}

/** The first process whose executable name (argv[0]'s basename or comm) is one of `names`. */
export function findProcess(processes: ProcessInfo[], names: string[]): ProcessInfo | undefined {
  return processes.find((p) => names.includes(path.basename(p.argv[0] ?? "")) || names.includes(p.comm));
}

/**
 * Reads only the named variables from a process's environment. The environment can hold
 * credentials, so nothing else is ever kept.
 */
export async function readEnvironment(
  procRoot: string,
  pid: number,
  names: string[],
): Promise<Record<string, string>> {
  const wanted: Record<string, string> = {};
  let raw: Buffer;
  try {
    raw = await readFile(path.join(procRoot, String(pid), "environ"));
  } catch {
    return wanted;
  }
  for (const entry of raw.toString("utf8").split("\0")) {
    const eq = entry.indexOf("=");
    if (eq <= 0) continue;
    const name = entry.slice(0, eq);
    if (names.includes(name)) wanted[name] = entry.slice(eq + 1);
  }
  return wanted;
}

/**
 * The value of a command-line flag in Go's flag/pflag styles: --name=value, --name value,
 * -name=value, -name value; plus one-letter shorthands. The last occurrence wins, as in pflag.
 */
export function flagValue(argv: string[], names: string[]): string | undefined {
  let value: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    for (const name of names) {
      const prefixes = name.length === 1 ? [`-${name}`] : [`--${name}`, `-${name}`];
      for (const prefix of prefixes) {
        if (arg === prefix && i + 1 < argv.length) value = argv[i + 1];
        else if (arg.startsWith(`${prefix}=`)) value = arg.slice(prefix.length + 1);
      }
    }
  }
  return value;
}

/** Every value of a repeatable flag, in order. */
export function flagValues(argv: string[], names: string[]): string[] {
  const values: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    for (const name of names) {
      const prefix = name.length === 1 ? `-${name}` : `--${name}`;
      if (arg === prefix && i + 1 < argv.length) values.push(argv[i + 1]!);
      else if (arg.startsWith(`${prefix}=`)) values.push(arg.slice(prefix.length + 1));
    }
  }
  return values;
}
