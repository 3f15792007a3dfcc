import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import type { Finding } from "../collector/checks/finding.js";
import { carryUnresponsiveSince, type Server, serve } from "../collector/commands/serve.js";
import type { Snapshot } from "../collector/snapshot.js";
import type { LayerStoreFacts } from "../collector/sources/layer-stores.js";
import { factsOf } from "../collector/sources/source.js";
import { journalEntry, MACHINE_ID, writeJournalFile } from "./support/journal.js";
import { mountBindfs } from "./support/lazy-pull.js";
import { requireParts } from "./support/requirements.js";
import {
  baseNode,
  GRAPHROOT,
  HostTree,
  IMAGESTORE,
  RUNROOT,
  splitImageNode,
  startRuntime,
} from "./support/scenarios.js";

const ready = requireParts("serve tests", ["root", "loop", "xfs", "journal-remote", "bindfs"]);

async function get(server: Server, route: string, headers: Record<string, string> = {}) {
  const response = await fetch(`http://127.0.0.1:${server.address.port}${route}`, {
    headers,
    signal: AbortSignal.timeout(5000),
  });
  return {
    status: response.status,
    type: response.headers.get("content-type") ?? "",
    body: await response.text(),
  };
}

/** The value of one series in Prometheus text, or undefined when absent. */
function value(metrics: string, series: RegExp): number | undefined {
  const line = metrics.split("\n").find((l) => !l.startsWith("#") && series.test(l));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.skipIf(!ready)("imagefs-doctor serve", () => {
  let tree: HostTree;
  let server: Server | undefined;
  let stateDir: string | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await tree?.cleanup();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  const start = (extra: { intervalMs?: number; stateDir?: string; guardedStatMs?: number } = {}) =>
    serve({
      listen: { host: "127.0.0.1", port: 0 },
      intervalMs: extra.intervalMs ?? 60_000,
      collect: {
        hostRoot: tree.root,
        procRoot: tree.procRoot,
        criTimeoutMs: 1000,
        guardedStatMs: extra.guardedStatMs ?? 1000,
      },
      stateDir: extra.stateDir,
      log: () => {},
    });

  it("answers /metrics, /findings, /healthz and /readyz from the last cycle, in both exposition formats", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    server = await start();
    await server.ready;
    expect((await get(server, "/healthz")).status).toBe(200);
    expect((await get(server, "/readyz")).body).toBe("ready\n");
    const metrics = await get(server, "/metrics");
    expect(metrics.type).toContain("text/plain; version=0.0.4");
    expect(value(metrics.body, /^imagefs_topology_info\{topology="split-image",node="worker-0"\}/)).toBe(1);
    const imagefs = value(
      metrics.body,
      /^imagefs_filesystem_size_bytes\{role="imagefs",store="0",node="worker-0"\}/,
    );
    expect(imagefs).toBeGreaterThan(200 * 2 ** 20);
    expect(
      value(
        metrics.body,
        /^imagefs_eviction_threshold_bytes\{role="imagefs",signal="imagefs.available",kind="hard",node="worker-0"\}/,
      ),
    ).toBeCloseTo(imagefs! * 0.15, 0);
    expect(value(metrics.body, /^imagefs_runtime_up\{node="worker-0"\}/)).toBe(1);
    // Every series names its node, so one Prometheus can hold every node's.
    const samples = metrics.body.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
    expect(samples.length).toBeGreaterThan(50);
    expect(samples.filter((line) => !line.includes('node="worker-0"'))).toEqual([]);
    // No path or image reference ever becomes a label value.
    expect(metrics.body).not.toMatch(/="\/(var|run|etc)\//);
    const open = await get(server, "/metrics", { accept: "application/openmetrics-text; version=1.0.0" });
    expect(open.type).toContain("application/openmetrics-text");
    expect(open.body.trimEnd().endsWith("# EOF")).toBe(true);
    const findings = JSON.parse((await get(server, "/findings")).body);
    expect(Object.keys(findings).sort()).toEqual(["findings", "generatedAt", "node", "snapshot"]);
    expect((await get(server, "/nope")).status).toBe(404);
  });

  it("keeps answering scrapes at once while a cycle waits on a hung store, which shows in its own metrics", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await startRuntime(tree);
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\nrunroot = "${RUNROOT}"\n[storage.options]\nadditionalimagestores = ["/mnt/shared"]\n`,
    );
    const source = path.join(tree.scratch, "shared");
    await mkdir(path.join(source, "overlay-images"), { recursive: true });
    const bindfs = await mountBindfs(source, tree.local("/mnt/shared"));
    tree.onCleanup(async () => {
      bindfs.process.kill("SIGCONT");
      bindfs.process.kill("SIGKILL");
      await bindfs.process;
    });
    server = await start({ intervalMs: 100, guardedStatMs: 4000 });
    await server.ready;
    process.kill(bindfs.pid, "SIGSTOP");
    await new Promise((resolve) => setTimeout(resolve, 1500)); // past the kernel's attribute cache
    // A cycle is now stuck on the store for up to 4 s; scrapes must not wait for it.
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      expect((await get(server, "/metrics")).status).toBe(200);
      expect(performance.now() - started).toBeLessThan(500);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await until("the hung store to show", async () => {
      const metrics = (await get(server!, "/metrics")).body;
      return (
        value(
          metrics,
          /^imagefs_filesystem_up\{role="additional-image-store",store="0",node="worker-0"\}/,
        ) === 0
      );
    });
    const metrics = (await get(server, "/metrics")).body;
    expect(value(metrics, /^imagefs_filesystem_up\{role="containerfs",store="0",node="worker-0"\}/)).toBe(1);
    expect(
      value(metrics, /^imagefs_finding\{id="IMAGE_STORE_UNAVAILABLE",severity="critical",node="worker-0"\}/),
    ).toBe(1);
    process.kill(bindfs.pid, "SIGCONT");
  });

  it("counts each journal event once: across cycles, and across a restart with --state-dir", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await startRuntime(tree);
    stateDir = await mkdtemp(path.join(os.tmpdir(), "imagefs-state-"));
    const failure = (minutesAgo: number, file: string) =>
      journalEntry(new Date(Date.now() - minutesAgo * 60_000), {
        SYSLOG_IDENTIFIER: "restorecon",
        MESSAGE: `restorecon: Could not set context for /mnt/nfs/${file}:  Operation not supported`,
      });
    const journalDir = tree.local(`/var/log/journal/${MACHINE_ID}`);
    await writeJournalFile(
      path.join(journalDir, "system@1.journal"),
      [failure(30, "a"), failure(20, "b")],
      tree.scratch,
    );
    const relabel =
      /^imagefs_log_events_total\{pack="selinux-relabel",unit="restorecon",reason="RelabelNotSupported",node="worker-0"\}/;

    server = await start({ intervalMs: 200, stateDir });
    await server.ready;
    expect(value((await get(server, "/metrics")).body, relabel)).toBe(2);
    await until(
      "two more cycles",
      async () => (value((await get(server!, "/metrics")).body, /^imagefs_collections_total/) ?? 0) >= 3,
    );
    expect(value((await get(server, "/metrics")).body, relabel)).toBe(2);

    await writeJournalFile(path.join(journalDir, "system@2.journal"), [failure(1, "c")], tree.scratch);
    await until("the new event", async () => value((await get(server!, "/metrics")).body, relabel) === 3);

    // A restart starts its counters at 0 and does not count the old events again.
    await server.close();
    server = await start({ intervalMs: 200, stateDir });
    await server.ready;
    expect(value((await get(server, "/metrics")).body, relabel)).toBeUndefined();
    await writeJournalFile(path.join(journalDir, "system@3.journal"), [failure(0, "d")], tree.scratch);
    await until(
      "the event after the restart",
      async () => value((await get(server!, "/metrics")).body, relabel) === 1,
    );
    expect(await readdir(stateDir)).toEqual(["cursors.json"]);
  });

  it("remembers when a layer store first hung, across cycles, in /findings and /metrics alike", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await startRuntime(tree);
    const store = "/var/lib/stargz-store/store";
    await tree.write(
      "/etc/containers/storage.conf",
      `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\nrunroot = "${RUNROOT}"\n[storage.options]\nadditionallayerstores = ["${store}:ref"]\n`,
    );
    const source = path.join(tree.scratch, "store-src");
    await mkdir(source, { recursive: true });
    const bindfs = await mountBindfs(source, tree.local(store));
    tree.onCleanup(async () => {
      bindfs.process.kill("SIGCONT");
      bindfs.process.kill("SIGKILL");
      await bindfs.process;
      await execa("fusermount3", ["-uz", tree.local(store)], { reject: false });
    });
    server = await start({ intervalMs: 100, guardedStatMs: 1000 });
    await server.ready;
    process.kill(bindfs.pid, "SIGSTOP");
    try {
      await new Promise((resolve) => setTimeout(resolve, 1500)); // past the kernel's attribute cache
      const hung = async () => {
        const report = JSON.parse((await get(server!, "/findings")).body) as { findings: Finding[] };
        return report.findings.find((f) => f.id === "LAYER_STORE_UNRESPONSIVE");
      };
      const collections = async () =>
        value((await get(server!, "/metrics")).body, /^imagefs_collections_total/) ?? 0;
      await until("the hung store to show", async () => (await hung()) !== undefined);
      const first = (await hung())!.evidence[0]!;
      const since = /^unresponsive since (\S+) /.exec(first)?.[1];
      expect(since).toBeDefined();
      // Two more cycles that still find it hung: the since-time stays the first one.
      const seen = await collections();
      await until("two more cycles", async () => (await collections()) >= seen + 2);
      const later = (await hung())!.evidence[0]!;
      expect(later).toBe(
        `unresponsive since ${since} (first seen by an earlier collection of this exporter, and in every one since)`,
      );
      const metrics = (await get(server, "/metrics")).body;
      expect(value(metrics, /^imagefs_layer_store_up\{store="0",node="worker-0"\}/)).toBe(0);
      expect(
        value(metrics, /^imagefs_layer_store_unresponsive_since_seconds\{store="0",node="worker-0"\}/),
      ).toBe(Date.parse(since!) / 1000);
    } finally {
      process.kill(bindfs.pid, "SIGCONT");
    }
    // Answering again ends the streak: the metric falls to 0 and the finding goes.
    await until(
      "the store to answer again",
      async () =>
        value(
          (await get(server!, "/metrics")).body,
          /^imagefs_layer_store_unresponsive_since_seconds\{store="0",node="worker-0"\}/,
        ) === 0,
    );
  });
});

describe("serve's unresponsive-since streak (carryUnresponsiveSince)", () => {
  const STORE = "/var/lib/stargz-store/store";
  /** A cycle's snapshot, only its layer-stores result: what carryUnresponsiveSince reads. */
  function cycle(result: "hung" | "answering" | "timeout", probedAt: string): Snapshot {
    const stores: Snapshot["sources"]["layer-stores"] =
      result === "timeout"
        ? { status: "timeout", durationMs: 20_000, error: "no answer within 20000 ms", facts: null }
        : {
            status: "ok",
            durationMs: 2000,
            facts: {
              authHelper: null,
              stores: [
                {
                  path: STORE,
                  responsive: result === "answering",
                  unresponsiveSince: result === "hung" ? probedAt : null,
                } as LayerStoreFacts,
              ],
            },
          };
    return { collectedAt: probedAt, sources: { "layer-stores": stores } } as unknown as Snapshot;
  }
  const storeOf = (snapshot: Snapshot) => factsOf(snapshot.sources["layer-stores"])?.stores[0];

  it("keeps the first time across a cycle whose layer-stores source timed out", () => {
    const first = cycle("hung", "2026-11-23T10:00:00.000Z");
    const afterFirst = carryUnresponsiveSince(new Map(), first);
    expect(storeOf(first)).toMatchObject({ unresponsiveSince: "2026-11-23T10:00:00.000Z" });
    expect(storeOf(first)?.unresponsiveSinceEarlierCycle).toBeUndefined();
    expect(afterFirst).toEqual(new Map([[STORE, "2026-11-23T10:00:00.000Z"]]));
    let remembered = carryUnresponsiveSince(afterFirst, cycle("timeout", "2026-11-23T10:01:00.000Z"));
    expect(remembered).toBe(afterFirst);
    const third = cycle("hung", "2026-11-23T10:02:00.000Z");
    remembered = carryUnresponsiveSince(remembered, third);
    expect(storeOf(third)).toMatchObject({
      unresponsiveSince: "2026-11-23T10:00:00.000Z",
      unresponsiveSinceEarlierCycle: true,
    });
    expect(remembered).toEqual(new Map([[STORE, "2026-11-23T10:00:00.000Z"]]));
  });

  it("ends the streak when the store answers again", () => {
    let remembered = carryUnresponsiveSince(new Map(), cycle("hung", "2026-11-23T10:00:00.000Z"));
    remembered = carryUnresponsiveSince(remembered, cycle("answering", "2026-11-23T10:01:00.000Z"));
    expect(remembered.size).toBe(0);
    remembered = carryUnresponsiveSince(remembered, cycle("timeout", "2026-11-23T10:02:00.000Z"));
    const again = cycle("hung", "2026-11-23T10:03:00.000Z");
    carryUnresponsiveSince(remembered, again);
    expect(storeOf(again)).toMatchObject({ unresponsiveSince: "2026-11-23T10:03:00.000Z" });
    expect(storeOf(again)?.unresponsiveSinceEarlierCycle).toBeUndefined();
  });
});
