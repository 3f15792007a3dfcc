/**
 * deploy/: every manifest validates against the Kubernetes OpenAPI schemas (kubernetes-models),
 * the Prometheus Operator's CRDs and OpenShift's SCC CRD; the invariants the DaemonSet's design
 * rests on hold; the kustomizations list every file and build (kubectl kustomize); the SCC admits
 * exactly the DaemonSet's pod; the generated files are up to date; and the Containerfile, which no
 * container engine can build here, is checked statically and its build stages are replayed on
 * exactly the files it copies.
 */
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  type IPrometheusRule,
  type IServiceMonitor,
  PrometheusRule,
  ServiceMonitor,
} from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { Ajv, type AnySchemaObject } from "ajv";
import { execa } from "execa";
import { CustomResourceDefinition } from "kubernetes-models/apiextensions.k8s.io/v1";
import { DaemonSet, type IDaemonSet } from "kubernetes-models/apps/v1";
import {
  ClusterRole,
  ClusterRoleBinding,
  type IRole,
  type IRoleBinding,
  Role,
  RoleBinding,
} from "kubernetes-models/rbac.authorization.k8s.io/v1";
import {
  ConfigMap,
  type IContainer,
  type INamespace,
  type IService,
  type IServiceAccount,
  Namespace,
  Service,
  ServiceAccount,
} from "kubernetes-models/v1";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { SERVE_ENV } from "../bench/serve-scrape.js";
import { renderDashboards, renderOutputs, renderPrometheusRule } from "../deploy/generate.js";

const REPO = path.resolve(import.meta.dirname, "..");
const DEPLOY = path.join(REPO, "deploy");
const CLI = path.join(REPO, "dist/collector/cli.js");
const PACKAGE = JSON.parse(await readFile(path.join(REPO, "package.json"), "utf8")) as { version: string };

type Obj = Record<string, unknown>;

interface Doc {
  file: string;
  object: Obj;
}

// ---------------------------------------------------------------------------------------------
// Loading and validating

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full)));
    else out.push(full);
  }
  return out.sort();
}

/** Every non-empty YAML document of a text; a syntax error fails. */
function parseDocs(text: string, file: string): Doc[] {
  return parseAllDocuments(text).flatMap((document) => {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]!.message}`);
    const object = document.toJS() as unknown;
    if (object === null || object === undefined) return [];
    if (typeof object !== "object" || Array.isArray(object)) throw new Error(`${file}: not an object`);
    return [{ file, object: object as Obj }];
  });
}

async function loadDocs(file: string): Promise<Doc[]> {
  return parseDocs(await readFile(file, "utf8"), path.relative(REPO, file));
}

/** OpenShift's SCC schema (deploy/schemas/), made strict the way the API server's field validation is. */
async function sccValidator() {
  const [crd] = await loadDocs(path.join(DEPLOY, "schemas/securitycontextconstraints.crd.yaml"));
  const versions = (crd!.object.spec as { versions: { name: string; schema: { openAPIV3Schema: Obj } }[] })
    .versions;
  const schema = versions.find((v) => v.name === "v1")!.schema.openAPIV3Schema;
  const strict = (node: unknown, atMetadata = false): unknown => {
    if (Array.isArray(node)) return node.map((n) => strict(n));
    if (typeof node !== "object" || node === null) return node;
    const input = node as Obj;
    const out: Obj = {};
    for (const [key, value] of Object.entries(input)) {
      if (key.startsWith("x-kubernetes-") || key === "nullable" || key === "format") continue;
      if (key === "properties") {
        out.properties = Object.fromEntries(
          Object.entries(value as Obj).map(([name, sub]) => [name, strict(sub, name === "metadata")]),
        );
      } else out[key] = strict(value);
    }
    if (input.nullable === true && typeof input.type === "string") out.type = [input.type, "null"];
    // Unknown fields are an error (kubectl apply's default --validate=strict), except where the
    // schema keeps them, and in metadata, which the API server validates on its own.
    if (input.properties && !input["x-kubernetes-preserve-unknown-fields"] && !atMetadata) {
      out.additionalProperties = false;
    }
    return out;
  };
  const ajv = new Ajv({ allErrors: true, strict: true });
  return ajv.compile(strict(schema) as AnySchemaObject);
}
const validateScc = await sccValidator();

const SCC_STRATEGIES: Record<string, string[]> = {
  runAsUser: ["MustRunAs", "MustRunAsRange", "MustRunAsNonRoot", "RunAsAny"],
  seLinuxContext: ["MustRunAs", "RunAsAny"],
  fsGroup: ["MustRunAs", "RunAsAny"],
  supplementalGroups: ["MustRunAs", "RunAsAny"],
};

function validateSecurityContextConstraints(object: Obj): void {
  if (!validateScc(object)) {
    throw new Error(
      (validateScc.errors ?? [])
        .map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`)
        .join("; "),
    );
  }
  const name = (object.metadata as Obj | undefined)?.name;
  if (typeof name !== "string" || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) {
    throw new Error(`metadata.name ${JSON.stringify(name)} is not a DNS subdomain`);
  }
  if ((object.metadata as Obj).namespace !== undefined) throw new Error("an SCC is cluster-scoped");
  for (const [field, allowed] of Object.entries(SCC_STRATEGIES)) {
    const type = (object[field] as Obj | undefined)?.type;
    if (type !== undefined && !allowed.includes(type as string)) {
      throw new Error(`${field}.type ${type} is not one of ${allowed.join(", ")}`);
    }
  }
}

