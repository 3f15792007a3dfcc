import { readFile } from "node:fs/promises";
import path from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import type { Host } from "../host/host.js";
import { describeError } from "../host/root.js";
import { AnswerError, httpGet, socketPathOf, socketPathProblem } from "../host/unix-http.js";
import { type Table, table } from "./config-files.js";
import { Absent, type SourceDefinition } from "./source.js";
import { crioOf, type StorageConfigFacts } from "./storage-config.js";

/** An answer of one of CRI-O's HTTP inspect endpoints on its socket. */
export type EndpointAnswer<T> =
  | { status: "ok"; value: T }
  /** Nothing answers on the socket (CRI-O stopped, or the socket is elsewhere). */
  | { status: "unreachable"; error: string }
  /** It answered, but not with what CRI-O sends (HTTP error, malformed body). */
  | { status: "error"; error: string };

/** The store settings in GET /config, the TOML of the configuration the running CRI-O uses. */
export interface CrioEffectiveConfig {
  root: string;
  runroot: string;
  imagestore: string;
  storageDriver: string;
  storageOption: string[];
  additionalArtifactStores: string[];
  cleanShutdownFile: string;
}

export interface CrioInspectFacts {
  /** Host path of the socket asked. */
  socket: string;
  config: EndpointAnswer<CrioEffectiveConfig>;
  /** The running crio process and when it started (from /proc), if one runs. */
  process: { pid: number; startedAt: string } | null;
  /** Configuration files CRI-O reads that were modified after the running crio started. */
  changedSinceStart: { path: string; modifiedAt: string }[];
  cleanShutdown: CleanShutdownFact;
}

/**
 * CRI-O deletes clean_shutdown_file at start (creating `<file>.supported`) and writes it when it
 * stops cleanly (cmd/crio/main.go). So: running → normally absent; stopped with the file → clean;
 * stopped without it while `.supported` exists → the last stop was unclean and the next start
 * repairs or wipes storage.
 */
export interface CleanShutdownFact {
  file: string;
  present: boolean;
  supportedMarker: boolean;
  state: "running" | "clean" | "unclean" | "unknown";
}

type Inputs = { "storage-config": StorageConfigFacts; "crio-inspect": CrioInspectFacts };

/** Per request: CRI-O answers /config from memory, at once. */
export const ENDPOINT_DEADLINE_MS = 2000;
/** /config of a real node is ~20 KiB of TOML; anything near this is not CRI-O. */
export const MAX_ANSWER_BYTES = 4 * 1024 * 1024;
/** USER_HZ: the unit of /proc/<pid>/stat's starttime, 100 on every Linux architecture. */
const CLOCK_TICKS_PER_SECOND = 100;
/** /proc/stat's btime is whole seconds (truncated), so a start time computed from it can be up to 1 s early. */
const START_TIME_SLACK_MS = 1000;

export const crioInspectSource: SourceDefinition<Inputs, "crio-inspect"> = {
  name: "crio-inspect",
  deadlineMs: 5000,
  async collect({ host, result }) {
    const found = crioOf(await result("storage-config"));
    if (found instanceof Absent) return found;
    const { storage, crio } = found;
    if (storage.runtimeGuess.kind !== "crio") {
      return new Absent(`the runtime is not CRI-O (${storage.runtimeGuess.evidence})`);
    }
    // `listen` is a path; the unix:// form crictl and the kubelet use for the same socket is tolerated.
    const socket = socketPathOf(crio.listen.value) ?? crio.listen.value;
    // /info is the cri source's (crioInfo): asked once per run, judged by CRI_IMAGEFS_MISMATCH.
    const [config, process] = await Promise.all([
      askSocket(host, socket, "/config", parseConfig),
      storage.crioProcess ? processStart(host.procRoot, storage.crioProcess.pid) : null,
    ]);
    const changedSinceStart = process ? changedSince(storage, new Date(process.startedAt)) : [];
    // The running CRI-O's own setting when it told us, else what the files say.
    const file = config.status === "ok" ? config.value.cleanShutdownFile : crio.cleanShutdownFile.value;
    const cleanShutdown = await cleanShutdownOf(host, file, storage.crioProcess !== null);
    return { socket, config, process, changedSinceStart, cleanShutdown };
  },
};

type Parse<T> = (body: string) => T;

/** GET `endpoint` from CRI-O's socket (a host path), as an answer or the reason there is none. */
async function askSocket<T>(
  host: Host,
  hostSocket: string,
  endpoint: string,
  parse: Parse<T>,
): Promise<EndpointAnswer<T>> {
  let local: string;
  try {
    local = (await host.root.resolve(hostSocket)).local;
  } catch (error) {
    return { status: "error", error: `resolving ${hostSocket}: ${describeError(error)}` };
  }
  const pathProblem = socketPathProblem(local);
  if (pathProblem) return { status: "error", error: pathProblem };
  let body: string;
  try {
    body = await httpGet(local, endpoint, ENDPOINT_DEADLINE_MS, MAX_ANSWER_BYTES);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (error instanceof AnswerError) return { status: "error", error: error.message };
    if (code === "ECONNREFUSED" || code === "ENOENT" || code === "ENOTDIR" || code === "ETIMEDOUT") {
      return { status: "unreachable", error: `GET ${endpoint} on ${hostSocket}: ${describeError(error)}` };
    }
    return { status: "error", error: `GET ${endpoint} on ${hostSocket}: ${describeError(error)}` };
  }
  try {
    return { status: "ok", value: parse(body) };
  } catch (error) {
    return { status: "error", error: `GET ${endpoint} on ${hostSocket}: ${describeError(error)}` };
  }
}

