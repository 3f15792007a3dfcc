import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip, gzipSync, inflateRawSync } from "node:zlib";
import { execa } from "execa";
import tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeArchiveToFile } from "../collector/bundle/archive.js";
import { gzipMember } from "../collector/bundle/gzip.js";
import { readBundle } from "../collector/bundle/reader.js";
import { requireParts } from "./support/requirements.js";
import {
  HostTree,
  IMAGESTORE,
  splitImageNode,
  startRuntime,
  writeKubeletConfig,
} from "./support/scenarios.js";

/**
 * `diagnose --bundle` through the built CLI, on archives this test writes with tar-stream: a good
 * bundle judges like `diagnose --snapshot` of the same snapshot, and every hostile kind of archive
 * is refused with a message naming the problem, exit status 2, quickly, with nothing written.
 */

const CLI = path.resolve("dist/collector/cli.js");
const EXAMPLE = path.resolve("examples/split-image-misconfigured.json");
/** In every name a hostile archive would make an extractor write, so a leftover is found by name. */
const TOKEN = `bundletest${randomBytes(6).toString("hex")}`;
const TOP = `imagefs-doctor-worker-0-${TOKEN}`;
const VERSION_FILE = "imagefs-doctor\n0.1.0\n";
const MiB = 1024 * 1024;

let work: string;
let snapshotText: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), "imagefs-bundle-test-"));
  snapshotText = await readFile(EXAMPLE, "utf8");
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

interface Run {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the CLI in an empty working directory with its own empty TMPDIR, both checked afterwards. */
async function cli(args: string[]): Promise<Run & { cwd: string; tmp: string }> {
  const cwd = await mkdtemp(path.join(work, "cwd-"));
  const tmp = await mkdtemp(path.join(work, "tmpdir-"));
  const started = Date.now();
  const run = await execa(process.execPath, [CLI, ...args], {
    reject: false,
    timeout: 60_000,
    cwd,
    env: { ...process.env, TMPDIR: tmp, NO_COLOR: "1" },
  });
  return {
    exitCode: run.exitCode,
    stdout: run.stdout,
    stderr: run.stderr,
    ms: Date.now() - started,
    cwd,
    tmp,
  };
}

/** Every path whose name holds TOKEN under `dir` (recursively) or directly in /tmp and /etc. */
async function leftovers(): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.name.includes(TOKEN)) found.push(full);
      if (entry.isDirectory()) await walk(full);
    }
  };
  await walk(work);
  for (const dir of ["/tmp", "/etc", os.tmpdir()]) {
    for (const name of await readdir(dir)) if (name.includes(TOKEN)) found.push(path.join(dir, name));
  }
  return found;
}

/** The hostile case: exit 2, one clear line naming the problem, no report, in time, nothing left. */
async function expectRefused(file: string, message: RegExp, withinMs = 15_000): Promise<string> {
  const run = await cli(["diagnose", "--bundle", file]);
  expect(run.stderr).toMatch(message);
  expect(run.stderr.trim().split("\n")).toHaveLength(1);
  expect(run.stderr).toMatch(/^imagefs-doctor: /);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.exitCode).toBe(2);
  expect(run.stdout).toBe("");
  expect(run.ms).toBeLessThan(withinMs);
  expect(await readdir(run.cwd)).toEqual([]);
  expect(await readdir(run.tmp)).toEqual([]);
  expect(await leftovers()).toEqual([]);
  return run.stderr;
}

interface Item {
  name: string;
  type?: tar.Header["type"];
  body?: string | Buffer;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Bytes of zeros, streamed into the entry rather than held in memory. */
  zeros?: number;
}

/** The files a bundle holds, under TOP (or another top directory). */
function bundleItems(
  options: { top?: string; snapshot?: string | null; version?: string | null } = {},
): Item[] {
  const top = options.top ?? TOP;
  const items: Item[] = [
    { name: `${top}/`, type: "directory" },
    { name: `${top}/timestamp`, body: "2026-11-23T10:38:46Z\n" },
    { name: `${top}/manifest.json`, body: JSON.stringify({ files: ["snapshot.json"] }) },
    { name: `${top}/redactions.json`, body: "[]\n" },
    { name: `${top}/findings.json`, body: "[]\n" },
    { name: `${top}/report.html`, body: "<!doctype html><title>report</title>\n" },
    { name: `${top}/host/`, type: "directory" },
    { name: `${top}/host/etc/containers/storage.conf`, body: '[storage]\ndriver = "overlay"\n' },
    { name: `${top}/journal/crio.log`, body: "Nov 23 10:00:00 worker-0 crio[1]: started\n" },
  ];
  if (options.version !== null) items.push({ name: `${top}/version`, body: options.version ?? VERSION_FILE });
  if (options.snapshot !== null) {
    items.push({ name: `${top}/snapshot.json`, body: options.snapshot ?? snapshotText });
  }
  return items;
}

