import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Finding } from "../collector/checks/finding.js";
import { renderHtml } from "../collector/report/html.js";
import type { DiagnosisReport } from "../collector/report/json.js";
import type { Snapshot } from "../collector/snapshot.js";
import { parseSnapshot } from "../collector/snapshot-file.js";
import { treeFlags } from "./support/cli.js";
import { journalEntry, MACHINE_ID, writeJournalFile } from "./support/journal.js";
import { mountBindfs } from "./support/lazy-pull.js";
import { requireParts } from "./support/requirements.js";
import { baseNode, GRAPHROOT, HostTree, RUNROOT, startRuntime } from "./support/scenarios.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = path.join(ROOT, "dist/collector/cli.js");
const EXAMPLES = path.join(ROOT, "examples");
/** Screenshots are kept for people to look at (gitignored). */
const SHOTS = path.join(ROOT, "test-results/html-report");

const ready = requireParts("HTML report in headless Chromium", ["chromium"]);
const treeReady =
  ready && requireParts("HTML report of a node tree", ["root", "loop", "bindfs", "journal-remote"]);

let browser: Browser;
let scratch: string;

/** What a page did while it was open: it must do none of it. */
interface Opened {
  page: Page;
  context: BrowserContext;
  errors: string[];
  requests: string[];
  dialogs: string[];
}

async function open(file: string, options: { noClipboard?: boolean } = {}): Promise<Opened> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  if (options.noClipboard) {
    await context.addInitScript(
      'Object.defineProperty(Navigator.prototype, "clipboard", { get: () => undefined });',
    );
  }
  const page = await context.newPage();
  const url = `file://${file}`;
  const opened: Opened = { page, context, errors: [], requests: [], dialogs: [] };
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") opened.errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => opened.errors.push(`pageerror: ${e.message}`));
  page.on("dialog", (d) => {
    opened.dialogs.push(d.message());
    void d.dismiss();
  });
  context.on("request", (r) => {
    if (r.url() !== url) opened.requests.push(r.url());
  });
  await page.goto(url, { waitUntil: "load" });
  return opened;
}

/** Nothing went wrong and nothing was fetched, not even after a moment for late loads. */
async function expectQuiet(opened: Opened): Promise<void> {
  await opened.page.waitForTimeout(200);
  expect(opened.errors).toEqual([]);
  expect(opened.requests).toEqual([]);
  expect(opened.dialogs).toEqual([]);
}

async function cli(args: string[]) {
  return execa("node", [CLI, ...args], { reject: false, timeout: 60_000 });
}

/** Renders a snapshot file through the CLI: `diagnose --snapshot FILE --json --html OUT`. */
async function diagnoseSnapshot(file: string, out: string): Promise<DiagnosisReport> {
  const result = await cli(["diagnose", "--snapshot", file, "--json", "--html", out, "--fail-on", "never"]);
  expect(result.stderr).toBe("");
  expect(result.exitCode).toBe(0);
  return JSON.parse(result.stdout) as DiagnosisReport;
}

async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  const png = await readFile(file);
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  expect(png.length).toBeGreaterThan(10_000);
  return file;
}

async function expectFindingsVisible(page: Page, findings: Finding[]): Promise<void> {
  expect(await page.locator("article.finding").count()).toBe(findings.length);
  for (const [i, finding] of findings.entries()) {
    const article = page.locator(`#finding-${i}`);
    await article.scrollIntoViewIfNeeded();
    expect(await article.getAttribute("data-finding")).toBe(finding.id);
    expect(await article.locator("code.fid").isVisible()).toBe(true);
    expect(await article.locator("code.fid").textContent()).toBe(finding.id);
    expect(await article.locator(".title").isVisible()).toBe(true);
    expect(await article.locator(".title").textContent()).toBe(finding.title);
  }
}

/** Each store of the filesystems source, in the row of its device, with its mount point. */
async function expectTopology(page: Page, snapshot: Snapshot): Promise<void> {
  const fs = snapshot.sources.filesystems;
  if (fs.status !== "ok") throw new Error("filesystems not collected");
  expect(fs.facts.roles.length).toBeGreaterThan(0);
  for (const role of fs.facts.roles) {
    const box = page.locator(`.box.store[data-role="${role.role}"][data-path="${role.path}"]`);
    expect(await box.count(), `${role.role} ${role.path}`).toBe(1);
    expect(await box.isVisible()).toBe(true);
    const row = page.locator(".topo-row").filter({ has: box });
    const text = (await row.textContent()) ?? "";
    if (role.status === "ok") {
      expect(await row.getAttribute("data-device")).toBe(role.device);
      expect(await row.locator(".box.device .dev").textContent()).toBe(role.device);
      expect(text).toContain(role.mount!.mountPoint);
      expect(text).toContain(role.mount!.fstype);
      expect(await row.locator("svg.bar").count()).toBe(2); // bytes and inodes
    } else {
      expect(text).toContain(role.status);
    }
  }
}

