/**
 * must-gather against `sos report` (Debian's sosreport 4.0) limited to its crio, selinux,
 * containers_common and logs plugins, both reading one node's root built on a tmpfs: wall time to
 * the finished archive and the archive's size (issue 6 §7: time ratio <= 0.2, default bundle <=
 * 20 MB).
 *
 * sos picks its policy from the machine's own /etc, never from --sysroot, and on Debian that is
 * DebianPolicy, under which crio, selinux and containers_common do not exist. So sos runs in a
 * private mount namespace of its own (made once per run of the benchmark, pinned by a bind mount
 * in the scratch directory) where a file holding an RHCOS os-release is bind-mounted over
 * /etc/os-release: sos then takes the machine for Red Hat Enterprise Linux (RHELPolicy), as it
 * does on an OpenShift node, and all four plugins exist. The machine's /etc is never written.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import type { ExportEntry } from "../test/support/export-format.js";
import { journalEntry, MACHINE_ID, writeJournalFile } from "../test/support/journal.js";
import { buildStore } from "./layer-inspect.js";
import { requireRoot, withScratch } from "./scratch.js";
import { interleave, median, ms, ratioLine, seriesTable, table } from "./stats.js";

const TARGET_RATIO = 0.2;
/** The issue's size target, in decimal megabytes. */
const SIZE_TARGET_MB = 20;
const WARMUP = 1;
const RUNS = 5;
const SOS_PLUGINS = ["crio", "selinux", "containers_common", "logs"];
/** How far back the journal, the audit log and the pod logs go. */
const DAYS = 7;
const JOURNAL_ENTRIES = 350_000;
const PODS = 40;
const GRAPHROOT = "/var/lib/containers/storage";
const IMAGESTORE = "/var/lib/images";
const LAYER_STORE = "/var/lib/stargz-store/store";
const HOSTNAME = "worker-0.ocp.example.com";
/** What RHCOS 4.18 says of itself; sos's RHELPolicy wants NAME to start with "Red Hat Enterprise Linux". */
const OS_RELEASE = `NAME="Red Hat Enterprise Linux CoreOS"
VERSION="418.94.202411181555-0"
ID="rhcos"
ID_LIKE="rhel fedora"
VERSION_ID="4.18"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux CoreOS 418.94.202411181555-0"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos::coreos"
HOME_URL="https://www.redhat.com/"
VARIANT="CoreOS"
VARIANT_ID=coreos
OPENSHIFT_VERSION="4.18"
RHEL_VERSION="9.4"
OSTREE_VERSION="418.94.202411181555-0"
`;
/**
 * The packages of the node's rpm database. RHELPolicy refuses to run without an rpm package list
 * ("Could not obtain installed package list"); cri-tools is what gates the crio plugin's crictl
 * commands. Empty packages with the node's names and versions, built with rpmbuild.
 */
const RPMS: [name: string, version: string][] = [
  ["cri-o", "1.31.3"],
  ["cri-tools", "1.31.1"],
  ["containers-common", "1"],
  ["container-selinux", "2.232.1"],
  ["libselinux", "3.6"],
  ["selinux-policy-targeted", "38.1.45"],
  ["systemd", "252"],
  ["filesystem", "3.16"],
  ["kernel", "5.14.0"],
];

interface Tree {
  scratch: string;
  host: string;
  proc: string;
  mounted: string[];
}

/** A small deterministic generator, so every run builds the same tree. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const hex = (random: () => number, length: number) => {
  let out = "";
  while (out.length < length)
    out += Math.floor(random() * 2 ** 32)
      .toString(16)
      .padStart(8, "0");
  return out.slice(0, length);
};

/** Bytes that compress about as a binary SELinux policy does (about 3:1 with gzip). */
function policyBytes(size: number, seed: number): Buffer {
  const random = lcg(seed);
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) {
    // A third random words, the rest small integers and repeats, as in a policy's tables.
    const r = random();
    const word = r < 0.33 ? Math.floor(random() * 2 ** 32) : r < 0.8 ? Math.floor(random() * 256) : 0;
    out.writeUInt32LE(word >>> 0, Math.min(i, size - 4));
  }
  return out;
}

async function put(tree: Tree, rel: string, content: string | Buffer): Promise<void> {
  const local = path.join(tree.host, rel);
  await mkdir(path.dirname(local), { recursive: true });
  await writeFile(local, content);
}

