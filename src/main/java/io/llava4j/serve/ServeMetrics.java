package io.llava4j.serve;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Timer;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;

import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The server's metrics in Prometheus' text format ({@code GET /metrics}), through Micrometer's Prometheus registry
 * (one per server): chat requests by HTTP status, prompt and generated tokens, queue depth, running requests and the
 * decode batch's rows now, and histograms of the time waited for generation to start, the time to the first token,
 * the time per later token and the rows of each decoding step.
 */
final class ServeMetrics {
    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final Counter promptTokens, generatedTokens;
    private final Timer queueWait, firstToken, perToken;
    private final DistributionSummary stepRows;

    ServeMetrics(Supplier<Number> queued, Supplier<Number> running, Supplier<Number> batchSize) {
        promptTokens = Counter.builder("llava4j.prompt.tokens").description("prompt positions of finished requests, image rows included")
                .register(registry);
        generatedTokens = Counter.builder("llava4j.generated.tokens").description("tokens generated").register(registry);
        Gauge.builder("llava4j.queue.depth", queued).description("admitted requests not yet generating").register(registry);
        Gauge.builder("llava4j.running", running).description("requests generating").register(registry);
        Gauge.builder("llava4j.batch.size", batchSize).description("rows of the decode batch now").register(registry);
        stepRows = DistributionSummary.builder("llava4j.batch.rows").description("rows of each decoding step (requests sharing its GEMMs)")
                .serviceLevelObjectives(1, 2, 4, 8, 16, 32, 64).register(registry);
        queueWait = Timer.builder("llava4j.queue.wait").description("from arrival to the start of generation")
                .serviceLevelObjectives(ms(10), ms(100), ms(500), ms(1000), ms(5000), ms(30000)).register(registry);
        firstToken = Timer.builder("llava4j.time.to.first.token").description("from arrival to the first generated token")
                .serviceLevelObjectives(ms(50), ms(100), ms(250), ms(500), ms(1000), ms(2500), ms(5000), ms(10000), ms(30000))
                .register(registry);
        perToken = Timer.builder("llava4j.time.per.output.token").description("between consecutive generated tokens")
                .serviceLevelObjectives(ms(5), ms(10), ms(25), ms(50), ms(100), ms(250), ms(500), ms(1000)).register(registry);
    }

    private static Duration ms(long ms) {
        return Duration.ofMillis(ms);
    }

    /** One answered chat request. */
    void request(int status) {
        registry.counter("llava4j.requests", "status", Integer.toString(status)).increment();
    }

    void tokens(long prompt, long generated) {
        promptTokens.increment(prompt);
        generatedTokens.increment(generated);
    }

    void queueWait(long nanos) {
        queueWait.record(nanos, TimeUnit.NANOSECONDS);
    }

    void firstToken(long nanos) {
        firstToken.record(nanos, TimeUnit.NANOSECONDS);
    }

    void nextToken(long nanos) {
        perToken.record(nanos, TimeUnit.NANOSECONDS);
    }

    /** One decoding step of {@code rows} requests. */
    void decodeStep(int rows) {
        stepRows.record(rows);
    }

    String scrape() {
        return registry.scrape();
    }
}
