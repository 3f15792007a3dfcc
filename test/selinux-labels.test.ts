import { type Dirent, lstatSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execaSync } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { progressBar } from "../collector/commands/selinux-scan.js";
import { Host } from "../collector/host/host.js";
import { contextType, parseContext, sameLabel } from "../collector/selinux/context.js";
import {
  FileContexts,
  loadPolicyFileContexts,
  parseFileContexts,
  parseSubstitutions,
} from "../collector/selinux/file-contexts.js";
import { translatePcre } from "../collector/selinux/pcre.js";
import { type LabelScanResult, type ScanOptions, scanLabels } from "../collector/selinux/scan.js";
import { readLabel, XattrError } from "../collector/selinux/xattr.js";
import { HostTree, setSelinuxLabel } from "./support/host-tree.js";
import { requireParts } from "./support/requirements.js";
import { FILE_CONTEXTS, SUBS } from "./support/selinux.js";

const CTX = (type: string) => `system_u:object_r:${type}:s0`;

function policy(subs = SUBS): FileContexts {
  return FileContexts.fromTexts([{ text: FILE_CONTEXTS, file: "file_contexts" }], {
    local: { text: subs, file: "file_contexts.subs" },
  });
}

function expectedType(
  contexts: FileContexts,
  hostPath: string,
  kind?: Parameters<FileContexts["lookup"]>[1],
) {
  const result = contexts.lookup(hostPath, kind);
  return result.kind === "label" ? contextType(result.context) : result.kind;
}

describe("security contexts", () => {
  it("parses user:role:type:level with colons in the level, and <<none>>", () => {
    expect(parseContext("system_u:object_r:container_file_t:s0:c1,c2")).toEqual({
      kind: "context",
      user: "system_u",
      role: "object_r",
      type: "container_file_t",
      level: "s0:c1,c2",
    });
    expect(parseContext("user_u:object_r:tmp_t")).toMatchObject({ type: "tmp_t", level: null });
    expect(parseContext("<<none>>")).toEqual({ kind: "none" });
    expect(parseContext("garbage").kind).toBe("invalid");
  });

  it("compares at type level by default and the whole context with full", () => {
    const a = "system_u:object_r:container_file_t:s0:c1,c2";
    const b = "unconfined_u:object_r:container_file_t:s0";
    expect(sameLabel(a, b)).toBe(true);
    expect(sameLabel(a, b, "full")).toBe(false);
    expect(sameLabel(a, CTX("var_lib_t"))).toBe(false);
  });
});