/** CRI-O, containers/storage, registries, CNI, kubelet and stargz-store configuration. */
async function writeConfig(tree: Tree): Promise<void> {
  await put(tree, "/etc/os-release", OS_RELEASE);
  await put(tree, "/etc/machine-id", `${MACHINE_ID}\n`);
  await put(tree, "/etc/hostname", `${HOSTNAME}\n`);
  await put(
    tree,
    "/etc/crio/crio.conf",
    `# The CRI-O configuration file, as the node's MachineConfig writes it.
[crio]
root = "${GRAPHROOT}"
runroot = "/run/containers/storage"
storage_driver = "overlay"
log_dir = "/var/log/crio/pods"
version_file = "/var/run/crio/version"
version_file_persist = "/var/lib/crio/version"
clean_shutdown_file = "/var/lib/crio/clean.shutdown"

[crio.api]
listen = "/var/run/crio/crio.sock"
stream_address = ""
stream_port = "10010"

[crio.runtime]
default_runtime = "crun"
selinux = true
seccomp_profile = ""
apparmor_profile = "crio-default"
cgroup_manager = "systemd"
conmon_cgroup = "pod"
default_capabilities = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE", "KILL"]
default_sysctls = []
pids_limit = 4096
log_size_max = -1
drop_infra_ctr = true
infra_ctr_cpuset = ""

[crio.runtime.runtimes.crun]
runtime_path = "/usr/bin/crun"
runtime_type = "oci"
runtime_root = "/run/crun"
allowed_annotations = ["io.containers.trace-syscall"]

[crio.runtime.runtimes.runc]
runtime_path = "/usr/bin/runc"
runtime_type = "oci"
runtime_root = "/run/runc"

[crio.image]
global_auth_file = "/var/lib/kubelet/config.json"
pause_image = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:${"a1".repeat(32)}"
pause_image_auth_file = "/var/lib/kubelet/config.json"
pause_command = "/usr/bin/pod"

[crio.network]
network_dir = "/etc/kubernetes/cni/net.d/"
plugin_dirs = ["/var/lib/cni/bin", "/usr/libexec/cni"]

[crio.metrics]
enable_metrics = true
metrics_port = 9537
`,
  );
  await put(
    tree,
    "/etc/crio/crio.conf.d/00-default",
    `[crio]
internal_wipe = true
internal_repair = false

[crio.api]
stream_address = "127.0.0.1"
stream_port = "0"

[crio.runtime]
selinux = true
conmon = ""
conmon_cgroup = "pod"
default_env = ["NSS_SDB_USE_CACHE=no"]
default_runtime = "crun"
log_level = "info"
cgroup_manager = "systemd"
default_sysctls = ["net.ipv4.ping_group_range=0 2147483647"]
hooks_dir = ["/etc/containers/oci/hooks.d", "/run/containers/oci/hooks.d", "/usr/share/containers/oci/hooks.d"]
manage_ns_lifecycle = true
absent_mount_sources_to_reject = ["/etc/hostname"]
drop_infra_ctr = true

[crio.image]
global_auth_file = "/var/lib/kubelet/config.json"
pause_image_auth_file = "/var/lib/kubelet/config.json"
pause_command = "/usr/bin/pod"
`,
  );
  await put(tree, "/etc/crio/crio.conf.d/01-ctrcfg-pidsLimit", "[crio.runtime]\npids_limit = 8192\n");
  await put(
    tree,
    "/etc/crio/crio.conf.d/10-imagestore.conf",
    `# Images on their own disk (KEP-4191, split image filesystem).\n[crio]\nimagestore = "${IMAGESTORE}"\n`,
  );
  await put(
    tree,
    "/etc/crio/seccomp.json",
    JSON.stringify({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [] }),
  );
  await put(
    tree,
    "/etc/containers/storage.conf",
    `# containers-storage.conf(5), as the node's MachineConfig writes it.
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "${GRAPHROOT}"
imagestore = "${IMAGESTORE}"

[storage.options]
additionalimagestores = []
additionallayerstores = ["${LAYER_STORE}:ref"]
pull_options = {enable_partial_images = "true", use_hard_links = "false", ostree_repos = ""}

[storage.options.overlay]
mountopt = "nodev,metacopy=on"
`,
  );
  const random = lcg(7);
  const shortnames = Array.from(
    { length: 400 },
    (_, i) => `"app-${i}" = "registry.example.com/team-${i % 17}/app-${i}"`,
  );
  await put(
    tree,
    "/etc/containers/registries.conf",
    `unqualified-search-registries = ["registry.access.redhat.com", "docker.io"]
short-name-mode = "enforcing"

[[registry]]
  prefix = ""
  location = "registry.example.com"
  [[registry.mirror]]
    location = "mirror.example.com:5000/registry"
    pull-from-mirror = "digest-only"
`,
  );
  await put(
    tree,
    "/etc/containers/registries.conf.d/000-shortnames.conf",
    `[aliases]\n${shortnames.join("\n")}\n`,
  );
  await put(
    tree,
    "/etc/containers/registries.conf.d/01-image-mirrors.conf",
    Array.from(
      { length: 30 },
      (_, i) =>
        `[[registry]]\n  prefix = ""\n  location = "quay.io/team-${i}"\n  mirror-by-digest-only = true\n  [[registry.mirror]]\n    location = "mirror.example.com:5000/team-${i}"\n`,
    ).join("\n"),
  );
  await put(
    tree,
    "/etc/containers/registries.conf.d/99-stargz.conf",
    `[[registry]]\nlocation = "registry.example.com"\n[[registry.mirror]]\nlocation = "stargz-cache.example.com"\n`,
  );
  await put(
    tree,
    "/etc/containers/policy.json",
    JSON.stringify(
      {
        default: [{ type: "insecureAcceptAnything" }],
        transports: { "docker-daemon": { "": [{ type: "insecureAcceptAnything" }] } },
      },
      null,
      2,
    ),
  );
  await put(tree, "/etc/crictl.yaml", "runtime-endpoint: unix:///var/run/crio/crio.sock\ntimeout: 10\n");
  await put(
    tree,
    "/etc/cni/net.d/100-crio-bridge.conflist",
    JSON.stringify({ cniVersion: "1.0.0", name: "crio", plugins: [{ type: "bridge", bridge: "cni0" }] }),
  );
  await put(
    tree,
    "/etc/kubernetes/kubelet.conf",
    `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
containerRuntimeEndpoint: unix:///var/run/crio/crio.sock
imageServiceEndpoint: unix:///var/run/crio/crio.sock
evictionHard:
  imagefs.available: 15%
  memory.available: 100Mi
  nodefs.available: 10%
  nodefs.inodesFree: 5%
evictionPressureTransitionPeriod: 5m0s
featureGates:
  KubeletSeparateDiskGC: true
imageGCHighThresholdPercent: 85
imageGCLowThresholdPercent: 80
maxPods: 250
systemReserved:
  ephemeral-storage: 1Gi
`,
  );
  await put(tree, "/var/lib/kubelet/config.json", '{"auths":{}}\n');
  await put(
    tree,
    "/etc/containerd-stargz-grpc/config.toml",
    `[[resolver.host."registry.example.com".mirrors]]\nhost = "stargz-cache.example.com"\n[kubeconfig_keychain]\nenable_keychain = true\n`,
  );
  await put(
    tree,
    "/etc/systemd/system/stargz-store.service",
    `[Unit]\nDescription=Stargz Store plugin\nBefore=crio.service\n\n[Service]\nExecStart=/usr/local/bin/stargz-store --log-level=debug --config=/etc/containerd-stargz-grpc/config.toml ${LAYER_STORE}\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n`,
  );
  await put(tree, `/etc/hosts`, `127.0.0.1 localhost\n10.0.0.${Math.floor(random() * 200)} ${HOSTNAME}\n`);
  await mkdir(path.join(tree.host, LAYER_STORE), { recursive: true });
}

/** A targeted policy's file contexts of a realistic size, module-like lines padded around container.fc's. */
function fileContexts(): string {
  const ctx = (type: string) => `system_u:object_r:${type}:s0`;
  const specs = [
    `/.*\t${ctx("default_t")}`,
    `/usr/.*\t${ctx("usr_t")}`,
    `/var/.*\t${ctx("var_t")}`,
    `/var/lib(/.*)?\t${ctx("var_lib_t")}`,
    `/var/lib/containers(/.*)?\t${ctx("container_var_lib_t")}`,
    `/var/lib/containers/storage/overlay(/.*)?\t${ctx("container_ro_file_t")}`,
    `/var/lib/containers/storage/overlay-images(/.*)?\t${ctx("container_ro_file_t")}`,
    `/var/lib/containers/storage/overlay-layers(/.*)?\t${ctx("container_ro_file_t")}`,
    `/var/lib/containers/storage/volumes/[^/]*/.*\t${ctx("container_file_t")}`,
    `/var/lib/kubelet(/.*)?\t${ctx("container_var_lib_t")}`,
    `/var/log/containers(/.*)?\t${ctx("container_log_t")}`,
    `/var/log/pods(/.*)?\t${ctx("container_log_t")}`,
  ];
  for (let i = 0; i < 1100; i += 1) {
    const name = `mod${i}`;
    specs.push(`/usr/sbin/${name}d?\t--\t${ctx(`${name}_exec_t`)}`);
    specs.push(`/etc/${name}(/.*)?\t${ctx(`${name}_etc_t`)}`);
    specs.push(`/var/log/${name}[^/]*\\.log.*\t--\t${ctx(`${name}_log_t`)}`);
    specs.push(`/var/lib/${name}(/.*)?\t${ctx(`${name}_var_lib_t`)}`);
    specs.push(`/var/run/${name}(/.*)?\t${ctx(`${name}_var_run_t`)}`);
  }
  return `# This file is auto-generated by libsemanage\n# Do not edit directly.\n\n${specs.join("\n")}\n`;
}

