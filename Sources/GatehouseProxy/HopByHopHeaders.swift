/// Hop-by-hop header fields (RFC 9110 §7.6.1): they describe one connection, not the
/// message, so a proxy removes them in both directions — the fixed set below plus every
/// field the `Connection` header names.
///
/// `Proxy-Authorization` and `Proxy-Authenticate` are included: they are addressed to the
/// proxy itself (RFC 9110 §11.7) and must never reach FastAPI or the client.
enum HopByHopHeaders {
    static let fixed: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "transfer-encoding",
        "upgrade", "trailer", "proxy-authorization", "proxy-authenticate",
    ]

    /// The lowercased names to drop for a message whose `Connection` field values are given.
    /// Returns `fixed` itself (no allocation) in the common case of no extra nominations.
    static func names(connectionValues: some Sequence<String>) -> Set<String> {
        var names: Set<String>?
        for value in connectionValues {
            // `Connection: keep-alive` / `close` name fields already in `fixed`: no copy.
            for name in tokens(value) where !fixed.contains(name) {
                if names == nil { names = fixed }
                names!.insert(name)
            }
        }
        return names ?? fixed
    }

    /// The lowercased tokens of one comma-separated list field value (RFC 9110 §5.6.1),
    /// empty list elements skipped.
    static func tokens(_ value: String) -> some Sequence<String> {
        value.split(separator: ",").lazy.map { $0.trimmingSpaces().lowercased() }.filter { !$0.isEmpty }
    }
}
