import { access, mkdir, mkdtemp, open, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { type ExportEntry, type ExportValue, exportEntry } from "./export-format.js";

/**
 * Real journal files for tests: export-format input written here and turned into a journal file
 * by systemd-journal-remote, as journald's own remote receiver does.
 */
export const BOOT_ID = "0123456789abcdef0123456789abcdef";
export const MACHINE_ID = "fedcba9876543210fedcba9876543210";

let journalRemote: string | undefined;

export async function findJournalRemote(): Promise<string> {
  if (journalRemote) return journalRemote;
  for (const candidate of [
    "/usr/lib/systemd/systemd-journal-remote",
    "/lib/systemd/systemd-journal-remote",
  ]) {
    try {
      await access(candidate);
      journalRemote = candidate;
      return candidate;
    } catch {
      // next
    }
  }
  throw new Error("systemd-journal-remote not found");
}

/** An entry at `when` (a Date) with the given fields. */
export function journalEntry(when: Date, fields: Record<string, ExportValue>): ExportEntry {
  const usec = when.getTime() * 1000;
  return {
    realtimeUsec: usec,
    monotonicUsec: usec - 1_600_000_000_000_000,
    bootId: BOOT_ID,
    fields: Object.entries(fields),
  };
}

/** Writes `entries` as the journal file `file` (a local path); the export input goes to `scratch`. */
export async function writeJournalFile(
  file: string,
  entries: Iterable<ExportEntry>,
  scratch: string,
): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const input = path.join(scratch, `${path.basename(file)}.${Math.random().toString(36).slice(2)}.export`);
  const handle = await open(input, "w");
  try {
    let batch: Buffer[] = [];
    for (const entry of entries) {
      batch.push(exportEntry(entry));
      if (batch.length >= 4096) {
        await handle.write(Buffer.concat(batch));
        batch = [];
      }
    }
    await handle.write(Buffer.concat(batch));
  } finally {
    await handle.close();
  }
  // Written beside its place and renamed into it, so a reader running meanwhile (serve's cycles)
  // never opens a file half-written.
  const staging = await mkdtemp(path.join(path.dirname(file), ".staging-"));
  const staged = path.join(staging, path.basename(file));
  await execa(await findJournalRemote(), [`--output=${staged}`, input], { stdin: "ignore" });
  // journal-remote may rotate a large input into several files: move them all.
  for (const name of await readdir(staging))
    await rename(path.join(staging, name), path.join(path.dirname(file), name));
  await rm(staging, { recursive: true });
  await rm(input);
}
