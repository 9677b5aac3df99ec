public import JOSE

/// Everything token verification needs, already parsed and validated by the configuration
/// loader (`GatehouseProxy`).
public struct AuthSettings: Sendable {
    /// Where the JWKS lives: `origin` + `target`, e.g. `http://auth:3000` + `/api/auth/jwks`.
    public var jwksOrigin: String
    public var jwksTarget: String
    public var verifier: JWTVerifier.Configuration
    public var jwksDefaultTTL: Duration = .seconds(300)
    public var jwksMinTTL: Duration = .seconds(30)
    public var jwksMaxTTL: Duration = .seconds(3600)
    public var refetchCooldown: Duration = .seconds(10)
    public var fetchTimeout: Duration = .seconds(2)
    public var maxStale: Duration = .seconds(24 * 3600)
    /// Verified-token cache entries; 0 turns the cache off.
    public var tokenCacheSize = 10_000
    /// Identity headers sent to FastAPI: header name and the claim path (`org.id` → ["org", "id"]).
    public var claimHeaders: [ClaimHeader]
    /// Header carrying the whole verified payload (base64url), or nil for none.
    public var claimsHeader: String?
    public var userAgent: String

    public struct ClaimHeader: Sendable, Equatable {
        public var header: String
        public var path: [String]
        public init(header: String, path: [String]) {
            self.header = header
            self.path = path
        }
    }

    public init(
        jwksOrigin: String, jwksTarget: String, verifier: JWTVerifier.Configuration, claimHeaders: [ClaimHeader],
        claimsHeader: String?, userAgent: String
    ) {
        self.jwksOrigin = jwksOrigin
        self.jwksTarget = jwksTarget
        self.verifier = verifier
        self.claimHeaders = claimHeaders
        self.claimsHeader = claimsHeader
        self.userAgent = userAgent
    }
}
