import { afterEach, describe, expect, it } from "vitest";
import { SOURCES } from "../collector/collect.js";
import { SOURCE_NAMES } from "../collector/snapshot.js";
import { LOADER_ERROR, LOADER_ERROR_WORDS } from "../collector/sources/pod-logs.js";
import { collectTree, HostTree } from "./support/scenarios.js";

/** A CRI log line as the kubelet writes it: <RFC3339Nano> <stream> <P|F> <message>. */
const line = (time: string, message: string, stream = "stderr") => `${time} ${stream} F ${message}\n`;

describe("container logs with loader errors", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("finds relocation and other loader Permission denied errors, per namespace, pod and container", async () => {
    tree = await HostTree.create();
    const web = "/var/log/pods/shop_web-7d9f_0b6c1e44-1111-4a4a-9c9c-aaaaaaaaaaaa/nginx/3.log";
    await tree.write(
      web,
      line("2026-11-23T08:00:00.100000000Z", "starting nginx", "stdout") +
        line(
          "2026-11-23T08:00:00.200000000Z",
          "nginx: error while loading shared libraries: libc.so.6: cannot apply additional memory protection after relocation: Permission denied",
        ) +
        line(
          "2026-11-23T08:00:05.200000000Z",
          "nginx: error while loading shared libraries: libc.so.6: cannot apply additional memory protection after relocation: Permission denied",
        ),
    );
    await tree.write(
      "/var/log/pods/batch_job-1_22222222-2222-4b4b-9d9d-bbbbbbbbbbbb/worker/0.log",
      line(
        "2026-11-23T07:00:00.000000000Z",
        "/app/worker: error while loading shared libraries: libssl.so.3: cannot open shared object file: Permission denied",
      ),
    );
    await tree.write(
      "/var/log/pods/kube-system_dns-1_33333333-3333-4c4c-9e9e-cccccccccccc/coredns/0.log",
      line("2026-11-23T07:00:00.000000000Z", "[INFO] plugin/reload: Running configuration", "stdout"),
    );
    // Rotated logs are not read; only the current <n>.log of each container.
    await tree.write(
      `${web}.20261122-000000`,
      line("2026-11-22T00:00:00.000000000Z", "RELRO protection failed"),
    );
    const snapshot = await collectTree(tree);
    const logs = snapshot.sources["pod-logs"];
    expect(logs.status).toBe("ok");
    if (logs.status !== "ok") return;
    expect(logs.facts.filesScanned).toBe(3);
    expect(logs.facts.errors).toEqual([
      expect.objectContaining({
        namespace: "batch",
        pod: "job-1",
        container: "worker",
        kind: "shared-object",
        count: 1,
      }),
      expect.objectContaining({
        namespace: "shop",
        pod: "web-7d9f",
        container: "nginx",
        kind: "relocation",
        count: 2,
        lastSeen: "2026-11-23T08:00:05.200000000Z",
        file: web,
      }),
    ]);
  });

  it("decodes no log without one of the words every loader error pattern holds", () => {
    // A pattern without one of them would never be looked for: the prefilter would skip its logs.
    const alternatives = LOADER_ERROR.source.split("|");
    expect(alternatives.length).toBeGreaterThanOrEqual(4);
    for (const alternative of alternatives)
      expect(
        LOADER_ERROR_WORDS.some((word) => alternative.includes(word)),
        alternative,
      ).toBe(true);
  });

  it("reads only the end of a huge log, and is absent without /var/log/pods", async () => {
    tree = await HostTree.create();
    expect((await collectTree(tree)).sources["pod-logs"].status).toBe("absent");
    const noise = line("2026-11-23T08:00:00.000000000Z", "x".repeat(200), "stdout").repeat(5000);
    const denied = line("2026-11-23T09:00:00.000000000Z", "sh: RELRO protection failed: Permission denied");
    await tree.write("/var/log/pods/a_b_c/c/0.log", denied + noise + denied);
    const logs = (await collectTree(tree)).sources["pod-logs"];
    if (logs.status !== "ok") throw new Error(logs.status);
    expect(logs.facts.bytesRead).toBe(128 * 1024);
    expect(logs.facts.errors.map((e) => e.count)).toEqual([1]);
  });

  it("lists every source collect runs, in snapshot order", () => {
    expect(SOURCES.map((s) => s.name)).toEqual([...SOURCE_NAMES]);
  });
});
