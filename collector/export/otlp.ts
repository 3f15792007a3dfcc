import type { Attributes, Counter, Histogram, ObservableGauge } from "@opentelemetry/api";
import type { InstrumentType, PushMetricExporter } from "@opentelemetry/sdk-metrics";
import type { Cycle, CycleSink } from "../commands/serve.js";
import type { SourceName } from "../snapshot.js";
import { TOOL_NAME, VERSION } from "../version.js";
import { METRICS, type MetricName, PROBE_BUCKETS } from "./catalog.js";
import { counterIncrements, gaugeSamples, probeObservations, type Sample } from "./samples.js";

export interface OtlpOptions {
  /**
   * The collector's OTLP/HTTP base URL, e.g. http://otel-collector:4318: metrics go to
   * <endpoint>/v1/metrics and traces to <endpoint>/v1/traces (a trailing /v1/metrics or
   * /v1/traces on the URL is accepted too).
   */
  endpoint: string;
  /** The node's name: resource attributes host.name and k8s.node.name, and `node` on every point. */
  node: string;
  /** Metrics are also exported on this interval between cycles (default 60 s). */
  intervalMs?: number;
  /** Deadline of one export, retries included (default 10 s). */
  timeoutMs?: number;
  /** Where failures of exports that no publish() waits for (periodic ones, at close) are told. */
  log?: (line: string) => void;
}

const DEFAULT_INTERVAL_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 10_000;

