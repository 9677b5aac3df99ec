import GatehouseAuth
import JOSE

/// Reads the token-verification variables (see `GatehouseConfiguration.reference`).
///
/// `BETTER_AUTH_URL` alone is enough: Better Auth serves its JWKS at
/// `{BETTER_AUTH_URL}/api/auth/jwks` and, by default, sets both `iss` and `aud` to the origin
/// of its base URL. Each derived value can be overridden.
enum AuthConfigurationReader {
    struct Result {
        var settings: AuthSettings?
        var cookie: String?
        var queryParam: String?
        var forwardToken: Bool
        var identityHeaderNames: Set<String>
        /// `GATEHOUSE_CLAIM_HEADERS` in order, then `GATEHOUSE_CLAIMS_HEADER`: what the identity
        /// signature covers (`IdentitySignature`).
        var signedHeaderNames: [String] = []
    }

    static let defaultClaimHeaders = "X-User-Id=sub,X-User-Email=email"
    /// Headers gatehouse sets itself, never a claim header's name.
    static let reservedHeaderNames: Set<String> = ["x-auth-method", "x-gatehouse-signature", "x-request-id", "host"]

    static func read(_ reader: inout EnvironmentReader) -> Result? {
        let mode = reader.value("GATEHOUSE_AUTH", default: "jwt", expected: "jwt or off") { ["jwt", "off"].contains($0) ? $0 : nil }
        let claimHeaders = reader.value("GATEHOUSE_CLAIM_HEADERS", default: defaultClaimHeaders,
            expected: "a comma list of Header=claim.path such as X-User-Id=sub,X-Org=org.id", parseClaimHeaders)
        let claimsHeader = reader.value("GATEHOUSE_CLAIMS_HEADER", default: "X-Auth-Claims",
            expected: "a header name such as X-Auth-Claims, or empty for none") { text -> String?? in
                text.isEmpty ? .some(nil) : (isToken(text) && !reservedHeaderNames.contains(text.lowercased()) ? .some(text) : nil)
            }
        if let claimHeaders, let claimsHeader = claimsHeader ?? nil,
            claimHeaders.contains(where: { $0.header.lowercased() == claimsHeader.lowercased() })
        {
            reader.problems.append(.init(variable: "GATEHOUSE_CLAIMS_HEADER", message: "must differ from every GATEHOUSE_CLAIM_HEADERS name"))
        }
        let cookie = reader.value("GATEHOUSE_TOKEN_COOKIE", default: "", expected: "a cookie name") { text -> String?? in
            text.isEmpty ? .some(nil) : (isToken(text) ? .some(text) : nil)
        }
        let queryParam = reader.value("GATEHOUSE_TOKEN_QUERY_PARAM", default: "", expected: "a query parameter name without &, = or #") {
            text -> String?? in
            text.isEmpty ? .some(nil) : (text.allSatisfy { $0.isASCII && !"&=#?% ".contains($0) && !$0.isWhitespace } ? .some(text) : nil)
        }
        let forward = reader.value("GATEHOUSE_FORWARD_TOKEN", default: "true", expected: "true or false") { text -> Bool? in
            switch text.lowercased() {
            case "true", "1": return true
            case "false", "0": return false
            default: return nil
            }
        }
        let algorithms = reader.value("GATEHOUSE_ALGORITHMS", default: "EdDSA,ES256,ES512,RS256,PS256",
            expected: "a comma list of EdDSA, ES256, ES512, RS256, PS256") { text -> Set<JWSAlgorithm>? in
                let names = text.split(separator: ",").map { $0.trimmingSpaces() }
                let parsed = names.compactMap(JWSAlgorithm.init(rawValue:))
                return parsed.count == names.count && !parsed.isEmpty ? Set(parsed) : nil
            }
        let skew = reader.value("GATEHOUSE_CLOCK_SKEW", default: "30s", expected: DurationValue.expected + ", at most 5m") {
            DurationValue.parse($0).flatMap { $0 <= .seconds(300) ? $0 : nil }
        }
        let maxToken = reader.value("GATEHOUSE_MAX_TOKEN_BYTES", default: "16KiB", expected: SizeValue.expected + ", from 1KiB to 64KiB") {
            SizeValue.parse($0).flatMap { (1024...65536).contains($0) ? $0 : nil }
        }
        let ttl = reader.positiveDuration("GATEHOUSE_JWKS_TTL", default: "300s")
        let minTTL = reader.positiveDuration("GATEHOUSE_JWKS_MIN_TTL", default: "30s")
        let maxTTL = reader.positiveDuration("GATEHOUSE_JWKS_MAX_TTL", default: "1h")
        let cooldown = reader.value("GATEHOUSE_JWKS_REFETCH_COOLDOWN", default: "10s", expected: DurationValue.expected, DurationValue.parse)
        let fetchTimeout = reader.positiveDuration("GATEHOUSE_JWKS_FETCH_TIMEOUT", default: "2s")
        let maxStale = reader.positiveDuration("GATEHOUSE_JWKS_MAX_STALE", default: "24h")
        let cacheSize = reader.value("GATEHOUSE_TOKEN_CACHE_SIZE", default: "10000", expected: "a whole number from 0 to 1000000") {
            Int($0).flatMap { (0...1_000_000).contains($0) ? $0 : nil }
        }

        let base = reader.environment["BETTER_AUTH_URL"].flatMap { $0.isEmpty ? nil : $0 }
        let baseURL = base.flatMap { _ in
            reader.value("BETTER_AUTH_URL", default: "", expected: UpstreamURL.expected, UpstreamURL.parse)
        }
        let jwksURL = reader.environment["GATEHOUSE_JWKS_URL"] == nil
            ? baseURL.map { UpstreamURL(origin: $0.origin, pathPrefix: $0.pathPrefix + "/api/auth/jwks") }
            : reader.value("GATEHOUSE_JWKS_URL", default: "", expected: UpstreamURL.expected) {
                UpstreamURL.parse($0).flatMap { $0.pathPrefix.isEmpty ? nil : $0 }
            }
        let issuer = reader.environment["GATEHOUSE_ISSUER"].flatMap { $0.isEmpty ? nil : $0 } ?? baseURL?.origin
        let audiences = reader.environment["GATEHOUSE_AUDIENCE"].map {
            Set($0.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty })
        } ?? baseURL.map { [$0.origin] }

