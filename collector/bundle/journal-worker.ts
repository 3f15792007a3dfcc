import { parentPort, workerData } from "node:worker_threads";
import { type ExcerptJob, readExcerpt, readWindow, type WindowJob } from "./journal-excerpt.js";

/**
 * The worker thread of ExcerptPrefetch: one shared pass for the excerpts and the journal source's
 * facts when asked for (readWindow), then each excerpt the pass could not stand for, read in turn.
 */
const { jobs, window } = workerData as { jobs: [string, ExcerptJob][]; window?: WindowJob };
const shared = window ? await readWindow(window) : undefined;
if (window?.tally) parentPort?.postMessage({ facts: shared?.facts ?? null });
for (const [name, job] of jobs) {
  parentPort?.postMessage({ name, excerpt: shared?.excerpts.get(name) ?? (await readExcerpt(job)) });
}