/**
 * /etc/selinux as a targeted RHEL 9 policy lays it out (config, the compiled policy, file contexts
 * with the equivalence `semanage fcontext -a -e` writes for the imagestore) and the module store
 * under /var/lib/selinux (one compressed CIL per module). No file carries a label: the kernel has
 * no SELinux, so selinuxfs is the one file the collector reads from it, as in the tests.
 */
async function writeSelinux(tree: Tree): Promise<number> {
  const contexts = fileContexts();
  await put(tree, "/etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=targeted\n");
  await put(tree, "/etc/selinux/semanage.conf", "module-store = direct\nexpand-check=0\n");
  const files = "/etc/selinux/targeted/contexts/files";
  await put(tree, `${files}/file_contexts`, contexts);
  await put(tree, `${files}/file_contexts.bin`, policyBytes(1_400_000, 3));
  await put(
    tree,
    `${files}/file_contexts.homedirs`,
    "/home/[^/]+/.+\tunconfined_u:object_r:user_home_t:s0\n",
  );
  await put(tree, `${files}/file_contexts.subs`, `${IMAGESTORE} ${GRAPHROOT}\n`);
  await put(tree, `${files}/file_contexts.subs_dist`, "/run /var/run\n/var/lib/docker /var/lib/containers\n");
  await put(tree, `${files}/file_contexts.local`, "");
  await put(tree, "/etc/selinux/targeted/policy/policy.33", policyBytes(3_600_000, 1));
  await put(
    tree,
    "/etc/selinux/targeted/seusers",
    "root:unconfined_u:s0-s0:c0.c1023\n__default__:unconfined_u:s0-s0:c0.c1023\n",
  );
  await put(tree, "/var/lib/selinux/targeted/active/policy.kern", policyBytes(3_600_000, 1));
  await put(tree, "/var/lib/selinux/targeted/active/file_contexts", contexts);
  for (let i = 0; i < 420; i += 1) {
    const dir = `/var/lib/selinux/targeted/active/modules/100/mod${i}`;
    await put(tree, `${dir}/cil`, policyBytes(4_000 + ((i * 997) % 9_000), 100 + i));
    await put(tree, `${dir}/lang_ext`, "pp\n");
  }
  await put(tree, "/sys/fs/selinux/enforce", "1\n");
  return Buffer.byteLength(contexts);
}

/** A second store on the image disk (KEP-4191's imagestore): 20 images of 3 layers, laid out as graphroot's. */
async function buildImagestore(tree: Tree): Promise<number> {
  const root = path.join(tree.host, IMAGESTORE);
  const random = lcg(11);
  const layers: Record<string, unknown>[] = [];
  const images: Record<string, unknown>[] = [];
  await mkdir(path.join(root, "overlay/l"), { recursive: true });
  await mkdir(path.join(root, "overlay-images"), { recursive: true });
  await mkdir(path.join(root, "overlay-layers"), { recursive: true });
  for (let image = 0; image < 20; image += 1) {
    let parent: string | undefined;
    for (let k = 0; k < 3; k += 1) {
      const id = hex(random, 64);
      const short = `L${hex(random, 25).toUpperCase()}`;
      const dir = path.join(root, "overlay", id);
      await mkdir(path.join(dir, "diff/usr/bin"), { recursive: true });
      await mkdir(path.join(dir, "work"));
      await writeFile(path.join(dir, "link"), short);
      if (parent) await writeFile(path.join(dir, "lower"), `l/${short}`);
      await writeFile(path.join(dir, "diff/usr/bin/tool"), "#!/bin/sh\n");
      await symlink(`../${id}/diff`, path.join(root, "overlay/l", short));
      layers.push({
        id,
        ...(parent ? { parent } : {}),
        created: "2026-11-20T09:00:00Z",
        "compressed-diff-digest": `sha256:${hex(random, 64)}`,
        "compressed-size": 30_000_000,
        "diff-digest": `sha256:${hex(random, 64)}`,
        "diff-size": 80_000_000,
        compression: 2,
      });
      parent = id;
    }
    images.push({
      id: hex(random, 64),
      names: [`quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:${hex(random, 64)}`],
      layer: parent,
      created: "2026-11-20T09:00:00Z",
    });
  }
  await writeFile(path.join(root, "overlay-layers/layers.json"), JSON.stringify(layers));
  await writeFile(path.join(root, "overlay-images/images.json"), JSON.stringify(images));
  return layers.length;
}

const UNITS = {
  crio: { unit: "crio.service", exe: "/usr/bin/crio", cmdline: "/usr/bin/crio", pid: 2011 },
  kubelet: {
    unit: "kubelet.service",
    exe: "/usr/bin/kubelet",
    cmdline:
      "/usr/bin/kubelet --config=/etc/kubernetes/kubelet.conf --bootstrap-kubeconfig=/etc/kubernetes/kubeconfig",
    pid: 2345,
  },
  "stargz-store": {
    unit: "stargz-store.service",
    exe: "/usr/local/bin/stargz-store",
    cmdline: `/usr/local/bin/stargz-store --log-level=debug --config=/etc/containerd-stargz-grpc/config.toml ${LAYER_STORE}`,
    pid: 1888,
  },
  systemd: {
    unit: "init.scope",
    exe: "/usr/lib/systemd/systemd",
    cmdline: "/usr/lib/systemd/systemd --switched-root --system --deserialize 28",
    pid: 1,
  },
} as const;

