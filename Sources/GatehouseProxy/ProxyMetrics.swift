import GatehouseAuth
import Metrics
import Prometheus
import Synchronization

/// Prometheus metrics served at the admin listener's `/metrics`.
///
/// Every label is bounded by construction: `route_class` and `result`/`reason` come from fixed
/// vocabularies and `status` is a three-digit code — never a raw path, user id or kid, so a
/// hostile client cannot blow up the series count. Handles are created once per label set and
/// cached, so the per-request cost is a dictionary lookup and atomic increments.
public final class ProxyMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let requestCounters = Mutex<[RequestKey: Prometheus.Counter]>([:])
    private let authCounters = Mutex<[String: Prometheus.Counter]>([:])
    private let fetchCounters: [JWKSCache.FetchResult: Prometheus.Counter]
    let requestDuration: DurationHistogram
    let upstreamDuration: DurationHistogram
    let inFlight: Prometheus.Gauge
    let tokenCacheHits: Prometheus.Counter
    let tokenCacheMisses: Prometheus.Counter
    let jwksFetchDuration: DurationHistogram
    private let jwksAge: Prometheus.Gauge
    private let sessionLookups: [String: Prometheus.Counter]
    let sessionLookupDuration: DurationHistogram
    let sessionCacheHits: Prometheus.Counter
    let sessionCacheMisses: Prometheus.Counter
    private let jwksKeys: Prometheus.Gauge

    private struct RequestKey: Hashable {
        var routeClass: String
        var status: Int
    }

    static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10), .seconds(30),
    ]

    public init(version: String) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        requestDuration = registry.makeDurationHistogram(
            descriptor: Self.describe("gatehouse_request_duration_seconds", "Time from request head to the end of the response (streams included)."), buckets: Self.latencyBuckets)
        upstreamDuration = registry.makeDurationHistogram(
            descriptor: Self.describe("gatehouse_upstream_duration_seconds", "Time from request head to the upstream's response head."), buckets: Self.latencyBuckets)
        inFlight = registry.makeGauge(
            descriptor: Self.describe("gatehouse_requests_in_flight", "Requests being served now."))
        tokenCacheHits = registry.makeCounter(
            descriptor: Self.describe("gatehouse_token_cache_hits_total", "Tokens accepted from the verified-token cache."))
        tokenCacheMisses = registry.makeCounter(
            descriptor: Self.describe("gatehouse_token_cache_misses_total", "Tokens that needed a signature check."))
        jwksFetchDuration = registry.makeDurationHistogram(
            descriptor: Self.describe("gatehouse_jwks_fetch_duration_seconds", "JWKS fetch time."), buckets: Self.latencyBuckets)
        var fetches: [JWKSCache.FetchResult: Prometheus.Counter] = [:]
        for result in [JWKSCache.FetchResult.success, .notModified, .error] {
            fetches[result] = registry.makeCounter(
            descriptor: Self.describe("gatehouse_jwks_fetches_total", "JWKS fetches by result."), labels: [("result", result.rawValue)])
        }
        fetchCounters = fetches
        var lookups: [String: Prometheus.Counter] = [:]
        for result in ["found", "not_found", "expired", "unavailable", "overloaded"] {
            lookups[result] = registry.makeCounter(
                descriptor: Self.describe("gatehouse_session_lookups_total", "Better Auth get-session lookups by result (overloaded: refused, not made)."),
                labels: [("result", result)])
        }
        sessionLookups = lookups
        sessionLookupDuration = registry.makeDurationHistogram(
            descriptor: Self.describe("gatehouse_session_lookup_duration_seconds", "Better Auth get-session lookup time."), buckets: Self.latencyBuckets)
        sessionCacheHits = registry.makeCounter(
            descriptor: Self.describe("gatehouse_session_cache_hits_total", "Session credentials decided from the session cache."))
        sessionCacheMisses = registry.makeCounter(
            descriptor: Self.describe("gatehouse_session_cache_misses_total", "Session credentials that needed a lookup (or joined one)."))
        jwksAge = registry.makeGauge(
            descriptor: Self.describe("gatehouse_jwks_age_seconds", "Seconds since the last successful JWKS fetch."))
        jwksKeys = registry.makeGauge(
            descriptor: Self.describe("gatehouse_jwks_keys", "Usable keys in the current JWKS."))
        registry.makeGauge(
            descriptor: Self.describe("gatehouse_build_info", "Build information."), labels: [("version", version)]
        ).set(to: 1)
    }

    func recordSessionLookup(_ verdict: SessionVerdict) {
        sessionLookups[verdict.label]?.increment()
    }

    static func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// Also routes swift-metrics users (libraries) into this registry.
    public func bootstrapMetricsSystem() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    func recordRequest(routeClass: String, status: Int, duration: Duration) {
        let key = RequestKey(routeClass: routeClass, status: status)
        let counter = requestCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = registry.makeCounter(
            descriptor: Self.describe("gatehouse_requests_total", "Requests by route class and response status."), labels: [("route_class", routeClass), ("status", String(status))])
            counters[key] = counter
            return counter
        }
        counter.increment()
        requestDuration.record(duration)
    }

    /// `reason` uses the 401 vocabulary (`expired`, `bad_signature`, …) plus `allowed`,
    /// `missing`, `invalid_request`, `keys_unavailable` and `forbidden` (a valid token whose
    /// claims fail a `GATEHOUSE_RULES` rule). Requests that need no token decision (public,
    /// anonymous optional, preflights) are not counted here.
    func recordAuth(reason: String) {
        let counter = authCounters.withLock { counters in
            if let counter = counters[reason] { return counter }
            let counter = registry.makeCounter(
                descriptor: Self.describe("gatehouse_auth_decisions_total", "Token decisions by result and reason."),
                labels: [("result", reason == "allowed" ? "allowed" : "rejected"), ("reason", reason)])
            counters[reason] = counter
            return counter
        }
        counter.increment()
    }

    func recordJWKSFetch(_ result: JWKSCache.FetchResult, duration: Duration) {
        fetchCounters[result]?.increment()
        jwksFetchDuration.record(duration)
    }

    /// The exposition text; JWKS gauges are read at scrape time.
    func render(jwks: JWKSCache?) -> [UInt8] {
        if let status = jwks?.status {
            jwksAge.set(to: status.ageSeconds ?? -1)
            jwksKeys.set(to: Double(status.usable ? status.keyCount : 0))
        }
        return registry.emitToBuffer()
    }
}
