import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import path from "node:path";
import type { Writable } from "node:stream";
import {
  type ArchiveEntry,
  archiveBound,
  availableBytes,
  OutOfSpaceError,
  spaceMargin,
  type WriteOptions,
  writeArchiveToFile,
  writeArchiveToStream,
} from "../bundle/archive.js";
import { gzipMember } from "../bundle/gzip.js";
import { Gatherer, type Item, type StepListener, type StepRecord, safeEntryName } from "../bundle/items.js";
import { type ExcerptJob, ExcerptPrefetch } from "../bundle/journal-excerpt.js";
import { type RedactionCount, Redactor } from "../bundle/redact.js";
import {
  AVC_EXCERPT,
  avcRecords,
  configFiles,
  copyHostFile,
  credentialFiles,
  crictlOutputs,
  criFacts,
  crioEndpoints,
  excerptJob,
  filesystemsTable,
  fuseConnections,
  mountTable,
  podLoaderErrors,
  type StepInputs,
  storeLabels,
  storeMetadataFiles,
  USUAL_UNITS,
  unitExcerpt,
  unitJournals,
} from "../bundle/steps.js";
import { DEFAULT_CHECK_OPTIONS, type Finding } from "../checks/finding.js";
import type { CollectRequest } from "../collect.js";
import { Host } from "../host/host.js";
import { journalDirectories } from "../journal/locate.js";
import type { Snapshot } from "../snapshot.js";
import { collectOptions, journalStart } from "../sources/source.js";
import { TOOL_NAME, VERSION } from "../version.js";

/**
 * `imagefs-doctor must-gather`: a node's support bundle (docs/bundle.md). Collects the snapshot,
 * judges it, gathers raw items step by step under deadlines, masks secrets (and, with
 * --obfuscate, host names and addresses) in everything, fits the result into the size cap and the
 * free space of the output filesystem, and writes one .tar.gz, atomically when it is a file.
 */

export interface MustGatherOptions {
  collect: CollectRequest;
  /** A file path, or "-" for stdout. */
  output: string;
  sinceMs: number;
  maxBytes: number;
  timeoutMs: number;
  stepTimeoutMs: number;
  obfuscate: boolean;
  /** PATH to look for crictl in. */
  searchPath: string;
  /**
   * The journal worker (bundle/journal-worker.js), started ahead by the CLI with workerData
   * { ahead: true } so that it loads while must-gather does; mustGather always ends it.
   */
  journalWorker?: import("../bundle/journal-worker-ahead.js").AheadWorker;
}

export interface MustGatherIo {
  stdout: Writable;
  stderr: { write(text: string): unknown; isTTY?: boolean };
}

export class MustGatherError extends Error {}

const KiB = 1024;
const MiB = 1024 * KiB;
/** One item's cap; the total cap decides how many fit. */
const ITEM_BYTES = 4 * MiB;
/** Time kept at the end of the run for masking and writing. */
const WRITE_RESERVE_MS = { share: 0.1, max: 10_000 };
/** The snapshot's sources have deadlines of their own, up to 30 s (selinux). */
const COLLECT_STEP_MS = 45_000;

/** "24h", "90m", "2h0m0s", "3600s", "1d", or a bare number of seconds: Go's durations and then some. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let consumed = 0;
  for (const match of trimmed.matchAll(part)) {
    total += Number(match[1]) * units[match[2]!]!;
    consumed += match[0].length;
  }
  if (trimmed === "" || consumed !== trimmed.length || total <= 0) {
    throw new Error(`"${text}" is not a duration (e.g. 24h, 90m, 2h0m0s, 3600s)`);
  }
  return total;
}

/** "20MB", "16MiB", "500K", "1G", or bytes. K/M/G are decimal (MB), KiB/MiB/GiB binary. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*$/i.exec(text);
  if (!match) throw new Error(`"${text}" is not a size (e.g. 20MB, 64MiB, 500K)`);
  const unit = (match[2] ?? "B").toUpperCase();
  const power = { B: 0, K: 1, M: 2, G: 3 }[unit[0] as "B" | "K" | "M" | "G"];
  const base = unit.includes("I") ? 1024 : 1000;
  return Math.floor(Number(match[1]) * base ** power);
}

/** Bytes a bundle may take in `dir`: what is free less the margin that must stay free. */
async function usableBytes(dir: string): Promise<number | undefined> {
  const space = await availableBytes(dir);
  return space ? space.available - spaceMargin(space.total) : undefined;
}

