import { isWithin } from "../host/mountinfo.js";
import { criFacts, filesystemFacts, runtimeService, storageFacts } from "../model/view.js";
import type { Snapshot } from "../snapshot.js";
import type { LayerStoreFacts } from "../sources/layer-stores.js";
import { factsOf } from "../sources/source.js";
import type { CheckDefinition, CheckOptions, FindingDraft } from "./finding.js";

const AREA = "lazy pulling";

function layerStores(snapshot: Snapshot): LayerStoreFacts[] {
  return factsOf(snapshot.sources["layer-stores"])?.stores ?? [];
}

/** Journal counts of a pack's reasons (log rule packs stargz-store, crio-layer-store, ...). */
function reasonCounts(snapshot: Snapshot, reasons: string[]) {
  return (factsOf(snapshot.sources.journal)?.counts ?? []).filter((c) => reasons.includes(c.reason));
}

function countLines(counts: ReturnType<typeof reasonCounts>): string[] {
  return counts.map((c) => `${c.count} × ${c.reason} from ${c.unit} (last ${c.lastSeen}): ${c.example}`);
}

/** The unit that serves a store, for systemctl: stargz-store.service unless the process says otherwise. */
function unitOf(store: LayerStoreFacts): string {
  return store.process && store.process.kind !== "unknown" ? store.process.kind : "stargz-store";
}

const notMounted: CheckDefinition = {
  id: "LAYER_STORE_NOT_MOUNTED",
  severity: "critical",
  title: "A configured additional layer store is not mounted",
  area: AREA,
  description:
    "storage.conf lists an additional layer store, its server runs, but no FUSE mount is at its path. CRI-O " +
    'refuses to start when the directory is missing ("can\'t stat additionallayerstore dir"), and every image ' +
    "pulled lazily through it can no longer start.",
  confirm: ["findmnt <store>", "systemctl status stargz-store"],
  run(snapshot) {
    return layerStores(snapshot)
      .filter((store) => store.process !== null && !store.mount?.fstype.startsWith("fuse"))
      .map((store) => ({
        subject: store.path,
        evidence: [
          `additionallayerstores entry ${store.entry}`,
          store.mount
            ? `${store.path} is a ${store.mount.fstype} mount, not FUSE`
            : `nothing is mounted at ${store.path}`,
          `${store.process!.kind} runs as pid ${store.process!.pid} with mount point ${store.process!.mountpoint ?? "unknown"}`,
        ],
        remediation: {
          summary: `Make ${unitOf(store)} mount the store at ${store.path} (its mount point argument must be this path), then restart ${runtimeService(snapshot)}.`,
          commands: [
            `systemctl restart ${unitOf(store)}`,
            `findmnt ${store.path}`,
            `systemctl restart ${runtimeService(snapshot)}`,
          ],
        },
      }));
  },
};

const serviceDown: CheckDefinition = {
  id: "LAYER_STORE_SERVICE_DOWN",
  severity: "critical",
  title: "The layer store's server is not running",
  area: AREA,
  description:
    "No process serves a configured additional layer store: the service stopped or crashed. A mount left behind " +
    "answers 'Transport endpoint is not connected'; lazily pulled images fail to start and, with the store " +
    "configured, every podman/CRI-O storage operation fails.",
  confirm: ["systemctl status stargz-store", "journalctl -u stargz-store -n 50"],
  run(snapshot) {
    const crashes = reasonCounts(snapshot, ["ServiceCrashed", "FatalStartup"]);
    return layerStores(snapshot)
      .filter((store) => store.process === null)
      .map((store) => {
        const dead = store.probe?.results.find((r) => !r.ok && r.code === "ENOTCONN");
        return {
          subject: store.path,
          evidence: [
            `no process serves ${store.path} (additionallayerstores entry ${store.entry})`,
            store.mount
              ? `a ${store.mount.fstype} mount is still at ${store.path}${dead ? ": Transport endpoint is not connected" : ""}`
              : `nothing is mounted at ${store.path}`,
            ...countLines(crashes),
          ],
          remediation: {
            summary: `Start ${unitOf(store)} again${dead ? " after removing the dead mount" : ""}, and read its log for why it stopped.`,
            commands: [
              `journalctl -u ${unitOf(store)} -n 50`,
              ...(dead || store.mount ? [`fusermount3 -uz ${store.path}`] : []),
              `systemctl restart ${unitOf(store)}`,
            ],
          },
        };
      });
  },
};