function seriesOf(snapshot: Snapshot): string[] {
  const journal = snapshot.sources.journal;
  if (journal.status !== "ok") return [];
  return [...new Set(journal.facts.counts.map((c) => `${c.pack}/${c.reason}`))].sort();
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "imagefs-html-"));
  if (ready) browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
});

afterAll(async () => {
  await browser?.close();
  await rm(scratch, { recursive: true, force: true });
});

describe.skipIf(!ready)("HTML report of the example snapshots, in Chromium", () => {
  it("renders every example: findings, topology, sources; nothing fetched, no errors", async () => {
    const examples = (await readdir(EXAMPLES)).filter((f) => f.endsWith(".json"));
    expect(examples.length).toBeGreaterThanOrEqual(4);
    for (const name of examples) {
      const out = path.join(scratch, name.replace(/\.json$/, ".html"));
      const report = await diagnoseSnapshot(path.join(EXAMPLES, name), out);
      expect((await stat(out)).mode & 0o777).toBe(0o600);
      const opened = await open(out);
      const { page } = opened;
      expect(await page.title()).toBe(`imagefs-doctor: ${report.node}`);
      await expectFindingsVisible(page, report.findings);
      await expectTopology(page, report.snapshot);
      for (const [source, result] of Object.entries(report.snapshot.sources)) {
        expect(await page.locator(`[data-source-status="${source}"]`).textContent()).toBe(result.status);
      }
      // The examples have no journal: the section says why instead of drawing an empty chart.
      expect(await page.locator('#journal .not-collected[data-source="journal"]').textContent()).toContain(
        "no journal in /var/log/journal",
      );
      expect(await page.locator("#journal-chart").count()).toBe(0);
      // The two examples past an eviction threshold show it on the image filesystem's bar.
      const past = {
        "split-image-disk-full.json": "past eviction: hard imagefs.available < 15%",
        "separate-runtime-inodes.json": "past eviction: hard imagefs.inodesFree < 5%",
      }[name];
      const imagefs = page
        .locator(".topo-row")
        .filter({ has: page.locator('.box.store[data-role="imagefs"]') });
      expect(await imagefs.locator("svg.bar .fill.crit").count()).toBe(past ? 1 : 0);
      if (past) expect(await imagefs.textContent()).toContain(past);
      await screenshot(page, name.replace(/\.json$/, ""));
      await expectQuiet(opened);
      await opened.context.close();
    }
  });

  it("copies a remediation command with the Clipboard API, and selects it when there is none", async () => {
    const out = path.join(scratch, "copy.html");
    const report = await diagnoseSnapshot(path.join(EXAMPLES, "split-image-misconfigured.json"), out);
    const first = report.findings.flatMap((f) => f.remediation.commands).find((c) => !c.startsWith("#"));
    expect(first).toBeTruthy();

    const withApi = await open(out);
    const button = withApi.page.locator("button.copy").first();
    expect(await withApi.page.locator(".cmd code").first().textContent()).toBe(first);
    await button.click();
    await expect.poll(() => button.textContent()).toBe("Copied");
    expect(await withApi.page.evaluate<string>("navigator.clipboard.readText()")).toBe(first);
    await expectQuiet(withApi);
    await withApi.context.close();

    const without = await open(out, { noClipboard: true });
    expect(await without.page.evaluate<boolean>("navigator.clipboard === undefined")).toBe(true);
    const fallback = without.page.locator("button.copy").first();
    await fallback.click();
    await expect.poll(() => fallback.textContent()).toMatch(/^(Copied|Selected: press Ctrl\+C)$/);
    expect(await without.page.evaluate<string>("window.getSelection().toString()")).toBe(first);
    await expectQuiet(without);
    await without.context.close();
  });
});

