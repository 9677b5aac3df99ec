/// Verifies Better Auth-issued JWTs (RFC 7519) signed as compact JWS (RFC 7515).
///
/// Checks run in a fixed order, cheapest and least attacker-influenced first, so a failure
/// always reports the earliest problem and no cryptography runs on junk:
/// size → structure → header/alg → key selection → signature length → signature → claims.
/// The verifier holds no mutable state: it is safe to share across threads and never
/// "learns" anything from a token (e.g. an RSA key's algorithm is never pinned).
public struct JWTVerifier: Sendable {
    public struct Configuration: Sendable {
        /// Allow-list of `alg` values (RFC 8725 §3.1). Anything else → `alg`.
        public var algorithms: Set<JWSAlgorithm>
        /// Required exact `iss` (RFC 7519 §4.1.1).
        public var issuer: String
        /// `aud` must contain at least one of these (RFC 7519 §4.1.3).
        public var audiences: Set<String>
        /// Leeway for `exp`, `nbf`, `iat` in seconds (RFC 7519 §4.1.4: "some small leeway").
        public var clockSkew: Double
        /// Tokens longer than this are refused before any parsing.
        public var maxTokenBytes: Int

        public init(algorithms: Set<JWSAlgorithm> = Set(JWSAlgorithm.allCases), issuer: String,
                    audiences: Set<String>, clockSkew: Double = 30,
                    maxTokenBytes: Int = CompactJWS.defaultMaxBytes) {
            self.algorithms = algorithms
            self.issuer = issuer
            self.audiences = audiences
            self.clockSkew = clockSkew
            self.maxTokenBytes = maxTokenBytes
        }
    }

