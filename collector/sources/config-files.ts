import path from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { joinRaw, listDirectory, readBoundedText } from "../host/files.js";
import type { Host } from "../host/host.js";
import { describeError, isErrno } from "../host/root.js";

export interface ConfigFileFact {
  /** Host path as the program that reads it would name it. */
  path: string;
  /** What the file is, e.g. "storage.conf" or "crio.conf.d". */
  kind: string;
  status: "ok" | "missing" | "error";
  format?: "toml" | "yaml" | "json";
  /** Set when status is "error": what went wrong, with the line when the parser knows it. */
  error?: { message: string; line?: number; column?: number };
  /** Set when the file was larger than we read; settings past the cut were not seen. */
  truncated?: boolean;
  /** When the file read was last modified (ISO 8601), when known. */
  modifiedAt?: string;
}

export type Table = Record<string, unknown>;

export interface LoadedConfig {
  fact: ConfigFileFact;
  data?: Table;
}

const MAX_CONFIG_BYTES = 1024 * 1024;

/** Where a file is read from: a host path (resolved in the host root) or raw bytes of a drop-in name. */
type FileRef = { hostPath: string; rawLocal?: Buffer };

async function readConfigText(host: Host, ref: FileRef) {
  if (ref.rawLocal) return readBoundedText(ref.rawLocal, MAX_CONFIG_BYTES);
  return host.readText(ref.hostPath, MAX_CONFIG_BYTES);
}

async function loadFile(
  host: Host,
  ref: FileRef,
  kind: string,
  format: "toml" | "yaml" | "json" | "yaml-or-json",
): Promise<LoadedConfig> {
  const fact: ConfigFileFact = { path: ref.hostPath, kind, status: "ok" };
  let text: string;
  try {
    const read = await readConfigText(host, ref);
    text = read.text;
    if (read.truncated) fact.truncated = true;
    if (read.modifiedMs !== undefined) fact.modifiedAt = new Date(read.modifiedMs).toISOString();
  } catch (error) {
    if (isErrno(error, "ENOENT")) return { fact: { ...fact, status: "missing" } };
    return { fact: { ...fact, status: "error", error: { message: describeError(error) } } };
  }
  const parsed = await parseConfigText(text, format);
  fact.format = parsed.format;
  if ("error" in parsed) return { fact: { ...fact, status: "error", error: parsed.error } };
  return { fact, data: parsed.data };
}

type Parsed =
  | { format: "toml" | "yaml" | "json"; data: Table }
  | { format: "toml" | "yaml" | "json"; error: NonNullable<ConfigFileFact["error"]> };

export async function parseConfigText(
  text: string,
  format: "toml" | "yaml" | "json" | "yaml-or-json",
): Promise<Parsed> {
  if (format === "toml") return parseTomlText(text);
  if (format === "json" || (format === "yaml-or-json" && text.trimStart().startsWith("{"))) {
    return parseJsonText(text);
  }
  return parseYamlText(text);
}

function parseTomlText(text: string): Parsed {
  try {
    return { format: "toml", data: parseToml(text) as Table };
  } catch (error) {
    if (error instanceof TomlError) {
      const message = error.message.split("\n")[0] ?? error.message;
      return { format: "toml", error: { message, line: error.line, column: error.column } };
    }
    return { format: "toml", error: { message: describeError(error) } };
  }
}

async function parseYamlText(text: string): Promise<Parsed> {
  const { parseDocument } = await import("yaml"); // only kubelet configs are YAML; skip its load otherwise
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  const first = doc.errors[0];
  if (first) {
    const { line, column } = lineAndColumn(text, first.pos[0]);
    return { format: "yaml", error: { message: first.message.split("\n")[0]!, line, column } };
  }
  const data = doc.toJS();
  if (data === null || data === undefined) return { format: "yaml", data: {} };
  if (typeof data !== "object" || Array.isArray(data)) {
    return { format: "yaml", error: { message: "expected a mapping at the top level" } };
  }
  return { format: "yaml", data: data as Table };
}

function parseJsonText(text: string): Parsed {
  try {
    const data = JSON.parse(text) as unknown;
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      return { format: "json", error: { message: "expected an object at the top level" } };
    }
    return { format: "json", data: data as Table };
  } catch (error) {
    const message = describeError(error);
    const position = /position (\d+)/.exec(message);
    if (!position) return { format: "json", error: { message } };
    const { line, column } = lineAndColumn(text, Number(position[1]));
    return { format: "json", error: { message, line, column } };
  }
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - before.lastIndexOf("\n") };
}

export function loadToml(host: Host, hostPath: string, kind: string) {
  return loadFile(host, { hostPath }, kind, "toml");
}

export function loadYamlOrJson(host: Host, hostPath: string, kind: string) {
  return loadFile(host, { hostPath }, kind, "yaml-or-json");
}

