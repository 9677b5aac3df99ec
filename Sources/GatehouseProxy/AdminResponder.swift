public import GatehouseAuth

/// The admin listener, on its own port so its paths never collide with FastAPI's routes.
///
/// - `GET /healthz`: 200 whenever the process can answer at all (liveness). It never depends
///   on the upstream: restarting gatehouse because FastAPI is slow would only make things worse.
/// - `GET /readyz`: 200 when traffic should be sent here, else 503 with the reasons (readiness).
/// - `GET /metrics`: Prometheus metrics (`ProxyMetrics`).
public struct AdminResponder: Sendable {
    let readiness: Readiness
    let metrics: ProxyMetrics
    let jwks: JWKSCache?

    public init(readiness: Readiness, metrics: ProxyMetrics, jwks: JWKSCache?) {
        self.readiness = readiness
        self.metrics = metrics
        self.jwks = jwks
    }

    /// The answer for a method and a path (query removed), served by `LocalAnswerServer`.
    func answer(method: String, path: String) -> LocalAnswer {
        switch (method, path) {
        case ("GET", "/metrics"):
            // Prometheus text exposition format 0.0.4.
            return LocalAnswer(
                status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.render(jwks: jwks),
                extraFields: [("Cache-Control", "no-store")])
        case ("GET", "/healthz"), ("HEAD", "/healthz"):
            return LocalAnswer(status: 200, body: Array(#"{"status":"ok"}"#.utf8), extraFields: [("Cache-Control", "no-store")])
        case ("GET", "/readyz"), ("HEAD", "/readyz"):
            return LocalAnswer(
                status: readiness.reasons.isEmpty ? 200 : 503, body: Array(readiness.json.utf8),
                extraFields: [("Cache-Control", "no-store")])
        default:
            var notFound = LocalAnswer.notFound
            notFound.extraFields = [("Cache-Control", "no-store")]
            return notFound
        }
    }
}
