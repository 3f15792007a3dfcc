import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { access, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import type * as ReaderModule from "../collector/journal/reader.js";
import { type ExportEntry, exportEntry } from "../test/support/export-format.js";
import { interleave, median, ms, seriesTable, timeMs } from "./stats.js";

const ENTRIES = 500_000;
const FIELDS_PER_ENTRY = 19; // _BOOT_ID and the 18 fields below
const WARMUP = 1;
const RUNS = 7;
const TARGET = 1.0;
/** Bump when the generated journal changes: the cache directory is named after it. */
const JOURNAL_VERSION = 1;
const JOURNAL_REMOTE = ["/usr/lib/systemd/systemd-journal-remote", "/lib/systemd/systemd-journal-remote"];

const UNITS = ["crio.service", "kubelet.service", "containerd.service", "systemd-journald.service"];
const BOOT_ID = "0123456789abcdef0123456789abcdef";
const START_USEC = 1_700_000_000_000_000;

/** Entry i of the benchmark journal: the fields a journald entry of a system service carries. */
function benchEntry(i: number, random: () => number): ExportEntry {
  const unit = UNITS[i % UNITS.length]!;
  const name = unit.replace(/\.service$/, "");
  return {
    realtimeUsec: START_USEC + i * 1000,
    monotonicUsec: 1_000_000 + i * 1000,
    bootId: BOOT_ID,
    fields: [
      ["_MACHINE_ID", "fedcba9876543210fedcba9876543210"],
      ["_HOSTNAME", "node-1"],
      ["PRIORITY", String(i % 8)],
      ["SYSLOG_FACILITY", "3"],
      ["_UID", "0"],
      ["_GID", "0"],
      ["_TRANSPORT", "stdout"],
      ["_SYSTEMD_UNIT", unit],
      ["SYSLOG_IDENTIFIER", name],
      ["_PID", String(1000 + (i % 50))],
      ["_COMM", name],
      ["_EXE", `/usr/bin/${name}`],
      ["_CMDLINE", `/usr/bin/${name} --config /etc/${name}/config.toml`],
      ["_CAP_EFFECTIVE", "1ffffffffff"],
      ["_SYSTEMD_CGROUP", `/system.slice/${unit}`],
      ["_SYSTEMD_SLICE", "system.slice"],
      ["_SYSTEMD_INVOCATION_ID", `abcdef0123456789abcdef01234567${String(i % 4).padStart(2, "0")}`],
      [
        "MESSAGE",
        `level=info msg="pulled image" image=sha256:${i.toString(16).padStart(64, "0")} id=${Math.floor(random() * 2 ** 30)}`,
      ],
    ],
  };
}

/** A small deterministic generator, so every run builds the same journal. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

async function journalRemote(): Promise<string> {
  for (const candidate of JOURNAL_REMOTE) {
    try {
      await access(candidate);
      return candidate;
    } catch {
      // next
    }
  }
  throw new Error("systemd-journal-remote not found (Debian package systemd-journal-remote)");
}

/**
 * Writes the journal once (export format streamed to a file, then systemd-journal-remote) into a
 * directory under the temp dir, reused by later runs; systemd-journal-remote rotates its output
 * as the file fills, so the journal is several files, as on a node.
 */
async function benchJournal(): Promise<{ dir: string; files: string[]; built: boolean }> {
  const dir = path.join(os.tmpdir(), `imagefs-bench-journal-v${JOURNAL_VERSION}`);
  const done = path.join(dir, "complete");
  const list = async () =>
    (await readdir(dir))
      .filter((f) => f.endsWith(".journal"))
      .map((f) => path.join(dir, f))
      .sort();
  try {
    await access(done);
    return { dir, files: await list(), built: false };
  } catch {
    // build it
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const exportFile = path.join(dir, "entries.export");
  const out = createWriteStream(exportFile);
  const random = lcg(42);
  for (let i = 0; i < ENTRIES; i += 1) {
    if (!out.write(exportEntry(benchEntry(i, random)))) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
  await execa(await journalRemote(), [`--output=${path.join(dir, "bench.journal")}`, exportFile], {
    stdin: "ignore",
  });
  await rm(exportFile);
  await writeFile(done, `${ENTRIES} entries\n`);
  return { dir, files: await list(), built: true };
}

/** Counts journalctl's JSON lines without keeping its output. */
async function journalctlLines(args: string[]): Promise<number> {
  const child = execa("journalctl", args, { stdin: "ignore", buffer: false });
  let lines = 0;
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
    for (let at = chunk.indexOf(10); at >= 0; at = chunk.indexOf(10, at + 1)) lines += 1;
  }
  await child;
  return lines;
}

/**
 * Reading a whole journal of 500,000 entries: readJournal through the sd-journal bindings,
 * decoding every field of every entry into a JournalEntry, against journalctl printing the same
 * files as JSON to /dev/null. Same files, same run, interleaved.
 */
export async function journalRead(repo: string): Promise<void> {
  let journal!: Awaited<ReturnType<typeof benchJournal>>;
  const buildMs = await timeMs(async () => {
    journal = await benchJournal();
  });
  const { files } = journal;
  const url = pathToFileURL(path.join(repo, "dist/collector/journal/reader.js")).href;
  const { readJournal } = (await import(url)) as typeof ReaderModule;

  const limits = { maxEntries: 10 * ENTRIES, maxBytes: 2 ** 40, maxFieldBytes: 1024 * 1024 };
  let entries = 0;
  let fields = 0;
  const bindings = async () => {
    const stats = await readJournal(
      { source: { files }, limits },
      (entry) => {
        entries += 1;
        for (const _ in entry.fields) fields += 1;
      },
      { backend: "sd-journal" },
    );
    if (stats.delivered !== ENTRIES || stats.warnings.length > 0) {
      throw new Error(`sd-journal read ${stats.delivered} entries, warnings: ${stats.warnings.join("; ")}`);
    }
  };
  const journalctlArgs = ["--no-pager", "-o", "json", "--all", ...files.map((f) => `--file=${f}`)];
  const journalctl = () => execa("journalctl", journalctlArgs, { stdin: "ignore", stdout: "ignore" });
  // Reference row, not part of the ratio: journalctl's cheapest complete output (no JSON to build).
  const exportArgs = ["--no-pager", "-o", "export", ...files.map((f) => `--file=${f}`)];
  const journalctlExport = () => execa("journalctl", exportArgs, { stdin: "ignore", stdout: "ignore" });

  // Checked once, untimed: both sides see every entry, and the bindings decode every field.
  await bindings();
  if (entries !== ENTRIES || fields !== ENTRIES * FIELDS_PER_ENTRY) {
    throw new Error(`sd-journal delivered ${entries} entries with ${fields} fields`);
  }
  const lines = await journalctlLines(journalctlArgs);
  if (lines !== ENTRIES) throw new Error(`journalctl printed ${lines} entries`);

  const series = await interleave(
    [
      { label: "readJournal sd-journal (every field)", run: bindings },
      { label: "journalctl -o json --all >/dev/null", run: journalctl },
      { label: "(reference) journalctl -o export >/dev/null", run: journalctlExport },
    ],
    { warmup: WARMUP, runs: RUNS },
  );
  // The fallback, once, for reference: journalctl's JSON parsed back into entries.
  const fallbackMs = await timeMs(async () => {
    const stats = await readJournal({ source: { files }, limits }, () => {}, { backend: "journalctl" });
    if (stats.delivered !== ENTRIES) throw new Error(`journalctl backend read ${stats.delivered} entries`);
  });

  console.log(
    `reading ${ENTRIES} journal entries (${files.length} files in ${journal.dir}, ` +
      `${journal.built ? `built in ${ms(buildMs)}` : "cached from an earlier run"})`,
  );
  console.log(`${RUNS} interleaved runs each after ${WARMUP} warm-up round (node ${process.version})`);
  console.log(seriesTable(series));
  console.log(`(reference, one run) readJournal journalctl backend: ${ms(fallbackMs)}`);
  const [sd, ctl, exp] = series.map((s) => median(s.samples)) as [number, number, number];
  const perEntry = (msTotal: number) => `${((msTotal * 1000) / ENTRIES).toFixed(2)} µs`;
  console.log(
    `per entry: sd-journal ${perEntry(sd)}, journalctl -o json ${perEntry(ctl)}, -o export ${perEntry(exp)}`,
  );
  console.log(`(reference) sd-journal / journalctl -o export: ${(sd / exp).toFixed(2)}`);
  // ratioLine would print the target as "1"; the line scripts look for is the same otherwise.
  console.log(`RATIO journal-read ${(sd / ctl).toFixed(2)} (target <= ${TARGET.toFixed(1)})`);
}