/** Hostile strings where a snapshot holds text: markup, quotes, a broken file name, controls. */
const HOSTILE = {
  node: `<script>window.__pwned = 1</script>"'`,
  path: `/var/lib/"><img src=x onerror="window.__pwned=2">'<svg onload=alert(1)>`,
  nonUtf8: "/var/lib/containers/storage/overlay/\\xff\\xfe-junk\udcff\u001b[31m",
  message: `</code></pre><script>window.__pwned = 3</script><a href="https://example.com/x">x</a>`,
  reason: `Bad"Reason'<b>`,
};

function hostileSnapshot(base: Snapshot): Snapshot {
  const snapshot = structuredClone(base);
  snapshot.node = HOSTILE.node;
  const fs = snapshot.sources.filesystems;
  if (fs.status !== "ok") throw new Error("example without filesystems");
  fs.facts.roles[0]!.path = HOSTILE.path;
  fs.facts.roles[0]!.configuredBy = HOSTILE.message;
  if (fs.facts.roles[0]!.mount) fs.facts.roles[0]!.mount.mountPoint = HOSTILE.nonUtf8;
  const imagefs = fs.facts.roles.find((r) => r.role === "imagefs");
  if (imagefs) {
    imagefs.status = "missing";
    imagefs.error = HOSTILE.message;
  }
  const now = Date.parse(snapshot.collectedAt);
  const hour = (h: number) => new Date(Math.floor(now / 3600_000) * 3600_000 - h * 3600_000).toISOString();
  snapshot.sources.journal = {
    status: "ok",
    durationMs: 3,
    facts: {
      directories: [HOSTILE.path],
      lookbackHours: 24,
      packs: [HOSTILE.reason],
      packErrors: [{ file: HOSTILE.path, message: HOSTILE.message }],
      read: { backend: "journalctl", delivered: 3, bytes: 300, dropped: 0, warnings: [] },
      counts: [
        {
          pack: HOSTILE.reason,
          reason: HOSTILE.reason,
          unit: HOSTILE.node,
          count: 3,
          firstSeen: hour(3),
          lastSeen: hour(1),
          example: HOSTILE.message,
        },
      ],
      timeline: [
        {
          pack: HOSTILE.reason,
          reason: HOSTILE.reason,
          hours: [
            { start: hour(3), count: 2 },
            { start: hour(1), count: 1 },
          ],
          dropped: 0,
        },
      ],
      from: "lookback",
      cursor: null,
    },
  };
  const selinux = snapshot.sources.selinux;
  if (selinux.status === "ok") {
    selinux.facts.stores[0]!.scan = {
      filesChecked: 2,
      elapsedMs: 1,
      sampled: false,
      unlabeled: 0,
      mismatches: [
        {
          actual: HOSTILE.message,
          expected: "container_ro_file_t",
          basis: "policy",
          count: 2,
          samples: [HOSTILE.nonUtf8, HOSTILE.path],
        },
      ],
      errors: [],
    };
  }
  return snapshot;
}

