import { type ByteTail, readTailBytes } from "../host/files.js";
import type { Host } from "../host/host.js";
import { describeError } from "../host/root.js";
import { journalDirectories } from "../journal/locate.js";
import { readJournal } from "../journal/reader.js";
import type { JournalReadStats } from "../journal/types.js";
import { linesContaining } from "../logrules/lines.js";
import { fieldText } from "../logrules/pack.js";
import { type AvcRecord, contextType, isContainerDomain, isStorageDenial, parseAvc } from "../selinux/avc.js";
import type { CollectOptions, SourceDefinition } from "./source.js";

/** Container denials on store-ish types, grouped by what was denied on what. */
export interface AvcGroup {
  sourceType: string;
  targetType: string;
  tclass: string;
  permissions: string[];
  count: number;
  /** True when every record of the group was logged in permissive mode (nothing was blocked). */
  permissive: boolean;
  firstSeen: string | null;
  lastSeen: string | null;
  /** A few records, for evidence: the path is as the container saw it; dev + ino name the host file. */
  samples: {
    time: string | null;
    comm: string | null;
    path: string | null;
    dev: string | null;
    ino: number | null;
  }[];
}

export interface AvcFacts {
  auditLogs: { path: string; bytesRead: number; truncated: boolean }[];
  journal: Pick<JournalReadStats, "backend" | "delivered" | "dropped" | "warnings"> | null;
  journalError?: string;
  storageDenials: AvcGroup[];
  /** Other denials of container processes (ports, capabilities, other files): counted, not kept. */
  otherContainerDenials: number;
  /** Records at or before this time were counted by an earlier cycle and skipped now. */
  after: string | null;
  /** The newest record's time: the next cycle counts only what comes after it. */
  newestRecord: string | null;
}

export const AUDIT_LOGS = [
  "/var/log/audit/audit.log",
  ...[1, 2, 3, 4].map((n) => `/var/log/audit/audit.log.${n}`),
];
/**
 * How much of each audit log is read, from its end: one read per file and run, shared by this
 * source and must-gather's logs/audit-avc.log (see auditLogTail).
 */
export const AUDIT_TAIL_BYTES = 8 * 1024 * 1024;
/** What this source parses of all audit logs together, newest first. */
const AUDIT_BUDGET_BYTES = 16 * 1024 * 1024;
const MAX_SAMPLES = 5;

export const avcSource: SourceDefinition<{ avc: AvcFacts }, "avc"> = {
  name: "avc",
  deadlineMs: 15_000,
  async collect({ host, options }) {
    const after = options.resume?.avcAfter ?? null;
    const groups = new AvcGroups(after);
    const facts: AvcFacts = {
      auditLogs: [],
      journal: null,
      storageDenials: [],
      otherContainerDenials: 0,
      after,
      newestRecord: after,
    };
    await readAuditLogs(host, facts, groups);
    await readJournalAvcs(host, options, facts, groups);
    facts.storageDenials = groups.list();
    facts.otherContainerDenials = groups.other;
    facts.newestRecord = groups.newest ?? after;
    return facts;
  },
};

/** Groups records, dropping the copies journald and auditd both keep of one event (same time and serial). */
class AvcGroups {
  other = 0;
  newest: string | null = null;
  readonly #groups = new Map<string, AvcGroup>();
  readonly #seen = new Set<string>();
  readonly #after: string | null;

  constructor(after: string | null) {
    this.#after = after;
  }

