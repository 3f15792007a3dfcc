import { isIPv4, isIPv6 } from "node:net";
import path from "node:path";

/**
 * What the support bundle does to every byte it writes: masks secrets (credentials in URLs,
 * Authorization and other header values, passwords and tokens, PEM blocks, kubeconfig
 * credentials) and, with --obfuscate, replaces host names and IP addresses by tokens that are the
 * same for the same input across the whole bundle (`host-0001`, `ip-0001`). Only counts are ever
 * recorded (rule, file, count), never what was replaced.
 *
 * Files that *are* credentials (auth.json, pull secrets, kubeconfigs, keys and certificates) are
 * not masked but left out whole: see secretFileReason.
 */

export const REDACTED = "[REDACTED]";

export type RuleName =
  | "pem-private-key"
  | "pem-certificate"
  | "url-credentials"
  | "authorization-header"
  | "header-value"
  | "bearer-token"
  | "kubeconfig-credential"
  | "password"
  | "obfuscate-hostname"
  | "obfuscate-ip";

export interface RedactionCount {
  rule: RuleName;
  count: number;
}

interface TextRule {
  name: RuleName;
  pattern: RegExp;
  /**
   * A cheaper test that every match of `pattern` passes: a text that fails it is not scanned with
   * `pattern` at all.
   */
  prefilter?: RegExp;
  replace: (match: string, ...groups: string[]) => string;
}

export const HEADER_NAMES =
  "(?:proxy-)?authorization|x-registry-auth|x-auth-token|x-api-key|x-amz-security-token|cookie|set-cookie";
export const SECRET_KEYS =
  "password|passwd|pass|pwd|secret|token|auth|api[_-]?key|access[_-]?key|secret[_-]?key|client[_-]?secret|identitytoken|registrytoken|bearer[_-]?token";
/** Kubeconfig fields whose value is a credential. */
export const KUBECONFIG_NAMES =
  "client-key-data|client-certificate-data|certificate-authority-data|id-token|refresh-token|access-token";
/** Flags whose value is a secret (skopeo's --creds, --src-creds and --dest-creds among them). */
export const FLAG_NAMES = `${SECRET_KEYS}|(?:src-|dest-)?creds|credentials`;
/** A value after `key=` / `key: `: quoted, or up to a blank or a separator. */
const VALUE = `("[^"\\n]*"|'[^'\\n]*'|[^\\s"',;}&\\]]+)`;
/** A header's value: as VALUE, and an unquoted one takes its scheme along (`Bearer abc`). */
const HEADER_VALUE = `("[^"\\n]*"|'[^'\\n]*'|(?:(?:Bearer|Basic|Negotiate|Digest|Token)\\s+)?[^\\s"',;}&\\]]+)`;

function masked(value: string): string {
  if (value.startsWith('"')) return `"${REDACTED}"`;
  if (value.startsWith("'")) return `'${REDACTED}'`;
  return REDACTED;
}

