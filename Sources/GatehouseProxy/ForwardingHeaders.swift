#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds the `X-Forwarded-*` fields FastAPI sees (the de-facto convention uvicorn's
/// `--proxy-headers` and Starlette's `ProxyHeadersMiddleware` read).
///
/// Incoming forwarding fields are trusted only when the TCP peer is in
/// `GATEHOUSE_TRUSTED_PROXIES`: from anyone else they are overwritten, otherwise any client
/// could claim any address or scheme. From a trusted peer the chain is kept and the peer's
/// address appended (the convention in RFC 7239 §5.2's spirit, for the older header).
struct ForwardingHeaders {
    let trustedProxies: [CIDR]

    /// Lowercased names the proxy rebuilds itself; incoming copies are never passed as-is.
    static let managed: Set<String> = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip"]

    struct Incoming {
        var forwardedFor: [String] = []
        var forwardedProto: String?
        var forwardedHost: String?
    }

    func isTrusted(peer: String?) -> Bool {
        guard !trustedProxies.isEmpty, let peer, let address = IPAddress.parse(peer) else { return false }
        return trustedProxies.contains { $0.contains(address) }
    }

    /// The three fields to send upstream, in order.
    func fields(peer: String?, host: String?, incoming: Incoming) -> [(name: String, value: String)] {
        let peerText = peer ?? "unknown"
        if isTrusted(peer: peer) {
            let chain = (incoming.forwardedFor + [peerText]).joined(separator: ", ")
            var result = [("X-Forwarded-For", chain), ("X-Forwarded-Proto", incoming.forwardedProto ?? "http")]
            if let forwardedHost = incoming.forwardedHost ?? host { result.append(("X-Forwarded-Host", forwardedHost)) }
            return result.map { (name: $0.0, value: $0.1) }
        }
        var result: [(name: String, value: String)] = [("X-Forwarded-For", peerText), ("X-Forwarded-Proto", "http")]
        if let host { result.append(("X-Forwarded-Host", host)) }
        return result
    }
}

/// `X-Request-Id`: a client's value is kept when it is short and made of safe characters
/// (it ends up in logs); otherwise a new random one is made.
enum RequestID {
    static func accept(_ value: String?) -> String? {
        guard let value, (1...128).contains(value.utf8.count),
            value.utf8.allSatisfy({ byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == 0x2d || byte == 0x2e || byte == 0x5f || byte == 0x3a
            })
        else { return nil }
        return value
    }

    /// 128 random bits as 32 hex digits. `arc4random_buf` (glibc ≥ 2.36) draws from a
    /// userspace ChaCha20 generator seeded by the kernel: no syscall per request.
    static func generate() -> String {
        var random = (UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &random) { arc4random_buf($0.baseAddress!, $0.count) }
        return String(unsafeUninitializedCapacity: 32) { buffer in
            let hex: StaticString = "0123456789abcdef"
            var i = 0
            for var word in [random.0, random.1] {
                for _ in 0..<16 {
                    buffer[i] = hex.utf8Start[Int(word & 0xf)]
                    word >>= 4
                    i += 1
                }
            }
            return 32
        }
    }
}

/// The path and query as logged: query values are dropped (they may carry tokens or
/// personal data), names kept: `/search?q=secret&page=2` → `/search?q=&page=`.
enum LoggedPath {
    static func redacting(_ target: String) -> String {
        guard let question = target.firstIndex(of: "?") else { return target }
        let names = target[target.index(after: question)...].split(separator: "&", omittingEmptySubsequences: false).map {
            $0.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0] + "="
        }
        return String(target[..<question]) + "?" + names.joined(separator: "&")
    }
}
