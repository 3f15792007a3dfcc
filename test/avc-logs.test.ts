import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readAuditAvc, type StepInputs } from "../collector/bundle/steps.js";
import { Host } from "../collector/host/host.js";
import { AUDIT_TAIL_BYTES, type AvcFacts, auditLogTail, avcSource } from "../collector/sources/avc.js";

const MiB = 1024 * 1024;
let serial = 100;

/** One AVC record of a container process denied reading a store file, told apart by its comm. */
function avc(comm: string): string {
  serial += 1;
  return `node=worker-0 type=AVC msg=audit(1763884800.123:${serial}): avc:  denied  { read execute } for  pid=7 comm="${comm}" path="/usr/lib64/libc.so.6" dev="loop5" ino=${serial} scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:default_t:s0 tclass=file permissive=0`;
}

/** Lines without "avc:" that bring a log to `bytes`, each ending in a newline. */
function filler(bytes: number): string {
  const line = "type=SYSCALL msg=audit(1763884800.123:1): arch=c000003e syscall=9 success=no\n";
  const whole = line.repeat(Math.floor(bytes / line.length));
  const rest = bytes - whole.length;
  return rest === 0 ? whole : `${whole}${"#".repeat(rest - 1)}\n`;
}

/**
 * An audit log of `size` bytes whose last `tail` bytes begin `inside` bytes into the line of
 * `cutComm`: a read of those bytes starts inside that record, after its node= and type= prefix.
 */
function cutLog(size: number, tail: number, cutComm: string, lastComm: string, inside = 20): string {
  const cutLine = `${avc(cutComm)}\n`;
  const last = `${avc(lastComm)}\n`;
  const before = size - tail - inside;
  const after = size - before - cutLine.length - last.length;
  const text = filler(before) + cutLine + filler(after) + last;
  expect(Buffer.byteLength(text)).toBe(size);
  return text;
}

const roots: string[] = [];
afterEach(async () => {
  for (const root of roots.splice(0)) await rm(root, { recursive: true, force: true });
});

async function hostWith(files: Record<string, string | null>): Promise<Host> {
  const root = await mkdtemp(path.join(os.tmpdir(), "avc-logs-"));
  roots.push(root);
  await mkdir(path.join(root, "var/log/audit"), { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    const local = path.join(root, "var/log/audit", name);
    if (text === null) await mkdir(local);
    else await writeFile(local, text);
  }
  return new Host({ root });
}

async function avcFacts(host: Host): Promise<AvcFacts> {
  const context = { host, options: {} } as unknown as Parameters<typeof avcSource.collect>[0];
  return (await avcSource.collect(context)) as AvcFacts;
}

const comms = (facts: AvcFacts) => facts.storageDenials.flatMap((g) => g.samples.map((s) => s.comm)).sort();
const inputs = (host: Host) => ({ host, sinceMs: 0, itemBytes: 64 * MiB }) as unknown as StepInputs;

describe("auditd's logs, read once from their end", () => {
  it("leaves out the record a cut read begins inside, in the avc source and in logs/audit-avc.log", async () => {
    const host = await hostWith({
      "audit.log": cutLog(AUDIT_TAIL_BYTES + 4096, AUDIT_TAIL_BYTES, "partial", "whole"),
    });
    const facts = await avcFacts(host);
    expect(facts.auditLogs).toEqual([
      { path: "/var/log/audit/audit.log", bytesRead: AUDIT_TAIL_BYTES, truncated: true },
    ]);
    expect(comms(facts)).toEqual(["whole"]);

    const gathered = await readAuditAvc(inputs(host));
    expect(gathered.found).toBe(true);
    expect(gathered.cut).toBe(true);
    expect(gathered.text).not.toContain("partial");
    expect(gathered.text.split("\n").filter((l) => l.includes("avc:"))).toHaveLength(1);
    expect(gathered.text).toContain('comm="whole"');
    // One read per file and run, whoever asks first.
    const file = "/var/log/audit/audit.log";
    expect(auditLogTail(host, file)).toBe(auditLogTail(host, file));
    expect((await auditLogTail(host, file))?.bytes).toBe(AUDIT_TAIL_BYTES);
  });

  it("parses only what is left of the source's budget of a log must-gather takes whole", async () => {
    const second = `${filler(4 * MiB - 200)}${avc("second")}\n`;
    // Of the source's 16 MiB, 8 MiB go to audit.log and about 4 to audit.log.1: what is left
    // of audit.log.2 (6 MiB, read whole by must-gather) begins inside the record of "sliced".
    const left = 16 * MiB - AUDIT_TAIL_BYTES - Buffer.byteLength(second);
    const host = await hostWith({
      "audit.log": cutLog(AUDIT_TAIL_BYTES + 4096, AUDIT_TAIL_BYTES, "first-cut", "first"),
      "audit.log.1": second,
      "audit.log.2": cutLog(6 * MiB, left, "sliced", "third"),
      "audit.log.3": `${avc("beyond-budget")}\n`,
    });
    const facts = await avcFacts(host);
    expect(facts.auditLogs.map((l) => [l.path, l.truncated])).toEqual([
      ["/var/log/audit/audit.log", true],
      ["/var/log/audit/audit.log.1", false],
      ["/var/log/audit/audit.log.2", true],
    ]);
    expect(facts.auditLogs.reduce((sum, l) => sum + l.bytesRead, 0)).toBe(16 * MiB);
    expect(comms(facts)).toEqual(["first", "second", "third"]);

    // must-gather reads every file within AUDIT_TAIL_BYTES: audit.log.2 whole, "sliced" too.
    const gathered = await readAuditAvc(inputs(host));
    expect(gathered.text).not.toContain("first-cut");
    for (const comm of ["first", "second", "sliced", "third", "beyond-budget"])
      expect(gathered.text).toContain(`comm="${comm}"`);
  });

  it("skips an audit.log that is a directory, in the source and in must-gather", async () => {
    const host = await hostWith({ "audit.log": null, "audit.log.1": `${avc("rotated")}\n` });
    const facts = await avcFacts(host);
    expect(facts.auditLogs.map((l) => l.path)).toEqual(["/var/log/audit/audit.log.1"]);
    expect(comms(facts)).toEqual(["rotated"]);
    const gathered = await readAuditAvc(inputs(host));
    expect(gathered.found).toBe(true);
    expect(gathered.text).toBe(`# /var/log/audit/audit.log.1\n${gathered.text.split("\n")[1]}\n`);
    expect(gathered.text).toContain('comm="rotated"');

    const alone = await hostWith({ "audit.log": null });
    expect((await avcFacts(alone)).auditLogs).toEqual([]);
    expect(await readAuditAvc(inputs(alone))).toEqual({ found: false, cut: false, text: "" });
  });
});