/** The journal's message for entry i of `name`: ordinary traffic, and now and then a line a rule pack knows. */
function journalMessage(
  name: keyof typeof UNITS,
  i: number,
  when: Date,
  random: () => number,
): [string, string] {
  const pod = `app-${Math.floor(random() * PODS)}`;
  const ns = `team-${Math.floor(random() * 17)}`;
  const id = hex(random, 64);
  const stamp = when.toISOString();
  if (name === "crio") {
    if (i % 2_000 === 0)
      return [
        "3",
        `time="${stamp}" level=error msg="relabel failed /var/lib/kubelet/pods/${hex(random, 32)}/volumes: operation not supported"`,
      ];
    if (i % 3_001 === 0)
      return [
        "4",
        `time="${stamp}" level=warning msg="Failed to call additional-layer-store-auth-helper: exit status 1"`,
      ];
    const kind = i % 4;
    if (kind === 0)
      return [
        "6",
        `time="${stamp}" level=info msg="Checking image status: registry.example.com/${ns}/${pod}@sha256:${id}" id=${hex(random, 8)}-${hex(random, 4)} name=/runtime.v1.ImageService/ImageStatus`,
      ];
    if (kind === 1)
      return [
        "6",
        `time="${stamp}" level=info msg="Created container ${id.slice(0, 12)}: ${ns}/${pod}-${hex(random, 5)}/${pod}" id=${hex(random, 8)} name=/runtime.v1.RuntimeService/CreateContainer`,
      ];
    if (kind === 2)
      return [
        "6",
        `time="${stamp}" level=info msg="Started container" PID=${10_000 + Math.floor(random() * 50_000)} containerID=${id} description=${ns}/${pod}/${pod} id=${hex(random, 8)} name=/runtime.v1.RuntimeService/StartContainer`,
      ];
    return [
      "6",
      `time="${stamp}" level=info msg="Pulled image: registry.example.com/${ns}/${pod}@sha256:${id}" id=${hex(random, 8)} name=/runtime.v1.ImageService/PullImage`,
    ];
  }
  if (name === "kubelet") {
    const klog = `${when.toISOString().slice(5, 7)}${when.toISOString().slice(8, 10)} ${when.toISOString().slice(11, 23)}000    2345`;
    if (i % 2_500 === 0)
      return [
        "4",
        `W${klog} eviction_manager.go:366] "Eviction manager: attempting to reclaim" resourceName="ephemeral-storage"`,
      ];
    if (i % 5 === 0)
      return [
        "3",
        `E${klog} pod_workers.go:1301] "Error syncing pod, skipping" err="failed to \\"StartContainer\\" for \\"${pod}\\" with CrashLoopBackOff: \\"back-off 5m0s restarting failed container=${pod} pod=${pod}-${hex(random, 5)}_${ns}(${hex(random, 8)})\\"" pod="${ns}/${pod}-${hex(random, 5)}" podUID="${hex(random, 8)}"`,
      ];
    return [
      "6",
      `I${klog} kubelet.go:2435] "SyncLoop (PLEG): event for pod" pod="${ns}/${pod}-${hex(random, 5)}" event={"ID":"${hex(random, 8)}","Type":"ContainerStarted","Data":"${id}"}`,
    ];
  }
  if (name === "stargz-store") {
    if (i % 400 === 0)
      return [
        "4",
        `{"error":"failed to resolve layer: failed to resolve the source: cannot resolve layer: failed to access to the registry with code 403","key":"registry.example.com/${ns}/${pod}/sha256:${id}","level":"warning","msg":"failed to resolve layer","time":"${stamp}"}`,
      ];
    return [
      "7",
      `{"digest":"sha256:${id}","level":"debug","msg":"fetching span","offset":${Math.floor(random() * 2 ** 26)},"ref":"registry.example.com/${ns}/${pod}:v1","time":"${stamp}"}`,
    ];
  }
  return [
    "6",
    i % 2 === 0
      ? "Started crio.service - Container Runtime Interface for OCI (CRI-O)."
      : "Reached target multi-user.target - Multi-User System.",
  ];
}

/** The node's journal: JOURNAL_ENTRIES entries of crio, kubelet, stargz-store and systemd over DAYS days. */
function* journalEntries(now: number): Generator<ExportEntry> {
  const random = lcg(42);
  const start = now - DAYS * 86_400_000;
  const counts: Record<string, number> = {};
  for (let i = 0; i < JOURNAL_ENTRIES; i += 1) {
    const when = new Date(start + ((now - 60_000 - start) * i) / JOURNAL_ENTRIES);
    const r = random();
    const name: keyof typeof UNITS =
      r < 0.42 ? "crio" : r < 0.88 ? "kubelet" : r < 0.995 ? "stargz-store" : "systemd";
    const n = (counts[name] ?? 0) + 1;
    counts[name] = n;
    const unit = UNITS[name];
    const [priority, message] = journalMessage(name, n, when, random);
    const fields: Record<string, string> = {
      _MACHINE_ID: MACHINE_ID,
      _HOSTNAME: HOSTNAME,
      PRIORITY: priority,
      SYSLOG_FACILITY: "3",
      _UID: "0",
      _GID: "0",
      _TRANSPORT: name === "systemd" ? "journal" : "stdout",
      _SYSTEMD_UNIT: unit.unit,
      SYSLOG_IDENTIFIER: name,
      _PID: String(unit.pid),
      _COMM: name,
      _EXE: unit.exe,
      _CMDLINE: unit.cmdline,
      _CAP_EFFECTIVE: "1ffffffffff",
      _SYSTEMD_CGROUP: `/system.slice/${unit.unit}`,
      _SYSTEMD_SLICE: "system.slice",
      _SYSTEMD_INVOCATION_ID: "abcdef0123456789abcdef0123456789",
      _SELINUX_CONTEXT: "system_u:system_r:container_runtime_t:s0",
      MESSAGE: message,
    };
    if (name === "systemd") fields.UNIT = n % 2 === 0 ? "crio.service" : "multi-user.target";
    yield journalEntry(when, fields);
  }
}