/** When the hang began, as far as the collector knows: this run, or the first of serve's cycles that saw it. */
function unresponsiveSince(store: LayerStoreFacts): string {
  if (!store.unresponsiveSince) return "unresponsive since: unknown";
  return store.unresponsiveSinceEarlierCycle
    ? `unresponsive since ${store.unresponsiveSince} (first seen by an earlier collection of this exporter, and in every one since)`
    : `unresponsive since ${store.unresponsiveSince} (first seen now, by this collection)`;
}

const unresponsive: CheckDefinition = {
  id: "LAYER_STORE_UNRESPONSIVE",
  severity: "critical",
  title: "The layer store's FUSE mount does not answer",
  area: AREA,
  description:
    "An operation on the store's FUSE mount did not return within the probe's deadline: the server hangs (stopped, " +
    "deadlocked, or waiting for a registry). Every process that touches the store hangs with it, CRI-O and the " +
    "containers reading lazy layers included.",
  confirm: ["cat /sys/fs/fuse/connections/<minor>/waiting", "timeout 5 ls <store> || echo hung"],
  run(snapshot) {
    return layerStores(snapshot)
      .filter((store) => store.probe?.hungAt)
      .map((store) => {
        const minor = store.mount?.device.split(":")[1] ?? "<minor>";
        return {
          subject: store.path,
          evidence: [
            unresponsiveSince(store),
            `${store.probe!.hungAt!.op} of ${store.probe!.hungAt!.path} gave no answer within the probe's deadline (${store.probe!.elapsedMs} ms in all)`,
            ...store.probe!.results.map((r) => `${r.op} ${r.path}: ${r.ok ? "ok" : r.code} in ${r.ms} ms`),
            store.fusectl?.waiting !== null && store.fusectl?.waiting !== undefined
              ? `fusectl: ${store.fusectl.waiting} requests waiting (max_background ${store.fusectl.maxBackground})`
              : "fusectl: no figures",
            store.process
              ? `server: ${store.process.kind} pid ${store.process.pid}`
              : "no server process found",
          ],
          remediation: {
            summary: `Restart ${unitOf(store)}; if processes stay stuck in the mount, abort the FUSE connection.`,
            commands: [
              `systemctl restart ${unitOf(store)}`,
              `cat /sys/fs/fuse/connections/${minor}/waiting`,
              `echo 1 > /sys/fs/fuse/connections/${minor}/abort`,
              `fusermount3 -uz ${store.path}`,
            ],
          },
        };
      });
  },
};

const slow: CheckDefinition = {
  id: "LAYER_STORE_SLOW",
  severity: "warning",
  title: "The layer store's FUSE mount answers slowly",
  area: AREA,
  description:
    "Operations on the store's FUSE mount took longer than the threshold (500 ms by default): container start and " +
    "file reads from lazy layers are slow. Usually the registry is slow or far, the store's cache is cold, or its " +
    "request queue is full (fusectl waiting near max_background).",
  confirm: ["time ls <store>", "cat /sys/fs/fuse/connections/<minor>/waiting"],
  run(snapshot, options: CheckOptions) {
    const limit = options.probeSlowMs;
    const drafts: FindingDraft[] = [];
    for (const store of layerStores(snapshot)) {
      const slowOps = (store.probe?.results ?? []).filter((r) => r.ms > limit);
      if (slowOps.length === 0 || store.probe?.hungAt) continue;
      drafts.push({
        subject: store.path,
        evidence: [
          ...slowOps.map((r) => `${r.op} ${r.path} took ${r.ms} ms (threshold ${limit} ms)`),
          `fusectl: ${store.fusectl?.waiting ?? "?"} waiting, max_background ${store.fusectl?.maxBackground ?? "?"}`,
        ],
        remediation: {
          summary:
            "Look at the store's registry latency and prefetch settings; raise max_concurrency if requests queue up.",
          commands: [`journalctl -u ${unitOf(store)} --since -1h | grep -iE 'timeout|retry|status code'`],
        },
      });
    }
    return drafts;
  },
};