function notEnoughSpace(dir: string, usable: number): MustGatherError {
  return new MustGatherError(
    `not enough space for a bundle in ${dir}: ${Math.max(0, usable)} bytes usable once the margin that must stay free is kept (2% of the filesystem, at least 4 MiB); write it elsewhere (-o DIR/FILE or -o -)`,
  );
}

function utcStamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Entries from this size on are compressed as soon as their bytes are final (compressAhead). */
const COMPRESS_AHEAD_BYTES = 64 * KiB;

/** A Buffer over the same memory (a Uint8Array that came from another thread). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A step list on a terminal: a step as it starts (when no other is running), and each step with
 * its status and time when it ends.
 */
function progress(stderr: MustGatherIo["stderr"]): StepListener | undefined {
  if (!stderr.isTTY) return undefined;
  const line = (status: string, name: string, detail: string) =>
    `  ${status.padEnd(8)} ${name.padEnd(26)} ${detail}`;
  let running = 0;
  return {
    started: (name) => {
      if (running++ === 0) stderr.write(line("…", name, ""));
    },
    finished: (record: StepRecord) => {
      running = Math.max(0, running - 1);
      const detail = `${(record.durationMs / 1000).toFixed(1)} s  ${record.items} item${record.items === 1 ? "" : "s"}${record.error ? `  ${record.error}` : ""}`;
      stderr.write(`\r\x1b[K${line(record.status, record.name, detail)}\n`);
    },
  };
}

interface Core {
  snapshot: Snapshot | null;
  findings: Finding[] | null;
  collectError?: string;
}

export interface MustGatherResult {
  output: string;
  bytes: number;
  entries: number;
  items: number;
  capped: boolean;
  elapsedMs: number;
}

