import { describe, expect, it } from "vitest";
import { archiveBound, spaceMargin } from "../collector/bundle/archive.js";
import { Gatherer, safeEntryName } from "../collector/bundle/items.js";
import { ExcerptPrefetch } from "../collector/bundle/journal-excerpt.js";
import { UNSAFE_NAME_CHARACTER } from "../collector/bundle/reader.js";
import {
  ANY_RULE,
  FLAG_NAMES,
  HEADER_NAMES,
  KUBECONFIG_NAMES,
  Redactor,
  SECRET_KEYS,
  secretFileReason,
} from "../collector/bundle/redact.js";
import { parseDuration, parseSize } from "../collector/commands/must-gather.js";

/** The masking rules one by one, on the shapes of text a bundle holds. No host needed. */

function masked(text: string, options: { obfuscate?: boolean; hostNames?: string[] } = {}) {
  const redactor = new Redactor({ obfuscate: options.obfuscate ?? false, hostNames: options.hostNames });
  const out = redactor.text(text, "f");
  return { out, counts: Object.fromEntries(redactor.countsFor("f").map((c) => [c.rule, c.count])) };
}

describe("redaction rules", () => {
  it.each([
    ["url-credentials", 'location = "https://bob:pa55@mirror.example.org:5000/v2"', "pa55"],
    ["url-credentials", "proxy https://ghp_tok3n@github.com/x", "ghp_tok3n"],
    ["authorization-header", "request header Authorization: Bearer abc.def.ghi", "abc.def.ghi"],
    ["authorization-header", '"Authorization": ["Basic dXNlcjpwYXNz"]', "dXNlcjpwYXNz"],
    ["authorization-header", "X-Registry-Auth: eyJ1c2VybmFtZSI6ImEifQ==", "eyJ1c2VybmFtZSI6ImEifQ"],
    ["bearer-token", 'msg="retrying with Bearer s3cr3t-t0ken-value"', "s3cr3t-t0ken-value"],
    ["password", 'level=error msg="login" password=hunter2 user=root', "hunter2"],
    ["password", 'password = "two words"', "two words"],
    ["password", '"token": "abcdef123"', "abcdef123"],
    ["kubeconfig-credential", "    client-key-data: LS0tLS1CRUdJTiBSU0E=", "LS0tLS1CRUdJTiBSU0E"],
    [
      "pem-private-key",
      "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIB\n-----END RSA PRIVATE KEY-----\nrest",
      "MIIEpAIB",
    ],
    ["pem-private-key", "cut -----BEGIN EC PRIVATE KEY-----\nMHcCAQEE", "MHcCAQEE"],
    ["pem-certificate", "-----BEGIN CERTIFICATE-----\nMIIDdzCC\n-----END CERTIFICATE-----", "MIIDdzCC"],
  ])("%s masks %j", (rule, text, secret) => {
    const { out, counts } = masked(text);
    expect(out).not.toContain(secret);
    expect(out).toContain("[REDACTED]");
    expect(counts[rule], JSON.stringify(counts)).toBeGreaterThan(0);
  });

  // Every name the rules know, so that the one-test prefilter (ANY_RULE) cannot miss one.
  it.each([
    "proxy-authorization: Basic c3VwZXJzZWNyZXQ=",
    "x-auth-token: c3VwZXJzZWNyZXQ",
    "x-api-key: c3VwZXJzZWNyZXQ",
    "x-amz-security-token: c3VwZXJzZWNyZXQ",
    "cookie: session=c3VwZXJzZWNyZXQ",
    "set-cookie: c3VwZXJzZWNyZXQ",
    "Negotiate c3VwZXJzZWNyZXQ",
    "client-certificate-data: c3VwZXJzZWNyZXQ",
    "certificate-authority-data: c3VwZXJzZWNyZXQ",
    "id-token: c3VwZXJzZWNyZXQ",
    "refresh-token: c3VwZXJzZWNyZXQ",
    "access-token: c3VwZXJzZWNyZXQ",
    "passwd=c3VwZXJzZWNyZXQ",
    "pass=c3VwZXJzZWNyZXQ",
    "pwd=c3VwZXJzZWNyZXQ",
    "secret=c3VwZXJzZWNyZXQ",
    "api_key=c3VwZXJzZWNyZXQ",
    "access-key=c3VwZXJzZWNyZXQ",
    "secretkey=c3VwZXJzZWNyZXQ",
    "client_secret=c3VwZXJzZWNyZXQ",
    "IdentityToken=c3VwZXJzZWNyZXQ",
    "registrytoken=c3VwZXJzZWNyZXQ",
    "bearer_token=c3VwZXJzZWNyZXQ",
  ])("masks %j", (text) => {
    expect(masked(text).out).not.toContain("c3VwZXJzZWNyZXQ");
  });

  it("keeps a JSON document without secrets byte for byte, and still masks a key spelled with \\u escapes", () => {
    const redactor = new Redactor({ obfuscate: false });
    const layers = '[{"id":"c0ffee","parent":"","diff-size":12,"names":["a"]}]';
    expect(redactor.jsonText(layers, "layers.json")).toBe(layers);
    const escaped = redactor.jsonText('{"\\u0061uth":"c3VwZXJzZWNyZXQ"}', "auth.json");
    expect(escaped).not.toContain("c3VwZXJzZWNyZXQ");
    expect(JSON.parse(escaped)).toEqual({ auth: "[REDACTED]" });
  });

  it("masks every value of a TOML header table and of an inline header table, keeping the keys", () => {
    const toml = `[[resolver.host."r.example".mirrors]]
host = "m.example"

[resolver.host."r.example".mirrors.header]
Authorization = [
  "Basic c2VjcmV0",
]
X-Custom = "custom-secret"

[[resolver.host."r.example".mirrors]]
host = "m2.example"
header = { Authorization = "Bearer inline-secret", X-Other = "other" }

[blob]
check_always = true
`;
    const { out, counts } = masked(toml);
    for (const secret of ["c2VjcmV0", "custom-secret", "inline-secret", '"other"'])
      expect(out).not.toContain(secret);
    expect(out).toContain('Authorization = ["[REDACTED]"]');
    expect(out).toContain('X-Custom = "[REDACTED]"');
    expect(out).toContain("check_always = true");
    expect(out).toContain('host = "m.example"');
    expect(counts["header-value"]).toBe(4);
  });

  it("leaves text without secrets alone, and masks each secret once", () => {
    const text =
      'graphroot = "/var/lib/containers/storage"\nimagestore = "/var/lib/images"\nauth helper missing\nBasic authentication failed\n';
    expect(masked(text).out).toBe(text);
    const twice = new Redactor({ obfuscate: false });
    const once = twice.text("password=x1 Authorization: Bearer abcdefgh", "a");
    expect(twice.text(once, "b")).toBe(once);
    expect(twice.countsFor("b")).toEqual([]);
  });

  it("masks JSON by key, keeps it JSON, and masks the value after a secret flag in an argv", () => {
    const redactor = new Redactor({ obfuscate: false });
    const out = redactor.json(
      {
        auth: { username: "robot", password: "p", identitytoken: "t", auth: "YWJj" },
        argv: ["/usr/bin/stargz-store", "--password", "flagsecret", "--root", "/var/lib/stargz-store"],
        note: "Authorization: Basic abcdefgh",
        size: 3,
      },
      "x.json",
    );
    const text = JSON.stringify(out);
    for (const secret of ['"p"', '"t"', "YWJj", "flagsecret", "abcdefgh"]) expect(text).not.toContain(secret);
    expect(out.auth).toEqual({
      username: "robot",
      password: "[REDACTED]",
      identitytoken: "[REDACTED]",
      auth: "[REDACTED]",
    });
    expect(out.argv[4]).toBe("/var/lib/stargz-store");
    expect(out.size).toBe(3);
  });

  it("masks the value after --creds and --credentials in a JSON document given as text, and on a command line", () => {
    const redactor = new Redactor({ obfuscate: false });
    const json = redactor.jsonText('{"args":["skopeo","copy","--creds","admin:hunter2"]}', "x.json");
    expect(json).not.toContain("hunter2");
    expect(JSON.parse(json)).toEqual({ args: ["skopeo", "copy", "--creds", "[REDACTED]"] });
    const long = redactor.jsonText(
      '["skopeo","--credentials","admin:hunter3","--src-creds","a:hunter4"]',
      "y.json",
    );
    expect(long).not.toContain("hunter3");
    expect(long).not.toContain("hunter4");
    expect(redactor.countsFor("x.json")).toEqual([{ rule: "password", count: 1 }]);

    const line =
      "skopeo copy --creds admin:hunter2 --dest-creds=robot:hunter3 docker://a docker://b\n" +
      "podman login --password=hunter4 -u me r.example\npodman login --password-stdin --creds --tls-verify r\n";
    const text = redactor.text(line, "journal.log");
    for (const secret of ["hunter2", "hunter3", "hunter4"]) expect(text).not.toContain(secret);
    expect(text).toContain("skopeo copy --creds [REDACTED] --dest-creds=[REDACTED] docker://a");
    expect(text).toContain("podman login --password-stdin --creds --tls-verify r");
    expect(redactor.countsFor("journal.log")).toEqual([{ rule: "password", count: 3 }]);
  });

  it("masks a long text line by line around the rules' words exactly as it masks it whole", () => {
    // Journal-like lines, and pieces that test where a window must reach: a name at a line's end
    // with its value lines below (after blank and white-space-only lines), a header value in two
    // tokens over two lines, schemes, flags, words in any case, text with no word at all.
    const pieces = [
      "2026-11-23T10:00:00.000Z node crio[1]: pulled image quay.io/x/y@sha256:0a1b",
      "2026-11-23T10:00:01.000Z node kubelet[2]: SyncLoop (PLEG): event for pod",
      "    continuation of a message",
      "",
      "   \t ",
      "password:",
      "password:\n\n   \n  hunter2 and more",
      "token=\n2026-11-23T10:00:02.000Z node crio[1]: the next line",
      "Authorization:\n  Bearer\n  abc.def.ghi",
      "Authorization:\n\n  Bearer\n \t \n  abc.def.ghi",
      "Negotiate\n   \n c3VwZXJzZWNyZXQ=",
      "Proxy-Authorization:\n\n  Digest\n  abc.def",
      "Authorization\n=\n[\nDigest\nhunter2xyz",
      "x-api-key\n:\n \n[\n  Digest\n\tc3VwZXJzZWNyZXQ",
      "X-Registry-Auth = [",
      'msg="retrying with Bearer s3cr3t-t0ken-value"',
      "proxy https://bob:pa55@mirror.example.org:5000/v2 and http://plain.example.org/",
      "skopeo copy --creds user:pw --src-creds=a:b --password x",
      "client-key-data: LS0tLS1CRUdJTiBSU0E=",
      '{"token": "abcdef123", "key": "value", "PASS": "Word"}',
      "TOKEN",
      "=value-on-its-own-line",
      "Basic authentication is prose",
      "://",
    ];
    let seed = 5;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed >> 16;
    };
    for (let k = 0; k < 300; k += 1) {
      const lines: string[] = [];
      let chars = 0;
      while (chars < 70 * 1024) {
        // Mostly plain journal lines, as an excerpt is, with the pieces scattered in.
        const line = next() % 4 === 0 ? pieces[next() % pieces.length]! : pieces[next() % 2]!;
        lines.push(line);
        chars += line.length + 1;
      }
      const text = lines.join("\n");
      const windows = new Redactor({ obfuscate: false });
      const whole = new Redactor({ obfuscate: false, lineWindows: false });
      expect(windows.text(text, "f")).toBe(whole.text(text, "f"));
      // The same counts (met in another order: window by window instead of rule by rule).
      const byRule = (r: Redactor) => r.countsFor("f").sort((x, y) => (x.rule < y.rule ? -1 : 1));
      expect(byRule(windows)).toEqual(byRule(whole));
    }
  });

  it("has a prefilter word in every name a rule looks for", () => {
    // Every spelling of an alternation of names: `a[_-]?b` and `(?:x-)?y` spelled each way.
    const spellings = (alternation: string): string[] => {
      const out: string[] = [];
      // Split at the top level only: `(?:src-|dest-)?creds` is one name.
      for (const name of alternation.split(/\|(?![^(]*\))/)) {
        let forms = [""];
        for (const part of name.match(/\[[^\]]*\]\??|\(\?:[^)]*\)\??|[^[(]/g) ?? []) {
          const optional = part.endsWith("?") && part.length > 1;
          const body = optional ? part.slice(0, -1) : part;
          const choices = body.startsWith("[")
            ? [...body.slice(1, -1)]
            : body.startsWith("(?:")
              ? body.slice(3, -1).split("|")
              : [body];
          forms = forms.flatMap((f) => [...(optional ? [f] : []), ...choices.map((c) => f + c)]);
        }
        out.push(...forms);
      }
      return out;
    };
    expect(spellings("api[_-]?key|(?:proxy-)?authorization")).toEqual([
      "apikey",
      "api_key",
      "api-key",
      "authorization",
      "proxy-authorization",
    ]);
    const names = [SECRET_KEYS, HEADER_NAMES, KUBECONFIG_NAMES, FLAG_NAMES].flatMap(spellings);
    expect(names).toContain("dest-creds");
    expect(names).toContain("x-amz-security-token");
    for (const name of names) {
      expect(ANY_RULE.test(name), name).toBe(true);
      expect(ANY_RULE.test(name.toUpperCase()), name).toBe(true);
    }
  });
});