const ineffective: CheckDefinition = {
  id: "LAZY_PULL_INEFFECTIVE",
  severity: "warning",
  title: "A layer store is configured but no layer is served lazily",
  area: AREA,
  description:
    "An additional layer store is set up, yet every layer on the node was pulled in full: lazy pulling silently " +
    "does nothing. The journal often says why: blobs without a TOC (not eStargz/zstd:chunked), registry " +
    "authentication failures, layers the store failed to resolve or mount (containers/storage then falls back to a " +
    "full pull without a word).",
  confirm: [
    "journalctl -u stargz-store --since -1d | grep -iE 'failed|footer|status code'",
    "ls <graphroot>/overlay/*/additionallayer",
  ],
  run(snapshot) {
    const stores = layerStores(snapshot).filter(
      (s) => s.mount?.fstype.startsWith("fuse") && !s.probe?.hungAt,
    );
    const layers = factsOf(snapshot.sources.layers);
    if (stores.length === 0 || !layers || layers.totals.lazy.layers > 0 || layers.totals.full.layers === 0)
      return [];
    const reasons = reasonCounts(snapshot, [
      "NotLazyPullable",
      "RegistryAuthFailed",
      "AuthHelperFailed",
      "ResolveFailed",
      "MountFailedFallback",
      "VerificationFailed",
    ]);
    const evidence = [
      `${stores.map((s) => s.path).join(", ")} mounted; ${layers.totals.full.layers} layers pulled in full, ${layers.totals.partial.layers} partially, none lazily`,
      ...countLines(reasons),
    ];
    if (reasons.length === 0)
      evidence.push(
        "the journal shows no store error: the images are likely not eStargz/zstd:chunked, or not pulled since the store was set up",
      );
    return [
      {
        evidence,
        remediation: {
          summary:
            "Push images as eStargz or zstd:chunked, and fix what the journal names (credentials for the store, the registry's reachability).",
          commands: [
            "journalctl -u stargz-store --since -1d",
            "crictl pull <an eStargz image>",
            "ls <graphroot>/overlay/*/additionallayer",
          ],
        },
      },
    ];
  },
};

const broken: CheckDefinition = {
  id: "LAZY_LAYERS_BROKEN",
  severity: "critical",
  title: "Lazily pulled layers point at a store path that no longer exists",
  area: AREA,
  description:
    "Layers pulled through the additional layer store are links into it. When the store is disabled, crashed or " +
    "lost its cache, those links lead nowhere: the images can no longer start, and the runtime does not pull them " +
    "again because it believes it has them.",
  confirm: ["cat <graphroot>/overlay/<id>/additionallayer", "ls -l <graphroot>/overlay/<id>/diff"],
  run(snapshot) {
    const layers = factsOf(snapshot.sources.layers);
    const configured = new Set(layerStores(snapshot).map((s) => s.path));
    const drafts: FindingDraft[] = [];
    const orphaned = (layers?.lazyLayers ?? []).filter(
      (l) => l.layerStore === null || !configured.has(l.layerStore),
    );
    const brokenLayers = layerStores(snapshot).flatMap((s) =>
      s.brokenLayers.map((b) => ({ ...b, store: s.path })),
    );
    if (brokenLayers.length === 0 && orphaned.length === 0) return [];
    const images = new Set<string>();
    const brokenIds = new Set(brokenLayers.map((b) => b.id));
    const orphans = new Set(orphaned);
    for (const layer of layers?.lazyLayers ?? []) {
      const isBroken = brokenIds.has(layer.id) || orphans.has(layer);
      if (isBroken) for (const name of layer.imageNames) images.add(name);
    }
    drafts.push({
      title: `${brokenLayers.length + orphaned.length} lazily pulled layers are broken`,
      evidence: [
        ...brokenLayers.slice(0, 5).map((b) => `layer ${b.id.slice(0, 12)}: ${b.reason}`),
        ...orphaned
          .slice(0, 5)
          .map((l) => `layer ${l.id.slice(0, 12)} links into ${l.target}, a store no longer configured`),
        `images affected: ${[...images].slice(0, 10).join(", ") || "unknown"}`,
      ],
      remediation: {
        summary: "Bring the store back, or remove the affected images so they are pulled again.",
        commands: [
          "systemctl restart stargz-store",
          ...[...images].slice(0, 10).map((image) => `crictl rmi ${image}`),
        ],
      },
    });
    return drafts;
  },
};

const authFailures: CheckDefinition = {
  id: "LAYER_STORE_AUTH_FAILURES",
  severity: "warning",
  title: "The registry refuses the layer store's requests (401/403)",
  area: AREA,
  description:
    "stargz-store fetches layers itself; its credentials come from the auth helper (v0.16+), a kubeconfig " +
    "keychain, or /root/.docker/config.json (older versions). The registry answered 401 or 403 even after a " +
    "refresh, so those layers are pulled in full, or their reads fail.",
  confirm: ["journalctl -u stargz-store | grep -E 'status code|access to the registry'"],
  run(snapshot) {
    const counts = reasonCounts(snapshot, ["RegistryAuthFailed", "AuthHelperFailed", "KeychainWarning"]);
    if (counts.length === 0) return [];
    return [
      {
        evidence: countLines(counts),
        remediation: {
          summary:
            "Hand the store the registry's credentials: configure additional-layer-store-auth-helper (v0.16+) or the kubeconfig keychain.",
          commands: [
            "grep additional-layer-store-auth-helper /etc/containers/registries.conf /etc/containers/registries.conf.d/*",
            "journalctl -u stargz-store --since -1h | grep -i 'status code'",
          ],
        },
      },
    ];
  },
};