export async function mustGather(options: MustGatherOptions, io: MustGatherIo): Promise<MustGatherResult> {
  const started = new Date();
  const t0 = performance.now();
  const runDeadline = t0 + options.timeoutMs;
  const toStdout = options.output === "-";

  // Where the bundle goes, and how much it may take there, before anything is gathered.
  let cap = options.maxBytes;
  let outputFile = "";
  if (!toStdout) {
    outputFile = path.resolve(options.output);
    const dir = path.dirname(outputFile);
    const dirStat = await stat(dir).catch(() => undefined);
    if (!dirStat?.isDirectory())
      throw new MustGatherError(`cannot write ${options.output}: ${dir} is not a directory`);
    const usable = await usableBytes(dir);
    if (usable !== undefined) {
      if (usable < 64 * KiB) throw notEnoughSpace(dir, usable);
      cap = Math.min(cap, usable);
    }
  }

  const reserve = Math.min(WRITE_RESERVE_MS.max, options.timeoutMs * WRITE_RESERVE_MS.share);
  const gatherer = new Gatherer({
    runDeadline: runDeadline - reserve,
    stepMs: options.stepTimeoutMs,
    // Masking does not make text shorter by much: twice the cap is more than can ever be written.
    maxBytes: 2 * cap + 16 * MiB,
    listener: progress(io.stderr),
  });
  const core: Core = { snapshot: null, findings: null };
  const inputs: StepInputs = {
    host: new Host({
      root: options.collect.hostRoot,
      procRoot: options.collect.procRoot,
      guardedStatMs: options.collect.guardedStatMs,
    }),
    snapshot: null, // set once collected: the steps after the collection read it
    itemBytes: Math.min(ITEM_BYTES, Math.max(64 * KiB, Math.floor(cap / 4))),
    sinceMs: started.getTime() - options.sinceMs,
    criEndpoint: options.collect.criEndpoint,
    ...(options.collect.crictl === undefined ? {} : { crictl: options.collect.crictl }),
    searchPath: options.searchPath,
  };

  // The journal excerpts every bundle has (the usual units, the AVC records) need nothing from the
  // snapshot: a worker thread reads them from now on, on another core than the collection's, and
  // the steps take what it read (or read it themselves, should the worker fail). The same pass
  // gives the journal source its facts (the entries of the window classified by the rule packs),
  // instead of the collection reading the window a second time on this thread.
  const directories = await journalDirectories(inputs.host);
  if (directories.length > 0) {
    const deadlineMs = Math.max(100, Math.min(options.stepTimeoutMs, gatherer.remainingRunMs()) - 100);
    const jobs = new Map<string, ExcerptJob>();
    for (const spec of [...USUAL_UNITS.map(unitExcerpt), AVC_EXCERPT])
      jobs.set(spec.name, excerptJob(inputs, directories, spec, deadlineMs));
    // The window and rule packs of the collection's journal source.
    const { journalLookbackHours: lookbackHours, logRuleDirs: ruleDirs } = collectOptions(options.collect);
    const since = journalStart(options.collect.resume?.journal, lookbackHours);
    const tally =
      since.realtimeUsec === undefined
        ? undefined
        : { ruleDirs, lookbackHours, sinceUsec: since.realtimeUsec };
    // Masking the excerpts is the worker's too, except with --obfuscate: obfuscation tokens are
    // numbered in the order they are met across the whole bundle.
    inputs.prefetched = new ExcerptPrefetch(
      jobs,
      { directories, deadlineMs, ...(tally ? { tally } : {}) },
      !options.obfuscate,
      options.journalWorker,
    );
    if (tally) inputs.journalFacts = inputs.prefetched.facts();
  }
  // The worker ends once the bundle is written: it masks the excerpts while the steps and the
  // assembling go on, and compresses them while the rest is written (then it has nothing left to
  // do); ended earlier, they are masked and compressed here.
  const stopWorker = async () => {
    await inputs.prefetched?.stop();
    await options.journalWorker?.stop(); // not used (no journal), or already ended
  };
  try {
    await gather(options, gatherer, inputs, core);
  } catch (error) {
    await stopWorker();
    throw error;
  }
  const finished = new Date();

  let assembled: Awaited<ReturnType<typeof assemble>>;
  let bytes: number;
  try {
    assembled = await assemble(options, core, gatherer, started, finished, cap, inputs.premasked);
    if (!toStdout) {
      // The disk may have filled while we gathered: read the free space again, and fit into what
      // is left of it (the margin still kept), or stop before writing a byte.
      const usable = await usableBytes(path.dirname(outputFile));
      const bound = archiveBound(
        assembled.top,
        assembled.entries.map((e) => ({ name: e.name, bytes: e.data.length })),
      );
      if (usable !== undefined && bound > usable) {
        if (usable < 64 * KiB) throw notEnoughSpace(path.dirname(outputFile), usable);
        cap = usable;
        assembled = await assemble(options, core, gatherer, started, finished, cap, inputs.premasked);
      }
    }
    const { entries, top } = assembled;
    bytes = await writeBundle(options.output, toStdout ? io.stdout : outputFile, entries, {
      top,
      mtime: started,
      maxBytes: cap,
    });
  } finally {
    await stopWorker();
  }
  const { entries, capped, itemCount } = assembled;
  const elapsedMs = Math.round(performance.now() - t0);
  if (io.stderr.isTTY) {
    io.stderr.write(
      `bundle ${toStdout ? "written to stdout" : `written to ${outputFile}`}: ${bytes} bytes, ${entries.length} entries, ${(elapsedMs / 1000).toFixed(1)} s${capped ? " (capped: see manifest.json)" : ""}\n`,
    );
  }
  return {
    output: toStdout ? "-" : outputFile,
    bytes,
    entries: entries.length,
    items: itemCount,
    capped,
    elapsedMs,
  };
}