  add(record: AvcRecord): void {
    if (record.time !== null) {
      if (this.#after !== null && record.time <= this.#after) return;
      if (this.newest === null || record.time > this.newest) this.newest = record.time;
    }
    if (record.serial !== null && record.time !== null) {
      const id = `${record.time}:${record.serial}:${record.tcontext}:${record.ino}`;
      if (this.#seen.has(id)) return;
      this.#seen.add(id);
    }
    if (!isStorageDenial(record)) {
      if (record.denied && isContainerDomain(record.scontext)) this.other += 1;
      return;
    }
    const key = [
      contextType(record.scontext),
      contextType(record.tcontext),
      record.tclass,
      record.permissions.join(" "),
    ].join("|");
    let group = this.#groups.get(key);
    if (!group) {
      group = {
        sourceType: contextType(record.scontext),
        targetType: contextType(record.tcontext),
        tclass: record.tclass,
        permissions: record.permissions,
        count: 0,
        permissive: true,
        firstSeen: record.time,
        lastSeen: record.time,
        samples: [],
      };
      this.#groups.set(key, group);
    }
    group.count += 1;
    group.permissive &&= record.permissive === true;
    if (record.time && (!group.firstSeen || record.time < group.firstSeen)) group.firstSeen = record.time;
    if (record.time && (!group.lastSeen || record.time > group.lastSeen)) group.lastSeen = record.time;
    if (group.samples.length < MAX_SAMPLES) {
      const { time, comm, path, dev, ino } = record;
      group.samples.push({ time, comm, path, dev, ino });
    }
  }

  list(): AvcGroup[] {
    return [...this.#groups.values()].sort((a, b) => b.count - a.count);
  }
}

/**
 * The last AUDIT_TAIL_BYTES of one of auditd's logs, or undefined when it cannot be read (missing,
 * not a regular file). Read once per run and file: this source and must-gather's copy of the AVC
 * records both want the same megabytes.
 */
export function auditLogTail(host: Host, file: string): Promise<ByteTail | undefined> {
  return host.shared(`audit-log-tail:${file}`, async () => {
    try {
      return await readTailBytes((await host.root.resolve(file)).local, AUDIT_TAIL_BYTES);
    } catch {
      return undefined;
    }
  });
}

/** The last `maxBytes` of a tail (all of it when shorter); cut when it starts inside a line. */
function lastBytes(tail: ByteTail, maxBytes: number): ByteTail {
  if (tail.data.length <= maxBytes) return tail;
  const from = tail.data.length - maxBytes;
  return { data: tail.data.subarray(from), bytes: maxBytes, cut: tail.data[from - 1] !== 0x0a };
}

/** auditd's log and its rotations, newest first, each read from its end within the budget. */
async function readAuditLogs(host: Host, facts: AvcFacts, groups: AvcGroups): Promise<void> {
  let left = AUDIT_BUDGET_BYTES;
  for (const file of AUDIT_LOGS) {
    if (left <= 0) break;
    const read = await auditLogTail(host, file);
    if (!read) continue;
    // The shared read is a whole AUDIT_TAIL_BYTES: only what is left of the budget is parsed.
    const tail = lastBytes(read, left);
    left -= tail.bytes;
    facts.auditLogs.push({ path: file, bytesRead: tail.bytes, truncated: tail.cut || read.cut });
    // The lines holding "avc:" (the first one left out when the read began inside it).
    for (const line of linesContaining(tail.data, ["avc:"], tail.cut)) {
      const record = parseAvc(line);
      if (record) groups.add(record);
    }
  }
}

/** journald keeps audit records (_TRANSPORT=audit) and, without auditd, the kernel's printk copies. */
async function readJournalAvcs(
  host: Host,
  options: CollectOptions,
  facts: AvcFacts,
  groups: AvcGroups,
): Promise<void> {
  const directories = await journalDirectories(host);
  if (directories.length === 0) return;
  try {
    const stats = await readJournal(
      {
        source: { directories },
        filters: [{ _TRANSPORT: "audit", _AUDIT_TYPE_NAME: "AVC" }, { _TRANSPORT: "kernel" }],
        // After a watermark, a minute's slack: journald stamps an entry when it receives it.
        since: options.resume?.avcAfter
          ? { realtimeUsec: Date.parse(options.resume.avcAfter) * 1000 - 60e6 }
          : { realtimeUsec: Date.now() * 1000 - options.journalLookbackHours * 3600e6 },
        fields: ["MESSAGE", "_SOURCE_REALTIME_TIMESTAMP", "_AUDIT_ID"],
        limits: { maxEntries: 50_000, maxBytes: 64 * 1024 * 1024, maxFieldBytes: 16 * 1024 },
      },
      (entry) => {
        const message = fieldText(entry, "MESSAGE");
        if (!message?.includes("avc:")) return;
        const record = parseAvc(message);
        if (!record) return;
        // journald's audit MESSAGE has no audit(...) stamp; _SOURCE_REALTIME_TIMESTAMP is the
        // audit event's own time, so a copy also in audit.log is recognised as the same event.
        if (record.time === null) {
          const source = Number(fieldText(entry, "_SOURCE_REALTIME_TIMESTAMP"));
          const usec = Number.isFinite(source) && source > 0 ? source : entry.realtimeUsec;
          record.time = new Date(Math.floor(usec / 1000)).toISOString();
          const serial = Number(fieldText(entry, "_AUDIT_ID"));
          record.serial = Number.isFinite(serial) ? serial : null;
        }
        groups.add(record);
      },
    );
    facts.journal = {
      backend: stats.backend,
      delivered: stats.delivered,
      dropped: stats.dropped,
      warnings: stats.warnings,
    };
  } catch (error) {
    facts.journalError = describeError(error);
  }
}
