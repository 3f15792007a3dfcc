import { readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import protobuf from "protobufjs";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import type { Cycle, CycleSink } from "../collector/commands/serve.js";
import { PROBE_BUCKETS } from "../collector/export/catalog.js";
import { createOtlpSink, otlpSignalUrl } from "../collector/export/otlp.js";
import type { ProbeOpResult } from "../collector/host/fuse-probe-types.js";
import type { Snapshot } from "../collector/snapshot.js";
import { parseSnapshot } from "../collector/snapshot-file.js";
import type { LayerStoreFacts } from "../collector/sources/layer-stores.js";
import { VERSION } from "../collector/version.js";

/**
 * The parts of the OTLP protobuf definitions (opentelemetry-proto: common/v1, resource/v1,
 * metrics/v1, trace/v1 and the collector services' requests) that these tests read, with the
 * official field numbers and types; one package so that it parses as one file. Fields left out
 * (exemplars, exponential histograms, summaries, links, events...) are skipped when decoding.
 */
const OTLP_PROTO = `
syntax = "proto3";
package otlp;

message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }

message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; string schema_url = 3; }
message ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2; string schema_url = 3; }
message Metric {
  string name = 1;
  string description = 2;
  string unit = 3;
  oneof data {
    Gauge gauge = 5;
    Sum sum = 7;
    Histogram histogram = 9;
  }
}
enum AggregationTemporality {
  AGGREGATION_TEMPORALITY_UNSPECIFIED = 0;
  AGGREGATION_TEMPORALITY_DELTA = 1;
  AGGREGATION_TEMPORALITY_CUMULATIVE = 2;
}
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum {
  repeated NumberDataPoint data_points = 1;
  AggregationTemporality aggregation_temporality = 2;
  bool is_monotonic = 3;
}
message Histogram { repeated HistogramDataPoint data_points = 1; AggregationTemporality aggregation_temporality = 2; }
message NumberDataPoint {
  repeated KeyValue attributes = 7;
  fixed64 start_time_unix_nano = 2;
  fixed64 time_unix_nano = 3;
  oneof value {
    double as_double = 4;
    sfixed64 as_int = 6;
  }
  uint32 flags = 8;
}
message HistogramDataPoint {
  repeated KeyValue attributes = 9;
  fixed64 start_time_unix_nano = 2;
  fixed64 time_unix_nano = 3;
  fixed64 count = 4;
  optional double sum = 5;
  repeated fixed64 bucket_counts = 6;
  repeated double explicit_bounds = 7;
  uint32 flags = 10;
  optional double min = 11;
  optional double max = 12;
}

message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  fixed32 flags = 16;
  string name = 5;
  enum SpanKind {
    SPAN_KIND_UNSPECIFIED = 0;
    SPAN_KIND_INTERNAL = 1;
    SPAN_KIND_SERVER = 2;
    SPAN_KIND_CLIENT = 3;
    SPAN_KIND_PRODUCER = 4;
    SPAN_KIND_CONSUMER = 5;
  }
  SpanKind kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  Status status = 15;
}
message Status {
  string message = 2;
  enum StatusCode {
    STATUS_CODE_UNSET = 0;
    STATUS_CODE_OK = 1;
    STATUS_CODE_ERROR = 2;
  }
  StatusCode code = 3;
}
`;

const root = protobuf.parse(OTLP_PROTO, { keepCase: false }).root;
const MetricsRequest = root.lookupType("otlp.ExportMetricsServiceRequest");
const TraceRequest = root.lookupType("otlp.ExportTraceServiceRequest");

// Decoded shapes (protobufjs toObject with longs as strings, enums as numbers, bytes as hex).
type AnyValue = { stringValue?: string; boolValue?: boolean; intValue?: string; doubleValue?: number };
type KeyValue = { key: string; value?: AnyValue };
interface NumberPoint {
  attributes: KeyValue[];
  startTimeUnixNano: string;
  timeUnixNano: string;
  asDouble?: number;
  asInt?: string;
}
interface HistogramPoint {
  attributes: KeyValue[];
  count: string;
  sum?: number;
  bucketCounts: string[];
  explicitBounds: number[];
  min?: number;
  max?: number;
}
interface Metric {
  name: string;
  description: string;
  unit: string;
  gauge?: { dataPoints: NumberPoint[] };
  sum?: { dataPoints: NumberPoint[]; aggregationTemporality: number; isMonotonic: boolean };
  histogram?: { dataPoints: HistogramPoint[]; aggregationTemporality: number };
}
interface MetricsBody {
  resourceMetrics: {
    resource?: { attributes: KeyValue[] };
    scopeMetrics: { scope?: { name: string; version: string }; metrics: Metric[] }[];
  }[];
}
interface Span {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: KeyValue[];
  status?: { code: number; message: string };
}
interface TracesBody {
  resourceSpans: { resource?: { attributes: KeyValue[] }; scopeSpans: { spans: Span[] }[] }[];
}

const CONVERSION = { longs: String, enums: Number, bytes: String, defaults: true, arrays: true };
const hex = (base64: string) => Buffer.from(base64, "base64").toString("hex");

function attrs(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    if (value?.stringValue !== undefined) out[key] = value.stringValue;
    else if (value?.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value?.doubleValue !== undefined) out[key] = value.doubleValue;
    else if (value?.boolValue !== undefined) out[key] = value.boolValue;
  }
  return out;
}

