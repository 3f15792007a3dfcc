/**
 * The label scanner: walks one store directory tree, synchronously, reading every entry's
 * `security.selinux` in-process (xattr.ts), and compares it with
 *
 * - (a) the label the policy expects for its host path (file_contexts, after substitution),
 *   through the scoped matcher of file-contexts.ts, so a deep layer tree costs no regex per file;
 * - (b) a reference label: the label of the same relative path under another store root (the
 *   graphroot, which the policy and the runtime's type transitions label correctly), or, where
 *   that path does not exist there, the label of its deepest existing ancestor. This needs no
 *   policy files at all, so it also works on hosts without SELinux or without the policy.
 *
 * Safety: the walk never leaves the root's filesystem (a directory whose st_dev differs is not
 * entered, as restorecon -x) and never touches a path in `skip` (the caller passes the mount
 * points from mountinfo, so a FUSE store's mount is never even stat'ed). A budget of files and
 * milliseconds bounds it; memory stays flat in the number of files: only counts per (actual,
 * expected) label pair and per top-level subtree, and a few sample paths per pair, are kept.
 *
 * Speed: directories are listed with readdirSync (file types come with the names, so a plain
 * file costs one lgetxattr and no stat; a directory too large to list at once is streamed with
 * opendirSync). The walk makes each directory the working directory in turn (fchdir on a
 * descriptor opened with O_NOFOLLOW) and reads entries by name, so the kernel resolves one path
 * component per read instead of a dozen; the working directory is restored when the scan ends,
 * also on an exception. Names are read as latin1 "byte strings" (bytes.ts), so any file name is
 * handled exactly.
 */
import {
  type BigIntStats,
  closeSync,
  type Dirent,
  constants as fsConstants,
  lstatSync,
  opendirSync,
  openSync,
  readdirSync,
  type Stats,
} from "node:fs";
import { constants } from "node:os";
import { resolve } from "node:path";
import { cPath, displayBytes, fsPath, toByteString } from "./bytes.js";
import { type CompareMode, LabelKeys } from "./context.js";
import {
  type ContextMatcher,
  type FileContexts,
  type FileKind,
  joinKey,
  type LookupResult,
  normalizeKey,
} from "./file-contexts.js";
import { changeDirectory, errnoName, LabelReader } from "./xattr.js";

const { ENODATA, ENOENT, ENOTDIR, EIO } = constants.errno;
/** ENOTSUP and EOPNOTSUPP are one number on Linux. */
const ENOTSUP = constants.errno.ENOTSUP;

/** Stand-in "label" of a file that has none (restorecon prints "<no context>"). */
export const NO_CONTEXT = "<no context>";
/** Stand-in expected label where the policy says `<<none>>` (do not relabel). */
export const EXPECTED_NONE = "<<none>>";
/** Stand-in expected label where no spec of the policy matches. */
export const EXPECTED_NO_MATCH = "<no match>";

export interface ScanOptions {
  /** The directory to audit, as a path on this machine (under the host root). */
  root: string;
  /** Its host path: what file_contexts is matched against (e.g. /var/lib/images). */
  hostPath: string;
  /** The policy's file contexts; without them only the reference comparison is made. */
  contexts?: FileContexts | null;
  /** Another store root to compare with (the graphroot), as a path on this machine. */
  reference?: string | null;
  /** "type" (restorecon without -F, the default) or "full" (restorecon -F). */
  compare?: CompareMode;
  /** Paths on this machine never entered nor stat'ed (mount points inside the tree, from mountinfo). */
  skip?: ReadonlySet<string>;
  /** Stop after this many entries have been checked. */
  maxFiles?: number;
  /** Stop after this many milliseconds. */
  maxMs?: number;
  /** Sample paths kept per mismatching label pair (default 5). */
  samplesPerPair?: number;
  /** Distinct label pairs kept per subtree; the rest are counted under "(other)" (default 64). */
  maxPairs?: number;
  /** Top-level subtrees counted apart; the rest are counted under "(other)" (default 64). */
  maxSubtrees?: number;
  /**
   * Called with the number of entries checked so far, every `progressEvery` entries (default
   * 4096). It runs while the working directory is one of the store's: use absolute paths in it.
   */
  onProgress?: (checked: number) => void;
  progressEvery?: number;
  /**
   * Inode numbers to find (AVC records name a file by dev + ino; the caller picks the store on
   * that device). Costs an lstat per entry when given.
   */
  wantedInodes?: ReadonlySet<bigint>;
  /** A directory whose st_size exceeds this is streamed (opendirSync) rather than listed at once (default 1 MiB). */
  streamAboveBytes?: number;
}