/**
 * GET /config: the running configuration encoded by BurntSushi/toml from tomlConfig
 * (pkg/config/config.go ToBytes): RootConfig's keys in [crio], APIConfig's in [crio.api],
 * RuntimeConfig's in [crio.runtime]. Nil lists (storage_option, additional_artifact_stores by
 * default) are left out by the encoder, so a missing list is an empty one.
 */
export function parseConfig(body: string): CrioEffectiveConfig {
  let data: Table;
  try {
    data = parseToml(body) as Table;
  } catch (error) {
    if (error instanceof TomlError) {
      const first = error.message.split("\n")[0] ?? error.message;
      throw new Error(`answer is not TOML (line ${error.line}, column ${error.column}): ${first}`);
    }
    throw new Error(`answer is not TOML: ${describeError(error)}`);
  }
  const crio = table(data, "crio");
  if (!crio) throw new Error("answer has no [crio] table");
  const runtime = table(data, "crio", "runtime");
  const text = (from: Table | undefined, where: string, key: string): string => {
    const value = from?.[key];
    if (value === undefined) return "";
    if (typeof value !== "string") throw new Error(`${where} ${key} is not a string`);
    return value;
  };
  const list = (from: Table | undefined, where: string, key: string): string[] => {
    const value = from?.[key];
    if (value === undefined) return [];
    if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
      throw new Error(`${where} ${key} is not a list of strings`);
    }
    return value as string[];
  };
  return {
    root: text(crio, "[crio]", "root"),
    runroot: text(crio, "[crio]", "runroot"),
    imagestore: text(crio, "[crio]", "imagestore"),
    storageDriver: text(crio, "[crio]", "storage_driver"),
    storageOption: list(crio, "[crio]", "storage_option"),
    additionalArtifactStores: list(runtime, "[crio.runtime]", "additional_artifact_stores"),
    cleanShutdownFile: text(crio, "[crio]", "clean_shutdown_file"),
  };
}

/**
 * When the process started: /proc/<pid>/stat field 22 (starttime, clock ticks after boot) plus
 * /proc/stat's btime. Null when either cannot be read (the process exited meanwhile).
 */
async function processStart(procRoot: string, pid: number): Promise<CrioInspectFacts["process"]> {
  try {
    const [pidStat, systemStat] = await Promise.all([
      readProcFile(path.join(procRoot, String(pid), "stat")),
      readProcFile(path.join(procRoot, "stat")),
    ]);
    const ticks = startTicks(pidStat);
    const btime = /^btime\s+(\d+)\s*$/m.exec(systemStat)?.[1];
    if (ticks === undefined || btime === undefined) return null;
    const startedMs = Number(btime) * 1000 + (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
    return { pid, startedAt: new Date(Math.round(startedMs)).toISOString() };
  } catch {
    return null;
  }
}

/**
 * A /proc file, whole: procfs files are generated on read and bounded by the kernel, and
 * /proc/stat of a many-CPU machine (a cpuN line each, then intr with a count per interrupt) runs
 * past 64 KiB before its btime line.
 */
async function readProcFile(file: string): Promise<string> {
  return (await readFile(file)).toString("utf8");
}

/** Field 22 of /proc/<pid>/stat. comm (field 2) may hold spaces and parentheses: split after the last ")". */
export function startTicks(stat: string): number | undefined {
  const close = stat.lastIndexOf(")");
  if (close < 0) return undefined;
  const fields = stat
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const value = fields[19];
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/**
 * Configuration files CRI-O reads that were modified after it started. containerd's files are
 * not CRI-O's. A file counts only when modified more than btime's rounding after the computed
 * start, so one written just before a restart is not reported as pending.
 */
function changedSince(storage: StorageConfigFacts, startedAt: Date): CrioInspectFacts["changedSinceStart"] {
  // The times storage-config saw when it read each file (whatever its name's bytes).
  const after = startedAt.getTime() + START_TIME_SLACK_MS;
  return storage.files.flatMap((file) =>
    file.modifiedAt !== undefined &&
    !file.kind.startsWith("containerd") &&
    Date.parse(file.modifiedAt) >= after
      ? [{ path: file.path, modifiedAt: file.modifiedAt }]
      : [],
  );
}

/** The clean-shutdown file and its `.supported` marker (internal/lib/container_server.go ShutdownWasUnclean). */
async function cleanShutdownOf(host: Host, file: string, running: boolean): Promise<CleanShutdownFact> {
  // An empty clean_shutdown_file turns the mechanism off: nothing to look at.
  const present = file !== "" && (await host.exists(file));
  const supportedMarker = file !== "" && (await host.exists(`${file}.supported`));
  let state: CleanShutdownFact["state"] = "unknown";
  if (running) state = "running";
  else if (present) state = "clean";
  else if (supportedMarker) state = "unclean";
  return { file, present, supportedMarker, state };
}