describe("obfuscation", () => {
  it("replaces the node's names, FQDNs and addresses with the same token everywhere", () => {
    const redactor = new Redactor({ obfuscate: true, hostNames: ["worker-0.lab.acme.lan"] });
    const a = redactor.text(
      "worker-0 pulled from registry.acme.lan at 10.1.2.3 and [fd00::7]:5000; worker-0.lab.acme.lan",
      "a",
    );
    const b = redactor.text("again: registry.acme.lan, 10.1.2.3, fd00::7, WORKER-0", "b");
    const node = redactor.tokenFor("worker-0.lab.acme.lan")!;
    const short = redactor.tokenFor("worker-0")!;
    const registry = redactor.tokenFor("registry.acme.lan")!;
    const v4 = redactor.tokenFor("10.1.2.3")!;
    const v6 = redactor.tokenFor("fd00::7")!;
    expect(a).toBe(`${short} pulled from ${registry} at ${v4} and [${v6}]:5000; ${node}`);
    expect(b).toBe(`again: ${registry}, ${v4}, ${v6}, ${short}`);
    expect(new Set([node, short, registry]).size).toBe(3);
    expect(node).toMatch(/^host-\d{4}$/);
    expect(v4).toMatch(/^ip-\d{4}$/);
  });

  it("leaves file names, versions, times, reverse-DNS identifiers, fstypes and loopback addresses alone", () => {
    const redactor = new Redactor({ obfuscate: true, hostNames: ["node-1"] });
    const text = [
      "/etc/containers/storage.conf /etc/crio/crio.conf.d/10-imagestore.conf kubelet.service config.toml",
      "libc.so.6 images.json file_contexts.local io.containerd.snapshotter.v1.overlayfs fuse.bindfs",
      "v1.31.3 2026-11-23T12:00:00.123Z 12:34:56 aa:bb:cc:dd:ee:ff sha256:abcd system_u:object_r:default_t:s0",
      "127.0.0.1 ::1 docker.io/library/busybox quay.io/x registry.k8s.io/pause kubelet.config.k8s.io/v1beta1",
      "[storage.options.overlay] overlay.imagestore=/var/lib/images crio.runtime.default_runtime document.body",
    ].join("\n");
    expect(redactor.text(text, "f")).toBe(text);
  });

  it("keeps JSON valid, and replaces names in keys too", () => {
    const redactor = new Redactor({ obfuscate: true, hostNames: ["n1"] });
    const out = redactor.json(
      { "mirror.acme.lan": { host: "10.0.0.9", text: 'say "hi" to\nmirror.acme.lan' } },
      "j",
    );
    const token = redactor.tokenFor("mirror.acme.lan")!;
    expect(Object.keys(out)).toEqual([token]);
    expect(JSON.parse(JSON.stringify(out))).toEqual({
      [token]: { host: redactor.tokenFor("10.0.0.9"), text: `say "hi" to\n${token}` },
    });
  });

  it("treats only the text of an HTML page, never its script or style", () => {
    const redactor = new Redactor({ obfuscate: true, hostNames: ["worker-9"] });
    const page =
      '<meta http-equiv="Content-Security-Policy" content="script-src \'sha256-ab+pwd=x\'"><p>worker-9 at 10.9.9.9</p><script>document.body.dataset.x = window.location.host;</script><style>a::before{}</style>';
    const out = redactor.html(page, "report.html");
    expect(out).toContain("<script>document.body.dataset.x = window.location.host;</script>");
    expect(out).toContain("a::before");
    expect(out).toContain("'sha256-ab+pwd=x'");
    expect(out).not.toContain("worker-9");
    expect(out).not.toContain("10.9.9.9");
  });
});