export interface LabelPair {
  /** The label found (its type, or the full context with compare "full"); "<no context>" when none. */
  actual: string;
  /** The label it should have (expected by the policy, or the reference's). */
  expected: string;
  count: number;
  /** Host paths of a few entries with this pair (only for pairs that differ). */
  samples: string[];
}

export interface SubtreeLabels {
  /** The top-level entry under the root ("overlay", "overlay-images", ...); "." for the root and its files. */
  name: string;
  /** Entries whose label was read (files, directories, links, ...). */
  checked: number;
  /** Entries with no label at all. */
  unlabeled: number;
  /** Against the policy: entries that match, differ, are `<<none>>` or match no spec. */
  policy: { matching: number; mismatched: number; none: number; noMatch: number };
  /** Against the reference store: entries that match, differ, or could not be compared. */
  reference: { matching: number; mismatched: number; unknown: number };
  /** actual -> expected (policy) pairs, most frequent first. */
  policyPairs: LabelPair[];
  /** actual -> reference pairs, most frequent first. */
  referencePairs: LabelPair[];
}

export interface ScanErrorCount {
  code: string;
  count: number;
  samples: string[];
}

export interface LabelScanResult {
  root: string;
  hostPath: string;
  reference: string | null;
  compare: CompareMode;
  /** Entries whose label was read or attempted (the root included). */
  checked: number;
  /** True when the budget ended the walk before the whole tree was seen. */
  sampled: boolean;
  stoppedBy: "maxFiles" | "maxMs" | null;
  durationMs: number;
  rootLabel: string | null;
  /** The policy's expected label for the root, as a full context ("<<none>>", "<no match>"), null without policy. */
  rootExpected: string | null;
  referenceRootLabel: string | null;
  /** The filesystem does not support extended attributes (ENOTSUP): nothing can carry a label. */
  noXattrSupport: boolean;
  /** Errors reading labels or listing directories, by errno (EACCES, ...). */
  errors: ScanErrorCount[];
  /** Directories not entered: on another filesystem, or listed in `skip`. */
  skipped: { otherFilesystem: number; listed: number; samples: string[] };
  subtrees: SubtreeLabels[];
  /** All subtrees together. */
  totals: Omit<SubtreeLabels, "name">;
  /** inode -> host paths, for the wanted inodes found (decimal inode numbers). */
  inodes: Record<string, string[]>;
}

const MAX_ERROR_SAMPLES = 5;
const MAX_INODE_PATHS = 8;
/** A directory larger than this (st_size) is streamed rather than listed at once. */
const STREAM_DIRECTORY_BYTES = 1024 * 1024;

class PairTable {
  #byActual = new Map<string, Map<string, LabelPair>>();
  #size = 0;
  #lastActual = "";
  #lastExpected = "";
  #last: LabelPair | undefined;
  readonly #maxPairs: number;
  readonly #maxSamples: number;

  constructor(maxPairs: number, maxSamples: number) {
    this.#maxPairs = maxPairs;
    this.#maxSamples = maxSamples;
  }

  /** Counts one entry; returns the pair so a caller can add a sample. */
  add(actual: string, expected: string): LabelPair {
    if (this.#last !== undefined && actual === this.#lastActual && expected === this.#lastExpected) {
      this.#last.count += 1;
      return this.#last;
    }
    let row = this.#byActual.get(actual);
    let pair = row?.get(expected);
    if (pair === undefined) {
      if (this.#size >= this.#maxPairs) {
        actual = "(other)";
        expected = "(other)";
        row = this.#byActual.get(actual);
        pair = row?.get(expected);
      }
      if (pair === undefined) {
        pair = { actual, expected, count: 0, samples: [] };
        if (row === undefined) {
          row = new Map();
          this.#byActual.set(actual, row);
        }
        row.set(expected, pair);
        this.#size += 1;
      }
    }
    pair.count += 1;
    this.#lastActual = actual;
    this.#lastExpected = expected;
    this.#last = pair;
    return pair;
  }

