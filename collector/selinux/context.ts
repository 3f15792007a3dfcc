/**
 * SELinux security contexts as found in `security.selinux` xattrs, file_contexts and AVC records:
 * `user:role:type[:level]`, where the MLS/MCS level may itself hold colons (`s0:c1,c2`,
 * `s0-s0:c0.c1023`). `<<none>>` is file_contexts' "do not label" marker, not a context.
 */

export const NONE_MARKER = "<<none>>";

export interface SecurityContext {
  user: string;
  role: string;
  type: string;
  /** The MLS/MCS level or range, null under a policy without MLS (three fields). */
  level: string | null;
}

export type ParsedContext =
  | ({ kind: "context" } & SecurityContext)
  | { kind: "none" }
  | { kind: "invalid"; reason: string };

/**
 * How two labels are compared. "type" is restorecon without -F: only the type counts, so an
 * MCS-only difference (s0 vs s0:c1,c2) or another user is not a mismatch. "full" is restorecon -F:
 * the whole context string.
 */
export type CompareMode = "type" | "full";

const FIELD = /^[A-Za-z0-9_.-]+$/;

export function parseContext(text: string): ParsedContext {
  if (text === NONE_MARKER) return { kind: "none" };
  const first = text.indexOf(":");
  const second = first < 0 ? -1 : text.indexOf(":", first + 1);
  if (second < 0) return { kind: "invalid", reason: "fewer than three colon-separated fields" };
  const third = text.indexOf(":", second + 1);
  const user = text.slice(0, first);
  const role = text.slice(first + 1, second);
  const type = third < 0 ? text.slice(second + 1) : text.slice(second + 1, third);
  const level = third < 0 ? null : text.slice(third + 1);
  for (const [name, value] of [
    ["user", user],
    ["role", role],
    ["type", type],
  ] as const) {
    if (!FIELD.test(value)) return { kind: "invalid", reason: `bad ${name} "${value}"` };
  }
  if (level !== null && (level === "" || /\s/.test(level))) {
    return { kind: "invalid", reason: `bad level "${level}"` };
  }
  return { kind: "context", user, role, type, level };
}

/** The type field of a context string, or null when it is not a context. */
export function contextType(text: string): string | null {
  const parsed = parseContext(text);
  return parsed.kind === "context" ? parsed.type : null;
}

export function formatContext(context: SecurityContext): string {
  const base = `${context.user}:${context.role}:${context.type}`;
  return context.level === null ? base : `${base}:${context.level}`;
}

/**
 * Whether two labels are the same under `mode`. With "type", two strings that are not contexts
 * (garbage in an xattr) are equal only when identical.
 */
export function sameLabel(a: string, b: string, mode: CompareMode = "type"): boolean {
  if (a === b) return true;
  if (mode === "full") return false;
  const ta = contextType(a);
  return ta !== null && ta === contextType(b);
}

/**
 * Remembers the type of each distinct label string: a store holds millions of files but only a
 * handful of distinct labels, so a scan parses each label once. What is not a context maps to
 * itself (so it never compares equal to a real type).
 */
export class LabelKeys {
  readonly mode: CompareMode;
  #keys = new Map<string, string>();

  constructor(mode: CompareMode = "type") {
    this.mode = mode;
  }

  /** The part of `label` that `mode` compares: its type, or the whole string. */
  key(label: string): string {
    if (this.mode === "full") return label;
    let key = this.#keys.get(label);
    if (key === undefined) {
      key = contextType(label) ?? label;
      if (this.#keys.size < 4096) this.#keys.set(label, key);
    }
    return key;
  }
}
