import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect, it } from "vitest";
import { collect } from "../collector/collect.js";
import { Host } from "../collector/host/host.js";
import type { Snapshot } from "../collector/snapshot.js";
import { type JournalFacts, journalSource } from "../collector/sources/journal.js";
import { Absent, collectOptions } from "../collector/sources/source.js";
import { journalEntry, MACHINE_ID, writeJournalFile } from "./support/journal.js";
import { requireParts } from "./support/requirements.js";

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

const journalReady = requireParts("the journal source's own read", ["journal-remote"]);

it.skipIf(!journalReady)(
  "reads the journal itself when must-gather's shared pass has not answered within half its deadline",
  async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "imagefs-collect-"));
    try {
      await writeJournalFile(
        path.join(root, `var/log/journal/${MACHINE_ID}/system.journal`),
        [
          journalEntry(new Date(Date.now() - 60_000), {
            _SYSTEMD_UNIT: "stargz-store.service",
            MESSAGE: '{"level":"fatal","msg":"failed to load config file","error":"no such file"}',
          }),
        ],
        root,
      );
      const host = new Host({ root });
      // A pass that never answers; the source's deadline shortened so that half of it is 200 ms.
      const options = collectOptions({ journalFacts: new Promise(() => {}) });
      const source = { ...journalSource, deadlineMs: 400 };
      const facts = await source.collect({
        host,
        options,
        result: () => Promise.reject(new Error("unused")),
      });
      expect(facts).not.toBeInstanceOf(Absent);
      const { read, counts } = facts as JournalFacts;
      expect(read.delivered).toBe(1);
      expect(counts.map((c) => [c.unit, c.reason])).toEqual([["stargz-store.service", "FatalStartup"]]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  },
);