/** The collector's URL for one signal, from the base URL the user gave. */
export function otlpSignalUrl(endpoint: string, signal: "metrics" | "traces"): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`--otlp-endpoint expects an http(s) URL, got "${endpoint}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new Error(`--otlp-endpoint expects an http(s) URL, got "${endpoint}"`);
  // A password in the URL would show in `ps`, in our log lines and in error messages.
  if (url.username || url.password)
    throw new Error(
      "--otlp-endpoint must not carry credentials; set them in OTEL_EXPORTER_OTLP_HEADERS instead",
    );
  const base = url.pathname.replace(/\/+$/, "").replace(/\/v1\/(metrics|traces)$/, "");
  url.pathname = `${base}/v1/${signal}`;
  return url.toString();
}

/** OTel units for the catalog's base-unit suffixes (Prometheus-side translation keeps the names). */
function unitOf(name: string): string | undefined {
  if (name.endsWith("_seconds")) return "s";
  if (name.endsWith("_bytes")) return "By";
  return undefined;
}

/**
 * The OpenTelemetry side of the catalog: after each cycle, the same samples the Prometheus
 * exporter publishes go to an OTLP/HTTP (protobuf) collector, with one trace per cycle.
 *
 * - Gauges are observable gauges reporting the last cycle's samples, so a series that disappears
 *   from the snapshot disappears from the export too (gauges are collected with delta
 *   temporality, which OTLP gauges do not carry but which keeps the SDK from re-sending series
 *   no longer observed).
 * - Counters are monotonic sums fed by counterIncrements and the probe failures; the probe
 *   latencies go into an explicit-bucket histogram with PROBE_BUCKETS as its boundaries.
 * - The trace has a root span for the cycle and a child span per source, all starting at the
 *   cycle's start (sources run concurrently), ending after the source's duration, with status
 *   ERROR for sources that failed or ran past their deadline.
 *
 * Nothing is registered globally (no global meter or tracer provider, context manager or
 * propagator), so several sinks can live in one process. The OpenTelemetry packages are loaded
 * here, not when this module is imported, to keep the CLI's start-up fast.
 */
export async function createOtlpSink(options: OtlpOptions): Promise<CycleSink> {
  const metricsUrl = otlpSignalUrl(options.endpoint, "metrics");
  const tracesUrl = otlpSignalUrl(options.endpoint, "traces");
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // The reader's and span processor's own deadlines leave the exporter time to report its failure.
  const flushTimeoutMs = timeoutMs + 1000;
  const intervalMs = Math.max(options.intervalMs ?? DEFAULT_INTERVAL_MS, flushTimeoutMs);
  const log = options.log ?? (() => {});

  const [api, resources, sdkMetrics, sdkTrace, { OTLPMetricExporter }, { OTLPTraceExporter }] =
    await Promise.all([
      import("@opentelemetry/api"),
      import("@opentelemetry/resources"),
      import("@opentelemetry/sdk-metrics"),
      import("@opentelemetry/sdk-trace"),
      import("@opentelemetry/exporter-metrics-otlp-proto"),
      import("@opentelemetry/exporter-trace-otlp-proto"),
    ]);
  const { AggregationTemporality, AggregationType } = sdkMetrics;

  // OTEL_RESOURCE_ATTRIBUTES may add attributes (k8s.cluster.name, say); ours always win.
  const resource = resources
    .defaultResource()
    .merge(resources.detectResources({ detectors: [resources.envDetector] }))
    .merge(
      resources.resourceFromAttributes({
        "service.name": TOOL_NAME,
        "service.version": VERSION,
        "host.name": options.node,
        "k8s.node.name": options.node,
      }),
    );

  // Metrics. The exporter is wrapped to learn how each export went: the periodic reader only
  // hands failures to the SDK's global error handler, and publish() should report them.
  const otlpMetrics = new OTLPMetricExporter({ url: metricsUrl, timeoutMillis: timeoutMs });
  type Outcome = { done: false } | { done: true; error?: Error };
  let metricsOutcome: Outcome = { done: false };
  // While publish() waits for an export it reports the failure itself; other failures are logged.
  let publishing = false;
  const isGauge = (type: InstrumentType) =>
    type === sdkMetrics.InstrumentType.GAUGE || type === sdkMetrics.InstrumentType.OBSERVABLE_GAUGE;
  const metricExporter: PushMetricExporter = {
    export(metrics, done) {
      otlpMetrics.export(metrics, (result) => {
        // ExportResultCode.SUCCESS is 0.
        const error =
          result.code === 0 ? undefined : (result.error ?? new Error("the collector refused the metrics"));
        metricsOutcome = { done: true, error };
        if (error && !publishing) log(`otlp: metrics export to ${metricsUrl} failed: ${error.message}`);
        done(result);
      });
    },
    forceFlush: () => otlpMetrics.forceFlush(),
    shutdown: () => otlpMetrics.shutdown(),
    selectAggregation: (type) => otlpMetrics.selectAggregation(type),
    selectAggregationTemporality: (type) =>
      isGauge(type) ? AggregationTemporality.DELTA : otlpMetrics.selectAggregationTemporality(type),
  };
  const reader = new sdkMetrics.PeriodicExportingMetricReader({
    exporter: metricExporter,
    exportIntervalMillis: intervalMs,
    exportTimeoutMillis: flushTimeoutMs,
  });
  const probeHistogram = "imagefs_layer_store_probe_duration_seconds" satisfies MetricName;
  const meterProvider = new sdkMetrics.MeterProvider({
    resource,
    readers: [reader],
    views: [
      {
        instrumentName: probeHistogram,
        aggregation: {
          type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM,
          options: { boundaries: [...PROBE_BUCKETS], recordMinMax: true },
        },
      },
    ],
  });
  const meter = meterProvider.getMeter(TOOL_NAME, VERSION);
  const gauges = new Map<MetricName, ObservableGauge>();
  const counters = new Map<MetricName, Counter>();
  let histogram: Histogram | undefined;
  for (const def of METRICS) {
    const unit = unitOf(def.name);
    const config = { description: def.help, ...(unit ? { unit } : {}) };
    if (def.type === "gauge") gauges.set(def.name, meter.createObservableGauge(def.name, config));
    else if (def.type === "counter") counters.set(def.name, meter.createCounter(def.name, config));
    else
      histogram = meter.createHistogram(def.name, {
        ...config,
        advice: { explicitBucketBoundaries: [...PROBE_BUCKETS] },
      });
  }
  let latest: Sample[] = [];
  const attributes = (labels: Record<string, string>): Attributes => ({ ...labels, node: options.node });
  meter.addBatchObservableCallback(
    (result) => {
      for (const sample of latest) {
        const gauge = gauges.get(sample.name);
        if (gauge) result.observe(gauge, sample.value, attributes(sample.labels));
      }
    },
    [...gauges.values()],
  );
  const add = (sample: Sample) => {
    if (sample.value > 0) counters.get(sample.name)?.add(sample.value, attributes(sample.labels));
  };

  // Traces.
  const spanProcessor = new sdkTrace.BatchSpanProcessor({
    exporter: new OTLPTraceExporter({ url: tracesUrl, timeoutMillis: timeoutMs }),
    exportTimeoutMillis: flushTimeoutMs,
  });
  const tracerProvider = new sdkTrace.TracerProvider({
    resource,
    sampler: new sdkTrace.AlwaysOnSampler(),
    spanProcessors: [spanProcessor],
  });
  const tracer = tracerProvider.getTracer(TOOL_NAME, VERSION);

  const trace = (cycle: Cycle) => {
    const { snapshot } = cycle;
    const names = Object.keys(snapshot.sources) as SourceName[];
    const failed = names.filter((name) => {
      const status = snapshot.sources[name].status;
      return status === "error" || status === "timeout";
    });
    const root = tracer.startSpan(
      "collection",
      {
        kind: api.SpanKind.INTERNAL,
        startTime: new Date(cycle.startedAt),
        attributes: {
          "imagefs.findings": cycle.findings.length,
          "imagefs.sources.failed": failed.length,
        },
      },
      api.ROOT_CONTEXT,
    );
    const parent = api.trace.setSpan(api.ROOT_CONTEXT, root);
    for (const name of names) {
      const result = snapshot.sources[name];
      const span = tracer.startSpan(
        `source ${name}`,
        {
          kind: api.SpanKind.INTERNAL,
          startTime: new Date(cycle.startedAt),
          attributes: { "source.name": name, "source.status": result.status },
        },
        parent,
      );
      if (result.status === "error" || result.status === "timeout")
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: result.error });
      else if (result.status === "absent") span.setAttribute("source.reason", result.reason);
      span.end(new Date(cycle.startedAt + result.durationMs));
    }
    root.end(new Date(cycle.startedAt + cycle.durationMs));
  };

  const flushMetrics = async () => {
    metricsOutcome = { done: false };
    await reader.forceFlush();
    // Set by the export's callback, during the flush.
    const outcome = metricsOutcome as Outcome;
    if (!outcome.done) throw new Error(`no answer from ${metricsUrl} within ${flushTimeoutMs} ms`);
    if (outcome.error) throw new Error(`metrics export to ${metricsUrl} failed: ${outcome.error.message}`);
  };
  const flushTraces = async () => {
    try {
      await spanProcessor.forceFlush();
    } catch (error) {
      throw new Error(`trace export to ${tracesUrl} failed: ${(error as Error).message}`);
    }
  };

  let closed: Promise<void> | undefined;
  return {
    async publish(cycle: Cycle) {
      if (closed) throw new Error("the OTLP exporter is closed");
      const end = cycle.startedAt + cycle.durationMs;
      latest = [
        ...gaugeSamples(cycle.snapshot, cycle.findings),
        { name: "imagefs_collection_duration_seconds", labels: {}, value: cycle.durationMs / 1000 },
        { name: "imagefs_collection_timestamp_seconds", labels: {}, value: end / 1000 },
      ];
      for (const sample of counterIncrements(cycle.snapshot)) add(sample);
      const probes = probeObservations(cycle.snapshot);
      for (const observation of probes.observations)
        histogram?.record(observation.seconds, attributes(observation.labels));
      for (const failure of probes.failures) add(failure);
      add({ name: "imagefs_collections_total", labels: {}, value: 1 });
      trace(cycle);

      publishing = true;
      const results = await Promise.allSettled([flushMetrics(), flushTraces()]).finally(() => {
        publishing = false;
      });
      const errors = results.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
      if (errors.length > 0) throw new Error(`OTLP export failed: ${errors.join("; ")}`);
    },
    close() {
      closed ??= (async () => {
        // Shutting down exports what is pending once more, within the same deadlines.
        const results = await Promise.allSettled([meterProvider.shutdown(), tracerProvider.shutdown()]);
        for (const result of results)
          if (result.status === "rejected") log(`otlp: shutdown: ${(result.reason as Error).message}`);
      })();
      return closed;
    },
  };
}