/** Writes the archive to stdout or to the output file, and says in a MustGatherError what failed. */
async function writeBundle(
  output: string,
  to: MustGatherIo["stdout"] | string,
  entries: ArchiveEntry[],
  options: WriteOptions,
): Promise<number> {
  try {
    return typeof to === "string"
      ? await writeArchiveToFile(entries, to, options)
      : await writeArchiveToStream(entries, to, options);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (error instanceof OutOfSpaceError || code === "ENOSPC" || code === "EDQUOT") {
      throw new MustGatherError(
        `the output filesystem ran out of space while writing ${output}; nothing was left behind: ${(error as Error).message}`,
      );
    }
    throw new MustGatherError(`cannot write ${output}: ${(error as Error).message}`);
  }
}

/** The snapshot and its findings, then the raw items, side by side. */
async function gather(
  options: MustGatherOptions,
  gatherer: Gatherer,
  inputs: StepInputs,
  core: Core,
): Promise<void> {
  // What judging and reporting load, loaded while this thread would wait for the journal pass.
  for (const later of [
    import("../checks/registry.js"),
    import("../report/json.js"),
    import("../report/html.js"),
  ])
    later.catch(() => {});
  // The steps below need every source's facts but the journal's: they start as soon as those are
  // in (collect's `early`), while the journal pass may still run in the worker.
  let stepsMayStart: (snapshot: Snapshot | null) => void = () => {};
  const everythingButJournal = new Promise<Snapshot | null>((resolve) => {
    stepsMayStart = resolve;
  });
  const collection = gatherer.step(
    "collect snapshot",
    async (context) => {
      const { collect } = await import("../collect.js");
      const item = context.begin("snapshot.json", "imagefs-doctor collect", "json");
      try {
        const snapshot = await collect({
          ...options.collect,
          host: inputs.host,
          journalFacts: inputs.journalFacts,
          early: { pending: ["journal"], ready: (partial) => stepsMayStart(partial) },
        });
        // A collection that ends after its step's deadline is not used: later steps went on without it.
        if (!context.signal.aborted) core.snapshot = snapshot;
        item.drop();
      } catch (error) {
        core.collectError = (error as Error).message;
        item.fail("error", core.collectError);
      }
    },
    Math.max(options.stepTimeoutMs, COLLECT_STEP_MS),
  );
  collection.then(
    () => stepsMayStart(core.snapshot),
    () => stepsMayStart(null),
  );
  inputs.snapshot = await everythingButJournal;
  const steps = gatherSteps(gatherer, inputs);
  await collection;
  if (core.snapshot) {
    const { runChecks } = await import("../checks/registry.js");
    core.findings = runChecks(core.snapshot, DEFAULT_CHECK_OPTIONS);
    inputs.snapshot = core.snapshot;
  }
  await steps;
}

/**
 * The steps after the collection, side by side, each under its own deadline: one waiting on a
 * child process (crictl, mount for fusectl) or on the disk leaves the event loop to the others.
 */
