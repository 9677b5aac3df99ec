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
        let status: HTTPResponse.Status
        let body: String
        var contentType = "application/json"
        switch (request.method, path) {
        case (.get, "/metrics"):
            // Prometheus text exposition format 0.0.4.
            status = .ok
            body = String(decoding: metrics.render(jwks: jwks), as: UTF8.self)
            contentType = "text/plain; version=0.0.4; charset=utf-8"
        case (.get, "/healthz"), (.head, "/healthz"):
            status = .ok
            body = #"{"status":"ok"}"#
        case (.get, "/readyz"), (.head, "/readyz"):
            status = readiness.reasons.isEmpty ? .ok : .serviceUnavailable
            body = readiness.json
        default:
            status = .notFound
            body = #"{"detail":"Not Found"}"#
        }
        var fields = HTTPFields()
        fields[.contentType] = contentType
        fields[.cacheControl] = "no-store"
        fields[.contentLength] = String(body.utf8.count)
        var bodyWriter = try await writer.writeHead(HTTPResponse(status: status, headerFields: fields))
        if request.method != .head { try await bodyWriter.write(ByteBuffer(string: body)) }
        try await bodyWriter.finish(nil)
    }
}