/** Writes a tar (gzipped unless told) with tar-stream; big entries are streamed, never materialised. */
async function writeArchive(name: string, items: Item[], gzip = true): Promise<string> {
  const file = path.join(work, name);
  const pack = tar.pack();
  const source = pack as unknown as NodeJS.ReadableStream;
  const written = pipeline(
    gzip ? [source, createGzip({ level: 9 }), createWriteStream(file)] : [source, createWriteStream(file)],
  );
  for (const item of items) {
    const { zeros, body, ...header } = item;
    if (zeros !== undefined) {
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry({ ...header, size: zeros }, (error) => (error ? reject(error) : resolve()));
        const chunk = Buffer.alloc(MiB);
        let left = zeros;
        const more = () => {
          while (left > chunk.length) {
            left -= chunk.length;
            if (!sink.write(chunk)) {
              sink.once("drain", more);
              return;
            }
          }
          sink.end(chunk.subarray(0, left));
        };
        more();
      });
    } else {
      await new Promise<void>((resolve, reject) => {
        const done = (error?: Error | null) => (error ? reject(error) : resolve());
        // Links, devices, FIFOs and directories have no body.
        if (header.type !== undefined && header.type !== "file") pack.entry(header, done);
        else pack.entry(header, body ?? "", done);
      });
    }
  }
  pack.finalize();
  await written;
  return file;
}

/** A ustar header built by hand, for what tar-stream will not write (a name that is not UTF-8). */
function ustarHeader(name: Buffer, size: number, typeflag = "0"): Buffer {
  const block = Buffer.alloc(512);
  name.copy(block, 0);
  block.write("0000644\0", 100);
  block.write("0000000\0", 108);
  block.write("0000000\0", 116);
  block.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  block.write("00000000000\0", 136);
  block.write("        ", 148);
  block.write(typeflag, 156);
  block.write("ustar\0", 257);
  block.write("00", 263);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return block;
}

function padded(content: Buffer): Buffer {
  return Buffer.concat([content, Buffer.alloc((512 - (content.length % 512)) % 512)]);
}

/** The entries of a .tar.gz by name (a small bundle, read whole in memory). */
async function entriesOf(file: string): Promise<Map<string, Buffer>> {
  const entries = new Map<string, Buffer>();
  const extract = tar.extract();
  extract.on("entry", (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk) => chunks.push(chunk as Buffer));
    stream.on("end", () => {
      entries.set(header.name, Buffer.concat(chunks));
      next();
    });
  });
  await pipeline(createReadStream(file), createGunzip(), extract as unknown as NodeJS.WritableStream);
  return entries;
}

interface Finding {
  id: string;
  severity: string;
  subject?: string;
}

function judged(stdout: string): string[] {
  const report = JSON.parse(stdout) as { findings: Finding[] };
  return report.findings.map((f) => `${f.severity} ${f.id} ${f.subject ?? ""}`);
}

