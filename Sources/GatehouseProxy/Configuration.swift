public import GatehouseAuth
import JOSE
public import Logging

/// gatehouse's whole configuration, read from `GATEHOUSE_*` environment variables only.
///
/// A variable that is present but malformed is an error, never replaced by its default:
/// a typo in a timeout must not silently become 60 s in production. `load` gathers every
/// problem at once so an operator fixes them in one round.
public struct GatehouseConfiguration: Sendable {
    public var upstream: UpstreamURL
    public var listen: ListenAddress
    public var adminListen: ListenAddress
    var trustedProxies: [CIDR]
    public var upstreamTimeout: Duration
    public var upstreamConnectTimeout: Duration
    public var upstreamIdleTimeout: Duration
    public var maxHeaderBytes: Int
    public var headerReadTimeout: Duration
    /// Open client connections at most (tunnels and streams included); past it new ones wait.
    public var maxConnections = 10_000
    /// Event-loop workers (`GATEHOUSE_WORKERS`); the CPUs this process may use by default.
    public var workers = 1
    public var shutdownDelay: Duration
    public var shutdownTimeout: Duration
    /// How often freed heap memory goes back to the kernel (`HeapTrim`); zero: never.
    public var memoryTrimInterval: Duration = .seconds(10)
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    /// Token verification; nil only with `GATEHOUSE_AUTH=off`.
    public var auth: AuthSettings?
    /// Where tokens may come from besides `Authorization: Bearer`.
    public var tokenCookie: String?
    public var tokenQueryParam: String?
    /// Whether `Authorization` reaches FastAPI.
    public var forwardToken: Bool
    /// Lowercased identity header names stripped from every incoming request (in every mode).
    public var identityHeaderNames: Set<String>
    /// Which routes need a token and which claims (`GATEHOUSE_RULES`, `…_OPTIONAL_AUTH_PATHS`, `…_PUBLIC_PATHS`).
    var routePolicy: RoutePolicy
    /// CORS on gatehouse's own answers and preflight handling (`GATEHOUSE_CORS_*`).
    var cors: CORSPolicy
    /// Better Auth sessions (`GATEHOUSE_SESSIONS`); nil when off.
    var sessions: SessionPolicy?
    /// `X-Gatehouse-Signature` (`GATEHOUSE_IDENTITY_SECRET`); nil when no secret is set.
    var identitySignature: IdentitySignature?
    /// Where the secret came from, for `check-config` (never the secret itself).
    var identitySecretSource: String?
    /// `GATEHOUSE_*` names we do not know (typos, or variables Kubernetes injects for a
    /// Service named `gatehouse`): warned about at startup, not fatal.
    public var unknownVariables: [String]

    public enum LogFormat: String, Sendable { case json, text }

