import HTTPTypes
import Testing

@testable import GatehouseProxy

@Suite struct TokenSourcesTests {
    let sources = TokenSources(cookie: "session_token", queryParameter: "access_token")

    func fields(_ pairs: [(String, String)]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in pairs { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return fields
    }

    @Test(arguments: ["Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER  abc.def.ghi"])
    func bearerSchemeIsCaseInsensitive(_ header: String) {
        let found = sources.find(in: fields([("Authorization", header)]), target: "/x")
        #expect(found.token == .token("abc.def.ghi"))
    }

    @Test func otherSchemesAreNoToken() {
        #expect(sources.find(in: fields([("Authorization", "Basic dXNlcjpwdw==")]), target: "/").token == .none)
        #expect(sources.find(in: fields([("Authorization", "Bearer")]), target: "/").token == .none)
    }

    @Test func cookieAndQueryParameter() {
        let cookie = sources.find(in: fields([("Cookie", "theme=dark; session_token=t.o.k; x=1")]), target: "/")
        #expect(cookie.token == .token("t.o.k"))
        let query = sources.find(in: fields([]), target: "/sse?a=1&access_token=t.o.k&b=%20")
        #expect(query.token == .token("t.o.k"))
        #expect(query.target == "/sse?a=1&b=%20", "the token leaves the target; the rest stays byte for byte")
        #expect(sources.find(in: fields([]), target: "/sse?access_token=t.o.k").target == "/sse")
    }

    /// FastAPI (Starlette) percent-decodes query names and strips whitespace around cookie
    /// names: gatehouse must find (and so remove) the token under the same spellings, or
    /// a crafted spelling would carry a token past it to FastAPI.
    @Test(arguments: [
        "/sse?%61ccess_token=t.o.k", "/sse?access%5Ftoken=t.o.k", "/sse?access%5ftoken=t.o.k&x=1",
    ])
    func queryParameterNamesAreReadDecoded(_ target: String) {
        let found = sources.find(in: fields([]), target: target)
        #expect(found.token == .token("t.o.k"))
        #expect(!found.target.contains("t.o.k"), "the token leaves the target: \(found.target)")
        #expect(sources.find(in: fields([("Authorization", "Bearer a")]), target: target).token == .conflicting)
    }

    @Test func queryNamesThatOnlyLookAlikeStay() {
        for target in ["/sse?access_token2=x", "/sse?%2561ccess_token=x", "/sse?access+token=x", "/sse?acc%zzess_token=x"] {
            let found = sources.find(in: fields([]), target: target)
            #expect(found.token == .none, "\(target)")
            #expect(found.target == target)
        }
    }

    @Test(arguments: ["a=1;\tsession_token=t.o.k", "a=1; session_token =t.o.k", "session_token= t.o.k\t; a=1"])
    func cookieNamesAndValuesAreTrimmedOfSpacesAndTabs(_ header: String) {
        #expect(sources.find(in: fields([("Cookie", header)]), target: "/").token == .token("t.o.k"))
    }

    @Test func tokenInTwoPlacesIsAConflict() {
        #expect(sources.find(in: fields([("Authorization", "Bearer a"), ("Cookie", "session_token=b")]), target: "/").token == .conflicting)
        #expect(sources.find(in: fields([("Authorization", "Bearer a")]), target: "/?access_token=b").token == .conflicting)
        #expect(sources.find(in: fields([("Authorization", "Bearer a"), ("Authorization", "Bearer a")]), target: "/").token == .conflicting)
        #expect(sources.find(in: fields([]), target: "/?access_token=a&access_token=b").token == .conflicting)
    }

    @Test func optInSourcesAreIgnoredWhenNotConfigured() {
        let headerOnly = TokenSources(cookie: nil, queryParameter: nil)
        let found = headerOnly.find(in: fields([("Cookie", "session_token=b")]), target: "/?access_token=a")
        #expect(found.token == .none)
        #expect(found.target == "/?access_token=a")
    }
}

@Suite struct AuthConfigurationTests {
    let base = ["GATEHOUSE_UPSTREAM": "http://127.0.0.1:8000"]

