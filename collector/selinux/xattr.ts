/**
 * Reads `security.selinux` in-process through libc's lgetxattr (koffi FFI): one system call per
 * file and no child process, which is what makes a scan of a whole image store affordable. The
 * link itself is read, never its target (restorecon labels links too).
 *
 * koffi and libc are loaded on the first read, never at import: the CLI's start-up stays cheap.
 *
 * libselinux writes the label with a trailing NUL (setfilecon: strlen + 1); `setfattr -v` does
 * not. One trailing NUL is stripped, so both read the same.
 */
import { createRequire } from "node:module";
import { constants } from "node:os";

export const SELINUX_XATTR = "security.selinux";

/** A failed read: the errno name (ENOTSUP also stands for EOPNOTSUPP, the same number on Linux). */
export class XattrError {
  readonly code: string;
  readonly errno: number;
  constructor(errno: number) {
    this.errno = errno;
    this.code = errnoName(errno);
  }
  get message(): string {
    return `lgetxattr ${SELINUX_XATTR}: ${this.code}`;
  }
}

const ERRNO_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  // EOPNOTSUPP and ENOTSUP share a number; keep the name the brief and the kernel docs use.
  if (!ERRNO_NAMES.has(value) || name === "ENOTSUP") ERRNO_NAMES.set(value, name);
}

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

const ENODATA = constants.errno.ENODATA;
const ERANGE = constants.errno.ERANGE;

/** lgetxattr(path, name, value, size) -> ssize_t; errno is read through koffi.errno(). */
type Lgetxattr = (path: string | Buffer, name: string, value: Buffer | null, size: number) => number;

interface Libc {
  lgetxattr: Lgetxattr;
  fchdir: (fd: number) => number;
  errno: () => number;
}

let libc: Libc | undefined;

function loadLibc(): Libc {
  if (libc) return libc;
  // koffi is CommonJS; require() keeps its load synchronous (a scan is synchronous) and lazy.
  const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
  const lib = koffi.load("libc.so.6");
  const lgetxattr = lib.func(
    "long lgetxattr(const char *path, const char *name, void *value, size_t size)",
  ) as unknown as Lgetxattr;
  const fchdir = lib.func("int fchdir(int fd)") as unknown as (fd: number) => number;
  libc = { lgetxattr, fchdir, errno: () => koffi.errno() };
  return libc;
}

/** Longest label read without a second call (labels with long MCS category lists are rarer). */
const INITIAL_BYTES = 256;

/**
 * A reusable reader: its buffer, and the last label decoded (a store holds millions of files but
 * a handful of distinct labels, so the string for a repeated label is not rebuilt).
 */
export class LabelReader {
  #libc: Libc;
  #buffer = Buffer.alloc(INITIAL_BYTES);
  #last = Buffer.alloc(INITIAL_BYTES);
  #lastLength = -1;
  #lastLabel = "";
  /** Length of the label last read. */
  #length = 0;

  constructor() {
    this.#libc = loadLibc();
  }

  /**
   * Reads the label of `path` (a string, or a NUL-terminated Buffer for a name that is not
   * ASCII; see bytes.ts cPath). Returns its length in bytes (>= 0, trailing NUL stripped), or
   * -errno: -ENODATA when the file has no label. Fetch the text with label().
   */
  readRaw(path: string | Buffer): number {
    let length = this.#libc.lgetxattr(path, SELINUX_XATTR, this.#buffer, this.#buffer.length);
    if (length < 0) {
      const errno = this.#libc.errno();
      if (errno !== ERANGE) return -errno;
      length = this.#grow(path);
      if (length < 0) return length;
    }
    if (length > 0 && this.#buffer[length - 1] === 0) length -= 1;
    this.#length = length;
    return length;
  }

  /** The label text of the last successful readRaw. */
  label(): string {
    const length = this.#length;
    if (length === this.#lastLength && this.#buffer.compare(this.#last, 0, length, 0, length) === 0) {
      return this.#lastLabel;
    }
    this.#lastLabel = this.#buffer.toString("latin1", 0, length);
    if (length <= this.#last.length) {
      this.#buffer.copy(this.#last, 0, 0, length);
      this.#lastLength = length;
    } else {
      this.#lastLength = -1;
    }
    return this.#lastLabel;
  }

  /** The label did not fit: ask for its size, then read it again with room for it. */
  #grow(path: string | Buffer): number {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const size = this.#libc.lgetxattr(path, SELINUX_XATTR, null, 0);
      if (size < 0) return -this.#libc.errno();
      this.#buffer = Buffer.alloc(Math.max(size, this.#buffer.length * 2));
      const length = this.#libc.lgetxattr(path, SELINUX_XATTR, this.#buffer, this.#buffer.length);
      if (length >= 0) return length;
      const errno = this.#libc.errno();
      if (errno !== ERANGE) return -errno;
    }
    return -ERANGE;
  }

  /** One read: the label, null when the file has none, or the error. */
  read(path: string | Buffer): string | null | XattrError {
    const length = this.readRaw(path);
    if (length >= 0) return this.label();
    if (-length === ENODATA) return null;
    return new XattrError(-length);
  }
}

/**
 * fchdir(2): makes the directory open on `fd` the working directory, so the label scanner can read
 * entries by name (one path component for the kernel to resolve). Returns 0 or -errno.
 * process.chdir cannot take a descriptor, and a descriptor opened with O_NOFOLLOW is what
 * guarantees the walk never follows a symlink swapped in for a directory.
 */
export function changeDirectory(fd: number): number {
  const lib = loadLibc();
  return lib.fchdir(fd) === 0 ? 0 : -lib.errno();
}

let shared: LabelReader | undefined;

/**
 * The SELinux label of a file, not following a symlink: the label string, null when the file has
 * none (ENODATA), or an XattrError (ENOTSUP on a filesystem without xattrs, EACCES, ENOENT, ...).
 */
export function readLabel(path: string | Buffer): string | null | XattrError {
  shared ??= new LabelReader();
  return shared.read(path);
}

export const ERRNO = { ENODATA, ERANGE } as const;
