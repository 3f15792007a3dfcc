/**
 * libselinux's file_contexts, re-implemented: parsing the policy's files and the substitution
 * (equivalence) files, and the expected-label lookup with libselinux's rules
 * (SELinuxProject/selinux libselinux/src/label_file.{c,h}, 3.8+; see the fact sheet §2):
 *
 * - a key is normalised (runs of "/" collapsed, a trailing "/" dropped), then substituted: one
 *   rule of file_contexts.subs (last line first, component-boundary prefix), then one rule of
 *   file_contexts.subs_dist applied to the result;
 * - a literal spec (no unescaped regex meta character) that equals the key wins, the one from the
 *   later input file (base, homedirs, local) first;
 * - otherwise the last regex, in input order, that matches `^regex$` (DOTALL) wins;
 * - a spec with a file-type flag only applies to that kind of file; `<<none>>` means "no label".
 *
 * Paths are matched as byte strings (bytes.ts), as libselinux matches bytes.
 *
 * Speed: each regex carries its literal stem (every key it matches starts with it) and, for the
 * common `STEM(/.*)?` and `STEM.*` shapes, a match test that needs no regex. `scope(dir)` returns a
 * matcher narrowed to the specs that can match `dir` or something below it, and drops every spec
 * that a later spec matching the whole subtree overrides; in an image store that usually leaves
 * one spec, so files below get their expected label without any string being built.
 */
import type { Host } from "../host/host.js";
import { toByteString } from "./bytes.js";
import { NONE_MARKER, parseContext } from "./context.js";
import { compileSpecRegex } from "./pcre.js";

export type FileKind = "file" | "dir" | "symlink" | "block" | "char" | "fifo" | "socket";

const FLAG_KINDS: Record<string, FileKind> = {
  "--": "file",
  "-d": "dir",
  "-l": "symlink",
  "-b": "block",
  "-c": "char",
  "-p": "fifo",
  "-s": "socket",
};

export const FILE_KINDS: readonly FileKind[] = ["file", "dir", "symlink", "block", "char", "fifo", "socket"];

/** One line of a file_contexts file. */
export interface FileContextSpec {
  /** The regex (or literal path) as written. */
  pattern: string;
  /** The file-type flag, null when the line has none (all kinds). */
  kind: FileKind | null;
  /** The context, or null for `<<none>>`. */
  context: string | null;
  file: string;
  line: number;
}

export interface InvalidLine {
  file: string;
  line: number;
  text: string;
  reason: string;
}

export interface ParsedFileContexts {
  file: string;
  /** Lines in the file (comments and blanks included). */
  lines: number;
  specs: FileContextSpec[];
  invalid: InvalidLine[];
}

export interface SubstitutionRule {
  /** The path as it is on this host (e.g. /var/lib/images). */
  alias: string;
  /** The path the policy labels it like (e.g. /var/lib/containers/storage). */
  original: string;
  file: string;
  line: number;
}

export interface ParsedSubstitutions {
  file: string;
  lines: number;
  rules: SubstitutionRule[];
}

export type LookupResult =
  | { kind: "label"; context: string; spec: FileContextSpec }
  | { kind: "none"; spec: FileContextSpec }
  | { kind: "nomatch" };

export const NO_MATCH: LookupResult = Object.freeze({ kind: "nomatch" });

const META = new Set([".", "^", "$", "?", "*", "+", "|", "[", "(", "{", "]", ")", "}"]);
/** Escapes libselinux still treats as literal (regex_has_meta_chars). */
const LITERAL_ESCAPES = new Set([...META, "-", "_", ","]);
const QUANTIFIERS = new Set(["?", "*", "+", "{"]);

/**
 * Splits a pattern at its first meta character. `literal` is the unescaped text before it, or the
 * whole unescaped pattern when it has none (then the spec is literal). `meta` is the character.
 */
function literalPrefix(pattern: string): { literal: string; meta: string | null; hasAlternation: boolean } {
  let literal = "";
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i]!;
    if (c === "\\") {
      const next = pattern[i + 1];
      if (next !== undefined && LITERAL_ESCAPES.has(next)) {
        literal += next;
        i += 1;
        continue;
      }
      return { literal, meta: "\\", hasAlternation: hasAlternation(pattern) };
    }
    if (META.has(c)) return { literal, meta: c, hasAlternation: hasAlternation(pattern) };
    literal += c;
  }
  return { literal, meta: null, hasAlternation: false };
}

