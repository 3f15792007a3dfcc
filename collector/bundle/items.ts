import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { TIMED_OUT, withinMs } from "../deadline.js";
import { UNSAFE_NAME_CHARACTER } from "./reader.js";

/**
 * The raw items of a bundle and the steps that gather them. A step runs under a deadline; when it
 * runs past it, every item it had begun and not finished is marked `timeout` and whatever it
 * still produces afterwards is ignored. Items hold the text as read: redaction comes later, once,
 * for the whole bundle.
 */

export type ItemStatus = "ok" | "error" | "timeout" | "skipped";

export interface Item {
  /** Path inside the bundle's top directory; null for what was not collected (a credential file). */
  path: string | null;
  /** A host path, a command's argv, or what a derived item was made from. */
  source: string | string[];
  status: ItemStatus;
  durationMs: number;
  /** How the content is masked: as text, as a JSON document, or as an HTML page. */
  kind: "text" | "json" | "html";
  content?: string;
  /** The content is the beginning (or, for logs, the end) of something longer than the item's cap. */
  truncated?: boolean;
  error?: string;
  /** The step that made it. */
  step: string;
}

export interface ItemHandle {
  /** `durationMs`: the item's own time, when it was gathered ahead of its step (in a worker). */
  ok(content: string, extra?: { truncated?: boolean; kind?: Item["kind"]; durationMs?: number }): void;
  /** Content may come with a failure (a command that exited non-zero, a journal read cut by its deadline). */
  fail(status: "error" | "timeout" | "skipped", error: string, content?: string): void;
  /** Forget the item: it turned out not to exist (a well-known path that is not there). */
  drop(): void;
}

export interface StepContext {
  /** Milliseconds this step may still take. */
  remainingMs(): number;
  signal: AbortSignal;
  begin(bundlePath: string | null, source: string | string[], kind?: Item["kind"]): ItemHandle;
}

export interface StepRecord {
  name: string;
  status: "ok" | "error" | "timeout" | "skipped";
  durationMs: number;
  items: number;
  error?: string;
}

export interface StepListener {
  started(name: string): void;
  finished(record: StepRecord): void;
}

export class Gatherer {
  readonly items: Item[] = [];
  readonly steps: StepRecord[] = [];
  readonly #runDeadline: number;
  readonly #stepMs: number;
  readonly #listener: StepListener | undefined;
  readonly #maxBytes: number;
  /** Bytes of content held so far: what a run keeps in memory before it is masked and written. */
  #bytes = 0;

  /**
   * `runDeadline` is a performance.now() value: no step runs past it. Past `maxBytes` of content
   * held, further content is not kept (the item is marked skipped), so memory stays bounded.
   */
  constructor(options: { runDeadline: number; stepMs: number; maxBytes?: number; listener?: StepListener }) {
    this.#runDeadline = options.runDeadline;
    this.#stepMs = options.stepMs;
    this.#maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    this.#listener = options.listener;
  }

  /** Takes `content` into the run's budget, or says it does not fit. */
  #take(content: string | undefined): boolean {
    if (content === undefined) return true;
    const bytes = Buffer.byteLength(content);
    if (this.#bytes + bytes > this.#maxBytes) return false;
    this.#bytes += bytes;
    return true;
  }

  remainingRunMs(): number {
    return this.#runDeadline - performance.now();
  }