/** audit.log and one rotated file: the usual service and login records, with container AVC denials among them. */
function auditLog(from: number, to: number, lines: number, seed: number): string {
  const random = lcg(seed);
  const out: string[] = [];
  for (let i = 0; i < lines; i += 1) {
    const t = ((from + ((to - from) * i) / lines) / 1000).toFixed(3);
    const serial = 100_000 + i;
    const kind = i % 50;
    if (kind === 0) {
      const lib = ["libc.so.6", "libpthread.so.0", "libcrypto.so.3", "ld-linux-x86-64.so.2"][i % 4];
      out.push(
        `type=AVC msg=audit(${t}:${serial}): avc:  denied  { read execute } for  pid=${30_000 + (i % 9000)} comm="app" path="/usr/lib64/${lib}" dev="overlay" ino=${Math.floor(random() * 2 ** 24)} scontext=system_u:system_r:container_t:s0:c${i % 1000},c${(i + 7) % 1000} tcontext=system_u:object_r:var_lib_t:s0 tclass=file permissive=0`,
        `type=SYSCALL msg=audit(${t}:${serial}): arch=c000003e syscall=10 success=no exit=-13 a0=7f0000000000 a1=1000 a2=5 a3=0 items=0 ppid=1 pid=${30_000 + (i % 9000)} auid=4294967295 uid=1000670000 gid=0 euid=1000670000 suid=1000670000 fsuid=1000670000 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="app" exe="/usr/bin/app" subj=system_u:system_r:container_t:s0:c${i % 1000},c${(i + 7) % 1000} key=(null)`,
        `type=PROCTITLE msg=audit(${t}:${serial}): proctitle=2F7573722F62696E2F617070`,
      );
    } else if (kind < 30) {
      out.push(
        `type=SERVICE_START msg=audit(${t}:${serial}): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='unit=crio-conmon-${hex(random, 64)}.scope comm="systemd" exe="/usr/lib/systemd/systemd" hostname=? addr=? terminal=? res=success'`,
      );
    } else {
      out.push(
        `type=NETFILTER_CFG msg=audit(${t}:${serial}): table=nat:${i % 200} family=2 entries=${Math.floor(random() * 400)} op=nft_register_rule pid=${4000 + (i % 100)} subj=system_u:system_r:spc_t:s0 comm="iptables-nft-re"`,
      );
    }
  }
  return `${out.join("\n")}\n`;
}

/** /var/log: the journal, audit logs, container logs under /var/log/pods with /var/log/containers links. */
async function writeLogs(tree: Tree, now: number): Promise<{ journalBytes: number; journalFiles: number }> {
  const day = 86_400_000;
  await put(tree, "/var/log/audit/audit.log.1", auditLog(now - 2 * day, now - day, 30_000, 5));
  await put(tree, "/var/log/audit/audit.log", auditLog(now - day, now - 60_000, 18_000, 6));
  const random = lcg(9);
  for (let p = 0; p < PODS; p += 1) {
    const ns = `team-${p % 17}`;
    const pod = `app-${p}-${hex(random, 5)}`;
    const uid = `${hex(random, 8)}-${hex(random, 4)}-${hex(random, 4)}-${hex(random, 4)}-${hex(random, 12)}`;
    const dir = `/var/log/pods/${ns}_${pod}_${uid}/app-${p}`;
    const lines: string[] = [];
    for (let l = 0; l < 2_000; l += 1) {
      const when = new Date(now - day + (day * l) / 2_000).toISOString().replace("Z", "000000Z");
      const text =
        p % 10 === 3 && l % 200 === 0
          ? "/usr/bin/app: error while loading shared libraries: libc.so.6: cannot apply additional memory protection after relocation: Permission denied"
          : `level=info ts=${when} caller=server.go:${100 + (l % 400)} msg="handled request" path=/api/v1/items/${hex(random, 12)} status=200 duration_ms=${Math.floor(random() * 90)}`;
      lines.push(`${when} ${l % 7 === 0 ? "stderr" : "stdout"} F ${text}`);
    }
    await put(tree, `${dir}/0.log`, `${lines.join("\n")}\n`);
    const containerId = hex(random, 64);
    await mkdir(path.join(tree.host, "/var/log/containers"), { recursive: true });
    await symlink(
      `${dir}/0.log`,
      path.join(tree.host, `/var/log/containers/${pod}_${ns}_app-${p}-${containerId}.log`),
    );
  }
  await put(tree, "/var/log/crio/pods/.keep", "");
  await put(tree, "/var/log/wtmp", Buffer.alloc(384 * 20));
  await put(tree, "/var/log/lastlog", Buffer.alloc(292 * 4));
  // The journal, written by systemd-journal-remote under the tree's machine id (journalctl reads
  // only the local machine's directory); its export-format input goes to the scratch directory.
  const journalDir = path.join(tree.host, "var/log/journal", MACHINE_ID);
  const exportDir = path.join(tree.scratch, "export");
  await mkdir(exportDir, { recursive: true });
  await writeJournalFile(path.join(journalDir, "system.journal"), journalEntries(now), exportDir);
  const files = readdirSync(journalDir).filter((f) => f.endsWith(".journal"));
  return {
    journalFiles: files.length,
    journalBytes: files.reduce((sum, f) => sum + statSync(path.join(journalDir, f)).size, 0),
  };
}

/** The rpm database of the node (see RPMS), built with rpmbuild and rpm in the scratch directory. */
async function writeRpmdb(tree: Tree): Promise<void> {
  const top = path.join(tree.scratch, "rpmbuild");
  await mkdir(path.join(top, "SPECS"), { recursive: true });
  // rpmbuild opens an rpm database too: keep it in the scratch directory, not in ~/.rpmdb.
  const defines = ["--define", `_topdir ${top}`, "--define", `_dbpath ${path.join(top, "db")}`];
  for (const [name, version] of RPMS) {
    const spec = path.join(top, "SPECS", `${name}.spec`);
    await writeFile(
      spec,
      `Name: ${name}\nVersion: ${version}\nRelease: 1.el9\nSummary: ${name} (empty, for the must-gather benchmark)\nLicense: none\nBuildArch: noarch\n%description\nempty\n%files\n`,
    );
    await execa("rpmbuild", ["--quiet", ...defines, "-bb", spec], { stdin: "ignore" });
  }
  // Debian's rpm keeps its database in ~/.rpmdb; a RHEL node's is /var/lib/rpm.
  await put(tree, "/etc/rpm/macros", "%_dbpath /var/lib/rpm\n");
  const db = ["--root", tree.host, "--dbpath", "/var/lib/rpm"];
  await execa("rpm", [...db, "--initdb"], { stdin: "ignore" });
  const rpms = readdirSync(path.join(top, "RPMS/noarch")).map((f) => path.join(top, "RPMS/noarch", f));
  await execa("rpm", [...db, "-i", "--justdb", "--nodeps", "--noscripts", "--nosignature", ...rpms], {
    stdin: "ignore",
  });
}

interface Built {
  buildMs: number;
  layers: number;
  imagestoreLayers: number;
  fileContextsBytes: number;
  journalBytes: number;
  journalFiles: number;
  treeBytes: number;
  treeFiles: number;
  /** "path size" of the main parts. */
  subtrees: string[];
}