        guard let mode, let claimHeaders, let claimsHeader, let cookie, let queryParam, let forward else { return nil }
        // The default names are stripped even when configured away: an app written against
        // the defaults must never receive a client's forged `X-User-Id` or `X-Auth-Claims`.
        let identity = Set(
            claimHeaders.map { $0.header.lowercased() } + (claimsHeader.map { [$0.lowercased()] } ?? [])
                + ["x-user-id", "x-user-email", "x-auth-claims", "x-auth-method", "x-gatehouse-signature"])
        var result = Result(settings: nil, cookie: cookie, queryParam: queryParam, forwardToken: forward, identityHeaderNames: identity)
        result.signedHeaderNames = claimHeaders.map(\.header) + (claimsHeader.map { [$0] } ?? [])
        if mode == "off" { return result }

        if jwksURL == nil && reader.environment["GATEHOUSE_JWKS_URL"] == nil && base == nil {
            reader.problems.append(.init(variable: "BETTER_AUTH_URL",
                message: "is required (or GATEHOUSE_JWKS_URL with GATEHOUSE_ISSUER and GATEHOUSE_AUDIENCE); set GATEHOUSE_AUTH=off to run without token verification"))
            return nil
        }
        if issuer == nil {
            reader.problems.append(.init(variable: "GATEHOUSE_ISSUER", message: "is required when BETTER_AUTH_URL is not set"))
        }
        if audiences?.isEmpty ?? true {
            reader.problems.append(.init(variable: "GATEHOUSE_AUDIENCE", message: "is required when BETTER_AUTH_URL is not set; expected a comma list"))
        }
        guard let jwksURL, let issuer, let audiences, !audiences.isEmpty, let algorithms, let skew, let maxToken, let ttl,
            let minTTL, let maxTTL, let cooldown, let fetchTimeout, let maxStale, let cacheSize
        else { return nil }
        if minTTL > maxTTL {
            reader.problems.append(.init(variable: "GATEHOUSE_JWKS_MIN_TTL", message: "must not exceed GATEHOUSE_JWKS_MAX_TTL"))
            return nil
        }
        var settings = AuthSettings(
            jwksOrigin: jwksURL.origin, jwksTarget: jwksURL.pathPrefix,
            verifier: .init(algorithms: algorithms, issuer: issuer, audiences: audiences,
                clockSkew: Double(skew.milliseconds) / 1000, maxTokenBytes: maxToken),
            claimHeaders: claimHeaders, claimsHeader: claimsHeader, userAgent: "gatehouse/\(GatehouseVersion.current)")
        settings.jwksDefaultTTL = ttl
        settings.jwksMinTTL = minTTL
        settings.jwksMaxTTL = maxTTL
        settings.refetchCooldown = cooldown
        settings.fetchTimeout = fetchTimeout
        settings.maxStale = maxStale
        settings.tokenCacheSize = cacheSize
        result.settings = settings
        return result
    }

    static func parseClaimHeaders(_ text: String) -> [AuthSettings.ClaimHeader]? {
        var result: [AuthSettings.ClaimHeader] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map { $0.trimmingSpaces() }
            guard parts.count == 2, isToken(parts[0]) else { return nil }
            let path = parts[1].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !path.isEmpty, path.allSatisfy({ !$0.isEmpty }) else { return nil }
            result.append(.init(header: parts[0], path: path))
        }
        // Each name once, and none of the headers gatehouse sets itself: a second copy would
        // be sent twice and leave the identity signature to cover only one of them.
        let names = result.map { $0.header.lowercased() }
        guard Set(names).count == names.count, !names.contains(where: reservedHeaderNames.contains) else { return nil }
        return result
    }

    /// RFC 9110 §5.6.2 token characters (header and cookie names).
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

/// The version string shown in logs, `--version` and the JWKS fetch `User-Agent`.
public enum GatehouseVersion {
    public static let current = "0.2.0"
}