    /// One malformed or missing variable.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public var variable: String
        public var message: String
        public var description: String { "\(variable): \(message)" }
    }

    /// Every variable gatehouse reads, with its default and meaning, in README order.
    public static let reference: [(name: String, defaultValue: String, meaning: String)] = [
        ("GATEHOUSE_UPSTREAM", "(required)", "FastAPI's base URL, e.g. http://127.0.0.1:8000; may carry a path prefix; or unix:/path of its Unix socket"),
        ("GATEHOUSE_LISTEN", "0.0.0.0:8080", "address for proxied traffic"),
        ("GATEHOUSE_ADMIN_LISTEN", "0.0.0.0:9901", "address for /healthz and /readyz"),
        ("GATEHOUSE_TRUSTED_PROXIES", "(none)", "CIDR list whose X-Forwarded-* headers are trusted and extended"),
        ("GATEHOUSE_UPSTREAM_TIMEOUT", "60s", "time from the end of the request body to the upstream's response headers (504 after)"),
        ("GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT", "5s", "time to open a TCP connection to the upstream (504 after)"),
        ("GATEHOUSE_UPSTREAM_IDLE_TIMEOUT", "300s", "longest silence on an exchange; a stream that sends nothing this long is ended"),
        ("GATEHOUSE_MAX_HEADER_BYTES", "32KiB", "largest request header block accepted (431 above)"),
        ("GATEHOUSE_HEADER_READ_TIMEOUT", "10s", "time a client has to send its request headers, and the keep-alive idle time"),
        ("GATEHOUSE_MAX_CONNECTIONS", "10000", "open client connections at most (WebSocket tunnels and streams included); past it new connections wait in the listen backlog"),
        ("GATEHOUSE_WORKERS", "auto", "event-loop workers; auto: the CPUs this process may use (affinity, capped by the cgroup's cpu.max)"),
        ("GATEHOUSE_SHUTDOWN_DELAY", "5s", "after SIGTERM, time /readyz reports 503 while traffic is still served"),
        ("GATEHOUSE_SHUTDOWN_TIMEOUT", "25s", "after the delay, time in-flight requests get to finish before they are closed"),
        ("GATEHOUSE_MEMORY_TRIM_INTERVAL", "10s", "how often memory freed after a burst is given back to the system (at least 1s; 0 = never)"),
        ("GATEHOUSE_LOG_LEVEL", "info", "trace, debug, info, notice, warning, error or critical"),
        ("GATEHOUSE_LOG_FORMAT", "json (text on a terminal)", "json: one object per line; text: human-readable"),
        ("GATEHOUSE_AUTH", "jwt", "jwt: requests need a valid token (see the route rules); off: proxy only, for development (warned at startup)"),
        ("BETTER_AUTH_URL", "(none)", "Better Auth's base URL: gives the JWKS URL (+/api/auth/jwks), the issuer and the audience (its origin)"),
        ("GATEHOUSE_JWKS_URL", "BETTER_AUTH_URL/api/auth/jwks", "where the issuer publishes its keys"),
        ("GATEHOUSE_ISSUER", "origin of BETTER_AUTH_URL", "required `iss`"),
        ("GATEHOUSE_AUDIENCE", "origin of BETTER_AUTH_URL", "comma list; `aud` must contain one of them"),
        ("GATEHOUSE_ALGORITHMS", "EdDSA,ES256,ES512,RS256,PS256", "accepted JWS algorithms"),
        ("GATEHOUSE_CLOCK_SKEW", "30s", "tolerance for exp, nbf and iat"),
        ("GATEHOUSE_MAX_TOKEN_BYTES", "16KiB", "larger tokens are rejected as malformed before any parsing"),
        ("GATEHOUSE_JWKS_TTL", "300s", "JWKS freshness when the response has no Cache-Control max-age"),
        ("GATEHOUSE_JWKS_MIN_TTL", "30s", "lower clamp for Cache-Control max-age"),
        ("GATEHOUSE_JWKS_MAX_TTL", "1h", "upper clamp for Cache-Control max-age"),
        ("GATEHOUSE_JWKS_REFETCH_COOLDOWN", "10s", "at most one extra fetch per this period for unknown kids"),
        ("GATEHOUSE_JWKS_FETCH_TIMEOUT", "2s", "limit for one JWKS fetch, and for a request waiting on it"),
        ("GATEHOUSE_JWKS_MAX_STALE", "24h", "how long the last good keys keep serving while the issuer is unreachable"),
        ("GATEHOUSE_TOKEN_CACHE_SIZE", "10000", "verified tokens remembered (0 = off)"),
        ("GATEHOUSE_TOKEN_COOKIE", "(none)", "also accept the token from this cookie"),
        ("GATEHOUSE_TOKEN_QUERY_PARAM", "(none)", "also accept the token from this query parameter (removed before forwarding)"),
        ("GATEHOUSE_CLAIM_HEADERS", "X-User-Id=sub,X-User-Email=email", "identity headers for FastAPI: Header=claim.path list"),
        ("GATEHOUSE_CLAIMS_HEADER", "X-Auth-Claims", "header carrying the verified payload as base64url (empty = none)"),
        ("GATEHOUSE_FORWARD_TOKEN", "true", "whether Authorization and the token and session cookies reach FastAPI"),
        ("GATEHOUSE_SESSIONS", "off", "Better Auth sessions as well as JWTs: off, cookie (the session cookie), bearer (the bearer plugin's token) or both"),
        ("GATEHOUSE_SESSION_COOKIE_PREFIX", "better-auth", "Better Auth's advanced.cookiePrefix; the cookie is <prefix>.session_token, __Secure- in front when BETTER_AUTH_URL is https"),
        ("GATEHOUSE_SESSION_COOKIE", "(from the prefix)", "the session cookie's full name"),
        ("GATEHOUSE_SESSION_URL", "BETTER_AUTH_URL/api/auth/get-session", "Better Auth's get-session endpoint"),
        ("GATEHOUSE_SESSION_TIMEOUT", "2s", "limit for one session lookup (503 after)"),
        ("GATEHOUSE_SESSION_MAX_LOOKUPS", "64", "session lookups in flight at most (503 with Retry-After past it)"),
        ("GATEHOUSE_SESSION_CACHE_TTL", "30s", "how long a live session is trusted without asking again (never past its expiry)"),
        ("GATEHOUSE_SESSION_NEGATIVE_TTL", "60s", "how long an unknown session credential is refused without asking again"),
        ("GATEHOUSE_SESSION_CACHE_SIZE", "10000", "session verdicts remembered"),
        ("GATEHOUSE_TRUSTED_ORIGINS", "BETTER_AUTH_URL's origin + GATEHOUSE_CORS_ALLOW_ORIGINS", "origins (or *-patterns) allowed to send cookie-authenticated writes"),
        ("GATEHOUSE_IDENTITY_SECRET", "(none)", "signs every forwarded request (X-Gatehouse-Signature) so FastAPI can prove it came through gatehouse; at least 32 bytes; two comma-separated during a rotation (the first signs)"),
        ("GATEHOUSE_IDENTITY_SECRET_FILE", "(none)", "a file holding GATEHOUSE_IDENTITY_SECRET (Kubernetes and Compose secrets)"),
        ("GATEHOUSE_PUBLIC_PATHS", "(none)", "[METHOD ]/path patterns that need no token, comma list, e.g. /health,/docs,GET /public/*"),
        ("GATEHOUSE_OPTIONAL_AUTH_PATHS", "(none)", "patterns where a token is verified if present and the request is forwarded anonymously without one"),
        ("GATEHOUSE_RULES", "(none)", "claim requirements per route, ;-separated, first match wins, e.g. /admin/** role=admin; /reports/** scope~reports:read"),
        ("GATEHOUSE_CORS_ALLOW_ORIGINS", "(none)", "origins (comma list, or *) allowed to read gatehouse's own error answers"),
        ("GATEHOUSE_CORS_ALLOW_CREDENTIALS", "false", "add Access-Control-Allow-Credentials: true to them (not with *)"),
        ("GATEHOUSE_CORS_PREFLIGHT", "forward", "forward: preflights go to FastAPI without a token; reject: gatehouse answers them 403"),
    ]

    /// Reads the configuration; returns every problem found.
    public static func load(
        environment: [String: String], stdoutIsTerminal: Bool = false
    ) -> Result<GatehouseConfiguration, ConfigurationError> {
        var reader = EnvironmentReader(environment: environment)
        let upstream = reader.required("GATEHOUSE_UPSTREAM", expected: UpstreamURL.expected, UpstreamURL.parse)
        let listen = reader.value("GATEHOUSE_LISTEN", default: "0.0.0.0:8080", expected: ListenAddress.expected, ListenAddress.parse)
        let admin = reader.value("GATEHOUSE_ADMIN_LISTEN", default: "0.0.0.0:9901", expected: ListenAddress.expected, ListenAddress.parse)
        let trusted = reader.value("GATEHOUSE_TRUSTED_PROXIES", default: "", expected: CIDR.expected) { (text: String) -> [CIDR]? in
            var blocks: [CIDR] = []
            for item in text.split(separator: ",") where !item.trimmingSpaces().isEmpty {
                guard let block = CIDR.parse(String(item)) else { return nil }
                blocks.append(block)
            }
            return blocks
        }
        let timeout = reader.positiveDuration("GATEHOUSE_UPSTREAM_TIMEOUT", default: "60s")
        let connectTimeout = reader.positiveDuration("GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT", default: "5s")
        let idle = reader.positiveDuration("GATEHOUSE_UPSTREAM_IDLE_TIMEOUT", default: "300s")
        let maxHeader = reader.value("GATEHOUSE_MAX_HEADER_BYTES", default: "32KiB", expected: SizeValue.expected + ", from 1KiB to 1MiB") {
            SizeValue.parse($0).flatMap { (1024...(1 << 20)).contains($0) ? $0 : nil }
        }
        let headerRead = reader.positiveDuration("GATEHOUSE_HEADER_READ_TIMEOUT", default: "10s")
        let maxConnections = reader.value(
            "GATEHOUSE_MAX_CONNECTIONS", default: "10000", expected: "a whole number from 1 to 1000000"
        ) { Int($0).flatMap { (1...1_000_000).contains($0) ? $0 : nil } }
        let workers = reader.value("GATEHOUSE_WORKERS", default: "auto", expected: "auto or a whole number from 1 to 256") {
            $0 == "auto" ? CPUBudget.available() : Int($0).flatMap { (1...256).contains($0) ? $0 : nil }
        }
        let delay = reader.value("GATEHOUSE_SHUTDOWN_DELAY", default: "5s", expected: DurationValue.expected, DurationValue.parse)
        let shutdownTimeout = reader.value("GATEHOUSE_SHUTDOWN_TIMEOUT", default: "25s", expected: DurationValue.expected, DurationValue.parse)
        // At least a second: each trim takes every arena's lock in turn, so a few milliseconds
        // would keep the workers' allocations waiting on the control thread.
        let trimInterval = reader.value(
            "GATEHOUSE_MEMORY_TRIM_INTERVAL", default: "10s", expected: "0 (never) or a duration of at least 1s, such as 10s or 1m"
        ) { DurationValue.parse($0).flatMap { $0 == .zero || $0 >= .seconds(1) ? $0 : nil } }
        let level = reader.value("GATEHOUSE_LOG_LEVEL", default: "info", expected: "one of trace, debug, info, notice, warning, error, critical") {
            Logger.Level(rawValue: $0.lowercased())
        }
        let format = reader.value(
            "GATEHOUSE_LOG_FORMAT", default: stdoutIsTerminal ? "text" : "json", expected: "json or text"
        ) { LogFormat(rawValue: $0.lowercased()) }

        let auth = AuthConfigurationReader.read(&reader)
        let publicPaths = reader.detailed("GATEHOUSE_PUBLIC_PATHS", default: "", expected: RoutePolicy.patternsExpected, RoutePolicy.parsePatterns)
        let optionalPaths = reader.detailed(
            "GATEHOUSE_OPTIONAL_AUTH_PATHS", default: "", expected: RoutePolicy.patternsExpected, RoutePolicy.parsePatterns)
        let rules = reader.detailed("GATEHOUSE_RULES", default: "", expected: RoutePolicy.rulesExpected, RoutePolicy.parseRules)
        let origins = reader.detailed(
            "GATEHOUSE_CORS_ALLOW_ORIGINS", default: "", expected: CORSPolicy.originsExpected, CORSPolicy.parseOrigins)
        let credentials = reader.value("GATEHOUSE_CORS_ALLOW_CREDENTIALS", default: "false", expected: "true or false") {
            text -> Bool? in
            switch text.lowercased() {
            case "true", "1": return true
            case "false", "0": return false
            default: return nil
            }
        }
        let preflight = reader.value("GATEHOUSE_CORS_PREFLIGHT", default: "forward", expected: "forward or reject") {
            CORSPolicy.Preflight(rawValue: $0.lowercased())
        }
        if origins == .any, credentials == true {
            // Reflecting any origin with credentials would hand every web site a credentialed
            // read; the Fetch standard forbids `*` with credentials for the same reason.
            reader.problems.append(.init(variable: "GATEHOUSE_CORS_ALLOW_CREDENTIALS",
                message: "true cannot be combined with GATEHOUSE_CORS_ALLOW_ORIGINS=*; list the allowed origins instead"))
        }
        let sessions: SessionPolicy??
        if let auth, auth.settings == nil, let mode = environment["GATEHOUSE_SESSIONS"], mode.lowercased() != "off" {
            reader.problems.append(.init(variable: "GATEHOUSE_SESSIONS",
                message: "needs authentication; it cannot be used with GATEHOUSE_AUTH=off"))
            sessions = nil
        } else {
            sessions = SessionConfigurationReader.read(&reader, corsOrigins: origins)
        }
        if let rules, !rules.isEmpty, let auth, auth.settings == nil {
            reader.problems.append(.init(variable: "GATEHOUSE_RULES",
                message: "needs token verification; it cannot be used with GATEHOUSE_AUTH=off"))
        }
        if let base = environment["BETTER_AUTH_URL"], base.lowercased().hasPrefix("unix:"),
            !reader.problems.contains(where: { $0.variable == "BETTER_AUTH_URL" })
        {
            // UpstreamURL also reads unix: sockets, which cannot name an issuer.
            reader.problems.append(.init(variable: "BETTER_AUTH_URL",
                message: "invalid value \"\(EnvironmentReader.printable(base))\"; expected an http:// or https:// URL, not a Unix socket"))
        }

        let identitySecret = IdentitySecretReader.read(&reader)

        let known = Set(reference.map(\.name))
        let unknown = environment.keys.filter { $0.hasPrefix("GATEHOUSE_") && !known.contains($0) }.sorted()

        guard reader.problems.isEmpty, let upstream, let listen, let admin, let trusted, let timeout, let connectTimeout,
            let idle, let maxHeader, let headerRead, let maxConnections, let workers, let delay, let shutdownTimeout, let level, let format,
            let auth, let publicPaths, let optionalPaths, let rules, let origins, let credentials, let preflight, let sessions
        else { return .failure(ConfigurationError(problems: reader.problems)) }
        if listen == admin {
            return .failure(ConfigurationError(problems: [
                Problem(variable: "GATEHOUSE_ADMIN_LISTEN", message: "must differ from GATEHOUSE_LISTEN (\(listen))")
            ]))
        }
        var configuration = GatehouseConfiguration(
            upstream: upstream, listen: listen, adminListen: admin, trustedProxies: trusted,
            upstreamTimeout: timeout, upstreamConnectTimeout: connectTimeout, upstreamIdleTimeout: idle,
            maxHeaderBytes: maxHeader, headerReadTimeout: headerRead, shutdownDelay: delay,
            shutdownTimeout: shutdownTimeout, logLevel: level, logFormat: format, auth: auth.settings,
            tokenCookie: auth.cookie, tokenQueryParam: auth.queryParam, forwardToken: auth.forwardToken,
            identityHeaderNames: auth.identityHeaderNames,
            routePolicy: RoutePolicy(rules: rules, optionalPaths: optionalPaths, publicPaths: publicPaths),
            cors: CORSPolicy(allowedOrigins: origins, allowCredentials: credentials, preflight: preflight),
            unknownVariables: unknown)
        configuration.maxConnections = maxConnections
        if let trimInterval { configuration.memoryTrimInterval = trimInterval }
        configuration.sessions = sessions
        if let (secrets, source) = identitySecret {
            configuration.identitySignature = IdentitySignature(
                signingSecret: secrets[0], secretCount: secrets.count,
                headerNames: auth.signedHeaderNames.map { ($0, $0.lowercased()) })
            configuration.identitySecretSource = source
        }
        configuration.workers = workers
        return .success(configuration)
    }

    /// The effective configuration as `NAME=value` lines, for `check-config` and the startup
    /// log. Nothing here is secret today (credentials in the upstream URL are rejected), but
    /// every value passes through `redacted` so later secrets cannot leak by omission.
    public var effectiveSettings: [(name: String, value: String)] {
        [
            ("GATEHOUSE_UPSTREAM", upstream.description),
            ("GATEHOUSE_LISTEN", listen.description),
            ("GATEHOUSE_ADMIN_LISTEN", adminListen.description),
            ("GATEHOUSE_TRUSTED_PROXIES", trustedProxies.map(\.description).joined(separator: ",")),
            ("GATEHOUSE_UPSTREAM_TIMEOUT", upstreamTimeout.settingText),
            ("GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT", upstreamConnectTimeout.settingText),
            ("GATEHOUSE_UPSTREAM_IDLE_TIMEOUT", upstreamIdleTimeout.settingText),
            ("GATEHOUSE_MAX_HEADER_BYTES", String(maxHeaderBytes)),
            ("GATEHOUSE_HEADER_READ_TIMEOUT", headerReadTimeout.settingText),
            ("GATEHOUSE_MAX_CONNECTIONS", String(maxConnections)),
            ("GATEHOUSE_WORKERS", String(workers)),
            ("GATEHOUSE_SHUTDOWN_DELAY", shutdownDelay.settingText),
            ("GATEHOUSE_SHUTDOWN_TIMEOUT", shutdownTimeout.settingText),
            ("GATEHOUSE_MEMORY_TRIM_INTERVAL", memoryTrimInterval.settingText),
            ("GATEHOUSE_LOG_LEVEL", logLevel.rawValue),
            ("GATEHOUSE_LOG_FORMAT", logFormat.rawValue),
        ] + authSettings + sessionSettings + identitySettings + routeSettings
    }

    private var identitySettings: [(name: String, value: String)] {
        guard let identitySignature, let identitySecretSource else { return [("GATEHOUSE_IDENTITY_SECRET", "")] }
        let count = identitySignature.secretCount == 1 ? "1 secret" : "2 secrets, the first signs"
        return [(identitySecretSource, "(redacted: \(count))")]
    }

    private var sessionSettings: [(name: String, value: String)] {
        guard let sessions else { return [("GATEHOUSE_SESSIONS", "off")] }
        return [
            ("GATEHOUSE_SESSIONS", sessions.modeText),
            ("GATEHOUSE_SESSION_COOKIE", sessions.cookieName),
            ("GATEHOUSE_SESSION_URL", sessions.lookupOrigin + sessions.lookupTarget),
            ("GATEHOUSE_SESSION_TIMEOUT", sessions.timeout.settingText),
            ("GATEHOUSE_SESSION_MAX_LOOKUPS", String(sessions.maxLookups)),
            ("GATEHOUSE_SESSION_CACHE_TTL", sessions.cacheTTL.settingText),
            ("GATEHOUSE_SESSION_NEGATIVE_TTL", sessions.negativeTTL.settingText),
            ("GATEHOUSE_SESSION_CACHE_SIZE", String(sessions.cacheSize)),
            ("GATEHOUSE_TRUSTED_ORIGINS", sessions.trustedOriginsText),
        ]
    }

    private var routeSettings: [(name: String, value: String)] {
        let origins: String
        switch cors.allowedOrigins {
        case .none: origins = ""
        case .any: origins = "*"
        case .list(let list): origins = list.sorted().joined(separator: ",")
        }
        return [
            ("GATEHOUSE_PUBLIC_PATHS", routePolicy.publicPaths.map(\.text).joined(separator: ",")),
            ("GATEHOUSE_OPTIONAL_AUTH_PATHS", routePolicy.optionalPaths.map(\.text).joined(separator: ",")),
            ("GATEHOUSE_RULES", routePolicy.rules.map(\.description).joined(separator: "; ")),
            ("GATEHOUSE_CORS_ALLOW_ORIGINS", origins),
            ("GATEHOUSE_CORS_ALLOW_CREDENTIALS", String(cors.allowCredentials)),
            ("GATEHOUSE_CORS_PREFLIGHT", cors.preflight.rawValue),
        ]
    }

    private var authSettings: [(name: String, value: String)] {
        guard let auth else { return [("GATEHOUSE_AUTH", "off")] }
        let v = auth.verifier
        return [
            ("GATEHOUSE_AUTH", "jwt"),
            ("GATEHOUSE_JWKS_URL", auth.jwksOrigin + auth.jwksTarget),
            ("GATEHOUSE_ISSUER", v.issuer),
            ("GATEHOUSE_AUDIENCE", v.audiences.sorted().joined(separator: ",")),
            ("GATEHOUSE_ALGORITHMS", JWSAlgorithm.allCases.filter(v.algorithms.contains).map(\.rawValue).joined(separator: ",")),
            ("GATEHOUSE_CLOCK_SKEW", Duration.milliseconds(Int64(v.clockSkew * 1000)).settingText),
            ("GATEHOUSE_MAX_TOKEN_BYTES", String(v.maxTokenBytes)),
            ("GATEHOUSE_JWKS_TTL", auth.jwksDefaultTTL.settingText),
            ("GATEHOUSE_JWKS_MIN_TTL", auth.jwksMinTTL.settingText),
            ("GATEHOUSE_JWKS_MAX_TTL", auth.jwksMaxTTL.settingText),
            ("GATEHOUSE_JWKS_REFETCH_COOLDOWN", auth.refetchCooldown.settingText),
            ("GATEHOUSE_JWKS_FETCH_TIMEOUT", auth.fetchTimeout.settingText),
            ("GATEHOUSE_JWKS_MAX_STALE", auth.maxStale.settingText),
            ("GATEHOUSE_TOKEN_CACHE_SIZE", String(auth.tokenCacheSize)),
            ("GATEHOUSE_TOKEN_COOKIE", tokenCookie ?? ""),
            ("GATEHOUSE_TOKEN_QUERY_PARAM", tokenQueryParam ?? ""),
            ("GATEHOUSE_CLAIM_HEADERS", auth.claimHeaders.map { "\($0.header)=\($0.path.joined(separator: "."))" }.joined(separator: ",")),
            ("GATEHOUSE_CLAIMS_HEADER", auth.claimsHeader ?? ""),
            ("GATEHOUSE_FORWARD_TOKEN", String(forwardToken)),
        ]
    }
}

