import type { ResultPromise } from "execa";
import type { ReadSession } from "./session.js";
import type { JournalEntry } from "./types.js";
import { decodeValue, type ValueInfo } from "./values.js";

/**
 * The fallback reader: `journalctl -o json --all`, streamed line by line (never buffered whole),
 * SIGKILLed at the deadline. It reads the same files as the sd-journal reader (one --file per
 * file: see files.ts) and turns journalctl's JSON back into the same entries:
 *
 * - journalctl prints a value as a JSON string only when it is printable UTF-8; any other value
 *   (binary, or text with control characters) is an array of byte numbers. Both become bytes
 *   here and go through the same decodeValue as libsystemd's bytes: a string when valid UTF-8.
 * - A field an entry carries more than once is an array of values: the first is kept.
 * - `--all` prints every value whole (without it, values over 4096 bytes would be null); values
 *   are cut to maxFieldBytes here, as the sd-journal reader cuts them.
 * - __CURSOR, __REALTIME_TIMESTAMP, __MONOTONIC_TIMESTAMP (and __SEQNUM... on newer systemd)
 *   are not data fields: they are dropped from `fields`. _BOOT_ID comes from the entry header
 *   in the JSON and from the data in sd-journal; journald always writes both, the same.
 */

const JOURNALCTL = "journalctl";
/** An entry whose JSON line is longer than this is skipped (a core dump as a byte array, say). */
const MAX_LINE_BYTES = 64 * 1024 * 1024;
const MAX_STDERR_BYTES = 64 * 1024;

type LineVerdict = "more" | "count" | "stop";

interface RunResult {
  lines: number;
  exitCode: number | undefined;
  stderr: string;
  /** We killed it: done, past a limit or the deadline. */
  killed: boolean;
}

/** Escapes what journalctl's --file would take for glob syntax. */
function fileArg(file: string): string {
  return `--file=${file.replace(/[\\*?[]/g, "\\$&")}`;
}

function matchArgs(session: ReadSession): string[] {
  const args: string[] = [];
  session.terms.forEach((term, index) => {
    if (index > 0) args.push("+");
    for (const [field, values] of term) for (const value of values) args.push(`${field}=${value}`);
  });
  return args;
}

function sinceArg(usec: number): string {
  return `--since=@${Math.floor(usec / 1e6)}.${String(usec % 1e6).padStart(6, "0")}`;
}

/**
 * Runs journalctl and hands each stdout line to `onLine` ("count": from now on only count lines
 * as dropped entries; "stop": kill it). Never holds more than one line.
 */
