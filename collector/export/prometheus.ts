import { Counter, Gauge, Histogram, Registry, type RegistryContentType } from "prom-client";
import type { Finding } from "../checks/finding.js";
import type { Snapshot } from "../snapshot.js";
import { METRICS, type MetricName } from "./catalog.js";
import { counterIncrements, gaugeSamples, probeObservations } from "./samples.js";

type Metric = Gauge<string> | Counter<string> | Histogram<string>;

export type ExpositionFormat = "prometheus" | "openmetrics";
export interface Exposition {
  body: string;
  contentType: string;
}

/**
 * The Prometheus side of the catalog: one prom-client metric per definition, all with the `node`
 * label. Gauges are replaced whole each cycle (a series that disappears from the snapshot
 * disappears from /metrics); counters only grow; probe timings go into the histogram.
 */
export class PrometheusExporter {
  readonly registry = new Registry<RegistryContentType>();
  readonly #metrics = new Map<MetricName, Metric>();
  /**
   * The exposition of the last cycle, per format. Values change only in update(), so scrapes
   * between two cycles share one rendering: a scrape costs a write, and allocates next to nothing.
   */
  #rendered = new Map<ExpositionFormat, Promise<Exposition>>();
  /** Renderings are serialised: the registry's content type is set for the time of one. */
  #rendering: Promise<unknown> = Promise.resolve();

  constructor(node: string) {
    this.registry.setDefaultLabels({ node });
    for (const def of METRICS) {
      const config = {
        name: def.name,
        help: def.help,
        labelNames: [...def.labels],
        registers: [this.registry],
      };
      const metric =
        def.type === "gauge"
          ? new Gauge(config)
          : def.type === "counter"
            ? new Counter(config)
            : new Histogram({ ...config, buckets: [...(def as { buckets: readonly number[] }).buckets] });
      this.#metrics.set(def.name, metric);
    }
  }

  /** Publishes one cycle: its snapshot, findings, and how long it took. */
  update(snapshot: Snapshot, findings: Finding[], cycleSeconds: number, now = Date.now()): void {
    for (const [name, metric] of this.#metrics) {
      if (metric instanceof Gauge && name !== "imagefs_collection_timestamp_seconds") metric.reset();
    }
    for (const sample of gaugeSamples(snapshot, findings)) {
      (this.#metrics.get(sample.name) as Gauge<string>).set(sample.labels, sample.value);
    }
    for (const sample of counterIncrements(snapshot)) {
      if (sample.value > 0)
        (this.#metrics.get(sample.name) as Counter<string>).inc(sample.labels, sample.value);
    }
    const probes = probeObservations(snapshot);
    const histogram = this.#metrics.get("imagefs_layer_store_probe_duration_seconds") as Histogram<string>;
    for (const observation of probes.observations) histogram.observe(observation.labels, observation.seconds);
    for (const failure of probes.failures)
      (this.#metrics.get(failure.name) as Counter<string>).inc(failure.labels, failure.value);
    (this.#metrics.get("imagefs_collections_total") as Counter<string>).inc();
    (this.#metrics.get("imagefs_collection_duration_seconds") as Gauge<string>).set(cycleSeconds);
    (this.#metrics.get("imagefs_collection_timestamp_seconds") as Gauge<string>).set(now / 1000);
    this.#rendered.clear();
  }

  /** The metrics in Prometheus text or OpenMetrics, as of the last update(). */
  render(format: ExpositionFormat): Promise<Exposition> {
    let rendered = this.#rendered.get(format);
    if (!rendered) {
      rendered = this.#rendering.then(async () => {
        this.registry.setContentType(
          format === "openmetrics" ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE,
        );
        return { body: await this.registry.metrics(), contentType: this.registry.contentType };
      });
      this.#rendering = rendered.catch(() => undefined);
      this.#rendered.set(format, rendered);
      // A failed rendering is not kept: the next scrape tries again.
      rendered.catch(() => this.#rendered.delete(format));
    }
    return rendered;
  }
}
