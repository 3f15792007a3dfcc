/**
 * Timed operations on a FUSE (or network) mount, run in a child process that is SIGKILLed at the
 * deadline: the main process never calls an fs function on such a path.
 */
export type ProbeOpKind =
  /** statfs(2) of the path. */
  | "statfs"
  /** readdir of a directory: the number of entries. */
  | "readdir"
  /** lstat(2): does the path exist, and what is it. */
  | "stat"
  /** open + read of a regular file, at most maxBytes (the content comes back). */
  | "read";

export interface ProbeOp {
  op: ProbeOpKind;
  /** A path on this machine (under the host root). */
  path: string;
  /** For "read": how much to read at most (default 64 KiB). */
  maxBytes?: number;
  /** For "readdir": how many names to return at most (default 0: only the count). */
  maxNames?: number;
  /**
   * For "read": `path` is a directory; read the first entry (by name) whose name ends with this
   * suffix, listed in the same child. For files whose name only the FUSE server knows, such as
   * stargz-store's `.stargz-snapshotter/<layer digest>.json` under a path named by TOC digest.
   */
  pick?: string;
}

export type ProbeOpResult =
  | {
      op: ProbeOpKind;
      path: string;
      ok: true;
      ms: number;
      /** statfs: the f_type magic; readdir: entries and first names; stat: kind; read: the bytes as UTF-8 (invalid bytes replaced) */
      value:
        | { kind: "statfs"; type: number }
        | { kind: "readdir"; entries: number; names: string[] }
        | { kind: "stat"; fileType: "file" | "dir" | "symlink" | "other"; size: number }
        | { kind: "read"; text: string; truncated: boolean };
    }
  | { op: ProbeOpKind; path: string; ok: false; ms: number; code: string; message: string };

export interface ProbeRun {
  /** Results of the operations that finished, in order. */
  results: ProbeOpResult[];
  /** The operation still running when the deadline killed the child, if any. */
  hungAt: ProbeOp | null;
  /**
   * The deadline killed the child. Then hungAt names the operation it was in, or is null when the
   * child had not reached the first one yet (node itself was not up within the deadline).
   */
  timedOut: boolean;
  /**
   * Set when the child ended without reporting every operation for any other reason than the
   * deadline (it could not start, crashed, printed too much), or had not started by the deadline.
   * The operations it did not report are in neither results nor hungAt.
   */
  error?: { code: string; message: string };
  /** Wall time of the whole run in this process, child start-up included. */
  elapsedMs: number;
}
