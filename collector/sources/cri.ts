import { access, constants, stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type * as grpc from "@grpc/grpc-js";
import { runCommand } from "../host/exec.js";
import type { Host } from "../host/host.js";
import { describeError } from "../host/root.js";
import { httpGet, socketPathOf, socketPathProblem } from "../host/unix-http.js";
import { type CriFsUsage, type ImageFsInfo, parseCrictlImageFsInfo } from "./crictl-output.js";
import type { KubeletConfigFacts } from "./kubelet-config.js";
import { type CollectOptions, factsOf, type SourceDefinition } from "./source.js";
import type { StorageConfigFacts } from "./storage-config.js";

export interface EndpointAttempt {
  /** As configured, e.g. unix:///var/run/crio/crio.sock. */
  endpoint: string;
  /** Why we tried it: the --cri-endpoint flag, the kubelet's setting, or a runtime default. */
  reason: string;
  status: "ok" | "missing" | "error" | "timeout";
  error?: string;
  latencyMs?: number;
}

export interface CriFilesystem extends CriFsUsage {
  /** stat().dev of the mountpoint on the host, to compare with the configured stores. */
  device: string | null;
}

export interface CrioInfo {
  storageDriver: string | null;
  storageRoot: string | null;
  /** The image store CRI-O really uses (empty when it has none). */
  storageImage: string | null;
}

export interface CriFacts {
  attempts: EndpointAttempt[];
  /** The endpoint that answered, and how we asked it. */
  answeredBy: { endpoint: string; via: "grpc" | "crictl" } | null;
  runtime: { name: string; version: string; apiVersion: string } | null;
  imageFilesystems: CriFilesystem[];
  containerFilesystems: CriFilesystem[];
  crioInfo: CrioInfo | null;
  crioInfoError?: string;
}

type Inputs = { "storage-config": StorageConfigFacts; "kubelet-config": KubeletConfigFacts; cri: CriFacts };

const CRIO_SOCKETS = ["/var/run/crio/crio.sock", "/run/crio/crio.sock"];
const CONTAINERD_SOCKET = "/run/containerd/containerd.sock";

export const criSource: SourceDefinition<Inputs, "cri"> = {
  name: "cri",
  deadlineMs: 15_000,
  async collect({ host, options, result }) {
    const [storage, kubelet] = await Promise.all([result("storage-config"), result("kubelet-config")]);
    const candidates = endpointCandidates(options.criEndpoint, factsOf(kubelet), factsOf(storage));
    const facts: CriFacts = {
      attempts: [],
      answeredBy: null,
      runtime: null,
      imageFilesystems: [],
      containerFilesystems: [],
      crioInfo: null,
    };
    const tried = new Set<string>();
    for (const candidate of candidates) {
      const attempt = await askEndpoint(host, candidate, options.criTimeoutMs, tried);
      if (!attempt) continue;
      facts.attempts.push(attempt.summary);
      if (!attempt.answer) continue;
      facts.answeredBy = { endpoint: candidate.endpoint, via: "grpc" };
      facts.runtime = attempt.answer.runtime;
      await fillFilesystems(host, facts, attempt.answer.fsInfo);
      if (attempt.answer.runtime.name === "cri-o")
        await fillCrioInfo(facts, attempt.socket, options.criTimeoutMs);
      return facts;
    }
    await tryCrictl(host, facts, candidates, options);
    return facts;
  },
};

interface Candidate {
  endpoint: string;
  reason: string;
}

function endpointCandidates(
  override: string | undefined,
  kubelet: KubeletConfigFacts | undefined,
  storage: StorageConfigFacts | undefined,
): Candidate[] {
  if (override) return [{ endpoint: override, reason: "--cri-endpoint" }];
  const candidates: Candidate[] = [];
  const kubeletEndpoint = kubelet?.containerRuntimeEndpoint;
  if (kubeletEndpoint && kubeletEndpoint.from !== "default") {
    candidates.push({
      endpoint: kubeletEndpoint.value,
      reason: `kubelet containerRuntimeEndpoint (${kubeletEndpoint.from})`,
    });
  }
  for (const socket of CRIO_SOCKETS)
    candidates.push({ endpoint: `unix://${socket}`, reason: "CRI-O default socket" });
  const containerd = storage?.containerd?.address;
  candidates.push({
    endpoint: `unix://${containerd?.value ?? CONTAINERD_SOCKET}`,
    reason:
      containerd && containerd.from !== "default"
        ? `containerd grpc.address (${containerd.from})`
        : "containerd default socket",
  });
  const seen = new Set<string>();
  return candidates.filter((c) => !seen.has(c.endpoint) && seen.add(c.endpoint));
}

interface Answer {
  runtime: NonNullable<CriFacts["runtime"]>;
  fsInfo: ImageFsInfo;
}

/**
 * Asks one endpoint; undefined when its socket is one already asked under another name (/var/run
 * is usually a link to /run), so a socket that never answers costs one deadline, not two.
 */
async function askEndpoint(
  host: Host,
  candidate: Candidate,
  timeoutMs: number,
  tried: Set<string>,
): Promise<{ summary: EndpointAttempt; answer?: Answer; socket: string } | undefined> {
  const base = { endpoint: candidate.endpoint, reason: candidate.reason };
  const hostSocket = socketPathOf(candidate.endpoint);
  if (!hostSocket) {
    return {
      summary: { ...base, status: "error", error: "only unix:// endpoints are supported" },
      socket: "",
    };
  }
  let socket: string;
  let isSocket: boolean;
  try {
    socket = (await host.root.resolve(hostSocket)).local;
    isSocket = (await stat(socket)).isSocket();
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") {
      return { summary: { ...base, status: "missing", error: `no socket at ${hostSocket}` }, socket: "" };
    }
    return { summary: { ...base, status: "error", error: describeError(error) }, socket: "" };
  }
  if (tried.has(socket)) return undefined;
  tried.add(socket);
  if (!isSocket) return { summary: { ...base, status: "error", error: "not a socket" }, socket };
  const pathProblem = socketPathProblem(socket);
  if (pathProblem) return { summary: { ...base, status: "error", error: pathProblem }, socket };
  const started = performance.now();
  try {
    const answer = await callCri(socket, timeoutMs);
    return {
      summary: { ...base, status: "ok", latencyMs: Math.round(performance.now() - started) },
      answer,
      socket,
    };
  } catch (error) {
    const timedOut = (error as { code?: number }).code === GRPC_DEADLINE_EXCEEDED;
    const latencyMs = Math.round(performance.now() - started);
    return {
      summary: { ...base, status: timedOut ? "timeout" : "error", error: describeError(error), latencyMs },
      socket,
    };
  }
}

