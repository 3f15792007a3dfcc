import http from "node:http";
import path from "node:path";
import type { Finding } from "../checks/finding.js";
import type { CollectRequest } from "../collect.js";
import type { Snapshot } from "../snapshot.js";
import { factsOf, type ResumePoints } from "../sources/source.js";

/**
 * `imagefs-doctor serve`: collects on an interval in the background and answers scrapes from the
 * last completed cycle at once — a scrape never waits on a probe or a hung mount. Cycles never
 * overlap: the next starts `interval` after the previous one ended.
 */
export interface ServeOptions {
  listen: { host: string; port: number };
  intervalMs: number;
  collect: CollectRequest;
  /** Where journal positions are kept across restarts, so events are not counted twice. */
  stateDir?: string;
  /** Extra sinks fed after each cycle (the OTLP exporter). */
  sinks?: CycleSink[];
  log: (line: string) => void;
}

/** What a completed cycle hands to each exporter. */
export interface Cycle {
  snapshot: Snapshot;
  findings: Finding[];
  startedAt: number;
  durationMs: number;
}

export interface CycleSink {
  publish(cycle: Cycle): Promise<void> | void;
  close?(): Promise<void>;
}

export interface Server {
  address: { host: string; port: number };
  /** Resolves after the first cycle has been published. */
  ready: Promise<void>;
  close(): Promise<void>;
}

const STATE_KEY = { journal: "journal", avc: "avc-after" } as const;

/** The address cannot be listened on (in use, not this host's, a privileged port): the user's to fix. */
export class ListenError extends Error {}

/** The state directory cannot be written: the user's to fix. */
export class StateDirError extends Error {}

export async function serve(options: ServeOptions): Promise<Server> {
  const { collect, resolveNodeName } = await import("../collect.js");
  const { runChecks } = await import("../checks/registry.js");
  const { PrometheusExporter } = await import("../export/prometheus.js");
  const { CursorStore } = await import("../journal/cursor-store.js");

  const node = await resolveNodeName(options.collect);
  const exporter = new PrometheusExporter(node);
  const cursors = options.stateDir ? new CursorStore(path.join(options.stateDir, "cursors.json")) : undefined;
  const resume: ResumePoints = {
    journal: (await cursors?.load(STATE_KEY.journal)) || null,
    avcAfter: (await cursors?.load(STATE_KEY.avc)) || null,
  };
  const saveCursors = async () => {
    await cursors?.save(STATE_KEY.journal, resume.journal ?? "");
    await cursors?.save(STATE_KEY.avc, resume.avcAfter ?? "");
  };
  // A state directory that cannot be written is said at once, not found out after a restart.
  await saveCursors().catch((error: NodeJS.ErrnoException) => {
    throw new StateDirError(`--state-dir ${options.stateDir}: cannot write: ${error.code ?? error.message}`);
  });
  let last: Cycle | undefined;
  /**
   * Store path -> unresponsiveSince, as the last cycle whose layer-stores source answered left it:
   * a failed cycle does not end a streak. Only these timestamps are kept, not that cycle's snapshot.
   */
  let unresponsiveSeen: ReadonlyMap<string, string> = new Map();
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const cycle = async () => {
    const startedAt = Date.now();
    try {
      const snapshot = await collect({ ...options.collect, nodeName: node, resume: { ...resume } });
      unresponsiveSeen = carryUnresponsiveSince(unresponsiveSeen, snapshot);
      const findings = runChecks(snapshot);
      const done: Cycle = { snapshot, findings, startedAt, durationMs: Date.now() - startedAt };
      exporter.update(snapshot, findings, done.durationMs / 1000);
      advance(resume, snapshot);
      last = done;
      for (const sink of options.sinks ?? [])
        await Promise.resolve(sink.publish(done)).catch((e) => options.log(`sink: ${e}`));
      markReady();
      // A full disk later on costs repeated counts after a restart, not the metrics of now.
      await saveCursors().catch((error) => options.log(`state-dir: cannot save journal positions: ${error}`));
      // A cycle leaves most of what it allocated as garbage, which V8 would otherwise keep until
      // the heap grows; one full collection here (about 10 ms a cycle) keeps the resident set
      // 10-15 MiB lower. gc() exists only with --expose-gc, as the image and DaemonSet set it.
      (globalThis as { gc?: () => void }).gc?.();
    } catch (error) {
      options.log(`collection failed: ${(error as Error).stack ?? error}`);
    }
  };
  const loop = () => {
    if (stopped) return;
    running = cycle().finally(() => {
      running = undefined;
      if (!stopped) timer = setTimeout(loop, options.intervalMs);
    });
  };

  const server = http.createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    switch (url.pathname) {
      case "/metrics": {
        // Prometheus text or OpenMetrics, by the scraper's Accept header.
        const openMetrics = (request.headers.accept ?? "").includes("application/openmetrics-text");
        const { body, contentType } = await exporter.render(openMetrics ? "openmetrics" : "prometheus");
        response.writeHead(200, { "content-type": contentType }).end(body);
        return;
      }
      case "/healthz":
        response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
        return;
      case "/readyz":
        if (last) response.writeHead(200, { "content-type": "text/plain" }).end("ready\n");
        else response.writeHead(503, { "content-type": "text/plain" }).end("first collection not done\n");
        return;
      case "/findings": {
        if (!last) {
          response.writeHead(503, { "content-type": "text/plain" }).end("first collection not done\n");
          return;
        }
        const { buildReport } = await import("../report/json.js");
        const report = buildReport(last.snapshot, last.findings, new Date(last.startedAt + last.durationMs));
        response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(report));
        return;
      }
      default:
        response
          .writeHead(404, { "content-type": "text/plain" })
          .end("not found: try /metrics, /findings, /healthz, /readyz\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new ListenError(
          `cannot listen on ${options.listen.host}:${options.listen.port}: ${error.code ?? error.message}`,
        ),
      ),
    );
    server.listen(options.listen.port, options.listen.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.listen.port;
  options.log(
    `serving on http://${options.listen.host}:${port}/metrics (node ${node}, every ${options.intervalMs / 1000} s)`,
  );
  loop();
  return {
    address: { host: options.listen.host, port },
    ready,
    async close() {
      stopped = true;
      clearTimeout(timer);
      await running;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const sink of options.sinks ?? []) await sink.close?.();
    },
  };
}

