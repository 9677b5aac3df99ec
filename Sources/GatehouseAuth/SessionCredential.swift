public import JOSE

/// A Better Auth session credential as the client sent it: the session cookie's value, or the
/// bearer plugin's token in `Authorization: Bearer`.
///
/// Better Auth 1.4 (`setSessionCookie`, the bearer plugin's `set-auth-token`) writes both as
/// the URL-encoded `<token>.<signature>`: a 32-character `[A-Za-z0-9]` token and the standard
/// base64 of its HMAC-SHA256 (44 characters ending in `=`). The bearer plugin also accepts the
/// bare token unless `requireSignature` is set. Only Better Auth can check the signature (it
/// needs `BETTER_AUTH_SECRET`, which a sidecar must not hold) or say whether the session lives;
/// gatehouse checks the shape, so a value that cannot be a session costs no lookup.
public struct SessionCredential: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case cookie
        case bearer
    }

    public var kind: Kind
    /// Exactly as received (still URL-encoded): sent to get-session as is, never logged.
    public var value: Substring

    public init(kind: Kind, value: Substring) {
        self.kind = kind
        self.value = value
    }

    /// The longest value worth decoding: 32 + 1 + 44 characters, each at most `%XX`.
    public static let maxEncodedBytes = 3 * 77

    /// Whether the value has a session token's shape (see the type's comment). A bearer value
    /// may also be the bare 32-character token.
    public var isWellShaped: Bool {
        guard value.utf8.count <= Self.maxEncodedBytes, let decoded = PercentEncoding.decode(value.utf8) else { return false }
        if kind == .bearer, decoded.count == 32, decoded.allSatisfy(Self.isAlphanumeric) { return true }
        guard decoded.count == 77, decoded[32] == UInt8(ascii: "."), decoded[76] == UInt8(ascii: "=") else { return false }
        return decoded[0..<32].allSatisfy(Self.isAlphanumeric)
            && decoded[33..<76].allSatisfy { Self.isAlphanumeric($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "/") }
    }

    /// The session-cache key: SHA-256 of the kind and the value, so the cache holds no
    /// credential, and a value that works as a cookie is not assumed to work as a bearer
    /// (Better Auth may have the bearer plugin off).
    public var digest: TokenCache.Digest {
        var bytes = Array(kind.rawValue.utf8)
        bytes.append(0)
        bytes.append(contentsOf: value.utf8)
        return TokenCache.Digest(SHA256.hash(bytes))
    }

    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
    }

    /// Better Auth's session cookie name: `<prefix>.session_token`, with the `__Secure-` prefix
    /// (RFC 6265bis §4.1.3.1) when its base URL is https (`advanced.useSecureCookies`
    /// defaults to that), so development over http and production differ.
    public static func cookieName(prefix: String, secure: Bool) -> String {
        (secure ? "__Secure-" : "") + prefix + ".session_token"
    }
}
