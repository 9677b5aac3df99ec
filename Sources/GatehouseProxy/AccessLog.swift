import Logging

/// One access-log line per request. What it holds is chosen so it can never carry a secret:
/// no header values, and the path with query values removed (`LoggedPath`).
struct AccessLogEntry {
    var method: String
    var path: String
    var requestID: String
    var status = 0
    var bytes = 0
    var duration = Duration.zero
    var upstreamDuration: Duration?
    /// Why the exchange ended abnormally, from a fixed vocabulary; nil when it completed.
    var outcome: String?
    var routeClass: String?
    /// Token decision (`allowed`, `missing`, `invalid_token`, …) when verification is on.
    var auth: String?
    /// Why a token was refused (`expired`, `bad_signature`, …), the metrics' vocabulary.
    var authReason: String?
    /// The verified subject (`sub`), never anything of the token itself.
    var user: String?

    func log(to logger: Logger) {
        guard logger.logLevel <= .info else { return }
        // gatehouse's own JSON backend: write the line directly, without building (and then
        // sorting and merging) a metadata dictionary per request. Same bytes as the general path.
        if let handler = logger.handler as? LineLogHandler, handler.format == .json, handler.metadata.isEmpty {
            handler.writeJSONLine(message: "request", level: .info, sortedFields: sortedFields())
            return
        }
        logger.info("request", metadata: metadata)
    }

    /// The same fields for any other log backend.
    var metadata: Logger.Metadata {
        Logger.Metadata(uniqueKeysWithValues: sortedFields().map { ($0.key, .string($0.value)) })
    }

    /// Every field of the line, keys in sorted order (as `LineLogHandler` prints metadata).
    func sortedFields() -> [(key: String, value: String)] {
        var fields: [(key: String, value: String)] = []
        fields.reserveCapacity(12)
        if let auth { fields.append(("auth", auth)) }
        if let authReason { fields.append(("auth_reason", authReason)) }
        fields.append(("bytes", String(bytes)))
        fields.append(("duration_ms", Self.milliseconds(duration)))
        fields.append(("method", method))
        if let outcome { fields.append(("outcome", outcome)) }
        fields.append(("path", path))
        fields.append(("request_id", requestID))
        if let routeClass { fields.append(("route_class", routeClass)) }
        fields.append(("status", String(status)))
        if let upstreamDuration { fields.append(("upstream_ms", Self.milliseconds(upstreamDuration))) }
        if let user { fields.append(("user", user)) }
        return fields
    }

    static func milliseconds(_ duration: Duration) -> String {
        let micros = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        let whole = micros / 1_000
        let fraction = micros % 1_000
        return "\(whole)." + String(repeating: "0", count: 3 - String(fraction).count) + String(fraction)
    }
}
