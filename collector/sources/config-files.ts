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

/**
 * Loads the `*.conf` drop-ins of a directory in bytewise name order, the order Go programs
 * (CRI-O, the kubelet, containers/*) apply them. Names that are not UTF-8 are read by their raw
 * bytes, as those programs would, and shown with \xNN escapes.
 */
export async function loadDropIns(
  host: Host,
  hostDir: string,
  kind: string,
  format: "toml" | "yaml-or-json",
  suffix = ".conf",
): Promise<{ dir: ConfigFileFact | null; files: LoadedConfig[] }> {
  let local: string;
  let names: Awaited<ReturnType<typeof listDirectory>>;
  try {
    local = (await host.root.resolve(hostDir)).local;
    names = await listDirectory(local);
  } catch (error) {
    if (isErrno(error, "ENOENT")) return { dir: null, files: [] };
    return {
      dir: { path: hostDir, kind, status: "error", error: { message: describeError(error) } },
      files: [],
    };
  }
  const files: LoadedConfig[] = [];
  for (const name of names) {
    // A directory named like a drop-in is skipped by the programs we mirror, and so by us.
    if (!name.display.endsWith(suffix) || name.isDirectory) continue;
    const hostPath = path.posix.join(hostDir, name.display);
    const isUtf8 = Buffer.from(name.display).equals(name.raw);
    const ref: FileRef = isUtf8 ? { hostPath } : { hostPath, rawLocal: joinRaw(local, name.raw) };
    files.push(await loadFile(host, ref, kind, format));
  }
  return { dir: null, files };
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
