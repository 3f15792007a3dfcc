import { parentPort, workerData } from "node:worker_threads";
import { type Excerpt, type ExcerptJob, readExcerpt, readWindow, type WindowJob } from "./journal-excerpt.js";

/**
 * The worker thread of ExcerptPrefetch: one shared pass for the excerpts and the journal source's
 * facts when asked for (readWindow), then each excerpt the pass could not stand for, read in turn;
 * each excerpt masked too when asked for.
 */
const { jobs, window, mask } = workerData as {
  jobs: [string, ExcerptJob][];
  window?: WindowJob;
  mask?: boolean;
};
const { Redactor } = mask ? await import("./redact.js") : { Redactor: undefined };
const shared = window ? await readWindow(window) : undefined;
if (window?.tally) parentPort?.postMessage({ facts: shared?.facts ?? null });
for (const [name, job] of jobs) {
  const excerpt: Excerpt = shared?.excerpts.get(name) ?? (await readExcerpt(job));
  if (Redactor && !excerpt.error) {
    const redactor = new Redactor({ obfuscate: false });
    excerpt.masked = { text: redactor.text(excerpt.text, name), counts: redactor.countsFor(name) };
  }
  parentPort?.postMessage({ name, excerpt });
}
