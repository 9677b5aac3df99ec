import GatehouseAuth
import HTTPTypes

/// Better Auth sessions next to JWTs (`GATEHOUSE_SESSIONS`): which credentials count, where
/// they are looked up, how long verdicts are kept, and the cross-site check for cookies.
///
/// **Why a CSRF check.** A browser attaches the session cookie to every request to the API's
/// site, including a form POST another site makes it send. Better Auth's cookie is
/// `SameSite=Lax`, which stops cross-site POSTs from most browsers, but not from same-site
/// neighbours (another subdomain) or older browsers. So a cookie-authenticated request with
/// an unsafe method (RFC 9110 §9.2.1: anything but GET, HEAD, OPTIONS, TRACE) must show where
/// it comes from, the way Better Auth's own `originCheck` does: `Origin`, or `Referer` when
/// `Origin` is absent, naming a trusted origin. A bearer credential is exempt: no browser
/// attaches one on its own.
struct SessionPolicy: Sendable {
    var acceptsCookie: Bool
    var acceptsBearer: Bool
    var cookieName: String
    /// `GATEHOUSE_SESSION_URL`: get-session's origin and target.
    var lookupOrigin: String
    var lookupTarget: String
    var timeout: Duration
    var maxLookups: Int
    var cacheTTL: Duration
    var negativeTTL: Duration
    var cacheSize: Int
    var trustedOrigins: TrustedOrigins
    /// `GATEHOUSE_TRUSTED_ORIGINS` as given, or the default list, for `check-config`.
    var trustedOriginsText: String

    var modeText: String { acceptsCookie ? (acceptsBearer ? "both" : "cookie") : "bearer" }

    /// RFC 9110 §9.2.1 safe methods; anything else changes state and needs the CSRF check.
    static func isSafe(method: String) -> Bool {
        method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE"
    }

    /// Whether a cookie-authenticated request with `method` may go on (see the type's comment).
    /// A WebSocket handshake is a GET, but opens a two-way channel carrying the user's
    /// authority, and browsers send cookies on cross-site handshakes (cross-site WebSocket
    /// hijacking): it needs a trusted `Origin` too, which every browser sends on it (RFC 6455
    /// §4.1, item 8).
    func crossSiteCheckPasses(method: String, headers: HTTPFields) -> Bool {
        let upgrade = headers[values: .upgrade].contains { $0.lowercased().contains("websocket") }
        if Self.isSafe(method: method), !upgrade { return true }
        if let origin = headers[.origin] { return trustedOrigins.trusts(origin) }
        if let referer = headers[.referer], let origin = TrustedOrigins.origin(ofURL: referer) {
            return trustedOrigins.trusts(origin)
        }
        return false
    }
}

/// Origins trusted to make cookie-authenticated writes: serialised origins compared exactly
/// (both sides normalised: lower case, no default port, no path), and patterns with `*`, as
/// Better Auth's `trustedOrigins` are written: `https://*.example.com` is matched against the
/// whole origin, `*.example.com` against its host and port (`URL.host`, as Better Auth does).
/// A `*` stands for one or more characters other than `.` and `/` (one DNS label, or a port).
struct TrustedOrigins: Sendable, Equatable {
    var exact: Set<String> = []
    var patterns: [String] = []

    static let expected = "a comma list of origins (https://app.example.com) or patterns (https://*.example.com, *.example.com)"

    static func parse(_ text: String) throws(ConfigurationValueError) -> TrustedOrigins {
        var result = TrustedOrigins()
        for item in text.split(separator: ",").map({ $0.trimmingSpaces().lowercased() }) where !item.isEmpty {
            if item.contains("*") {
                guard item != "*", !item.contains("/") || item.contains("://"),
                    item.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:[]*/".contains($0)) })
                else { throw ConfigurationValueError(offending: item, reason: "not an origin pattern") }
                result.patterns.append(item)
            } else {
                guard let origin = origin(ofURL: item) else {
                    throw ConfigurationValueError(offending: item, reason: "not an origin")
                }
                result.exact.insert(origin)
            }
        }
        return result
    }

    /// Whether `origin` (an `Origin` header, or the origin of a `Referer`) is trusted. `null`
    /// (a sandboxed or file document) never is.
    func trusts(_ origin: String) -> Bool {
        guard let origin = Self.origin(ofURL: origin) else { return false }
        if exact.contains(origin) { return true }
        let host = origin.firstRange(of: "://").map { String(origin[$0.upperBound...]) } ?? origin
        for pattern in patterns {
            let subject = pattern.contains("://") ? origin : host
            if Self.glob(Array(pattern.utf8)[...], Array(subject.utf8)[...]) { return true }
        }
        return false
    }

