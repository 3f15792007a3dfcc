import { runSource } from "../collect.js";
import { Host } from "../host/host.js";
import { loadPolicyFileContexts } from "../selinux/file-contexts.js";
import type { Facts } from "../snapshot.js";
import { decideRuntime } from "../sources/filesystems.js";
import { kubeletConfigSource } from "../sources/kubelet-config.js";
import {
  auditStore,
  readSelinuxConfig,
  type StoreLabels,
  type StoreToAudit,
  storesToAudit,
} from "../sources/selinux.js";
import { factsOf, type SourceDefinition } from "../sources/source.js";
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
  stderr: { write(text: string): unknown; isTTY?: boolean };
}

/**
 * The full label audit (`imagefs-doctor selinux-scan [PATH...]`): every file of every store, no
 * budget, with a progress line on a terminal. Exit status 1 when a label is wrong, else 0.
 */
export async function selinuxScan(request: SelinuxScanRequest, io: ScanIo): Promise<number> {
  const host = new Host({ root: request.hostRoot, procRoot: request.procRoot });
  const nodeStores = await storesOfNode(host);
  const stores =
    request.paths.length > 0 ? request.paths.map((p) => ({ role: "path" as const, path: p })) : nodeStores;
  const config = await readSelinuxConfig(host);
  const policy = await loadPolicyFileContexts(host, config.policyType);
  const table = await host.mounts().catch(() => undefined);
  const graphroot = nodeStores.find((s) => s.role === "graphroot")?.path ?? "/var/lib/containers/storage";
  const results: StoreLabels[] = [];
  for (const store of stores) {
    const progress = progressLine(io.stderr, store.path);
    results.push(
      await auditStore(host, store, {
        table,
        contexts: policy.contexts,
        graphroot,
        driver: "overlay",
        scan: {
          maxFiles: Number.POSITIVE_INFINITY,
          maxMs: Number.POSITIVE_INFINITY,
          compare: request.compare,
          onProgress: progress.update,
        },
        wanted: new Map(),
        avcPaths: [],
      }),
    );
    progress.done();
  }
  io.stdout.write(
    request.json ? `${JSON.stringify(results, null, 2)}\n` : renderScan(results, policy.contexts !== null),
  );
  return results.some((r) => (r.scan?.mismatches.length ?? 0) > 0) ? 1 : 0;
}

/** The node's stores, from the same configuration sources collect uses. */
async function storesOfNode(host: Host): Promise<StoreToAudit[]> {
  const context = { host, options: {} as never, result: () => Promise.reject(new Error("no inputs")) };
  const storage = await runSource(
    storageConfigSource as SourceDefinition<Facts, "storage-config">,
    context as never,
  );
  const kubelet = await runSource(
    kubeletConfigSource as SourceDefinition<Facts, "kubelet-config">,
    context as never,
  );
  return storesToAudit(decideRuntime(storage, kubelet).kind, factsOf(storage), factsOf(kubelet)).filter(
    (s) => s.role !== "kubelet-root",
  );
}

/** "\r<path>: N files" on a terminal, at most ten times a second; nothing elsewhere. */
function progressLine(stream: ScanIo["stderr"], label: string) {
  if (!stream.isTTY) return { update: undefined, done: () => {} };
  let last = 0;
  return {
    update: (checked: number) => {
      const now = performance.now();
      if (now - last < 100) return;
      last = now;
      stream.write(`\r${label}: ${checked.toLocaleString("en")} files checked`);
    },
    done: () => stream.write("\r\x1b[K"),
  };
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
