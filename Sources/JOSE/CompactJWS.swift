#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

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
    /// Built on access: verification reads only `alg`, `kid` and `crit`, which `parse` takes
    /// straight from the member list, so no dictionary is hashed per token for them.
    public var header: [String: JSONValue] { Dictionary(uniqueKeysWithValues: headerMembers.map { ($0.name, $0.value) }) }
    /// The header members in document order; names are unique (checked by the parser).
    let headerMembers: [JSONMember]
    /// The raw `alg` header value (checked against the allow-list by the verifier).
    public let algorithmName: String?
    public let kid: String?
    /// The decoded payload (JWT claims set, RFC 7519 §4).
    public let payload: JWTClaims
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
        // One memcpy when the bytes are contiguous (a slice of a String), not a byte-by-byte copy.
        let bytes = token.withContiguousStorageIfAvailable { Array($0) } ?? Array(token)
        return parse(bytes: bytes, maxBytes: maxBytes)
    }

    private static func parse(bytes token: [UInt8], maxBytes: Int) -> Result<CompactJWS, VerificationFailure> {
        guard token.count <= maxBytes else { return .failure(VerificationFailure(.malformed, "token too large")) }
        // Exactly two dots (three parts). JWE (five parts) and JSON serialization are refused.
        guard let first = dotOffset(in: token, from: 0),
              let second = dotOffset(in: token, from: first + 1),
              dotOffset(in: token, from: second + 1) == nil else {
            return .failure(VerificationFailure(.malformed, "not three parts"))
        }
        guard first > 0, second > first + 1, second < token.count - 1 else {
            return .failure(VerificationFailure(.malformed, "empty part"))
        }
        guard let headerBytes = Base64URL.decode(token[..<first]),
              let payloadBytes = Base64URL.decode(token[(first + 1)..<second]),
              let signature = Base64URL.decode(token[(second + 1)...]) else {
            return .failure(VerificationFailure(.malformed, "invalid base64url"))
        }
        guard case .success(let header) = JSONParser.parseObjectMembers(headerBytes) else {
            return .failure(VerificationFailure(.malformed, "header is not a JSON object"))
        }
        var kidValue: JSONValue?, algValue: JSONValue?
        for member in header {
            switch member.name {
            // RFC 7515 §4.1.11: we understand no extension, so any `crit` means "reject".
            case "crit": return .failure(VerificationFailure(.malformed, "crit header is not supported"))
            case "kid": kidValue = member.value
            case "alg": algValue = member.value
            default: break
            }
        }
        var kid: String?
        if let value = kidValue {
            guard let string = value.stringValue else { return .failure(VerificationFailure(.malformed, "kid is not a string")) }
            kid = string
        }
        var algorithmName: String?
        if let value = algValue {
            guard let string = value.stringValue else { return .failure(VerificationFailure(.malformed, "alg is not a string")) }
            algorithmName = string
        }
        guard case .success(let members) = JSONParser.parseObjectMembers(payloadBytes, expectedCount: 16) else {
            return .failure(VerificationFailure(.malformed, "payload is not a JSON object"))
        }
        let payload = JWTClaims(uniqueMembers: members)
        return .success(CompactJWS(headerMembers: header, algorithmName: algorithmName, kid: kid, payload: payload,
                                   payloadBytes: payloadBytes, signature: signature, token: token,
                                   firstDot: first, secondDot: second))
    }

    /// Offset of the first `.` at or after `start`, or nil. `memchr` scans a word (or a vector)
    /// at a time, where a Swift byte loop costs several instructions per byte of the token.
    private static func dotOffset(in token: [UInt8], from start: Int) -> Int? {
        token.withUnsafeBufferPointer { buffer -> Int? in
            // Unsafe corner: 0 ≤ start ≤ buffer.count, so [base + start, base + count) is
            // inside the buffer; memchr reads nothing outside it and keeps no pointer.
            guard let base = buffer.baseAddress, start < buffer.count else { return nil }
            guard let found = memchr(base + start, Int32(UInt8(ascii: ".")), buffer.count - start) else { return nil }
            return UnsafeRawPointer(found) - UnsafeRawPointer(base)
        }
    }
}