describe("file_contexts parsing and lookup (libselinux rules)", () => {
  it("labels a graphroot as container.fc says: the last matching regex wins", () => {
    const fc = policy("");
    expect(expectedType(fc, "/var/lib/containers/storage", "dir")).toBe("container_var_lib_t");
    expect(expectedType(fc, "/var/lib/containers/storage/overlay/abc/diff/usr/lib64/libc.so.6", "file")).toBe(
      "container_ro_file_t",
    );
    expect(expectedType(fc, "/var/lib/containers/storage/overlay-images/images.json", "file")).toBe(
      "container_ro_file_t",
    );
    // No storage/overlay-containers line: /var/lib/containers(/.*)? applies.
    expect(expectedType(fc, "/var/lib/containers/storage/overlay-containers/x/userdata", "dir")).toBe(
      "container_var_lib_t",
    );
    expect(expectedType(fc, "/var/lib/containers/storage/volumes/v1/_data", "dir")).toBe("container_file_t");
    expect(expectedType(fc, "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/1")).toBe(
      "container_file_t",
    );
    // Without an equivalence a relocated store is plain var_lib_t (the mislabel this tool looks for).
    expect(expectedType(fc, "/var/lib/images/overlay/abc/diff", "dir")).toBe("var_lib_t");
    expect(expectedType(fc, "/var/lib/stargz-store", "dir")).toBe("var_lib_t");
    expect(expectedType(fc, "/usr/lib/libfoo.so.1", "file")).toBe("lib_t");
    expect(expectedType(fc, "/usr/lib/libfoo.so.1", "dir")).toBe("usr_t");
    expect(expectedType(fc, "/etc/hostname", "file")).toBe("default_t");
    expect(expectedType(fc, "/.autorelabel", "file")).toBe("etc_runtime_t");
  });

  it("prefers a literal spec over any regex, and among equal literals the later input file", () => {
    const base = [
      "/srv/literal\tsystem_u:object_r:literal_t:s0",
      "/srv/a\\.b\tsystem_u:object_r:escaped_t:s0",
      "/srv(/.*)?\tsystem_u:object_r:regex_t:s0",
    ].join("\n");
    const fc = FileContexts.fromTexts([{ text: base, file: "file_contexts" }]);
    expect(expectedType(fc, "/srv/literal")).toBe("literal_t");
    expect(expectedType(fc, "/srv/a.b")).toBe("escaped_t");
    expect(expectedType(fc, "/srv/aXb")).toBe("regex_t");
    expect(expectedType(fc, "/srv/literal/below")).toBe("regex_t");
    const withLocal = FileContexts.fromTexts([
      { text: base, file: "file_contexts" },
      { text: "/srv/literal\tsystem_u:object_r:local_t:s0\n", file: "file_contexts.local" },
    ]);
    expect(expectedType(withLocal, "/srv/literal")).toBe("local_t");
  });

  it("takes the last matching regex in input order, not the most specific one", () => {
    const text = [
      "/srv/d1(/.*)?\tsystem_u:object_r:d1_t:s0",
      "/srv/d1/cache(/.*)?\tsystem_u:object_r:cache_t:s0",
      "/srv/d2/cache(/.*)?\tsystem_u:object_r:cache_t:s0",
      "/srv/d2(/.*)?\tsystem_u:object_r:d2_t:s0",
    ].join("\n");
    const fc = FileContexts.fromTexts([{ text, file: "file_contexts" }]);
    expect(expectedType(fc, "/srv/d1/cache/x")).toBe("cache_t");
    expect(expectedType(fc, "/srv/d2/cache/x")).toBe("d2_t");
    // .local comes after the base file, so its regexes win over the base's.
    const local = FileContexts.fromTexts([
      { text, file: "file_contexts" },
      { text: "/srv/d1/c.*\tsystem_u:object_r:local_t:s0\n", file: "file_contexts.local" },
    ]);
    expect(expectedType(local, "/srv/d1/cache/x")).toBe("local_t");
  });

  it("applies a file-type flag only to that kind of file", () => {
    const text = [
      "/srv/t(/.*)?\t-d\tsystem_u:object_r:dir_t:s0",
      "/srv/t(/.*)?\t--\tsystem_u:object_r:file_t:s0",
      "/srv/t/link\t-l\tsystem_u:object_r:link_t:s0",
      "/srv/t/.*\t-s\tsystem_u:object_r:sock_t:s0",
    ].join("\n");
    const fc = FileContexts.fromTexts([{ text, file: "file_contexts" }]);
    expect(expectedType(fc, "/srv/t/x", "dir")).toBe("dir_t");
    expect(expectedType(fc, "/srv/t/x", "file")).toBe("file_t");
    expect(expectedType(fc, "/srv/t/x", "socket")).toBe("sock_t");
    expect(expectedType(fc, "/srv/t/x", "fifo")).toBe("nomatch");
    expect(expectedType(fc, "/srv/t/link", "symlink")).toBe("link_t");
    expect(expectedType(fc, "/srv/t/link", "file")).toBe("file_t");
    expect(expectedType(fc, "/var/run", "symlink")).toBe("nomatch");
    expect(expectedType(policy(), "/var/run", "symlink")).toBe("var_run_t");
    expect(expectedType(policy(), "/var/run", "dir")).toBe("var_t");
    // Kind unknown: every spec applies, so the last matching one.
    expect(expectedType(fc, "/srv/t/x")).toBe("sock_t");
  });

  it("tells <<none>> (do not label) from no match", () => {
    const fc = policy();
    expect(fc.lookup("/var/lib/containers/atomic/x", "file")).toMatchObject({
      kind: "none",
      spec: { pattern: "/var/lib/containers/atomic(/.*)?", line: 17 },
    });
    const narrow = FileContexts.fromTexts([{ text: "/srv(/.*)?\tsystem_u:object_r:srv_t:s0\n", file: "fc" }]);
    expect(narrow.lookup("/etc/passwd", "file")).toEqual({ kind: "nomatch" });
  });

  it("applies one substitution, at a path-component boundary, after normalising the path", () => {
    const fc = policy();
    expect(fc.substitute("/var/lib/images/overlay")).toBe("/var/lib/containers/storage/overlay");
    expect(expectedType(fc, "/var/lib/images", "dir")).toBe("container_var_lib_t");
    expect(expectedType(fc, "/var/lib/images/overlay/abc/diff/usr/lib64/libc.so.6", "file")).toBe(
      "container_ro_file_t",
    );
    expect(expectedType(fc, "/var/lib/images/overlay-layers/layers.json", "file")).toBe(
      "container_ro_file_t",
    );
    expect(fc.substitute("/var/lib/imagesX/overlay")).toBe("/var/lib/imagesX/overlay");
    expect(expectedType(fc, "/var/lib/imagesX/overlay", "dir")).toBe("var_lib_t");
    expect(fc.substitute("//var/lib//images/overlay/")).toBe("/var/lib/containers/storage/overlay");
    // Only one rule per file: /a -> /b is not followed by /b -> /var/lib/containers.
    const chained = policy("/b /var/lib/containers\n/a /b\n");
    expect(chained.substitute("/a/x")).toBe("/b/x");
  });

  it("tries substitution lines last first, and .subs before .subs_dist", () => {
    // LIFO: "/srv /opt" (the last line) is tried first and wins for /srv/store/...
    const lifo = policy("/srv/store /var/lib/containers/storage\n/srv /opt\n");
    expect(lifo.substitute("/srv/store/overlay")).toBe("/opt/store/overlay");
    const fifo = policy("/srv /opt\n/srv/store /var/lib/containers/storage\n");
    expect(fifo.substitute("/srv/store/overlay")).toBe("/var/lib/containers/storage/overlay");
    // .subs first; then one .subs_dist rule on its result.
    const both = FileContexts.fromTexts([{ text: FILE_CONTEXTS, file: "file_contexts" }], {
      local: { text: "/var/lib/images /var/lib/containers/storage\n", file: "file_contexts.subs" },
      dist: {
        text: "/var/lib/images /opt/images\n/var/lib/containers /srv/containers\n",
        file: "file_contexts.subs_dist",
      },
    });
    expect(both.substitute("/var/lib/images/overlay")).toBe("/srv/containers/storage/overlay");
    expect(both.substitute("/var/lib/containers/x")).toBe("/srv/containers/x");
    // An original of "/" does not double the slash (selabel_apply_subs).
    expect(policy("/mnt/root /\n").substitute("/mnt/root/var/lib")).toBe("/var/lib");
  });

  it("names the substitution lines the lookup really applied: last line first, .subs before .subs_dist", () => {
    // Both lines apply to /var/lib/images; libselinux tries the last line first.
    const line = (fc: FileContexts, p: string) => fc.substitutionsOf(p).map((r) => `${r.file}:${r.line}`);
    const imagesLast = policy("/var/lib /srv/lib\n/var/lib/images /var/lib/containers/storage\n");
    expect(line(imagesLast, "/var/lib/images")).toEqual(["file_contexts.subs:2"]);
    expect(expectedType(imagesLast, "/var/lib/images/overlay", "dir")).toBe("container_ro_file_t");
    const imagesFirst = policy("/var/lib/images /var/lib/containers/storage\n/var/lib /srv/lib\n");
    expect(line(imagesFirst, "/var/lib/images")).toEqual(["file_contexts.subs:2"]);
    expect(imagesFirst.substitute("/var/lib/images/overlay")).toBe("/srv/lib/images/overlay");
    expect(line(imagesFirst, "/var/lib/imagesX")).toEqual(["file_contexts.subs:2"]);
    expect(line(imagesFirst, "/opt/images")).toEqual([]);
    // One line of each file: .subs first, then .subs_dist on its result.
    const both = FileContexts.fromTexts([{ text: FILE_CONTEXTS, file: "file_contexts" }], {
      local: { text: "/mnt/images /var/lib/images\n", file: "file_contexts.subs" },
      dist: {
        text: "/opt /usr\n/var/lib/images /var/lib/containers/storage\n",
        file: "file_contexts.subs_dist",
      },
    });
    expect(line(both, "//mnt/images/")).toEqual(["file_contexts.subs:1", "file_contexts.subs_dist:2"]);
    expect(both.substitute("/mnt/images/overlay")).toBe("/var/lib/containers/storage/overlay");
  });

  it("loads file_contexts.subs_dist from the host through the loader, with .subs applied first", async () => {
    const tree = await HostTree.create();
    try {
      const files = "/etc/selinux/targeted/contexts/files";
      await tree.write(`${files}/file_contexts`, FILE_CONTEXTS);
      // Fedora's file_contexts.subs_dist has lines of this shape (e.g. /var/roothome /root).
      await tree.write(`${files}/file_contexts.subs_dist`, "# dist\n/srv/containers /var/lib/containers\n");
      const host = new Host({ root: tree.root, procRoot: tree.procRoot });
      const dist = await loadPolicyFileContexts(host, "targeted");
      expect(dist.facts.files.map((f) => [path.basename(f.path), f.status, f.specs])).toEqual([
        ["file_contexts", "ok", 31],
        ["file_contexts.homedirs", "missing", 0],
        ["file_contexts.local", "missing", 0],
        ["file_contexts.subs", "missing", 0],
        ["file_contexts.subs_dist", "ok", 1],
      ]);
      expect(dist.facts.distSubstitutions).toEqual([
        {
          alias: "/srv/containers",
          original: "/var/lib/containers",
          file: `${files}/file_contexts.subs_dist`,
          line: 2,
        },
      ]);
      expect(expectedType(dist.contexts!, "/srv/containers/storage/overlay/l", "dir")).toBe(
        "container_ro_file_t",
      );
      // A local line then maps a relocated store onto the dist alias, which maps it on again.
      await tree.write(`${files}/file_contexts.subs`, "/data/images /srv/containers/storage\n");
      const fresh = new Host({ root: tree.root, procRoot: tree.procRoot });
      const both = (await loadPolicyFileContexts(fresh, "targeted")).contexts!;
      expect(both.substitutionsOf("/data/images").map((r) => path.basename(r.file))).toEqual([
        "file_contexts.subs",
        "file_contexts.subs_dist",
      ]);
      expect(expectedType(both, "/data/images/overlay/x/diff", "dir")).toBe("container_ro_file_t");
    } finally {
      await tree.cleanup();
    }
  });

  it("reports an invalid line with file and line number and skips only that line", () => {
    const text = [
      "# comment",
      "/srv/ok(/.*)?\tsystem_u:object_r:ok_t:s0",
      "/srv/broken(/.*\tsystem_u:object_r:broken_t:s0",
      "/srv/class[a-\tsystem_u:object_r:broken_t:s0",
      "/srv/type\t-x\tsystem_u:object_r:broken_t:s0",
      "/srv/context\tnot-a-context",
      "/srv/lonely",
      "/srv/after(/.*)?\tsystem_u:object_r:after_t:s0",
    ].join("\n");
    const parsed = parseFileContexts(text, "/etc/selinux/targeted/contexts/files/file_contexts");
    expect(parsed.invalid.map((l) => l.line)).toEqual([3, 4, 5, 6, 7]);
    expect(parsed.invalid[0]).toMatchObject({
      file: "/etc/selinux/targeted/contexts/files/file_contexts",
      reason: expect.stringContaining("invalid regex /srv/broken(/.*"),
    });
    expect(parsed.specs.map((s) => s.line)).toEqual([2, 8]);
    const fc = new FileContexts([parsed]);
    expect(expectedType(fc, "/srv/after/x")).toBe("after_t");
    expect(expectedType(fc, "/srv/broken/x")).toBe("nomatch");
    expect(fc.invalid).toHaveLength(5);
  });

  it("parses substitution files as selabel_subs_init does", () => {
    const parsed = parseSubstitutions(
      "# local\n/var/lib/images /var/lib/containers/storage\n\nonefield\n",
      "subs",
    );
    expect(parsed.rules).toEqual([
      { alias: "/var/lib/images", original: "/var/lib/containers/storage", file: "subs", line: 2 },
    ]);
  });

  it("translates the PCRE2 the policies use", () => {
    const match = (regex: string, path: string) => new RegExp(translatePcre(`^${regex}$`), "s").test(path);
    expect(match("/var/lib/containerd/[^/]*/snapshots(/.*)?", "/var/lib/containerd/x/snapshots/1/fs")).toBe(
      true,
    );
    expect(match("/var/lib/containerd/[^/]*/snapshots(/.*)?", "/var/lib/containerd/x/y/snapshots")).toBe(
      false,
    );
    expect(match("/dev/tty[[:digit:]]+", "/dev/tty12")).toBe(true);
    expect(match("/srv/[]x]", "/srv/]")).toBe(true);
    expect(match("/srv/\\Qa.b\\E", "/srv/a.b")).toBe(true);
    expect(match("/srv/\\Qa.b\\E", "/srv/axb")).toBe(false);
    expect(match("/srv/x++", "/srv/xxx")).toBe(true);
    expect(match("/srv/.*", "/srv/a\nb")).toBe(true); // DOTALL
    expect(match("/srv/x", "/srv/x\n")).toBe(true); // PCRE's $ before a final newline
    expect(() => translatePcre("/srv/\\h")).toThrow(/not supported/);
  });

  it("narrows a scope to the specs that can match below a directory", () => {
    const fc = policy();
    const store = fc.scope(fc.substitute("/var/lib/images"));
    const overlay = store.scope(fc.substitute("/var/lib/images/overlay"));
    expect(overlay.candidates).toBe(1);
    expect(overlay.fixedBelow("file")).toMatchObject({ kind: "label", context: CTX("container_ro_file_t") });
    expect(overlay.scope("/var/lib/containers/storage/overlay/abc")).toBe(overlay);
    // volumes/[^/]*/.* depends on the name: nothing fixed below storage/volumes.
    const volumes = store.scope("/var/lib/containers/storage/volumes");
    expect(volumes.fixedBelow("dir")).toBeUndefined();
    expect(volumes.match("/var/lib/containers/storage/volumes/v1", "dir")).toMatchObject({
      context: CTX("container_var_lib_t"),
    });
    expect(volumes.match("/var/lib/containers/storage/volumes/v1/_data", "dir")).toMatchObject({
      context: CTX("container_file_t"),
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Real labels on real filesystems.

const ready = requireParts("SELinux label tests", ["root", "loop"]);

const IMAGESTORE = "/var/lib/images";
const GRAPHROOT = "/var/lib/containers/storage";
const LAYER = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const LAYER2 = "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233";
const IMAGE = "7d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f00f1e";

/** Files of an image store (what `imagestore` holds: overlay/, overlay-images/, overlay-layers/). */
function storeFiles(root: string): string[] {
  return [
    `${root}/overlay/${LAYER}/diff/usr/lib64/libc.so.6`,
    `${root}/overlay/${LAYER}/diff/usr/bin/sh`,
    `${root}/overlay/${LAYER}/diff/etc/passwd`,
    `${root}/overlay/${LAYER}/link`,
    `${root}/overlay/${LAYER2}/diff/app/main.js`,
    `${root}/overlay/${LAYER2}/lower`,
    `${root}/overlay-images/images.json`,
    `${root}/overlay-images/${IMAGE}/manifest`,
    `${root}/overlay-layers/layers.json`,
    `${root}/overlay-layers/${LAYER}.tar-split.gz`,
  ];
}

/** Labels every entry under hostPath (the directory included), not following links. */
function labelTree(tree: HostTree, hostPath: string, label: string): void {
  tree.label(hostPath, label);
  const walk = (local: string) => {
    for (const entry of readEntries(local)) {
      const child = path.join(local, entry.name);
      tree.label(child.slice(tree.root.length), label);
      if (entry.isDirectory()) walk(child);
    }
  };
  walk(tree.local(hostPath));
}

function readEntries(local: string): Dirent[] {
  return readdirSync(local, { withFileTypes: true });
}

/** A correctly labelled split store: imagestore on `mount`, graphroot on the tree's own disk. */
async function splitStore(tree: HostTree, mount: "tmpfs" | "ext4"): Promise<void> {
  if (mount === "tmpfs") await tree.mountTmpfs(IMAGESTORE);
  else await tree.mountLoop(IMAGESTORE, "ext4", { sizeMiB: 64 });
  for (const file of storeFiles(IMAGESTORE)) await tree.write(file, "x");
  await tree.symlink(`../${LAYER}/diff`, `${IMAGESTORE}/overlay/l/ABCDEFGHIJKLMNOPQRSTUVWXYZ`);
  labelTree(tree, IMAGESTORE, CTX("container_var_lib_t"));
  for (const sub of ["overlay", "overlay-images", "overlay-layers"]) {
    labelTree(tree, `${IMAGESTORE}/${sub}`, CTX("container_ro_file_t"));
  }
  // The graphroot as container.fc and the runtime's type transitions label it.
  for (const file of [
    `${GRAPHROOT}/storage.lock`,
    `${GRAPHROOT}/overlay/l/.keep`,
    `${GRAPHROOT}/overlay-images/images.json`,
    `${GRAPHROOT}/overlay-layers/layers.json`,
    `${GRAPHROOT}/overlay-containers/containers.json`,
  ]) {
    await tree.write(file, "x");
  }
  labelTree(tree, GRAPHROOT, CTX("container_var_lib_t"));
  for (const sub of ["overlay", "overlay-images", "overlay-layers"]) {
    labelTree(tree, `${GRAPHROOT}/${sub}`, CTX("container_ro_file_t"));
  }
}

function scan(tree: HostTree, extra: Partial<ScanOptions> = {}): LabelScanResult {
  return scanLabels({
    root: tree.local(IMAGESTORE),
    hostPath: IMAGESTORE,
    contexts: policy(),
    reference: tree.local(GRAPHROOT),
    ...extra,
  });
}

function pairs(list: { actual: string; expected: string; count: number }[]) {
  return list.map((p) => `${p.actual} -> ${p.expected}: ${p.count}`).sort();
}

/**
 * Entries in the store: the root; overlay/ with 17 below it (two layers' files and directories,
 * l/ and its link); overlay-images/ with 3; overlay-layers/ with 2.
 */
const STORE_ENTRIES = 26;

describe.skipIf(!ready)("label scans on real xattrs", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("reads security.selinux without following links, stripping one trailing NUL", async () => {
    tree = await HostTree.create();
    await tree.mountTmpfs("/data");
    await tree.write("/data/with-nul", "x");
    await tree.write("/data/without-nul", "x");
    await tree.write("/data/unlabelled", "x");
    await tree.symlink("with-nul", "/data/link");
    tree.label("/data/with-nul", CTX("container_ro_file_t"));
    tree.label("/data/without-nul", CTX("container_ro_file_t"), { nul: false });
    tree.label("/data/link", CTX("var_lib_t"));
    expect(readLabel(tree.local("/data/with-nul"))).toBe(CTX("container_ro_file_t"));
    expect(readLabel(tree.local("/data/without-nul"))).toBe(CTX("container_ro_file_t"));
    expect(readLabel(tree.local("/data/link"))).toBe(CTX("var_lib_t"));
    expect(readLabel(tree.local("/data/unlabelled"))).toBeNull();
    const missing = readLabel(tree.local("/data/missing"));
    expect(missing).toBeInstanceOf(XattrError);
    expect((missing as XattrError).code).toBe("ENOENT");
  });

  it.skipIf(!requireParts("setfattr/getfattr compatibility", ["root", "attr"]))(
    "reads a label written by setfattr (no NUL) like one written by libselinux",
    async () => {
      tree = await HostTree.create();
      await tree.write("/f", "x");
      execaSync("setfattr", ["-n", "security.selinux", "-v", CTX("etc_t"), tree.local("/f")]);
      expect(readLabel(tree.local("/f"))).toBe(CTX("etc_t"));
      const dump = execaSync("getfattr", ["-n", "security.selinux", "--only-values", tree.local("/f")]);
      expect(dump.stdout).toBe(CTX("etc_t"));
    },
  );

  it("finds nothing wrong in a correctly labelled split store (tmpfs imagestore)", async () => {
    tree = await HostTree.create();
    await splitStore(tree, "tmpfs");
    const result = scan(tree);
    expect(result.checked).toBe(STORE_ENTRIES);
    expect(result.sampled).toBe(false);
    expect(result.noXattrSupport).toBe(false);
    expect(result.errors).toEqual([]);
    expect(result.rootLabel).toBe(CTX("container_var_lib_t"));
    expect(result.rootExpected).toBe(CTX("container_var_lib_t"));
    expect(result.totals.policy).toEqual({ matching: STORE_ENTRIES, mismatched: 0, none: 0, noMatch: 0 });
    expect(result.totals.reference).toEqual({ matching: STORE_ENTRIES, mismatched: 0, unknown: 0 });
    expect(result.subtrees.map((s) => s.name).sort()).toEqual([
      ".",
      "overlay",
      "overlay-images",
      "overlay-layers",
    ]);
    const overlay = result.subtrees.find((s) => s.name === "overlay")!;
    expect(pairs(overlay.policyPairs)).toEqual(["container_ro_file_t -> container_ro_file_t: 18"]);
  });

  it.each(["default_t", "var_lib_t", "unlabeled_t"])(
    "flags a store relabelled wholesale to %s, against the policy and against the graphroot",
    async (type) => {
      tree = await HostTree.create();
      await splitStore(tree, "tmpfs");
      labelTree(tree, IMAGESTORE, CTX(type));
      const result = scan(tree);
      expect(result.totals.policy.mismatched).toBe(STORE_ENTRIES);
      expect(pairs(result.totals.policyPairs)).toEqual([
        `${type} -> container_ro_file_t: ${STORE_ENTRIES - 1}`,
        `${type} -> container_var_lib_t: 1`,
      ]);
      expect(result.totals.reference.mismatched).toBe(STORE_ENTRIES);
      const libc = `${IMAGESTORE}/overlay/${LAYER}/diff/usr/lib64/libc.so.6`;
      const samples = result.subtrees.find((s) => s.name === "overlay")!.policyPairs[0]!.samples;
      expect(samples.length).toBe(5);
      expect(samples.every((s) => s.startsWith(`${IMAGESTORE}/overlay`))).toBe(true);
      // Without any policy the graphroot alone tells the same story.
      const bare = scan(tree, { contexts: null });
      expect(bare.totals.policy.matching + bare.totals.policy.mismatched).toBe(0);
      expect(pairs(bare.totals.referencePairs)).toEqual([
        `${type} -> container_ro_file_t: ${STORE_ENTRIES - 1}`,
        `${type} -> container_var_lib_t: 1`,
      ]);
      expect(readLabel(tree.local(libc))).toBe(CTX(type));
    },
  );

  it("finds partial mislabels deep in layer directories (ext4 imagestore)", async () => {
    tree = await HostTree.create();
    await splitStore(tree, "ext4");
    labelTree(tree, `${IMAGESTORE}/lost+found`, CTX("container_var_lib_t"));
    const libc = `${IMAGESTORE}/overlay/${LAYER}/diff/usr/lib64/libc.so.6`;
    tree.label(libc, CTX("unlabeled_t"));
    tree.label(`${IMAGESTORE}/overlay/${LAYER2}/diff/app`, CTX("default_t"));
    const result = scan(tree);
    expect(result.checked).toBe(STORE_ENTRIES + 1);
    expect(result.totals.policy.mismatched).toBe(2);
    const overlay = result.subtrees.find((s) => s.name === "overlay")!;
    expect(overlay.policyPairs.filter((p) => p.actual !== p.expected)).toEqual(
      [
        {
          actual: "default_t",
          expected: "container_ro_file_t",
          count: 1,
          samples: [`${IMAGESTORE}/overlay/${LAYER2}/diff/app`],
        },
        { actual: "unlabeled_t", expected: "container_ro_file_t", count: 1, samples: [libc] },
      ].sort((a, b) => (a.actual < b.actual ? -1 : 1)),
    );
    // The graphroot has no overlay/<layer>: its deepest existing ancestor, overlay/, is the reference.
    expect(overlay.reference.mismatched).toBe(2);
    // Files below the mislabelled directory are still compared with the right labels.
    expect(overlay.policy.matching).toBe(16);
  });

  it("compares the full context only when asked (restorecon -F)", async () => {
    tree = await HostTree.create();
    await splitStore(tree, "tmpfs");
    tree.label(`${IMAGESTORE}/overlay-images/images.json`, "system_u:object_r:container_ro_file_t:s0:c1,c2");
    expect(scan(tree).totals.policy.mismatched).toBe(0);
    const full = scan(tree, { compare: "full" });
    expect(full.totals.policy.mismatched).toBe(1);
    expect(full.totals.policyPairs.find((p) => p.actual !== p.expected)).toMatchObject({
      actual: "system_u:object_r:container_ro_file_t:s0:c1,c2",
      expected: CTX("container_ro_file_t"),
      samples: [`${IMAGESTORE}/overlay-images/images.json`],
    });
  });

  it("flags a filesystem without xattr support (ramfs) instead of reporting every file", async () => {
    tree = await HostTree.create();
    await tree.mountRamfs(IMAGESTORE);
    for (const file of storeFiles(IMAGESTORE)) await tree.write(file, "x");
    expect((readLabel(tree.local(IMAGESTORE)) as XattrError).code).toBe("ENOTSUP");
    const result = scan(tree);
    expect(result.noXattrSupport).toBe(true);
    expect(result.errors).toEqual([{ code: "ENOTSUP", count: 1, samples: [IMAGESTORE] }]);
    expect(result.checked).toBe(1);
  });

  it("does not follow symlinks: reads the link's own label and never walks into its target", async () => {
    tree = await HostTree.create();
    await splitStore(tree, "tmpfs");
    await tree.write("/etc/hostname", "node");
    await tree.mkdir("/etc/big");
    for (let i = 0; i < 20; i += 1) await tree.write(`/etc/big/f${i}`, "x");
    labelTree(tree, "/etc", CTX("etc_t"));
    await tree.symlink("/etc/hostname", `${IMAGESTORE}/overlay/${LAYER}/diff/etc/hostname`);
    await tree.symlink(tree.local("/etc/big"), `${IMAGESTORE}/overlay/${LAYER}/diff/etc/big`);
    tree.label(`${IMAGESTORE}/overlay/${LAYER}/diff/etc/hostname`, CTX("container_ro_file_t"));
    tree.label(`${IMAGESTORE}/overlay/${LAYER}/diff/etc/big`, CTX("container_ro_file_t"));
    const result = scan(tree);
    expect(result.checked).toBe(STORE_ENTRIES + 2);
    expect(result.totals.policy.mismatched).toBe(0);
  });

  it("never enters a mount inside the tree: skipped by the caller's list, or by st_dev", async () => {
    tree = await HostTree.create();
    await splitStore(tree, "tmpfs");
    const merged = `${IMAGESTORE}/overlay/${LAYER}/merged`;
    await tree.mountTmpfs(merged);
    await tree.write(`${merged}/inside`, "x");
    tree.label(merged, CTX("container_file_t"));
    tree.label(`${merged}/inside`, CTX("container_file_t"));
    const listed = scan(tree, { skip: new Set([tree.local(merged)]) });
    expect(listed.skipped).toEqual({ otherFilesystem: 0, listed: 1, samples: [merged] });
    expect(listed.checked).toBe(STORE_ENTRIES);
    const byDevice = scan(tree);
    expect(byDevice.skipped).toEqual({ otherFilesystem: 1, listed: 0, samples: [merged] });
    expect(byDevice.checked).toBe(STORE_ENTRIES);
    expect(byDevice.totals.policy.mismatched).toBe(0);
  });

  it("stops at its budget and says the result is a sample", async () => {
    tree = await HostTree.create();
    await splitStore(tree, "tmpfs");
    const progress: number[] = [];
    const result = scan(tree, { maxFiles: 7, onProgress: (n) => progress.push(n), progressEvery: 3 });
    expect(result.sampled).toBe(true);
    expect(result.stoppedBy).toBe("maxFiles");
    expect(result.checked).toBe(7);
    expect(result.totals.checked).toBe(7);
    expect(progress).toEqual([3, 6]);
    const timed = scan(tree, { maxMs: 60_000 });
    expect(timed.sampled).toBe(false);
  });

  it("streams very large directories and gives the same answer", async () => {
    tree = await HostTree.create();
    await splitStore(tree, "tmpfs");
    tree.label(`${IMAGESTORE}/overlay/${LAYER}/diff/usr/bin/sh`, CTX("default_t"));
    const listed = scan(tree);
    const streamed = scan(tree, { streamAboveBytes: 0 });
    expect(streamed.checked).toBe(STORE_ENTRIES);
    expect(streamed.totals).toEqual(listed.totals);
  });

  it("puts the working directory back, also when the scan throws", async () => {
    tree = await HostTree.create();
    await splitStore(tree, "tmpfs");
    const before = readlinkSync("/proc/self/cwd");
    scan(tree);
    expect(readlinkSync("/proc/self/cwd")).toBe(before);
    expect(() =>
      scan(tree, {
        progressEvery: 5,
        onProgress: () => {
          // The walk is inside the store now.
          expect(readlinkSync("/proc/self/cwd").startsWith(tree.local(IMAGESTORE))).toBe(true);
          throw new Error("interrupted");
        },
      }),
    ).toThrow("interrupted");
    expect(readlinkSync("/proc/self/cwd")).toBe(before);
  });

  it("refuses a root that is not a directory", async () => {
    tree = await HostTree.create();
    await tree.write("/var/lib/images", "not a directory");
    const result = scan(tree);
    expect(result.errors).toEqual([{ code: "ENOTDIR", count: 1, samples: [IMAGESTORE] }]);
    expect(result.checked).toBe(0);
  });

  it("maps wanted inode numbers to host paths (AVC records name files by dev and ino)", async () => {
    tree = await HostTree.create();
    await splitStore(tree, "tmpfs");
    const libc = `${IMAGESTORE}/overlay/${LAYER}/diff/usr/lib64/libc.so.6`;
    const ino = lstatSync(tree.local(libc), { bigint: true }).ino;
    const result = scan(tree, { wantedInodes: new Set([ino, 999_999_999n]) });
    expect(result.inodes).toEqual({ [String(ino)]: [libc] });
  });

  it("handles a file name that is not UTF-8", async () => {
    tree = await HostTree.create();
    await splitStore(tree, "tmpfs");
    const dir = tree.local(`${IMAGESTORE}/overlay/${LAYER}/diff`);
    const raw = Buffer.concat([Buffer.from(`${dir}/f`), Buffer.from([0xff, 0xfe])]);
    writeFileSync(raw, "x");
    tree.label(`${IMAGESTORE}/overlay/${LAYER}/diff`, CTX("container_ro_file_t"));
    setSelinuxLabel(raw, CTX("unlabeled_t"));
    const result = scan(tree);
    expect(result.errors).toEqual([]);
    expect(result.totals.policyPairs.find((p) => p.actual === "unlabeled_t")).toMatchObject({
      count: 1,
      samples: [`${IMAGESTORE}/overlay/${LAYER}/diff/f\\xff\\xfe`],
    });
  });

  it("loads the policy's file_contexts, .local and .subs through the host root", async () => {
    tree = await HostTree.create();
    const files = "/etc/selinux/targeted/contexts/files";
    await tree.write(`${files}/file_contexts`, FILE_CONTEXTS);
    await tree.write(
      `${files}/file_contexts.local`,
      "# local\n/srv/images(/.*)?\tsystem_u:object_r:container_ro_file_t:s0\n/srv/bad[\tsystem_u:object_r:x_t:s0\n",
    );
    await tree.write(`${files}/file_contexts.subs`, SUBS);
    const host = new Host({ root: tree.root, procRoot: tree.procRoot });
    const { facts, contexts } = await loadPolicyFileContexts(host, "targeted");
    expect(facts.files.map((f) => [path.basename(f.path), f.status])).toEqual([
      ["file_contexts", "ok"],
      ["file_contexts.homedirs", "missing"],
      ["file_contexts.local", "ok"],
      ["file_contexts.subs", "ok"],
      ["file_contexts.subs_dist", "missing"],
    ]);
    expect(facts.files[2]!.invalid).toEqual([
      expect.objectContaining({ file: `${files}/file_contexts.local`, line: 3 }),
    ]);
    expect(facts.localSubstitutions).toEqual([
      { alias: IMAGESTORE, original: GRAPHROOT, file: `${files}/file_contexts.subs`, line: 1 },
    ]);
    expect(expectedType(contexts!, "/var/lib/images/overlay/x", "file")).toBe("container_ro_file_t");
    expect(expectedType(contexts!, "/srv/images/x", "file")).toBe("container_ro_file_t");
    const none = await loadPolicyFileContexts(host, "mls");
    expect(none.contexts).toBeNull();
    expect(none.facts.files[0]!.status).toBe("missing");
  });
});

describe("selinux-scan's progress display on a narrow terminal", () => {
  it("never writes a line wider than the terminal's columns less one, even at 10 columns", () => {
    const writes: string[] = [];
    const stderr = { isTTY: true, columns: 10, write: (text: string) => writes.push(text) };
    let now = 0;
    const bar = progressBar(stderr, "/var/lib/containers/storage", 1000, () => now);
    const spinner = progressBar(stderr, "/var/lib/images", null, () => now);
    for (const checked of [1, 500, 999_999]) {
      bar.update(checked);
      spinner.update(checked);
      now += 100;
    }
    bar.done();
    const ERASE_REST = "\x1b[K";
    const lines = writes.map((w) => {
      const line = w.startsWith("\r") ? w.slice(1) : w;
      return line.endsWith(ERASE_REST) ? line.slice(0, -ERASE_REST.length) : line;
    });
    expect(lines.length).toBe(7);
    expect(lines.slice(0, 6).every((line) => line.length === 9 && line.endsWith("…"))).toBe(true);
    expect(lines[0]).toBe("[-------…");
    expect(lines[1]).toBe("| 1 file…");
    expect(lines[6]).toBe("");
  });
});
