import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describeError } from "../host/root.js";
import type { JournalEntry, JournalFilter } from "../journal/types.js";

/**
 * Log rule packs: data files that map journal entries to reasons, like node-problem-detector's
 * rule files, so users can add their own without code. The format is documented in
 * docs/log-rules.md; built-in packs live in collector/logrules/packs/.
 */
export interface LogRule {
  reason: string;
  description: string;
  /** The journal field the pattern is matched against; MESSAGE unless set. */
  field: string;
  match: RegExp;
  /** Only entries whose MESSAGE is logrus JSON with one of these levels; any entry when unset. */
  levels?: ReadonlySet<string>;
}

export interface LogPack {
  name: string;
  description: string;
  /** Journal filters selecting the entries the pack looks at (alternatives, as journalctl's "+"). */
  select: JournalFilter[];
  /** Tried in order; the first rule that matches gives the entry's reason. */
  rules: LogRule[];
  file: string;
}

export interface PackError {
  file: string;
  message: string;
}

export const BUILTIN_PACK_DIR = fileURLToPath(new URL("./packs/", import.meta.url));

const PACK_KEYS = new Set(["name", "description", "select", "rules"]);
const RULE_KEYS = new Set(["reason", "description", "field", "match", "level"]);
/** logrus's level names, as its JSON formatter writes them. */
const LOGRUS_LEVELS = new Set(["trace", "debug", "info", "warning", "error", "fatal", "panic"]);

/**
 * The built-in packs' documents as the build parsed them from their YAML (scripts/pack-index.mjs):
 * `[file name, document]` pairs in file name order. Reading them needs no YAML parser, which the
 * journal worker of must-gather would otherwise load for them alone (some 30 ms of its start).
 * Only the build's copy in dist/ has it; run from the sources, the YAML files are read.
 */
export const PACK_INDEX = "index.json";

/**
 * Loads every *.yaml pack of the directories (the built-in one from its index when the build wrote
 * one), later directories overriding packs of the same name.
 */
export async function loadPacks(dirs: string[]): Promise<{ packs: LogPack[]; errors: PackError[] }> {
  const byName = new Map<string, LogPack>();
  const errors: PackError[] = [];
  for (const dir of dirs) {
    const parsed = (await builtinIndex(dir)) ?? (await readPackDirectory(dir));
    for (const pack of parsed) {
      if ("message" in pack) errors.push(pack);
      else byName.set(pack.name, pack);
    }
  }
  return { packs: [...byName.values()], errors };
}

/**
 * The packs of the built-in directory's index, or undefined for any other directory, or when the
 * index is missing or is not a list of [file name, document] pairs (its YAML files are read then).
 */
async function builtinIndex(dir: string): Promise<(LogPack | PackError)[] | undefined> {
  if (path.resolve(dir) !== path.resolve(BUILTIN_PACK_DIR)) return undefined;
  let documents: unknown;
  try {
    documents = JSON.parse(await readFile(path.join(dir, PACK_INDEX), "utf8"));
  } catch {
    return undefined;
  }
  if (!Array.isArray(documents) || !documents.every(isIndexEntry)) return undefined;
  return documents.map(([name, data]) => checkedPack(data, path.join(dir, name)));
}

function isIndexEntry(entry: unknown): entry is [string, unknown] {
  return Array.isArray(entry) && entry.length === 2 && typeof entry[0] === "string";
}

async function readPackDirectory(dir: string): Promise<(LogPack | PackError)[]> {
  const { documents, errors } = await packDocuments(dir);
  return [...errors, ...documents.map(([name, data]) => checkedPack(data, path.join(dir, name)))];
}

/**
 * The YAML documents of a directory's *.yaml / *.yml files, in file name order, as
 * `[file name, document]` pairs (what the built-in index holds), and the files that do not parse.
 */
export async function packDocuments(
  dir: string,
): Promise<{ documents: [string, unknown][]; errors: PackError[] }> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => /\.ya?ml$/.test(name)).sort();
  } catch (error) {
    return { documents: [], errors: [{ file: dir, message: describeError(error) }] };
  }
  const { parseDocument } = await import("yaml");
  const documents: [string, unknown][] = [];
  const errors: PackError[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      errors.push({ file, message: describeError(error) });
      continue;
    }
    const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
    if (doc.errors.length > 0) errors.push({ file, message: doc.errors[0]!.message.split("\n")[0]! });
    else documents.push([name, doc.toJS()]);
  }
  return { documents, errors };
}