type Unary = (
  request: object,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => void;
type ServiceClient = grpc.Client & Record<string, Unary>;

/** grpc.status.DEADLINE_EXCEEDED, without loading grpc-js just to compare a code. */
const GRPC_DEADLINE_EXCEEDED = 4;

let loaded: Promise<{ grpc: typeof grpc; v1: grpc.GrpcObject }> | undefined;

/** grpc-js and the proto are loaded on first use: together they cost ~60 ms, wasted when no socket exists. */
function criPackage() {
  loaded ??= (async () => {
    const [grpcModule, protoLoader] = await Promise.all([
      import("@grpc/grpc-js"),
      import("@grpc/proto-loader"),
    ]);
    const protoPath = fileURLToPath(new URL("./cri-api.proto", import.meta.url));
    const definition = protoLoader.loadSync(protoPath, { longs: String, defaults: true, keepCase: false });
    const root = grpcModule.loadPackageDefinition(definition);
    return { grpc: grpcModule, v1: (root.runtime as grpc.GrpcObject).v1 as grpc.GrpcObject };
  })();
  return loaded;
}

async function callCri(socket: string, timeoutMs: number): Promise<Answer> {
  const { grpc, v1 } = await criPackage();
  const RuntimeService = v1.RuntimeService as unknown as new (
    address: string,
    credentials: grpc.ChannelCredentials,
  ) => ServiceClient;
  const ImageService = v1.ImageService as unknown as new (
    address: string,
    credentials: grpc.ChannelCredentials,
  ) => ServiceClient;
  const address = `unix:${socket}`;
  const credentials = grpc.credentials.createInsecure();
  const runtimeClient = new RuntimeService(address, credentials);
  const imageClient = new ImageService(address, credentials);
  const deadline = () => ({ deadline: new Date(Date.now() + timeoutMs) });
  const call = <T>(client: ServiceClient, method: string, request: object) =>
    new Promise<T>((resolve, reject) => {
      client[method]!(request, deadline(), (error, response) =>
        error ? reject(error) : resolve(response as T),
      );
    });
  try {
    const version = await call<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }>(
      runtimeClient,
      "Version",
      { version: "v1" },
    );
    const fsInfo = await call<{ imageFilesystems: GrpcUsage[]; containerFilesystems: GrpcUsage[] }>(
      imageClient,
      "ImageFsInfo",
      {},
    );
    return {
      runtime: {
        name: version.runtimeName,
        version: version.runtimeVersion,
        apiVersion: version.runtimeApiVersion,
      },
      fsInfo: {
        imageFilesystems: fsInfo.imageFilesystems.map(fromGrpc),
        containerFilesystems: fsInfo.containerFilesystems.map(fromGrpc),
      },
    };
  } finally {
    runtimeClient.close();
    imageClient.close();
  }
}

interface GrpcUsage {
  timestamp: string;
  fsId?: { mountpoint: string } | null;
  usedBytes?: { value: string } | null;
  inodesUsed?: { value: string } | null;
}

function fromGrpc(usage: GrpcUsage): CriFsUsage {
  return {
    mountpoint: usage.fsId?.mountpoint ?? "",
    usedBytes: usage.usedBytes ? Number(usage.usedBytes.value) : null,
    inodesUsed: usage.inodesUsed ? Number(usage.inodesUsed.value) : null,
    timestamp: usage.timestamp,
  };
}

