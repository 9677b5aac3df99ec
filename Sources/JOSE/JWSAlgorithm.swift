/// The only JWS algorithms gatehouse verifies — exactly the ones Better Auth 1.4's `jwt`
/// plugin can issue. Names are the RFC 7518 §3.1 / RFC 8037 §3.1 registry names, compared
/// case-sensitively. `none` and the HMAC family are deliberately absent: with public JWKS
/// keys, accepting HS* enables the classic key-confusion forgery (RFC 8725 §2.1, §3.1).
public enum JWSAlgorithm: String, Sendable, CaseIterable, Hashable {
    /// Ed25519 (RFC 8037 §3.1).
    case EdDSA
    /// ECDSA P-256 + SHA-256 (RFC 7518 §3.4).
    case ES256
    /// ECDSA P-521 + SHA-512 (RFC 7518 §3.4).
    case ES512
    /// RSASSA-PKCS1-v1_5 + SHA-256 (RFC 7518 §3.3).
    case RS256
    /// RSASSA-PSS + SHA-256, MGF1-SHA-256, salt = 32 (RFC 7518 §3.5).
    case PS256
}

/// Why a token was not accepted. `reason` is a fixed vocabulary used in 401 bodies, metric
/// labels and logs. `detail` is a `StaticString` on purpose: it can only ever be a literal
/// written in this module, so it can never carry token content (RFC 8725 §3.x spirit: do not
/// reflect attacker-controlled data; and tokens are bearer credentials).
public struct VerificationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: String, Sendable, CaseIterable {
        case malformed
        case alg
        case unknownKey = "unknown_key"
        case badSignature = "bad_signature"
        case expired
        case notYetValid = "not_yet_valid"
        case issuer
        case audience
        case missingClaim = "missing_claim"
    }

    public let reason: Reason
    private let staticDetail: StaticString

    public var detail: String { staticDetail.description }
    public var description: String { "\(reason.rawValue): \(detail)" }

    init(_ reason: Reason, _ detail: StaticString) {
        self.reason = reason
        self.staticDetail = detail
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.reason == rhs.reason && lhs.detail == rhs.detail
    }
}