function gatherSteps(gatherer: Gatherer, inputs: StepInputs): Promise<unknown> {
  return Promise.all([
    gatherer.step("configuration files", async (context) => {
      for (const file of await configFiles(inputs)) {
        if (context.signal.aborted) return; // the step ran past its deadline: stop reading
        await copyHostFile(inputs, context, file);
      }
    }),
    gatherer.step("credential files", async (context) => {
      for (const file of await credentialFiles(inputs)) {
        if (context.signal.aborted) return; // the step ran past its deadline: stop reading
        await copyHostFile(inputs, context, file);
      }
    }),
    gatherer.step("store metadata", async (context) => {
      for (const file of storeMetadataFiles(inputs)) {
        if (context.signal.aborted) return; // the step ran past its deadline: stop reading
        await copyHostFile(inputs, context, file);
      }
    }),
    gatherer.step("mounts and filesystems", async (context) => {
      await mountTable(inputs, context);
      filesystemsTable(inputs, context);
    }),
    gatherer.step("cri", async (context) => {
      criFacts(inputs, context);
      await crictlOutputs(inputs, context);
      await crioEndpoints(inputs, context);
    }),
    gatherer.step("selinux labels and avc", async (context) => {
      storeLabels(inputs, context);
      await avcRecords(inputs, context);
    }),
    gatherer.step("journal", (context) => unitJournals(inputs, context)),
    gatherer.step("pod logs", (context) => podLoaderErrors(inputs, context)),
    gatherer.step("fusectl", (context) => fuseConnections(inputs, context)),
  ]);
}

interface ManifestItem {
  path: string | null;
  source: string | string[];
  status: Item["status"];
  durationMs: number;
  bytes: number;
  sha256: string | null;
  truncated?: boolean;
  redactions: RedactionCount[];
  error?: string;
}

