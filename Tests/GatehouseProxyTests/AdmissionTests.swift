import HTTPTypes
import JOSE
import Testing

@testable import GatehouseProxy

/// `Admission.decide` with a stand-in verifier: tokens are "good-admin", "good-user" or anything
/// else (refused as expired).
@Suite struct AdmissionTests {
    let policy = RoutePolicy(
        rules: try! RoutePolicy.parseRules("/admin/** role=admin"),
        optionalPaths: try! RoutePolicy.parsePatterns("/items/**"),
        publicPaths: try! RoutePolicy.parsePatterns("/health"))

    static func verify(_ credential: Admission.Credential) -> Admission.Verdict {
        let token: Substring
        switch credential {
        case .jwt(let jwt): token = jwt
        case .session(let session): token = session.value == Self.liveSession ? "good-user" : "bad"
        }
        switch token {
        case "good-admin": return .allowed(identity: [("X-User-Id", "a1")], sub: "a1", claims: ["role": .string("admin")])
        case "good-user": return .allowed(identity: [("X-User-Id", "u1")], sub: "u1", claims: ["role": .string("user")])
        default: return .refused(.invalidToken("expired"), reason: "expired")
        }
    }

    func admit(
        _ method: String, _ target: String, token: TokenSources.Found = .none, headers: [(String, String)] = [],
        cors: CORSPolicy = CORSPolicy(), auth: Bool = true, sessions: SessionPolicy? = nil
    ) -> Admission {
        var fields = HTTPFields()
        for (name, value) in headers { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        var verify: ((Admission.Credential) -> Admission.Verdict)? = nil
        if auth { verify = { credential in Self.verify(credential) } }
        return Admission.decide(
            method: method, target: target, headers: fields, token: token, policy: policy, cors: cors, sessions: sessions,
            verify: verify)
    }

    /// A value of Better Auth's signed-cookie shape, URL-encoded.
    static let liveSession: Substring = "AbCdEfGhIjKlMnOpQrStUvWxYz012345.abcdefghijklmnopqrstuvwxyz0123456789%2B%2FABCDE%3D"

    static let sessions = SessionPolicy(
        acceptsCookie: true, acceptsBearer: true, cookieName: "better-auth.session_token", lookupOrigin: "http://auth",
        lookupTarget: "/api/auth/get-session", timeout: .seconds(2), maxLookups: 64, cacheTTL: .seconds(30),
        negativeTTL: .seconds(60), cacheSize: 100, trustedOrigins: try! TrustedOrigins.parse("https://app.example.com,https://*.example.org"),
        trustedOriginsText: "")

    @Test func sessionCookieWritesNeedATrustedOrigin() {
        let cookie = TokenSources.Found.session(.init(kind: .cookie, value: Self.liveSession))
        // Reads need no origin.
        #expect(summary(admit("GET", "/x", token: cookie, sessions: Self.sessions)) == ("protected", 0, "u1", "allowed", "allowed"))
        // A write without Origin or Referer, or from another site, is refused before any lookup.
        #expect(summary(admit("POST", "/x", token: cookie, sessions: Self.sessions)).1 == 403)
        #expect(summary(admit("DELETE", "/x", token: cookie, headers: [("Origin", "https://evil.example.com")], sessions: Self.sessions)).1 == 403)
        #expect(summary(admit("POST", "/x", token: cookie, headers: [("Origin", "null")], sessions: Self.sessions)).1 == 403)
        #expect(summary(admit("POST", "/x", token: cookie, headers: [("Origin", "https://a.b.example.org")], sessions: Self.sessions)).1 == 403)
        // Trusted: exact origin (case and default port do not matter), a pattern, a Referer.
        #expect(summary(admit("POST", "/x", token: cookie, headers: [("Origin", "https://APP.example.com:443")], sessions: Self.sessions)).1 == 0)
        #expect(summary(admit("PUT", "/x", token: cookie, headers: [("Origin", "https://eu.example.org")], sessions: Self.sessions)).1 == 0)
        #expect(summary(admit("PATCH", "/x", token: cookie, headers: [("Referer", "https://app.example.com/page?q=1")], sessions: Self.sessions)).1 == 0)
        // Origin decides when present, even beside a trusted Referer.
        #expect(summary(admit("POST", "/x", token: cookie, headers: [("Origin", "https://evil.test"), ("Referer", "https://app.example.com/")], sessions: Self.sessions)).1 == 403)
        // A WebSocket handshake is a GET but needs the origin too (cross-site WebSocket hijacking).
        let upgrade = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
        #expect(summary(admit("GET", "/ws", token: cookie, headers: upgrade, sessions: Self.sessions)).1 == 403)
        #expect(summary(admit("GET", "/ws", token: cookie, headers: upgrade + [("Origin", "https://app.example.com")], sessions: Self.sessions)).1 == 0)
        let refused = admit("POST", "/x", token: cookie, sessions: Self.sessions)
        #expect(refused.authMethod == "session")
        if case .refuse(let response, _) = refused.outcome { #expect(response.detail == "Cross-site request refused") }
    }

    @Test func bearerSessionWritesAreExemptFromTheOriginCheck() {
        let bearer = TokenSources.Found.session(.init(kind: .bearer, value: Self.liveSession))
        let admission = admit("POST", "/x", token: bearer, sessions: Self.sessions)
        #expect(summary(admission) == ("protected", 0, "u1", "allowed", "allowed"))
        #expect(admission.authMethod == "session")
        #expect(admit("GET", "/x", token: .token("good-user")).authMethod == "jwt")
    }

    @Test func badlyShapedSessionIsRefusedWithoutAVerdict() {
        for value in ["short", String(Self.liveSession) + "x", String(repeating: "A", count: 300)] {
            let cookie = TokenSources.Found.session(.init(kind: .cookie, value: Substring(value)))
            // Without the shape check the stand-in verifier would answer "expired".
            #expect(summary(admit("GET", "/x", token: cookie, sessions: Self.sessions)) == ("protected", 401, nil, "invalid_token", "malformed"))
        }
    }

    /// (route class, status or 0 when forwarded, user, auth log, metric reason)
    func summary(_ admission: Admission) -> (String, Int, String?, String?, String?) {
        switch admission.outcome {
        case .forward(_, let user): return (admission.routeClass, 0, user, admission.authLog, admission.authDecision)
        case .refuse(let response, let reason):
            #expect(admission.authDecision == nil || admission.authDecision == reason)
            return (admission.routeClass, response.status.code, admission.forbiddenUser, admission.authLog, admission.authDecision)
        }
    }

    @Test func publicPathNeedsNoToken() {
        #expect(summary(admit("GET", "/health")) == ("public", 0, nil, nil, nil))
        // a token on a public path is not even looked at
        #expect(summary(admit("GET", "/health", token: .token("junk"))) == ("public", 0, nil, nil, nil))
    }

    @Test func optionalPath() {
        #expect(summary(admit("GET", "/items/1")) == ("optional", 0, nil, "anonymous", nil))
        #expect(summary(admit("GET", "/items/1", token: .token("good-user"))) == ("optional", 0, "u1", "allowed", "allowed"))
        #expect(summary(admit("GET", "/items/1", token: .token("bad"))) == ("optional", 401, nil, "invalid_token", "expired"))
        #expect(summary(admit("GET", "/items/1", token: .conflicting)) == ("optional", 400, nil, "invalid_request", "invalid_request"))
    }

    @Test func protectedPaths() {
        #expect(summary(admit("GET", "/other")) == ("protected", 401, nil, "missing", "missing"))
        #expect(summary(admit("GET", "/other", token: .token("good-user"))) == ("protected", 0, "u1", "allowed", "allowed"))
        #expect(summary(admit("GET", "/admin/x", token: .token("good-admin"))) == ("protected", 0, "a1", "allowed", "allowed"))
        #expect(summary(admit("GET", "/admin/x", token: .token("bad"))) == ("protected", 401, nil, "invalid_token", "expired"))
    }

    @Test func failingARuleIs403InsufficientScope() {
        let admission = admit("GET", "/admin/x", token: .token("good-user"))
        #expect(summary(admission) == ("protected", 403, "u1", "forbidden", "forbidden"))  // the log names who was refused
        guard case .refuse(let response, _) = admission.outcome else { return }
        #expect(response.detail == "Forbidden")
        #expect(response.headers.first { $0.name == .wwwAuthenticate }?.value == #"Bearer realm="gatehouse", error="insufficient_scope""#)
    }

    @Test func ambiguousPathIs400() {
        let admission = admit("GET", "/admin/%2e%2e/x", token: .token("good-user"))
        #expect(summary(admission) == ("invalid_path", 400, nil, nil, nil))
    }

    @Test func preflights() {
        let preflight = [("Origin", "https://app.example.com"), ("Access-Control-Request-Method", "DELETE")]
        #expect(summary(admit("OPTIONS", "/admin/x", headers: preflight)) == ("preflight", 0, nil, nil, nil))
        let reject = CORSPolicy(preflight: .reject)
        let rejected = admit("OPTIONS", "/admin/x", headers: preflight, cors: reject)
        #expect(summary(rejected) == ("preflight", 403, nil, nil, nil))
        // with a token it is no preflight: verified (and held to the rule) like any request
        #expect(summary(admit("OPTIONS", "/admin/x", token: .token("good-user"), headers: preflight))
            == ("protected", 403, "u1", "forbidden", "forbidden"))
        // a preflight's path is checked like any other; one with content is no preflight
        #expect(summary(admit("OPTIONS", "/public/../admin/x", headers: preflight)) == ("invalid_path", 400, nil, nil, nil))
        #expect(summary(admit("OPTIONS", "/admin/x", headers: preflight + [("Content-Length", "13")]))
            == ("protected", 401, nil, "missing", "missing"))
        #expect(summary(admit("OPTIONS", "/admin/x", headers: preflight + [("Transfer-Encoding", "chunked")]))
            == ("protected", 401, nil, "missing", "missing"))
        #expect(summary(admit("OPTIONS", "/admin/x", headers: preflight + [("Content-Length", "0")])) == ("preflight", 0, nil, nil, nil))
        // OPTIONS without Access-Control-Request-Method is an ordinary request
        #expect(summary(admit("OPTIONS", "/admin/x", headers: [("Origin", "https://app.example.com")]))
            == ("protected", 401, nil, "missing", "missing"))
    }

    @Test func authOffForwardsEverything() {
        #expect(summary(admit("GET", "/admin/x", auth: false)) == ("unauthenticated", 0, nil, nil, nil))
        #expect(summary(admit("GET", "//odd/../path", auth: false)) == ("unauthenticated", 0, nil, nil, nil))
    }
}
