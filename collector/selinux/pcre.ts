/**
 * Translates the PCRE2 regexes of file_contexts into JavaScript RegExps with the same meaning on
 * the paths they are matched against.
 *
 * libselinux compiles `"^" + regex + "$"` with PCRE2_DOTALL and no UTF mode, so a pattern sees the
 * path as bytes. Callers therefore match "byte strings" (one char per byte, see bytes.ts) and the
 * translation keeps JavaScript's non-unicode mode, where `.` and `[^/]` consume one char.
 *
 * Handled: character classes (a leading `]`, POSIX `[:alpha:]` classes), `\Q…\E`, `\A \z \Z`,
 * `\x{..}` and octal escapes, `\e \a`, `(?P<name>`, `(?#…)` comments; PCRE's `$` (end, or before a
 * final newline) becomes `(?=\n?$)`. Two PCRE constructs have no JavaScript equivalent and are
 * approximated by their backtracking forms: atomic groups `(?>…)` and possessive quantifiers
 * (`*+`, `++`, `?+`, `{n}+`). Anything else JavaScript lacks (`\h`, `\R`, `\K`, `\p{..}`, inline
 * flags) is reported as an unsupported construct.
 */

const POSIX_CLASSES: Record<string, string> = {
  alpha: "A-Za-z",
  digit: "0-9",
  alnum: "A-Za-z0-9",
  upper: "A-Z",
  lower: "a-z",
  space: " \\t\\n\\r\\f\\v",
  blank: " \\t",
  punct: "!-\\/:-@\\[-`{-~",
  print: " -~",
  graph: "!-~",
  cntrl: "\\x00-\\x1f\\x7f",
  xdigit: "0-9A-Fa-f",
  word: "A-Za-z0-9_",
  ascii: "\\x00-\\x7f",
};

/** Escapes that mean the same in both engines (outside and inside classes). */
const SHARED_ESCAPES = new Set(["d", "D", "w", "W", "s", "S", "n", "t", "r", "f", "v"]);

export class PcreTranslationError extends Error {}

function hexByte(code: number): string {
  if (code > 0xff) {
    throw new PcreTranslationError(`character code ${code} does not fit a byte (no UTF mode)`);
  }
  return `\\x${code.toString(16).padStart(2, "0")}`;
}

function escapeLiteral(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}

/**
 * Reads an escape at pattern[i] === "\\"; returns the JavaScript text and the index after it.
 * `inClass` changes what \b means (backspace) and forbids anchors.
 */
function translateEscape(pattern: string, i: number, inClass: boolean): [string, number] {
  const c = pattern[i + 1];
  if (c === undefined) throw new PcreTranslationError("pattern ends with a backslash");
  if (SHARED_ESCAPES.has(c)) return [`\\${c}`, i + 2];
  if (c === "b" || c === "B") {
    if (inClass) {
      if (c === "b") return ["\\x08", i + 2];
      throw new PcreTranslationError("\\B inside a character class");
    }
    return [`\\${c}`, i + 2];
  }
  if (c === "e") return ["\\x1b", i + 2];
  if (c === "a") return ["\\x07", i + 2];
  if (c === "x") {
    if (pattern[i + 2] === "{") {
      const close = pattern.indexOf("}", i + 3);
      const digits = close < 0 ? "" : pattern.slice(i + 3, close);
      if (!/^[0-9A-Fa-f]{1,8}$/.test(digits)) throw new PcreTranslationError("bad \\x{...} escape");
      return [hexByte(Number.parseInt(digits, 16)), close + 1];
    }
    const digits = /^[0-9A-Fa-f]{0,2}/.exec(pattern.slice(i + 2))![0];
    return [hexByte(digits === "" ? 0 : Number.parseInt(digits, 16)), i + 2 + digits.length];
  }
  if (c === "0" || (inClass && c >= "1" && c <= "7")) {
    const digits = /^[0-7]{1,3}/.exec(pattern.slice(i + 1))![0];
    return [hexByte(Number.parseInt(digits, 8)), i + 1 + digits.length];
  }
  if (c >= "1" && c <= "9") {
    // A back reference (or, past the number of groups, an octal escape: not in any policy).
    const digits = /^[0-9]+/.exec(pattern.slice(i + 1))![0];
    return [`\\${digits}`, i + 1 + digits.length];
  }
  if (/[A-Za-z]/.test(c)) {
    if (!inClass && c === "A") return ["^", i + 2];
    if (!inClass && c === "z") return ["$", i + 2];
    if (!inClass && c === "Z") return ["(?=\\n?$)", i + 2];
    throw new PcreTranslationError(`PCRE2 escape \\${c} is not supported`);
  }
  // Any other escaped character stands for itself.
  return [escapeLiteral(c), i + 2];
}

