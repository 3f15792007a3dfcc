import path from "node:path";
import { execa } from "execa";
import { VERSION } from "../collector/version.js";
import { interleave, median, ratioLine, seriesTable } from "./stats.js";

const WARMUP = 5;
const RUNS = 30;
const TARGET = 1.5;

/**
 * Cold start of `imagefs-doctor --version` against a Node that does nothing (`node -e 0`):
 * the same machine, the same run, interleaved, both spawned the same way, so the spawn cost
 * and the state of the page cache are shared and the ratio shows what the CLI adds.
 */
export async function coldStart(repo: string): Promise<void> {
  const cli = path.join(repo, "dist/collector/cli.js");
  const node = process.execPath;
  const run = async (args: string[], expect: string) => {
    const child = await execa(node, args, { cwd: repo, stdin: "ignore" });
    if (child.stdout.trim() !== expect) throw new Error(`node ${args.join(" ")} printed ${child.stdout}`);
  };
  const series = await interleave(
    [
      { label: `node ${path.relative(repo, cli)} --version`, run: () => run([cli, "--version"], VERSION) },
      { label: "node -e 0", run: () => run(["-e", "0"], "") },
    ],
    { warmup: WARMUP, runs: RUNS },
  );
  console.log(
    `cold start, ${RUNS} interleaved runs each after ${WARMUP} warm-up rounds (node ${process.version})`,
  );
  console.log(seriesTable(series));
  const [cliRuns, bareRuns] = series.map((s) => s.samples) as [number[], number[]];
  console.log(ratioLine("cold-start", median(cliRuns) / median(bareRuns), TARGET));
}