/** Whether "|" occurs unescaped outside a character class (conservative: any class parsing doubt counts). */
function hasAlternation(pattern: string): boolean {
  let inClass = false;
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i];
    if (c === "\\") i += 1;
    else if (inClass) {
      if (c === "]") inClass = false;
    } else if (c === "[") {
      inClass = true;
      if (pattern[i + 1] === "^") i += 1;
      if (pattern[i + 1] === "]") i += 1;
    } else if (c === "|") return true;
  }
  return false;
}

function parseKind(flag: string): FileKind | undefined {
  return Object.hasOwn(FLAG_KINDS, flag) ? FLAG_KINDS[flag] : undefined;
}

/** Parses one file_contexts file (`regex [file-type] context|<<none>>` lines, `#` comments). */
export function parseFileContexts(text: string, fileName: string): ParsedFileContexts {
  const specs: FileContextSpec[] = [];
  const invalid: InvalidLine[] = [];
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((raw, index) => {
    const parsed = parseSpecLine(raw, fileName, index + 1);
    if (parsed === null) return;
    if ("reason" in parsed) invalid.push(parsed);
    else specs.push(parsed);
  });
  return { file: fileName, lines: lines.length, specs, invalid };
}

function parseSpecLine(raw: string, file: string, line: number): FileContextSpec | InvalidLine | null {
  const trimmed = raw.trim();
  if (trimmed === "" || trimmed.startsWith("#")) return null;
  const bad = (reason: string): InvalidLine => ({ file, line, text: raw, reason });
  // read_spec_entries reads at most three fields and ignores what follows.
  const fields = trimmed.split(/\s+/);
  if (fields.length < 2) return bad("missing fields");
  const pattern = fields[0]!;
  const flag = fields.length >= 3 ? fields[1]! : null;
  const contextText = fields.length >= 3 ? fields[2]! : fields[1]!;
  let kind: FileKind | null = null;
  if (flag !== null) {
    const parsed = parseKind(flag);
    if (parsed === undefined) return bad(`invalid file type ${flag}`);
    kind = parsed;
  }
  if (contextText !== NONE_MARKER && parseContext(contextText).kind !== "context") {
    return bad(`invalid context ${contextText}`);
  }
  if (literalPrefix(pattern).meta !== null) {
    try {
      compileSpecRegex(toByteString(pattern));
    } catch (error) {
      return bad(`invalid regex ${pattern}: ${(error as Error).message}`);
    }
  }
  return { pattern, kind, context: contextText === NONE_MARKER ? null : contextText, file, line };
}

/** Parses file_contexts.subs or .subs_dist: `alias original` per line, `#` comments. */
export function parseSubstitutions(text: string, fileName: string): ParsedSubstitutions {
  const rules: SubstitutionRule[] = [];
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((raw, index) => {
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const [alias, original] = trimmed.split(/\s+/);
    // selabel_subs_init skips lines without two fields, silently.
    if (!alias || !original) return;
    rules.push({ alias, original, file: fileName, line: index + 1 });
  });
  return { file: fileName, lines: lines.length, rules };
}

/** Collapses runs of "/" and drops a trailing "/" (lookup_all's key clean-up). */
export function normalizeKey(path: string): string {
  let key = path.includes("//") ? path.replace(/\/{2,}/g, "/") : path;
  if (key.length > 1 && key.endsWith("/")) key = key.slice(0, -1);
  return key;
}

/** The prefix every path strictly below `dir` starts with. */
function childPrefix(dir: string): string {
  return dir === "/" ? "/" : `${dir}/`;
}