async function run(
  session: ReadSession,
  args: string[],
  onLine: (line: string) => LineVerdict,
): Promise<RunResult> {
  const { execa } = await import("execa");
  const child: ResultPromise = execa(JOURNALCTL, ["--no-pager", "-q", "-o", "json", "--all", ...args], {
    stdin: "ignore",
    buffer: false,
    reject: false,
    killSignal: "SIGKILL",
    env: { SYSTEMD_COLORS: "0", SYSTEMD_PAGER: "", SYSTEMD_LOG_COLOR: "0" },
  });
  let killed = false;
  let outOfTime = false;
  const kill = () => {
    killed = true;
    child.kill("SIGKILL");
  };
  const stop = () => {
    outOfTime = true;
    kill();
  };
  const remaining = session.remainingMs();
  const timer = Number.isFinite(remaining) ? setTimeout(stop, remaining) : undefined;
  session.signal?.addEventListener("abort", stop, { once: true });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < MAX_STDERR_BYTES) stderr += chunk.toString("utf8");
  });

  let mode: "deliver" | "count" | "skip" = "deliver";
  let lines = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  try {
    if (!child.stdout) throw new Error("journalctl has no stdout");
    // Each chunk arrives through the event loop, so timers elsewhere run between chunks.
    reading: for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      if (session.expired()) {
        kill();
        break;
      }
      let from = 0;
      for (;;) {
        const nl = chunk.indexOf(10, from);
        if (nl < 0) {
          if (mode === "deliver" && from < chunk.length) {
            pending.push(chunk.subarray(from));
            pendingBytes += chunk.length - from;
            if (pendingBytes > MAX_LINE_BYTES) {
              session.warn(
                `an entry was skipped: its JSON is longer than ${MAX_LINE_BYTES} bytes (journalctl)`,
              );
              pending = [];
              pendingBytes = 0;
              mode = "skip";
            }
          }
          break;
        }
        lines += 1;
        if (mode === "count") {
          // Past a limit: a line is an entry; count it without parsing it.
          session.seen += 1;
          session.drop();
          if (session.stats.droppedCapped) {
            kill();
            break reading;
          }
        } else if (mode === "skip") {
          mode = "deliver";
        } else {
          let line: string;
          if (pending.length === 0) line = chunk.toString("utf8", from, nl);
          else {
            pending.push(chunk.subarray(from, nl));
            line = Buffer.concat(pending).toString("utf8");
            pending = [];
            pendingBytes = 0;
          }
          const verdict = onLine(line);
          if (verdict === "stop") {
            kill();
            break reading;
          }
          if (verdict === "count") mode = "count";
        }
        from = nl + 1;
      }
    }
  } catch (error) {
    // The callback threw (or the pipe broke): leave no journalctl behind.
    kill();
    await child;
    throw error;
  } finally {
    if (timer) clearTimeout(timer);
    session.signal?.removeEventListener("abort", stop);
  }
  const result = await child;
  if ((result as { code?: string }).code === "ENOENT") throw new Error("journalctl not found");
  if (outOfTime) session.expired(true); // the deadline (or an abort) killed it
  return { lines, exitCode: result.exitCode, stderr, killed };
}

function parseEntry(line: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(line);
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** Finds which files journalctl can open (only asked after it failed on the whole set). */
async function openableFiles(session: ReadSession, files: string[]): Promise<string[]> {
  const { execa } = await import("execa");
  const good: string[] = [];
  for (const file of files) {
    const probe = await execa(JOURNALCTL, ["--no-pager", fileArg(file), "--header"], {
      stdin: "ignore",
      stdout: "ignore",
      reject: false,
      timeout: Math.min(10_000, Math.max(1, session.remainingMs())),
      killSignal: "SIGKILL",
    });
    if (probe.exitCode === 0) good.push(file);
    else
      session.fileSkipped(
        file,
        `journalctl cannot open it (${firstLine(String(probe.stderr ?? "")) || "failed"})`,
      );
  }
  return good;
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0]?.trim() ?? "";
}

/** Whether the entry at the cursor exists: journalctl --cursor starts on it when it does. */
async function cursorExists(
  session: ReadSession,
  fileArgs: string[],
  cursor: string,
): Promise<RunResult & { found: boolean }> {
  let found = false;
  const result = await run(session, [...fileArgs, `--cursor=${cursor}`], (line) => {
    found = parseEntry(line)?.__CURSOR === cursor;
    return "stop";
  });
  return { ...result, found };
}

/** Reads the session's files with journalctl, delivering entries through the session. */
export async function readWithJournalctl(session: ReadSession): Promise<void> {
  let files = session.files.map((f) => f.path);
  for (let attempt = 0; attempt < 2; attempt += 1) {
    if (files.length === 0) {
      session.complete = true;
      return;
    }
    const fileArgs = files.map(fileArg);
    const outcome = await readOnce(session, fileArgs);
    if (outcome !== "cannot-open" || attempt === 1) return;
    // journalctl refuses the whole set when one file cannot be opened: find it, read the rest.
    files = await openableFiles(session, files);
  }
}

