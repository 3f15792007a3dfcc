import { parentPort, workerData } from "node:worker_threads";
import { type ExcerptJob, readExcerpt } from "./journal-excerpt.js";

/** The worker thread of ExcerptPrefetch: reads each excerpt in turn and sends it back. */
for (const [name, job] of (workerData as { jobs: [string, ExcerptJob][] }).jobs) {
  parentPort?.postMessage({ name, excerpt: await readExcerpt(job) });
}
