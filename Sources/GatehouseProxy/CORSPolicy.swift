import GatehouseUpstream
import HTTPTypes

/// CORS for gatehouse's *own* responses, and what happens to browser preflights.
///
/// FastAPI's `CORSMiddleware` owns CORS for everything it answers; gatehouse relays those
/// headers untouched. But a 401 from gatehouse without `Access-Control-Allow-Origin` is, to a
/// script on another origin, an opaque network error (Fetch standard §4.9 "CORS check"): the
/// front end cannot tell "log in again" from "server down". With `GATEHOUSE_CORS_ALLOW_ORIGINS`
/// gatehouse's answers (400, 401, 403, 502, 503, 504) carry the same permission FastAPI would
/// have given, and expose `WWW-Authenticate`, `X-Request-Id` and `Retry-After` to the script
/// (Fetch §3.2.6: only CORS-safelisted response headers are readable otherwise).
///
/// **Preflights** (Fetch §3.2.2: `OPTIONS` with `Origin` and `Access-Control-Request-Method`)
/// never carry credentials, so they cannot pass token verification. `forward` (default) sends
/// them to FastAPI untouched, whose `CORSMiddleware` answers them without running any route;
/// `reject` answers 403 with no `Access-Control-*` headers, which makes the browser abandon the
/// real request. An `OPTIONS` that does carry a token is not a preflight and is verified normally.
struct CORSPolicy: Sendable, Equatable {
    enum AllowedOrigins: Sendable, Equatable {
        case none
        /// `*`: any origin, without credentials.
        case any
        /// Serialised origins (`https://app.example.com`, lower case), compared exactly.
        case list(Set<String>)
    }

    enum Preflight: String, Sendable {
        case forward, reject
    }

    var allowedOrigins: AllowedOrigins = .none
    var allowCredentials = false
    var preflight: Preflight = .forward

    static let exposedHeaders = "WWW-Authenticate, X-Request-Id, Retry-After"

    /// Whether a request is a CORS preflight (Fetch §3.2.2), judged on its head only.
    static func isPreflight(method: String, headers: HTTPFields) -> Bool {
        method == "OPTIONS" && headers[.origin] != nil && headers[.accessControlRequestMethod] != nil
    }

    /// The CORS fields for one of gatehouse's own answers to a request with `origin` (its
    /// `Origin` header, if any). An origin not on the list gets no permission, never a reflection.
    func responseFields(origin: String?) -> [HTTPField] {
        var fields: [HTTPField] = []
        switch allowedOrigins {
        case .none:
            return []
        case .any:
            // `*` does not depend on the request, so no `Vary`.
            guard origin != nil else { return [] }
            fields.append(HTTPField(name: .accessControlAllowOrigin, value: "*"))
        case .list(let origins):
            // The answer differs by Origin, so caches must key on it (Fetch §3.2.5 / CORS and HTTP caches).
            fields.append(HTTPField(name: .vary, value: "Origin"))
            guard let origin, origins.contains(origin) else { return fields }
            fields.append(HTTPField(name: .accessControlAllowOrigin, value: origin))
            if allowCredentials { fields.append(HTTPField(name: .accessControlAllowCredentials, value: "true")) }
        }
        fields.append(HTTPField(name: .accessControlExposeHeaders, value: Self.exposedHeaders))
        return fields
    }

    // MARK: Configuration syntax

    static let originsExpected =
        "* or a comma list of origins such as https://app.example.com,http://localhost:3000 (scheme://host[:port], no path)"

    static func parseOrigins(_ text: String) throws(ConfigurationValueError) -> AllowedOrigins {
        let items = text.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        if items.isEmpty { return .none }
        if items == ["*"] { return .any }
        var origins: Set<String> = []
        for item in items {
            guard let origin = serialisedOrigin(item) else {
                throw ConfigurationValueError(offending: item, reason: "not an origin")
            }
            origins.insert(origin)
        }
        return .list(origins)
    }

    /// `scheme://host[:port]` in the lower case browsers send (RFC 6454 §6.2), or nil. `null`
    /// (sandboxed and file documents) is never an origin one can allow.
    static func serialisedOrigin(_ text: String) -> String? {
        guard let separator = text.firstRange(of: "://") else { return nil }
        let scheme = text[..<separator.lowerBound]
        let authority = text[separator.upperBound...]
        guard let first = scheme.first, first.isASCII, first.isLetter,
            scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }),
            !authority.isEmpty,
            authority.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:[]".contains($0)) })
        else { return nil }
        return text.lowercased()
    }
}
