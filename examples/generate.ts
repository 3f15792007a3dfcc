/**
 * Writes examples/<name>.json, the snapshot `imagefs-doctor collect --out` takes of each scenario
 * in test/support/examples.ts, and examples/bundles/<name>.tar.gz, the support bundle
 * `imagefs-doctor must-gather -o` writes of it; both built on real mounts. Needs root; run
 * `npm run examples [name...]`. The files are the tool's own output and are never edited by hand.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { EXAMPLES } from "../test/support/examples.js";
import { HostTree } from "../test/support/host-tree.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(HERE, "..", "dist", "collector", "cli.js");

async function writeExample(name: string, build: (tree: HostTree) => Promise<void>): Promise<void> {
  const tree = await HostTree.create();
  try {
    await build(tree);
    const host = ["--host-root", tree.root, "--proc-root", tree.procRoot];
    await execa(process.execPath, [CLI, "collect", ...host, "--out", path.join(HERE, `${name}.json`)], {
      stdio: "inherit",
    });
    await mkdir(path.join(HERE, "bundles"), { recursive: true });
    await execa(
      process.execPath,
      [CLI, "must-gather", ...host, "-o", path.join(HERE, "bundles", `${name}.tar.gz`)],
      { stdio: "inherit" },
    );
  } finally {
    await tree.cleanup();
  }
}

if (process.getuid?.() !== 0) {
  process.stderr.write("examples/generate.ts builds real mounts and must run as root\n");
  process.exit(2);
}
await execa("npm", ["run", "build", "--silent"], { stdio: "inherit" });
const only = process.argv.slice(2);
for (const example of EXAMPLES) {
  if (only.length > 0 && !only.includes(example.name)) continue;
  await writeExample(example.name, example.build);
}
