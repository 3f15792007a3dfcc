import { runSource } from "../collect.js";
import { Host, type PathInspection } from "../host/host.js";
import { findMount, type MountTable } from "../host/mountinfo.js";
import { loadPolicyFileContexts } from "../selinux/file-contexts.js";
import type { Facts } from "../snapshot.js";
import { decideRuntime } from "../sources/filesystems.js";
import { kubeletConfigSource } from "../sources/kubelet-config.js";
import {
  auditStore,
  readSelinuxConfig,
  type StoreLabels,
  type StoreToAudit,
  storageDriver,
  storesToAudit,
} from "../sources/selinux.js";
import { factsOf, type SourceDefinition } from "../sources/source.js";
import type { StorageConfigFacts } from "../sources/storage-config.js";
import { storageConfigSource } from "../sources/storage-config.js";

export interface SelinuxScanRequest {
  hostRoot: string;
  procRoot?: string;
  /** Host paths to scan; the node's stores when empty. */
  paths: string[];
  compare: "type" | "full";
  json: boolean;
}

export interface ScanIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown; isTTY?: boolean; columns?: number };
}

/**
 * The full label audit (`imagefs-doctor selinux-scan [PATH...]`): every file of every store, no
 * budget, with a progress bar on a terminal. Exit status 1 when a label is wrong, else 0.
 */
export async function selinuxScan(request: SelinuxScanRequest, io: ScanIo): Promise<number> {
  const host = new Host({ root: request.hostRoot, procRoot: request.procRoot });
  const node = await nodeConfiguration(host);
  const stores =
    request.paths.length > 0 ? request.paths.map((p) => ({ role: "path" as const, path: p })) : node.stores;
  const config = await readSelinuxConfig(host);
  const policy = await loadPolicyFileContexts(host, config.policyType);
  const table = await host.mounts().catch(() => undefined);
  const graphroot = node.stores.find((s) => s.role === "graphroot")?.path ?? "/var/lib/containers/storage";
  const results: StoreLabels[] = [];
  for (const store of stores) {
    const progress = io.stderr.isTTY
      ? progressBar(io.stderr, store.path, filesEstimate(host, table, await host.inspectPath(store.path)))
      : undefined;
    try {
      results.push(
        await auditStore(host, store, {
          table,
          contexts: policy.contexts,
          graphroot,
          driver: storageDriver(node.storage),
          scan: {
            maxFiles: Number.POSITIVE_INFINITY,
            maxMs: Number.POSITIVE_INFINITY,
            compare: request.compare,
            onProgress: progress?.update,
            progressEvery: PROGRESS_EVERY,
          },
          wanted: new Map(),
          avcPaths: [],
        }),
      );
    } finally {
      progress?.done();
    }
  }
  io.stdout.write(
    request.json ? `${JSON.stringify(results, null, 2)}\n` : renderScan(results, policy.contexts !== null),
  );
  return results.some((r) => (r.scan?.mismatches.length ?? 0) > 0) ? 1 : 0;
}

/** The node's stores and storage configuration, from the same sources collect uses. */
async function nodeConfiguration(
  host: Host,
): Promise<{ stores: StoreToAudit[]; storage: StorageConfigFacts | undefined }> {
  const context = { host, options: {} as never, result: () => Promise.reject(new Error("no inputs")) };
  const storage = await runSource(
    storageConfigSource as SourceDefinition<Facts, "storage-config">,
    context as never,
  );
  const kubelet = await runSource(
    kubeletConfigSource as SourceDefinition<Facts, "kubelet-config">,
    context as never,
  );
  const stores = storesToAudit(decideRuntime(storage, kubelet).kind, factsOf(storage), factsOf(kubelet));
  return { stores: stores.filter((s) => s.role !== "kubelet-root"), storage: factsOf(storage) };
}

/** The walk reports progress this often (in entries); the bar redraws at most every REDRAW_MS. */
const PROGRESS_EVERY = 256;
const REDRAW_MS = 100;