describe.skipIf(!ready)("HTML report of hostile and broken snapshots", () => {
  it("shows script tags, quotes and broken names as text, runs nothing and fetches nothing", async () => {
    const base = parseSnapshot(await readFile(path.join(EXAMPLES, "split-image-healthy.json"), "utf8"));
    const file = path.join(scratch, "hostile.json");
    await writeFile(file, JSON.stringify(hostileSnapshot(base)));
    const out = path.join(scratch, "hostile.html");
    const report = await diagnoseSnapshot(file, out);
    const html = await readFile(out, "utf8");
    expect(html.match(/<script\b/g)).toHaveLength(1);
    expect(html).not.toContain("<img");
    expect(html).not.toContain("<svg onload");
    expect(html).not.toContain("\u001b");

    const opened = await open(out);
    const { page } = opened;
    expect(await page.evaluate<unknown>("window.__pwned")).toBeUndefined();
    expect(await page.locator("h1").textContent()).toBe(`imagefs-doctor: node ${HOSTILE.node}`);
    expect(await page.title()).toBe(`imagefs-doctor: ${HOSTILE.node}`);
    expect(await page.locator("img, iframe, a[href^='http'], main script").count()).toBe(0);
    const store = page.locator(".box.store").first();
    expect(await store.getAttribute("data-path")).toBe(HOSTILE.path);
    expect(await store.textContent()).toContain(HOSTILE.message);
    expect(await page.locator("#topology").textContent()).toContain(
      "/overlay/\\xff\\xfe-junk\ufffd\\x1b[31m",
    );
    expect(await page.locator("#selinux-mismatches").textContent()).toContain(HOSTILE.message);
    expect(await page.locator("#journal-chart g.series").count()).toBe(1);
    expect(await page.locator("#journal-chart g.series").getAttribute("data-series")).toBe(
      `${HOSTILE.reason}/${HOSTILE.reason}`,
    );
    expect(await page.locator("#journal-counts").textContent()).toContain(HOSTILE.message);
    await expectFindingsVisible(page, report.findings);
    await screenshot(page, "hostile");
    await expectQuiet(opened);
    await opened.context.close();
  });

  it("renders a snapshot whose sources failed, timed out, are absent or hold facts of another shape", async () => {
    const snapshot = parseSnapshot(await readFile(path.join(EXAMPLES, "split-image-disk-full.json"), "utf8"));
    snapshot.sources.cri = {
      status: "timeout",
      durationMs: 15_000,
      error: "no answer within 15000 ms",
      facts: null,
    };
    snapshot.sources.selinux = {
      status: "absent",
      durationMs: 0,
      reason: "selinuxfs not mounted",
      facts: null,
    };
    snapshot.sources.layers = { status: "error", durationMs: 2, error: "EACCES: layers.json", facts: null };
    snapshot.sources.journal = {
      status: "timeout",
      durationMs: 20_000,
      error: "no answer within 20000 ms",
      facts: null,
    };
    // An "ok" source whose facts this version cannot read (a hand-edited or future snapshot).
    (snapshot.sources["kubelet-config"] as { facts: unknown }).facts = { eviction: null };
    const text = JSON.stringify(snapshot);
    const file = path.join(scratch, "broken.json");
    await writeFile(file, text);
    const out = path.join(scratch, "broken.html");
    const result = await cli(["diagnose", "--snapshot", file, "--html", out, "--fail-on", "never"]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain(`HTML report written to ${out}`);
    const unwritable = await cli([
      "diagnose",
      "--snapshot",
      file,
      "--html",
      path.join(scratch, "no/such/dir.html"),
    ]);
    expect(unwritable.exitCode).toBe(2);
    expect(unwritable.stderr).toContain("cannot write");
    expect(await readdir(scratch)).not.toContain("no");

    const opened = await open(out);
    const { page } = opened;
    const notCollected = async (section: string, source: string) =>
      page.locator(`#${section} .not-collected[data-source="${source}"]`).textContent();
    expect(await notCollected("selinux", "selinux")).toContain("absent: selinuxfs not mounted");
    expect(await notCollected("lazy-pull", "layers")).toContain("error: EACCES: layers.json");
    expect(await notCollected("lazy-pull", "layer-stores")).toContain("absent");
    expect(await notCollected("journal", "journal")).toContain("timeout: no answer within 20000 ms");
    expect(await page.locator("#topology").textContent()).toContain("could not be drawn from the snapshot");
    // The summary loses only the rows of the unreadable source.
    const summary = (await page.locator("#summary").textContent()) ?? "";
    expect(summary).toContain("KubeletSeparateDiskGCunreadable in this snapshot");
    expect(summary).toContain("graphroot/var/lib/containers/storage");
    expect(await page.locator('[data-source-status="cri"]').textContent()).toBe("timeout");
    expect(await page.locator("#findings").textContent()).toContain("SOURCE_FAILED");
    await expectQuiet(opened);
    await opened.context.close();

    // Every source failed: still a page, each section saying why.
    const empty = structuredClone(snapshot);
    for (const name of Object.keys(empty.sources) as (keyof Snapshot["sources"])[]) {
      (empty.sources as Record<string, unknown>)[name] = {
        status: "error",
        durationMs: 0,
        error: `${name} broke`,
        facts: null,
      };
    }
    const page2 = renderHtml({
      node: "n",
      generatedAt: "2026-11-23T00:00:00Z",
      findings: [],
      snapshot: empty,
    });
    for (const name of ["filesystems", "selinux", "layers", "layer-stores", "journal"]) {
      expect(page2).toContain(`data-source="${name}">not collected: source <b>${name}</b>`);
    }
  });
});

const STORE = "/var/lib/stargz-store/store";
const REF = "registry.example.com/lazy/app:1";
const sha = (s: string) => createHash("sha256").update(s).digest("hex");
const digest = (s: string) => `sha256:${sha(s)}`;

/**
 * A CRI-O node with stargz-store (a real FUSE mount: bindfs over a directory laid out as a store),
 * an image of one full and two lazy layers, and a journal with the store's and CRI-O's failures
 * over several hours.
 */
async function lazyNode(tree: HostTree): Promise<void> {
  await baseNode(tree);
  await tree.write(
    "/etc/containers/storage.conf",
    `[storage]\ndriver = "overlay"\ngraphroot = "${GRAPHROOT}"\nrunroot = "${RUNROOT}"\n[storage.options]\nadditionallayerstores = ["${STORE}:ref"]\n`,
  );
  const source = path.join(tree.scratch, "store-src");
  const ids = ["L1", "L2", "L3"].map(sha) as [string, string, string];
  const records: Record<string, unknown>[] = [];
  for (const [i, id] of ids.entries()) {
    const dir = `${GRAPHROOT}/overlay/${id}`;
    const short = `L${sha(id).slice(0, 25).toUpperCase()}`;
    await tree.write(`${dir}/link`, short);
    if (i > 0)
      await tree.write(
        `${dir}/lower`,
        `l/L${sha(ids[i - 1]!)
          .slice(0, 25)
          .toUpperCase()}`,
      );
    await tree.mkdir(`${dir}/work`);
    await tree.symlink(`../${id}/diff`, `${GRAPHROOT}/overlay/l/${short}`);
    const base = {
      id,
      ...(i > 0 ? { parent: ids[i - 1] } : {}),
      created: "2026-11-01T10:00:00Z",
      compression: 2,
    };
    if (i === 0) {
      await tree.write(`${dir}/diff/etc/os-release`, "ID=test\n");
      records.push({ ...base, "compressed-diff-digest": digest("blob-L1"), "diff-size": 4096 });
      continue;
    }
    const storeLayer = `${STORE}/${Buffer.from(REF).toString("base64")}/${digest(`toc-${id}`)}`;
    await tree.write(`${dir}/additionallayer`, storeLayer);
    await tree.symlink(`${storeLayer}/diff`, `${dir}/diff`);
    const served = path.join(source, storeLayer.slice(STORE.length));
    await mkdir(path.join(served, "diff/bin"), { recursive: true });
    await writeFile(path.join(served, "diff/bin/tool"), "#!/bin/sh\n");
    await writeFile(path.join(served, "info"), "{}");
    records.push({ ...base, "toc-digest": digest(`toc-${id}`), "diff-size": -1 });
  }
  await tree.write(`${GRAPHROOT}/overlay-layers/layers.json`, JSON.stringify(records));
  await tree.write(
    `${GRAPHROOT}/overlay-images/images.json`,
    JSON.stringify([
      { id: sha("image"), names: [REF], layer: ids[2], metadata: "{}", created: "2026-11-01T10:00:00Z" },
    ]),
  );
  const bindfs = await mountBindfs(source, tree.local(STORE));
  tree.onCleanup(async () => {
    bindfs.process.kill("SIGKILL");
    await bindfs.process;
  });
  await tree.startProcess("/usr/local/bin/stargz-store", ["--log-level=debug", STORE]);
  await startRuntime(tree);
  const ago = (minutes: number) => new Date(Date.now() - minutes * 60_000);
  const stargz = (minutes: number, msg: string, error: string) =>
    journalEntry(ago(minutes), {
      _SYSTEMD_UNIT: "stargz-store.service",
      MESSAGE: JSON.stringify({ error, level: "warning", msg, time: ago(minutes).toISOString() }),
    });
  await writeJournalFile(
    tree.local(`/var/log/journal/${MACHINE_ID}/system.journal`),
    [
      stargz(300, "failed to resolve layer", "failed to access to the registry with code 401"),
      stargz(250, "error resolving layer", "failed to parse footer: blob is too small; 41 < 51"),
      stargz(130, "error resolving layer", "failed to parse footer: blob is too small; 41 < 51"),
      stargz(125, "error resolving layer", "failed to parse footer: blob is too small; 41 < 51"),
      stargz(40, "failed to resolve layer", "failed to access to the registry with code 403"),
      journalEntry(ago(20), {
        UNIT: "stargz-store.service",
        SYSLOG_IDENTIFIER: "systemd",
        MESSAGE: "stargz-store.service: Main process exited, code=killed, status=9/KILL",
      }),
      journalEntry(ago(10), {
        _SYSTEMD_UNIT: "crio.service",
        MESSAGE: `level=error msg="overlay: can't stat additionallayerstore dir: stat ${STORE}: transport endpoint is not connected"`,
      }),
    ],
    tree.scratch,
  );
}

describe.skipIf(!treeReady)("HTML report of a node tree, through diagnose --html", () => {
  let tree: HostTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  it("draws the journal's reasons per hour, the lazy layers and the live layer store; the same from its bundle", async () => {
    tree = await HostTree.create();
    await lazyNode(tree);
    const out = path.join(scratch, "tree.html");
    const result = await cli([
      "diagnose",
      ...treeFlags(tree, { criMs: 2000, statMs: 2000 }),
      "--json",
      "--html",
      out,
      "--fail-on",
      "never",
    ]);
    expect(result.exitCode, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as DiagnosisReport;
    const { snapshot } = report;
    expect(snapshot.sources.journal.status).toBe("ok");
    expect(snapshot.sources.layers.status).toBe("ok");
    expect(snapshot.sources["layer-stores"].status).toBe("ok");
    const series = seriesOf(snapshot);
    expect(series).toEqual(
      expect.arrayContaining(["stargz-store/NotLazyPullable", "stargz-store/RegistryAuthFailed"]),
    );

    const opened = await open(out);
    const { page } = opened;
    // One series per reason present, each named in the legend.
    const drawn = await page
      .locator("#journal-chart g.series")
      .evaluateAll((gs) => gs.map((g) => g.getAttribute("data-series")));
    expect([...drawn].sort()).toEqual(series);
    for (const name of series) {
      expect(await page.locator(`.legend li[data-series="${name}"]`).isVisible()).toBe(true);
    }
    // NotLazyPullable at 250, 130 and 125 minutes ago: a dot per hour with entries, counting both.
    const dots = await page
      .locator('#journal-chart g.series[data-series="stargz-store/NotLazyPullable"] circle title')
      .allTextContents();
    expect(dots.reduce((n, t) => n + Number(/: (\d+) at/.exec(t)![1]), 0)).toBe(3);

    const layers = snapshot.sources.layers;
    if (layers.status !== "ok") throw new Error("layers");
    expect(layers.facts.totals.lazy.layers).toBe(2);
    expect(await page.locator('#layer-totals [data-class="lazy"]').textContent()).toBe("2");
    expect(await page.locator("#image-layers").textContent()).toContain(REF);
    const graphroot = page.locator("#store-layers tbody tr").filter({ hasText: GRAPHROOT });
    expect(await graphroot.locator('[data-class="lazy"]').textContent()).toBe("2");
    expect(await graphroot.locator('[data-class="full"]').textContent()).toBe("1");
    const storeRow = page.locator("#layer-stores tbody tr").first();
    expect(await storeRow.textContent()).toContain(`${STORE}:ref`);
    expect(await storeRow.locator("[data-liveness]").getAttribute("data-liveness")).toBe("up");

    await expectTopology(page, snapshot);
    await expectFindingsVisible(page, report.findings);
    expect(report.findings.length).toBeGreaterThan(0);
    await screenshot(page, "lazy-node");
    await expectQuiet(opened);
    await opened.context.close();

    // The same node through its support bundle: must-gather's report.html, and diagnose --bundle --html.
    const bundle = path.join(scratch, "bundle.tar.gz");
    const gathered = await cli([
      "must-gather",
      ...treeFlags(tree, { criMs: 2000, statMs: 2000 }),
      "-o",
      bundle,
    ]);
    expect(gathered.exitCode, gathered.stderr).toBe(0);
    const fromBundle = path.join(scratch, "bundle.html");
    const judged = await cli([
      "diagnose",
      "--bundle",
      bundle,
      "--json",
      "--html",
      fromBundle,
      "--fail-on",
      "never",
    ]);
    expect(judged.exitCode, judged.stderr).toBe(0);
    const bundleReport = JSON.parse(judged.stdout) as DiagnosisReport;
    const extracted = path.join(scratch, "bundle");
    await mkdir(extracted);
    await execa("tar", ["-xzf", bundle, "-C", extracted]);
    const [top] = await readdir(extracted);
    for (const file of [fromBundle, path.join(extracted, top!, "report.html")]) {
      const again = await open(file);
      await expectFindingsVisible(again.page, bundleReport.findings);
      const drawnAgain = await again.page
        .locator("#journal-chart g.series")
        .evaluateAll((gs) => gs.map((g) => g.getAttribute("data-series")));
      expect([...drawnAgain].sort()).toEqual(seriesOf(bundleReport.snapshot));
      await expectQuiet(again);
      await again.context.close();
    }
  });
});
