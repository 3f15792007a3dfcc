/**
 * Benchmark dispatcher: `npm run bench -- <name>` (the npm script builds dist/ first).
 * Without a name it lists the benchmarks; an unknown name exits 2.
 */
import { fileURLToPath } from "node:url";
import { coldStart } from "./cold-start.js";
import { collectMounts } from "./collect-mounts.js";
import { fuseProbe } from "./fuse-probe.js";
import { journalRead } from "./journal-read.js";
import { labelAudit } from "./label-audit.js";
import { layerInspect } from "./layer-inspect.js";
import { mustGather } from "./must-gather.js";
import { serveScrape } from "./serve-scrape.js";

const BENCHMARKS: Record<string, { about: string; run: (repo: string) => Promise<void> }> = {
  "cold-start": {
    about: "`cli.js --version` start-up against `node -e 0` (target: ratio of medians <= 1.5)",
    run: coldStart,
  },
  "collect-mounts": {
    about: "collect on a host root with 50 tmpfs mounts against `df` on them, as root (target <= 3)",
    run: collectMounts,
  },
  "fuse-probe": {
    about:
      "probeMount stat on a bindfs mount against a bare `node -e` lstat; collect() with the mount stopped, as root (target <= 1.2)",
    run: fuseProbe,
  },
  "journal-read": {
    about:
      "read 500,000 journal entries via the sd-journal bindings against `journalctl -o json` (target <= 1.0)",
    run: journalRead,
  },
  "label-audit": {
    about: "label audit of a 200,000-file imagestore against `getfattr -R`, as root (target <= 0.8)",
    run: labelAudit,
  },
  "serve-scrape": {
    about:
      "scrape latency and memory of `serve` (5,000 layers, 50 mounts) against prometheus-node-exporter, as root (target: p50 ratio <= 1.0, RSS <= 100 MiB)",
    run: serveScrape,
  },
  "layer-inspect": {
    about:
      "classify 5,000 layers (lazy, partial, full) of 500 images against `find <graphroot>/overlay -maxdepth 2`, as root (target <= 1.5)",
    run: layerInspect,
  },
  "must-gather": {
    about:
      "must-gather bundle against `sos report` (crio, selinux, containers_common, logs) on one node root, as root (target: time ratio <= 0.2, bundle <= 20 MB)",
    run: mustGather,
  },
};

const repo = fileURLToPath(new URL("..", import.meta.url));
const name = process.argv[2];

if (name === undefined) {
  console.log("usage: npm run bench -- <name>\n\nbenchmarks:");
  for (const [key, bench] of Object.entries(BENCHMARKS)) console.log(`  ${key.padEnd(16)} ${bench.about}`);
} else if (!Object.hasOwn(BENCHMARKS, name)) {
  console.error(`unknown benchmark "${name}"; known: ${Object.keys(BENCHMARKS).join(", ")}`);
  process.exitCode = 2;
} else {
  try {
    await BENCHMARKS[name]!.run(repo);
  } catch (error) {
    console.error(`bench ${name} failed: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}
