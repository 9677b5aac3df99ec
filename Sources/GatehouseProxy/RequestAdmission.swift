import GatehouseAuth
import HTTPTypes
import JOSE

/// Whether a request may go on to FastAPI, decided from its head alone: the one gate every
/// request passes — plain HTTP requests and WebSocket upgrades alike — so route rules, optional
/// authentication, preflight handling and token verification cannot differ between them.
struct Admission: Sendable {
    /// Metric and log label, from a fixed set: `public`, `optional`, `protected`, `preflight`,
    /// `invalid_path` (refused before classification), `unauthenticated` (`GATEHOUSE_AUTH=off`).
    var routeClass: String
    var outcome: Outcome
    /// The access log's `auth` field (`allowed`, `anonymous`, `missing`, `invalid_token`,
    /// `invalid_request`, `keys_unavailable`, `forbidden`); nil when no token decision was needed.
    var authLog: String?
    /// The `gatehouse_auth_decisions_total` reason (`allowed`, `missing`, `expired`, …,
    /// `forbidden`); nil when no token decision was made (public, anonymous, preflight, auth off).
    var authDecision: String?
    /// The verified `sub` when a valid token was refused by a rule (403), for the access log.
    var forbiddenUser: String?
    /// The access log's `auth_method` (`jwt`, `session`): which kind of credential decided.
    var authMethod: String?

    enum Outcome: Sendable {
        /// Forward, adding `identity` (empty when anonymous); `user` is the verified `sub`.
        case forward(identity: [(name: String, value: String)], user: String?)
        /// Answer `response` instead; `reason` from the metrics vocabulary (plus `invalid_path`
        /// and `preflight`).
        case refuse(ErrorResponse, reason: String)
    }

    /// What token verification said; the seam that keeps `decide` free of sockets and keys.
    enum Verdict: Sendable {
        case allowed(identity: [(name: String, value: String)], sub: String, claims: JWTClaims)
        case refused(ErrorResponse, reason: String)
    }

    /// The whole decision. `verify` is nil when verification is off (`GATEHOUSE_AUTH=off`).
    static func decide(
        method: String, target: String, headers: HTTPFields, token: TokenSources.Found, policy: RoutePolicy,
        cors: CORSPolicy, sessions: SessionPolicy? = nil, verify: ((Credential) -> Verdict)?
    ) -> Admission {
        switch classify(
            method: method, target: target, headers: headers, token: token, policy: policy, cors: cors,
            sessions: sessions, verifies: verify != nil)
        {
        case .decided(let admission):
            return admission
        case .verify(let pending):
            return pending.finish(verify!(pending.credential))
        }
    }

    /// What a request authenticates with.
    enum Credential: Equatable {
        case jwt(Substring)
        case session(SessionCredential)

        var method: String {
            switch self {
            case .jwt: "jwt"
            case .session: "session"
            }
        }
    }

    /// What `classify` leaves to do: the token's verdict, then the route's requirements.
    enum Step {
        case decided(Admission)
        case verify(PendingVerification)
    }

    /// A decision waiting only for the credential's verdict. The event-loop core gets a JWT's
    /// verdict synchronously from the token cache or the key set in hand, and parks the request
    /// only when an unknown `kid` needs a key fetch; a session's from the session cache, or
    /// after a lookup.
    struct PendingVerification {
        var credential: Credential
        var routeClass: String
        var requirements: [ClaimRequirement]

        func finish(_ verdict: Verdict) -> Admission {
            var admission: Admission
            switch verdict {
            case .refused(let response, let reason):
                admission = Admission.refused(response, reason, routeClass: routeClass)
            case .allowed(let identity, let sub, let claims):
                if requirements.allSatisfy({ $0.isSatisfied(by: claims) }) {
                    admission = Admission(
                        routeClass: routeClass, outcome: .forward(identity: identity, user: sub), authLog: "allowed",
                        authDecision: "allowed")
                } else {
                    admission = Admission.refused(.forbidden, "forbidden", routeClass: routeClass)
                    admission.forbiddenUser = sub
                }
            }
            admission.authMethod = credential.method
            return admission
        }
    }