    func load(_ extra: [String: String]) -> Result<GatehouseConfiguration, ConfigurationError> {
        GatehouseConfiguration.load(environment: base.merging(extra) { $1 })
    }

    @Test func betterAuthURLAloneIsEnough() throws {
        let auth = try #require(try load(["BETTER_AUTH_URL": "https://app.example.com/"]).get().auth)
        #expect(auth.jwksOrigin == "https://app.example.com")
        #expect(auth.jwksTarget == "/api/auth/jwks")
        #expect(auth.verifier.issuer == "https://app.example.com")
        #expect(auth.verifier.audiences == ["https://app.example.com"])
        #expect(auth.claimHeaders.map(\.header) == ["X-User-Id", "X-User-Email"])
        #expect(auth.claimsHeader == "X-Auth-Claims")
    }

    @Test func overrides() throws {
        let configuration = try load([
            "BETTER_AUTH_URL": "https://app.example.com", "GATEHOUSE_JWKS_URL": "http://auth:3000/keys",
            "GATEHOUSE_AUDIENCE": "api-a, api-b", "GATEHOUSE_CLAIM_HEADERS": "X-Org=org.id",
            "GATEHOUSE_CLAIMS_HEADER": "", "GATEHOUSE_FORWARD_TOKEN": "false",
        ]).get()
        let auth = try #require(configuration.auth)
        #expect(auth.jwksOrigin + auth.jwksTarget == "http://auth:3000/keys")
        #expect(auth.verifier.audiences == ["api-a", "api-b"])
        #expect(auth.claimHeaders == [.init(header: "X-Org", path: ["org", "id"])])
        #expect(auth.claimsHeader == nil)
        #expect(!configuration.forwardToken)
        #expect(configuration.identityHeaderNames == ["x-org", "x-user-id", "x-user-email", "x-auth-claims", "x-auth-method", "x-gatehouse-signature"])
    }

    @Test func noIssuerConfiguredFailsClosed() {
        guard case .failure(let error) = load([:]) else {
            Issue.record("started without any token configuration")
            return
        }
        #expect(error.problems.map(\.variable) == ["BETTER_AUTH_URL"])
        #expect(error.description.contains("GATEHOUSE_AUTH=off"))
    }

    @Test func offModeStillStripsIdentityHeaders() throws {
        let configuration = try load(["GATEHOUSE_AUTH": "off"]).get()
        #expect(configuration.auth == nil)
        #expect(configuration.identityHeaderNames == ["x-user-id", "x-user-email", "x-auth-claims", "x-auth-method", "x-gatehouse-signature"])
    }

    @Test(arguments: [
        ("GATEHOUSE_ALGORITHMS", "EdDSA,HS256"), ("GATEHOUSE_ALGORITHMS", "none"), ("GATEHOUSE_CLAIM_HEADERS", "X-User-Id"),
        ("GATEHOUSE_CLAIM_HEADERS", "Bad Header=sub"), ("GATEHOUSE_CLAIM_HEADERS", "X-A=org..id"), ("GATEHOUSE_FORWARD_TOKEN", "maybe"),
        ("GATEHOUSE_TOKEN_CACHE_SIZE", "-1"), ("GATEHOUSE_JWKS_URL", "http://auth:3000"), ("GATEHOUSE_AUTH", "none"),
        ("GATEHOUSE_TOKEN_QUERY_PARAM", "a&b"), ("GATEHOUSE_MAX_TOKEN_BYTES", "1MiB"),
    ])
    func malformedValuesAreRejected(_ name: String, _ value: String) {
        guard case .failure(let error) = load(["BETTER_AUTH_URL": "https://app.example.com", name: value]) else {
            Issue.record("\(name)=\(value) was accepted")
            return
        }
        #expect(error.problems.map(\.variable).contains(name))
    }
}

/// Which credential counts when Better Auth sessions are on (`TokenSources` with sessions).
@Suite struct SessionSourcesTests {
    var sources: TokenSources {
        var sources = TokenSources(cookie: nil, queryParameter: "access_token")
        sources.sessionCookie = "better-auth.session_token"
        sources.sessionBearer = true
        return sources
    }