async function readOnce(session: ReadSession, fileArgs: string[]): Promise<"done" | "cannot-open"> {
  const pos = session.position;
  let positionArgs: string[] = [];
  let skipCursor: string | null = null;
  if (pos.kind === "cursor") {
    const probe = await cursorExists(session, fileArgs, pos.cursor);
    if (session.stats.timedOut) return "done";
    if (!probe.killed && probe.exitCode !== 0 && probe.lines === 0) {
      if (/Failed to open/i.test(probe.stderr)) return "cannot-open";
      session.warn(
        `cursor "${pos.cursor}" is not valid (journalctl: ${firstLine(probe.stderr)}): reading from the start`,
      );
    } else if (probe.found) {
      positionArgs = [`--cursor=${pos.cursor}`];
      skipCursor = pos.cursor;
    } else {
      session.warn(
        `the entry at cursor "${pos.cursor}" is no longer in the journal (rotated or vacuumed away?): reading from the start`,
      );
    }
  } else if (pos.kind === "time") {
    positionArgs = [sinceArg(pos.usec)];
  }
  // --reverse with --since stops at the first entry before it, as the sd-journal reader does.
  if (session.backward) positionArgs.push("--reverse");
  const wanted = session.fields;
  if (wanted !== null && wanted.size > 0) positionArgs.push(`--output-fields=${[...wanted].join(",")}`);

  const since = session.sinceUsec;
  const max = session.maxFieldBytes;
  const info: ValueInfo = { bytes: 0, truncated: false };
  let notJson = 0;
  const result = await run(session, [...fileArgs, ...positionArgs, ...matchArgs(session)], (line) => {
    const json = parseEntry(line);
    const cursor = json?.__CURSOR;
    if (json === null || typeof cursor !== "string") {
      notJson += 1;
      return "more";
    }
    if (skipCursor !== null) {
      const skip = skipCursor === cursor;
      skipCursor = null;
      if (skip) return "more"; // the cursor's own entry was read last time
    }
    session.seen += 1;
    if (session.full) {
      session.drop();
      return "count";
    }
    const realtimeUsec = Number(json.__REALTIME_TIMESTAMP);
    if (!(realtimeUsec >= since)) return "more";
    const fields: Record<string, string | Buffer> = {};
    let bytes = 0;
    let truncated = 0;
    for (const name of Object.keys(json)) {
      if (name.startsWith("__") || (wanted !== null && !wanted.has(name))) continue;
      let raw = json[name];
      // Several values: an array of strings / byte arrays / nulls. One binary value: an array of numbers.
      if (Array.isArray(raw) && raw.length > 0 && typeof raw[0] !== "number") raw = raw[0];
      let value: string | Buffer;
      let valueBytes: number;
      if (typeof raw === "string") {
        valueBytes = Buffer.byteLength(raw, "utf8");
        value = raw;
        if (valueBytes > max) {
          const b = Buffer.from(raw, "utf8");
          value = decodeValue(b, 0, b.length, b.length, max, info);
          valueBytes = info.bytes;
          truncated += 1;
        }
      } else if (Array.isArray(raw)) {
        const b = Buffer.from(raw.length > max ? raw.slice(0, max) : raw);
        value = decodeValue(b, 0, b.length, raw.length, max, info);
        valueBytes = info.bytes;
        if (info.truncated) truncated += 1;
      } else {
        continue; // null: a value journalctl did not print
      }
      fields[name] = value;
      bytes += name.length + 1 + valueBytes;
    }
    const entry: JournalEntry = { cursor: session.cursors ? cursor : "", realtimeUsec, fields };
    return session.deliver(entry, bytes, truncated);
  });
  if (notJson > 0) session.warn(`${notJson} lines of journalctl output were not journal entries`);
  const messages = result.stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "");
  if (!result.killed && result.exitCode !== 0) {
    if (result.lines === 0 && /Failed to open/i.test(result.stderr)) return "cannot-open";
    const said = messages.join("; ").slice(0, 1000) || "no message";
    session.warn(`journalctl exited with status ${result.exitCode}: ${said}`);
  } else {
    if (!result.killed) session.complete = true;
    for (const text of messages) session.warn(`journalctl: ${text}`);
  }
  return "done";
}
