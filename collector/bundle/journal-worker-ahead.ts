import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { TIMED_OUT, withinMs } from "../deadline.js";

/** How long a journal worker gets to end by itself before it is terminated. */
const STOP_GRACE_MS = 5000;

/**
 * Ends a journal worker: asks it to exit ({ stop: true }), which it does between two steps of its
 * JavaScript, and terminates it only if it has not within the grace time. worker.terminate() alone
 * could land while the thread is loading koffi's native module, whose start-up then throws into a
 * dying thread and aborts the whole process (a must-gather that refused to start at once, for
 * want of disk space, died that way).
 */
export async function endJournalWorker(worker: Worker, exited: boolean): Promise<void> {
  if (exited) return;
  const ended = once(worker, "exit");
  worker.postMessage({ stop: true });
  if ((await withinMs(ended, STOP_GRACE_MS)) === TIMED_OUT) await worker.terminate();
}

/**
 * The journal worker (journal-worker.js) started ahead of its job: the CLI starts it before it
 * loads must-gather, so that the thread boots and loads koffi and libsystemd on the other core
 * meanwhile. ExcerptPrefetch gives it its job as the first message, or starts a worker of its own
 * when this one has already ended (it failed to start): `exited` says so.
 */
export class AheadWorker {
  readonly worker: Worker;
  exited = false;

  constructor() {
    this.worker = new Worker(new URL("./journal-worker.js", import.meta.url), {
      workerData: { ahead: true },
    });
    // A failure to start is noticed through `exited`: ExcerptPrefetch then starts its own.
    this.worker.on("error", () => {});
    this.worker.once("exit", () => {
      this.exited = true;
    });
  }

  /** Ends the thread, whatever it is doing (idempotent). */
  async stop(): Promise<void> {
    await endJournalWorker(this.worker, this.exited);
  }
}
