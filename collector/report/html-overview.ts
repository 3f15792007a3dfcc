import { type DiskRole, type Threshold, thresholdLevel, thresholdsForRole } from "../model/eviction.js";
import { formatBytes, formatPercent } from "../model/quantity.js";
import { layout } from "../model/view.js";
import { type Snapshot, SOURCE_NAMES } from "../snapshot.js";
import type { FilesystemRoleFact, FilesystemsFacts, Topology } from "../sources/filesystems.js";
import type { ImageStoreFact } from "../sources/image-stores.js";
import type { KubeletConfigFacts } from "../sources/kubelet-config.js";
import { bar, code, count, factsOrNull, type Html, html, join, notCollected, table } from "./html-parts.js";

const TOPOLOGY: Record<Topology, string> = {
  single: "nodefs, imagefs and containerfs on one filesystem",
  "split-image":
    "split image filesystem (KEP-4191): images on their own filesystem, writable layers on nodefs",
  "separate-runtime": "the whole runtime (images and writable layers) on a filesystem apart from nodefs",
  "three-way":
    "images, writable layers and nodefs each on their own filesystem (not supported by the kubelet)",
  "containerfs-only": "writable layers apart from both nodefs and images (not supported by the kubelet)",
  unknown: "unknown",
};

/** Node, runtime, versions, layout, SELinux mode and when the facts were collected. */
export function summarySection(snapshot: Snapshot, generatedAt: string): Html {
  const fs = factsOrNull(snapshot, "filesystems");
  const cri = factsOrNull(snapshot, "cri");
  const storage = factsOrNull(snapshot, "storage-config");
  const kubelet = factsOrNull(snapshot, "kubelet-config");
  const selinux = factsOrNull(snapshot, "selinux");
  const layerStores = factsOrNull(snapshot, "layer-stores");
  const rows: [string, string][] = [];
  // One row per fact; facts of a shape this version does not know cost their row, not the section.
  const add = (label: string, value: () => unknown) => {
    let text: string;
    try {
      const v = value();
      if (v === undefined) return;
      text = String(v ?? "unknown");
    } catch {
      text = "unreadable in this snapshot";
    }
    rows.push([label, text]);
  };
  add("Node", () => snapshot.node);
  add("Collected", () => snapshot.collectedAt);
  add("Report generated", () => generatedAt);
  add("imagefs-doctor", () => snapshot.tool?.version ?? null);
  add("Host root", () => snapshot.host?.root ?? null);
  add("Runtime", () => {
    if (cri?.runtime) return `${cri.runtime.name} ${cri.runtime.version} (CRI ${cri.runtime.apiVersion})`;
    if (fs) return `${fs.runtime.kind} (${fs.runtime.evidence}); no CRI answer`;
    return "unknown: neither cri nor filesystems was collected";
  });
  add("CRI endpoint", () =>
    cri?.answeredBy ? `${cri.answeredBy.endpoint} (${cri.answeredBy.via})` : undefined,
  );
  if (storage) {
    const cs = () => storage.containersStorage;
    add("Storage driver", () => cs().driver.value);
    add("graphroot", () => `${cs().graphroot.value} (from ${cs().graphroot.from})`);
    add("imagestore", () =>
      cs().imagestore.value ? `${cs().imagestore.value} (from ${cs().imagestore.from})` : "not set",
    );
    add("runroot", () => `${cs().runroot.value} (from ${cs().runroot.from})`);
    add("Additional layer stores", () => {
      const raw = cs().additionalLayerStores.value.map((entry) => entry.raw);
      return raw.length > 0 ? raw.join(", ") : undefined;
    });
  }
  add("Layout", () =>
    fs ? `${fs.topology}: ${TOPOLOGY[fs.topology] ?? fs.topology}` : "unknown (filesystems not collected)",
  );
  add("SELinux", () =>
    selinux
      ? `${selinux.state} (policy ${selinux.policy.type}${selinux.policy.loaded ? "" : ", file contexts not loaded"})`
      : "unknown (selinux not collected)",
  );
  if (kubelet) {
    add("Kubelet configuration", () =>
      kubelet.configFile ? `${kubelet.configFile.path} (${kubelet.configFile.foundBy})` : "none found",
    );
    add("KubeletSeparateDiskGC", () =>
      kubelet.separateDiskGC.value === null ? "default" : String(kubelet.separateDiskGC.value),
    );
    add(
      "Image GC thresholds",
      () =>
        `high ${kubelet.imageGC.highThresholdPercent.value}%, low ${kubelet.imageGC.lowThresholdPercent.value}%`,
    );
  }
  add("Layer store version", () => {
    const hints = (layerStores?.stores ?? []).flatMap((store) => store.versionHints ?? []);
    return hints.length > 0 ? hints.join("; ") : undefined;
  });
  return html`<dl class="facts">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}

/** Every source's status, duration and error. */
export function sourcesSection(snapshot: Snapshot): Html {
  const names = [
    ...new Set([...SOURCE_NAMES, ...Object.keys(snapshot.sources ?? {})]),
  ] as (typeof SOURCE_NAMES)[number][];
  const rows = names.map((name) => {
    const result = snapshot.sources[name] as
      | { status?: string; durationMs?: number; error?: string; reason?: string }
      | undefined;
    const status = result?.status ?? "missing";
    return [
      code(name),
      html`<span class="status status-${status}" data-source-status="${name}">${status}</span>`,
      html`<span class="num">${result?.durationMs === undefined ? "" : `${result.durationMs} ms`}</span>`,
      result?.error ?? result?.reason ?? "",
    ];
  });
  return table(["source", "status", "duration", "error or reason"], rows, { id: "source-table" });
}

interface Mark {
  /** Share of the filesystem used when the threshold is met (0..1). */
  at: number;
  text: string;
  crossed: boolean;
  near: boolean;
}

function marksFor(
  thresholds: { t: Threshold; kind: string }[],
  capacity: number,
  available: number,
  unit: (n: number) => string,
): Mark[] {
  return thresholds.map(({ t, kind }) => {
    const level = thresholdLevel(t, capacity);
    return {
      at: capacity > 0 ? 1 - level / capacity : 0,
      text: `${kind} ${t.signal} < ${t.raw} (= ${unit(level)} free; from ${t.from}${t.gracePeriod ? `, grace ${t.gracePeriod}` : ""})`,
      crossed: available < level,
      near: available < level + capacity * 0.05,
    };
  });
}

function usageBars(
  fact: FilesystemRoleFact,
  diskRoles: DiskRole[],
  kubelet: KubeletConfigFacts | null,
  fs: FilesystemsFacts,
): Html {
  const usage = fact.usage;
  if (!usage) return html`<p class="muted">no usage figures</p>`;
  const lay = layout(fs);
  const collect = (resource: "available" | "inodesFree") => {
    if (!kubelet) return [];
    const seen = new Set<string>();
    const out: { t: Threshold; kind: string }[] = [];
    for (const role of diskRoles) {
      for (const [kind, list] of [
        ["hard", kubelet.eviction.hard],
        ["soft", kubelet.eviction.soft],
      ] as const) {
        for (const t of thresholdsForRole(list, role, resource, lay)) {
          const key = `${kind} ${t.signal}`;
          if (seen.has(key)) continue;
          seen.add(key);
          out.push({ t, kind });
        }
      }
    }
    return out;
  };
  const lines: Html[] = [];
  const one = (
    name: string,
    total: number,
    available: number,
    marks: Mark[],
    unit: (n: number) => string,
  ): Html => {
    const used = total > 0 ? (total - available) / total : 0;
    const state = marks.some((m) => m.crossed) ? "crit" : marks.some((m) => m.near) ? "warn" : "ok";
    const label = `${name}: ${formatPercent(used)} used, ${unit(available)} free of ${unit(total)}`;
    return html`<span>${name}</span>${bar(used, { state, marks: marks.map((m) => m.at), label })}
<span class="line" data-usage="${name}">${label}</span>${marks.map((m) => html`<span class="line${m.crossed ? " crossed" : ""}">${m.crossed ? "past " : ""}eviction: ${m.text}</span>`)}`;
  };
  lines.push(
    one(
      "bytes",
      usage.totalBytes,
      usage.availableBytes,
      marksFor(collect("available"), usage.totalBytes, usage.availableBytes, formatBytes),
      formatBytes,
    ),
  );
  lines.push(
    one(
      "inodes",
      usage.totalInodes,
      usage.freeInodes,
      marksFor(collect("inodesFree"), usage.totalInodes, usage.freeInodes, (n) => count(Math.ceil(n))),
      count,
    ),
  );
  const gc =
    kubelet && diskRoles.includes("imagefs")
      ? html`<span class="line">image GC starts at ${kubelet.imageGC.highThresholdPercent.value}% used, frees down to ${kubelet.imageGC.lowThresholdPercent.value}%</span>`
      : "";
  const unknown =
    !kubelet && diskRoles.length > 0
      ? html`<span class="line">eviction thresholds unknown: kubelet-config was not collected</span>`
      : "";
  return html`<div class="usage">${lines}${gc}${unknown}</div>`;
}

/** What matters about a read-only shared cache: reachable, read-only, complete. */
function additionalStoreLine(store: ImageStoreFact): Html {
  const access = store.access!;
  const parts = [
    access.status === "ok" ? `answers in ${access.probeMs} ms` : access.status,
    access.readOnly === null ? "" : access.readOnly ? "read-only" : "writable",
    access.remote ? `remote${access.nfsVersion ? ` (NFS ${access.nfsVersion})` : ""}` : "",
    access.selinuxContext ? `context=${access.selinuxContext}` : "",
  ].filter(Boolean);
  const incomplete = store.completeness?.incompleteImages ?? 0;
  return html`<div class="muted" data-additional-store="${access.status}">${parts.join(", ")}</div>${
    incomplete > 0
      ? html`<div><b>${count(incomplete)} images lack layers</b> (${count(store.completeness!.missingLayers)} missing)</div>`
      : ""
  }`;
}

/** Stores (roles) → device major:minor → mount point and fstype, with usage against eviction thresholds. */
export function topologySection(snapshot: Snapshot): Html {
  const fs = factsOrNull(snapshot, "filesystems");
  if (!fs) return notCollected(snapshot, "filesystems");
  const kubelet = factsOrNull(snapshot, "kubelet-config");
  const imageStores = factsOrNull(snapshot, "image-stores");
  const groups = new Map<string, FilesystemRoleFact[]>();
  const unplaced: FilesystemRoleFact[] = [];
  for (const role of fs.roles) {
    if (role.status === "ok" && role.device)
      groups.set(role.device, [...(groups.get(role.device) ?? []), role]);
    else unplaced.push(role);
  }
  const storeBox = (role: FilesystemRoleFact): Html => {
    const store = imageStores?.stores.find((s) => s.path === role.path);
    return html`<div class="box store${role.status === "ok" ? "" : " missing"}" data-role="${role.role}" data-path="${role.path}">
<div><span class="role">${role.role}</span> ${code(role.path)}</div>
<div class="muted">set by ${role.configuredBy}</div>
${role.resolved && role.resolved !== role.path ? html`<div class="muted">resolves to ${code(role.resolved)}</div>` : ""}
${role.status === "ok" && role.isMountPoint === false ? html`<div class="muted">a directory on the filesystem below, not a mount point</div>` : ""}
${store ? html`<div class="muted">${count(store.images.count)} images, ${count(store.layers.count)} layers (${formatBytes(store.layers.bytes)})</div>` : ""}
${store?.access ? additionalStoreLine(store) : ""}
</div>`;
  };
  const rows: Html[] = [];
  for (const [device, roles] of groups) {
    const withMount = roles.find((r) => r.mount) ?? roles[0]!;
    const mount = withMount.mount;
    const diskRoles = roles
      .map((r) => r.role)
      .filter((r): r is DiskRole => ["nodefs", "imagefs", "containerfs"].includes(r));
    rows.push(html`<div class="topo-row" data-device="${device}">
<div class="stores">${roles.map(storeBox)}</div><div class="arrow">→</div>
<div class="box device"><span class="muted">device</span><span class="dev">${device}</span>${device === fs.rootDevice ? html`<span class="muted">the host's /</span>` : ""}</div><div class="arrow">→</div>
<div class="box mount">${
      mount
        ? html`<div><span class="role">mount</span> ${code(mount.mountPoint)}</div>
<div>${mount.fstype} from ${code(mount.source)}${mount.readOnly ? html` <b>read-only</b>` : ""}</div>`
        : html`<div class="muted">mount unknown</div>`
    }${usageBars(withMount, diskRoles, kubelet, fs)}</div>
</div>`);
  }
  for (const role of unplaced) {
    rows.push(html`<div class="topo-row" data-device="">
<div class="stores">${storeBox(role)}</div><div class="arrow">→</div>
<div class="box device missing"><span class="muted">device</span><span class="dev">none</span></div><div class="arrow">→</div>
<div class="box mount missing"><div><b>${role.status}</b>${role.error ? html`: ${role.error}` : ""}</div>${role.mount ? html`<div>on ${code(role.mount.mountPoint)} (${role.mount.fstype})</div>` : ""}</div>
</div>`);
  }
  const cri = factsOrNull(snapshot, "cri");
  const criRows = cri
    ? [
        ...cri.imageFilesystems.map((f) => ["image", f] as const),
        ...cri.containerFilesystems.map((f) => ["container", f] as const),
      ].map(([kind, f]) => [
        kind,
        code(f.mountpoint),
        f.device ?? "unknown",
        f.usedBytes === null ? "?" : formatBytes(f.usedBytes),
        count(f.inodesUsed),
      ])
    : [];
  const leftOver = (imageStores?.stores ?? []).filter((s) => s.role === "unconfigured");
  return join([
    html`<p>Layout <b>${fs.topology}</b>: ${TOPOLOGY[fs.topology] ?? ""}. Stores sharing a device share one filesystem (the kubelet's rule: same <code>stat().dev</code>). Marks on the bars are the eviction thresholds the kubelet enforces.</p>`,
    html`<div class="topology">${rows}</div>`,
    criRows.length > 0
      ? html`<h3>What the runtime reports over CRI (ImageFsInfo)</h3>${table(["filesystem", "mount point", "device", "used", "inodes used"], criRows)}`
      : "",
    leftOver.length > 0
      ? html`<h3>Image stores on disk that nothing configures</h3>${table(
          ["path", "images", "layers", "bytes"],
          leftOver.map((s) => [
            code(s.path),
            count(s.images.count),
            count(s.layers.count),
            formatBytes(s.layers.bytes),
          ]),
        )}`
      : "",
    fs.fstab.length > 0
      ? html`<h3>/etc/fstab lines for these paths</h3>${table(
          ["spec", "mount point", "fstype", "options"],
          fs.fstab.map((e) => [code(e.spec), code(e.mountPoint), e.fstype, e.options]),
        )}`
      : "",
  ]);
}