const pointValue = (p: NumberPoint) => p.asDouble ?? Number(p.asInt);
const ms = (nanos: string) => Number(BigInt(nanos) / 1_000_000n);

interface Received {
  path: string;
  contentType: string;
  body: Buffer;
}

/** An OTLP/HTTP receiver on 127.0.0.1: records each request; answers with `status` (0: never). */
class Receiver {
  readonly requests: Received[] = [];
  status = 200;
  readonly #server: http.Server;

  private constructor(server: http.Server) {
    this.#server = server;
  }

  static async start(): Promise<Receiver> {
    const server = http.createServer();
    const receiver = new Receiver(server);
    server.on("request", (request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        let body = Buffer.concat(chunks);
        if (request.headers["content-encoding"] === "gzip") body = gunzipSync(body);
        receiver.requests.push({
          path: request.url ?? "",
          contentType: request.headers["content-type"] ?? "",
          body,
        });
        if (receiver.status === 0) return; // a hung collector: reads the request, never answers
        const known = request.method === "POST" && ["/v1/metrics", "/v1/traces"].includes(request.url ?? "");
        const status = known ? receiver.status : 404;
        response.writeHead(status, { "content-type": "application/x-protobuf" }).end(); // an empty Export*ServiceResponse: no partial success to report
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    return receiver;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  metrics(): MetricsBody[] {
    return this.requests
      .filter((r) => r.path === "/v1/metrics")
      .map((r) => {
        expect(r.contentType).toBe("application/x-protobuf");
        return MetricsRequest.toObject(MetricsRequest.decode(r.body), CONVERSION) as MetricsBody;
      });
  }

  traces(): TracesBody[] {
    return this.requests
      .filter((r) => r.path === "/v1/traces")
      .map((r) => {
        expect(r.contentType).toBe("application/x-protobuf");
        return TraceRequest.toObject(TraceRequest.decode(r.body), CONVERSION) as TracesBody;
      });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }
}

/** Every metric of one export request, by name. */
function metricsByName(body: MetricsBody): Map<string, Metric> {
  const out = new Map<string, Metric>();
  for (const rm of body.resourceMetrics)
    for (const sm of rm.scopeMetrics) for (const m of sm.metrics) out.set(m.name, m);
  return out;
}

/** Every outgoing connection this process starts (TCP or IPC), as host:port or a socket path. */
function watchConnections(): { targets: string[]; stop(): void } {
  const targets: string[] = [];
  const original = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    // net.connect() and http's agents pass their arguments normalized: [[options, callback]].
    const [first, second] = (Array.isArray(args[0]) ? args[0] : args) as [unknown, unknown];
    if (typeof first === "object" && first !== null) {
      const options = first as { host?: string; port?: number; path?: string };
      targets.push(options.path ?? `${options.host ?? "localhost"}:${options.port}`);
    } else if (typeof first === "number")
      targets.push(`${typeof second === "string" ? second : "localhost"}:${first}`);
    else targets.push(String(first));
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof original;
  return {
    targets,
    stop() {
      net.Socket.prototype.connect = original;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The cycle: a snapshot `collect` wrote on a test node, with a layer store that was probed, an
// AVC denial counted, and two sources that failed.

const EXAMPLE = path.join(import.meta.dirname, "..", "examples", "split-image-misconfigured.json");

const probe = (op: ProbeOpResult["op"], msTaken: number): ProbeOpResult => ({
  op,
  path: "/var/lib/stargz-store/store",
  ok: true,
  ms: msTaken,
  value: { kind: "statfs", type: 0x65735546 },
});

function layerStore(): LayerStoreFacts {
  return {
    entry: "/var/lib/stargz-store/store:ref",
    path: "/var/lib/stargz-store/store",
    ref: true,
    mount: {
      mountPoint: "/var/lib/stargz-store/store",
      fstype: "fuse.rawBridge",
      source: "stargz-store",
      readOnly: false,
      options: ["rw", "nosuid", "nodev"],
      superOptions: ["user_id=0", "group_id=0"],
      device: "0:77",
    },
    process: null,
    versionHints: [],
    config: null,
    fusectl: { waiting: 3, maxBackground: 12, congestionThreshold: 9, source: "/sys/fs/fuse/connections/77" },
    probe: {
      results: [
        probe("statfs", 0.3),
        probe("stat", 3),
        probe("stat", 120),
        probe("stat", 700),
        {
          op: "stat",
          path: "/var/lib/stargz-store/store/x",
          ok: false,
          ms: 1,
          code: "EIO",
          message: "i/o error",
        },
      ],
      hungAt: { op: "read", path: "/var/lib/stargz-store/store/y/info" },
      timedOut: true,
      elapsedMs: 2000,
    },
    responsive: false,
    unresponsiveSince: null,
    sampleInfo: null,
    sampleProgress: null,
    brokenLayers: [],
    checkedLayers: 0,
    uncheckedLayers: 0,
  };
}

async function exampleCycle(): Promise<Cycle> {
  const snapshot: Snapshot = parseSnapshot(await readFile(EXAMPLE, "utf8"), EXAMPLE);
  snapshot.sources["layer-stores"] = {
    status: "ok",
    durationMs: 2050,
    facts: { stores: [layerStore()], authHelper: null },
  };
  snapshot.sources.journal = {
    status: "timeout",
    durationMs: 2500,
    error: "no answer within 2500 ms",
    facts: null,
  };
  snapshot.sources["root-model"] = {
    status: "error",
    durationMs: 4,
    error: "EACCES: /run/ostree-booted",
    facts: null,
  };
  const avc = snapshot.sources.avc;
  if (avc.status !== "ok") throw new Error("the example's avc source is not ok");
  avc.facts.storageDenials = [
    {
      sourceType: "container_t",
      targetType: "default_t",
      tclass: "file",
      permissions: ["read", "execute"],
      count: 7,
      permissive: false,
      firstSeen: null,
      lastSeen: null,
      samples: [],
    },
  ];
  const findings = runChecks(snapshot);
  return { snapshot, findings, startedAt: Date.now() - 3000, durationMs: 2600 };
}

// ---------------------------------------------------------------------------------------------

describe("otlpSignalUrl", () => {
  it("appends the signal's path to the base URL, as OTEL_EXPORTER_OTLP_ENDPOINT does", () => {
    expect(otlpSignalUrl("http://collector:4318", "metrics")).toBe("http://collector:4318/v1/metrics");
    expect(otlpSignalUrl("https://c.example/otlp/", "traces")).toBe("https://c.example/otlp/v1/traces");
    expect(otlpSignalUrl("http://collector:4318/v1/metrics", "traces")).toBe(
      "http://collector:4318/v1/traces",
    );
    expect(() => otlpSignalUrl("collector:4318", "metrics")).toThrow(/http\(s\) URL/);
    expect(() => otlpSignalUrl("grpc://collector:4317", "metrics")).toThrow(/http\(s\) URL/);
  });
});

describe("the OTLP exporter", () => {
  let receiver: Receiver | undefined;
  let sink: CycleSink | undefined;
  let cycle: Cycle;
  beforeAll(async () => {
    cycle = await exampleCycle();
  });
  afterEach(async () => {
    await sink?.close?.();
    sink = undefined;
    await receiver?.close();
    receiver = undefined;
  });

  it("exports the cycle's gauges, counters and probe histogram over OTLP/HTTP protobuf", async () => {
    receiver = await Receiver.start();
    const { snapshot, findings } = cycle;
    sink = await createOtlpSink({ endpoint: receiver.endpoint, node: snapshot.node, timeoutMs: 3000 });
    await sink.publish(cycle);

    const [body, ...more] = receiver.metrics();
    expect(more).toEqual([]);
    if (!body) throw new Error("no metrics received");
    expect(body.resourceMetrics).toHaveLength(1);
    expect(attrs(body.resourceMetrics[0]?.resource?.attributes)).toMatchObject({
      "service.name": "imagefs-doctor",
      "service.version": VERSION,
      "host.name": "worker-0",
      "k8s.node.name": "worker-0",
    });
    expect(body.resourceMetrics[0]?.scopeMetrics[0]?.scope).toMatchObject({
      name: "imagefs-doctor",
      version: VERSION,
    });
    const metrics = metricsByName(body);

    // Filesystem sizes, per role, equal to the snapshot's.
    const fs = snapshot.sources.filesystems;
    if (fs.status !== "ok") throw new Error("the example has no filesystems");
    const size = metrics.get("imagefs_filesystem_size_bytes");
    expect(size?.unit).toBe("By");
    expect(size?.description).toMatch(/Size of the filesystem/);
    const sizes = (size?.gauge?.dataPoints ?? []).map(
      (p): Record<string, string | number | boolean> => ({ ...attrs(p.attributes), value: pointValue(p) }),
    );
    expect(sizes).toHaveLength(fs.facts.roles.filter((r) => r.usage).length);
    expect(sizes.length).toBeGreaterThanOrEqual(4);
    for (const role of fs.facts.roles) {
      if (!role.usage) continue;
      expect(sizes).toContainEqual({
        role: role.role,
        store: expect.any(String),
        node: "worker-0",
        value: role.usage.totalBytes,
      });
    }
    const imagefs = fs.facts.roles.find((r) => r.role === "imagefs");
    expect(sizes.find((s) => s.role === "imagefs")?.value).toBe(imagefs?.usage?.totalBytes);

    // One imagefs_finding point per (id, severity), counting the findings.
    const expected = new Map<string, number>();
    for (const f of findings)
      expected.set(`${f.id}/${f.severity}`, (expected.get(`${f.id}/${f.severity}`) ?? 0) + 1);
    const findingPoints = metrics.get("imagefs_finding")?.gauge?.dataPoints ?? [];
    expect(findingPoints.length).toBe(expected.size);
    expect(expected.size).toBeGreaterThan(1);
    for (const p of findingPoints) {
      const a = attrs(p.attributes);
      expect(pointValue(p)).toBe(expected.get(`${a.id}/${a.severity}`));
      expect(a.node).toBe("worker-0");
    }
    expect(findings.map((f) => f.id)).toContain("SOURCE_FAILED");

    // Sources: failed ones report 0, with their durations.
    const success = metrics.get("imagefs_source_success")?.gauge?.dataPoints ?? [];
    const bySource = Object.fromEntries(success.map((p) => [attrs(p.attributes).source, pointValue(p)]));
    expect(bySource).toMatchObject({ journal: 0, "root-model": 0, filesystems: 1, "pod-logs": 1 });
    const durations = metrics.get("imagefs_source_duration_seconds");
    expect(durations?.unit).toBe("s");
    const journalDuration = durations?.gauge?.dataPoints.find(
      (p) => attrs(p.attributes).source === "journal",
    );
    expect(journalDuration && pointValue(journalDuration)).toBe(2.5);
    const cycleDuration = metrics.get("imagefs_collection_duration_seconds")?.gauge?.dataPoints[0];
    expect(cycleDuration && pointValue(cycleDuration)).toBe(2.6);
    const build = metrics.get("imagefs_build_info")?.gauge?.dataPoints[0];
    expect(build && attrs(build.attributes)).toEqual({ version: VERSION, node: "worker-0" });
    const waiting = metrics.get("imagefs_layer_store_fuse_waiting_requests")?.gauge?.dataPoints[0];
    expect(waiting && pointValue(waiting)).toBe(3);

    // Counters: monotonic cumulative sums.
    const collections = metrics.get("imagefs_collections_total")?.sum;
    expect(collections).toMatchObject({ isMonotonic: true, aggregationTemporality: 2 });
    expect(collections?.dataPoints.map(pointValue)).toEqual([1]);
    const denials = metrics.get("imagefs_selinux_avc_denials_total")?.sum;
    expect(denials?.isMonotonic).toBe(true);
    expect(denials?.dataPoints.map((p) => ({ ...attrs(p.attributes), value: pointValue(p) }))).toEqual([
      { source_type: "container_t", target_type: "default_t", tclass: "file", node: "worker-0", value: 7 },
    ]);
    const failures = metrics.get("imagefs_layer_store_probe_failures_total")?.sum?.dataPoints ?? [];
    expect(failures.map((p) => ({ ...attrs(p.attributes), value: pointValue(p) }))).toEqual(
      expect.arrayContaining([
        { store: "0", op: "stat", outcome: "error", node: "worker-0", value: 1 },
        { store: "0", op: "read", outcome: "timeout", node: "worker-0", value: 1 },
      ]),
    );

    // The probe histogram: PROBE_BUCKETS as bounds, one point per (store, op).
    const histogram = metrics.get("imagefs_layer_store_probe_duration_seconds");
    expect(histogram?.unit).toBe("s");
    expect(histogram?.histogram?.aggregationTemporality).toBe(2);
    const points = histogram?.histogram?.dataPoints ?? [];
    expect(points).toHaveLength(2);
    for (const p of points) expect(p.explicitBounds).toEqual([...PROBE_BUCKETS]);
    const stat = points.find((p) => attrs(p.attributes).op === "stat");
    expect(stat && attrs(stat.attributes)).toEqual({ store: "0", op: "stat", node: "worker-0" });
    expect(stat?.count).toBe("3");
    expect(stat?.sum).toBeCloseTo(0.823, 9);
    // 3 ms in (0.001, 0.005], 120 ms in (0.1, 0.25], 700 ms in (0.5, 1].
    expect(stat?.bucketCounts.map(Number)).toEqual([0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
    expect(stat?.min).toBeCloseTo(0.003, 9);
    expect(stat?.max).toBeCloseTo(0.7, 9);
    const statfs = points.find((p) => attrs(p.attributes).op === "statfs");
    expect(statfs?.bucketCounts.map(Number)).toEqual([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

    // A second cycle: counters grow, and gauges are the new cycle's only (no stale series).
    await sink.publish({ ...cycle, findings: [], startedAt: cycle.startedAt + 1000 });
    const second = receiver.metrics()[1];
    if (!second) throw new Error("the second cycle was not exported");
    const again = metricsByName(second);
    expect(again.get("imagefs_collections_total")?.sum?.dataPoints.map(pointValue)).toEqual([2]);
    expect(again.get("imagefs_selinux_avc_denials_total")?.sum?.dataPoints.map(pointValue)).toEqual([14]);
    expect(
      again.get("imagefs_layer_store_probe_duration_seconds")?.histogram?.dataPoints.map((p) => p.count),
    ).toEqual(expect.arrayContaining(["6", "2"]));
    expect(again.has("imagefs_finding")).toBe(false);
    expect(again.get("imagefs_filesystem_size_bytes")?.gauge?.dataPoints).toHaveLength(sizes.length);
  });

  it("exports one trace per cycle: a root span and a span per source, failed sources in error", async () => {
    receiver = await Receiver.start();
    const { snapshot, startedAt, durationMs } = cycle;
    sink = await createOtlpSink({ endpoint: receiver.endpoint, node: snapshot.node, timeoutMs: 3000 });
    await sink.publish(cycle);

    const bodies = receiver.traces();
    expect(bodies).toHaveLength(1);
    const resourceSpans = bodies[0]?.resourceSpans ?? [];
    expect(resourceSpans).toHaveLength(1);
    expect(attrs(resourceSpans[0]?.resource?.attributes)).toMatchObject({
      "service.name": "imagefs-doctor",
      "host.name": "worker-0",
      "k8s.node.name": "worker-0",
    });
    const spans = resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
    const sourceNames = Object.keys(snapshot.sources);
    expect(spans).toHaveLength(1 + sourceNames.length);
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);

    const roots = spans.filter((s) => s.parentSpanId === "");
    expect(roots).toHaveLength(1);
    const top = roots[0]!;
    expect(top.name).toBe("collection");
    expect(ms(top.startTimeUnixNano)).toBe(startedAt);
    expect(ms(top.endTimeUnixNano)).toBe(startedAt + durationMs);
    expect(attrs(top.attributes)).toMatchObject({ "imagefs.sources.failed": 2 });

    const children = spans.filter((s) => s !== top);
    for (const child of children) expect(hex(child.parentSpanId)).toBe(hex(top.spanId));
    expect(children.map((s) => attrs(s.attributes)["source.name"]).sort()).toEqual([...sourceNames].sort());
    for (const child of children) {
      const name = attrs(child.attributes)["source.name"] as keyof Snapshot["sources"];
      const result = snapshot.sources[name];
      expect(child.name).toBe(`source ${name}`);
      expect(attrs(child.attributes)["source.status"]).toBe(result.status);
      expect(ms(child.startTimeUnixNano)).toBe(startedAt);
      expect(ms(child.endTimeUnixNano)).toBe(startedAt + result.durationMs);
      const failed = result.status === "error" || result.status === "timeout";
      expect(child.status?.code ?? 0).toBe(failed ? 2 : 0);
    }
    const journal = children.find((s) => s.name === "source journal");
    expect(journal?.status).toEqual({ code: 2, message: "no answer within 2500 ms" });
    expect(attrs(journal?.attributes)["source.status"]).toBe("timeout");
    expect(children.find((s) => s.name === "source root-model")?.status?.code).toBe(2);
  });

  describe("its network use", () => {
    const ENV = [
      "OTEL_EXPORTER_OTLP_ENDPOINT",
      "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
      "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    ];
    let watch: ReturnType<typeof watchConnections> | undefined;
    const saved = new Map<string, string | undefined>();
    afterEach(() => {
      watch?.stop();
      watch = undefined;
      for (const [key, value] of saved) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      saved.clear();
    });
    /** Endpoints in the environment that must lose to the given one (a loopback address nothing listens on). */
    const decoyEnvironment = () => {
      for (const key of ENV) {
        saved.set(key, process.env[key]);
        process.env[key] = "http://127.0.0.2:4318";
      }
    };

    it("connects to the given endpoint only, whatever OTEL_EXPORTER_OTLP_*_ENDPOINT say", async () => {
      receiver = await Receiver.start();
      decoyEnvironment();
      watch = watchConnections();
      sink = await createOtlpSink({ endpoint: receiver.endpoint, node: "worker-0", timeoutMs: 3000 });
      await sink.publish(cycle);
      await sink.close?.();
      sink = undefined;
      expect(watch.targets.length).toBeGreaterThan(0);
      expect(new Set(watch.targets)).toEqual(new Set([`127.0.0.1:${receiver.port}`]));
      expect(new Set(receiver.requests.map((r) => r.path))).toEqual(new Set(["/v1/metrics", "/v1/traces"]));
    });

    it("gives up within its deadline when the collector keeps answering 503, and says so", async () => {
      receiver = await Receiver.start();
      receiver.status = 503;
      watch = watchConnections();
      sink = await createOtlpSink({ endpoint: receiver.endpoint, node: "worker-0", timeoutMs: 1500 });
      const started = Date.now();
      await expect(sink.publish(cycle)).rejects.toThrow(/metrics export to .*\/v1\/metrics failed/);
      expect(Date.now() - started).toBeLessThan(4000);
      // Retries, but bounded: the first try and at most a few more per signal.
      const tries = receiver.requests.length;
      expect(tries).toBeGreaterThanOrEqual(2);
      expect(tries).toBeLessThanOrEqual(8);
      const closing = Date.now();
      await sink.close?.();
      sink = undefined;
      expect(Date.now() - closing).toBeLessThan(4000);
      expect(new Set(watch.targets)).toEqual(new Set([`127.0.0.1:${receiver.port}`]));
    });

    it("gives up within its deadline when the collector never answers", async () => {
      receiver = await Receiver.start();
      receiver.status = 0;
      sink = await createOtlpSink({ endpoint: receiver.endpoint, node: "worker-0", timeoutMs: 1000 });
      const started = Date.now();
      await expect(sink.publish(cycle)).rejects.toThrow(/OTLP export failed/);
      expect(Date.now() - started).toBeLessThan(4000);
      expect(receiver.requests.length).toBeGreaterThanOrEqual(2);
      const closing = Date.now();
      await sink.close?.();
      sink = undefined;
      expect(Date.now() - closing).toBeLessThan(4000);
    });

    it("gives up within its deadline when nothing listens at the endpoint", async () => {
      const probe = await Receiver.start();
      const port = probe.port;
      await probe.close();
      decoyEnvironment();
      watch = watchConnections();
      sink = await createOtlpSink({
        endpoint: `http://127.0.0.1:${port}`,
        node: "worker-0",
        timeoutMs: 1500,
      });
      const started = Date.now();
      await expect(sink.publish(cycle)).rejects.toThrow(/OTLP export failed/);
      expect(Date.now() - started).toBeLessThan(4000);
      const closing = Date.now();
      await sink.close?.();
      sink = undefined;
      expect(Date.now() - closing).toBeLessThan(4000);
      expect(watch.targets.length).toBeGreaterThan(0);
      expect(new Set(watch.targets)).toEqual(new Set([`127.0.0.1:${port}`]));
    });
  });
});