describe("diagnose --bundle: a good bundle", () => {
  let onSnapshot: Run;
  let onSnapshotText: Run;
  beforeAll(async () => {
    onSnapshot = await cli(["diagnose", "--json", "--snapshot", EXAMPLE, "--fail-on", "never"]);
    onSnapshotText = await cli(["diagnose", "--snapshot", EXAMPLE]);
  });

  it("judges the bundle's snapshot.json like diagnose --snapshot judges the file", async () => {
    const file = await writeArchive("good.tar.gz", bundleItems());
    const json = await cli(["diagnose", "--json", "--bundle", file, "--fail-on", "never"]);
    expect(json.stderr).toBe("");
    expect(json.exitCode).toBe(0);
    expect(judged(json.stdout).length).toBeGreaterThanOrEqual(3);
    expect(judged(json.stdout)).toEqual(judged(onSnapshot.stdout));
    expect(JSON.parse(json.stdout).node).toBe("worker-0");

    // Text: a first line names the bundle; the report below it is the same, and so is --fail-on.
    const text = await cli(["diagnose", "--bundle", file]);
    expect(text.exitCode).toBe(onSnapshotText.exitCode);
    expect(text.exitCode).toBe(1);
    const lines = text.stdout.split("\n");
    const start = lines.findIndex((line) => line.startsWith("imagefs-doctor 0.1.0: node worker-0"));
    expect(start).toBeGreaterThan(0);
    expect(
      lines
        .slice(0, start)
        .map((line) => line.trim())
        .join(" "),
    ).toBe(`bundle: ${file} (${TOP}/), written by imagefs-doctor 0.1.0 at 2026-11-23T10:38:46Z`);
    expect(lines.slice(start).join("\n")).toBe(onSnapshotText.stdout);
    expect(lines.filter((line) => line.length > 80)).toEqual([]);
    expect((await cli(["diagnose", "--bundle", file, "--fail-on", "never"])).exitCode).toBe(0);
    expect(await leftovers()).toEqual([]);
  });

  it("reads a plain .tar the same way", async () => {
    const file = await writeArchive("good.tar", bundleItems(), false);
    const run = await cli(["diagnose", "--json", "--bundle", file, "--fail-on", "never"]);
    expect(run.stderr).toBe("");
    expect(judged(run.stdout)).toEqual(judged(onSnapshot.stdout));
  });

  it("reads a directory bundle: the extracted top directory, must-gather's nodes/<node>/, their parents", async () => {
    const base = await mkdtemp(path.join(work, "dir-"));
    const extracted = path.join(base, "extracted");
    // What oc adm must-gather copies back: must-gather.local.<random>/<image>/nodes/<node>/.
    const local = path.join(base, "must-gather.local.5123");
    const mustGather = path.join(local, "quay-io-imagefs-doctor-must-gather-sha256-0123");
    const top = "imagefs-doctor-worker-0-20261123T103846Z";
    for (const item of bundleItems({ top })) {
      for (const [into, under] of [
        [extracted, top],
        [path.join(mustGather, "nodes", "worker-0"), "."],
      ] as const) {
        const local = path.join(into, under, item.name.slice(top.length + 1));
        if (item.type === "directory") await mkdir(local, { recursive: true });
        else {
          await mkdir(path.dirname(local), { recursive: true });
          await writeFile(local, item.body ?? "");
        }
      }
    }
    await writeFile(path.join(mustGather, "version"), "imagefs-doctor/must-gather\n0.1.0\n");
    for (const dir of [
      path.join(extracted, top),
      extracted,
      path.join(mustGather, "nodes", "worker-0"),
      mustGather,
      local,
    ]) {
      const run = await cli(["diagnose", "--json", "--bundle", dir, "--fail-on", "never"]);
      expect(run.stderr).toBe("");
      expect(judged(run.stdout)).toEqual(judged(onSnapshot.stdout));
    }
    // The extracted bundle tarred again by hand with GNU tar ("./" first, GNU headers) reads the same.
    const retarred = path.join(base, "retarred.tar.gz");
    await execa("tar", ["-C", extracted, "-czf", retarred, "."]);
    const again = await cli(["diagnose", "--json", "--bundle", retarred, "--fail-on", "never"]);
    expect(again.stderr).toBe("");
    expect(judged(again.stdout)).toEqual(judged(onSnapshot.stdout));

    const text = await cli(["diagnose", "--bundle", mustGather, "--fail-on", "never"]);
    const lines = text.stdout.split("\n");
    const header = lines.slice(
      0,
      lines.findIndex((line) => line.startsWith("imagefs-doctor 0.1.0: node")),
    );
    // (Wrapped at 80 columns, the path cut where it must be.)
    expect(header.join("").replace(/\s/g, "")).toBe(
      `bundle:${mustGather}(nodes/worker-0/),writtenbyimagefs-doctor0.1.0at2026-11-23T10:38:46Z`,
    );

    // Two nodes: say which to give.
    await mkdir(path.join(mustGather, "nodes", "worker-1"));
    await writeFile(path.join(mustGather, "nodes", "worker-1", "snapshot.json"), snapshotText);
    const two = await cli(["diagnose", "--bundle", mustGather]);
    expect(two.exitCode).toBe(2);
    expect(two.stderr).toContain("holds 2 bundles; give one of them: nodes/worker-0, nodes/worker-1");
  });

  it("refuses --bundle with --snapshot or --host-root", async () => {
    const both = await cli(["diagnose", "--bundle", "b.tar.gz", "--snapshot", EXAMPLE]);
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain("--snapshot and --bundle exclude each other");
    const host = await cli(["diagnose", "--bundle", "b.tar.gz", "--host-root", "/"]);
    expect(host.exitCode).toBe(2);
    expect(host.stderr).toContain("--bundle and --host-root exclude each other");
  });
});

