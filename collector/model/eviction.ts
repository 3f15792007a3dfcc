import { parseQuantity } from "./quantity.js";

/**
 * The kubelet's Linux DefaultEvictionHard (pkg/kubelet/eviction/defaults_linux.go). imagefs.inodesFree
 * joined the other four in v1.30 (PR #121834).
 */
export const DEFAULT_EVICTION_HARD: Readonly<Record<string, string>> = {
  "memory.available": "100Mi",
  "nodefs.available": "10%",
  "nodefs.inodesFree": "5%",
  "imagefs.available": "15%",
  "imagefs.inodesFree": "5%",
};

export type DiskRole = "nodefs" | "imagefs" | "containerfs";
export type DiskResource = "available" | "inodesFree";

export type ThresholdValue = { kind: "percentage"; fraction: number } | { kind: "quantity"; amount: number };

export interface Threshold {
  signal: string;
  value: ThresholdValue;
  /** As written, e.g. "10%" or "1Gi". */
  raw: string;
  /** The file or flag that set it, or "kubelet default". */
  from: string;
  /** Soft thresholds only. */
  gracePeriod?: string;
}

export interface EvictionInput {
  /** evictionHard after merging files and flags; null when never set (the kubelet then applies its defaults). */
  hard: Record<string, string> | null;
  /** The file or flag that set a signal's value. */
  hardFrom: (signal: string) => string;
  soft: Record<string, string> | null;
  softFrom: (signal: string) => string;
  softGracePeriod: Record<string, string>;
  mergeDefaults: boolean;
}

export interface EvictionFacts {
  /** evictionHard as configured, or null when unset. */
  configuredHard: Record<string, string> | null;
  mergeDefaults: boolean;
  /** Effective hard thresholds for every signal the configuration sets directly (containerfs is derived later). */
  hard: Threshold[];
  soft: Threshold[];
  /** Default signals the kubelet no longer watches because evictionHard replaced the defaults. */
  defaultsDropped: string[];
  /** Signals switched off with 0% or 100%. */
  disabled: string[];
  /** containerfs.* keys the user set; the kubelet ignores them and derives containerfs itself. */
  ignoredContainerfs: string[];
  /** Values the kubelet would reject at start-up. */
  invalid: { signal: string; raw: string; reason: string }[];
}

type Parsed = { threshold: Threshold } | { disabled: true } | { invalid: string };

/** parseThresholdStatement: "0%" and "100%" switch a signal off; anything else must be a quantity. */
export function parseThreshold(signal: string, raw: string, from: string): Parsed {
  const text = raw.trim();
  if (text.endsWith("%")) {
    const percent = Number(text.slice(0, -1));
    if (!Number.isFinite(percent) || percent < 0 || percent > 100)
      return { invalid: `invalid percentage ${raw}` };
    if (percent === 0 || percent === 100) return { disabled: true };
    return { threshold: { signal, raw, from, value: { kind: "percentage", fraction: percent / 100 } } };
  }
  const amount = parseQuantity(text);
  if (amount === undefined) return { invalid: `not a quantity: ${raw}` };
  if (amount < 0) return { invalid: `negative threshold ${raw}` };
  return { threshold: { signal, raw, from, value: { kind: "quantity", amount } } };
}

/** Computes the thresholds the kubelet enforces, following its defaulting and parsing rules. */
export function effectiveEviction(input: EvictionInput): EvictionFacts {
  const facts: EvictionFacts = {
    configuredHard: input.hard,
    mergeDefaults: input.mergeDefaults,
    hard: [],
    soft: [],
    defaultsDropped: [],
    disabled: [],
    ignoredContainerfs: [],
    invalid: [],
  };
  const hard = hardSources(input);
  for (const [signal, { raw, from }] of hard) {
    const target = collectThreshold(facts, signal, raw, from);
    if (target) facts.hard.push(target);
  }
  for (const [signal, raw] of Object.entries(input.soft ?? {})) {
    const threshold = collectThreshold(facts, signal, raw, input.softFrom(signal));
    if (!threshold) continue;
    const grace = input.softGracePeriod[signal];
    if (grace === undefined) {
      facts.invalid.push({
        signal,
        raw,
        reason: `grace period must be specified for the soft eviction threshold ${signal}`,
      });
      continue;
    }
    facts.soft.push({ ...threshold, gracePeriod: grace });
  }
  // A default the user switched off on purpose (0%/100%) is listed in `disabled`, not here.
  const watched = new Set(facts.hard.map((t) => t.signal));
  const written = new Set(Object.keys(input.hard ?? {}));
  facts.defaultsDropped = Object.keys(DEFAULT_EVICTION_HARD).filter(
    (signal) => !watched.has(signal) && !written.has(signal),
  );
  return facts;
}

function hardSources(input: EvictionInput): Map<string, { raw: string; from: string }> {
  const out = new Map<string, { raw: string; from: string }>();
  const useDefaults = input.hard === null || input.mergeDefaults;
  if (useDefaults) {
    for (const [signal, raw] of Object.entries(DEFAULT_EVICTION_HARD))
      out.set(signal, { raw, from: "kubelet default" });
  }
  for (const [signal, raw] of Object.entries(input.hard ?? {}))
    out.set(signal, { raw, from: input.hardFrom(signal) });
  return out;
}

function collectThreshold(
  facts: EvictionFacts,
  signal: string,
  raw: string,
  from: string,
): Threshold | undefined {
  if (signal.startsWith("containerfs.")) {
    facts.ignoredContainerfs.push(signal);
    return undefined;
  }
  const parsed = parseThreshold(signal, String(raw), from);
  if ("disabled" in parsed) {
    if (!facts.disabled.includes(signal)) facts.disabled.push(signal);
    return undefined;
  }
  if ("invalid" in parsed) {
    facts.invalid.push({ signal, raw: String(raw), reason: parsed.invalid });
    return undefined;
  }
  return parsed.threshold;
}

export interface DiskLayout {
  /** imagefs is on another device than the kubelet root (HasDedicatedImageFs). */
  dedicatedImageFs: boolean;
  /** Writable layers are on another device than images (HasDedicatedContainerFs). */
  splitContainerFs: boolean;
}

/**
 * The thresholds on one filesystem role. containerfs copies nodefs when images are split off
 * or nothing is separate, and imagefs when the whole runtime is on its own disk
 * (UpdateContainerFsThresholds in pkg/kubelet/eviction/helpers.go).
 */
export function thresholdsForRole(
  thresholds: Threshold[],
  role: DiskRole,
  resource: DiskResource,
  layout: DiskLayout,
): Threshold[] {
  let signalRole: DiskRole | undefined = role;
  if (role === "containerfs") {
    const { dedicatedImageFs, splitContainerFs } = layout;
    if ((dedicatedImageFs && splitContainerFs) || (!dedicatedImageFs && !splitContainerFs))
      signalRole = "nodefs";
    else if (dedicatedImageFs && !splitContainerFs) signalRole = "imagefs";
    else signalRole = undefined;
  }
  if (!signalRole) return [];
  const signal = `${signalRole}.${resource}`;
  return thresholds.filter((t) => t.signal === signal);
}

/** The level below which `available` meets the threshold, for a filesystem of `capacity`. */
export function thresholdLevel(threshold: Threshold, capacity: number): number {
  return threshold.value.kind === "percentage" ? threshold.value.fraction * capacity : threshold.value.amount;
}
