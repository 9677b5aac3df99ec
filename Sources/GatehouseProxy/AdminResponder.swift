import HTTPTypes
public import HummingbirdCore
public import NIOCore

/// The admin listener, on its own port so its paths never collide with FastAPI's routes.
///
/// - `GET /healthz`: 200 whenever the process can answer at all (liveness). It never depends
///   on the upstream: restarting gatehouse because FastAPI is slow would only make things worse.
/// - `GET /readyz`: 200 when traffic should be sent here, else 503 with the reasons (readiness).
public struct AdminResponder: Sendable {
    let readiness: Readiness

    public init(readiness: Readiness) {
        self.readiness = readiness
    }

    public func respond(to request: Request, writer: consuming ResponseWriter, channel: any Channel) async throws {
        let path = request.head.path.map { $0.split(separator: "?", maxSplits: 1).first.map(String.init) ?? $0 } ?? ""
        let status: HTTPResponse.Status
        let body: String
        switch (request.method, path) {
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
        fields[.contentType] = "application/json"
        fields[.cacheControl] = "no-store"
        fields[.contentLength] = String(body.utf8.count)
        var bodyWriter = try await writer.writeHead(HTTPResponse(status: status, headerFields: fields))
        if request.method != .head { try await bodyWriter.write(ByteBuffer(string: body)) }
        try await bodyWriter.finish(nil)
    }
}