const KUSTOMIZATION = "kustomize.config.k8s.io/v1beta1/Kustomization";

/** apiVersion/kind -> validation; anything else is an unknown kind and fails. */
const VALIDATORS: Record<string, (object: Obj) => void> = {
  "v1/Namespace": (o) => new Namespace(o).validate(),
  "v1/ServiceAccount": (o) => new ServiceAccount(o).validate(),
  "v1/Service": (o) => new Service(o).validate(),
  "v1/ConfigMap": (o) => new ConfigMap(o).validate(),
  "apps/v1/DaemonSet": (o) => new DaemonSet(o as never).validate(),
  "rbac.authorization.k8s.io/v1/Role": (o) => new Role(o as never).validate(),
  "rbac.authorization.k8s.io/v1/RoleBinding": (o) => new RoleBinding(o as never).validate(),
  "rbac.authorization.k8s.io/v1/ClusterRole": (o) => new ClusterRole(o as never).validate(),
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": (o) => new ClusterRoleBinding(o as never).validate(),
  "monitoring.coreos.com/v1/ServiceMonitor": (o) => new ServiceMonitor(o as never).validate(),
  "monitoring.coreos.com/v1/PrometheusRule": (o) => new PrometheusRule(o as never).validate(),
  "apiextensions.k8s.io/v1/CustomResourceDefinition": (o) =>
    new CustomResourceDefinition(o as never).validate(),
  "security.openshift.io/v1/SecurityContextConstraints": validateSecurityContextConstraints,
  [KUSTOMIZATION]: validateKustomizationShape,
};

const KUSTOMIZATION_FIELDS = new Set([
  "apiVersion",
  "kind",
  "namespace",
  "resources",
  "patches",
  "images",
  "labels",
  "commonAnnotations",
  "components",
]);

function validateKustomizationShape(object: Obj): void {
  for (const key of Object.keys(object)) {
    if (!KUSTOMIZATION_FIELDS.has(key)) throw new Error(`unexpected kustomization field ${key}`);
  }
  for (const key of ["resources", "components"]) {
    const list = object[key];
    if (list !== undefined && !(Array.isArray(list) && list.every((r) => typeof r === "string"))) {
      throw new Error(`${key} must be a list of paths`);
    }
  }
}

function kindOf(object: Obj): string {
  return `${object.apiVersion}/${object.kind}`;
}

