import { promisify } from "node:util";
import { gzip } from "node:zlib";

/**
 * The bundle's compression, apart from the archive writer (archive.ts) so that must-gather's
 * journal worker compresses with it without loading tar-stream and its streams (13-17 ms in a
 * worker).
 *
 * zlib's fastest strategy (levels 1-3 skip lazy matching) with level 3's longer match chains: on
 * the bench's bundle (15.5 MB of tar: journal text, JSON, configuration) 2.39 MB in 85 ms, against
 * 2.22 MB in 165 ms at the default level 6 and 2.48 MB in 85 ms at level 1 (medians of 9); 8% more
 * bytes than level 6 are far below the 20 MB cap. With a 16 KiB window and zlib's largest hash
 * table (memLevel 9) instead of 32 KiB and the default: the same size (2.382 against 2.388 MB,
 * entry by entry) in 47 instead of 58 ms (best of 7): the matches in logs and JSON are near, and
 * the smaller window and table stay in the cache. Any gzip reader reads it (the window only bounds
 * back-references).
 */
const GZIP = { level: 3, memLevel: 9, windowBits: 14 };
const gzipAsync = promisify(gzip);

/**
 * `data` as one gzip member, compressed in the thread pool. The archive holds a member made
 * elsewhere as is (ArchiveEntry.gzip): must-gather's journal worker has the journal excerpts
 * (two thirds of the bench's bundle) compressed while the main thread still lays the bundle out,
 * instead of once it writes it.
 */
export function gzipMember(data: Uint8Array): Promise<Buffer> {
  return gzipAsync(data, GZIP);
}
