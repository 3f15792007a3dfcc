import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { buildStore } from "./layer-inspect.js";
import { requireRoot, withScratch } from "./scratch.js";
import { interleave, median, ms, percentile, ratioLine, seriesTable } from "./stats.js";

const MOUNTS = 50;
const SCRAPES = 300;
/** The issue's target, in decimal megabytes. */
const RSS_TARGET_MB = 100;
/** The environment deploy/kubernetes/daemonset.yaml gives the container; keep the two in step. */
export const SERVE_ENV = { NODE_OPTIONS: "--max-semi-space-size=1 --expose-gc", MALLOC_ARENA_MAX: "2" };

/** A host root with 50 tmpfs stores and a graphroot of 5,000 layers, served by `imagefs-doctor serve`. */
async function buildTree(hostRoot: string, procRoot: string, mounted: string[]): Promise<void> {
  await mkdir(procRoot, { recursive: true });
  await symlink("/proc/self", path.join(procRoot, "1"));
  buildStore({ hostRoot });
  const stores = Array.from({ length: MOUNTS }, (_, i) => `/var/lib/stores/s${String(i).padStart(2, "0")}`);
  for (const store of stores) {
    const local = path.join(hostRoot, store);
    await mkdir(local, { recursive: true });
    await execa("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", local]);
    mounted.push(local);
  }
  await mkdir(path.join(hostRoot, "etc/containers"), { recursive: true });
  await mkdir(path.join(hostRoot, "etc/crio"), { recursive: true });
  await writeFile(
    path.join(hostRoot, "etc/containers/storage.conf"),
    `[storage]\ndriver = "overlay"\n[storage.options]\nadditionalimagestores = [${stores.map((s) => `"${s}"`).join(", ")}]\n`,
  );
}

async function waitFor(url: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${url} never became ready`);
}

async function rssMiB(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = (key: string) =>
    Number(/(\d+) kB/.exec(status.split("\n").find((l) => l.startsWith(key)) ?? "")?.[1] ?? 0);
  return { rss: kib("VmRSS:") / 1024, peak: kib("VmHWM:") / 1024 };
}

/** Collection cycles the memory figures span. */
const SOAK_CYCLES = 10;

async function collections(url: string): Promise<number> {
  const text = await (await fetch(url)).text();
  return Number(/^imagefs_collections_total\{[^}]*\} (\d+)/m.exec(text)?.[1] ?? Number.NaN);
}

/** Scrapes both exporters every 50 ms until `serve` has finished SOAK_CYCLES more cycles (at most 5 minutes). */
async function soak(ours: string, theirs: string): Promise<number> {
  const start = await collections(ours);
  const end = Date.now() + 300_000;
  let done = 0;
  while (done < SOAK_CYCLES && Date.now() < end) {
    await Promise.all([
      fetch(theirs).then((r) => r.text()),
      new Promise((resolve) => setTimeout(resolve, 50)),
    ]);
    done = (await collections(ours)) - start;
  }
  return done;
}

export async function serveScrape(repo: string): Promise<void> {
  requireRoot("serve-scrape", `mounts ${MOUNTS} tmpfs`);
  const children: ResultPromise[] = [];
  await withScratch(
    async (scratch) => {
      const hostRoot = path.join(scratch.dir, "host");
      const procRoot = path.join(scratch.dir, "proc");
      await mkdir(hostRoot, { recursive: true });
      await execa("mount", ["-t", "tmpfs", "-o", "size=512m,nr_inodes=1m", "tmpfs", hostRoot]);
      scratch.mounted.push(hostRoot);
      await buildTree(hostRoot, procRoot, scratch.mounted);
      const cli = path.join(repo, "dist/collector/cli.js");
      // Started the way the DaemonSet image starts it (deploy/Containerfile): a young generation
      // of 1 MiB semi-spaces and two malloc arenas, which is what keeps it under the RSS target.
      const ours = execa(
        cli,
        [
          "serve",
          "--listen",
          "127.0.0.1:19817",
          "--interval",
          "2",
          "--host-root",
          hostRoot,
          "--proc-root",
          procRoot,
        ],
        { reject: false, env: SERVE_ENV },
      );
      const theirs = execa("prometheus-node-exporter", ["--web.listen-address=127.0.0.1:19100"], {
        reject: false,
      });
      children.push(ours, theirs);
      await waitFor("http://127.0.0.1:19817/readyz");
      await waitFor("http://127.0.0.1:19100/metrics");
      const scrape = (url: string) => async () => {
        const response = await fetch(url);
        await response.text();
      };
      const series = await interleave(
        [
          { label: "imagefs-doctor serve /metrics", run: scrape("http://127.0.0.1:19817/metrics") },
          { label: "prometheus-node-exporter /metrics", run: scrape("http://127.0.0.1:19100/metrics") },
        ],
        { warmup: 10, runs: SCRAPES },
      );
      console.log(`scrape latency, ${SCRAPES} interleaved scrapes each after 10 warm-up rounds`);
      console.log(seriesTable(series));
      for (const s of series)
        console.log(`${s.label}: p50 ${ms(median(s.samples))}, p99 ${ms(percentile(s.samples, 99))}`);
      // The peak comes with collection cycles, not scrapes: keep scraping through SOAK_CYCLES of them.
      const cycles = await soak("http://127.0.0.1:19817/metrics", "http://127.0.0.1:19100/metrics");
      console.log(`then ${cycles} collection cycles with a scrape of each every 50 ms`);
      const ourRss = await rssMiB(ours.pid!);
      const theirRss = await rssMiB(theirs.pid!);
      console.log(
        `resident memory: imagefs-doctor serve ${ourRss.rss.toFixed(1)} MiB (peak ${ourRss.peak.toFixed(1)} MiB), node_exporter ${theirRss.rss.toFixed(1)} MiB (peak ${theirRss.peak.toFixed(1)} MiB)`,
      );
      const peakMB = (ourRss.peak * 2 ** 20) / 1e6;
      console.log(
        `RSS target: peak <= ${RSS_TARGET_MB} MB (${((RSS_TARGET_MB * 1e6) / 2 ** 20).toFixed(1)} MiB): ${peakMB.toFixed(1)} MB, ${peakMB <= RSS_TARGET_MB ? "met" : "not met"}`,
      );
      const [oursP50, theirsP50] = series.map((s) => median(s.samples));
      console.log(ratioLine("serve-scrape", oursP50! / theirsP50!, 1.0));
    },
    () => {
      for (const child of children) child.kill("SIGKILL");
      return true;
    },
  );
  await Promise.all(children);
}