async function buildTree(tree: Tree): Promise<Built> {
  const started = performance.now();
  await mkdir(tree.host, { recursive: true });
  await execa("mount", ["-t", "tmpfs", "-o", "size=2g,nr_inodes=1m", "tmpfs", tree.host]);
  tree.mounted.push(tree.host);
  // The node's /usr is the machine's, read-only, with the merged-/usr links of a current
  // distribution: sos runs its commands (journalctl, ls, ps) chrooted into --sysroot, so they
  // must exist there, as they do on a node's root; without them sos would fall back to running
  // them on the machine's own root (its journal, its /var/log).
  const usr = path.join(tree.host, "usr");
  await mkdir(usr);
  await execa("mount", ["--bind", "/usr", usr]);
  tree.mounted.push(usr);
  await execa("mount", ["-o", "remount,bind,ro", usr]);
  for (const link of ["bin", "sbin", "lib", "lib64"])
    await symlink(`usr/${link}`, path.join(tree.host, link));
  for (const dir of ["tmp", "run/crio", "var/tmp", "root", "proc", "dev"])
    await mkdir(path.join(tree.host, dir), { recursive: true });
  await mkdir(tree.proc, { recursive: true });
  await symlink("/proc/self", path.join(tree.proc, "1"));

  const store = buildStore({ hostRoot: tree.host });
  const imagestoreLayers = await buildImagestore(tree);
  await writeConfig(tree);
  const fileContextsBytes = await writeSelinux(tree);
  await writeRpmdb(tree);
  const journal = await writeLogs(tree, Date.now());
  const du = await execa("du", ["-sx", "--bytes", "--exclude=./usr", "."], { cwd: tree.host });
  const parts = [
    GRAPHROOT,
    IMAGESTORE,
    "/etc/selinux",
    "/var/lib/selinux",
    "/var/log/audit",
    "/var/log/pods",
    "/etc/containers",
    "/etc/crio",
  ];
  const partDu = await execa("du", ["-s", "--bytes", ...parts.map((p) => `.${p}`)], { cwd: tree.host });
  const subtrees = partDu.stdout
    .split("\n")
    .map((line) => line.split("\t"))
    .map(([bytes, rel]) => `${rel!.slice(1)} ${mb(Number(bytes))}`);
  const files = await execa("find", [tree.host, "-xdev", "-type", "f"], { stdout: "pipe" });
  return {
    buildMs: performance.now() - started,
    layers: store.layers,
    imagestoreLayers,
    fileContextsBytes,
    ...journal,
    treeBytes: Number(du.stdout.split(/\s/)[0]),
    treeFiles: files.stdout.split("\n").length,
    subtrees,
  };
}