  async step(
    name: string,
    work: (context: StepContext) => Promise<void>,
    stepMs = this.#stepMs,
  ): Promise<void> {
    const started = performance.now();
    const budget = Math.min(stepMs, this.#runDeadline - started);
    // Steps may run side by side: each has its place in `steps` from its start.
    const record: StepRecord = { name, status: "ok", durationMs: 0, items: 0 };
    this.steps.push(record);
    if (budget <= 0) {
      record.status = "skipped";
      record.error = "not run: the whole run's deadline (--timeout) had passed";
      this.items.push({
        path: null,
        source: `step: ${name}`,
        status: "skipped",
        durationMs: 0,
        kind: "text",
        error: record.error,
        step: name,
      });
      this.#listener?.finished(record);
      return;
    }
    this.#listener?.started(name);
    const deadlineAt = started + budget;
    const controller = new AbortController();
    let closed = false;
    const open = new Set<Item & { startedAt: number }>();
    const mine: Item[] = [];
    const context: StepContext = {
      remainingMs: () => Math.max(0, deadlineAt - performance.now()),
      signal: controller.signal,
      begin: (bundlePath, source, kind = "text") => {
        const item: Item & { startedAt: number } = {
          path: bundlePath,
          source,
          status: "ok",
          durationMs: 0,
          kind,
          step: name,
          startedAt: performance.now(),
        };
        if (closed) return { ok() {}, fail() {}, drop() {} };
        open.add(item);
        const finish = () => {
          item.durationMs = Math.round(performance.now() - item.startedAt);
          open.delete(item);
        };
        return {
          ok: (content, extra) => {
            if (closed || !open.has(item)) return;
            finish();
            if (!this.#take(content)) {
              item.status = "skipped";
              item.error = `left out: the run already holds ${this.#maxBytes} bytes, more than the size cap can use`;
              mine.push(item);
              return;
            }
            item.content = content;
            if (extra?.durationMs !== undefined) item.durationMs = extra.durationMs;
            if (extra?.truncated) item.truncated = true;
            if (extra?.kind) item.kind = extra.kind;
            mine.push(item);
          },
          fail: (status, error, content) => {
            if (closed || !open.has(item)) return;
            finish();
            item.status = status;
            item.error = error;
            if (content !== undefined && this.#take(content)) item.content = content;
            mine.push(item);
          },
          drop: () => {
            if (!closed) open.delete(item);
          },
        };
      },
    };
    let status: StepRecord["status"] = "ok";
    let error: string | undefined;
    try {
      const outcome = await withinMs(
        Promise.resolve().then(() => work(context)),
        budget,
      );
      if (outcome === TIMED_OUT) {
        status = "timeout";
        error = `ran past its ${Math.round(budget)} ms deadline`;
      }
    } catch (thrown) {
      status = "error";
      error = (thrown as Error).message ?? String(thrown);
    }
    closed = true;
    controller.abort();
    for (const item of open) {
      item.durationMs = Math.round(performance.now() - item.startedAt);
      item.status = status === "ok" ? "error" : status;
      item.error =
        status === "timeout"
          ? `step "${name}" ${error}; this item was not finished`
          : `step "${name}" failed: ${error ?? "the item was never finished"}`;
      mine.push(item);
    }
    for (const item of mine) {
      const { startedAt: _, ...plain } = item as Item & { startedAt?: number };
      this.items.push(plain);
    }
    record.status = status;
    record.durationMs = Math.round(performance.now() - started);
    record.items = mine.length;
    if (error) record.error = error;
    this.#listener?.finished(record);
  }
}

/** Regular files (and links) of a local directory, sorted bytewise, at most `max`. */
export async function listFiles(localDir: string, max = 200): Promise<string[]> {
  try {
    const entries = await readdir(localDir, { withFileTypes: true });
    return entries
      .filter((e) => e.isFile() || e.isSymbolicLink())
      .map((e) => e.name)
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      .slice(0, max);
  } catch {
    return [];
  }
}

/** The bundle path of a host file. */
export function hostEntry(hostPath: string): string {
  return `host${path.posix.normalize(`/${hostPath}`)}`;
}

/**
 * A name safe in any tar reader and in `diagnose --bundle`: control, bidi and zero-width
 * characters (and U+FFFD, what an undecodable byte became) written as \u{XXXX}, components cut to
 * 200 bytes (with a hash of what was cut, so names stay distinct).
 */
export function safeEntryName(name: string): string {
  const asCodePoint = (c: string) => `\\u{${c.codePointAt(0)!.toString(16)}}`;
  const escaped = name
    .replace(new RegExp(UNSAFE_NAME_CHARACTER.source, "g"), asCodePoint)
    .replace(/\ufffd/g, asCodePoint);
  return escaped
    .split("/")
    .map((component) => {
      if (Buffer.byteLength(component) <= 200) return component;
      const digest = createHash("sha256").update(component).digest("hex").slice(0, 12);
      return `${Buffer.from(component)
        .subarray(0, 180)
        .toString("utf8")
        .replace(/\ufffd$/, "")}~${digest}`;
    })
    .join("/");
}