function alreadyMasked(value: string): boolean {
  return /^["']?\[?REDACTED\b/.test(value);
}

const TEXT_RULES: TextRule[] = [
  {
    name: "pem-private-key",
    // A block cut by a size cap has no END line: mask to the end of the text.
    pattern: /-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----(?:[\s\S]*?-----END \1-----|[\s\S]*$)/g,
    replace: (_m, kind) => `-----BEGIN ${kind}-----\n${REDACTED}\n-----END ${kind}-----`,
  },
  {
    name: "pem-certificate",
    pattern:
      /-----BEGIN ((?:TRUSTED )?CERTIFICATE(?: REQUEST)?|X509 CRL|PGP PRIVATE KEY BLOCK)-----(?:[\s\S]*?-----END \1-----|[\s\S]*$)/g,
    replace: (_m, kind) => `-----BEGIN ${kind}-----\n${REDACTED}\n-----END ${kind}-----`,
  },
  {
    name: "url-credentials",
    pattern: /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@"'<>[\]]+)@/gi,
    // Starts with a literal, which V8 searches for fast: 10 times quicker on journal text.
    prefilter: /:\/\/[^\s/?#@"'<>[\]]+@/,
    replace: (match, scheme, userinfo) => (userinfo === REDACTED ? match : `${scheme}${REDACTED}@`),
  },
  {
    name: "authorization-header",
    pattern: new RegExp(`\\b(${HEADER_NAMES})(["']?\\s*[:=]\\s*\\[?\\s*)${HEADER_VALUE}`, "gi"),
    replace: (match, name, separator, value) =>
      alreadyMasked(value!) ? match : `${name}${separator}${masked(value!)}`,
  },
  {
    name: "bearer-token",
    pattern: /\b(Bearer|Basic|Negotiate)\s+(?!\[REDACTED)([A-Za-z0-9._~+/-]{6,}=*)/g,
    // A credential has digits, symbols or inner capitals; "Basic authentication" is prose.
    replace: (match, scheme, value) =>
      /[0-9+/=._~-]/.test(value!) || /[A-Z]/.test(value!.slice(1)) ? `${scheme} ${REDACTED}` : match,
  },
  {
    name: "kubeconfig-credential",
    pattern: new RegExp(`\\b(${KUBECONFIG_NAMES})(["']?\\s*:\\s*)("[^"\\n]*"|'[^'\\n]*'|[^\\s"',}]+)`, "gi"),
    replace: (match, name, separator, value) =>
      alreadyMasked(value!) ? match : `${name}${separator}${masked(value!)}`,
  },
  {
    // A secret flag on a command line in a log or a unit (`--creds user:pw`, `--password=pw`);
    // the password rule below does not look behind a dash. A following flag is not a value.
    name: "password",
    pattern: new RegExp(`(?<![\\w-])(--?(?:${FLAG_NAMES}))(=|[ \\t]+)(?!-)${VALUE}`, "gi"),
    replace: (match, name, separator, value) =>
      alreadyMasked(value!) ? match : `${name}${separator}${masked(value!)}`,
  },
  {
    name: "password",
    pattern: new RegExp(`(?<![\\w-])(${SECRET_KEYS})(["']?\\s*[:=]\\s*)${VALUE}`, "gi"),
    replace: (match, name, separator, value) =>
      alreadyMasked(value!) ? match : `${name}${separator}${masked(value!)}`,
  },
];

/**
 * What every match of a text rule (and a header table, for #headerTables) contains, as one test:
 * a text without any of it is left as it is without running each rule. Most strings of a
 * snapshot (paths, ids, numbers as text) are such; one test instead of eight per string. Each
 * name the rules look for contains one of these words ("auth" for authorization and
 * x-registry-auth, "key" for api-key and client-key-data, "certificate" for client-certificate-data,
 * "token" for every *-token, "pass" for password and passwd, "secret" for client_secret, "cred"
 * for the argv flags --creds and --credentials), so the test passes whenever a rule could match;
 * case is ignored. Fifteen short words instead of the forty names: the test is three times
 * quicker on journal text, where almost no line has any. A name added to SECRET_KEYS,
 * HEADER_NAMES, KUBECONFIG_NAMES or FLAG_NAMES needs one of these words (a test checks each).
 */
export const ANY_RULE =
  /-----BEGIN |:\/\/|auth|key|cookie|bearer|basic|negotiate|certificate|token|pass|pwd|secret|cred|header/i;

/** JSON keys whose value is a secret whatever it looks like. */
const SECRET_JSON_KEY = new RegExp(
  `^(?:${SECRET_KEYS}|${HEADER_NAMES}|client-key-data|client-certificate-data|id-token|refresh-token|access-token)$`,
  "i",
);
/** A flag in an argv array whose next element is a secret (`--password x`). */
const SECRET_FLAG = new RegExp(`^--?(?:${FLAG_NAMES})$`, "i");

/** Tables of a TOML file whose every value is a header value (stargz-store's `[...mirrors.header]`). */
const HEADER_TABLE = /^\s*\[\[?\s*([^\]]*?)\s*\]\]?\s*(#.*)?$/;
const HEADER_SEGMENT = /(?:^|\.)"?(?:headers?|http_headers)"?$/i;
const INLINE_HEADERS = /^(\s*"?(?:headers?|http_headers)"?\s*=\s*)\{(.*)\}(\s*(#.*)?)$/i;
const KEY_VALUE = /^(\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=\s*)(.*)$/;

/**
 * Where a window that starts on the line of `from` ends: the end of the WINDOW_LINES_AFTER-th
 * line after it that holds more than white space (lines of white space only between them are
 * in), or the end of the text.
 */
function windowEnd(text: string, from: number): number {
  let end = text.indexOf("\n", from);
  for (let left = WINDOW_LINES_AFTER; left > 0 && end >= 0; ) {
    const next = text.indexOf("\n", end + 1);
    const line = text.slice(end + 1, next < 0 ? text.length : next);
    if (/\S/.test(line)) left -= 1;
    end = next;
  }
  return end < 0 ? text.length : end;
}

/** ANY_RULE, for finding every place a rule could match. */
const ANY_RULE_ALL = new RegExp(ANY_RULE.source, "gi");
/** Texts shorter than this are masked whole: windows pay off on logs of many lines. */
const WINDOWS_FROM_CHARS = 64 * 1024;
/**
 * Lines after a line with a rule's word that a match starting on it can reach: `\s*` crosses
 * line ends, and the authorization-header rule has four places it may: before the separator,
 * before an opening "[", before a scheme, and (`\s+`) between scheme and value. A scheme such as
 * Digest holds no word of its own, so `Authorization` / `=` / `[` / `Digest` / value, one per
 * line, ends on the fourth line after the name's that holds more than white space.
 */
const WINDOW_LINES_AFTER = 4;

export class Redactor {
  readonly obfuscate: boolean;
  /** False: every text is masked whole (the reference the line windows are tested against). */
  readonly #windows: boolean;
  /** Per bundle path: rule -> count, in the order first met. */
  readonly #counts = new Map<string, Map<RuleName, number>>();
  readonly #hosts = new Map<string, string>();
  readonly #ips = new Map<string, string>();
  #knownNames: RegExp | undefined;

  constructor(options: { obfuscate: boolean; hostNames?: string[]; lineWindows?: boolean }) {
    this.obfuscate = options.obfuscate;
    this.#windows = options.lineWindows ?? true;
    if (options.obfuscate) this.addHostNames(options.hostNames ?? []);
  }

  /** Names that are always replaced, wherever they appear as a whole word: the node's names. */
  addHostNames(names: string[]): void {
    const all = new Set<string>();
    for (const name of names) {
      const trimmed = name.trim().toLowerCase();
      if (!trimmed || trimmed === "localhost" || trimmed === "unknown") continue;
      all.add(trimmed);
      const short = trimmed.split(".")[0]!;
      if (short.length >= 3) all.add(short);
    }
    const sorted = [...all].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
    for (const name of sorted) this.#token(this.#hosts, name, "host");
    const known = [...this.#hosts.keys()].sort((a, b) => b.length - a.length);
    this.#knownNames =
      known.length === 0
        ? undefined
        : new RegExp(`(?<![A-Za-z0-9-])(${known.map(escapeRegExp).join("|")})(?![A-Za-z0-9-])`, "gi");
  }

  /** The token a host name or address stands for in this bundle (for tests and the top directory). */
  tokenFor(value: string): string | undefined {
    return this.#hosts.get(value.toLowerCase()) ?? this.#ips.get(value.toLowerCase());
  }

  /** Masks (and obfuscates) a text item: config files, logs, command output. */
  text(text: string, file: string): string {
    if (!ANY_RULE.test(text)) return this.obfuscate ? this.#obfuscateText(text, file) : text;
    const out = this.#maskedInWindows(text, file) ?? this.#masked(text, file);
    return this.obfuscate ? this.#obfuscateText(out, file) : out;
  }

  #masked(text: string, file: string): string {
    let out = this.#headerTables(text, file);
    for (const rule of TEXT_RULES) out = this.#apply(rule, out, file);
    return out;
  }

  /**
   * A long text masked where a rule can match only: the lines that hold one of ANY_RULE's words,
   * each with the lines after it a match can reach (WINDOW_LINES_AFTER), the rest left as it is.
   * A journal excerpt of megabytes has a few such lines, and one search for the words replaces
   * each rule's pass over the whole text. The same as masking the whole text: every rule's match
   * begins on the line of its word (a name, a scheme, "://") and ends within the window, a match
   * never changes anything outside its own, and what a rule writes brings in no word. Not for a
   * text where a rule spans any number of lines (a PEM block) or looks at the lines above (header
   * tables): undefined, and it is masked whole.
   */
  #maskedInWindows(text: string, file: string): string | undefined {
    if (!this.#windows || text.length < WINDOWS_FROM_CHARS) return undefined;
    if (text.includes("-----BEGIN ") || /header/i.test(text)) return undefined;
    const windows: [number, number][] = [];
    ANY_RULE_ALL.lastIndex = 0;
    for (let hit = ANY_RULE_ALL.exec(text); hit !== null; hit = ANY_RULE_ALL.exec(text)) {
      const start = text.lastIndexOf("\n", hit.index) + 1;
      const end = windowEnd(text, hit.index);
      const last = windows.at(-1);
      if (last && start <= last[1] + 1) last[1] = Math.max(last[1], end);
      else windows.push([start, end]);
      // On to the next line: another word there may need a window reaching further.
      const lineEnd = text.indexOf("\n", hit.index);
      ANY_RULE_ALL.lastIndex = lineEnd < 0 ? text.length : lineEnd;
    }
    let out = "";
    let at = 0;
    for (const [start, end] of windows) {
      out += text.slice(at, start) + this.#masked(text.slice(start, end), file);
      at = end;
    }
    return out + text.slice(at);
  }

  /**
   * An HTML page: the text outside <script>, <style> and <meta> elements is treated as text.
   * Scripts and styles are the renderer's own code, pinned by the CSP's hashes in a <meta>: none
   * of them is data, and a changed byte would stop the page from working.
   */
  html(page: string, file: string): string {
    return page
      .split(/(<script\b[\s\S]*?<\/script>|<style\b[\s\S]*?<\/style>|<meta\b[^>]*>)/i)
      .map((part, i) => (i % 2 === 1 ? part : this.text(part, file)))
      .join("");
  }

  /** A JSON value: strings and keys masked as text, values of secret keys masked whole. Returns a copy. */
  json<T>(value: T, file: string): T {
    return this.#jsonValue(value, file, undefined) as T;
  }

  /** A JSON document given as text: masked as JSON when it parses, as text otherwise. */
  jsonText(text: string, file: string): string {
    // Without any word a rule looks for, and without a \u escape that could spell one, no key and
    // no value would be masked: the document is kept byte for byte, unparsed (containers/storage's
    // layers.json runs to megabytes of ids and digests).
    if (!this.obfuscate && !text.includes("\\u") && !ANY_RULE.test(text)) return text;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return this.text(text, file);
    }
    return `${JSON.stringify(this.json(parsed, file), null, 2)}\n`;
  }

  /** A path inside the bundle (host names in it are replaced too, so names give nothing away). */
  name(bundlePath: string): string {
    if (!this.obfuscate) return bundlePath;
    return this.#obfuscateText(bundlePath, "(entry names)");
  }

  /** Counts of a text masked elsewhere (by another Redactor without obfuscation) under `file`. */
  record(file: string, counts: RedactionCount[]): void {
    for (const { rule, count } of counts) this.#count(file, rule, count);
  }

  countsFor(file: string): RedactionCount[] {
    return [...(this.#counts.get(file) ?? new Map()).entries()].map(([rule, count]) => ({ rule, count }));
  }

  /** Every count, by file then rule, for redactions.json. */
  all(): { rule: RuleName; file: string; count: number }[] {
    const rows: { rule: RuleName; file: string; count: number }[] = [];
    for (const [file, counts] of this.#counts) {
      for (const [rule, count] of counts) rows.push({ rule, file, count });
    }
    return rows.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.rule < b.rule ? -1 : 1));
  }

  /** Renames the file counts were kept under (an entry name known only later). */
  rename(from: string, to: string): void {
    const counts = this.#counts.get(from);
    if (!counts || from === to) return;
    this.#counts.delete(from);
    const target = this.#counts.get(to) ?? new Map<RuleName, number>();
    for (const [rule, count] of counts) target.set(rule, (target.get(rule) ?? 0) + count);
    this.#counts.set(to, target);
  }

  #count(file: string, rule: RuleName, n = 1): void {
    let counts = this.#counts.get(file);
    if (!counts) {
      counts = new Map();
      this.#counts.set(file, counts);
    }
    counts.set(rule, (counts.get(rule) ?? 0) + n);
  }

  #apply(rule: TextRule, text: string, file: string): string {
    if (rule.prefilter && !rule.prefilter.test(text)) return text;
    return text.replace(rule.pattern, (match: string, ...groups: unknown[]) => {
      const captured = groups.slice(0, -2).map((g) => (typeof g === "string" ? g : "")) as string[];
      const replaced = rule.replace(match, ...captured);
      if (replaced !== match) this.#count(file, rule.name);
      return replaced;
    });
  }

  /** Values in TOML header tables, and inline `header = {...}` tables, masked line by line. */
  #headerTables(text: string, file: string): string {
    if (!/header/i.test(text)) return text;
    const lines = text.split("\n");
    let inHeaders = false;
    let openArray = false;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (openArray) {
        // The rest of a multi-line array value in a header table.
        const closes = line.includes("]");
        lines[i] = closes ? line.replace(/^[^\]]*/, "") : "";
        openArray = !closes;
        continue;
      }
      const table = HEADER_TABLE.exec(line);
      if (table) {
        inHeaders = HEADER_SEGMENT.test(table[1]!.trim());
        continue;
      }
      const inline = INLINE_HEADERS.exec(line);
      if (inline && !inline[2]!.includes(REDACTED)) {
        const keys = [...inline[2]!.matchAll(/("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=/g)].map((m) => m[1]);
        lines[i] = `${inline[1]}{ ${keys.map((k) => `${k} = "${REDACTED}"`).join(", ")} }${inline[3]}`;
        this.#count(file, "header-value", Math.max(keys.length, 1));
        continue;
      }
      if (!inHeaders) continue;
      const pair = KEY_VALUE.exec(line);
      if (!pair || pair[2]!.trim() === "" || pair[2]!.includes(REDACTED)) continue;
      const value = pair[2]!.trim();
      if (value.startsWith("[")) {
        lines[i] = `${pair[1]}["${REDACTED}"]`;
        openArray = !value.includes("]");
      } else {
        lines[i] = `${pair[1]}"${REDACTED}"`;
      }
      this.#count(file, "header-value");
    }
    return lines.join("\n");
  }

  #jsonValue(value: unknown, file: string, key: string | undefined): unknown {
    if (typeof value === "string") {
      if (key !== undefined && SECRET_JSON_KEY.test(key) && value !== "" && !alreadyMasked(value)) {
        this.#count(file, /authorization/i.test(key) ? "authorization-header" : "password");
        return REDACTED;
      }
      return this.text(value, file);
    }
    if (typeof value === "number" && key !== undefined && SECRET_JSON_KEY.test(key)) {
      this.#count(file, "password");
      return REDACTED;
    }
    if (Array.isArray(value)) {
      if (key !== undefined && SECRET_JSON_KEY.test(key)) {
        // "Authorization": ["Basic ..."]: every element is the secret.
        return value.map((item) => this.#jsonValue(item, file, key));
      }
      return value.map((item, i) => {
        const previous = value[i - 1];
        if (typeof item === "string" && typeof previous === "string" && SECRET_FLAG.test(previous)) {
          this.#count(file, "password");
          return REDACTED;
        }
        return this.#jsonValue(item, file, undefined);
      });
    }
    if (value !== null && typeof value === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const name = this.obfuscate ? this.#obfuscateText(k, file) : k;
        out[name] = this.#jsonValue(v, file, k);
      }
      return out;
    }
    return value;
  }

  #token(map: Map<string, string>, value: string, prefix: string): string {
    let token = map.get(value);
    if (!token) {
      token = `${prefix}-${String(map.size + 1).padStart(4, "0")}`;
      map.set(value, token);
    }
    return token;
  }

  #obfuscateText(text: string, file: string): string {
    let out = text;
    if (this.#knownNames) {
      out = out.replace(this.#knownNames, (match) => {
        this.#count(file, "obfuscate-hostname");
        return this.#token(this.#hosts, match.toLowerCase(), "host");
      });
    }
    out = out.replace(IPV6_CANDIDATE, (match) => {
      if (!isIPv6(match) || KEEP_ADDRESSES.has(match.toLowerCase())) return match;
      this.#count(file, "obfuscate-ip");
      return this.#token(this.#ips, match.toLowerCase(), "ip");
    });
    out = out.replace(IPV4_CANDIDATE, (match) => {
      if (!isIPv4(match) || KEEP_ADDRESSES.has(match)) return match;
      this.#count(file, "obfuscate-ip");
      return this.#token(this.#ips, match, "ip");
    });
    out = out.replace(FQDN_CANDIDATE, (match) => {
      if (!looksLikeHostName(match)) return match;
      this.#count(file, "obfuscate-hostname");
      return this.#token(this.#hosts, match.toLowerCase(), "host");
    });
    return out;
  }
}