const authHelperMissing: CheckDefinition = {
  id: "LAYER_STORE_AUTH_HELPER_MISSING",
  severity: "warning",
  title: "The layer store gets no registry credentials: no auth helper is configured",
  area: AREA,
  description:
    "stargz-store v0.16 and later get pull credentials only through the credential socket, which CRI-O feeds by " +
    "running the additional-layer-store-auth-helper named in registries.conf. Without it, images from private " +
    "registries are never served lazily.",
  confirm: ["grep -r additional-layer-store-auth-helper /etc/containers/"],
  run(snapshot) {
    const facts = factsOf(snapshot.sources["layer-stores"]);
    if (!facts || facts.authHelper) return [];
    const modern = facts.stores.filter((s) => s.versionHints.some((h) => h.includes("v0.16")));
    return modern.map((store) => ({
      subject: store.path,
      evidence: [...store.versionHints, "registries.conf has no additional-layer-store-auth-helper"],
      remediation: {
        summary: "Name the store's helper in registries.conf, then restart CRI-O.",
        commands: [
          "echo 'additional-layer-store-auth-helper = \"stargz-store-helper\"' > /etc/containers/registries.conf.d/50-stargz-store.conf",
          `systemctl restart ${runtimeService(snapshot)}`,
        ],
      },
    }));
  },
};

const verificationFailures: CheckDefinition = {
  id: "LAYER_STORE_VERIFICATION_FAILURES",
  severity: "critical",
  title: "Layer content failed verification in the layer store",
  area: AREA,
  description:
    "stargz-store checks every chunk it serves against the digests in the layer's TOC. A failure means the " +
    "registry (or something in between) served content other than what the image names: a content-integrity " +
    "problem, not a performance one. Verification switched off in the store's configuration is reported too.",
  confirm: ["journalctl -u stargz-store | grep -iE 'verif|TOC'"],
  run(snapshot) {
    const counts = reasonCounts(snapshot, ["VerificationFailed"]);
    const relaxed = layerStores(snapshot).filter(
      (s) =>
        s.config?.settings.allow_no_verification === true || s.config?.settings.disable_verification === true,
    );
    if (counts.length === 0 && relaxed.length === 0) return [];
    return [
      {
        severity: counts.length > 0 ? "critical" : "warning",
        evidence: [
          ...countLines(counts),
          ...relaxed.map(
            (s) => `${s.config!.path}: verification relaxed (allow_no_verification or disable_verification)`,
          ),
        ],
        remediation: {
          summary:
            "Find which registry or mirror served the bad content; do not relax verification to make it go away.",
          commands: ["journalctl -u stargz-store --since -1d | grep -iE 'verif|TOC'"],
        },
      },
    ];
  },
};

/** CRI-O 1.31 vendors containers/storage 1.55, which asks layer stores by TOC digest (1.54+). */
function criTocLookups(snapshot: Snapshot): boolean | null {
  const runtime = criFacts(snapshot)?.runtime;
  if (runtime?.name !== "cri-o") return null;
  const [major, minor] = runtime.version.split(".").map(Number);
  if (major === undefined || minor === undefined) return null;
  return major > 1 || minor >= 31;
}

const versionSkew: CheckDefinition = {
  id: "LAYER_STORE_VERSION_SKEW",
  severity: "warning",
  title: "The runtime and the layer store name layers differently",
  area: AREA,
  description:
    "containers/storage 1.54 and later (CRI-O 1.31+) look layers up in the store by TOC digest; stargz-store " +
    "0.15 and older name them by the compressed blob digest, and 0.16 and later by TOC digest. A mismatch means " +
    "no lookup ever finds a layer: lazy pulling silently does nothing.",
  confirm: ["crictl version", "stargz-store --version", "cat <store>/<ref>/<digest>/info"],
  run(snapshot) {
    const toc = criTocLookups(snapshot);
    if (toc === null) return [];
    const drafts: FindingDraft[] = [];
    for (const store of layerStores(snapshot)) {
      const info = store.sampleInfo;
      const storeToc =
        store.versionHints.some((h) => h.includes("v0.16")) || (info !== null && "toc-digest" in info);
      const storeBlob = info !== null && "compressed-diff-digest" in info && !("toc-digest" in info);
      if ((toc && storeBlob) || (!toc && storeToc)) {
        drafts.push({
          subject: store.path,
          evidence: [
            `runtime ${criFacts(snapshot)!.runtime!.name} ${criFacts(snapshot)!.runtime!.version} looks layers up by ${toc ? "TOC" : "blob"} digest`,
            storeBlob
              ? "the store serves layers named by blob digest (info has compressed-diff-digest: v0.15 or older)"
              : `the store names layers by TOC digest: ${store.versionHints.join("; ") || "info has toc-digest"}`,
          ],
          remediation: {
            summary: toc
              ? "Upgrade stargz-store to v0.16 or later."
              : "Upgrade CRI-O to 1.31 or later, or keep stargz-store at v0.15.",
            commands: ["crictl version", "rpm -q stargz-snapshotter || dpkg -l | grep stargz"],
          },
        });
      }
    }
    return drafts;
  },
};

