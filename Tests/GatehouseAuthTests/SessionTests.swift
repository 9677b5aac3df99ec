import JOSE
import Testing

@testable import GatehouseAuth

/// Better Auth session credentials: shape, cookie name, get-session answers, the verdict cache.
@Suite struct SessionCredentialTests {
    static let token = "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    /// 43 base64 characters and `=`: the length of a SHA-256 in standard base64.
    static let signature = "abcdefghijklmnopqrstuvwxyz0123456789+/ABCDE="
    static let encoded = token + "." + "abcdefghijklmnopqrstuvwxyz0123456789%2B%2FABCDE%3D"

    @Test func signedValuesEncodedOrNotHaveTheShape() {
        #expect(SessionCredential(kind: .cookie, value: Substring(Self.encoded)).isWellShaped)
        #expect(SessionCredential(kind: .cookie, value: Substring(Self.token + "." + Self.signature)).isWellShaped)
        #expect(SessionCredential(kind: .bearer, value: Substring(Self.encoded)).isWellShaped)
    }

    @Test func aBareTokenIsABearerShapeOnly() {
        #expect(SessionCredential(kind: .bearer, value: Substring(Self.token)).isWellShaped)
        #expect(!SessionCredential(kind: .cookie, value: Substring(Self.token)).isWellShaped)
    }

    static let malformed: [String] = {
        let t = token
        let sig = signature
        var values: [String] = ["", "x", "a.b.c"]
        values.append(String(t.dropLast()) + "." + sig)  // token one short
        values.append(t + "." + String(sig.dropLast()))  // no padding
        values.append(String(t.dropLast()) + "-." + sig)  // a character outside the alphabet
        values.append(t + "." + String(sig.map { $0 == "+" ? "-" : $0 }))  // base64url, not base64
        values.append(t + "." + sig + "x")
        values.append(t + ".." + sig)
        values.append(t + "%2" + sig)  // broken escape
        values.append(t + "." + String(repeating: "%41", count: 80))  // over-long
        return values
    }()

    @Test(arguments: malformed)
    func otherValuesDoNot(_ value: String) {
        #expect(!SessionCredential(kind: .cookie, value: Substring(value)).isWellShaped)
        #expect(!SessionCredential(kind: .bearer, value: Substring(value)).isWellShaped)
    }

    @Test func cookieNameFollowsBetterAuth() {
        #expect(SessionCredential.cookieName(prefix: "better-auth", secure: false) == "better-auth.session_token")
        #expect(SessionCredential.cookieName(prefix: "better-auth", secure: true) == "__Secure-better-auth.session_token")
        #expect(SessionCredential.cookieName(prefix: "myapp", secure: true) == "__Secure-myapp.session_token")
    }

    @Test func theDigestSeparatesCookieFromBearerAndValues() {
        let a = SessionCredential(kind: .cookie, value: Substring(Self.encoded))
        #expect(a.digest == SessionCredential(kind: .cookie, value: Substring(Self.encoded)).digest)
        #expect(a.digest != SessionCredential(kind: .bearer, value: Substring(Self.encoded)).digest)
        #expect(a.digest != SessionCredential(kind: .cookie, value: Substring(Self.token)).digest)
    }
}

@Suite struct BetterAuthSessionTests {
    let settings = AuthSettings(
        jwksOrigin: "http://auth", jwksTarget: "/api/auth/jwks",
        verifier: .init(algorithms: [.EdDSA], issuer: "http://auth", audiences: ["http://auth"], clockSkew: 0, maxTokenBytes: 16384),
        claimHeaders: [.init(header: "X-User-Id", path: ["sub"]), .init(header: "X-Role", path: ["role"])],
        claimsHeader: "X-Auth-Claims", userAgent: "test")
    let now = 1_790_000_000.0