function validate(doc: Doc): void {
  const validator = VALIDATORS[kindOf(doc.object)];
  if (!validator) throw new Error(`${doc.file}: unknown kind ${kindOf(doc.object)}: add a validator`);
  try {
    validator(doc.object);
  } catch (error) {
    const name = (doc.object.metadata as Obj | undefined)?.name ?? "";
    throw new Error(`${doc.file}: ${kindOf(doc.object)} ${name}: ${(error as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Kustomizations

interface Kustomization {
  dir: string;
  resources: string[];
  patches: { path: string }[];
  images?: { name: string; newName?: string; newTag?: string }[];
}

async function loadKustomization(dir: string): Promise<Kustomization> {
  const [doc] = await loadDocs(path.join(dir, "kustomization.yaml"));
  const object = doc!.object as unknown as Omit<Kustomization, "dir">;
  return { dir, resources: object.resources ?? [], patches: object.patches ?? [], images: object.images };
}

/** Strategic merge of a map-only patch (no lists: a list would need the patch strategy). */
function mergePatch(target: Obj, patch: Obj, at = ""): Obj {
  const out: Obj = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (Array.isArray(value)) throw new Error(`patch has a list at ${at}.${key}: use maps only`);
    if (typeof value === "object" && value !== null && typeof out[key] === "object" && out[key] !== null) {
      out[key] = mergePatch(out[key] as Obj, value as Obj, `${at}.${key}`);
    } else out[key] = value;
  }
  return out;
}

function sameObject(a: Obj, b: Obj): boolean {
  const meta = (o: Obj) => o.metadata as Obj;
  return kindOf(a) === kindOf(b) && meta(a).name === meta(b).name;
}

/**
 * A small `kustomize build` for the features deploy/ uses (resources, map-only patches): the
 * objects of a kustomization, patches applied. kubectl kustomize is the reference (below); this
 * one runs everywhere and lets patch files be validated as whole objects.
 */
async function build(dir: string): Promise<Doc[]> {
  const k = await loadKustomization(dir);
  const docs: Doc[] = [];
  for (const resource of k.resources) {
    const full = path.join(dir, resource);
    if ((await stat(full)).isDirectory()) docs.push(...(await build(full)));
    else docs.push(...(await loadDocs(full)));
  }
  for (const patch of k.patches) {
    for (const p of await loadDocs(path.join(dir, patch.path))) {
      const index = docs.findIndex((d) => sameObject(d.object, p.object));
      if (index < 0) throw new Error(`${p.file}: patches nothing in ${path.relative(REPO, dir)}`);
      docs[index] = {
        file: `${docs[index]!.file} + ${p.file}`,
        object: mergePatch(docs[index]!.object, p.object),
      };
    }
  }
  return docs;
}

function find<T>(docs: Doc[], kind: string): T[] {
  return docs.filter((d) => d.object.kind === kind).map((d) => d.object as T);
}

function one<T>(docs: Doc[], kind: string): T {
  const found = find<T>(docs, kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0]!;
}

/** kubectl ships with kustomize; skipped loudly without it, and a failure in CI. */
async function kubectlKustomize(): Promise<((dir: string) => Promise<Doc[]>) | undefined> {
  const probe = await execa("kubectl", ["version", "--client"], { reject: false, timeout: 20_000 });
  if (probe.exitCode !== 0) {
    const message = "deploy tests need kubectl (kubectl kustomize) to build the kustomizations";
    if (process.env.CI === "true") throw new Error(`CI: ${message}`);
    process.stderr.write(`\n${"!".repeat(78)}\n!! SKIPPING: ${message}\n${"!".repeat(78)}\n\n`);
    return undefined;
  }
  return async (dir) => {
    const result = await execa("kubectl", ["kustomize", dir], { timeout: 60_000 });
    return parseDocs(result.stdout, `kubectl kustomize ${path.relative(REPO, dir)}`);
  };
}

// ---------------------------------------------------------------------------------------------
// The DaemonSet's facts

function bytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity);
  if (!match) throw new Error(`cannot read quantity ${quantity}`);
  const units: Record<string, number> = {
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Number(match[1]) * (match[2] ? units[match[2]]! : 1);
}

/** The value of `--flag value` (or `--flag=value`) in an argument list. */
function flag(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (args[i]!.startsWith(`${name}=`)) return args[i]!.slice(name.length + 1);
  }
  return undefined;
}

function container(ds: IDaemonSet): IContainer {
  const containers = ds.spec!.template.spec!.containers;
  expect(containers).toHaveLength(1);
  return containers[0]!;
}

function mountOf(ds: IDaemonSet, mountPath: string) {
  const mount = container(ds).volumeMounts?.find((m) => m.mountPath === mountPath);
  if (!mount) throw new Error(`no volume mount at ${mountPath}`);
  const volume = ds.spec!.template.spec!.volumes?.find((v) => v.name === mount.name);
  if (!volume) throw new Error(`no volume ${mount.name}`);
  return { mount, volume };
}

/** Checks the invariants of the Kubernetes objects (of deploy/kubernetes, or a build of it). */
function checkKubernetesInvariants(docs: Doc[]): void {
  const ds = one<IDaemonSet>(docs, "DaemonSet");
  const pod = ds.spec!.template.spec!;
  const c = container(ds);
  const args = c.args ?? [];

  expect(pod.hostPID).toBe(true);
  expect(pod.hostNetwork ?? false).toBe(false);
  expect(pod.hostIPC ?? false).toBe(false);
  expect(pod.tolerations).toContainEqual({ operator: "Exists" });
  expect(pod.priorityClassName).toBe("system-node-critical");
  expect(pod.automountServiceAccountToken).toBe(false);
  const sa = one<IServiceAccount>(docs, "ServiceAccount");
  expect(pod.serviceAccountName).toBe(sa.metadata!.name);
  expect(sa.automountServiceAccountToken).toBe(false);

  // The host, read-only at /host, following host mounts; what the CLI is told.
  expect(args[0]).toBe("serve");
  expect(flag(args, "--host-root")).toBe("/host");
  expect(flag(args, "--proc-root")).toBe("/proc");
  expect(flag(args, "--listen")).toBe("0.0.0.0:9817");
  const host = mountOf(ds, "/host");
  expect(host.volume.hostPath?.path).toBe("/");
  expect(host.mount.readOnly).toBe(true);
  expect(host.mount.mountPropagation).toBe("HostToContainer");
  // Every other hostPath is read-only, but the state directory, which --state-dir names.
  const stateDir = flag(args, "--state-dir")!;
  const state = mountOf(ds, stateDir);
  expect(state.volume.hostPath?.path).toBe("/var/lib/imagefs-doctor");
  for (const mount of c.volumeMounts ?? []) {
    if (mount.mountPath === stateDir || mount.mountPath === "/tmp") continue;
    expect(mount.readOnly, `${mount.mountPath} is read-only`).toBe(true);
  }
  // The masks over kernel interfaces are empty directories.
  for (const masked of ["/host/proc", "/host/sys/fs/cgroup", "/host/dev"]) {
    expect(mountOf(ds, masked).volume.emptyDir).toBeDefined();
  }

  // Root, confined: no privileged, two capabilities, read-only root filesystem, seccomp.
  const sc = c.securityContext!;
  expect(sc.runAsUser ?? pod.securityContext?.runAsUser).toBe(0);
  expect(sc.privileged ?? false).toBe(false);
  expect(sc.allowPrivilegeEscalation).toBe(false);
  expect(sc.readOnlyRootFilesystem).toBe(true);
  expect(sc.capabilities?.drop).toEqual(["ALL"]);
  expect([...(sc.capabilities?.add ?? [])].sort()).toEqual(["DAC_READ_SEARCH", "SYS_PTRACE"]);
  expect((sc.seccompProfile ?? pod.securityContext?.seccompProfile)?.type).toBe("RuntimeDefault");

  // NODE_NAME from the downward API.
  expect(c.env).toContainEqual({
    name: "NODE_NAME",
    valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } },
  });

  // The memory settings the serve-scrape benchmark measures with.
  const env = (name: string) => c.env?.find((e) => e.name === name)?.value ?? "";
  for (const [name, value] of Object.entries(SERVE_ENV)) {
    for (const word of value.split(" ")) expect(env(name).split(" "), name).toContain(word);
  }

  // The port, the probes on it, and --listen agree.
  const port = c.ports?.find((p) => p.name === "metrics");
  expect(port?.containerPort).toBe(9817);
  expect(flag(args, "--listen")!.split(":")[1]).toBe(String(port?.containerPort));
  const probePort = (p: number | string | undefined) => (p === "metrics" ? port?.containerPort : p);
  expect(c.livenessProbe?.httpGet?.path).toBe("/healthz");
  expect(probePort(c.livenessProbe?.httpGet?.port)).toBe(9817);
  expect(c.readinessProbe?.httpGet?.path).toBe("/readyz");
  expect(probePort(c.readinessProbe?.httpGet?.port)).toBe(9817);

  // Resources: requests and limits for CPU and memory; memory limit at least 256 Mi.
  for (const kind of ["requests", "limits"] as const) {
    expect(c.resources?.[kind]?.cpu, `${kind}.cpu`).toBeDefined();
    expect(c.resources?.[kind]?.memory, `${kind}.memory`).toBeDefined();
  }
  expect(bytes(String(c.resources!.limits!.memory))).toBeGreaterThanOrEqual(256 * 2 ** 20);
  expect(bytes(String(c.resources!.requests!.memory))).toBeLessThanOrEqual(
    bytes(String(c.resources!.limits!.memory)),
  );

  // The image is this version's.
  expect(c.image).toMatch(new RegExp(`:${PACKAGE.version.replace(/\./g, "\\.")}$`));

  // The Service selects the pods, on the container's port; the ServiceMonitor selects the Service.
  const service = one<IService>(docs, "Service");
  const podLabels = ds.spec!.template.metadata!.labels!;
  expect(service.spec!.clusterIP).toBe("None");
  for (const [key, value] of Object.entries(service.spec!.selector!)) expect(podLabels[key]).toBe(value);
  for (const [key, value] of Object.entries(ds.spec!.selector.matchLabels!))
    expect(podLabels[key]).toBe(value);
  const servicePort = service.spec!.ports!.find((p) => p.name === "metrics")!;
  expect(servicePort.port).toBe(port!.containerPort);
  expect(probePort(servicePort.targetPort)).toBe(port!.containerPort);
  const monitor = one<IServiceMonitor>(docs, "ServiceMonitor");
  for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels ?? {})) {
    expect(service.metadata!.labels![key], `Service label ${key}`).toBe(value);
  }
  expect(monitor.spec.namespaceSelector?.matchNames).toContain(service.metadata!.namespace);
  expect(monitor.spec.endpoints).toHaveLength(1);
  expect(monitor.spec.endpoints![0]!.port).toBe(servicePort.name);
  expect(monitor.spec.endpoints![0]!.path).toBe("/metrics");

  // Everything namespaced lives in the Namespace, which admits privileged pods.
  const namespace = one<INamespace>(docs, "Namespace");
  expect(namespace.metadata!.labels!["pod-security.kubernetes.io/enforce"]).toBe("privileged");
  for (const doc of docs) {
    if (
      ["Namespace", "SecurityContextConstraints", "ClusterRole", "ClusterRoleBinding"].includes(
        String(doc.object.kind),
      )
    )
      continue;
    expect((doc.object.metadata as Obj).namespace, `${doc.file} ${kindOf(doc.object)}`).toBe(
      namespace.metadata!.name,
    );
  }
  // Dashboards are ConfigMaps labelled for Grafana's sidecar; rules are a PrometheusRule.
  for (const configMap of find<{ metadata: { labels: Record<string, string> } }>(docs, "ConfigMap")) {
    expect(configMap.metadata.labels.grafana_dashboard).toBe("1");
  }
}

// ---------------------------------------------------------------------------------------------

describe("deploy manifests", () => {
  it("validates every YAML document in deploy/ by its apiVersion and kind", async () => {
    const files = (await listFiles(DEPLOY)).filter((f) => /\.ya?ml$/.test(f));
    expect(files.length).toBeGreaterThan(10);
    const patchFiles = new Set<string>();
    for (const dir of ["kubernetes", "openshift"]) {
      const k = await loadKustomization(path.join(DEPLOY, dir));
      for (const p of k.patches) patchFiles.add(path.join(DEPLOY, dir, p.path));
    }
    const kinds = new Set<string>();
    for (const file of files) {
      for (const doc of await loadDocs(file)) {
        kinds.add(kindOf(doc.object));
        // A patch is a part of an object: it is validated whole, applied (next test).
        if (patchFiles.has(file)) {
          expect(VALIDATORS[kindOf(doc.object)], `${doc.file}: unknown kind`).toBeDefined();
          continue;
        }
        validate(doc);
      }
    }
    for (const kind of ["apps/v1/DaemonSet", "monitoring.coreos.com/v1/ServiceMonitor", KUSTOMIZATION]) {
      expect(kinds).toContain(kind);
    }
    expect(kinds).toContain("security.openshift.io/v1/SecurityContextConstraints");
  });

  it("fails on an unknown kind and on a schema violation", () => {
    expect(() =>
      validate({ file: "x.yaml", object: { apiVersion: "example.com/v1", kind: "Thing" } }),
    ).toThrow(/unknown kind example.com\/v1\/Thing/);
    const bad = {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: { name: "x" },
      spec: {
        template: {
          spec: {
            containers: [
              { name: "c", volumeMounts: [{ name: "h", mountPath: "/h", mountPropagation: "Sideways" }] },
            ],
          },
        },
      },
    };
    expect(() => validate({ file: "x.yaml", object: bad })).toThrow(/selector|mountPropagation/);
    expect(() =>
      validateSecurityContextConstraints({
        apiVersion: "security.openshift.io/v1",
        kind: "SecurityContextConstraints",
        metadata: { name: "x" },
        allowHostPID: true,
        allowHostPid: true,
      }),
    ).toThrow(/additional properties|required/);
  });

  it("holds the DaemonSet's invariants in deploy/kubernetes", async () => {
    checkKubernetesInvariants(await build(path.join(DEPLOY, "kubernetes")));
  });

  it("lists every file in the kustomizations, and every file listed exists inside them", async () => {
    for (const dir of ["kubernetes", "openshift"].map((d) => path.join(DEPLOY, d))) {
      const k = await loadKustomization(dir);
      const listed = new Set<string>();
      for (const entry of [...k.resources, ...k.patches.map((p) => p.path)]) {
        const full = path.resolve(dir, entry);
        const info = await stat(full).catch(() => undefined);
        expect(info, `${path.relative(REPO, dir)}: ${entry} exists`).toBeDefined();
        if (info!.isDirectory()) {
          expect((await stat(path.join(full, "kustomization.yaml"))).isFile()).toBe(true);
          // kustomize refuses a directory that contains this one (a cycle).
          expect(dir.startsWith(`${full}${path.sep}`), `${entry} contains ${dir}`).toBe(false);
        } else {
          // kustomize loads files only from within the kustomization's directory.
          expect(path.dirname(full), `${entry} lies outside ${dir}`).toBe(dir);
          listed.add(full);
        }
      }
      const files = (await readdir(dir))
        .filter((f) => f !== "kustomization.yaml")
        .map((f) => path.join(dir, f));
      expect([...listed].sort()).toEqual(files.sort());
    }
  });

  it("builds the OpenShift overlay, and its patches validate applied", async () => {
    const docs = await build(path.join(DEPLOY, "openshift"));
    for (const doc of docs) validate(doc);
    checkKubernetesInvariants(docs);
    const namespace = one<INamespace>(docs, "Namespace");
    expect(namespace.metadata!.labels!["openshift.io/cluster-monitoring"]).toBe("true");
    expect(namespace.metadata!.annotations!["openshift.io/node-selector"]).toBe("");
    const ds = one<IDaemonSet>(docs, "DaemonSet");
    const scc = one<Obj>(docs, "SecurityContextConstraints");
    expect(ds.spec!.template.metadata!.annotations!["openshift.io/required-scc"]).toBe(
      (scc.metadata as Obj).name,
    );
  });

  it("has an SCC that admits exactly what the DaemonSet's pod asks for", async () => {
    const docs = await build(path.join(DEPLOY, "openshift"));
    const ds = one<IDaemonSet>(docs, "DaemonSet");
    const pod = ds.spec!.template.spec!;
    const c = container(ds);
    const sc = c.securityContext!;
    const scc = one<Obj>(docs, "SecurityContextConstraints");
    const sccName = (scc.metadata as Obj).name as string;

    expect(scc.allowHostPID).toBe(pod.hostPID === true);
    expect(scc.allowHostNetwork).toBe(pod.hostNetwork === true);
    expect(scc.allowHostIPC).toBe(pod.hostIPC === true);
    expect(scc.allowHostPorts).toBe((c.ports ?? []).some((p) => p.hostPort !== undefined));
    const volumeTypes = new Set((pod.volumes ?? []).map((v) => Object.keys(v).find((k) => k !== "name")!));
    expect(scc.allowHostDirVolumePlugin).toBe(volumeTypes.has("hostPath"));
    expect([...(scc.volumes as string[])].sort()).toEqual([...volumeTypes].sort());
    expect(scc.allowPrivilegedContainer).toBe(false);
    expect(sc.privileged ?? false).toBe(false);
    expect(scc.allowPrivilegeEscalation).toBe(sc.allowPrivilegeEscalation);
    expect(scc.requiredDropCapabilities).toEqual(["ALL"]);
    expect(sc.capabilities?.drop).toEqual(["ALL"]);
    expect([...(scc.allowedCapabilities as string[])].sort()).toEqual(
      [...(sc.capabilities?.add ?? [])].sort(),
    );
    expect(scc.defaultAddCapabilities ?? []).toEqual([]);
    expect(scc.readOnlyRootFilesystem).toBe(true);
    expect(sc.readOnlyRootFilesystem).toBe(true);
    const runAsUser = sc.runAsUser ?? pod.securityContext?.runAsUser;
    expect(scc.runAsUser).toEqual({ type: "MustRunAs", uid: runAsUser });
    const seLinux = sc.seLinuxOptions ?? pod.securityContext?.seLinuxOptions;
    expect(scc.seLinuxContext).toEqual({ type: "MustRunAs", seLinuxOptions: seLinux });
    // The level is set, so admission does not substitute the namespace's MCS level.
    expect(seLinux?.level).toBeTruthy();
    for (const groups of ["fsGroup", "supplementalGroups"]) {
      expect(scc[groups]).toEqual({ type: "MustRunAs", ranges: [{ min: 0, max: 0 }] });
    }
    expect((sc.seccompProfile ?? pod.securityContext?.seccompProfile)?.type).toBe("RuntimeDefault");
    expect(scc.seccompProfiles).toEqual(["runtime/default"]);
    expect(scc.forbiddenSysctls).toEqual(["*"]);
    expect(scc.users).toEqual([]);
    expect(scc.groups).toEqual([]);

    // `use` on exactly this SCC, bound to the DaemonSet's service account only.
    const roles = find<IRole>(docs, "Role").filter((r) =>
      r.rules?.some((rule) => rule.resources?.includes("securitycontextconstraints")),
    );
    expect(roles).toHaveLength(1);
    expect(roles[0]!.rules).toEqual([
      {
        apiGroups: ["security.openshift.io"],
        resources: ["securitycontextconstraints"],
        resourceNames: [sccName],
        verbs: ["use"],
      },
    ]);
    const bindings = find<IRoleBinding>(docs, "RoleBinding").filter(
      (b) => b.roleRef.name === roles[0]!.metadata!.name,
    );
    expect(bindings).toHaveLength(1);
    expect(bindings[0]!.subjects).toEqual([
      { kind: "ServiceAccount", name: pod.serviceAccountName, namespace: ds.metadata!.namespace },
    ]);
    // Nothing in the base asks for API access.
    expect(find(docs, "ClusterRole")).toEqual([]);
    expect(find(docs, "ClusterRoleBinding")).toEqual([]);
  });

  it("builds both kustomizations with kubectl kustomize, to valid objects", async () => {
    const kustomize = await kubectlKustomize();
    if (!kustomize) return;
    for (const dir of ["kubernetes", "openshift"]) {
      const built = await kustomize(path.join(DEPLOY, dir));
      for (const doc of built) validate(doc);
      checkKubernetesInvariants(built);
      // The same objects as the small build above, so the checks on it hold for kustomize's.
      const mine = await build(path.join(DEPLOY, dir));
      const key = (d: Doc) => `${kindOf(d.object)}/${(d.object.metadata as Obj).name}`;
      expect(built.map(key).sort()).toEqual(mine.map(key).sort());
      for (const doc of built) {
        const twin = mine.find((m) => key(m) === key(doc))!;
        expect(doc.object, key(doc)).toEqual(twin.object);
      }
    }
  });

  it("keeps the image tag of the kustomization at the package's version", async () => {
    const k = await loadKustomization(path.join(DEPLOY, "kubernetes"));
    expect(k.images).toEqual([{ name: "quay.io/imagefs-doctor/imagefs-doctor", newTag: PACKAGE.version }]);
  });

  it("deploys the PrometheusRule and the dashboards that exist", async () => {
    const docs = await build(path.join(DEPLOY, "kubernetes"));
    const dashboards = (await readdir(path.join(REPO, "dashboards"))).filter((f) => f.endsWith(".json"));
    expect(find(docs, "ConfigMap")).toHaveLength(dashboards.length);
    const rules = await readFile(path.join(DEPLOY, "prometheusrule.yaml"), "utf8").catch(() => undefined);
    const deployed = find<IPrometheusRule>(docs, "PrometheusRule");
    expect(deployed).toHaveLength(rules === undefined ? 0 : 1);
  });
});

describe("deploy/generate.ts", () => {
  it("has written the generated files from the current sources (npm run deploy-manifests)", async () => {
    for (const output of await renderOutputs()) {
      expect(await readFile(path.join(REPO, output.file), "utf8"), output.file).toBe(output.text);
    }
  });

  it("writes one labelled ConfigMap per dashboard, in file order, with the JSON intact", () => {
    const panel = { title: "Disk", panels: [{ type: "stat", targets: [{ expr: 'up{job="x"}' }] }] };
    const output = renderDashboards([
      { file: "node-storage.json", text: JSON.stringify(panel) },
      { file: "A b_c.json", text: '{"title":"A"}' },
    ]);
    const docs = parseDocs(output.text, output.file);
    expect(docs.map((d) => (d.object.metadata as Obj).name)).toEqual([
      "imagefs-doctor-dashboard-a-b-c",
      "imagefs-doctor-dashboard-node-storage",
    ]);
    for (const doc of docs) validate(doc);
    const data = docs[1]!.object.data as Record<string, string>;
    expect(JSON.parse(data["node-storage.json"]!)).toEqual(panel);
    expect(Object.keys(docs[0]!.object.data as Obj)).toEqual(["A-b_c.json"]);
  });

  it("handles no dashboards and no rules with files that hold no object", () => {
    for (const output of [renderDashboards([]), renderPrometheusRule(undefined)]) {
      expect(parseDocs(output.text, output.file)).toEqual([]);
      expect(output.notes).toHaveLength(1);
    }
  });

  it("refuses a dashboard that is not JSON, clashing names and a dashboard too large for a ConfigMap", () => {
    expect(() => renderDashboards([{ file: "bad.json", text: "{" }])).toThrow(/bad.json: not JSON/);
    expect(() =>
      renderDashboards([
        { file: "a-b.json", text: "{}" },
        { file: "a_b.json", text: "{}" },
      ]),
    ).toThrow(/both make imagefs-doctor-dashboard-a-b/);
    const huge = JSON.stringify({
      panels: Array.from({ length: 40_000 }, (_, i) => ({ id: i, title: "x".repeat(20) })),
    });
    expect(() => renderDashboards([{ file: "huge.json", text: huge }])).toThrow(
      /more than a ConfigMap may hold/,
    );
  });

  it("compacts a dashboard that would not fit client-side apply's annotation", () => {
    const big = {
      panels: Array.from({ length: 3000 }, (_, i) => ({ id: i, title: `panel ${i}`, gridPos: { x: 0 } })),
    };
    const output = renderDashboards([{ file: "big.json", text: JSON.stringify(big) }]);
    const [doc] = parseDocs(output.text, output.file);
    const json = (doc!.object.data as Record<string, string>)["big.json"]!;
    expect(json).not.toContain("\n");
    expect(JSON.parse(json)).toEqual(big);
  });
});

// ---------------------------------------------------------------------------------------------
// The Containerfile

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  name?: string;
  from: string;
  instructions: Instruction[];
}

/** Instructions with continuation lines joined and comments dropped, as BuildKit reads them. */
function parseContainerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const instructions: Instruction[] = [];
  let pending = "";
  let start = 0;
  text.split("\n").forEach((raw, index) => {
    const line = raw.trimEnd();
    if (pending === "" && (line.trim() === "" || line.trimStart().startsWith("#"))) return;
    if (pending !== "" && line.trimStart().startsWith("#")) return;
    if (pending === "") start = index + 1;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = "";
    const match = /^(\w+)\s+(.*)$/s.exec(full);
    if (!match) throw new Error(`Containerfile:${start}: cannot read "${full}"`);
    instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start });
  });
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!match) throw new Error(`Containerfile:${instruction.line}: FROM ${instruction.args}`);
      const from = match[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args[a ?? b] ?? "");
      stages.push({ name: match[2], from, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword !== "ARG") throw new Error(`Containerfile:${instruction.line}: before FROM`);
      const [name, value] = instruction.args.split("=");
      args[name!] = value ?? "";
    } else stages.at(-1)!.instructions.push(instruction);
  }
  return { args, stages };
}

function jsonForm(instruction: Instruction | undefined): string[] {
  if (!instruction) throw new Error("missing instruction");
  const value = JSON.parse(instruction.args) as unknown;
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new Error(`${instruction.keyword} must be in exec (JSON) form`);
  }
  return value;
}

function copies(stage: Stage) {
  return stage.instructions
    .filter((i) => i.keyword === "COPY")
    .map((i) => {
      const words = i.args.split(/\s+/);
      const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
      const paths = words.filter((w) => !w.startsWith("--"));
      return { from, sources: paths.slice(0, -1), destination: paths.at(-1)! };
    });
}

function lastWorkdir(stage: Stage): string {
  return stage.instructions.filter((i) => i.keyword === "WORKDIR").at(-1)?.args ?? "/";
}

describe("deploy/Containerfile", async () => {
  const text = await readFile(path.join(DEPLOY, "Containerfile"), "utf8");
  const { stages } = parseContainerfile(text);
  const stage = (name: string) => stages.find((s) => s.name === name)!;
  const runtime = stages.at(-1)!;

  it("builds in a Node 20 stage, installs production dependencies apart, runs on a slim Node 20", () => {
    expect(stages.map((s) => s.name)).toEqual(["build", "deps", undefined]);
    for (const s of stages) expect(s.from).toMatch(/^docker\.io\/library\/node:20(-|$)/);
    expect(runtime.from).toMatch(/slim/);
    const runs = (s: Stage) => s.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
    expect(runs(stage("build"))).toEqual(["npm ci --no-audit --no-fund", "npm run build"]);
    expect(runs(stage("deps")).join(" ")).toMatch(/^npm ci --omit=dev /);
    // Nothing is built or installed from npm in the runtime stage.
    expect(runs(runtime).join(" ")).not.toMatch(/\bnpm\b/);
    expect(runtime.instructions.find((i) => i.keyword === "USER")?.args).toBe("0");
    // The memory settings the serve-scrape benchmark measures with are the image's defaults.
    const env = Object.fromEntries(
      runtime.instructions
        .filter((i) => i.keyword === "ENV")
        .flatMap((i) => [...i.args.matchAll(/(\w+)=(?:"([^"]*)"|(\S+))/g)].map((m) => [m[1], m[2] ?? m[3]])),
    );
    expect(env).toMatchObject(SERVE_ENV);
  });

  it("copies only files that exist, and from stages that exist", async () => {
    const names = new Set(stages.map((s) => s.name));
    for (const s of stages) {
      for (const copy of copies(s)) {
        if (copy.from) {
          expect(names, `COPY --from=${copy.from}`).toContain(copy.from);
          continue;
        }
        for (const source of copy.sources) {
          expect(await stat(path.join(REPO, source)).catch(() => undefined), `COPY ${source}`).toBeDefined();
        }
      }
    }
    // The runtime gets dist/ from the build, node_modules from deps, and package.json ("type": "module").
    const runtimeCopies = copies(runtime);
    expect(runtimeCopies).toContainEqual({ from: "build", sources: ["/src/dist"], destination: "./dist" });
    expect(runtimeCopies).toContainEqual({
      from: "deps",
      sources: ["/app/node_modules"],
      destination: "./node_modules",
    });
    expect(runtimeCopies).toContainEqual({ from: undefined, sources: ["package.json"], destination: "./" });
    expect(lastWorkdir(stage("build"))).toBe("/src");
    expect(lastWorkdir(stage("deps"))).toBe("/app");
    expect(lastWorkdir(runtime)).toBe("/app");
  });

  it("installs real Debian packages for what the collector runs, and runs the DaemonSet's command", async () => {
    const install = runtime.instructions.find(
      (i) => i.keyword === "RUN" && i.args.includes("apt-get install"),
    )!;
    const packages = install.args
      .split("apt-get install")[1]!
      .split("&&")[0]!
      .split(/\s+/)
      .filter((w) => w && !w.startsWith("-"));
    expect(packages.sort()).toEqual(["libsystemd0", "mount"]);
    const show = await execa("apt-cache", ["show", ...packages], { reject: false });
    if (show.exitCode === 0 || process.env.CI === "true") expect(show.exitCode).toBe(0);

    expect(jsonForm(runtime.instructions.find((i) => i.keyword === "ENTRYPOINT"))).toEqual([
      "node",
      "/app/dist/collector/cli.js",
    ]);
    const ds = one<IDaemonSet>(await build(path.join(DEPLOY, "kubernetes")), "DaemonSet");
    expect(jsonForm(runtime.instructions.find((i) => i.keyword === "CMD"))).toEqual(container(ds).args);
  });

  it("uses only flags that `serve` has, in the image's CMD and the DaemonSet", async () => {
    const help = await execa(process.execPath, [CLI, "serve", "--help"]);
    const ds = one<IDaemonSet>(await build(path.join(DEPLOY, "kubernetes")), "DaemonSet");
    const cmd = jsonForm(runtime.instructions.find((i) => i.keyword === "CMD"));
    for (const args of [cmd, container(ds).args ?? []]) {
      for (const word of args.filter((a) => a.startsWith("--"))) {
        expect(help.stdout, word).toContain(`${word.split("=")[0]} `);
      }
    }
  });

  it("replays the build and deps stages on exactly the files they copy, and the ENTRYPOINT runs", {
    timeout: 600_000,
  }, async () => {
    const scratch = await mkdtemp(path.join(os.tmpdir(), "imagefs-containerfile-"));
    try {
      const roots: Record<string, string> = {};
      for (const name of ["build", "deps"]) {
        const s = stage(name);
        const root = path.join(scratch, name);
        const workdir = path.join(root, lastWorkdir(s));
        await mkdir(workdir, { recursive: true });
        roots[name] = root;
        // In order: COPY what the stage copies (from the repository), RUN what it runs.
        for (const instruction of s.instructions) {
          if (instruction.keyword === "COPY") {
            const [copy] = copies({ ...s, instructions: [instruction] });
            for (const source of copy!.sources) {
              // A directory's contents go to the destination; a file goes into it when it ends in /.
              const isDir = (await stat(path.join(REPO, source))).isDirectory();
              const target =
                copy!.destination.endsWith("/") && !isDir
                  ? path.join(workdir, copy!.destination, path.basename(source))
                  : path.join(workdir, copy!.destination);
              await cp(path.join(REPO, source), target, { recursive: true });
            }
          } else if (instruction.keyword === "RUN") {
            await execa("sh", ["-c", instruction.args], {
              cwd: workdir,
              env: { npm_config_prefer_offline: "true", CI: "true" },
              stdio: ["ignore", "pipe", "pipe"],
            }).catch((error: Error & { stdout?: string; stderr?: string }) => {
              const output = [error.stdout, error.stderr].filter(Boolean).join("\n");
              throw new Error(`${name}: RUN ${instruction.args}: ${output || error.message}`);
            });
          }
        }
      }
      // The runtime stage's /app: package.json, deps' node_modules, build's dist.
      const app = path.join(scratch, "runtime/app");
      await mkdir(app, { recursive: true });
      await cp(path.join(REPO, "package.json"), path.join(app, "package.json"));
      await cp(path.join(roots.deps!, "app/node_modules"), path.join(app, "node_modules"), {
        recursive: true,
      });
      await cp(path.join(roots.build!, "src/dist"), path.join(app, "dist"), { recursive: true });
      const entrypoint = path.join(app, "dist/collector/cli.js");
      expect((await stat(entrypoint)).isFile()).toBe(true);
      // Production dependencies only.
      const installed = await readdir(path.join(app, "node_modules"));
      for (const dev of ["typescript", "vitest", "tsx", "kubernetes-models"])
        expect(installed).not.toContain(dev);
      const version = await execa(process.execPath, [entrypoint, "--version"], { cwd: app });
      expect(version.stdout.trim()).toBe(PACKAGE.version);
      const help = await execa(process.execPath, [entrypoint, "serve", "--help"], { cwd: app });
      expect(help.stdout).toContain("--state-dir");
      // The collector's runtime files came along with the build.
      expect((await stat(path.join(app, "dist/collector/sources/cri-api.proto"))).isFile()).toBe(true);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
