import HTTPTypes
public import GatehouseAuth
public import HummingbirdCore
public import NIOCore

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

    public func respond(to request: Request, writer: consuming ResponseWriter, channel: any Channel) async throws {
        let path = request.head.path.map { $0.split(separator: "?", maxSplits: 1).first.map(String.init) ?? $0 } ?? ""
        let answer = answer(method: request.method.rawValue, path: path)
        var fields = HTTPFields()
        fields[.contentType] = answer.contentType
        fields[.cacheControl] = "no-store"
        fields[.contentLength] = String(answer.body.count)
        var bodyWriter = try await writer.writeHead(HTTPResponse(status: .init(code: answer.status), headerFields: fields))
        if request.method != .head { try await bodyWriter.write(ByteBuffer(bytes: answer.body)) }
        try await bodyWriter.finish(nil)
    }

    /// The answer for a method and a path (query removed); both cores serve it.
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