  sample(pair: LabelPair, path: () => string): void {
    if (pair.samples.length < this.#maxSamples) pair.samples.push(path());
  }

  list(): LabelPair[] {
    return [...this.#byActual.values()].flatMap((row) => [...row.values()]).sort((a, b) => b.count - a.count);
  }
}

class Subtree {
  readonly name: string;
  checked = 0;
  unlabeled = 0;
  policy = { matching: 0, mismatched: 0, none: 0, noMatch: 0 };
  reference = { matching: 0, mismatched: 0, unknown: 0 };
  readonly policyPairs: PairTable;
  readonly referencePairs: PairTable;

  constructor(name: string, maxPairs: number, maxSamples: number) {
    this.name = name;
    this.policyPairs = new PairTable(maxPairs, maxSamples);
    this.referencePairs = new PairTable(maxPairs, maxSamples);
  }

  toFacts(): SubtreeLabels {
    return {
      name: this.name,
      checked: this.checked,
      unlabeled: this.unlabeled,
      policy: { ...this.policy },
      reference: { ...this.reference },
      policyPairs: this.policyPairs.list(),
      referencePairs: this.referencePairs.list(),
    };
  }
}

/** A directory waiting to be listed, with what its entries inherit. */
interface Pending {
  /** Path on this machine (byte string). */
  local: string;
  /** Host path (byte string). */
  host: string;
  /** Lookup key (normalised, substituted host path); null without policy. */
  key: string | null;
  /** Whether every path below substitutes like this directory (child keys = key + "/" + name). */
  stable: boolean;
  scope: ContextMatcher | null;
  /** The same relative directory under the reference root, when it exists there (and is safe). */
  refDir: string | null;
  /** Reference label key for entries whose reference path does not exist. */
  refFallback: string | null;
  subtree: Subtree;
  depth: number;
  /** st_size of the directory (how large a listing it is). */
  size: number;
}

type AnyStats = Stats | BigIntStats;

function kindOf(entry: Dirent | AnyStats): FileKind | undefined {
  if (entry.isFile()) return "file";
  if (entry.isDirectory()) return "dir";
  if (entry.isSymbolicLink()) return "symlink";
  if (entry.isCharacterDevice()) return "char";
  if (entry.isBlockDevice()) return "block";
  if (entry.isFIFO()) return "fifo";
  if (entry.isSocket()) return "socket";
  return undefined;
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash <= 0 ? "/" : path.slice(0, slash);
}

/** An absolute, normalised byte-string path on this machine. */
function localPath(path: string): string {
  return toByteString(resolve(path));
}

/** Audits the labels of one store tree. Synchronous: it runs to completion or to its budget. */
export function scanLabels(options: ScanOptions): LabelScanResult {
  return new Scanner(options).run();
}

class Scanner {
  readonly #started = performance.now();
  readonly #options: ScanOptions;
  readonly #keys: LabelKeys;
  readonly #contexts: FileContexts | null;
  readonly #skip: Set<string>;
  /** Directories holding a skipped path: only their entries are looked up in `skip`. */
  readonly #skipParents: Set<string>;
  readonly #maxFiles: number;
  readonly #deadline: number;
  readonly #maxSamples: number;
  readonly #maxPairs: number;
  readonly #maxSubtrees: number;
  readonly #progressEvery: number;
  readonly #streamAbove: number;
  readonly #wanted: ReadonlySet<bigint> | null;
  readonly #reader = new LabelReader();
  readonly #refReader = new LabelReader();
  readonly #rootLocal: string;
  readonly #rootHost: string;
  readonly #refRoot: string | null;
  #refDev: number | undefined;
  readonly #result: LabelScanResult;
  readonly #errors = new Map<string, ScanErrorCount>();
  readonly #subtrees = new Map<string, Subtree>();
  #checked = 0;
  /** Label string -> compared key, for the last label seen (the reader returns the same string while it repeats). */
  #lastLabel = "";
  #lastKey = "";
  #lastExpected: LookupResult | undefined;
  #lastExpectedKey = "";

  constructor(options: ScanOptions) {
    this.#options = options;
    const compare = options.compare ?? "type";
    this.#keys = new LabelKeys(compare);
    this.#contexts = options.contexts ?? null;
    this.#skip = new Set([...(options.skip ?? [])].map(localPath));
    this.#skipParents = new Set([...this.#skip].map(parentOf));
    this.#maxFiles = options.maxFiles ?? Number.POSITIVE_INFINITY;
    this.#deadline = options.maxMs === undefined ? Number.POSITIVE_INFINITY : this.#started + options.maxMs;
    this.#maxSamples = options.samplesPerPair ?? 5;
    this.#maxPairs = options.maxPairs ?? 64;
    this.#maxSubtrees = options.maxSubtrees ?? 64;
    this.#progressEvery = options.progressEvery ?? 4096;
    this.#streamAbove = options.streamAboveBytes ?? STREAM_DIRECTORY_BYTES;
    this.#wanted = options.wantedInodes && options.wantedInodes.size > 0 ? options.wantedInodes : null;
    this.#rootLocal = localPath(options.root);
    this.#rootHost = normalizeKey(toByteString(options.hostPath));
    this.#refRoot = options.reference ? localPath(options.reference) : null;
    this.#result = {
      root: options.root,
      hostPath: options.hostPath,
      reference: options.reference ?? null,
      compare,
      checked: 0,
      sampled: false,
      stoppedBy: null,
      durationMs: 0,
      rootLabel: null,
      rootExpected: null,
      referenceRootLabel: null,
      noXattrSupport: false,
      errors: [],
      skipped: { otherFilesystem: 0, listed: 0, samples: [] },
      subtrees: [],
      totals: mergeSubtrees([], 0),
      inodes: {},
    };
  }

  run(): LabelScanResult {
    const root = this.#scanRoot();
    if (root) {
      // Entries are read by name from inside their directory (one path component for the
      // kernel to resolve instead of a dozen); the working directory is put back afterwards.
      const home = openHome();
      try {
        this.#walk(root, home !== null);
      } finally {
        if (home !== null) {
          changeDirectory(home);
          closeSync(home);
        }
      }
    }
    const result = this.#result;
    result.checked = this.#checked;
    result.durationMs = performance.now() - this.#started;
    result.errors = [...this.#errors.values()].sort((a, b) => b.count - a.count);
    result.subtrees = [...this.#subtrees.values()].map((s) => s.toFacts());
    result.totals = mergeSubtrees(result.subtrees, this.#maxSamples);
    return result;
  }

  #noteError(errno: number, hostPath: string): void {
    const code = errnoName(errno);
    let entry = this.#errors.get(code);
    if (!entry) {
      entry = { code, count: 0, samples: [] };
      this.#errors.set(code, entry);
    }
    entry.count += 1;
    if (entry.samples.length < MAX_ERROR_SAMPLES) entry.samples.push(displayBytes(hostPath));
  }

  #noteSkip(kind: "otherFilesystem" | "listed", hostPath: string): void {
    const skipped = this.#result.skipped;
    skipped[kind] += 1;
    if (skipped.samples.length < MAX_ERROR_SAMPLES) skipped.samples.push(displayBytes(hostPath));
  }

  #noteInode(ino: number | bigint, hostPath: string): void {
    const key = typeof ino === "bigint" ? ino : BigInt(ino);
    if (!this.#wanted!.has(key)) return;
    const id = String(key);
    const list = this.#result.inodes[id] ?? [];
    this.#result.inodes[id] = list;
    if (list.length < MAX_INODE_PATHS) list.push(displayBytes(hostPath));
  }

  #subtreeFor(name: string): Subtree {
    let subtree = this.#subtrees.get(name);
    if (!subtree) {
      if (this.#subtrees.size >= this.#maxSubtrees && name !== ".") return this.#subtreeFor("(other)");
      subtree = new Subtree(name, this.#maxPairs, this.#maxSamples);
      this.#subtrees.set(name, subtree);
    }
    return subtree;
  }

  /** The compared form of the label the reader just read. */
  #actualKey(reader: LabelReader): string {
    const label = reader.label();
    if (label !== this.#lastLabel) {
      this.#lastLabel = label;
      this.#lastKey = this.#keys.key(label);
    }
    return this.#lastKey;
  }

  /** Reads and counts the root; returns it as the first directory to list, or null when the scan ends here. */
  #scanRoot(): Pending | null {
    const rootLocal = this.#rootLocal;
    const rootHost = this.#rootHost;
    let stat: AnyStats;
    try {
      stat = lstatSync(fsPath(rootLocal), { bigint: this.#wanted !== null });
    } catch (error) {
      this.#noteError(errnoOf(error), rootHost);
      return null;
    }
    if (!stat.isDirectory()) {
      this.#noteError(ENOTDIR, rootHost);
      return null;
    }
    this.#checked = 1;
    const subtree = this.#subtreeFor(".");
    const root: Pending = {
      local: rootLocal,
      host: rootHost,
      key: null,
      stable: true,
      scope: null,
      refDir: null,
      refFallback: null,
      subtree,
      depth: 0,
      size: Number(stat.size),
    };
    const raw = this.#reader.readRaw(cPath(rootLocal));
    if (raw < 0 && raw !== -ENODATA) {
      this.#noteError(-raw, rootHost);
      if (-raw === ENOTSUP) this.#result.noXattrSupport = true;
      return null;
    }
    this.#result.rootLabel = raw >= 0 ? this.#reader.label() : null;
    const actual = raw >= 0 ? this.#keys.key(this.#result.rootLabel!) : NO_CONTEXT;
    subtree.checked += 1;
    if (raw < 0) subtree.unlabeled += 1;
    if (this.#wanted) this.#noteInode(stat.ino, rootHost);

    const contexts = this.#contexts;
    if (contexts) {
      root.key = contexts.substituteKey(rootHost);
      root.stable = contexts.substitutions.stableBelow(rootHost);
      root.scope = contexts.scope(root.key);
      const expected = contexts.match(root.key, "dir");
      this.#result.rootExpected =
        expected.kind === "label"
          ? expected.context
          : expected.kind === "none"
            ? EXPECTED_NONE
            : EXPECTED_NO_MATCH;
      this.#countPolicy(subtree, actual, expected, root, null);
    }

    const refRoot = this.#refRoot;
    if (refRoot !== null) {
      const refStat = safeLstat(refRoot, false) as Stats | undefined;
      this.#refDev = refStat?.dev;
      if (refStat?.isDirectory()) {
        root.refDir = refRoot;
        const refRaw = this.#refReader.readRaw(cPath(refRoot));
        if (refRaw >= 0) this.#result.referenceRootLabel = this.#refReader.label();
        root.refFallback =
          refRaw >= 0 ? this.#keys.key(this.#refReader.label()) : refRaw === -ENODATA ? NO_CONTEXT : null;
      }
      if (root.refFallback === null) subtree.reference.unknown += 1;
      else this.#countReference(subtree, actual, root.refFallback, root, null);
    }
    return root;
  }

  #walk(root: Pending, relative: boolean): void {
    const stack: Pending[] = [root];
    const contexts = this.#contexts;
    const reader = this.#reader;
    const wanted = this.#wanted;
    const bigint = wanted !== null;
    const rootDev = (safeLstat(root.local, bigint) as AnyStats).dev;
    const maxFiles = this.#maxFiles;
    let nextProgress = this.#progressEvery;
    let nextClock = 1024;
    let checked = this.#checked;

    walk: while (stack.length > 0) {
      const dir = stack.pop()!;
      const stream = dir.size > this.#streamAbove;
      const entries = relative ? enterAndList(dir.local, stream) : listDirectory(dir.local, stream);
      if (typeof entries === "number") {
        this.#noteError(entries, dir.host);
        continue;
      }
      const checkSkip = this.#skipParents.has(dir.local);
      const scope = dir.scope;
      const atRoot = dir.depth === 0;
      const prefix = dir.local === "/" ? "/" : `${dir.local}/`;
      // A streamed directory holds a descriptor until closed, whichever way the loop ends.
      try {
        for (let entry = entries.next(); entry !== null; entry = entries.next()) {
          if (checked >= maxFiles) {
            this.#result.sampled = true;
            this.#result.stoppedBy = "maxFiles";
            break walk;
          }
          if (checked >= nextClock) {
            nextClock = checked + 1024;
            if (performance.now() >= this.#deadline) {
              this.#result.sampled = true;
              this.#result.stoppedBy = "maxMs";
              break walk;
            }
          }
          const name = entry.name;
          if (checkSkip && this.#skip.has(prefix + name)) {
            this.#noteSkip("listed", joinKey(dir.host, name));
            continue;
          }
          const target = relative ? name : prefix + name;
          let kind = kindOf(entry);
          let stat: AnyStats | undefined;
          if (kind === undefined || kind === "dir" || wanted) {
            stat = safeLstat(target, bigint);
            if (stat === undefined) continue; // gone since it was listed
            kind = kindOf(stat);
            if (kind === "dir" && stat.dev !== rootDev) {
              this.#noteSkip("otherFilesystem", joinKey(dir.host, name));
              continue;
            }
            if (wanted) this.#noteInode(stat.ino, joinKey(dir.host, name));
          }

          const raw = reader.readRaw(cPath(target));
          checked += 1;
          if (raw < 0 && raw !== -ENODATA) {
            this.#noteError(-raw, joinKey(dir.host, name));
            if (-raw === ENOTSUP) {
              this.#result.noXattrSupport = true;
              break walk;
            }
            continue;
          }
          const subtree = atRoot ? (kind === "dir" ? this.#subtreeFor(name) : dir.subtree) : dir.subtree;
          subtree.checked += 1;
          let actual: string;
          if (raw >= 0) actual = this.#actualKey(reader);
          else {
            actual = NO_CONTEXT;
            subtree.unlabeled += 1;
          }

          // (a) the policy: the fixed answer below this directory, or a lookup of the child's key.
          let childKey: string | null = null;
          if (scope !== null) {
            let expected = dir.stable ? scope.fixedBelow(kind!) : undefined;
            if (expected === undefined) {
              childKey = dir.stable
                ? joinKey(dir.key!, name)
                : contexts!.substituteKey(joinKey(dir.host, name));
              expected = dir.stable ? scope.match(childKey, kind) : contexts!.match(childKey, kind);
            }
            this.#countPolicy(subtree, actual, expected, dir, name);
          }

          // (b) the reference store.
          let refLabel = dir.refFallback;
          let refExists = false;
          if (dir.refDir !== null) {
            const refRaw = this.#refReader.readRaw(cPath(`${dir.refDir}/${name}`));
            if (refRaw >= 0) {
              refLabel = this.#keys.key(this.#refReader.label());
              refExists = true;
            } else if (refRaw === -ENODATA) {
              refLabel = NO_CONTEXT;
              refExists = true;
            } else if (refRaw !== -ENOENT && refRaw !== -ENOTDIR) {
              refLabel = null; // unreadable: cannot compare
            }
          }
          if (this.#refRoot !== null) {
            if (refLabel === null) subtree.reference.unknown += 1;
            else this.#countReference(subtree, actual, refLabel, dir, name);
          }

          if (kind === "dir") {
            stack.push(this.#child(dir, name, childKey, refExists, refLabel, subtree, Number(stat!.size)));
          }
          if (checked >= nextProgress) {
            nextProgress = checked + this.#progressEvery;
            this.#checked = checked;
            this.#options.onProgress?.(checked);
          }
        }
      } finally {
        entries.close();
      }
    }
    this.#checked = checked;
  }

  /** What a subdirectory inherits: its keys, narrowed scope and reference directory. */
  #child(
    dir: Pending,
    name: string,
    childKey: string | null,
    refExists: boolean,
    refLabel: string | null,
    subtree: Subtree,
    size: number,
  ): Pending {
    const host = joinKey(dir.host, name);
    const contexts = this.#contexts;
    let key: string | null = null;
    let stable = true;
    let scope: ContextMatcher | null = null;
    if (dir.scope !== null) {
      if (dir.stable) {
        key = childKey ?? joinKey(dir.key!, name);
        scope = dir.scope.scope(key);
      } else {
        key = childKey ?? contexts!.substituteKey(host);
        stable = contexts!.substitutions.stableBelow(host);
        scope = contexts!.scope(key);
      }
    }
    let refDir: string | null = null;
    if (refExists && dir.refDir !== null) {
      const refPath = `${dir.refDir}/${name}`;
      if (!this.#skip.has(refPath)) {
        const found = safeLstat(refPath, false) as Stats | undefined;
        if (found?.isDirectory() && found.dev === this.#refDev) refDir = refPath;
      }
    }
    return {
      local: dir.local === "/" ? `/${name}` : `${dir.local}/${name}`,
      host,
      key,
      stable,
      scope,
      refDir,
      refFallback: refLabel,
      subtree,
      depth: dir.depth + 1,
      size,
    };
  }

  #countPolicy(
    subtree: Subtree,
    actual: string,
    expected: LookupResult,
    dir: Pending,
    name: string | null,
  ): void {
    if (expected.kind === "none") {
      subtree.policy.none += 1;
      subtree.policyPairs.add(actual, EXPECTED_NONE);
      return;
    }
    if (expected.kind === "nomatch") {
      subtree.policy.noMatch += 1;
      subtree.policyPairs.add(actual, EXPECTED_NO_MATCH);
      return;
    }
    if (expected !== this.#lastExpected) {
      this.#lastExpected = expected;
      this.#lastExpectedKey = this.#keys.key(expected.context);
    }
    const want = this.#lastExpectedKey;
    const pair = subtree.policyPairs.add(actual, want);
    if (want === actual) subtree.policy.matching += 1;
    else {
      subtree.policy.mismatched += 1;
      if (pair.samples.length < this.#maxSamples) pair.samples.push(samplePath(dir, name));
    }
  }

  #countReference(
    subtree: Subtree,
    actual: string,
    reference: string,
    dir: Pending,
    name: string | null,
  ): void {
    const pair = subtree.referencePairs.add(actual, reference);
    if (reference === actual) subtree.reference.matching += 1;
    else {
      subtree.reference.mismatched += 1;
      if (pair.samples.length < this.#maxSamples) pair.samples.push(samplePath(dir, name));
    }
  }
}

function samplePath(dir: Pending, name: string | null): string {
  return displayBytes(name === null ? dir.host : joinKey(dir.host, name));
}

/** The positive errno of a node:fs error (Node gives it negated). */
function errnoOf(error: unknown): number {
  const errno = (error as { errno?: number }).errno;
  return typeof errno === "number" ? Math.abs(errno) : EIO;
}

function safeLstat(path: string, bigint: boolean): AnyStats | undefined {
  try {
    return lstatSync(fsPath(path), { bigint });
  } catch {
    return undefined;
  }
}

/** A descriptor of the current working directory, to come back to; null when it cannot be opened. */
function openHome(): number | null {
  try {
    return openSync(".", fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  } catch {
    return null;
  }
}

/**
 * Makes `local` the working directory (never through a symlink: O_NOFOLLOW) and lists it. Returns
 * the errno of a failure.
 */
function enterAndList(local: string, stream: boolean): EntryStream | number {
  let fd: number;
  try {
    fd = openSync(fsPath(local), fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
  } catch (error) {
    return errnoOf(error);
  }
  const changed = changeDirectory(fd);
  closeSync(fd);
  if (changed < 0) return -changed;
  return listDirectory(".", stream);
}

/** Entries of one directory, one at a time: a listing, or a stream for a very large directory. */
interface EntryStream {
  next(): Dirent | null;
  close(): void;
}

/** Lists (or streams) a directory, or returns the errno of the failure. */
function listDirectory(local: string, stream: boolean): EntryStream | number {
  const path = fsPath(local);
  try {
    if (stream) {
      const handle = opendirSync(path, { encoding: "latin1", bufferSize: 256 });
      return {
        next: () => handle.readSync(),
        close: () => handle.closeSync(),
      };
    }
    const list = readdirSync(path, { encoding: "latin1", withFileTypes: true });
    let index = 0;
    return {
      next: () => (index < list.length ? list[index++]! : null),
      close: () => {},
    };
  } catch (error) {
    return errnoOf(error);
  }
}

function mergePairs(lists: LabelPair[][], maxSamples: number): LabelPair[] {
  const merged = new Map<string, LabelPair>();
  for (const list of lists) {
    for (const pair of list) {
      const key = `${pair.actual}\u0000${pair.expected}`;
      const into = merged.get(key);
      if (!into) merged.set(key, { ...pair, samples: [...pair.samples] });
      else {
        into.count += pair.count;
        for (const sample of pair.samples) if (into.samples.length < maxSamples) into.samples.push(sample);
      }
    }
  }
  return [...merged.values()].sort((a, b) => b.count - a.count);
}

function mergeSubtrees(subtrees: SubtreeLabels[], maxSamples: number): Omit<SubtreeLabels, "name"> {
  const sum = (pick: (s: SubtreeLabels) => number) => subtrees.reduce((total, s) => total + pick(s), 0);
  return {
    checked: sum((s) => s.checked),
    unlabeled: sum((s) => s.unlabeled),
    policy: {
      matching: sum((s) => s.policy.matching),
      mismatched: sum((s) => s.policy.mismatched),
      none: sum((s) => s.policy.none),
      noMatch: sum((s) => s.policy.noMatch),
    },
    reference: {
      matching: sum((s) => s.reference.matching),
      mismatched: sum((s) => s.reference.mismatched),
      unknown: sum((s) => s.reference.unknown),
    },
    policyPairs: mergePairs(
      subtrees.map((s) => s.policyPairs),
      maxSamples,
    ),
    referencePairs: mergePairs(
      subtrees.map((s) => s.referencePairs),
      maxSamples,
    ),
  };
}