/**
 * How many entries the walk will meet, when statfs can tell: the inodes in use on the store's
 * filesystem, when the store is that filesystem's root (its mount point, not a bind mount of a
 * subdirectory), so everything on it is below the store. A store sharing its filesystem (a
 * graphroot on "/") would get the whole disk's count: no estimate then.
 */
function filesEstimate(host: Host, table: MountTable | undefined, inspection: PathInspection): number | null {
  if (inspection.status !== "ok" || !inspection.isMountPoint || !table) return null;
  const entry = findMount(table, inspection.device, host.seenAs(inspection.resolved));
  const used = inspection.usage.totalInodes - inspection.usage.freeInodes;
  // btrfs and ramfs report no inode counts.
  return entry?.root === "/" && used > 0 ? used : null;
}

const SPINNER = ["|", "/", "-", "\\"];
const BAR_WIDTH = 30;
/** Hard links and entries created during the walk can exceed the estimate: it never shows done early. */
const MAX_FRACTION_BEFORE_DONE = 0.99;

/**
 * A one-line progress display on a terminal, redrawn in place ("\r") at most ten times a second
 * and erased when the store is done. With an estimate it is a bar with a percentage (capped
 * below 100 % until the walk ends); without one, a spinner and the count, which still shows the
 * walk is alive without promising an end it cannot know.
 */
export function progressBar(
  stream: ScanIo["stderr"],
  label: string,
  estimate: number | null,
  clock: () => number = () => performance.now(),
): { update: (checked: number) => void; done: () => void } {
  let last = Number.NEGATIVE_INFINITY;
  let frame = 0;
  let drawn = false;
  // A pseudo-terminal without a size reports 0 columns: 80 are assumed. The last column stays
  // free (a line that fills it wraps on some terminals); however narrow the terminal, a line never
  // exceeds it, or every redraw would wrap and scroll instead of drawing in place.
  const width = stream.columns ? Math.max(1, stream.columns - 1) : 79;
  return {
    update: (checked: number) => {
      const now = clock();
      if (now - last < REDRAW_MS) return;
      last = now;
      const line =
        estimate === null
          ? `${SPINNER[frame++ % SPINNER.length]} ${count(checked)} files checked in ${label}`
          : barLine(label, checked, estimate);
      stream.write(`\r${fitToWidth(line, width)}\x1b[K`);
      drawn = true;
    },
    done: () => {
      if (drawn) stream.write("\r\x1b[K");
    },
  };
}

function barLine(label: string, checked: number, estimate: number): string {
  const fraction = Math.min(checked / estimate, MAX_FRACTION_BEFORE_DONE);
  const filled = Math.floor(fraction * BAR_WIDTH);
  const bar = `${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}`;
  return `[${bar}] ${Math.floor(fraction * 100)}% ${count(checked)} of ~${count(estimate)} files in ${label}`;
}

function count(n: number): string {
  return n.toLocaleString("en");
}

/** Cuts a line (the path at its end) to the terminal's width: a wrapped line could not be redrawn with "\r". */
function fitToWidth(line: string, width: number): string {
  return line.length <= width ? line : `${line.slice(0, width - 1)}…`;
}

function renderScan(results: StoreLabels[], policyLoaded: boolean): string {
  const lines: string[] = [];
  if (!policyLoaded) lines.push("no file_contexts on this host: labels are compared with graphroot's", "");
  for (const store of results) {
    const scan = store.scan;
    lines.push(`${store.path} (${store.role}): ${store.status}${store.reason ? ` - ${store.reason}` : ""}`);
    if (!scan) continue;
    lines.push(
      `  ${scan.filesChecked} files checked in ${scan.elapsedMs} ms, ${scan.unlabeled} without a label`,
    );
    for (const m of scan.mismatches) {
      lines.push(`  ${m.count} × ${m.actual} → ${m.expected} (${m.basis})`);
      for (const sample of m.samples) lines.push(`      ${sample}`);
    }
    for (const error of scan.errors)
      lines.push(`  ${error.count} × ${error.code}, e.g. ${error.samples.join(", ")}`);
    if (scan.mismatches.length === 0) lines.push("  every label is as expected");
  }
  return `${lines.join("\n")}\n`;
}