const storeConfusion: CheckDefinition = {
  id: "STORAGE_CONF_STORE_CONFUSION",
  severity: "warning",
  title: "storage.conf mixes up layer stores and image stores",
  area: AREA,
  description:
    "An additional layer store listed under additionalimagestores (or the reverse), a layer store without the " +
    "':ref' suffix that stargz-store needs, a relative path, or an unknown option: containers/storage rejects the " +
    "entry or looks in the wrong place.",
  confirm: ["grep -A3 -E 'additional(image|layer)stores' /etc/containers/storage.conf"],
  run(snapshot) {
    const cs = storageFacts(snapshot)?.containersStorage;
    if (!cs) return [];
    const problems: string[] = [];
    const layerPaths = cs.additionalLayerStores.value.map((s) => s.path);
    for (const store of cs.additionalLayerStores.value) {
      if (!store.path.startsWith("/"))
        problems.push(`additionallayerstores entry ${store.raw}: the path is not absolute`);
      if (store.unknownOptions.length > 0)
        problems.push(
          `additionallayerstores entry ${store.raw}: unknown option ${store.unknownOptions.join(", ")} (only :ref exists)`,
        );
      const server = layerStores(snapshot).find((s) => s.path === store.path)?.process?.kind;
      if (!store.ref && server === "stargz-store")
        problems.push(
          `additionallayerstores entry ${store.raw}: stargz-store needs ':ref' (it resolves layers by image reference)`,
        );
    }
    for (const image of cs.additionalImageStores.value) {
      const fuse = filesystemFacts(snapshot)?.roles.find(
        (r) => r.role === "additional-image-store" && r.path === image,
      )?.mount;
      if (
        layerPaths.some((p) => isWithin(image, p) || isWithin(p, image)) ||
        fuse?.source === "stargzstore"
      ) {
        problems.push(
          `additionalimagestores entry ${image} is a layer store: it belongs in additionallayerstores`,
        );
      }
    }
    if (problems.length === 0) return [];
    return [
      {
        evidence: [`set in ${cs.additionalLayerStores.from}`, ...problems],
        remediation: {
          summary:
            "List the layer store under [storage.options] additionallayerstores as an absolute path with :ref, then restart the runtime.",
          commands: [
            '# additionallayerstores = ["/var/lib/stargz-store/store:ref"]',
            `systemctl restart ${runtimeService(snapshot)}`,
          ],
        },
      },
    ];
  },
};

const partialDisabled: CheckDefinition = {
  id: "PARTIAL_PULLS_DISABLED",
  severity: "info",
  title: "Partial pulls (zstd:chunked, eStargz) are disabled",
  area: AREA,
  description:
    "containers/storage can pull only the missing files of zstd:chunked and eStargz layers, without a layer store, " +
    'when pull_options enable_partial_images is "true". It is off, so such layers are downloaded whole.',
  confirm: ["grep -A3 pull_options /etc/containers/storage.conf"],
  run(snapshot) {
    const cs = storageFacts(snapshot)?.containersStorage;
    if (!cs || cs.pullOptions.value.enable_partial_images === "true") return [];
    if (cs.additionalLayerStores.value.length === 0) return [];
    return [
      {
        evidence: [`pull_options: ${JSON.stringify(cs.pullOptions.value)} (${cs.pullOptions.from})`],
        remediation: {
          summary:
            'Set enable_partial_images = "true" in [storage.options.pull_options] if zstd:chunked images should pull partially.',
          commands: [
            "# in storage.conf: [storage.options.pull_options]",
            '#   enable_partial_images = "true"',
          ],
        },
      },
    ];
  },
};

export const lazyPullChecks: CheckDefinition[] = [
  notMounted,
  serviceDown,
  unresponsive,
  slow,
  ineffective,
  broken,
  authFailures,
  authHelperMissing,
  verificationFailures,
  versionSkew,
  storeConfusion,
  partialDisabled,
];
