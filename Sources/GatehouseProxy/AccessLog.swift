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

    var metadata: Logger.Metadata {
        var metadata: Logger.Metadata = [
            "method": .string(method),
            "path": .string(path),
            "status": .stringConvertible(status),
            "bytes": .stringConvertible(bytes),
            "duration_ms": .string(Self.milliseconds(duration)),
            "request_id": .string(requestID),
        ]
        if let upstreamDuration { metadata["upstream_ms"] = .string(Self.milliseconds(upstreamDuration)) }
        if let outcome { metadata["outcome"] = .string(outcome) }
        if let routeClass { metadata["route_class"] = .string(routeClass) }
        if let auth { metadata["auth"] = .string(auth) }
        if let authReason { metadata["auth_reason"] = .string(authReason) }
        if let user { metadata["user"] = .string(user) }
        return metadata
    }

    /// `metadata` as the general path prints it: keys sorted, values as text.
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