/** The private mount namespace sos runs in (see the head of this file); returns its pin. */
async function sosNamespace(scratch: string, mounted: string[]): Promise<{ pin: string; masked: string[] }> {
  const dir = path.join(scratch, "ns");
  await mkdir(dir);
  // A namespace pinned by a bind mount must not be on a shared mount: a private tmpfs of its own.
  await execa("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]);
  mounted.push(dir);
  await execa("mount", ["--make-private", dir]);
  const pin = path.join(dir, "mnt");
  const osRelease = path.join(dir, "os-release");
  await writeFile(pin, "");
  await writeFile(osRelease, OS_RELEASE);
  await execa("unshare", [`--mount=${pin}`, "--propagation", "private", "true"]);
  mounted.push(pin);
  const inside = (args: string[]) => execa("nsenter", [`--mount=${pin}`, "--", ...args], { stdin: "ignore" });
  // /etc/os-release is a link to ../usr/lib/os-release: the bind lands on its target, in there only.
  await inside(["mount", "--bind", osRelease, "/etc/os-release"]);
  // sos 4.0 asks the machine's own podman and docker for their containers, images and volumes at
  // start (LinuxPolicy, not chrooted to --sysroot): that reads the machine's container storage,
  // not the node's. Hide them in there.
  const masked: string[] = [];
  for (const dir of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"]) {
    for (const runtime of ["podman", "docker"]) {
      const candidate = path.join(dir, runtime);
      if (existsSync(candidate)) {
        await inside(["mount", "--bind", "/dev/null", candidate]);
        masked.push(candidate);
      }
    }
  }
  // sos writes only under --tmp-dir; a tmpfs over /var/tmp (its default) in there shows it: it
  // must still be empty after the runs.
  await inside(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", "/var/tmp"]);
  const seen = (await inside(["cat", "/etc/os-release"])).stdout;
  if (!seen.startsWith('NAME="Red Hat Enterprise Linux'))
    throw new Error("the namespace does not see the RHCOS os-release");
  if ((await readFile("/etc/os-release", "utf8")).startsWith('NAME="Red Hat'))
    throw new Error("the machine's /etc/os-release changed");
  return { pin, masked };
}

interface SosPlugin {
  name: string;
  runMs: number;
  files: number;
  commands: { exec: string; rc: number; ms: number }[];
}

/** A plugin in sos's sos_reports/manifest.json (sos 4.0). */
interface ManifestPlugin {
  run_time: string;
  setup_time: string;
  files: { files_copied: string[] }[];
  commands: { exec: string; return_code: number; run_time: number }[];
}

/** What sos's own manifest says: the policy, and per plugin what it ran and copied. */
async function sosManifest(
  archive: string,
  into: string,
): Promise<{ policy: string; runMs: number; plugins: SosPlugin[] }> {
  await rm(into, { recursive: true, force: true });
  await mkdir(into, { recursive: true });
  await execa("tar", ["-xzf", archive, "-C", into, "--wildcards", "*/sos_reports/manifest.json"]);
  const top = readdirSync(into)[0]!;
  const manifest = JSON.parse(await readFile(path.join(into, top, "sos_reports/manifest.json"), "utf8"));
  const seconds = (span: string) => {
    const [h, m, s] = span.split(":").map(Number);
    return ((h ?? 0) * 3600 + (m ?? 0) * 60 + (s ?? 0)) * 1000;
  };
  const report = manifest.components.report as { plugins: Record<string, ManifestPlugin> };
  const plugins: SosPlugin[] = Object.entries(report.plugins).map(([name, p]) => ({
    name,
    runMs: seconds(p.run_time) + seconds(p.setup_time),
    files: p.files.reduce((sum, f) => sum + f.files_copied.length, 0),
    commands: p.commands.map((c) => ({
      exec: c.exec.replace(/\s+/g, " "),
      rc: c.return_code,
      ms: c.run_time * 1000,
    })),
  }));
  return { policy: manifest.policy, runMs: seconds(manifest.run_time), plugins };
}

/** "journalctl 0, crictl x8 127": each program once, with how often it ran and its exit statuses. */
function commandSummary(commands: { exec: string; rc: number }[]): string {
  const byName = new Map<string, { count: number; codes: Set<number> }>();
  for (const c of commands) {
    const name = c.exec.split(" ")[0]!;
    const seen = byName.get(name) ?? { count: 0, codes: new Set<number>() };
    seen.count += 1;
    seen.codes.add(c.rc);
    byName.set(name, seen);
  }
  const parts = [...byName].map(
    ([name, { count, codes }]) => `${name}${count > 1 ? ` x${count}` : ""} ${[...codes].join("/")}`,
  );
  return parts.join(", ") || "-";
}

/** Uncompressed bytes in a .tar.gz, by the first `depth` path components below its top directory. */
async function composition(archive: string, depth: number, stripTop: boolean): Promise<[string, number][]> {
  const listing = await execa("tar", ["-tvzf", archive], { stdin: "ignore" });
  const sums = new Map<string, number>();
  for (const line of listing.stdout.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 6 || !fields[0]!.startsWith("-")) continue;
    const size = Number(fields[2]);
    const parts = fields.slice(5).join(" ").split(" -> ")[0]!.split("/").filter(Boolean);
    const key = parts.slice(stripTop ? 1 : 0, (stripTop ? 1 : 0) + depth).join("/") || ".";
    sums.set(key, (sums.get(key) ?? 0) + size);
  }
  return [...sums].sort((a, b) => b[1] - a[1]);
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;

/** Paths outside the scratch directory that changed since `marker` was written (sos must write none). */
async function changedOutside(marker: string): Promise<string[]> {
  const roots = ["/etc", "/root/.rpmdb", "/usr/lib/python3/dist-packages/sos"].filter(existsSync);
  const found = await execa("find", [...roots, "-xdev", "-newer", marker], { reject: false });
  return found.stdout.split("\n").filter(Boolean);
}

export async function mustGather(repo: string): Promise<void> {
  requireRoot("must-gather", "mounts a tmpfs and runs sos in a mount namespace");
  for (const tool of ["/usr/bin/sos", "rpmbuild", "nsenter"]) {
    const found = await execa("sh", ["-c", 'command -v "$1"', "sh", tool], { reject: false });
    if (found.exitCode !== 0)
      throw new Error(
        `${tool} not found (Debian packages: sosreport, rpm, util-linux, systemd-journal-remote)`,
      );
  }
  await withScratch(async (scratch) => {
    const tree: Tree = {
      scratch: scratch.dir,
      host: path.join(scratch.dir, "host"),
      proc: path.join(scratch.dir, "proc"),
      mounted: scratch.mounted,
    };
    const marker = path.join(scratch.dir, "marker");
    await writeFile(marker, "");
    const built = await buildTree(tree);
    if (process.env.IMAGEFS_BENCH_HOLD === "1") {
      // For profiling: keep the tree (and its mounts) until SIGINT/SIGTERM, then clean up as usual.
      console.log(
        `tree built in ${(built.buildMs / 1000).toFixed(1)} s and held until SIGINT/SIGTERM (IMAGEFS_BENCH_HOLD=1):\n` +
          `  node ${path.join(repo, "dist/collector/cli.js")} must-gather -o ${path.join(tree.scratch, "must-gather.tar.gz")} --host-root ${tree.host} --proc-root ${tree.proc}`,
      );
      await new Promise<never>(() => setInterval(() => {}, 1 << 30));
    }
    const ns = await sosNamespace(scratch.dir, scratch.mounted);
    await measure(repo, tree, built, ns, marker);
  });
}

async function measure(
  repo: string,
  tree: Tree,
  built: Built,
  ns: { pin: string; masked: string[] },
  marker: string,
): Promise<void> {
  const cli = path.join(repo, "dist/collector/cli.js");
  const sosOut = path.join(tree.scratch, "sos-out");
  const oursOut = path.join(tree.scratch, "must-gather.tar.gz");
  const sizes: Record<"ours" | "sos", number[]> = { ours: [], sos: [] };
  let lastSos = "";

  const sosArgs = [
    `--mount=${ns.pin}`,
    "--",
    "/usr/bin/sos",
    "report",
    "--batch",
    "--preset",
    "rhel",
    "--sysroot",
    tree.host,
    "-o",
    SOS_PLUGINS.join(","),
    "--tmp-dir",
    sosOut,
    "-z",
    "gzip",
  ];
  const runSos = async () => {
    await rm(sosOut, { recursive: true, force: true });
    await mkdir(sosOut);
    const child = await execa("nsenter", sosArgs, { stdin: "ignore", stdout: "ignore", reject: false });
    const archive = readdirSync(sosOut).find((f) => f.endsWith(".tar.gz"));
    if (child.exitCode !== 0 || !archive)
      throw new Error(`sos report failed (${child.exitCode}): ${child.stderr}`);
    lastSos = path.join(sosOut, archive);
    sizes.sos.push(statSync(lastSos).size);
  };
  const oursArgs = [cli, "must-gather", "-o", oursOut, "--host-root", tree.host, "--proc-root", tree.proc];
  const runOurs = async () => {
    await rm(oursOut, { force: true });
    const child = await execa(process.execPath, oursArgs, {
      stdin: "ignore",
      stdout: "ignore",
      reject: false,
    });
    if (child.exitCode !== 0 || !existsSync(oursOut))
      throw new Error(`must-gather failed (${child.exitCode}): ${child.stderr}`);
    sizes.ours.push(statSync(oursOut).size);
  };
  // Until the command lands, the built CLI has no must-gather: time sos alone then.
  const help = await execa(process.execPath, [cli, "--help"], { reject: false });
  const haveOurs = /^\s+must-gather\b/m.test(help.stdout);

  console.log(
    `must-gather vs sos report on one node root (tmpfs, built in ${(built.buildMs / 1000).toFixed(1)} s): ` +
      `${mb(built.treeBytes)} in ${built.treeFiles} files besides /usr; graphroot ${built.layers} layers, ` +
      `imagestore ${built.imagestoreLayers} layers; journal ${JOURNAL_ENTRIES} entries over ${DAYS} days in ` +
      `${built.journalFiles} files (${mb(built.journalBytes)}); file_contexts ${mb(built.fileContextsBytes)}`,
  );
  console.log(`of it: ${built.subtrees.join(", ")}`);
  console.log(`sos: nsenter ${sosArgs.slice(2).join(" ")}`);
  console.log(
    `     in a mount namespace where /etc/os-release is RHCOS's; masked there: ${ns.masked.join(", ") || "none"}`,
  );
  console.log(`ours: node ${oursArgs.join(" ")}`);

  const entries = [{ label: "sos report (crio, selinux, containers_common, logs)", run: runSos }];
  if (haveOurs) entries.unshift({ label: "imagefs-doctor must-gather", run: runOurs });
  else console.log("\nmust-gather is not in this build (`cli.js --help` does not list it): timing sos alone");
  const series = await interleave(entries, { warmup: WARMUP, runs: RUNS });
  // The warm-up round's archives are not counted.
  sizes.sos.splice(0, sizes.sos.length - RUNS);
  sizes.ours.splice(0, sizes.ours.length - RUNS);

  console.log(`\n${RUNS} interleaved runs each after ${WARMUP} warm-up round (node ${process.version})`);
  console.log(seriesTable(series));
  const sizeRows = [] as string[][];
  if (haveOurs)
    sizeRows.push([
      "imagefs-doctor must-gather",
      mb(median(sizes.ours)),
      mb(Math.min(...sizes.ours)),
      mb(Math.max(...sizes.ours)),
    ]);
  sizeRows.push([
    "sos report",
    mb(median(sizes.sos)),
    mb(Math.min(...sizes.sos)),
    mb(Math.max(...sizes.sos)),
  ]);
  console.log(`\n${table(["archive", "median", "min", "max"], sizeRows)}`);

  // What sos did, from its own manifest in the last archive.
  const manifest = await sosManifest(lastSos, path.join(tree.scratch, "sos-manifest"));
  console.log(
    `\nsos (last run): policy "${manifest.policy}", ${(manifest.runMs / 1000).toFixed(2)} s by its own clock`,
  );
  const ran = manifest.plugins.map((p) => p.name).sort();
  const missing = SOS_PLUGINS.filter((p) => !ran.includes(p));
  const extra = ran.filter((p) => !SOS_PLUGINS.includes(p));
  console.log(
    `plugins run: ${ran.join(", ")}${missing.length ? `; NOT run: ${missing.join(", ")}` : ""}${extra.length ? `; also run: ${extra.join(", ")}` : ""}`,
  );
  console.log(
    table(
      ["plugin", "setup+run", "files copied", "commands (exit status)"],
      manifest.plugins.map((p) => [p.name, ms(p.runMs), String(p.files), commandSummary(p.commands)]),
    ),
  );
  const slowest = manifest.plugins
    .flatMap((p) => p.commands.map((c) => ({ ...c, plugin: p.name })))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 4);
  console.log(`slowest commands: ${slowest.map((c) => `${c.plugin}: ${c.exec} ${ms(c.ms)}`).join("; ")}`);
  if (missing.length > 0) throw new Error(`sos did not run ${missing.join(", ")}`);

  const changed = await changedOutside(marker);
  const varTmp = await execa("nsenter", [`--mount=${ns.pin}`, "--", "find", "/var/tmp", "-mindepth", "1"]);
  console.log(
    `written outside the scratch directory: /etc, /root/.rpmdb, sos's own files: ${changed.length ? changed.join(" ") : "nothing"}; ` +
      `/var/tmp as sos saw it: ${varTmp.stdout.trim() ? varTmp.stdout.trim().split("\n").join(" ") : "nothing"}`,
  );
  const sosParts = await composition(lastSos, 2, true);
  const sosTotal = sosParts.reduce((sum, [, bytes]) => sum + bytes, 0);
  console.log(
    `sos archive, uncompressed ${mb(sosTotal)}: ${sosParts
      .slice(0, 6)
      .map(([key, bytes]) => `${key} ${mb(bytes)}`)
      .join(", ")}`,
  );
  const lastWall = series.at(-1)!.samples.at(-1)!;
  console.log(
    `sos, last run: ${ms(lastWall)} wall, ${ms(manifest.runMs)} by its own clock (the rest: Python start-up, the policy, the archive)`,
  );
  // The logs plugin reads the whole journal only when systemd-journald is a service of the
  // running init, which sos asks of the machine (systemctl), not of --sysroot: on a systemd-booted
  // node it would also run `journalctl --no-pager` (and the same with --boot and --boot -1),
  // chrooted into the root as sos runs its commands. Timed once, for reference.
  const started = performance.now();
  await execa("chroot", [tree.host, "journalctl", "--no-pager"], { stdin: "ignore", stdout: "ignore" });
  console.log(
    `(reference, not in sos's figures) what the logs plugin adds on a systemd-booted node, per whole-journal command: ` +
      `chroot <root> journalctl --no-pager ${ms(performance.now() - started)}`,
  );

  if (!haveOurs) return;
  const ratio = median(series[0]!.samples) / median(series[1]!.samples);
  const ourParts = await composition(oursOut, 1, true);
  console.log(
    `must-gather bundle, uncompressed ${mb(ourParts.reduce((sum, [, bytes]) => sum + bytes, 0))}: ${ourParts
      .slice(0, 8)
      .map(([key, bytes]) => `${key} ${mb(bytes)}`)
      .join(", ")}`,
  );
  const sizeMB = median(sizes.ours) / 1e6;
  // Its own account of the last run: each step's time and whether the size cap dropped anything.
  const unpacked = path.join(tree.scratch, "must-gather-unpacked");
  await mkdir(unpacked);
  await execa("tar", ["-xzf", oursOut, "-C", unpacked]);
  const ourManifest = JSON.parse(
    await readFile(path.join(unpacked, readdirSync(unpacked)[0]!, "manifest.json"), "utf8"),
  ) as {
    capped: boolean;
    startedAt: string;
    finishedAt: string;
    steps: { name: string; status: string; durationMs: number; items: number }[];
  };
  const lastOurs = series[0]!.samples.at(-1)!;
  const ownMs = Date.parse(ourManifest.finishedAt) - Date.parse(ourManifest.startedAt);
  console.log(
    `must-gather, last run: ${ms(lastOurs)} wall, ${ms(ownMs)} from its start to the end of gathering; capped by --max-size: ${ourManifest.capped ? "yes" : "no"}`,
  );
  console.log(
    table(
      ["step", "status", "duration", "items"],
      ourManifest.steps.map((step) => [step.name, step.status, ms(step.durationMs), String(step.items)]),
    ),
  );
  const snapshotFile = path.join(unpacked, readdirSync(unpacked)[0]!, "snapshot.json");
  if (existsSync(snapshotFile)) {
    const snapshot = JSON.parse(await readFile(snapshotFile, "utf8")) as {
      sources: Record<string, { status: string; durationMs: number }>;
    };
    const sources = Object.entries(snapshot.sources).sort((a, b) => b[1].durationMs - a[1].durationMs);
    console.log(
      `the snapshot's sources (they run side by side), slowest first: ${sources
        .slice(0, 6)
        .map(([name, r]) => `${name} ${ms(r.durationMs)}${r.status === "ok" ? "" : ` (${r.status})`}`)
        .join(", ")}`,
    );
  }
  console.log(
    `SIZE must-gather ${sizeMB.toFixed(2)} MB (target <= ${SIZE_TARGET_MB} MB): ${sizeMB <= SIZE_TARGET_MB ? "met" : "not met"}`,
  );
  console.log(ratioLine("must-gather", ratio, TARGET_RATIO));
}
