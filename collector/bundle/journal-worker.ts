import { parentPort, workerData } from "node:worker_threads";
import {
  type Excerpt,
  type ExcerptJob,
  type LoadedPacks,
  readExcerpt,
  readWindow,
  type WindowJob,
} from "./journal-excerpt.js";

/**
 * The worker thread of ExcerptPrefetch: one shared pass for the excerpts and the journal source's
 * facts when asked for (readWindow), then each excerpt the pass could not stand for, read in turn;
 * each excerpt masked too when asked for.
 */
const { jobs, window, mask, packsFollow } = workerData as {
  jobs: [string, ExcerptJob][];
  window?: WindowJob;
  mask?: boolean;
  /** The parent sends the packs ({ packs: LoadedPacks | null }) once it has loaded them. */
  packsFollow?: boolean;
};
const packs = packsFollow
  ? new Promise<LoadedPacks | undefined>((resolve) =>
      parentPort?.once("message", (message: { packs: LoadedPacks | null }) =>
        resolve(message.packs ?? undefined),
      ),
    )
  : undefined;
const shared = window
  ? await readWindow(
      window,
      undefined,
      packs?.then((loaded) => loaded ?? loadOwnPacks(window)),
    )
  : undefined;

async function loadOwnPacks(job: WindowJob): Promise<LoadedPacks> {
  const { BUILTIN_PACK_DIR, loadPacks } = await import("../logrules/pack.js");
  return loadPacks([BUILTIN_PACK_DIR, ...(job.tally?.ruleDirs ?? [])]);
}
if (window?.tally) parentPort?.postMessage({ facts: shared?.facts ?? null });
const { Redactor } = mask ? await import("./redact.js") : { Redactor: undefined };
for (const [name, job] of jobs) {
  const excerpt: Excerpt = shared?.excerpts.get(name) ?? (await readExcerpt(job));
  if (Redactor && !excerpt.error) {
    const redactor = new Redactor({ obfuscate: false });
    excerpt.masked = { text: redactor.text(excerpt.text, name), counts: redactor.countsFor(name) };
  }
  parentPort?.postMessage({ name, excerpt });
}