/** A pack document checked as a pack, or why it is not one. */
export function checkedPack(data: unknown, file: string): LogPack | PackError {
  try {
    return parsePack(data, file);
  } catch (error) {
    return { file, message: describeError(error) };
  }
}

function fail(message: string): never {
  throw new Error(message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown, what: string): string {
  return typeof value === "string" && value.trim() !== ""
    ? value
    : fail(`${what} must be a non-empty string`);
}

export function parsePack(data: unknown, file: string): LogPack {
  if (!isObject(data)) fail("a pack is a mapping with name, description, select and rules");
  for (const key of Object.keys(data)) if (!PACK_KEYS.has(key)) fail(`unknown key "${key}"`);
  const name = nonEmptyString(data.name, "name");
  const select = Array.isArray(data.select) ? data.select.map((filter, i) => parseFilter(filter, i)) : [];
  if (select.length === 0) fail("select must list at least one journal filter");
  if (!Array.isArray(data.rules) || data.rules.length === 0) fail("rules must list at least one rule");
  const rules = data.rules.map((rule, i) => parseRule(rule, i));
  return {
    name,
    description: typeof data.description === "string" ? data.description : "",
    select,
    rules,
    file,
  };
}

function parseFilter(filter: unknown, index: number): JournalFilter {
  if (!isObject(filter) || Object.keys(filter).length === 0)
    fail(`select[${index}] must map journal fields to values`);
  const out: JournalFilter = {};
  for (const [field, value] of Object.entries(filter)) {
    if (!/^[A-Z0-9_]+$/.test(field)) fail(`select[${index}]: "${field}" is not a journal field name`);
    const values = Array.isArray(value) ? value : [value];
    if (values.length === 0 || !values.every((v) => typeof v === "string" && v !== "")) {
      fail(`select[${index}].${field} must be a string or a list of strings`);
    }
    out[field] = values as string[];
  }
  return out;
}

function parseRule(rule: unknown, index: number): LogRule {
  if (!isObject(rule)) fail(`rules[${index}] must be a mapping`);
  for (const key of Object.keys(rule)) if (!RULE_KEYS.has(key)) fail(`rules[${index}]: unknown key "${key}"`);
  const reason = nonEmptyString(rule.reason, `rules[${index}].reason`);
  if (!/^[A-Z][A-Za-z0-9]*$/.test(reason)) fail(`rules[${index}].reason "${reason}" must be CamelCase`);
  const source = nonEmptyString(rule.match, `rules[${index}].match`);
  let match: RegExp;
  try {
    match = new RegExp(source);
  } catch (error) {
    fail(`rules[${index}].match is not a valid regular expression: ${describeError(error)}`);
  }
  const parsed: LogRule = {
    reason,
    description: typeof rule.description === "string" ? rule.description : "",
    field: typeof rule.field === "string" ? rule.field : "MESSAGE",
    match,
  };
  if (rule.level !== undefined) parsed.levels = parseLevels(rule.level, index);
  return parsed;
}

function parseLevels(value: unknown, index: number): ReadonlySet<string> {
  const levels = Array.isArray(value) ? value : [value];
  for (const level of levels) {
    if (typeof level !== "string" || !LOGRUS_LEVELS.has(level))
      fail(`rules[${index}].level must be one or a list of ${[...LOGRUS_LEVELS].join(", ")}`);
  }
  if (levels.length === 0) fail(`rules[${index}].level must name at least one level`);
  return new Set(levels as string[]);
}

/** A field's value as text (invalid UTF-8 replaced), or undefined when the entry lacks it. */
export function fieldText(entry: JournalEntry, field: string): string | undefined {
  const value = entry.fields[field];
  if (value === undefined) return undefined;
  return typeof value === "string" ? value : value.toString("utf8");
}

/** An entry's MESSAGE as rules see it and as examples show it, and its logrus level if any. */
export interface LogMessage {
  text: string;
  level: string | null;
}

/** logrus lines parsed, per entry: several packs look at one entry. */
const logrusMessages = new WeakMap<JournalEntry, LogMessage>();

/**
 * The entry's MESSAGE as rules and examples see it. A logrus JSON line (stargz-store's: `time`,
 * `level`, `msg`, `error`) becomes `msg: error`, what a person reads, and keeps its level for
 * rules; it is parsed once per entry however many packs look at it. Any other text is kept as it
 * is: only a MESSAGE that starts with "{" is parsed (or remembered), so other lines cost one
 * character compare.
 */
export function logMessage(entry: JournalEntry): LogMessage {
  const raw = fieldText(entry, "MESSAGE") ?? "";
  if (!raw.startsWith("{")) return { text: raw, level: null };
  let found = logrusMessages.get(entry);
  if (!found) {
    found = fromLogrus(raw) ?? { text: raw, level: null };
    logrusMessages.set(entry, found);
  }
  return found;
}

function fromLogrus(raw: string): LogMessage | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!isObject(parsed) || typeof parsed.msg !== "string") return undefined;
  const error = typeof parsed.error === "string" && parsed.error !== "" ? `: ${parsed.error}` : "";
  return { text: `${parsed.msg}${error}`, level: typeof parsed.level === "string" ? parsed.level : null };
}