extension GatehouseConfiguration {
    /// Parses a duration the way every `GATEHOUSE_*` duration is parsed.
    public static func parseDuration(_ text: String) -> Duration? { DurationValue.parse(text) }

    /// The origin (`scheme://host[:port]`) of an http(s) URL, or nil.
    public static func origin(of url: String) -> String? { UpstreamURL.parse(url).flatMap { $0.unixSocketPath == nil ? $0.origin : nil } }
}

/// All problems found in the environment; printed one per line.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var problems: [GatehouseConfiguration.Problem]
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// Reads variables and records a `Problem` for each malformed one.
struct EnvironmentReader {
    let environment: [String: String]
    var problems: [GatehouseConfiguration.Problem] = []

    mutating func value<T>(_ name: String, default fallback: String, expected: String, _ parse: (String) -> T?) -> T? {
        let raw = environment[name]
        guard let parsed = parse(raw ?? fallback) else {
            let shown = raw.map { "\"\(Self.printable($0))\"" } ?? "(default)"
            problems.append(.init(variable: name, message: "invalid value \(shown); expected \(expected)"))
            return nil
        }
        return parsed
    }

    /// Like `value`, for lists whose parser names the offending item and why it is wrong.
    mutating func detailed<T>(
        _ name: String, default fallback: String, expected: String, _ parse: (String) throws(ConfigurationValueError) -> T
    ) -> T? {
        do throws(ConfigurationValueError) {
            return try parse(environment[name] ?? fallback)
        } catch {
            problems.append(.init(variable: name,
                message: "invalid value \"\(Self.printable(error.offending))\" (\(error.reason)); expected \(expected)"))
            return nil
        }
    }

    mutating func required<T>(_ name: String, expected: String, _ parse: (String) -> T?) -> T? {
        guard let raw = environment[name], !raw.isEmpty else {
            problems.append(.init(variable: name, message: "is required; expected \(expected)"))
            return nil
        }
        return value(name, default: raw, expected: expected, parse)
    }

    mutating func positiveDuration(_ name: String, default fallback: String) -> Duration? {
        value(name, default: fallback, expected: DurationValue.expected + ", greater than 0") {
            DurationValue.parse($0).flatMap { $0 > .zero ? $0 : nil }
        }
    }

    /// Shows a bad value without control characters and at bounded length.
    static func printable(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : Character($0) })
        return cleaned.count > 80 ? String(cleaned.prefix(80)) + "…" : cleaned
    }
}

extension Duration {
    /// `1500ms`, `30s`, … as the setting would be written.
    var settingText: String {
        let ms = components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000
        return ms % 1_000 == 0 ? "\(ms / 1_000)s" : "\(ms)ms"
    }

    public var milliseconds: Int {
        Int(components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000)
    }

    /// Whole microseconds, for logs.
    var microseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }
}
