import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import path from "node:path";

/** A state file larger than this is not ours (or is damaged): it is treated as empty. */
const MAX_STATE_BYTES = 1024 * 1024;

interface StateFile {
  version: 1;
  /** Without a prototype: a key such as "__proto__" is just a key. */
  cursors: Record<string, string>;
}

function emptyState(): StateFile {
  return { version: 1, cursors: Object.create(null) as Record<string, string> };
}

/**
 * Journal cursors persisted across runs of a long-running collector, one per key (a source, a
 * rule pack), so a restart continues after the last entry it read instead of counting entries
 * twice. The file is JSON, replaced atomically (a temporary file in the same directory, fsynced,
 * renamed over it) with mode 0600. A missing, unreadable or corrupt file reads as empty: the
 * worst case is one re-read, never a crash. Saves through one store are serialised.
 */
export class CursorStore {
  readonly file: string;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(file: string) {
    this.file = path.resolve(file);
  }

  async load(key: string): Promise<string | null> {
    const state = await this.#read();
    return Object.hasOwn(state.cursors, key) ? state.cursors[key]! : null;
  }

  save(key: string, cursor: string): Promise<void> {
    const next = this.#queue.then(async () => {
      const state = await this.#read();
      state.cursors[key] = cursor;
      await this.#write(state);
    });
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #read(): Promise<StateFile> {
    const state = emptyState();
    let text: string;
    try {
      // O_NONBLOCK: a FIFO planted at the path cannot block the open.
      const handle = await open(this.file, constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        const info = await handle.stat();
        if (!info.isFile() || info.size > MAX_STATE_BYTES) return state;
        text = await handle.readFile("utf8");
      } finally {
        await handle.close();
      }
    } catch {
      return state;
    }
    try {
      const parsed: unknown = JSON.parse(text);
      const cursors = (parsed as { cursors?: unknown } | null)?.cursors;
      if (cursors === null || typeof cursors !== "object" || Array.isArray(cursors)) return state;
      for (const [key, value] of Object.entries(cursors))
        if (typeof value === "string") state.cursors[key] = value;
    } catch {
      // not JSON: start afresh
    }
    return state;
  }

  async #write(state: StateFile): Promise<void> {
    const dir = path.dirname(this.file);
    await makeDirectories(dir, 0o700);
    const temp = path.join(
      dir,
      `.${path.basename(this.file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`,
    );
    const handle = await open(temp, "wx", 0o600);
    try {
      await handle.chmod(0o600); // whatever the umask
      await handle.writeFile(`${JSON.stringify(state, null, 2)}\n`, "utf8");
      await handle.sync();
    } catch (error) {
      await handle.close();
      await rm(temp, { force: true });
      throw error;
    }
    await handle.close();
    try {
      await rename(temp, this.file);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }
}

/**
 * `mkdir -p` that gives up: Node's recursive mkdir loops forever where creating a directory keeps
 * failing with ENOENT (anywhere under /proc), which would hang `serve --state-dir /proc/...`.
 * Each missing component is created once; the first that cannot be is the error.
 */
async function makeDirectories(dir: string, mode: number): Promise<void> {
  const missing: string[] = [];
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    try {
      await stat(current);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    missing.unshift(current);
    if (path.dirname(current) === current) break;
  }
  for (const component of missing) {
    try {
      await mkdir(component, { mode });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
}