/** Which entries of a drop-in directory the program that reads it applies. */
export interface DropInRule {
  /** Only names ending so; every entry that is not a directory when unset. */
  suffix?: string;
  /**
   * Subdirectories too, each where its name sorts (filepath.Walk's order). CRI-O's UpdateFromPath
   * walks crio.conf.d so and applies every file, a `10-x.conf.rpmsave` as much as a `10-x.conf`;
   * the kubelet walks its --config-dir so and applies the `*.conf` files.
   */
  walk?: boolean;
}

/** How deep and how many files a walked drop-in directory is followed (a node has a handful). */
const MAX_WALK_DEPTH = 8;
const MAX_WALK_FILES = 500;

/**
 * Loads the drop-ins of a directory in bytewise name order, the order Go programs (CRI-O, the
 * kubelet, containers/*) apply them. Names that are not UTF-8 are read by their raw bytes, as
 * those programs would, and shown with \xNN escapes.
 */
export async function loadDropIns(
  host: Host,
  hostDir: string,
  kind: string,
  format: "toml" | "yaml-or-json",
  rule: DropInRule = { suffix: ".conf" },
): Promise<{ dir: ConfigFileFact | null; files: LoadedConfig[] }> {
  let local: string;
  try {
    local = (await host.root.resolve(hostDir)).local;
  } catch (error) {
    return { dir: dirError(hostDir, kind, error), files: [] };
  }
  const refs: FileRef[] = [];
  const cut = { reason: undefined as string | undefined };
  try {
    await collectDropIns(rule, local, hostDir, 0, refs, cut);
  } catch (error) {
    if (isErrno(error, "ENOENT")) return { dir: null, files: [] };
    return { dir: dirError(hostDir, kind, error), files: [] };
  }
  const files: LoadedConfig[] = [];
  for (const ref of refs) files.push(await loadFile(host, ref, kind, format));
  const dir: ConfigFileFact | null = cut.reason
    ? { path: hostDir, kind, status: "error", error: { message: cut.reason } }
    : null;
  return { dir, files };
}

function dirError(hostDir: string, kind: string, error: unknown): ConfigFileFact {
  return { path: hostDir, kind, status: "error", error: { message: describeError(error) } };
}

/**
 * Appends the drop-ins of one directory (and, walking, of its subdirectories where they sort).
 * `localDir` is a Buffer once a name on the way was not UTF-8: then every file below is read by
 * its raw bytes.
 */
async function collectDropIns(
  rule: DropInRule,
  localDir: string | Buffer,
  hostDir: string,
  depth: number,
  refs: FileRef[],
  cut: { reason: string | undefined },
): Promise<void> {
  for (const name of await listDirectory(localDir)) {
    const hostPath = path.posix.join(hostDir, name.display);
    const localPath =
      typeof localDir === "string" && Buffer.from(name.display).equals(name.raw)
        ? path.join(localDir, name.display)
        : joinRaw(localDir, name.raw);
    if (name.isDirectory) {
      // Not walked, a directory is skipped, even one named like a drop-in, as the programs do.
      if (!rule.walk) continue;
      if (depth + 1 >= MAX_WALK_DEPTH) {
        cut.reason = `${hostPath}: more than ${MAX_WALK_DEPTH} levels of directories: not followed`;
        continue;
      }
      try {
        await collectDropIns(rule, localPath, hostPath, depth + 1, refs, cut);
      } catch (error) {
        cut.reason = `${hostPath}: ${describeError(error)}`;
      }
      continue;
    }
    if (rule.suffix !== undefined && !name.display.endsWith(rule.suffix)) continue;
    // Only a file past the cap is cut: exactly MAX_WALK_FILES files, then a directory or a file
    // that is no drop-in, are all read.
    if (refs.length >= MAX_WALK_FILES) {
      cut.reason = `more than ${MAX_WALK_FILES} files: the rest was not read`;
      return;
    }
    refs.push(typeof localPath === "string" ? { hostPath } : { hostPath, rawLocal: localPath });
  }
}

/** Reads a nested table by keys, e.g. table(data, "crio", "image"). */
export function table(data: Table | undefined, ...keys: string[]): Table | undefined {
  let current: unknown = data;
  for (const key of keys) {
    if (typeof current !== "object" || current === null || Array.isArray(current)) return undefined;
    current = (current as Table)[key];
  }
  return typeof current === "object" && current !== null && !Array.isArray(current)
    ? (current as Table)
    : undefined;
}

export function stringValue(data: Table | undefined, key: string): string | undefined {
  const value = data?.[key];
  return typeof value === "string" ? value : undefined;
}

export function stringList(data: Table | undefined, key: string): string[] | undefined {
  const value = data?.[key];
  if (typeof value === "string") return [value];
  if (!Array.isArray(value)) return undefined;
  return value.filter((item): item is string => typeof item === "string");
}
