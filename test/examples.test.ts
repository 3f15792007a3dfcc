import { readFile } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { readBundle } from "../collector/bundle/reader.js";
import type { Finding } from "../collector/checks/finding.js";
import { runChecks } from "../collector/checks/registry.js";
import { parseSnapshot } from "../collector/snapshot-file.js";
import { EXAMPLES } from "./support/examples.js";
import { requireParts } from "./support/requirements.js";
import { collectTree, HostTree } from "./support/scenarios.js";

const ready = requireParts("example snapshots", ["root", "loop", "xfs"]);

/** A finding as a line to compare; loop devices get whatever minor number is free, so device numbers are masked. */
function line(f: Finding): string {
  return `${f.severity} ${f.id} ${f.subject ?? ""}`.replace(/\b\d+:\d+\b/g, "<major:minor>");
}

async function committedFindings(name: string): Promise<string[]> {
  const snapshot = parseSnapshot(await readFile(`examples/${name}.json`, "utf8"), name);
  return runChecks(snapshot).map(line);
}

describe.skipIf(!ready)("examples/ are what collect makes of their scenarios today", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  for (const example of EXAMPLES) {
    it(`${example.name}: ${example.description}`, async () => {
      tree = await HostTree.create();
      await example.build(tree);
      const fresh = runChecks(await collectTree(tree)).map(line);
      // A difference means the checks or the scenario changed: run `npm run examples` and commit.
      expect(await committedFindings(example.name)).toEqual(fresh);
    });
  }

  for (const example of EXAMPLES) {
    it(`bundles/${example.name}.tar.gz: diagnose --bundle finds what the scenario gives today`, async () => {
      tree = await HostTree.create();
      await example.build(tree);
      const fresh = runChecks(await collectTree(tree)).map(line);
      const bundle = await readBundle(`examples/bundles/${example.name}.tar.gz`);
      expect(runChecks(bundle.snapshot).map(line)).toEqual(fresh);
    });
  }

  it("gives the demo in the README something to show", async () => {
    const findings = await committedFindings("split-image-misconfigured");
    expect(findings.some((f) => f.startsWith("critical IMAGESTORE_NOT_MOUNTED"))).toBe(true);
  });
});