export function joinKey(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

interface CompiledRule {
  alias: string;
  original: string;
  line: SubstitutionRule;
}

/** Substitution (equivalence) rules of .subs and .subs_dist, applied as selabel_sub_key does. */
export class Substitutions {
  readonly local: readonly SubstitutionRule[];
  readonly dist: readonly SubstitutionRule[];
  /** Last line first ("LIFO order for backward compatibility"), as byte strings. */
  #local: CompiledRule[];
  #dist: CompiledRule[];

  constructor(local: readonly SubstitutionRule[] = [], dist: readonly SubstitutionRule[] = []) {
    this.local = local;
    this.dist = dist;
    const compile = (rules: readonly SubstitutionRule[]) =>
      rules
        .map((line) => ({ alias: toByteString(line.alias), original: toByteString(line.original), line }))
        .reverse();
    this.#local = compile(local);
    this.#dist = compile(dist);
  }

  get empty(): boolean {
    return this.#local.length === 0 && this.#dist.length === 0;
  }

  /** One .subs rule, then one .subs_dist rule on the result; on a normalised byte-string key. */
  apply(key: string): string {
    return this.empty ? key : this.#substitute(key, null);
  }

  /** The lines apply() uses for a normalised byte-string key: at most one of .subs, then one of .subs_dist. */
  applied(key: string): SubstitutionRule[] {
    const lines: SubstitutionRule[] = [];
    this.#substitute(key, lines);
    return lines;
  }

  #substitute(key: string, used: SubstitutionRule[] | null): string {
    const local = firstRule(this.#local, key);
    const middle = local ? rewrite(local, key) : key;
    const dist = firstRule(this.#dist, middle);
    if (used) for (const rule of [local, dist]) if (rule) used.push(rule.line);
    return dist ? rewrite(dist, middle) : middle;
  }

  /**
   * Whether every path strictly below `dir` substitutes as `dir` does (same rule, same prefix
   * rewrite): true when no alias of either file lies strictly below `dir` (or below what the
   * first file made of it). Then child keys can be built from the directory's key.
   */
  stableBelow(dir: string): boolean {
    const below = childPrefix(dir);
    if (this.#local.some((r) => r.alias.startsWith(below))) return false;
    const local = firstRule(this.#local, dir);
    const belowMiddle = childPrefix(local ? rewrite(local, dir) : dir);
    return !this.#dist.some((r) => r.alias.startsWith(belowMiddle));
  }
}

/** The rule selabel_sub tries first that matches the key at a path-component boundary. */
function firstRule(rules: CompiledRule[], key: string): CompiledRule | undefined {
  return rules.find((rule) => {
    if (!key.startsWith(rule.alias)) return false;
    const next = key[rule.alias.length];
    return next === undefined || next === "/";
  });
}

function rewrite(rule: CompiledRule, key: string): string {
  const { alias } = rule;
  // selabel_apply_subs: with an original of "/", the "/" after the alias is not doubled.
  const cut = key[alias.length] === "/" && rule.original === "/" ? alias.length + 1 : alias.length;
  return rule.original + key.slice(cut);
}

enum Shape {
  /** Only the regex can tell. */
  Regex,
  /** `STEM(/.*)?`: the stem itself and everything below it. */
  Subtree,
  /** `STEM.*` or `STEM(.*)?`: everything starting with the stem. */
  Prefix,
}

interface Compiled {
  /** Position in input order (base file first, then homedirs, then local; lines in order). */
  order: number;
  kind: FileKind | null;
  result: LookupResult;
  /** Every key this spec can match starts with it. */
  stem: string;
  shape: Shape;
  regex: RegExp | null;
}

interface LiteralSpec {
  order: number;
  literal: string;
  kind: FileKind | null;
  result: LookupResult;
}

function kindFits(spec: { kind: FileKind | null }, kind: FileKind | undefined): boolean {
  return spec.kind === null || kind === undefined || spec.kind === kind;
}

function shapeMatches(spec: Compiled, key: string): boolean {
  const { stem } = spec;
  if (!key.startsWith(stem)) return false;
  if (spec.shape === Shape.Prefix) return true;
  if (spec.shape === Shape.Subtree) {
    if (key.length === stem.length) return true;
    const next = key[stem.length];
    // PCRE's "$" also matches before a final newline.
    return next === "/" || (next === "\n" && key.length === stem.length + 1);
  }
  return spec.regex!.test(key);
}

/** Whether the spec matches every key at or below dir (atOrBelow) or strictly below it. */
function coversAll(spec: Compiled, dir: string, includeDir: boolean): boolean {
  if (spec.shape === Shape.Prefix) return (includeDir ? dir : childPrefix(dir)).startsWith(spec.stem);
  if (spec.shape === Shape.Subtree) return dir === spec.stem || dir.startsWith(childPrefix(spec.stem));
  return false;
}

function compileSpec(spec: FileContextSpec, order: number): Compiled | LiteralSpec {
  const pattern = toByteString(spec.pattern);
  const result: LookupResult =
    spec.context === null ? { kind: "none", spec } : { kind: "label", context: spec.context, spec };
  const { literal, meta, hasAlternation } = literalPrefix(pattern);
  if (meta === null) return { order, literal, kind: spec.kind, result };
  // libselinux files a regex under the complete path components before its first meta
  // character and only consults it for keys below them; without alternation, the regex itself
  // also needs the literal text before the meta character (minus a quantified last char).
  const nodeStem = literal.slice(0, literal.lastIndexOf("/") + 1);
  let stem = nodeStem;
  if (!hasAlternation) {
    const charStem = QUANTIFIERS.has(meta) ? literal.slice(0, -1) : literal;
    if (charStem.length > stem.length) stem = charStem;
  }
  const rest = pattern.slice(rawPrefixLength(pattern));
  let shape = Shape.Regex;
  if (!hasAlternation && stem === literal) {
    if (rest === "(/.*)?") shape = Shape.Subtree;
    else if (rest === ".*" || rest === "(.*)?") shape = Shape.Prefix;
  }
  // A subtree or prefix spec is decided by its stem alone (shapeMatches): no regex needed.
  return {
    order,
    kind: spec.kind,
    result,
    stem,
    shape,
    regex: shape === Shape.Regex ? compileSpecRegex(pattern) : null,
  };
}

/** Length of the raw (still escaped) text before the first meta character. */
function rawPrefixLength(pattern: string): number {
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i]!;
    if (c === "\\") {
      const next = pattern[i + 1];
      if (next !== undefined && LITERAL_ESCAPES.has(next)) {
        i += 1;
        continue;
      }
      return i;
    }
    if (META.has(c)) return i;
  }
  return pattern.length;
}

/** What a matcher (whole or scoped) offers. */
export interface ContextMatcher {
  /** Expected label of a normalised, substituted key (a byte string). */
  match(key: string, kind?: FileKind): LookupResult;
  /** A matcher for keys at or below `dirKey` (a normalised, substituted byte string). */
  scope(dirKey: string): ContextMatcher;
  /**
   * The result every key strictly below the scope's directory gets for this kind, whatever its
   * name; undefined when it depends on the name. Only meaningful on a scoped matcher.
   */
  fixedBelow(kind: FileKind): LookupResult | undefined;
  /** How many regex specs are still candidates (for tests and diagnostics). */
  readonly candidates: number;
}

/** The specs of a policy, ready for lookups. */
export class FileContexts implements ContextMatcher {
  readonly specs: readonly FileContextSpec[];
  readonly invalid: readonly InvalidLine[];
  readonly substitutions: Substitutions;
  #regexes: Compiled[] = [];
  /** Literal key -> specs, later input file first (then later line first). */
  #literals = new Map<string, LiteralSpec[]>();
  #allLiterals: LiteralSpec[] = [];

  constructor(parsed: readonly ParsedFileContexts[], substitutions = new Substitutions()) {
    this.specs = parsed.flatMap((p) => p.specs);
    this.invalid = parsed.flatMap((p) => p.invalid);
    this.substitutions = substitutions;
    this.specs.forEach((spec, order) => {
      const compiled = compileSpec(spec, order);
      if ("literal" in compiled) {
        this.#allLiterals.push(compiled);
        const list = this.#literals.get(compiled.literal) ?? [];
        list.unshift(compiled);
        this.#literals.set(compiled.literal, list);
      } else {
        this.#regexes.push(compiled);
      }
    });
  }

  /**
   * Builds the matcher from file texts in libselinux's input order: `contexts` holds
   * file_contexts, then file_contexts.homedirs and file_contexts.local when present.
   */
  static fromTexts(
    contexts: readonly { text: string; file: string }[],
    subs: { local?: { text: string; file: string }; dist?: { text: string; file: string } } = {},
  ): FileContexts {
    const parsed = contexts.map((c) => parseFileContexts(c.text, c.file));
    const local = subs.local ? parseSubstitutions(subs.local.text, subs.local.file).rules : [];
    const dist = subs.dist ? parseSubstitutions(subs.dist.text, subs.dist.file).rules : [];
    return new FileContexts(parsed, new Substitutions(local, dist));
  }

  get candidates(): number {
    return this.#regexes.length;
  }

  /** The lookup key of a path: normalised, then substituted (a byte string). */
  substitute(path: string): string {
    return this.substituteKey(toByteString(path));
  }

  /** The .subs and .subs_dist lines the lookup of a host path goes through (none, one, or one of each). */
  substitutionsOf(path: string): SubstitutionRule[] {
    return this.substitutions.applied(normalizeKey(toByteString(path)));
  }

  /** The lookup key of a byte-string path (bytes.ts): normalised, then substituted. */
  substituteKey(bytePath: string): string {
    return this.substitutions.apply(normalizeKey(bytePath));
  }

  /** Expected label of a host path of the given kind (any kind when omitted), as matchpathcon gives it. */
  lookup(path: string, kind?: FileKind): LookupResult {
    return this.match(this.substitute(path), kind);
  }

  match(key: string, kind?: FileKind): LookupResult {
    return matchIn(this.#literals.get(key), this.#regexes, key, kind);
  }

  scope(dirKey: string): ContextMatcher {
    return new ScopedContexts(dirKey, this.#allLiterals, this.#regexes);
  }

  fixedBelow(): LookupResult | undefined {
    return undefined;
  }
}

function matchIn(
  literals: LiteralSpec[] | undefined,
  regexes: readonly Compiled[],
  key: string,
  kind: FileKind | undefined,
): LookupResult {
  if (literals !== undefined) {
    for (const literal of literals) if (kindFits(literal, kind)) return literal.result;
  }
  for (let i = regexes.length - 1; i >= 0; i -= 1) {
    const spec = regexes[i]!;
    if (kindFits(spec, kind) && shapeMatches(spec, key)) return spec.result;
  }
  return NO_MATCH;
}

/** A matcher narrowed to one directory and what lies below it. */
class ScopedContexts implements ContextMatcher {
  readonly dir: string;
  #literals: Map<string, LiteralSpec[]> | undefined;
  #literalList: LiteralSpec[];
  #regexes: Compiled[];
  /** Per kind (index in FILE_KINDS): the fixed result below, null when not fixed, undefined when unknown. */
  #fixed: (LookupResult | null | undefined)[] = [];
  /** True when nothing below can narrow further (scoping a child gives this same matcher). */
  #final: boolean;

  constructor(dir: string, literals: readonly LiteralSpec[], regexes: readonly Compiled[]) {
    this.dir = dir;
    const below = childPrefix(dir);
    this.#literalList = literals.filter((l) => l.literal === dir || l.literal.startsWith(below));
    if (this.#literalList.length > 0) {
      this.#literals = new Map();
      for (const literal of this.#literalList) {
        const list = this.#literals.get(literal.literal) ?? [];
        list.push(literal);
        this.#literals.set(literal.literal, list);
      }
      for (const list of this.#literals.values()) list.sort((a, b) => b.order - a.order);
    }
    let narrowed = regexes.filter((r) => dir.startsWith(r.stem) || r.stem.startsWith(below));
    // A later kind-less spec that matches the whole subtree hides every earlier one.
    for (let i = narrowed.length - 1; i >= 0; i -= 1) {
      const spec = narrowed[i]!;
      if (spec.kind === null && coversAll(spec, dir, true)) {
        narrowed = narrowed.slice(i);
        break;
      }
    }
    this.#regexes = narrowed;
    this.#final =
      this.#literalList.length === 0 &&
      narrowed.length <= 1 &&
      (narrowed.length === 0 || coversAll(narrowed[0]!, dir, true));
  }

  get candidates(): number {
    return this.#regexes.length;
  }

  match(key: string, kind?: FileKind): LookupResult {
    return matchIn(this.#literals?.get(key), this.#regexes, key, kind);
  }

  scope(dirKey: string): ContextMatcher {
    if (this.#final || dirKey === this.dir) return this;
    return new ScopedContexts(dirKey, this.#literalList, this.#regexes);
  }

  fixedBelow(kind: FileKind): LookupResult | undefined {
    const index = FILE_KINDS.indexOf(kind);
    let fixed = this.#fixed[index];
    if (fixed === undefined) {
      fixed = this.#computeFixed(kind);
      this.#fixed[index] = fixed;
    }
    return fixed ?? undefined;
  }

  #computeFixed(kind: FileKind): LookupResult | null {
    const below = childPrefix(this.dir);
    if (this.#literalList.some((l) => l.literal.startsWith(below))) return null;
    for (let i = this.#regexes.length - 1; i >= 0; i -= 1) {
      const spec = this.#regexes[i]!;
      if (!kindFits(spec, kind)) continue;
      return coversAll(spec, this.dir, false) ? spec.result : null;
    }
    return NO_MATCH;
  }
}

/** What was read of one file under /etc/selinux/<type>/contexts/files. */
export interface PolicyFileFact {
  /** Host path. */
  path: string;
  status: "ok" | "missing" | "error";
  error?: string;
  lines: number;
  specs: number;
  invalid: InvalidLine[];
  truncated: boolean;
}

export interface PolicyFileContextsFacts {
  policyType: string;
  directory: string;
  /** file_contexts, .homedirs, .local, .subs, .subs_dist, in that order. */
  files: PolicyFileFact[];
  /** The lines of file_contexts.subs (local equivalences, what `semanage fcontext -a -e` writes). */
  localSubstitutions: SubstitutionRule[];
  /** The lines of file_contexts.subs_dist (the distribution's equivalences). */
  distSubstitutions: SubstitutionRule[];
}

const POLICY_MAX_BYTES = 32 * 1024 * 1024;

/**
 * Reads `/etc/selinux/<type>/contexts/files/*` under the host root. `contexts` is null when
 * file_contexts itself is missing or unreadable (the facts say why).
 */
export async function loadPolicyFileContexts(
  host: Host,
  policyType: string,
): Promise<{ facts: PolicyFileContextsFacts; contexts: FileContexts | null }> {
  const directory = `/etc/selinux/${policyType}/contexts/files`;
  const files: PolicyFileFact[] = [];
  const read = async (name: string): Promise<{ text: string; path: string } | null> => {
    const path = `${directory}/${name}`;
    const fact: PolicyFileFact = { path, status: "ok", lines: 0, specs: 0, invalid: [], truncated: false };
    files.push(fact);
    try {
      const bounded = await host.readText(path, POLICY_MAX_BYTES);
      fact.truncated = bounded.truncated;
      return { text: bounded.text, path };
    } catch (error) {
      const code = (error as { code?: string }).code;
      fact.status = code === "ENOENT" || code === "ENOTDIR" ? "missing" : "error";
      if (fact.status === "error") fact.error = (error as Error).message;
      return null;
    }
  };
  const parsed: ParsedFileContexts[] = [];
  let base = false;
  for (const name of ["file_contexts", "file_contexts.homedirs", "file_contexts.local"]) {
    const file = await read(name);
    if (!file) continue;
    const result = parseFileContexts(file.text, file.path);
    const fact = files.at(-1)!;
    fact.lines = result.lines;
    fact.specs = result.specs.length;
    fact.invalid = result.invalid;
    parsed.push(result);
    if (name === "file_contexts") base = true;
  }
  const subs: SubstitutionRule[][] = [];
  for (const name of ["file_contexts.subs", "file_contexts.subs_dist"]) {
    const file = await read(name);
    const result = file ? parseSubstitutions(file.text, file.path) : null;
    if (result) {
      files.at(-1)!.lines = result.lines;
      files.at(-1)!.specs = result.rules.length;
    }
    subs.push(result?.rules ?? []);
  }
  const [localSubstitutions, distSubstitutions] = subs as [SubstitutionRule[], SubstitutionRule[]];
  const facts = { policyType, directory, files, localSubstitutions, distSubstitutions };
  const contexts = base
    ? new FileContexts(parsed, new Substitutions(localSubstitutions, distSubstitutions))
    : null;
  return { facts, contexts };
}
