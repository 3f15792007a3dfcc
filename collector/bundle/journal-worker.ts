import { createHash } from "node:crypto";
import { parentPort, workerData } from "node:worker_threads";
import {
  type Excerpt,
  type ExcerptJob,
  type LoadedPacks,
  type MaskedExcerpt,
  readExcerpt,
  readWindow,
  type WindowJob,
} from "./journal-excerpt.js";

/**
 * The worker thread of ExcerptPrefetch: one shared pass for the excerpts and the journal source's
 * facts when asked for (readWindow), then each excerpt the pass could not stand for, read in turn;
 * each excerpt masked too when asked for.
 *
 * Started ahead (workerData { ahead: true }, see AheadWorker), it loads what a read needs
 * (its modules, koffi and libsystemd) while the CLI is still loading must-gather, and takes its
 * job from the first message instead of workerData.
 */
interface WorkerJob {
  jobs: [string, ExcerptJob][];
  window?: WindowJob;
  mask?: boolean;
}

type Message = { job: WorkerJob } | { stop: true };

/** Messages in the order they came, for whoever waits for one. */
const inbox: Message[] = [];
const waiting: ((message: Message) => void)[] = [];
parentPort?.on("message", (message: Message) => {
  // Handled here, between two steps of JavaScript: never inside a native module's start-up.
  if ("stop" in message) process.exit(0);
  const next = waiting.shift();
  if (next) next(message);
  else inbox.push(message);
});
// The listener above keeps the thread alive; it ends once the work is done (below).
function nextMessage(): Promise<Message> {
  const queued = inbox.shift();
  return queued ? Promise.resolve(queued) : new Promise((resolve) => waiting.push(resolve));
}

const ahead = (workerData as { ahead?: boolean } | undefined)?.ahead === true;
/** The built-in rule packs, parsed while the parent gets its job ready (started ahead only). */
let builtinPacks: Promise<LoadedPacks> | undefined;
if (ahead) {
  // Loaded now, while the parent gets its job ready: the first read finds them loaded. Failing
  // here changes nothing: the read loads (or fails) the same way later.
  void import("../sources/journal.js").catch(() => undefined);
  void import("./redact.js").catch(() => undefined);
  void import("../journal/sdjournal.js").then(({ loadSdJournal }) => loadSdJournal()).catch(() => undefined);
  builtinPacks = import("../logrules/pack.js").then(({ BUILTIN_PACK_DIR, loadPacks }) =>
    loadPacks([BUILTIN_PACK_DIR]),
  );
  builtinPacks.catch(() => undefined);
}
const { jobs, window, mask } = ahead
  ? ((await nextMessage()) as { job: WorkerJob }).job
  : (workerData as WorkerJob);
// What masking and compressing take, loading between the pass's batches of entries.
const maskingModules = mask ? Promise.all([import("./redact.js"), import("./gzip.js")]) : undefined;
// Awaited after the pass: should it fail, the worker fails, and the excerpts are masked by the caller.
maskingModules?.catch(() => undefined);
const shared = window ? await readWindow(window, undefined, packsFor(window)) : undefined;

/**
 * The built-in packs parsed ahead, when they are all the job's packs; else undefined, and
 * readWindow loads the job's packs itself (--log-rules directories, or a worker not started ahead).
 */
function packsFor(job: WindowJob): Promise<LoadedPacks> | undefined {
  return (job.tally?.ruleDirs ?? []).length === 0 ? builtinPacks : undefined;
}
if (window?.tally) parentPort?.postMessage({ facts: shared?.facts ?? null });
// Every excerpt as read first (the steps go on with them), then each masked (must-gather needs
// that only when it lays the bundle out).
const read: [string, Excerpt][] = [];
for (const [name, job] of jobs) {
  const excerpt: Excerpt = shared?.excerpts.get(name) ?? (await readExcerpt(job));
  parentPort?.postMessage({ name, excerpt });
  read.push([name, excerpt]);
}
if (maskingModules) {
  const [{ Redactor }, { gzipMember }] = await maskingModules;
  const compressing: Promise<void>[] = [];
  for (const [name, excerpt] of read) {
    let masked: MaskedExcerpt | null = null;
    if (!excerpt.error) {
      const redactor = new Redactor({ obfuscate: false });
      const bytes = Buffer.from(redactor.text(excerpt.text, name));
      masked = {
        bytes,
        sha256: createHash("sha256").update(bytes).digest("hex"),
        counts: redactor.countsFor(name),
      };
      // Compressed in the thread pool while the next is masked and the main thread lays the
      // bundle out, on whichever core is free.
      // Failing, it sends none: the archive compresses the bytes itself.
      compressing.push(
        gzipMember(bytes).then(
          (gzip) => {
            const whole = gzip.byteOffset === 0 && gzip.byteLength === gzip.buffer.byteLength;
            parentPort?.postMessage({ name, gzip }, whole ? [gzip.buffer as ArrayBuffer] : []);
          },
          () => undefined,
        ),
      );
    }
    parentPort?.postMessage({ name, masked }); // a copy: the bytes are being compressed
  }
  await Promise.all(compressing);
}
parentPort?.close();