/** Translates a character class starting at pattern[i] === "["; returns it and the index after "]". */
function translateClass(pattern: string, start: number): [string, number] {
  let out = "[";
  let i = start + 1;
  if (pattern[i] === "^") {
    out += "^";
    i += 1;
  }
  // In PCRE a "]" right after "[" or "[^" is a literal; in JavaScript "[]" is an empty class.
  if (pattern[i] === "]") {
    out += "\\]";
    i += 1;
  }
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === "]") return [`${out}]`, i + 1];
    if (c === "\\") {
      if (pattern[i + 1] === "Q") {
        const end = pattern.indexOf("\\E", i + 2);
        const literal = end < 0 ? pattern.slice(i + 2) : pattern.slice(i + 2, end);
        out += escapeLiteral(literal);
        i = end < 0 ? pattern.length : end + 2;
        continue;
      }
      if (pattern[i + 1] === "E") {
        i += 2;
        continue;
      }
      const [text, next] = translateEscape(pattern, i, true);
      out += text;
      i = next;
      continue;
    }
    if (c === "[") {
      const posix = /^\[:(\^?)([a-z]+):\]/.exec(pattern.slice(i));
      if (posix) {
        const ranges = POSIX_CLASSES[posix[2]!];
        if (ranges === undefined) throw new PcreTranslationError(`unknown POSIX class [:${posix[2]}:]`);
        if (posix[1] === "^") throw new PcreTranslationError("negated POSIX class inside a class");
        out += ranges;
        i += posix[0].length;
        continue;
      }
      out += "\\[";
      i += 1;
      continue;
    }
    out += c;
    i += 1;
  }
  throw new PcreTranslationError("missing terminating ] for character class");
}

/**
 * Translates a complete PCRE2 pattern (already anchored by the caller, as libselinux does) into
 * JavaScript source for a RegExp with the "s" flag. Throws PcreTranslationError for what cannot
 * be expressed; the RegExp constructor reports the remaining syntax errors.
 */
export function translatePcre(pattern: string): string {
  let out = "";
  let i = 0;
  /** Whether the last token was a quantifier (so a following "+" makes it possessive). */
  let afterQuantifier = false;
  while (i < pattern.length) {
    const c = pattern[i]!;
    let quantifier = false;
    if (c === "\\") {
      const next = pattern[i + 1];
      if (next === "Q") {
        const end = pattern.indexOf("\\E", i + 2);
        const literal = end < 0 ? pattern.slice(i + 2) : pattern.slice(i + 2, end);
        out += literal === "" ? "" : `(?:${escapeLiteral(literal)})`;
        i = end < 0 ? pattern.length : end + 2;
      } else if (next === "E") {
        i += 2;
      } else {
        const [text, after] = translateEscape(pattern, i, false);
        out += text;
        i = after;
      }
    } else if (c === "[") {
      const [text, after] = translateClass(pattern, i);
      out += text;
      i = after;
    } else if (c === "$") {
      out += "(?=\\n?$)";
      i += 1;
    } else if (c === "(" && pattern[i + 1] === "?") {
      const rest = pattern.slice(i + 2);
      if (rest.startsWith("#")) {
        const close = pattern.indexOf(")", i);
        if (close < 0) throw new PcreTranslationError("missing ) after comment");
        i = close + 1;
        continue;
      }
      if (rest.startsWith(">")) {
        out += "(?:"; // atomic group: approximated (see the module comment)
        i += 3;
      } else if (rest.startsWith("P<")) {
        out += "(?<";
        i += 4;
      } else if (/^(:|=|!|<=|<!|<[A-Za-z_])/.test(rest)) {
        out += "(?";
        i += 2;
      } else {
        throw new PcreTranslationError(`PCRE2 group (?${rest.slice(0, 2)} is not supported`);
      }
    } else if (c === "*" || c === "+" || c === "?") {
      if (c === "+" && afterQuantifier) {
        i += 1; // possessive: approximated by the greedy quantifier
        afterQuantifier = false;
        continue;
      }
      if (c === "?" && afterQuantifier) {
        out += "?"; // lazy
        i += 1;
        afterQuantifier = false;
        continue;
      }
      out += c;
      i += 1;
      quantifier = true;
    } else if (c === "{") {
      const counted = /^\{\d+(,\d*)?\}/.exec(pattern.slice(i));
      if (counted) {
        out += counted[0];
        i += counted[0].length;
        quantifier = true;
      } else {
        out += "\\{";
        i += 1;
      }
    } else if (c === "}") {
      out += "\\}";
      i += 1;
    } else if (c === "/") {
      out += "\\/";
      i += 1;
    } else {
      out += c;
      i += 1;
    }
    afterQuantifier = quantifier;
  }
  return out;
}

/**
 * The regexes compiled last, by pattern: parsing a file_contexts compiles each regex to check it,
 * and building the lookup needs the same one again (5,500 specs on RHCOS). A RegExp without the
 * g or y flag keeps no state between tests, so one object can serve both. Bounded: a new policy
 * replaces the set.
 */
const compiled = new Map<string, RegExp>();
const MAX_COMPILED = 20_000;

/** Compiles a file_contexts regex as libselinux does: `^` + regex + `$`, DOTALL. */
export function compileSpecRegex(regex: string): RegExp {
  let re = compiled.get(regex);
  if (re === undefined) {
    re = new RegExp(translatePcre(`^${regex}$`), "s");
    if (compiled.size >= MAX_COMPILED) compiled.clear();
    compiled.set(regex, re);
  }
  return re;
}
