import { constants } from "node:fs";
import { open, readdir } from "node:fs/promises";
import path from "node:path";
import { byCodePoint } from "../model/order.js";

/**
 * Which files make up a journal directory, and what their headers say.
 *
 * sd_journal_open_directory and `journalctl --directory` (checked against libsystemd 252, and in
 * test/journal.test.ts against the installed one) read the *.journal and *.journal~ files at the
 * top of the directory and, one level down, those in subdirectories named by a machine ID (32 hex
 * digits), which is where journald writes: /var/log/journal/<machine-id>/system.journal. A file
 * two levels down, or in a directory with another name or with a namespace suffix
 * (<machine-id>.<namespace>), is not read. listJournalFiles applies the same rule, so the reader
 * hands libsystemd (sd_journal_open_files) and journalctl (--file) one list of files for all
 * directories: entries of /var/log/journal and /run/log/journal are then interleaved in time order
 * and a cursor from one read finds its place in the next whichever directory holds it.
 */

const MACHINE_ID_DIR = /^[0-9a-f]{32}$/;
const JOURNAL_FILE = /\.journal~?$/;

/** The header fields the reader uses (https://systemd.io/JOURNAL_FILE_FORMAT/). */
export interface JournalFileHeader {
  fileId: string;
  seqnumId: string;
  state: "offline" | "online" | "archived" | `unknown ${number}`;
  headerSize: number;
  arenaSize: number;
  nEntries: number;
}

export interface JournalFile {
  path: string;
  size: number;
  header: JournalFileHeader | null;
  /** What is wrong with the file as far as its header shows (libsystemd refuses such files). */
  problem: string | null;
}

/** Journal files of the directories, in name order per directory; unreadable directories warn. */
export async function listJournalFiles(
  directories: string[],
  warn: (message: string) => void,
): Promise<string[]> {
  const files: string[] = [];
  for (const directory of directories) {
    let names: Awaited<ReturnType<typeof listDir>>;
    try {
      names = await listDir(directory);
    } catch (error) {
      warn(`journal directory ${directory} cannot be read: ${errorText(error)}`);
      continue;
    }
    for (const entry of names) {
      // Symbolic links are not followed: journald makes none, and one could point out of the host root.
      if (entry.isFile() && JOURNAL_FILE.test(entry.name)) files.push(path.join(directory, entry.name));
      else if (entry.isDirectory() && MACHINE_ID_DIR.test(entry.name)) {
        const sub = path.join(directory, entry.name);
        try {
          for (const inner of await listDir(sub)) {
            if (inner.isFile() && JOURNAL_FILE.test(inner.name)) files.push(path.join(sub, inner.name));
          }
        } catch (error) {
          warn(`journal directory ${sub} cannot be read: ${errorText(error)}`);
        }
      }
    }
  }
  return [...new Set(files)];
}

async function listDir(directory: string) {
  const entries = await readdir(directory, { withFileTypes: true });
  return entries.sort((a, b) => byCodePoint(a.name, b.name));
}

const HEADER_BYTES = 208; // every field the reader uses lies in the first 208 bytes (systemd >= 187)
const SIGNATURE = "LPKSHHRH";

/**
 * Reads a journal file's header without libsystemd: the numbers that tell a truncated file, and
 * how many entries the file holds (to notice entries that libsystemd skipped as corrupt).
 */
export async function inspectJournalFile(file: string): Promise<JournalFile> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    const info = await handle.stat();
    if (!info.isFile()) return { path: file, size: 0, header: null, problem: "not a regular file" };
    const buffer = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, HEADER_BYTES, 0);
    const result: JournalFile = { path: file, size: info.size, header: null, problem: null };
    if (bytesRead < HEADER_BYTES || buffer.toString("latin1", 0, 8) !== SIGNATURE) {
      result.problem =
        bytesRead < HEADER_BYTES ? `only ${bytesRead} bytes long` : "no journal file signature";
      return result;
    }
    const header = parseHeader(buffer);
    result.header = header;
    const claimed = header.headerSize + header.arenaSize;
    if (claimed > info.size) result.problem = `truncated: ${info.size} bytes, its header claims ${claimed}`;
    return result;
  } catch (error) {
    return { path: file, size: 0, header: null, problem: `cannot be read: ${errorText(error)}` };
  } finally {
    await handle?.close();
  }
}

function parseHeader(b: Buffer): JournalFileHeader {
  const state = b[16]!;
  return {
    fileId: b.toString("hex", 24, 40),
    seqnumId: b.toString("hex", 72, 88),
    state: state === 0 ? "offline" : state === 1 ? "online" : state === 2 ? "archived" : `unknown ${state}`,
    headerSize: Number(b.readBigUInt64LE(88)),
    arenaSize: Number(b.readBigUInt64LE(96)),
    nEntries: Number(b.readBigUInt64LE(152)),
  };
}

export function errorText(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === "string" && !message.includes(code) ? `${code}: ${message}` : message;
}