/** Loopback and unspecified addresses say nothing about a site; they stay as they are. */
const KEEP_ADDRESSES = new Set(["127.0.0.1", "0.0.0.0", "::1", "::", "255.255.255.255"]);
const IPV4_CANDIDATE = /(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)/g;
const IPV6_CANDIDATE =
  /(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])/gi;
const FQDN_CANDIDATE =
  /(?<![\w.-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9](?![\w-]|\.[a-z0-9])/gi;

/** Last labels that are file name extensions, not top-level domains, in what a bundle holds. */
const NOT_TLDS = new Set(
  (
    "conf json yaml yml toml log txt html htm js mjs cjs ts css md service socket sock mount automount " +
    "target timer slice scope path device swap so go py sh rs gz tgz tar xz zst bz2 zip img iso xml pem key " +
    "crt cert csr der p12 pfx db sqlite lock pid tmp bak old orig new rpm deb journal proto fc pp cil " +
    "json~ env ini cfg rules policy kubeconfig"
  ).split(" "),
);
/** Public names every support engineer needs to see, and identifiers shaped like names. */
const PUBLIC_NAMES =
  /^(?:(?:[\w-]+\.)*(?:docker\.io|quay\.io|gcr\.io|ghcr\.io|k8s\.io|kubernetes\.io|openshift\.io|redhat\.io|redhat\.com|fedoraproject\.org|github\.com|golang\.org|google\.golang\.org|example\.(?:com|org|net)))$/i;
/** Reverse-DNS identifiers (io.containerd.snapshotter.v1) and fstypes (fuse.bindfs) are not hosts. */
const NOT_HOST_FIRST_LABEL = new Set(["io", "com", "org", "net", "dev", "fuse", "k8s", "kubernetes", "sigs"]);

/**
 * Top-level domains of three letters or more that host names in a node's files end in: the
 * generic ones, and those of private networks. Two-letter ones (country codes) are all taken.
 * Dotted words with another last label (`storage.options`, `overlay.imagestore`, `crio.runtime`)
 * are configuration keys, not hosts.
 */
const HOST_TLDS = new Set(
  (
    "com net org edu gov mil int info biz name pro aero coop mobi asia tel travel jobs app dev cloud " +
    "tech online xyz top club shop blog live systems services solutions company digital email global " +
    "group link website zone works world today lan local internal intranet corp home localdomain " +
    "private priv test example invalid localhost svc arpa"
  ).split(" "),
);

function looksLikeHostName(candidate: string): boolean {
  const labels = candidate.toLowerCase().split(".");
  const tld = labels.at(-1)!;
  if (NOT_TLDS.has(tld)) return false;
  if (!/^[a-z]{2}$/.test(tld) && !HOST_TLDS.has(tld)) return false;
  if (NOT_HOST_FIRST_LABEL.has(labels[0]!)) return false;
  if (PUBLIC_NAMES.test(candidate)) return false;
  return true;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Why a file must not go into a bundle at all (a credential), or undefined. By name first (so
 * the file is not even read), then, once read, by content.
 */
export function secretFileReason(hostPath: string, text?: string): string | undefined {
  const base = path.posix.basename(hostPath).toLowerCase();
  if (base === "auth.json" || base === ".dockercfg" || base === ".dockerconfigjson")
    return "a registry credential file (auth.json)";
  if (/\.(pem|key|crt|cert|csr|der|p12|pfx|jks|keystore)$/.test(base)) return "a key or certificate file";
  if (/(^|[-_.])(kubeconfig|pull-secret|secret|token|id_rsa|id_ed25519|id_ecdsa)([-_.]|$)/.test(base))
    return "named as a credential file";
  if (hostPath === "/var/lib/kubelet/config.json" || /\/\.docker\/config\.json$/.test(hostPath))
    return "a registry pull secret";
  if (text === undefined) return undefined;
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) return "holds a private key";
  if (/^\s*(#[^\n]*\n\s*)*-----BEGIN /.test(text)) return "a PEM file (key or certificate)";
  if (/^\s*\{[\s\S]*"auths"\s*:/.test(text) || /"\.dockerconfigjson"\s*:/.test(text))
    return "a registry credential file (auths)";
  if (/^\s*kind:\s*["']?Config["']?\s*$/m.test(text) && /^\s*(users|clusters|contexts):/m.test(text))
    return "a kubeconfig (credentials)";
  if (/"kind"\s*:\s*"Config"/.test(text) && /"users"\s*:/.test(text)) return "a kubeconfig (credentials)";
  return undefined;
}