    func find(_ pairs: [(String, String)], target: String = "/x", _ sources: TokenSources? = nil) -> TokenSources.Found {
        var fields = HTTPFields()
        for (name, value) in pairs { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return (sources ?? self.sources).find(in: fields, target: target).token
    }

    @Test func theSessionCookieCountsWhenNothingElseIsSent() {
        #expect(find([("Cookie", "a=1; better-auth.session_token=abc.def")]) == .session(.init(kind: .cookie, value: "abc.def")))
    }

    @Test func anAuthorizationHeaderDecidesAlone() {
        let cookie = ("Cookie", "better-auth.session_token=abc.def")
        #expect(find([("Authorization", "Bearer h.p.s"), cookie]) == .token("h.p.s"))
        #expect(find([("Authorization", "Bearer abc.def"), cookie]) == .session(.init(kind: .bearer, value: "abc.def")))
        #expect(find([("Authorization", "Bearer rawtoken"), cookie]) == .session(.init(kind: .bearer, value: "rawtoken")))
        // Another scheme: no credential at all, and still not the cookie.
        #expect(find([("Authorization", "Basic dXNlcjpwdw=="), cookie]) == .none)
    }

    @Test func aJWTInTheQueryHidesTheSessionCookie() {
        #expect(find([("Cookie", "better-auth.session_token=abc.def")], target: "/x?access_token=h.p.s") == .token("h.p.s"))
        #expect(find([("Authorization", "Bearer abc.def")], target: "/x?access_token=h.p.s") == .conflicting)
    }

    @Test func twoSessionCookiesAreAmbiguous() {
        #expect(find([("Cookie", "better-auth.session_token=a.b; better-auth.session_token=c.d")]) == .conflicting)
    }

    @Test func withoutBearerSessionsABearerIsAlwaysAJWT() {
        var jwtOnly = sources
        jwtOnly.sessionBearer = false
        #expect(find([("Authorization", "Bearer abc.def")], jwtOnly) == .token("abc.def"))
        jwtOnly.sessionCookie = nil
        #expect(find([("Cookie", "better-auth.session_token=abc.def")], jwtOnly) == .none)
    }
}

@Suite struct SessionConfigurationTests {
    let base = ["GATEHOUSE_UPSTREAM": "http://127.0.0.1:8000"]

    func load(_ extra: [String: String]) -> Result<GatehouseConfiguration, ConfigurationError> {
        GatehouseConfiguration.load(environment: base.merging(extra) { $1 })
    }

