import type { Host } from "../host/host.js";

/**
 * Where journald keeps its files: /var/log/journal (persistent storage) and /run/log/journal
 * (volatile storage, and where early-boot entries wait before they are flushed to /var).
 *
 * journald writes into a subdirectory named by the machine ID (/var/log/journal/<machine-id>/).
 * sd_journal_open_directory and `journalctl --directory` both descend into such subdirectories,
 * one level, and into no other (verified with libsystemd 252 and in test/journal.test.ts), so the
 * directory to hand the reader is /var/log/journal itself; the reader lists files by that same
 * rule (files.ts), whether the files lie at the top or under the machine ID.
 */
const JOURNAL_DIRECTORIES = ["/var/log/journal", "/run/log/journal"];

/**
 * Local paths (under the host root, symlinks resolved inside it) of the journal directories that
 * exist. A directory on a FUSE or network filesystem that does not answer is left out: libsystemd
 * would read it through mmap in this process, where a hang cannot be cut off.
 */
export async function journalDirectories(host: Host): Promise<string[]> {
  const found: string[] = [];
  for (const hostPath of JOURNAL_DIRECTORIES) {
    const inspected = await host.inspectPath(hostPath);
    if (inspected.status !== "ok" || !inspected.isDirectory) continue;
    const local = host.root.local(inspected.resolved);
    if (!found.includes(local)) found.push(local);
  }
  return found;
}