/** Masks everything, decides what fits, and lays the entries out in the bundle's order. */
async function assemble(
  options: MustGatherOptions,
  core: Core,
  gatherer: Gatherer,
  started: Date,
  finished: Date,
  cap: number,
  premasked: StepInputs["premasked"],
): Promise<{ entries: ArchiveEntry[]; top: string; capped: boolean; itemCount: number }> {
  const hostname = await readHostname(options.collect.hostRoot, options.collect.procRoot);
  const node = core.snapshot?.node ?? options.collect.nodeName ?? hostname ?? "unknown";
  const hostNames = [node];
  if (hostname) hostNames.push(hostname);
  const redactor = new Redactor({ obfuscate: options.obfuscate, hostNames });
  const safeNode = redactor.name(node).replace(/[^A-Za-z0-9._-]/g, "_") || "unknown";
  const top = `${TOOL_NAME}-${safeNode}-${utcStamp(started)}`;

  // Entries compressed (and hashed) before the archive is written: the journal excerpts by the
  // journal worker, and each large entry in the thread pool from the moment its bytes are final,
  // while this thread masks and renders the rest.
  const ahead = new Map<Buffer, { sha256?: string; gzip: Promise<Buffer | undefined> }>();
  const compressAhead = (data: Buffer | null) => {
    if (data && data.length >= COMPRESS_AHEAD_BYTES && !ahead.has(data))
      ahead.set(data, { gzip: gzipMember(data).catch(() => undefined) });
  };

  // Generated entries, masked from their data (so the HTML is rendered from masked data).
  type Prepared = { item: ManifestItem; data: Buffer | null; priority: number };
  const prepared: Prepared[] = [];
  const add = (
    item: Omit<ManifestItem, "bytes" | "sha256" | "redactions">,
    data: Buffer | null,
    priority: number,
  ) => {
    compressAhead(data);
    prepared.push({
      item: { ...item, bytes: 0, sha256: null, redactions: item.path ? redactor.countsFor(item.path) : [] },
      data,
      priority,
    });
  };
  const generated = (name: string) => ({ path: name, source: "imagefs-doctor", durationMs: 0 });
  const collectItem = gatherer.items.find((i) => i.path === "snapshot.json");
  const collectRecord = gatherer.steps.find((s) => s.name === "collect snapshot");
  if (core.snapshot && core.findings) {
    const snapshot = redactor.json(core.snapshot, "snapshot.json");
    add(
      {
        path: "snapshot.json",
        source: "imagefs-doctor collect",
        status: "ok",
        durationMs: collectRecord?.durationMs ?? 0,
      },
      Buffer.from(`${JSON.stringify(snapshot, null, 2)}\n`),
      1,
    );
    const findings = redactor.json(core.findings, "findings.json");
    const findingsDoc = { node: snapshot.node, generatedAt: finished.toISOString(), findings };
    add(
      { ...generated("findings.json"), status: "ok" },
      Buffer.from(`${JSON.stringify(findingsDoc, null, 2)}\n`),
      0,
    );
    try {
      const { buildReport } = await import("../report/json.js");
      const { renderHtml } = await import("../report/html.js");
      const page = renderHtml(buildReport(snapshot, findings, finished));
      add({ ...generated("report.html"), status: "ok" }, Buffer.from(redactor.html(page, "report.html")), 2);
    } catch (error) {
      add(
        {
          ...generated("report.html"),
          status: "error",
          error: `rendering failed: ${(error as Error).message}`,
        },
        null,
        2,
      );
    }
  } else {
    const why =
      collectItem?.error ?? core.collectError ?? collectRecord?.error ?? "collection did not finish";
    const status = collectRecord?.status === "timeout" ? "timeout" : "error";
    add(
      {
        path: "snapshot.json",
        source: "imagefs-doctor collect",
        status,
        durationMs: collectRecord?.durationMs ?? 0,
        error: why,
      },
      null,
      1,
    );
    add({ ...generated("findings.json"), status: "skipped", error: "no snapshot to judge" }, null, 0);
    add({ ...generated("report.html"), status: "skipped", error: "no snapshot to report on" }, null, 2);
  }

  // Raw items in bundle order, masked in that order (obfuscation tokens are numbered as met).
  const raw = gatherer.items
    .filter((i) => i.path !== "snapshot.json")
    .sort(
      (a, b) => compareNames(a.path ?? "", b.path ?? "") || compareNames(String(a.source), String(b.source)),
    );
  const seen = new Set<string>([
    "version",
    "timestamp",
    "manifest.json",
    "redactions.json",
    "snapshot.json",
    "findings.json",
    "report.html",
  ]);
  for (const item of raw) {
    let name = item.path === null ? null : safeEntryName(redactor.name(item.path));
    if (name !== null && seen.has(name)) name = null; // two sources for one path: the first wins
    if (name !== null) seen.add(name);
    let data: Buffer | null = null;
    const pre = item.path === null ? undefined : premasked?.get(item.path);
    const premask =
      pre &&
      name !== null &&
      name === item.path &&
      !redactor.obfuscate &&
      item.kind === "text" &&
      pre.raw === item.content
        ? await pre.masked
        : undefined;
    if (premask && name !== null) {
      // Masked in the journal worker, as redactor.text would here (no obfuscation: nothing is
      // shared between items but the counts, recorded under the same name), and hashed and
      // compressed there too.
      data = asBuffer(premask.bytes);
      ahead.set(data, { sha256: premask.sha256, gzip: pre!.gzip.then((g) => g && asBuffer(g)) });
      redactor.record(name, premask.counts);
    } else if (item.content !== undefined && name !== null) {
      const masked =
        item.kind === "json"
          ? redactor.jsonText(item.content, name)
          : item.kind === "html"
            ? redactor.html(item.content, name)
            : redactor.text(item.content, name);
      data = Buffer.from(masked);
    }
    const entry: ManifestItem = {
      path: data ? name : null,
      source: item.source,
      status: item.status,
      durationMs: item.durationMs,
      bytes: 0,
      sha256: null,
      redactions: name ? redactor.countsFor(name) : [],
      ...(item.truncated ? { truncated: true } : {}),
      ...(item.error ? { error: item.error } : {}),
    };
    if (!data && item.status === "ok") {
      entry.status = "skipped";
      entry.error = "two items for one bundle path";
    }
    compressAhead(data);
    prepared.push({ item: entry, data, priority: 3 });
  }

  // What fits: generated entries first (findings, snapshot, report), then the smallest items.
  const versionData = Buffer.from(`${TOOL_NAME}\n${VERSION}\n`);
  const timestampData = Buffer.from(`${started.toISOString()}\n${finished.toISOString()}\n`);
  const manifestOf = (capped: boolean) =>
    manifestDocument(
      options,
      node,
      gatherer,
      started,
      finished,
      top,
      capped,
      prepared.map((p) => p.item),
    );
  const estimateManifest =
    Buffer.byteLength(JSON.stringify(manifestOf(true), null, 2)) + prepared.length * 160 + 4 * KiB;
  const redactionsData = () => Buffer.from(`${JSON.stringify(redactor.all(), null, 2)}\n`);
  const fixed = [
    { name: "version", bytes: versionData.length },
    { name: "timestamp", bytes: timestampData.length },
    { name: "manifest.json", bytes: estimateManifest },
    { name: "redactions.json", bytes: redactionsData().length + 4 * KiB },
  ];
  const admitted = new Set<Prepared>();
  const order = prepared
    .filter((p) => p.data !== null)
    .sort(
      (a, b) =>
        a.priority - b.priority ||
        (a.priority === 3 ? a.data!.length - b.data!.length : 0) ||
        compareNames(a.item.path!, b.item.path!),
    );
  const sizes = [...fixed];
  let capped = false;
  for (const candidate of order) {
    const next = [...sizes, { name: candidate.item.path!, bytes: candidate.data!.length }];
    if (archiveBound(top, next) <= cap) {
      admitted.add(candidate);
      sizes.push(next.at(-1)!);
    } else {
      capped = true;
      candidate.item.status = "skipped";
      candidate.item.error = `left out: the bundle would pass its size cap of ${cap} bytes (--max-size, or the free space of the output filesystem)`;
      candidate.item.path = null;
      candidate.data = null;
    }
  }
  for (const p of admitted) {
    p.item.bytes = p.data!.length;
    p.item.sha256 = ahead.get(p.data!)?.sha256 ?? sha256(p.data!);
  }

  const manifest = redactor.json(manifestOf(capped), "manifest.json");
  const manifestData = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  const entries: ArchiveEntry[] = [
    { name: "version", data: versionData },
    { name: "timestamp", data: timestampData },
    { name: "manifest.json", data: manifestData },
    { name: "redactions.json", data: redactionsData() },
  ];
  const generatedOrder = ["snapshot.json", "findings.json", "report.html"];
  for (const name of generatedOrder) {
    const p = prepared.find((x) => x.item.path === name && admitted.has(x));
    if (p) {
      const gzip = ahead.get(p.data!)?.gzip;
      entries.push({ name, data: p.data!, ...(gzip ? { gzip } : {}) });
    }
  }
  const rest = [...admitted]
    .filter((p) => !generatedOrder.includes(p.item.path!))
    .sort((a, b) => compareNames(a.item.path!, b.item.path!));
  for (const p of rest) {
    const gzip = ahead.get(p.data!)?.gzip;
    entries.push({ name: p.item.path!, data: p.data!, ...(gzip ? { gzip } : {}) });
  }
  return { entries, top, capped, itemCount: prepared.length };
}

function manifestDocument(
  options: MustGatherOptions,
  node: string,
  gatherer: Gatherer,
  started: Date,
  finished: Date,
  top: string,
  capped: boolean,
  items: ManifestItem[],
) {
  return {
    tool: { name: TOOL_NAME, version: VERSION },
    node,
    top,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    options: {
      hostRoot: options.collect.hostRoot,
      since: `${Math.round(options.sinceMs / 1000)}s`,
      maxSize: options.maxBytes,
      timeoutMs: options.timeoutMs,
      stepTimeoutMs: options.stepTimeoutMs,
      obfuscate: options.obfuscate,
    },
    capped,
    steps: gatherer.steps,
    items,
  };
}

function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function readHostname(hostRoot: string, procRoot: string | undefined): Promise<string | undefined> {
  try {
    const host = new Host({ root: hostRoot, procRoot });
    return (await host.readText("/etc/hostname", 4096)).text.trim() || undefined;
  } catch {
    return undefined;
  }
}
