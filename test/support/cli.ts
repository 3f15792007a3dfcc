import path from "node:path";
import { execa } from "execa";
import type { HostTree } from "./host-tree.js";

/** The built CLI (vitest's global setup builds dist/). */
export const CLI = path.resolve(import.meta.dirname, "../../dist/collector/cli.js");

/** The flags that point a command at a test tree, with deadlines short enough for tests. */
export function treeFlags(tree: HostTree, deadlines: { criMs: number; statMs?: number }): string[] {
  return [
    "--host-root",
    tree.root,
    "--proc-root",
    tree.procRoot,
    "--cri-timeout",
    String(deadlines.criMs),
    ...(deadlines.statMs === undefined ? [] : ["--stat-timeout", String(deadlines.statMs)]),
  ];
}

/**
 * `must-gather` on a tree, its output as bytes, with nothing of this process's environment but a
 * PATH that looks in `bin` (stand-in commands such as a hung crictl) first.
 */
export function mustGather(
  tree: HostTree,
  args: string[],
  options: { bin?: string; statMs?: number; timeoutMs?: number } = {},
) {
  return execa(
    process.execPath,
    [CLI, "must-gather", ...treeFlags(tree, { criMs: 1000, statMs: options.statMs }), ...args],
    {
      reject: false,
      timeout: options.timeoutMs ?? 120_000,
      extendEnv: false,
      env: { PATH: `${options.bin ? `${options.bin}:` : ""}/usr/local/bin:/usr/bin:/bin` },
      encoding: "buffer",
    },
  );
}