    func answer(expiresAt: String = "2027-01-15T08:00:00.000Z") -> [UInt8] {
        Array(#"""
        {"session":{"id":"sess-1","token":"SECRETTOKENSECRETTOKENSECRETTOKE","userId":"u1","expiresAt":"\#(expiresAt)",
        "createdAt":"2026-12-01T00:00:00.000Z","updatedAt":"2026-12-01T00:00:00.000Z","ipAddress":"10.0.0.1","userAgent":"x"},
        "user":{"id":"u1","name":"Ada","email":"ada@example.com","emailVerified":true,"image":null,
        "createdAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:00.000Z","role":"admin"}}
        """#.utf8)
    }

    @Test func aSessionBecomesClaimsInTheJWTPluginShapeWithoutTheToken() throws {
        guard case .live(let identity) = BetterAuthSession.verdict(status: 200, body: answer(), now: now, settings: settings) else {
            Issue.record("expected a live session")
            return
        }
        #expect(identity.sub == "u1")
        #expect(identity.claims["sub"] == .string("u1"))
        #expect(identity.claims["sid"] == .string("sess-1"))
        #expect(identity.claims["exp"] == .int(1_800_000_000))  // 2027-01-15T08:00:00Z
        #expect(identity.claims["role"] == .string("admin"))
        #expect(identity.claims["email"] == .string("ada@example.com"))
        #expect(identity.claims["token"] == nil)
        let headers = Dictionary(uniqueKeysWithValues: identity.identityHeaders.map { ($0.name, $0.value) })
        #expect(headers["X-User-Id"] == "u1")
        #expect(headers["X-Role"] == "admin")
        #expect(headers["X-Auth-Method"] == "session")
        let claimsText = try #require(headers["X-Auth-Claims"])
        let claimsJSON = try #require(Base64URL.decode(claimsText))
        let text = String(decoding: claimsJSON, as: UTF8.self)
        #expect(!text.contains("SECRETTOKEN"))
        guard case .success(.object(let decoded)) = JSONParser.parse(claimsJSON) else {
            Issue.record("claims header is not JSON")
            return
        }
        #expect(Set(decoded.keys) == ["id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt", "role", "sub", "sid", "exp"])
    }

    @Test func identityValuesLoseTheSpacesAroundThemAsHTTPServersDo() {
        let claims: JWTClaims = ["sub": .string(" u1  "), "role": .string("a b")]
        let headers = settings.identityHeaders(claims: claims, payloadBase64URL: "x", method: "session")
        #expect(headers.first { $0.name == "X-User-Id" }?.value == "u1")
        #expect(headers.first { $0.name == "X-Role" }?.value == "a b")
        let blank = settings.identityHeaders(claims: ["sub": .string("  ")], payloadBase64URL: "x", method: "jwt")
        #expect(!blank.contains { $0.name == "X-User-Id" })
    }

    @Test func nullIsNotFoundOnBothBranches() {
        #expect(BetterAuthSession.verdict(status: 200, body: Array("null".utf8), now: now, settings: settings).label == "not_found")
        #expect(BetterAuthSession.verdict(status: 401, body: Array("null".utf8), now: now, settings: settings).label == "not_found")
    }

    @Test func aPastExpiryIsExpired() {
        #expect(BetterAuthSession.verdict(status: 200, body: answer(expiresAt: "2020-01-01T00:00:00.000Z"), now: now, settings: settings).label == "expired")
    }

    @Test(arguments: [
        (200, "<html>oops</html>"), (500, "null"), (502, ""), (200, "{}"), (200, #"{"session":{},"user":{}}"#),
        (200, #"{"session":{"id":"s","expiresAt":"tomorrow"},"user":{"id":"u"}}"#), (401, #"{"session":{"id":"s"},"user":{"id":"u"}}"#),
        (302, "null"),
    ])
    func anythingElseIsUnavailableNeverNotFound(_ status: Int, _ body: String) {
        #expect(BetterAuthSession.verdict(status: status, body: Array(body.utf8), now: now, settings: settings).label == "unavailable")
    }

    @Test func datesAsJavaScriptWritesThem() {
        #expect(BetterAuthSession.parseDate("1970-01-01T00:00:00.000Z") == 0)
        #expect(BetterAuthSession.parseDate("2026-12-02T13:24:09.500Z") == 1_796_217_849.5)
        #expect(BetterAuthSession.parseDate("2026-12-02T13:24:09Z") == 1_796_217_849)
        for bad in ["2026-12-02", "2026-12-02T13:24:09.000", "2026-13-02T13:24:09.000Z", "2026-12-02T13:24:09.000+01:00", "x"] {
            #expect(BetterAuthSession.parseDate(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct SessionCacheTests {
    let digest = SessionCredential(kind: .cookie, value: "a").digest
    let other = SessionCredential(kind: .cookie, value: "b").digest
    let live = SessionVerdict.live(SessionIdentity(identityHeaders: [], sub: "u1", claims: [:], expiresAt: 1_000))

    func cache(maxLookups: Int = 64) -> SessionCache {
        SessionCache(capacity: 10, ttl: 30, negativeTTL: 60, maxLookups: maxLookups)
    }

    func label(_ begin: SessionCache.Begin) -> String {
        switch begin {
        case .decided(let verdict, let cached): "\(verdict.label)\(cached ? " cached" : "")"
        case .lookUp: "lookUp"
        case .joined: "joined"
        }
    }

    @Test func concurrentRequestsShareOneLookupAndAllHearTheVerdict() {
        let cache = cache()
        let first = SessionCache.Waiter(worker: 0, connection: 1)
        let second = SessionCache.Waiter(worker: 1, connection: 7)
        #expect(label(cache.begin(digest, now: 100, waiter: first)) == "lookUp")
        #expect(label(cache.begin(digest, now: 100, waiter: second)) == "joined")
        #expect(label(cache.begin(other, now: 100, waiter: second)) == "lookUp")
        #expect(cache.finish(digest, verdict: live, now: 101) == [first, second])
        #expect(label(cache.begin(digest, now: 102, waiter: first)) == "found cached")
        #expect(cache.lookupsInFlight == 1)
    }

    @Test func aLiveSessionIsKeptForTheTTLButNeverPastItsExpiry() {
        let cache = cache()
        let waiter = SessionCache.Waiter(worker: 0, connection: 1)
        _ = cache.begin(digest, now: 100, waiter: waiter)
        _ = cache.finish(digest, verdict: live, now: 100)
        #expect(label(cache.begin(digest, now: 129, waiter: waiter)) == "found cached")
        #expect(label(cache.begin(digest, now: 130.5, waiter: waiter)) == "lookUp")
        // Expiring at 1000: kept only until then, although the TTL would reach 1010.
        _ = cache.finish(digest, verdict: live, now: 980)
        #expect(label(cache.begin(digest, now: 999, waiter: waiter)) == "found cached")
        #expect(label(cache.begin(digest, now: 1_000, waiter: waiter)) == "lookUp")
    }

    @Test func unknownSessionsAreKeptForTheNegativeTTLAndOutagesNotAtAll() {
        let cache = cache()
        let waiter = SessionCache.Waiter(worker: 0, connection: 1)
        _ = cache.begin(digest, now: 100, waiter: waiter)
        _ = cache.finish(digest, verdict: .notFound, now: 100)
        #expect(label(cache.begin(digest, now: 159, waiter: waiter)) == "not_found cached")
        #expect(label(cache.begin(digest, now: 160, waiter: waiter)) == "lookUp")
        _ = cache.finish(digest, verdict: .unavailable, now: 160)
        #expect(label(cache.begin(digest, now: 160, waiter: waiter)) == "lookUp")
    }

    @Test func lookupsPastTheLimitAreOverloadedWhileJoiningStillWorks() {
        let cache = cache(maxLookups: 1)
        let waiter = SessionCache.Waiter(worker: 0, connection: 1)
        #expect(label(cache.begin(digest, now: 100, waiter: waiter)) == "lookUp")
        #expect(label(cache.begin(other, now: 100, waiter: waiter)) == "overloaded")
        #expect(label(cache.begin(digest, now: 100, waiter: waiter)) == "joined")
        _ = cache.finish(digest, verdict: .notFound, now: 100)
        #expect(label(cache.begin(other, now: 100, waiter: waiter)) == "lookUp")
    }

    @Test func theCacheIsBoundedLeastRecentlyUsedFirst() {
        let cache = SessionCache(capacity: 2, ttl: 30, negativeTTL: 60, maxLookups: 64)
        let waiter = SessionCache.Waiter(worker: 0, connection: 1)
        let digests = ["a", "b", "c"].map { SessionCredential(kind: .bearer, value: $0).digest }
        for d in digests.prefix(2) {
            _ = cache.begin(d, now: 100, waiter: waiter)
            _ = cache.finish(d, verdict: .notFound, now: 100)
        }
        _ = cache.begin(digests[0], now: 101, waiter: waiter)  // a is now the most recent
        _ = cache.begin(digests[2], now: 101, waiter: waiter)
        _ = cache.finish(digests[2], verdict: .notFound, now: 101)
        #expect(cache.count == 2)
        #expect(label(cache.begin(digests[1], now: 102, waiter: waiter)) == "lookUp")
        #expect(label(cache.begin(digests[0], now: 102, waiter: waiter)) == "not_found cached")
    }
}
