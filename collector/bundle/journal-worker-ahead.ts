import { Worker } from "node:worker_threads";

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
    await this.worker.terminate();
  }
}
