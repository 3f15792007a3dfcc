import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execaSync } from "execa";

/** A benchmark's scratch directory and what it mounted there, unmounted whatever happens. */
export interface Scratch {
  dir: string;
  /** Mount points to drop (lazily) at the end, in the order they were mounted. */
  mounted: string[];
}

/** Benchmarks that mount things must run as root; say so with the command to use. */
export function requireRoot(name: string, why: string): void {
  if (process.getuid?.() !== 0)
    throw new Error(`${name} ${why} and must run as root (try: sudo npm run bench -- ${name})`);
}

/** Lazy unmounts, last mounted first; returns the mount points that could not be dropped. */
function unmountAll(scratch: Scratch): string[] {
  const targets = scratch.mounted.splice(0).reverse();
  return targets.filter((target) => execaSync("umount", ["-l", target], { reject: false }).failed);
}

/**
 * Runs `body` in a fresh scratch directory and always cleans up: on return, on error, and on
 * SIGINT/SIGTERM. `teardown` stops what the benchmark started (a FUSE server) and returns false
 * when something could not be removed; the directory is then kept and named.
 */
export async function withScratch(
  body: (scratch: Scratch) => Promise<void>,
  teardown: (scratch: Scratch) => boolean = () => true,
): Promise<void> {
  const scratch: Scratch = { dir: await mkdtemp(path.join(os.tmpdir(), "imagefs-bench-")), mounted: [] };
  /** What could not be removed; empty when everything is gone. */
  const clean = (): string[] => {
    const stopped = teardown(scratch);
    const failed = unmountAll(scratch);
    return stopped ? failed : [...failed, "(what the benchmark started)"];
  };
  const onSignal = () => {
    if (clean().length === 0) rmSync(scratch.dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await body(scratch);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    const failed = clean();
    if (failed.length > 0) console.error(`still mounted, scratch ${scratch.dir} kept: ${failed.join(" ")}`);
    else await rm(scratch.dir, { recursive: true, force: true });
  }
}