async function fillFilesystems(host: Host, facts: CriFacts, info: ImageFsInfo): Promise<void> {
  const withDevice = async (usage: CriFsUsage): Promise<CriFilesystem> => {
    if (!usage.mountpoint) return { ...usage, device: null };
    const inspection = await host.inspectPath(usage.mountpoint);
    return { ...usage, device: inspection.status === "ok" ? inspection.device : null };
  };
  facts.imageFilesystems = await Promise.all(info.imageFilesystems.map(withDevice));
  facts.containerFilesystems = await Promise.all(info.containerFilesystems.map(withDevice));
}

/** CRI-O answers plain HTTP on its CRI socket: GET /info gives the storage it really uses (server/inspect.go). */
async function fillCrioInfo(facts: CriFacts, socket: string, timeoutMs: number): Promise<void> {
  try {
    const body = await httpGet(socket, "/info", timeoutMs, 1024 * 1024);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (error) {
      facts.crioInfoError = `GET /info answered no JSON: ${describeError(error)}`;
      return;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      facts.crioInfoError = `GET /info answered ${parsed === null ? "null" : Array.isArray(parsed) ? "an array" : `a ${typeof parsed}`}, not a JSON object`;
      return;
    }
    const info = parsed as Record<string, unknown>;
    const text = (key: string) => (typeof info[key] === "string" ? (info[key] as string) : null);
    facts.crioInfo = {
      storageDriver: text("storage_driver"),
      storageRoot: text("storage_root"),
      storageImage: text("storage_image"),
    };
  } catch (error) {
    facts.crioInfoError = describeError(error);
  }
}

const CRICTL_PATHS = ["/usr/bin/crictl", "/usr/local/bin/crictl"];

/**
 * When no socket answered over gRPC (an old runtime that only speaks v1alpha2, say), crictl may
 * still get through: it negotiates the API version itself.
 */
async function tryCrictl(
  host: Host,
  facts: CriFacts,
  candidates: Candidate[],
  options: CollectOptions,
): Promise<void> {
  const crictl = options.crictl ?? (await findExecutable(host));
  if (!crictl) return;
  const tried = new Set<string>();
  for (const candidate of candidates) {
    const socket = await socketWorthCrictl(host, facts, candidate);
    if (!socket || tried.has(socket)) continue;
    tried.add(socket);
    const summary = await askCrictl(host, facts, crictl, candidate, socket, options.criTimeoutMs);
    facts.attempts.push(summary);
    if (summary.status === "ok") {
      facts.answeredBy = { endpoint: candidate.endpoint, via: "crictl" };
      return;
    }
  }
}

/**
 * The local socket of a candidate crictl may reach, or undefined. Only sockets that answered over
 * gRPC, wrongly (an error, e.g. an API version the runtime does not speak): one that stayed silent
 * until the deadline would stay silent for crictl too, and cost the deadline a second time, so a
 * runtime that hangs would make the whole source wait twice as long for nothing.
 */
async function socketWorthCrictl(
  host: Host,
  facts: CriFacts,
  candidate: Candidate,
): Promise<string | undefined> {
  const attempt = facts.attempts.find((a) => a.endpoint === candidate.endpoint);
  const hostSocket = socketPathOf(candidate.endpoint);
  if (!hostSocket || attempt?.status !== "error") return undefined;
  return (await host.root.resolve(hostSocket)).local;
}

/** Runs `crictl imagefsinfo -o json` against one socket and fills the filesystems from its answer. */
async function askCrictl(
  host: Host,
  facts: CriFacts,
  crictl: string,
  candidate: Candidate,
  socket: string,
  timeoutMs: number,
): Promise<EndpointAttempt> {
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  const endpoint = `unix://${socket}`;
  const started = performance.now();
  const run = await runCommand(
    crictl,
    [
      "--runtime-endpoint",
      endpoint,
      "--image-endpoint",
      endpoint,
      "--timeout",
      `${seconds}s`,
      "imagefsinfo",
      "-o",
      "json",
    ],
    // crictl's own --timeout covers each call; the extra second lets it say so before it is killed.
    { timeoutMs: timeoutMs + 1000 },
  );
  const summary: EndpointAttempt = {
    endpoint: candidate.endpoint,
    reason: `crictl (${crictl})`,
    status: "error",
    latencyMs: Math.round(performance.now() - started),
  };
  if (run.outcome === "timeout") {
    return { ...summary, status: "timeout", error: `crictl gave no answer within ${run.afterMs} ms` };
  }
  if (run.outcome !== "ok") {
    const error = run.outcome === "missing" ? run.message : `${run.message}: ${run.stderr.trim()}`;
    return { ...summary, error };
  }
  try {
    await fillFilesystems(host, facts, parseCrictlImageFsInfo(run.stdout));
    return { ...summary, status: "ok" };
  } catch (error) {
    return { ...summary, error: `could not parse crictl output: ${describeError(error)}` };
  }
}

/**
 * crictl at its usual places, looked for only when we are on the host itself: under another host
 * root its binary is built for, and talks to, that host (--crictl names one that runs here).
 */
async function findExecutable(host: Host): Promise<string | undefined> {
  const paths = host.root.isSystemRoot ? CRICTL_PATHS : [];
  for (const candidate of paths) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  return undefined;
}