/** The text a rule's pattern is matched against: MESSAGE as logMessage gives it, other fields as they are. */
function ruleText(entry: JournalEntry, field: string): string | undefined {
  const text = fieldText(entry, field);
  return field === "MESSAGE" && text?.startsWith("{") ? logMessage(entry).text : text;
}

function ruleMatches(rule: LogRule, entry: JournalEntry): boolean {
  const text = ruleText(entry, rule.field);
  if (text === undefined || !rule.match.test(text)) return false;
  return !rule.levels || rule.levels.has(logMessage(entry).level ?? "");
}

/**
 * A pack made quick to apply, once per pack: its selection as [field, values] lists, and per
 * field one regular expression that is every rule of that field as alternatives. Most entries
 * match no rule; the one expression tells so in one scan of the text instead of one per rule, and
 * only when it matches are the rules tried in order, as before. A field whose rules use
 * backreferences (whose numbers an alternation would shift) has no such expression.
 */
interface CompiledPack {
  select: (entry: JournalEntry) => boolean;
  /** field -> the rules' alternation, or null when the rules must be tried one by one. */
  anyRule: Map<string, RegExp | null>;
}

const compiled = new WeakMap<LogPack, CompiledPack>();

function compile(pack: LogPack): CompiledPack {
  let found = compiled.get(pack);
  if (found) return found;
  const select = filterTest(pack.select);
  const anyRule = new Map<string, RegExp | null>();
  for (const field of new Set(pack.rules.map((rule) => rule.field))) {
    const rules = pack.rules.filter((rule) => rule.field === field);
    let any: RegExp | null = null;
    if (!rules.some((rule) => rule.match.flags !== "" || /\\(?:[1-9]|k<)/.test(rule.match.source))) {
      try {
        any = new RegExp(rules.map((rule) => `(?:${rule.match.source})`).join("|"));
      } catch {
        any = null; // e.g. a group name used by two rules
      }
    }
    anyRule.set(field, any);
  }
  found = { select, anyRule };
  compiled.set(pack, found);
  return found;
}

/**
 * Journal filters as one test of an entry, as libsystemd applies them as matches: fields of one
 * filter ANDed, the values given for a field ORed, the filters ORed; no filter matches every entry.
 */
export function filterTest(filters: readonly JournalFilter[]): (entry: JournalEntry) => boolean {
  if (filters.length === 0) return () => true;
  const sets = filters.map((filter) =>
    Object.entries(filter).map(
      ([field, wanted]) =>
        [field, new Set(Array.isArray(wanted) ? wanted : [wanted])] as [string, Set<string>],
    ),
  );
  return (entry) => {
    for (const filter of sets) {
      let all = true;
      for (const [field, wanted] of filter) {
        const value = fieldText(entry, field);
        if (value === undefined || !wanted.has(value)) {
          all = false;
          break;
        }
      }
      if (all) return true;
    }
    return false;
  };
}

/** The first rule of the pack that matches the entry, if the entry is one the pack selects. */
export function classify(pack: LogPack, entry: JournalEntry): LogRule | undefined {
  const { select, anyRule } = compile(pack);
  if (!select(entry)) return undefined;
  let maybe = false;
  for (const [field, any] of anyRule) {
    if (any === null) {
      maybe = true;
      break;
    }
    const text = ruleText(entry, field);
    if (text !== undefined && any.test(text)) {
      maybe = true;
      break;
    }
  }
  if (!maybe) return undefined;
  return pack.rules.find((rule) => ruleMatches(rule, entry));
}