    /// Everything decided from the head alone: the route, preflight handling, the token's
    /// presence. `verifies` is false when verification is off (`GATEHOUSE_AUTH=off`).
    static func classify(
        method: String, target: String, headers: HTTPFields, token: TokenSources.Found, policy: RoutePolicy,
        cors: CORSPolicy, sessions: SessionPolicy?, verifies: Bool
    ) -> Step {
        // Paths the router could read two ways are refused first, preflight or not.
        let route = verifies ? policy.decide(method: method, target: Substring(target)) : nil
        if case .invalidPath? = route {
            return .decided(Admission(routeClass: "invalid_path", outcome: .refuse(.invalidPath, reason: "invalid_path")))
        }
        // A preflight carries no credentials and no content (Fetch §4.8); one that does is an
        // ordinary OPTIONS request and is verified like any other.
        if token == .none, CORSPolicy.isPreflight(method: method, headers: headers), !headers.announceContent {
            switch cors.preflight {
            case .forward: return .decided(Admission(routeClass: "preflight", outcome: .forward(identity: [], user: nil)))
            case .reject:
                return .decided(Admission(routeClass: "preflight", outcome: .refuse(.preflightRejected, reason: "preflight")))
            }
        }
        guard let route else {
            return .decided(Admission(routeClass: "unauthenticated", outcome: .forward(identity: [], user: nil)))
        }

        let requirements: [ClaimRequirement]
        let routeClass: String
        switch route {
        case .invalidPath:
            return .decided(Admission(routeClass: "invalid_path", outcome: .refuse(.invalidPath, reason: "invalid_path")))
        case .publicRoute:
            return .decided(Admission(routeClass: "public", outcome: .forward(identity: [], user: nil)))
        case .optional:
            if token == .none {
                return .decided(
                    Admission(routeClass: "optional", outcome: .forward(identity: [], user: nil), authLog: "anonymous"))
            }
            (routeClass, requirements) = ("optional", [])
        case .protected(let required):
            (routeClass, requirements) = ("protected", required)
        }
        switch token {
        case .none: return .decided(refused(.notAuthenticated, "missing", routeClass: routeClass))
        case .conflicting: return .decided(refused(.tokenSentTwice, "invalid_request", routeClass: routeClass))
        case .token(let token):
            return .verify(PendingVerification(credential: .jwt(token), routeClass: routeClass, requirements: requirements))
        case .session(let credential):
            // Before any lookup: a cross-site write costs Better Auth nothing, and a value that
            // cannot be a session token is refused on its shape alone.
            if credential.kind == .cookie, let sessions, !sessions.crossSiteCheckPasses(method: method, headers: headers) {
                var admission = refused(.crossSiteRefused, "cross_site", routeClass: routeClass)
                admission.authMethod = "session"
                return .decided(admission)
            }
            guard credential.isWellShaped else {
                var admission = refused(.invalidToken("malformed"), "malformed", routeClass: routeClass)
                admission.authMethod = "session"
                return .decided(admission)
            }
            return .verify(PendingVerification(credential: .session(credential), routeClass: routeClass, requirements: requirements))
        }
    }

    static func refused(_ response: ErrorResponse, _ reason: String, routeClass: String) -> Admission {
        let log = response.status == .unauthorized && reason != "missing" ? "invalid_token" : reason
        return Admission(routeClass: routeClass, outcome: .refuse(response, reason: reason), authLog: log, authDecision: reason)
    }
}

extension ForwardingRules {
    /// Writes a decision to the access-log entry (route class, auth result and reason, user)
    /// and counts it in `gatehouse_auth_decisions_total`.
    func record(_ admission: Admission, in entry: inout AccessLogEntry) {
        entry.routeClass = admission.routeClass
        entry.auth = admission.authLog
        if let decision = admission.authDecision {
            metrics.recordAuth(reason: decision)
            if decision != "allowed" { entry.authReason = decision }
        }
        if case .forward(_, let user) = admission.outcome { entry.user = user } else { entry.user = admission.forbiddenUser }
        entry.authMethod = admission.authMethod
    }

    /// The admission verdict for an authentication outcome, with the token-cache metrics.
    func verdict(for outcome: Authenticator.Outcome) -> Admission.Verdict {
        switch outcome {
        case .allowed(let headers, let sub, let claims, let cached):
            (cached ? metrics.tokenCacheHits : metrics.tokenCacheMisses).increment()
            return .allowed(identity: headers, sub: sub, claims: claims)
        case .rejected(let rejection):
            metrics.tokenCacheMisses.increment()
            return .refused(.invalidToken(rejection.rawValue), reason: rejection.code)
        case .keysUnavailable:
            return .refused(.keysUnavailable, reason: "keys_unavailable")
        }
    }

    /// The admission verdict for a session, with the session-cache metrics.
    func verdict(for session: SessionVerdict, cached: Bool) -> Admission.Verdict {
        if cached { metrics.sessionCacheHits.increment() }
        switch session {
        case .live(let identity):
            return .allowed(identity: identity.identityHeaders, sub: identity.sub, claims: identity.claims)
        case .notFound:
            return .refused(.invalidToken("session not found"), reason: "session_not_found")
        case .expired:
            return .refused(.invalidToken("session expired"), reason: "session_expired")
        case .unavailable, .overloaded:
            return .refused(.sessionServiceUnavailable, reason: "session_unavailable")
        }
    }
}
