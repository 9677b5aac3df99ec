public import JOSE
public import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decides whether a request's bearer token is good, and what FastAPI learns about its user.
///
/// Order of work: current keys (none usable → 503) → verified-token cache (a SHA-256 and a
/// lookup) → signature and claims (`JWTVerifier`) → for an unknown `kid` only, one guarded JWKS
/// refetch and a second try. Failures carry a reason from a fixed vocabulary (RFC 6750 §3.1
/// `error_description`), never token content.
public final class Authenticator: Sendable {
    public enum Outcome: Sendable {
        /// `cached`: answered by the verified-token cache, without a signature check.
        /// `claims`: the verified payload, for route rules on claims (`GATEHOUSE_RULES`).
        case allowed(identityHeaders: [(name: String, value: String)], sub: String, claims: JWTClaims, cached: Bool)
        case rejected(Rejection)
        /// No usable keys (never loaded, or stale past the limit): 503.
        case keysUnavailable
    }

    /// The vocabulary of 401 `error_description`s, access logs and metrics.
    public enum Rejection: String, Sendable {
        case expired
        case notYetValid = "not yet valid"
        case badSignature = "bad signature"
        case unknownKey = "unknown key"
        case issuer = "issuer mismatch"
        case audience = "audience mismatch"
        case malformed
        case algorithm = "algorithm not allowed"

        init(_ reason: VerificationFailure.Reason) {
            switch reason {
            case .expired: self = .expired
            case .notYetValid: self = .notYetValid
            case .badSignature: self = .badSignature
            case .unknownKey: self = .unknownKey
            case .issuer: self = .issuer
            case .audience: self = .audience
            case .alg: self = .algorithm
            case .malformed, .missingClaim: self = .malformed
            }
        }

        /// Short machine form for logs and metric labels.
        public var code: String {
            switch self {
            case .expired: return "expired"
            case .notYetValid: return "not_yet_valid"
            case .badSignature: return "bad_signature"
            case .unknownKey: return "unknown_key"
            case .issuer: return "issuer"
            case .audience: return "audience"
            case .malformed: return "malformed"
            case .algorithm: return "alg"
            }
        }
    }

    public let settings: AuthSettings
    public let jwks: JWKSCache
    let verifier: JWTVerifier

    public init(
        settings: AuthSettings, logger: Logger,
        jwksFetched: @escaping @Sendable (JWKSCache.FetchResult, Duration) -> Void = { _, _ in }
    ) {
        self.settings = settings
        self.verifier = JWTVerifier(configuration: settings.verifier)
        self.jwks = JWKSCache(
            settings: settings, logger: logger,
            fetched: jwksFetched)
    }

    /// The decision after the JWKS fetch an unknown `kid` asked for (or was refused by the
    /// cooldown): the current keys decide, and a kid still unknown is rejected. The fetch may
    /// have taken up to the fetch timeout, so `exp` is judged now, when the request is let
    /// through, not when it arrived.
    public func authenticateAfterKeyFetch(token: Substring, state: WorkerAuthState) -> Outcome {
        authenticateWithKeysInHand(token: token, state: state) ?? .rejected(.unknownKey)
    }

    /// A worker's own key snapshot and token-cache share, for `workers` workers in all.
    public func makeWorkerState(workers: Int) -> WorkerAuthState {
        let size = settings.tokenCacheSize
        return WorkerAuthState(jwks: jwks, tokenCacheCapacity: size == 0 ? 0 : max(1, (size + workers - 1) / workers))
    }

    /// The decision that needs no waiting: keys in hand, cache, signature and claims. Returns
    /// nil only when the token names a `kid` the current key set lacks, so that only a JWKS
    /// refetch can decide: the worker parks the request, asks for a fetch
    /// (`JWKSCache.requestFetchForUnknownKid`) and decides with `authenticateAfterKeyFetch`.
    public func authenticateWithKeysInHand(token: Substring, state: WorkerAuthState) -> Outcome? {
        let bytes = token.utf8
        // Bound the work before hashing: an oversized token is malformed whatever it holds.
        guard bytes.count <= settings.verifier.maxTokenBytes else { return .rejected(.malformed) }
        // Keys first, even for a cached token: once the keys are stale past the limit nothing
        // is accepted, whatever was accepted before.
        guard let keys = state.snapshot.keys(at: .now) else { return .keysUnavailable }
        let now = Self.now()
        let digest = TokenCache.Digest(SHA256.hash(bytes))
        let tokenCache = state.tokenCache
        if let hit = tokenCache.lookup(digest, now: now - settings.verifier.clockSkew), let key = hit.key,
            keys.key(for: hit.kid) === key
        {
            return .allowed(identityHeaders: hit.identityHeaders, sub: hit.sub, claims: hit.claims, cached: true)
        }
        let result = verifier.verify(token: bytes, keys: keys, now: now)
        if case .failure(let failure) = result, failure.reason == .unknownKey { return nil }
        return finish(result, keys: keys, digest: digest, cache: tokenCache)
    }

    private func finish(
        _ result: Result<VerifiedToken, VerificationFailure>, keys: JWKSet, digest: TokenCache.Digest, cache: TokenCache
    ) -> Outcome {
        switch result {
        case .failure(let failure):
            return .rejected(Rejection(failure.reason))
        case .success(let verified):
            let headers = identityHeaders(for: verified)
            cache.insert(digest, .init(
                exp: verified.exp, kid: verified.kid, key: keys.key(for: verified.kid), identityHeaders: headers,
                sub: verified.sub, claims: verified.claims))
            return .allowed(identityHeaders: headers, sub: verified.sub, claims: verified.claims, cached: false)
        }
    }

    /// The identity headers for a verified token (`AuthSettings.identityHeaders`); the claims
    /// header is the token's own payload segment, already base64url of the exact payload bytes.
    func identityHeaders(for token: VerifiedToken) -> [(name: String, value: String)] {
        settings.identityHeaders(claims: token.claims, payloadBase64URL: token.payloadBase64URL, method: "jwt")
    }

    static func headerText(_ value: JSONValue) -> String? {
        switch value {
        case .string(let s): return s
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return d.isFinite ? (d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)) : nil
        default: return nil
        }
    }

    public static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
