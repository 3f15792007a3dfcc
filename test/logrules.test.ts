import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JournalEntry } from "../collector/journal/types.js";
import { MAX_TIMELINE_HOURS, ReasonCounter } from "../collector/logrules/counter.js";
import { linesContaining } from "../collector/logrules/lines.js";
import { BUILTIN_PACK_DIR, loadPacks } from "../collector/logrules/pack.js";

let when = Date.UTC(2026, 10, 23, 8) * 1000;
function entry(fields: Record<string, string>): JournalEntry {
  when += 1_000_000;
  return { cursor: `c${when}`, realtimeUsec: when, fields };
}

describe("log rule packs", () => {
  let userDir: string;
  beforeAll(async () => {
    userDir = await mkdtemp(path.join(os.tmpdir(), "imagefs-packs-"));
  });
  afterAll(async () => {
    await rm(userDir, { recursive: true, force: true });
  });

  it("loads every built-in pack without errors", async () => {
    const { packs, errors } = await loadPacks([BUILTIN_PACK_DIR]);
    expect(errors).toEqual([]);
    expect(packs.map((p) => p.name)).toContain("selinux-relabel");
  });

  it("classifies relabel failures by reason, per unit, with first/last seen and the latest example", async () => {
    const { packs } = await loadPacks([BUILTIN_PACK_DIR]);
    const counter = new ReasonCounter(packs);
    const restorecon = (message: string) => entry({ SYSLOG_IDENTIFIER: "restorecon", MESSAGE: message });
    counter.add(
      restorecon("restorecon: Could not set context for /mnt/nfs/images/overlay:  Operation not supported"),
    );
    counter.add(
      restorecon(
        "restorecon: Could not set context for /mnt/nfs/images/overlay-images:  Operation not supported",
      ),
    );
    counter.add(restorecon("Read only filesystem, relabel not possible: /var/lib/images"));
    counter.add(
      entry({
        _SYSTEMD_UNIT: "crio.service",
        MESSAGE:
          "Error creating container: relabel failed /var/lib/data: lsetxattr /var/lib/data: permission denied",
      }),
    );
    counter.add(
      entry({
        SYSLOG_IDENTIFIER: "semanage",
        MESSAGE:
          "ValueError: File spec /var/lib/images/x conflicts with equivalency rule '/var/lib/images /var/lib/containers/storage'",
      }),
    );
    expect(
      counter.add(
        entry({ SYSLOG_IDENTIFIER: "restorecon", MESSAGE: "Relabeled /var/lib/images from a to b" }),
      ),
    ).toBe(false);
    expect(
      counter.add(
        entry({ SYSLOG_IDENTIFIER: "sshd", MESSAGE: "Could not set context for x: Operation not supported" }),
      ),
    ).toBe(false);

    const counts = counter.counts();
    expect(counts.map((c) => `${c.unit} ${c.reason} ${c.count}`)).toEqual([
      "restorecon RelabelNotSupported 2",
      "semanage EquivalenceConflict 1",
      "crio.service RelabelPermissionDenied 1",
      "restorecon RelabelReadOnly 1",
    ]);
    expect(counts[0]?.example).toContain("overlay-images");
    expect(counts[0]!.firstSeen < counts[0]!.lastSeen).toBe(true);
  });

  it("counts each reason per hour, all units together, keeping the newest week", async () => {
    const { packs } = await loadPacks([BUILTIN_PACK_DIR]);
    const counter = new ReasonCounter(packs);
    const at = (hour: number, minute: number, fields: Record<string, string>): JournalEntry => ({
      cursor: `t${hour}-${minute}`,
      realtimeUsec: (Date.UTC(2026, 10, 1) + hour * 3600_000 + minute * 60_000) * 1000,
      fields,
    });
    const readOnly = {
      SYSLOG_IDENTIFIER: "restorecon",
      MESSAGE: "Read only filesystem, relabel not possible: /x",
    };
    counter.add(at(0, 5, readOnly));
    counter.add(at(0, 59, { ...readOnly, SYSLOG_IDENTIFIER: "setfiles" }));
    counter.add(at(2, 0, readOnly));
    counter.add(
      at(1, 30, {
        _SYSTEMD_UNIT: "crio.service",
        MESSAGE: "relabel failed /d: lsetxattr /d: permission denied",
      }),
    );
    expect(counter.timeline()).toEqual([
      {
        pack: "selinux-relabel",
        reason: "RelabelReadOnly",
        hours: [
          { start: "2026-11-01T00:00:00.000Z", count: 2 },
          { start: "2026-11-01T02:00:00.000Z", count: 1 },
        ],
        dropped: 0,
      },
      {
        pack: "selinux-relabel",
        reason: "RelabelPermissionDenied",
        hours: [{ start: "2026-11-01T01:00:00.000Z", count: 1 }],
        dropped: 0,
      },
    ]);
    for (let hour = 3; hour < MAX_TIMELINE_HOURS + 5; hour += 1) counter.add(at(hour, 0, readOnly));
    const [series] = counter.timeline();
    expect(series!.hours).toHaveLength(MAX_TIMELINE_HOURS);
    expect(series!.hours[0]!.start).toBe(new Date(Date.UTC(2026, 10, 1) + 5 * 3600_000).toISOString());
    // hours 0 (2 entries), 2, 3 and 4 fell off the front.
    expect(series!.dropped).toBe(5);
  });

  it("lets a user pack replace a built-in one of the same name, and add new ones", async () => {
    await writeFile(
      path.join(userDir, "relabel.yaml"),
      "name: selinux-relabel\ndescription: mine\nselect:\n  - SYSLOG_IDENTIFIER: restorecon\nrules:\n  - reason: Anything\n    match: '.'\n",
    );
    await writeFile(
      path.join(userDir, "custom.yml"),
      "name: site\nselect:\n  - _SYSTEMD_UNIT: [my.service]\nrules:\n  - reason: DiskGone\n    field: MESSAGE\n    match: 'No such device'\n",
    );
    const { packs, errors } = await loadPacks([BUILTIN_PACK_DIR, userDir]);
    expect(errors).toEqual([]);
    expect(packs.find((p) => p.name === "selinux-relabel")?.description).toBe("mine");
    const counter = new ReasonCounter(packs);
    counter.add(entry({ _SYSTEMD_UNIT: "my.service", MESSAGE: "mount: No such device" }));
    expect(counter.counts().map((c) => c.reason)).toEqual(["DiskGone"]);
  });

  it("reports a broken pack with its file and why, and keeps the others", async () => {
    const broken = await mkdtemp(path.join(os.tmpdir(), "imagefs-broken-"));
    try {
      await writeFile(path.join(broken, "a-syntax.yaml"), "name: x\nrules: [\n");
      await writeFile(
        path.join(broken, "b-regex.yaml"),
        "name: y\nselect:\n  - A: b\nrules:\n  - reason: Bad\n    match: '(unclosed'\n",
      );
      await writeFile(
        path.join(broken, "c-key.yaml"),
        "name: z\nselect:\n  - A: b\nrules:\n  - reason: Fine\n    match: x\n    severity: high\n",
      );
      await writeFile(
        path.join(broken, "d-ok.yaml"),
        "name: ok\nselect:\n  - A: b\nrules:\n  - reason: Fine\n    match: x\n",
      );
      const { packs, errors } = await loadPacks([broken]);
      expect(packs.map((p) => p.name)).toEqual(["ok"]);
      expect(errors.map((e) => path.basename(e.file))).toEqual([
        "a-syntax.yaml",
        "b-regex.yaml",
        "c-key.yaml",
      ]);
      expect(errors[1]?.message).toContain("rules[0].match is not a valid regular expression");
      expect(errors[2]?.message).toBe('rules[0]: unknown key "severity"');
    } finally {
      await rm(broken, { recursive: true, force: true });
    }
  });
});

describe("linesContaining", () => {
  const split = (text: string, needles: string[], skipFirst: boolean) => {
    const lines = text.split("\n");
    if (skipFirst) lines.shift();
    return lines.filter((line) => needles.some((needle) => line.includes(needle)));
  };

  it("gives the lines split-and-filter gives, in order, each once", () => {
    const pieces = ["a", "b", "\n", "ab", "AVC", "avc:", "\n\n", "x"];
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    const needleSets = [["ab"], ["AVC", "avc:"], ["b", "a"], ["avc:", "AVC", "b"], ["\u00e9"]];
    for (let k = 0; k < 5000; k += 1) {
      let text = "";
      for (let i = next() % 14; i > 0; i -= 1) text += pieces[next() % pieces.length];
      const needles = needleSets[k % needleSets.length]!;
      for (const skipFirst of [false, true])
        expect(
          linesContaining(text, needles, skipFirst),
          JSON.stringify({ text, needles, skipFirst }),
        ).toEqual(split(text, needles, skipFirst));
    }
  });

  it("refuses a needle that is empty or spans lines", () => {
    expect(() => linesContaining("a\nb", [""])).toThrow(TypeError);
    expect(() => linesContaining("a\nb", ["a\nb"])).toThrow(TypeError);
  });
});