describe("credential files", () => {
  it.each([
    ["/run/containers/0/auth.json", undefined, "auth.json"],
    ["/var/lib/kubelet/config.json", undefined, "pull secret"],
    ["/etc/pki/tls/private/node.key", undefined, "key or certificate"],
    ["/etc/crio/crio.conf.d/99-x.conf", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n", "private key"],
    ["/etc/kubernetes/kubelet.conf", "apiVersion: v1\nkind: Config\nusers:\n- name: a\n", "kubeconfig"],
    ["/etc/containers/x.json", '{\n "auths": {"r": {"auth": "x"}}}', "auths"],
  ])("%s is not collected", (hostPath, text, reason) => {
    expect(secretFileReason(hostPath, text)).toContain(reason);
  });

  it("collects configuration files", () => {
    expect(
      secretFileReason("/etc/containers/storage.conf", '[storage]\ndriver = "overlay"\n'),
    ).toBeUndefined();
    expect(secretFileReason("/var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n")).toBeUndefined();
  });
});

describe("options and bounds", () => {
  it("reads durations as Go and oc print them, and sizes in decimal and binary units", () => {
    expect(parseDuration("24h")).toBe(86_400_000);
    expect(parseDuration("2h0m0s")).toBe(7_200_000);
    expect(parseDuration("90m")).toBe(5_400_000);
    expect(parseDuration("3600s")).toBe(3_600_000);
    expect(parseDuration("45")).toBe(45_000);
    expect(() => parseDuration("yesterday")).toThrow(/not a duration/);
    expect(() => parseDuration("1h garbage")).toThrow(/not a duration/);
    expect(parseSize("20MB")).toBe(20_000_000);
    expect(parseSize("64MiB")).toBe(64 * 1024 * 1024);
    expect(parseSize("500K")).toBe(500_000);
    expect(parseSize("1234")).toBe(1234);
    expect(() => parseSize("lots")).toThrow(/not a size/);
  });

  it("bounds the archive from above and keeps a margin of 4 MiB to 512 MiB", () => {
    const bound = archiveBound("top", [{ name: "a", bytes: 1 }]);
    expect(bound).toBeGreaterThan(512 * 3);
    expect(spaceMargin(8 * 1024 * 1024)).toBe(4 * 1024 * 1024);
    expect(spaceMargin(100 * 1024 ** 3)).toBe(512 * 1024 * 1024);
    expect(spaceMargin(10 * 1024 ** 3)).toBe(Math.ceil(10 * 1024 ** 3 * 0.02));
  });
});

describe("gathering steps", () => {
  it("marks what a step had begun as timeout at its deadline, ignores what it adds later, and skips steps past the run's deadline", async () => {
    const gatherer = new Gatherer({ runDeadline: performance.now() + 400, stepMs: 100 });
    let late: (() => void) | undefined;
    await gatherer.step("stuck", async (context) => {
      context.begin("a.txt", "/a").ok("done in time");
      const hanging = context.begin("b.txt", "/b");
      await new Promise<void>((resolve) => {
        late = () => {
          hanging.ok("too late");
          context.begin("c.txt", "/c").ok("too late");
          resolve();
        };
      });
    });
    late!();
    await gatherer.step("fine", async (context) => {
      context.begin("d.txt", "/d").fail("error", "EACCES: permission denied");
      context.begin("e.txt", "/e").drop();
    });
    await new Promise((resolve) => setTimeout(resolve, 400));
    await gatherer.step("after the deadline", async (context) => {
      context.begin("f.txt", "/f").ok("never");
    });
    const byPath = Object.fromEntries(gatherer.items.map((i) => [i.path ?? String(i.source), i]));
    expect(byPath["a.txt"]).toMatchObject({ status: "ok", content: "done in time" });
    expect(byPath["b.txt"]).toMatchObject({ status: "timeout" });
    expect(byPath["b.txt"]!.error).toContain('step "stuck" ran past its 100 ms deadline');
    expect(byPath["b.txt"]!.content).toBeUndefined();
    expect(byPath["c.txt"]).toBeUndefined();
    expect(byPath["d.txt"]).toMatchObject({ status: "error", error: "EACCES: permission denied" });
    expect(byPath["e.txt"]).toBeUndefined();
    expect(byPath["f.txt"]).toBeUndefined();
    expect(byPath["step: after the deadline"]).toMatchObject({ status: "skipped" });
    expect(gatherer.steps.map((s) => [s.name, s.status])).toEqual([
      ["stuck", "timeout"],
      ["fine", "ok"],
      ["after the deadline", "skipped"],
    ]);
  });

  it("runs steps side by side, each in its place in the manifest from its start", async () => {
    const gatherer = new Gatherer({ runDeadline: performance.now() + 5000, stepMs: 1000 });
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const started = performance.now();
    await Promise.all([
      gatherer.step("slow", async (context) => {
        await pause(150);
        context.begin("slow.txt", "/slow").ok("slow");
      }),
      gatherer.step("quick", async (context) => {
        await pause(10);
        context.begin("quick.txt", "/quick").ok("quick", { durationMs: 1234 });
      }),
    ]);
    expect(performance.now() - started).toBeLessThan(300);
    expect(gatherer.steps.map((s) => [s.name, s.status, s.items])).toEqual([
      ["slow", "ok", 1],
      ["quick", "ok", 1],
    ]);
    // An item gathered ahead of its step (in the journal worker) keeps its own time.
    expect(gatherer.items.find((i) => i.path === "quick.txt")?.durationMs).toBe(1234);
  });

  it("says when a journal excerpt was not read ahead, so that its step reads it itself", async () => {
    // Under vitest there is no journal-worker.js next to journal-excerpt.ts: the worker cannot start.
    const job = { directories: ["/nonexistent"], filters: [], sinceMs: 0, maxBytes: 1024, deadlineMs: 1000 };
    const prefetch = new ExcerptPrefetch(new Map([["journal/crio.service.log", job]]));
    expect(prefetch.take("journal/kubelet.service.log")).toBeUndefined();
    expect(await prefetch.take("journal/crio.service.log")).toBeUndefined();
    await prefetch.stop();
  });
});

describe("bundle entry names", () => {
  it("escapes every character diagnose --bundle refuses, and cuts long components apart", () => {
    const hostile = "host/etc/\u0000\u001b[2J\u007f\u0085\u200b\u2028\u202e\u2066name\ufffd.conf";
    const safe = safeEntryName(hostile);
    expect(UNSAFE_NAME_CHARACTER.test(safe)).toBe(false);
    expect(safe).toBe(
      "host/etc/\\u{0}\\u{1b}[2J\\u{7f}\\u{85}\\u{200b}\\u{2028}\\u{202e}\\u{2066}name\\u{fffd}.conf",
    );
    const long = safeEntryName(`host/${"a".repeat(300)}/${"a".repeat(300)}b`);
    const [, first, second] = long.split("/");
    expect(Buffer.byteLength(first!)).toBeLessThanOrEqual(200);
    expect(first).not.toBe(second);
  });
});