    public let configuration: Configuration
    /// `configuration`'s sets as plain lists, checked per token without hashing: the
    /// allow-list has at most five members and the audience list one or two.
    private let allowed: [JWSAlgorithm]
    private let audiences: [String]

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.allowed = JWSAlgorithm.allCases.filter(configuration.algorithms.contains)
        self.audiences = Array(configuration.audiences)
    }

    /// Full verification at time `now` (seconds since the epoch).
    public func verify(token: String, keys: JWKSet, now: Double) -> Result<VerifiedToken, VerificationFailure> {
        verifySignature(token: token, keys: keys).flatMap { checkClaims($0.jws, key: $0.key, now: now) }
    }

    public func verify(token: some Collection<UInt8>, keys: JWKSet, now: Double) -> Result<VerifiedToken, VerificationFailure> {
        verifySignature(token: token, keys: keys).flatMap { checkClaims($0.jws, key: $0.key, now: now) }
    }

    /// Everything except the claims: size, structure, header, key selection, signature.
    /// Useful for tokens that are not Better Auth shaped (e.g. RFC 7515 examples).
    public func verifySignature(token: String, keys: JWKSet) -> Result<(jws: CompactJWS, key: VerificationKey), VerificationFailure> {
        CompactJWS.parse(token, maxBytes: configuration.maxTokenBytes).flatMap { verifySignature($0, keys: keys) }
    }

    public func verifySignature(token: some Collection<UInt8>, keys: JWKSet) -> Result<(jws: CompactJWS, key: VerificationKey), VerificationFailure> {
        CompactJWS.parse(token, maxBytes: configuration.maxTokenBytes).flatMap { verifySignature($0, keys: keys) }
    }

    private func verifySignature(_ jws: CompactJWS, keys: JWKSet) -> Result<(jws: CompactJWS, key: VerificationKey), VerificationFailure> {
        // Header: RFC 7515 §4.1.1 makes alg mandatory; RFC 8725 §3.1 the allow-list.
        guard let name = jws.algorithmName else { return .failure(VerificationFailure(.alg, "alg header missing")) }
        guard let algorithm = JWSAlgorithm(rawValue: name), allowed.contains(algorithm) else {
            return .failure(VerificationFailure(.alg, "algorithm not allowed"))
        }
        // Key selection: exactly the kid's key; no kid only with a single-key set.
        guard let key = keys.key(for: jws.kid) else {
            return .failure(VerificationFailure(.unknownKey, jws.kid == nil ? "no kid and the key set does not have exactly one key" : "no key with this kid"))
        }
        guard key.accepts(algorithm) else {
            return .failure(VerificationFailure(.alg, "algorithm does not match the key"))
        }
        guard jws.signature.count == key.signatureLength else {
            return .failure(VerificationFailure(.badSignature, "wrong signature length"))
        }
        guard key.isValidSignature(jws.signature, for: jws.signingInput, algorithm: algorithm) else {
            return .failure(VerificationFailure(.badSignature, "signature does not verify"))
        }
        return .success((jws, key))
    }

    private func isOurs(audience: String) -> Bool {
        audiences.contains(audience)
    }

    /// RFC 7519 §4.1 registered claims, after the signature proved who wrote them.
    private func checkClaims(_ jws: CompactJWS, key: VerificationKey, now: Double) -> Result<VerifiedToken, VerificationFailure> {
        let claims = jws.payload.registered
        let skew = configuration.clockSkew
        // §4.1.4 exp: required by us; must be a NumericDate.
        guard let expValue = claims.exp else { return .failure(VerificationFailure(.missingClaim, "exp missing")) }
        guard let exp = expValue.numberValue else { return .failure(VerificationFailure(.malformed, "exp is not a number")) }
        guard now < exp + skew else { return .failure(VerificationFailure(.expired, "token expired")) }
        // §4.1.5 nbf.
        if let value = claims.nbf {
            guard let nbf = value.numberValue else { return .failure(VerificationFailure(.malformed, "nbf is not a number")) }
            guard nbf <= now + skew else { return .failure(VerificationFailure(.notYetValid, "nbf is in the future")) }
        }
        // §4.1.6 iat: a token issued in the future is not valid yet either.
        if let value = claims.iat {
            guard let iat = value.numberValue else { return .failure(VerificationFailure(.malformed, "iat is not a number")) }
            guard iat <= now + skew else { return .failure(VerificationFailure(.notYetValid, "iat is in the future")) }
        }
        // §4.1.1 iss: exact, case-sensitive string comparison.
        guard claims.iss?.stringValue == configuration.issuer else {
            return .failure(VerificationFailure(.issuer, "issuer mismatch"))
        }
        // §4.1.3 aud: a string or an array of strings; one must be ours.
        switch claims.aud {
        case .string(let audience)? where isOurs(audience: audience):
            break
        case .array(let list)? where list.contains(where: { $0.stringValue.map(isOurs) ?? false }):
            break
        default:
            return .failure(VerificationFailure(.audience, "audience mismatch"))
        }
        // §4.1.2 sub: the upstream identifies the user by it.
        guard let sub = claims.sub?.stringValue, !sub.isEmpty else {
            return .failure(VerificationFailure(.missingClaim, "sub missing or empty"))
        }
        return .success(VerifiedToken(jws: jws, sub: sub, exp: exp, kid: key.kid))
    }
}

/// A token whose signature and claims were verified.
public struct VerifiedToken: Sendable {
    let jws: CompactJWS
    /// RFC 7519 §4.1.2.
    public let sub: String
    /// RFC 7519 §4.1.4, seconds since the epoch.
    public let exp: Double
    /// The kid of the key that verified it (from the JWKS), for cache purging on rotation.
    public let kid: String?

    /// All claims.
    public var claims: JWTClaims { jws.payload }
    /// The decoded payload bytes exactly as signed.
    public var payloadBytes: [UInt8] { jws.payloadBytes }
    /// The payload segment as it appeared in the token (already base64url), so it can be
    /// forwarded upstream without re-encoding.
    public var payloadBase64URL: String { String(decoding: jws.payloadSegment, as: UTF8.self) }
    public var algorithm: JWSAlgorithm { JWSAlgorithm(rawValue: jws.algorithmName ?? "")! }
}