    @Test func theCookieNameFollowsTheScheme() throws {
        let dev = try #require(try load(["BETTER_AUTH_URL": "http://localhost:3000", "GATEHOUSE_SESSIONS": "both"]).get().sessions)
        #expect(dev.cookieName == "better-auth.session_token")
        #expect(dev.lookupOrigin + dev.lookupTarget == "http://localhost:3000/api/auth/get-session")
        let production = try #require(try load(["BETTER_AUTH_URL": "https://app.example.com", "GATEHOUSE_SESSIONS": "cookie"]).get().sessions)
        #expect(production.cookieName == "__Secure-better-auth.session_token")
        #expect(production.acceptsCookie && !production.acceptsBearer)
        let prefixed = try #require(try load([
            "BETTER_AUTH_URL": "https://app.example.com", "GATEHOUSE_SESSIONS": "bearer", "GATEHOUSE_SESSION_COOKIE_PREFIX": "myapp",
        ]).get().sessions)
        #expect(prefixed.cookieName == "__Secure-myapp.session_token")
        let named = try #require(try load([
            "BETTER_AUTH_URL": "https://app.example.com", "GATEHOUSE_SESSIONS": "both", "GATEHOUSE_SESSION_COOKIE": "sid",
        ]).get().sessions)
        #expect(named.cookieName == "sid")
    }

    @Test func trustedOriginsDefaultToBetterAuthAndCORSOrigins() throws {
        let sessions = try #require(try load([
            "BETTER_AUTH_URL": "https://app.example.com", "GATEHOUSE_SESSIONS": "both",
            "GATEHOUSE_CORS_ALLOW_ORIGINS": "https://admin.example.com",
        ]).get().sessions)
        #expect(sessions.trustedOrigins.trusts("https://app.example.com"))
        #expect(sessions.trustedOrigins.trusts("https://admin.example.com"))
        #expect(!sessions.trustedOrigins.trusts("https://evil.example.com"))
    }

    @Test func trustedOriginsAreNormalisedLikeTheOriginsBrowsersSend() throws {
        let explicit = try #require(try load([
            "BETTER_AUTH_URL": "https://app.example.com:443", "GATEHOUSE_SESSIONS": "both",
            "GATEHOUSE_TRUSTED_ORIGINS": "https://app.example.com:443,https://admin.example.com/,*.example.org",
        ]).get().sessions)
        #expect(explicit.trustedOrigins.trusts("https://app.example.com"))
        #expect(explicit.trustedOrigins.trusts("https://admin.example.com"))
        #expect(explicit.trustedOrigins.trusts("https://a.example.org"))
        // A host pattern covers the host as Better Auth's URL.host does: a port is part of it.
        #expect(!explicit.trustedOrigins.trusts("http://a.example.org:9999"))
        let byDefault = try #require(try load(["BETTER_AUTH_URL": "https://app.example.com:443", "GATEHOUSE_SESSIONS": "both"]).get().sessions)
        #expect(byDefault.trustedOrigins.trusts("https://app.example.com"))
    }

    @Test(arguments: ["X-Auth-Method=role", "X-User-Id=sub,x-user-id=email", "X-Gatehouse-Signature=sub"])
    func claimHeadersMayNotRepeatOrTakeGatehousesOwnNames(_ value: String) {
        guard case .failure(let error) = load(["BETTER_AUTH_URL": "https://app.example.com", "GATEHOUSE_CLAIM_HEADERS": value]) else {
            Issue.record("\(value) accepted")
            return
        }
        #expect(error.problems.map(\.variable) == ["GATEHOUSE_CLAIM_HEADERS"])
    }

    @Test func sessionsAreOffByDefaultAndNeedAuthentication() throws {
        #expect(try load(["BETTER_AUTH_URL": "https://app.example.com"]).get().sessions == nil)
        guard case .failure(let error) = load(["GATEHOUSE_AUTH": "off", "GATEHOUSE_SESSIONS": "both"]) else {
            Issue.record("sessions without authentication must be refused")
            return
        }
        #expect(error.problems.map(\.variable).contains("GATEHOUSE_SESSIONS"))
    }

    @Test(arguments: [
        ("GATEHOUSE_SESSIONS", "yes"), ("GATEHOUSE_SESSION_TIMEOUT", "0s"), ("GATEHOUSE_SESSION_MAX_LOOKUPS", "0"),
        ("GATEHOUSE_TRUSTED_ORIGINS", "*"), ("GATEHOUSE_TRUSTED_ORIGINS", "app.example.com"), ("GATEHOUSE_SESSION_COOKIE", "a b"),
    ])
    func badValuesAreNamed(_ name: String, _ value: String) {
        var environment = ["BETTER_AUTH_URL": "https://app.example.com", "GATEHOUSE_SESSIONS": "both"]
        environment[name] = value
        guard case .failure(let error) = load(environment) else {
            Issue.record("\(name)=\(value) accepted")
            return
        }
        #expect(error.problems.map(\.variable) == [name])
    }
}
