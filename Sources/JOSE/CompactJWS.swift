/// A JWS in Compact Serialization (RFC 7515 §3.1, §7.1), structurally validated but NOT yet
/// verified: `BASE64URL(header) '.' BASE64URL(payload) '.' BASE64URL(signature)`.
///
/// Parsing follows RFC 7515 §5.2 steps 1–7, made strict for a JWT verifier (RFC 7519 §7.2,
/// RFC 8725): exactly three non-empty parts, strict base64url, header and payload must be
/// JSON objects without duplicate members, and the size is bounded before any work.
public struct CompactJWS: Sendable {
    public static let defaultMaxBytes = 16 * 1024

    /// The JOSE header members (only `alg` and `kid` are interpreted; `jku`, `x5u`, `jwk` and
    /// `x5c` are ignored on purpose — keys come only from the configured JWKS, RFC 8725 §3.10).
    public let header: [String: JSONValue]
    /// The raw `alg` header value (checked against the allow-list by the verifier).
    public let algorithmName: String?
    public let kid: String?
    /// The decoded payload (JWT claims set, RFC 7519 §4).
    public let payload: [String: JSONValue]
    public let payloadBytes: [UInt8]
    public let signature: [UInt8]
    /// The token's own bytes; the signing input and payload segment are ranges in it, so
    /// neither is copied.
    let token: [UInt8]
    let firstDot: Int
    let secondDot: Int

    /// ASCII `BASE64URL(header) '.' BASE64URL(payload)` — what the signature covers.
    public var signingInput: ArraySlice<UInt8> { token[..<secondDot] }
    /// The payload exactly as it appeared in the token (base64url), for forwarding upstream.
    public var payloadSegment: ArraySlice<UInt8> { token[(firstDot + 1)..<secondDot] }

    public static func parse(_ token: String, maxBytes: Int = defaultMaxBytes) -> Result<CompactJWS, VerificationFailure> {
        // Check the size on the String before copying anything.
        guard token.utf8.count <= maxBytes else { return .failure(VerificationFailure(.malformed, "token too large")) }
        return parse(bytes: Array(token.utf8), maxBytes: maxBytes)
    }

    public static func parse(_ token: some Collection<UInt8>, maxBytes: Int = defaultMaxBytes) -> Result<CompactJWS, VerificationFailure> {
        guard token.count <= maxBytes else { return .failure(VerificationFailure(.malformed, "token too large")) }
        return parse(bytes: Array(token), maxBytes: maxBytes)
    }

    private static func parse(bytes token: [UInt8], maxBytes: Int) -> Result<CompactJWS, VerificationFailure> {
        guard token.count <= maxBytes else { return .failure(VerificationFailure(.malformed, "token too large")) }
        // Exactly two dots (three parts). JWE (five parts) and JSON serialization are refused.
        var dots: (Int, Int) = (-1, -1)
        var dotCount = 0
        let span = token.span
        for offset in span.indices where span[offset] == UInt8(ascii: ".") {
            dotCount += 1
            if dotCount == 1 { dots.0 = offset } else if dotCount == 2 { dots.1 = offset } else {
                return .failure(VerificationFailure(.malformed, "not three parts"))
            }
        }
        guard dotCount == 2 else { return .failure(VerificationFailure(.malformed, "not three parts")) }
        let (first, second) = dots
        guard first > 0, second > first + 1, second < token.count - 1 else {
            return .failure(VerificationFailure(.malformed, "empty part"))
        }
        guard let headerBytes = Base64URL.decode(token[..<first]),
              let payloadBytes = Base64URL.decode(token[(first + 1)..<second]),
              let signature = Base64URL.decode(token[(second + 1)...]) else {
            return .failure(VerificationFailure(.malformed, "invalid base64url"))
        }
        guard case .success(.object(let header)) = JSONParser.parse(headerBytes) else {
            return .failure(VerificationFailure(.malformed, "header is not a JSON object"))
        }
        // RFC 7515 §4.1.11: we understand no extension, so any `crit` means "reject".
        guard header["crit"] == nil else {
            return .failure(VerificationFailure(.malformed, "crit header is not supported"))
        }
        var kid: String?
        if let value = header["kid"] {
            guard let string = value.stringValue else { return .failure(VerificationFailure(.malformed, "kid is not a string")) }
            kid = string
        }
        var algorithmName: String?
        if let value = header["alg"] {
            guard let string = value.stringValue else { return .failure(VerificationFailure(.malformed, "alg is not a string")) }
            algorithmName = string
        }
        guard case .success(.object(let payload)) = JSONParser.parse(payloadBytes) else {
            return .failure(VerificationFailure(.malformed, "payload is not a JSON object"))
        }
        return .success(CompactJWS(header: header, algorithmName: algorithmName, kid: kid, payload: payload,
                                   payloadBytes: payloadBytes, signature: signature, token: token,
                                   firstDot: first, secondDot: second))
    }
}