describe("diagnose --bundle: a hostile or broken archive is refused, whole, saying why", () => {
  it("an absolute path", async () => {
    const outside = `/tmp/imagefs-bundle-escape-${TOKEN}`;
    const file = await writeArchive("absolute.tar.gz", [...bundleItems(), { name: outside, body: "x" }]);
    await expectRefused(file, new RegExp(`refused: entry "${outside}" has an absolute path`));
  });

  it("a .. component", async () => {
    const name = `${TOP}/../../escape-${TOKEN}`;
    const file = await writeArchive("dotdot.tar.gz", [...bundleItems(), { name, body: "x" }]);
    await expectRefused(
      file,
      /refused: entry ".*\/\.\.\/\.\.\/escape-bundletest[0-9a-f]+" has a "\.\." component/,
    );
  });

  it("a symlink to /etc, and a file written through it", async () => {
    const file = await writeArchive("symlink.tar.gz", [
      ...bundleItems(),
      { name: `${TOP}/host/etc-link`, type: "symlink", linkname: "/etc" },
      { name: `${TOP}/host/etc-link/imagefs-bundle-escape-${TOKEN}`, body: "x" },
    ]);
    await expectRefused(
      file,
      /refused: entry ".*\/host\/etc-link" is a symbolic link to "\/etc"; a bundle holds only regular files and directories/,
    );
  });

  it("a hard link", async () => {
    const file = await writeArchive("hardlink.tar.gz", [
      ...bundleItems(),
      { name: `${TOP}/host/shadow`, type: "link", linkname: "/etc/shadow" },
    ]);
    await expectRefused(file, /refused: entry ".*\/host\/shadow" is a hard link to "\/etc\/shadow"/);
  });

  it("a character device", async () => {
    const file = await writeArchive("chardev.tar.gz", [
      ...bundleItems(),
      { name: `${TOP}/host/dev/sda`, type: "character-device", devmajor: 8, devminor: 0 },
    ]);
    await expectRefused(file, /refused: entry ".*\/host\/dev\/sda" is a character device \(8:0\)/);
  });

  it("a FIFO", async () => {
    const file = await writeArchive("fifo.tar.gz", [...bundleItems(), { name: `${TOP}/pipe`, type: "fifo" }]);
    await expectRefused(file, /refused: entry ".*\/pipe" is a FIFO/);
  });

  it("1 GiB of zeros in one entry (gzipped to about 1 MiB)", async () => {
    const file = await writeArchive("zeros-entry.tar.gz", [
      ...bundleItems(),
      { name: `${TOP}/journal/zeros`, zeros: 1024 * MiB },
    ]);
    expect((await stat(file)).size).toBeLessThan(2 * MiB);
    await expectRefused(
      file,
      /refused: entry ".*\/journal\/zeros" is 1024 MiB; the limit for one entry is 256 MiB/,
    );
  });

  it("a gzip bomb: 1 GiB of zeros in entries each under the limit, stopped as it decompresses", async () => {
    const file = await writeArchive("bomb.tar.gz", [
      ...bundleItems(),
      ...Array.from({ length: 5 }, (_, i) => ({ name: `${TOP}/journal/zeros-${i}`, zeros: 200 * MiB })),
    ]);
    expect((await stat(file)).size).toBeLessThan(2 * MiB);
    const message = await expectRefused(
      file,
      /refused: it decompresses to more than 200 times its size .* a gzip bomb\?/,
      5000,
    );
    // Stopped a little past the 32 MiB where the ratio starts to count, not after inflating it all.
    const out = Number(/\((\d+) MiB out of/.exec(message)?.[1]);
    expect(out).toBeGreaterThanOrEqual(32);
    expect(out).toBeLessThan(64);
  });

  it("a plain tar whose entries add up to more than 512 MiB (sparse on disk)", async () => {
    const file = path.join(work, "total.tar");
    const handle = await open(file, "w");
    try {
      let offset = 0;
      for (const item of bundleItems()) {
        const body = Buffer.from(item.body ?? "");
        const header = ustarHeader(
          Buffer.from(item.name),
          body.length,
          item.type === "directory" ? "5" : "0",
        );
        const block = Buffer.concat([header, padded(body)]);
        await handle.write(block, 0, block.length, offset);
        offset += block.length;
      }
      for (let i = 0; i < 3; i++) {
        await handle.write(ustarHeader(Buffer.from(`${TOP}/journal/big-${i}`), 200 * MiB), 0, 512, offset);
        offset += 512 + 200 * MiB;
      }
      await handle.write(Buffer.alloc(1024), 0, 1024, offset);
    } finally {
      await handle.close();
    }
    await expectRefused(file, /refused: its entries add up to more than 512 MiB \(at ".*\/journal\/big-2"\)/);
  });

  it("many tiny entries", async () => {
    const items = bundleItems();
    for (let i = 0; i < 10_001; i++) items.push({ name: `${TOP}/host/f${i}`, body: "" });
    const file = await writeArchive("many.tar.gz", items);
    await expectRefused(file, /refused: it has more than 10000 entries \(at ".*\/host\/f\d+"\)/);
  });

  it("a second snapshot.json", async () => {
    const file = await writeArchive("duplicate.tar.gz", [
      ...bundleItems(),
      { name: `${TOP}/snapshot.json`, body: JSON.stringify({ schemaVersion: 1, sources: {} }) },
    ]);
    await expectRefused(file, /refused: entry ".*\/snapshot.json" appears twice/);
    // The same file spelt differently is still the same file.
    const spelt = await writeArchive("duplicate-dot.tar.gz", [
      ...bundleItems(),
      { name: `./${TOP}//./snapshot.json`, body: "{}" },
    ]);
    await expectRefused(spelt, /refused: entry "\.\/.*\/\/\.\/snapshot.json" appears twice/);
  });

  it("a name that is not UTF-8, and one with a control character", async () => {
    const version = Buffer.from(VERSION_FILE);
    const tarball = Buffer.concat([
      ustarHeader(Buffer.from(`${TOP}/`), 0, "5"),
      ustarHeader(Buffer.from(`${TOP}/version`), version.length),
      padded(version),
      ustarHeader(
        Buffer.concat([Buffer.from(`${TOP}/host/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from(".conf")]),
        0,
      ),
      Buffer.alloc(1024),
    ]);
    const file = path.join(work, "bad-utf8.tar.gz");
    await writeFile(file, gzipSync(tarball));
    await expectRefused(
      file,
      /refused: entry ".*\/host\/bad-\\xff\\xfe\.conf" has a name that is not valid UTF-8/,
    );

    const control = await writeArchive("control.tar.gz", [
      ...bundleItems(),
      { name: `${TOP}/host/\x1b[31mred`, body: "" },
    ]);
    const message = await expectRefused(control, /has a control character in its name/);
    expect(message).not.toContain("\x1b");
    // A right-to-left override, and a link target with a C1 control (CSI) that JSON would leave raw.
    const bidi = await writeArchive("bidi.tar.gz", [
      ...bundleItems(),
      { name: `${TOP}/host/\u202Etxt.sh`, body: "" },
    ]);
    expect(
      await expectRefused(bidi, /host\/\\u202etxt\.sh" has a control character in its name/),
    ).not.toContain("\u202E");
    const csi = await writeArchive("csi.tar.gz", [
      ...bundleItems(),
      { name: `${TOP}/host/link`, type: "symlink", linkname: "/etc/\u009b31m" },
    ]);
    expect(await expectRefused(csi, /is a symbolic link to .*\\u009b31m/)).not.toMatch(/[\u0080-\u00ff]/);
  });

  it("a truncated gzip file, and a tar cut inside an entry", async () => {
    const good = await readFile(await writeArchive("whole.tar.gz", bundleItems()));
    const cut = path.join(work, "cut.tar.gz");
    await writeFile(cut, good.subarray(0, Math.floor(good.length / 2)));
    await expectRefused(cut, /cut\.tar\.gz is truncated: the gzip data ends early/);

    const plain = await readFile(await writeArchive("whole.tar", bundleItems(), false));
    const cutTar = path.join(work, "cut.tar");
    await writeFile(cutTar, plain.subarray(0, plain.length - 4096));
    await expectRefused(cutTar, /cut\.tar is truncated: the tar data ends inside an entry/);
  });

  it("not an archive at all: text, gzip of something else, zip, an empty file, a device", async () => {
    const text = path.join(work, "notes.txt");
    await writeFile(text, "these are not the bundles you are looking for\n".repeat(20));
    await expectRefused(text, /notes\.txt is neither gzip nor a tar archive/);
    const gzipped = path.join(work, "notes.txt.gz");
    await writeFile(gzipped, gzipSync(await readFile(text)));
    await expectRefused(
      gzipped,
      /notes\.txt\.gz is corrupt: what the gzip data holds is not a valid tar archive/,
    );
    const zip = path.join(work, "bundle.zip");
    await writeFile(zip, Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), randomBytes(600)]));
    await expectRefused(zip, /bundle\.zip is a zip archive/);
    const empty = path.join(work, "empty.tar.gz");
    await writeFile(empty, "");
    await expectRefused(empty, /empty\.tar\.gz is empty, not a bundle/);
    await expectRefused("/dev/zero", /\/dev\/zero is a character device, not a bundle/);
    await expectRefused(path.join(work, "nope.tar.gz"), /cannot read bundle .*nope\.tar\.gz: ENOENT/);
  });

  it("no snapshot.json, a version file of another tool, a snapshot that is not JSON", async () => {
    const missing = await writeArchive("no-snapshot.tar.gz", bundleItems({ snapshot: null }));
    await expectRefused(missing, new RegExp(`has no ${TOP}/snapshot.json: there is nothing to diagnose`));
    const noVersion = await writeArchive("no-version.tar.gz", bundleItems({ version: null }));
    await expectRefused(noVersion, /is not an imagefs-doctor bundle: it has no .*\/version file/);
    const other = await writeArchive("other-tool.tar.gz", bundleItems({ version: "sosreport\n4.5\n" }));
    await expectRefused(
      other,
      /is not an imagefs-doctor bundle: .*\/version starts with "sosreport", not "imagefs-doctor"/,
    );
    const garbage = await writeArchive("garbage.tar.gz", bundleItems({ snapshot: "{ this is not json" }));
    await expectRefused(garbage, /garbage\.tar\.gz:.*\/snapshot\.json is not valid JSON/);
    const schema = await writeArchive("schema.tar.gz", bundleItems({ snapshot: '{"schemaVersion": 99}' }));
    await expectRefused(schema, /schema\.tar\.gz:.*\/snapshot\.json has schemaVersion 99/);
  });

  it("entries outside the one top directory", async () => {
    const file = await writeArchive("two-tops.tar.gz", [
      ...bundleItems(),
      { name: `other-${TOKEN}/x`, body: "" },
    ]);
    await expectRefused(file, /refused: entry "other-bundletest[0-9a-f]+\/x" is outside the top directory/);
  });
});

describe("diagnose --bundle: a directory bundle reads nothing outside it", () => {
  async function extractedBundle(): Promise<string> {
    const dir = await mkdtemp(path.join(work, "hostile-dir-"));
    await writeFile(path.join(dir, "version"), VERSION_FILE);
    return dir;
  }

  it("refuses a snapshot.json that is a symlink out of the bundle", async () => {
    const dir = await extractedBundle();
    await symlink("/etc/passwd", path.join(dir, "snapshot.json"));
    await expectRefused(dir, /refused: "snapshot.json" is a symbolic link to "\/etc\/passwd"/);
  });

  it("refuses a node directory that is a symlink out of the bundle", async () => {
    const dir = await mkdtemp(path.join(work, "hostile-nodes-"));
    const outside = await extractedBundle();
    await writeFile(path.join(outside, "snapshot.json"), snapshotText);
    await mkdir(path.join(dir, "nodes"));
    await symlink(outside, path.join(dir, "nodes", "worker-0"));
    await expectRefused(
      dir,
      /is not a bundle: no snapshot.json in it, in a directory below it or in nodes\/<node>\//,
    );
    await expectRefused(path.join(dir, "nodes"), /is not a bundle/);
  });

  it("refuses a snapshot.json that is a FIFO, without waiting on it", async () => {
    const dir = await extractedBundle();
    await execa("mkfifo", [path.join(dir, "snapshot.json")]);
    await expectRefused(dir, /refused: "snapshot.json" is a FIFO, not a regular file/, 10_000);
  });

  it("refuses a wrong version file and a snapshot that is not JSON", async () => {
    const dir = await extractedBundle();
    await writeFile(path.join(dir, "snapshot.json"), "{ nope");
    await expectRefused(dir, /snapshot\.json is not valid JSON/);
    await writeFile(path.join(dir, "version"), "something-else\n1\n");
    await expectRefused(dir, /version starts with "something-else", not "imagefs-doctor"/);
  });
});

const nodeReady = requireParts("diagnose --bundle of a must-gather bundle", ["root", "loop", "xfs"]);

describe.skipIf(!nodeReady)("diagnose --bundle on a bundle written by must-gather", () => {
  let tree: HostTree | undefined;
  afterAll(async () => {
    await tree?.cleanup();
  });

  it("judges it as the node judged itself, from the .tar.gz and from the extracted directory", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree, { imagestoreFs: "unmounted", fstab: true });
    await startRuntime(tree, { imagestore: IMAGESTORE });
    await writeKubeletConfig(tree, { evictionHard: { "memory.available": "100Mi" } });
    const onTree = ["--host-root", tree.root, "--proc-root", tree.procRoot];
    const file = path.join(work, "must-gather.tar.gz");
    const gathered = await execa(process.execPath, [CLI, "must-gather", ...onTree, "-o", file], {
      reject: false,
      timeout: 180_000,
      env: { NODE_NAME: "worker-0" },
    });
    expect(gathered.exitCode, gathered.stderr).toBe(0);

    const live = await cli(["diagnose", "--json", ...onTree, "--fail-on", "never"]);
    const fromBundle = await cli(["diagnose", "--json", "--bundle", file, "--fail-on", "never"]);
    expect(fromBundle.stderr).toBe("");
    expect(judged(fromBundle.stdout)).toEqual(judged(live.stdout));
    expect(judged(fromBundle.stdout)).toEqual(
      expect.arrayContaining([expect.stringMatching(/IMAGESTORE_NOT_MOUNTED/)]),
    );
    // ... and as findings.json, which must-gather wrote from the same snapshot on the node.
    const inside = await entriesOf(file);
    const top = [...inside.keys()][0]!.split("/")[0]!;
    expect(judged(inside.get(`${top}/findings.json`)!.toString())).toEqual(judged(fromBundle.stdout));

    const text = await cli(["diagnose", "--bundle", file]);
    expect(text.exitCode).toBe(1);
    expect(text.stdout.split("\n").slice(0, 3).join(" ").replace(/\s+/g, " ")).toContain(
      `(${top}/), written by imagefs-doctor 0.1.0 at`,
    );

    // Unpacked as the must-gather image does (nodes/<node>/, top directory stripped).
    const nodeDir = path.join(work, "gathered", "nodes", "worker-0");
    await mkdir(nodeDir, { recursive: true });
    await execa("tar", ["-xzf", file, "-C", nodeDir, "--strip-components=1", "--no-same-owner"]);
    const fromDir = await cli([
      "diagnose",
      "--json",
      "--bundle",
      path.join(work, "gathered"),
      "--fail-on",
      "never",
    ]);
    expect(fromDir.stderr).toBe("");
    expect(judged(fromDir.stdout)).toEqual(judged(live.stdout));
  });
});

/**
 * The archive must-gather writes: a tar over 4 MiB is gzipped as several members (SlicedGzip,
 * compressed side by side), which gzip readers take as one stream (RFC 1952 2.2). Written with
 * writeArchiveToFile, read back by readBundle, by Node's gunzip with tar-stream, and by tar(1).
 */
describe("bundles written by must-gather's archive writer", () => {
  /** ~10 MiB of journal-like text: lines vary (words, counters, times), so it compresses as logs do, not as zeros. */
  function journalText(bytes: number): Buffer {
    const words = [
      "crio",
      "kubelet",
      "pulled",
      "image",
      "layer",
      "overlay",
      "mount",
      "store",
      "sha256",
      "denied",
    ];
    const lines: string[] = [];
    let size = 0;
    let state = 12345;
    for (let i = 0; size < bytes; i++) {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      const said = Array.from(
        { length: 4 + (state % 9) },
        (_, k) => words[(state >> (k * 3)) % words.length],
      );
      const line = `Nov 23 10:${String(Math.floor(i / 60) % 60).padStart(2, "0")}:${String(i % 60).padStart(2, "0")} worker-0 ${words[i % 3]}[${1000 + (i % 97)}]: #${i} ${said.join(" ")} ${state.toString(16)}\n`;
      lines.push(line);
      size += line.length;
    }
    return Buffer.from(lines.join(""));
  }

  /** The gzip members of a file, each decompressed on its own (a member's header is 10 bytes: zlib writes no name). */
  function gzipMembers(file: Buffer): Buffer[] {
    const members: Buffer[] = [];
    let at = 0;
    while (at < file.length) {
      expect([file[at], file[at + 1], file[at + 2], file[at + 3]]).toEqual([0x1f, 0x8b, 8, 0]);
      const { buffer, engine } = inflateRawSync(file.subarray(at + 10), { info: true }) as unknown as {
        buffer: Buffer;
        engine: { bytesWritten: number };
      };
      at += 10 + engine.bytesWritten;
      expect(file.readUInt32LE(at + 4)).toBe(buffer.length % 2 ** 32); // ISIZE
      at += 8;
      members.push(buffer);
    }
    return members;
  }

  it("writes a tar over 4 MiB as several gzip members that every reader takes as one archive", async () => {
    const big = journalText(10 * MiB);
    const top = `imagefs-doctor-worker-0-sliced-${TOKEN}`;
    const entries = [
      { name: "version", data: Buffer.from(VERSION_FILE) },
      { name: "timestamp", data: Buffer.from("2026-11-23T10:38:46Z\n") },
      { name: "journal/node.log", data: big },
      { name: "logs/small.log", data: Buffer.from("one line after the big one\n") },
      // Past the first members: readBundle gets it only by reading on through them.
      { name: "snapshot.json", data: Buffer.from(snapshotText) },
    ];
    const file = path.join(work, "sliced.tar.gz");
    const written = await writeArchiveToFile(entries, file, {
      top,
      mtime: new Date("2026-11-23T10:38:46Z"),
      maxBytes: 64 * MiB,
    });
    const compressed = await readFile(file);
    expect(written).toBe(compressed.length);
    // Varied text: it compresses, but far from what a constant would.
    expect(compressed.length).toBeLessThan(big.length / 2);
    expect(compressed.length).toBeGreaterThan(big.length / 50);

    // Slices of 4 MiB of tar: three members for ~10 MiB, each but the last exactly 4 MiB.
    const members = gzipMembers(compressed);
    expect(members.length).toBe(3);
    expect(members.slice(0, -1).map((m) => m.length)).toEqual([4 * MiB, 4 * MiB]);

    // readBundle (createGunzip, tar-stream) reads through every member to snapshot.json.
    const bundle = await readBundle(file);
    expect(bundle).toMatchObject({ kind: "tar.gz", root: top, toolVersion: "0.1.0", entries: 6 });
    expect(bundle.snapshot).toEqual(JSON.parse(snapshotText));

    // Node's gunzip with tar-stream, as the reader reads: every entry's bytes as written.
    const expected = new Map(entries.map((e) => [`${top}/${e.name}`, e.data]));
    const read = await entriesOf(file);
    expect([...read.keys()]).toEqual([`${top}/`, ...expected.keys()]);
    for (const [name, data] of expected) expect(read.get(name)?.equals(data), name).toBe(true);

    // tar(1) with gzip(1): the same names, and the same bytes once extracted.
    const listed = await execa("tar", ["-tzf", file]);
    expect(listed.stdout.split("\n")).toEqual([`${top}/`, ...expected.keys()]);
    const out = await mkdtemp(path.join(work, "sliced-"));
    await execa("tar", ["-xzf", file, "-C", out, "--no-same-owner"]);
    for (const [name, data] of expected)
      expect((await readFile(path.join(out, name))).equals(data), name).toBe(true);
  });

  it("writes an entry compressed ahead as its own gzip member, as is, and compresses one whose member never came", async () => {
    const ahead = journalText(3 * MiB);
    const member = await gzipMember(ahead);
    const missing = journalText(1 * MiB);
    const top = `imagefs-doctor-worker-0-ahead-${TOKEN}`;
    const entries = [
      { name: "version", data: Buffer.from(VERSION_FILE) },
      { name: "journal/crio.service.log", data: ahead, gzip: Promise.resolve(member) },
      { name: "journal/kubelet.service.log", data: missing, gzip: Promise.resolve(undefined) },
      { name: "snapshot.json", data: Buffer.from(snapshotText) },
    ];
    const file = path.join(work, "ahead.tar.gz");
    await writeArchiveToFile(entries, file, {
      top,
      mtime: new Date("2026-11-23T10:38:46Z"),
      maxBytes: 64 * MiB,
    });
    const compressed = await readFile(file);
    // The member made ahead is in the file byte for byte, between the members of the tar around it.
    const at = compressed.indexOf(member);
    expect(at).toBeGreaterThan(0);
    // Each entry compressed elsewhere is a member of its own, whether the member came or not.
    const members = gzipMembers(compressed);
    expect(members).toHaveLength(5); // the tar before crio's data, crio's, between, kubelet's, after
    expect(members[1]!.equals(ahead)).toBe(true);
    expect(members[3]!.equals(missing)).toBe(true);
    // Every reader takes the whole as one archive with the bytes as written.
    const bundle = await readBundle(file);
    expect(bundle.snapshot).toEqual(JSON.parse(snapshotText));
    const read = await entriesOf(file);
    for (const e of entries) expect(read.get(`${top}/${e.name}`)?.equals(e.data), e.name).toBe(true);
    const out = await mkdtemp(path.join(work, "ahead-"));
    await execa("tar", ["-xzf", file, "-C", out, "--no-same-owner"]);
    for (const e of entries)
      expect((await readFile(path.join(out, top, e.name))).equals(e.data), e.name).toBe(true);
  });
});