/**
 * serve's memory of hung layer stores, kept as one first-seen time per store path: a store the
 * last cycle that looked at it already found unresponsive keeps that cycle's first-seen time, so
 * the finding, /findings and the unresponsive-since metric all show when the hang began, not when
 * this cycle saw it. A cycle that finds the store answering again ends the streak; one whose
 * layer-stores source failed or timed out (a hung store can make it do so) tells nothing and
 * neither ends nor restarts it. Returns the memory for the next cycle: rebuilt from `current`'s
 * stores when its layer-stores source answered (ok, or absent: no store left to be hung), else
 * `remembered` itself, unchanged.
 */
export function carryUnresponsiveSince(
  remembered: ReadonlyMap<string, string>,
  current: Snapshot,
): ReadonlyMap<string, string> {
  const status = current.sources["layer-stores"]?.status;
  if (status !== "ok" && status !== "absent") return remembered;
  const seen = new Map<string, string>();
  for (const store of factsOf(current.sources["layer-stores"])?.stores ?? []) {
    if (!store.unresponsiveSince) continue;
    const since = remembered.get(store.path);
    if (since && since < store.unresponsiveSince) {
      store.unresponsiveSince = since;
      store.unresponsiveSinceEarlierCycle = true;
    }
    seen.set(store.path, store.unresponsiveSince);
  }
  return seen;
}

/** Moves the resume points past what this cycle read. */
function advance(resume: ResumePoints, snapshot: Snapshot): void {
  const journal = snapshot.sources.journal;
  if (journal.status === "ok" && journal.facts.cursor) resume.journal = journal.facts.cursor;
  const avc = snapshot.sources.avc;
  if (avc.status === "ok" && avc.facts.newestRecord) resume.avcAfter = avc.facts.newestRecord;
}

/** "127.0.0.1:9817", "[::1]:9817", ":9817" (all interfaces) */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value);
  if (!match) throw new Error(`--listen expects host:port, got "${value}"`);
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`--listen: port ${port} is out of range`);
  return { host: match[1] ?? (match[2] || "0.0.0.0"), port };
}
