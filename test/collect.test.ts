import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect, it } from "vitest";
import { collect } from "../collector/collect.js";
import type { Snapshot } from "../collector/snapshot.js";

it("hands over the snapshot so far once every source but the pending ones is in, then the whole", async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), "imagefs-collect-"));
  try {
    let partial: Snapshot | undefined;
    const whole = await collect({
      hostRoot: root,
      nodeName: "worker-0",
      early: {
        pending: ["journal"],
        ready: (snapshot) => {
          partial = snapshot;
        },
      },
    });
    expect(partial?.sources.journal).toEqual({
      status: "absent",
      durationMs: 0,
      reason: "still collecting",
      facts: null,
    });
    expect(whole.sources.journal).toMatchObject({
      status: "absent",
      reason: expect.stringContaining("no journal"),
    });
    // Everything else is the same result, in the same order.
    const { journal: _, ...rest } = whole.sources;
    const { journal: __, ...partialRest } = partial!.sources;
    expect(partialRest).toEqual(rest);
    expect(Object.keys(partial!.sources)).toEqual(Object.keys(whole.sources));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
