import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JournalEntry } from "../collector/journal/types.js";
import { MAX_TIMELINE_HOURS, ReasonCounter } from "../collector/logrules/counter.js";
import { linesContaining } from "../collector/logrules/lines.js";
import {
  BUILTIN_PACK_DIR,
  classify,
  type LogPack,
  loadPacks,
  logMessage,
} from "../collector/logrules/pack.js";

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

  it("reads the built CLI's packs from the index the build wrote, the same packs as the YAML files", async () => {
    // The global setup has built dist/: its pack.js reads index.json, never the YAML files.
    const dist = path.resolve(import.meta.dirname, "../dist/collector/logrules/pack.js");
    const built: typeof import("../collector/logrules/pack.js") = await import(dist);
    const index = JSON.parse(await readFile(path.join(built.BUILTIN_PACK_DIR, built.PACK_INDEX), "utf8"));
    expect(index.map(([name]: [string]) => name)).toEqual(
      (await readdir(BUILTIN_PACK_DIR)).filter((n) => n.endsWith(".yaml")).sort(),
    );
    const shape = (packs: LogPack[]) =>
      packs.map((p) => ({
        ...p,
        file: path.basename(p.file),
        rules: p.rules.map((r) => ({ ...r, match: String(r.match), levels: r.levels && [...r.levels] })),
      }));
    const fromIndex = await built.loadPacks([built.BUILTIN_PACK_DIR]);
    const fromYaml = await loadPacks([BUILTIN_PACK_DIR]);
    expect(fromIndex.errors).toEqual([]);
    expect(shape(fromIndex.packs)).toEqual(shape(fromYaml.packs));
    // Read from the index, the packs load no YAML parser (what the index is for).
    const probe = await execa(process.execPath, [
      "--input-type=module",
      "-e",
      `import { createRequire } from "node:module";
       const m = await import(${JSON.stringify(dist)});
       const { errors } = await m.loadPacks([m.BUILTIN_PACK_DIR]);
       const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes("/node_modules/yaml/"));
       console.log(JSON.stringify({ errors, yaml: loaded.length }));`,
    ]);
    expect(JSON.parse(probe.stdout)).toEqual({ errors: [], yaml: 0 });
    // Any other directory is read from its YAML files, even with an index.json in it.
    const copy = await mkdtemp(path.join(os.tmpdir(), "imagefs-packs-copy-"));
    try {
      await cp(built.BUILTIN_PACK_DIR, copy, { recursive: true });
      await writeFile(path.join(copy, "crio-storage.yaml"), "name: [\n");
      const copied = await built.loadPacks([copy]);
      expect(copied.errors.map((e) => path.basename(e.file))).toEqual(["crio-storage.yaml"]);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  it("reads the YAML when the built index is unreadable, and names a pack of the index that is invalid", async () => {
    // A copy of the built collector, its node_modules linked: its BUILTIN_PACK_DIR is the copy's.
    const root = await mkdtemp(path.join(os.tmpdir(), "imagefs-packs-built-"));
    try {
      await cp(path.resolve(import.meta.dirname, "../dist/collector"), path.join(root, "collector"), {
        recursive: true,
      });
      await symlink(path.resolve(import.meta.dirname, "../node_modules"), path.join(root, "node_modules"));
      const packDir = path.join(root, "collector/logrules/packs");
      const load = async () => {
        const probe = await execa(process.execPath, [
          "--input-type=module",
          "-e",
          `const m = await import(${JSON.stringify(path.join(root, "collector/logrules/pack.js"))});
           const { packs, errors } = await m.loadPacks([m.BUILTIN_PACK_DIR]);
           console.log(JSON.stringify({ names: packs.map((p) => p.name).sort(), errors }));`,
        ]);
        return JSON.parse(probe.stdout) as { names: string[]; errors: { file: string; message: string }[] };
      };
      const yamlNames = (await loadPacks([BUILTIN_PACK_DIR])).packs.map((p) => p.name).sort();
      // Truncated by a build that died half-way: the YAML files are read instead, nothing lost.
      const index = await readFile(path.join(packDir, "index.json"), "utf8");
      await writeFile(path.join(packDir, "index.json"), index.slice(0, 100));
      expect(await load()).toEqual({ names: yamlNames, errors: [] });
      // Valid JSON of another shape: the YAML files are read too, nothing thrown or left out.
      for (const shape of ["null", "{}", "[1]", '[["crio-storage.yaml"]]']) {
        await writeFile(path.join(packDir, "index.json"), shape);
        expect(await load(), shape).toEqual({ names: yamlNames, errors: [] });
      }
      // A document the loader refuses is reported under its YAML file's name, the others kept.
      const documents = JSON.parse(index) as [string, Record<string, unknown>][];
      documents[0]![1] = { ...documents[0]![1], rules: [] };
      await writeFile(path.join(packDir, "index.json"), JSON.stringify(documents));
      const broken = await load();
      expect(broken.errors.map((e) => path.basename(e.file))).toEqual([documents[0]![0]]);
      expect(broken.names).toHaveLength(yamlNames.length - 1);
      // The build's index writer refuses a built-in pack that is no valid pack, naming it.
      await mkdir(path.join(root, "scripts"));
      await cp(
        path.resolve(import.meta.dirname, "../scripts/pack-index.mjs"),
        path.join(root, "scripts/pack-index.mjs"),
      );
      await mkdir(path.join(root, "dist"));
      await rename(path.join(root, "collector"), path.join(root, "dist/collector"));
      const distPacks = path.join(root, "dist/collector/logrules/packs");
      const writer = () =>
        execa(process.execPath, [path.join(root, "scripts/pack-index.mjs")], { reject: false });
      const good = await writer();
      expect(good.exitCode, good.stderr).toBe(0);
      expect(JSON.parse(await readFile(path.join(distPacks, "index.json"), "utf8"))).toEqual(
        JSON.parse(index),
      );
      await writeFile(path.join(distPacks, "zz-bad.yaml"), "name: bad\nselect:\n  - UNIT: x\nrules: []\n");
      const bad = await writer();
      expect(bad.exitCode).toBe(1);
      expect(bad.stderr).toContain("zz-bad.yaml: rules must list at least one rule");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
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

/** stargz-store's logrus JSON (containerd/log's JSONFormatter), as journald keeps its MESSAGE. */
const logrus = (level: string, msg: string, error?: string) =>
  JSON.stringify({ ...(error ? { error } : {}), level, msg, time: "2026-11-23T08:00:00.000000000Z" });
const stargz = (level: string, msg: string, error?: string) => ({
  _SYSTEMD_UNIT: "stargz-store.service",
  MESSAGE: logrus(level, msg, error),
});
const systemd = (message: string) => ({
  UNIT: "stargz-store.service",
  // PID 1 sends these: the sender's unit is init.scope, the unit they are about is UNIT.
  _SYSTEMD_UNIT: "init.scope",
  SYSLOG_IDENTIFIER: "systemd",
  MESSAGE: message,
});
const crio = (message: string, unit = "crio.service") => ({ _SYSTEMD_UNIT: unit, MESSAGE: message });
const TOC = `sha256:${"a1".repeat(32)}`;
const STORE = "/var/lib/stargz-store/store";

/**
 * Real-format lines for every rule of the lazy-pull packs, with the reason each must get. The
 * strings are those of the lazy-pull fact sheet (§1.7 stargz-store, §3.1-§3.2 containers/storage
 * and containers/image) and systemd's unit messages; the errors chain as stargz-store wraps them.
 */
const LAZY_PULL_LINES: [what: string, fields: Record<string, string>, expected: string][] = [
  [
    "a fatal config error",
    stargz(
      "fatal",
      'failed to load config file "/etc/stargz-store/config.toml"',
      "toml: line 3: expected '='",
    ),
    "stargz-store/FatalStartup",
  ],
  [
    "a fatal mount error",
    stargz("fatal", 'failed to mount fs at "/var/lib/stargz-store/store"', "fusermount: exit status 1"),
    "stargz-store/FatalStartup",
  ],
  [
    "TOC verification at mount",
    stargz("debug", "failed to verify layer", `invalid TOC JSON "sha256:bb"; want "${TOC}"`),
    "stargz-store/VerificationFailed",
  ],
  // Both a FUSE read error and a verification failure: integrity is the cause to act on.
  [
    "a read that failed chunk verification",
    stargz(
      "error",
      "statFile error",
      "file.Read: chunk verification failed at offset 0: invalid chunk: not verified",
    ),
    "stargz-store/VerificationFailed",
  ],
  // Both a mount failure and a 401: the credentials are what to fix; the fallback is the consequence.
  [
    "a mount refused by the registry",
    stargz(
      "warning",
      `failed to mount layer "diff": "${TOC}"`,
      'failed to resolve layer: cannot resolve layer: failed to redirect (host "registry.example.com", ref:"registry.example.com/app:1", digest:"sha256:cc"): failed to access to the registry with code 401',
    ),
    "stargz-store/RegistryAuthFailed",
  ],
  [
    "a blob that is no eStargz",
    stargz(
      "debug",
      "error resolving layer (context error: <nil>)",
      "failed to resolve layer: failed to read layer: failed to parse footer: blob is too small; 41 < 51",
    ),
    "stargz-store/NotLazyPullable",
  ],
  [
    "a mount that timed out",
    stargz("warning", `failed to mount layer "diff": "${TOC}"`, "failed to resolve layer (timeout)"),
    "stargz-store/MountFailedFallback",
  ],
  [
    "a mount of a layer the manifest lacks",
    stargz("warning", `failed to mount layer "blob": "${TOC}"`, `layer with TOCDigest ${TOC} not found`),
    "stargz-store/MountFailedFallback",
  ],
  [
    "a read that lost the registry",
    stargz(
      "error",
      "statFile error",
      "file.Read: failed to read layer: cannot resolve layer: failed to get size: context deadline exceeded",
    ),
    "stargz-store/FuseReadError",
  ],
  [
    "a lookup error",
    stargz("error", "statFile error", "node.Lookup: no such file or directory"),
    "stargz-store/FuseReadError",
  ],
  [
    "a resolve failure",
    stargz(
      "debug",
      `failed to resolve layer "registry.example.com/app:1" / "${TOC}": failed to get manifest and config: unexpected status code: 404`,
    ),
    "stargz-store/ResolveFailed",
  ],
  [
    "a 401 and a credential refresh",
    stargz("info", "Received status code: 401. Refreshing creds..."),
    "stargz-store/RegistryAuthRefresh",
  ],
  [
    "a prefetch failure",
    stargz("warning", "failed to prefetch layer=sha256:cc", "context deadline exceeded"),
    "stargz-store/PrefetchFailed",
  ],
  [
    "a background fetch failure",
    stargz("warning", "failed to fetch whole layer=sha256:cc", "unexpected EOF"),
    "stargz-store/BackgroundFetchFailed",
  ],
  [
    "a keychain failure",
    stargz("warning", "failed to sync secrets", 'secrets is forbidden: User "system:node" cannot list'),
    "stargz-store/KeychainWarning",
  ],
  [
    "a crash",
    systemd("stargz-store.service: Main process exited, code=killed, status=9/KILL"),
    "stargz-store-service/ServiceCrashed",
  ],
  [
    "a failed unit",
    systemd("stargz-store.service: Failed with result 'exit-code'."),
    "stargz-store-service/ServiceCrashed",
  ],
  [
    "a restart",
    systemd("stargz-store.service: Scheduled restart job, restart counter is at 3."),
    "stargz-store-service/ServiceRestarted",
  ],
  [
    "a stop",
    systemd("Stopped stargz-store.service - Stargz Store plugin."),
    "stargz-store-service/ServiceStopped",
  ],
  [
    "a start",
    systemd("Started stargz-store.service - Stargz Store plugin."),
    "stargz-store-service/ServiceStarted",
  ],
  [
    "the store's directory missing",
    crio(
      `level=error msg="overlay: can't stat additionallayerstore dir: stat ${STORE}: transport endpoint is not connected"`,
    ),
    "crio-layer-store/LayerStoreDirMissing",
  ],
  [
    "a relative store path",
    crio('overlay: additionallayerstore path "store" is not absolute.  Can not be relative'),
    "crio-layer-store/LayerStoreConfigInvalid",
  ],
  [
    "an unknown store option",
    crio(`overlay: additionallayerstore config "${STORE}:refs" contains unknown option "refs"`),
    "crio-layer-store/LayerStoreConfigInvalid",
  ],
  [
    "the auth helper failing",
    crio(
      'level=warning msg="Failed to call additional-layer-store-auth-helper (stderr:panic: connection refused): exit status 2"',
    ),
    "crio-layer-store/AuthHelperFailed",
  ],
  [
    "a linked layer gone",
    crio(
      `failed to access to the linked additional layer: stat ${STORE}/cmVn/${TOC}: no such file or directory`,
    ),
    "crio-layer-store/LinkedLayerMissing",
  ],
  [
    "a store without use/release",
    crio(
      `Unexpected error by Additional Layer Store ${STORE}/cmVn/${TOC} during use; GC doesn't seem to be supported`,
    ),
    "crio-layer-store/LayerStoreNoGC",
  ],
  [
    "a TOC mismatch",
    crio(`additional layer for TOCDigest "${TOC}" reports unexpected TOCDigest "sha256:bb"`),
    "crio-layer-store/TocMismatch",
  ],
  [
    "an image store missing",
    crio("overlay: can't stat imageStore dir /mnt/cache: stat /mnt/cache: no such file or directory"),
    "crio-storage/ImageStoreMissing",
  ],
  [
    "a relative image store",
    crio('overlay: image path "cache" is not absolute.  Can not be relative'),
    "crio-storage/ImageStoreInvalid",
  ],
  [
    "a layer no store holds",
    crio('Error: reading image "sha256:dd": layer not known'),
    "crio-storage/LayerUnknown",
  ],
  [
    "an artifact store skipped",
    crio(
      'Skipping additional artifact store "/mnt/artifacts": stat /mnt/artifacts/artifacts: no such file or directory',
    ),
    "crio-storage/ArtifactStoreSkipped",
  ],
  [
    "a wipe after a crash",
    crio(
      "File /var/lib/crio/clean.shutdown not found. Wiping storage directory /var/lib/containers/storage because of suspected unclean shutdown",
      "crio-wipe.service",
    ),
    "crio-storage/UncleanShutdownWipe",
  ],
];

describe("the lazy-pull packs on real log lines", () => {
  const LAZY_PACKS = ["stargz-store", "stargz-store-service", "crio-layer-store", "crio-storage"];

  it.each(LAZY_PULL_LINES)("gives %s its own reason", async (_what, fields, expected) => {
    const { packs } = await loadPacks([BUILTIN_PACK_DIR]);
    const got = packs.flatMap((pack) => {
      const rule = classify(pack, entry(fields));
      return rule ? [`${pack.name}/${rule.reason}`] : [];
    });
    expect(got).toEqual([expected]);
  });

  it("has a line for every rule of those packs", async () => {
    const { packs } = await loadPacks([BUILTIN_PACK_DIR]);
    const rules = packs
      .filter((pack) => LAZY_PACKS.includes(pack.name))
      .flatMap((pack) => pack.rules.map((rule) => `${pack.name}/${rule.reason}`));
    expect(rules.length).toBeGreaterThan(20);
    expect(new Set(LAZY_PULL_LINES.map(([, , reason]) => reason))).toEqual(new Set(rules));
  });

  it("counts systemd's messages about a unit under that unit, not under init.scope", async () => {
    const { packs } = await loadPacks([BUILTIN_PACK_DIR]);
    const counter = new ReasonCounter(packs);
    counter.add(entry(systemd("stargz-store.service: Main process exited, code=killed, status=9/KILL")));
    counter.add(entry(crio("time=x level=info msg=started")));
    expect(counter.counts().map((c) => [c.unit, c.reason])).toEqual([
      ["stargz-store.service", "ServiceCrashed"],
    ]);
    expect(counter.fields).toContain("UNIT");
  });

  it("shows logrus JSON as 'msg: error', and lets a rule ask for its level", async () => {
    const { packs } = await loadPacks([BUILTIN_PACK_DIR]);
    const counter = new ReasonCounter(packs);
    counter.add(
      entry(stargz("warning", `failed to mount layer "diff": "${TOC}"`, "failed to resolve layer (timeout)")),
    );
    expect(counter.counts()[0]?.example).toBe(
      `failed to mount layer "diff": "${TOC}": failed to resolve layer (timeout)`,
    );
    expect(logMessage(entry(stargz("error", "statFile error")))).toEqual({
      text: "statFile error",
      level: "error",
    });
    // Not JSON, or JSON without msg: the text as it is, no level.
    for (const raw of ['level=error msg="x"', "{not json", '{"message":"x"}'])
      expect(logMessage(entry({ MESSAGE: raw }))).toEqual({ text: raw, level: null });
    // FatalStartup is asked for at level fatal only: the same words logged as a warning are not a failed start.
    const stargzPack = packs.find((pack) => pack.name === "stargz-store")!;
    expect(classify(stargzPack, entry(stargz("warning", "failed to prepare pool")))).toBeUndefined();
    expect(classify(stargzPack, entry(stargz("fatal", "failed to prepare pool")))?.reason).toBe(
      "FatalStartup",
    );
  });

  it.each([
    ["[warn]", "rules[0].level must be one or a list of trace, debug, info, warning"],
    ["3", "rules[0].level must be one or a list of trace, debug, info, warning"],
    ["[error, 3]", "rules[0].level must be one or a list of trace, debug, info, warning"],
    ["[]", "rules[0].level must name at least one level"],
  ])("refuses level %s, which names no level logrus has", async (level, message) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "imagefs-level-"));
    try {
      await writeFile(
        path.join(dir, "p.yaml"),
        `name: p\nselect:\n  - A: b\nrules:\n  - reason: R\n    level: ${level}\n    match: x\n`,
      );
      const { packs, errors } = await loadPacks([dir]);
      expect(packs).toEqual([]);
      expect(errors.map((e) => e.message)).toEqual([expect.stringContaining(message)]);
    } finally {
      await rm(dir, { recursive: true, force: true });
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
    const pieces = ["a", "b", "\n", "ab", "AVC", "avc:", "\n\n", "x", "\u00e9", "\u00e9\n"];
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    const needleSets = [["ab"], ["AVC", "avc:"], ["b", "a"], ["avc:", "AVC", "b"], ["\u00e9"]];
    for (let k = 0; k < 5000; k += 1) {
      let text = "";
      for (let i = (next() >> 16) % 14; i > 0; i -= 1) text += pieces[(next() >> 16) % pieces.length];
      const needles = needleSets[k % needleSets.length]!;
      for (const skipFirst of [false, true])
        expect(
          linesContaining(text, needles, skipFirst),
          JSON.stringify({ text, needles, skipFirst }),
        ).toEqual(split(text, needles, skipFirst));
    }
  });

  it("gives the same lines from the UTF-8 bytes, bad bytes and all, as from the decoded text", () => {
    // UTF-8 text, and bytes that are not UTF-8 on their own (a stray byte, cut sequences).
    const pieces = [
      ...["a", "avc:", "\n", "AVC", "\u00e9", "\u00e9\n", "\n\n", " x"].map((t) => Buffer.from(t)),
      Buffer.from([0xff]),
      Buffer.from([0xc3]),
      Buffer.from([0xe2, 0x82]),
    ];
    let seed = 11;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    for (let k = 0; k < 5000; k += 1) {
      const parts: Buffer[] = [];
      // The generator's high bits: its low ones repeat with short periods.
      for (let i = (next() >> 16) % 16; i > 0; i -= 1) parts.push(pieces[(next() >> 16) % pieces.length]!);
      const bytes = Buffer.concat(parts);
      for (const skipFirst of [false, true])
        for (const needles of [["AVC", "avc:"], ["\u00e9"]])
          expect(linesContaining(bytes, needles, skipFirst), bytes.toString("hex")).toEqual(
            split(bytes.toString("utf8"), needles, skipFirst),
          );
    }
  });

  it("refuses a needle that is empty or spans lines", () => {
    expect(() => linesContaining("a\nb", [""])).toThrow(TypeError);
    expect(() => linesContaining("a\nb", ["a\nb"])).toThrow(TypeError);
  });
});