    /// The serialised origin of an absolute http(s) URL (RFC 6454 §6.2): lower case, the
    /// default port dropped, no path. nil for anything else.
    static func origin(ofURL url: String) -> String? {
        guard let separator = url.firstRange(of: "://") else { return nil }
        let scheme = url[..<separator.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = url[separator.upperBound...]
        var authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }.lowercased()
        if authority.contains("@") { return nil }  // userinfo: not something a browser sends
        if scheme == "http", authority.hasSuffix(":80") { authority.removeLast(3) }
        if scheme == "https", authority.hasSuffix(":443") { authority.removeLast(4) }
        guard !authority.isEmpty else { return nil }
        return CORSPolicy.serialisedOrigin(scheme + "://" + authority)
    }

    private static func glob(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        guard let first = pattern.first else { return text.isEmpty }
        if first == UInt8(ascii: "*") {
            // One or more characters of a label.
            var rest = text
            while let byte = rest.first, byte != UInt8(ascii: "."), byte != UInt8(ascii: "/") {
                rest = rest.dropFirst()
                if glob(pattern.dropFirst(), rest) { return true }
            }
            return false
        }
        guard text.first == first else { return false }
        return glob(pattern.dropFirst(), text.dropFirst())
    }
}

extension HTTPField.Name {
    static let referer = HTTPField.Name("Referer")!
}

/// Reads the session variables (see `GatehouseConfiguration.reference`).
enum SessionConfigurationReader {
    static func read(_ reader: inout EnvironmentReader, corsOrigins: CORSPolicy.AllowedOrigins?) -> SessionPolicy?? {
        let mode = reader.value("GATEHOUSE_SESSIONS", default: "off", expected: "off, cookie, bearer or both") {
            ["off", "cookie", "bearer", "both"].contains($0.lowercased()) ? $0.lowercased() : nil
        }
        guard let mode else { return nil }
        let env = reader.environment
        if mode == "off" { return .some(nil) }
        let base = env["BETTER_AUTH_URL"].flatMap { $0.isEmpty ? nil : UpstreamURL.parse($0) }
        let prefix = reader.value("GATEHOUSE_SESSION_COOKIE_PREFIX", default: "better-auth", expected: "a cookie name prefix such as better-auth") {
            AuthConfigurationReader.isToken($0) ? $0 : nil
        }
        let secure = base?.origin.hasPrefix("https://") ?? false
        let cookie = reader.value("GATEHOUSE_SESSION_COOKIE", default: prefix.map { SessionCredential.cookieName(prefix: $0, secure: secure) } ?? "",
            expected: "a cookie name") { AuthConfigurationReader.isToken($0) ? $0 : nil }
        let url: UpstreamURL?
        if env["GATEHOUSE_SESSION_URL"] != nil || base == nil {
            url = reader.required("GATEHOUSE_SESSION_URL", expected: UpstreamURL.expected + " (or set BETTER_AUTH_URL)") {
                UpstreamURL.parse($0).flatMap { $0.pathPrefix.isEmpty || $0.unixSocketPath != nil ? nil : $0 }
            }
        } else {
            url = base.map { UpstreamURL(origin: $0.origin, pathPrefix: $0.pathPrefix + "/api/auth/get-session") }
        }
        let timeout = reader.positiveDuration("GATEHOUSE_SESSION_TIMEOUT", default: "2s")
        let maxLookups = reader.value("GATEHOUSE_SESSION_MAX_LOOKUPS", default: "64", expected: "a whole number from 1 to 10000") {
            Int($0).flatMap { (1...10_000).contains($0) ? $0 : nil }
        }
        let ttl = reader.positiveDuration("GATEHOUSE_SESSION_CACHE_TTL", default: "30s")
        let negativeTTL = reader.positiveDuration("GATEHOUSE_SESSION_NEGATIVE_TTL", default: "60s")
        let cacheSize = reader.value("GATEHOUSE_SESSION_CACHE_SIZE", default: "10000", expected: "a whole number from 1 to 1000000") {
            Int($0).flatMap { (1...1_000_000).contains($0) ? $0 : nil }
        }
        var defaultOrigins = base.map { [$0.origin] } ?? []
        if case .list(let list)? = corsOrigins { defaultOrigins += list.sorted() }
        let originsText = env["GATEHOUSE_TRUSTED_ORIGINS"] ?? defaultOrigins.joined(separator: ",")
        let trusted = reader.detailed("GATEHOUSE_TRUSTED_ORIGINS", default: originsText, expected: TrustedOrigins.expected, TrustedOrigins.parse)
        guard let cookie, let url, let timeout, let maxLookups, let ttl, let negativeTTL, let cacheSize, let trusted else { return nil }
        return SessionPolicy(
            acceptsCookie: mode == "cookie" || mode == "both", acceptsBearer: mode == "bearer" || mode == "both",
            cookieName: cookie, lookupOrigin: url.origin, lookupTarget: url.pathPrefix, timeout: timeout,
            maxLookups: maxLookups, cacheTTL: ttl, negativeTTL: negativeTTL, cacheSize: cacheSize,
            trustedOrigins: trusted, trustedOriginsText: originsText)
    }
}
