import JOSE

#if canImport(Glibc)
import Glibc
#endif

/// Mints tokens of Better Auth 1.4's exact shape (its `jwt` plugin): header `{"alg","kid"}`
/// only, and a payload of `iat`, the user object, `sub`, `exp`, `iss`, `aud`.
public struct TokenMinter: Sendable {
    public var key: DevKey
    public var issuer: String
    public var audience: String

    public init(key: DevKey, issuer: String, audience: String) {
        self.key = key
        self.issuer = issuer
        self.audience = audience
    }

    public struct User: Sendable {
        public var id: String
        public var name: String
        public var email: String
        public var emailVerified = true
        public init(id: String, name: String, email: String) {
            self.id = id
            self.name = name
            self.email = email
        }
    }

    /// `now`: seconds since 1970 (default: the clock).
    public func mint(user: User, ttlSeconds: Int, now: Double? = nil) -> String {
        let now = now ?? Self.clock()
        let iat = Int(now)
        let created = Self.betterAuthDate(now - 86_400)
        let updated = Self.betterAuthDate(now)
        let q = JSONText.quoted
        let header = #"{"alg":\#(q(key.algorithm)),"kid":\#(q(key.kid))}"#
        let payload = "{\"iat\":\(iat),\"name\":\(q(user.name)),\"email\":\(q(user.email)),"
            + "\"emailVerified\":\(user.emailVerified),\"image\":null,\"createdAt\":\(q(created)),"
            + "\"updatedAt\":\(q(updated)),\"id\":\(q(user.id)),\"sub\":\(q(user.id)),"
            + "\"exp\":\(iat + ttlSeconds),\"iss\":\(q(issuer)),\"aud\":\(q(audience))}"
        let signingInput = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        return signingInput + "." + Base64URL.encode(key.sign(Array(signingInput.utf8)))
    }
}

extension TokenMinter {
    /// `2025-12-07T09:00:00.000Z`, as Better Auth serialises dates (RFC 3339, UTC, milliseconds).
    static func betterAuthDate(_ seconds: Double) -> String {
        var time = time_t(seconds.rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        let milliseconds = Int((seconds - seconds.rounded(.down)) * 1000)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let millis = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millis)Z"
    }

    static func clock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
