import Testing

@testable import GatehouseProxy

@Suite struct ConfigurationTests {
    let minimal = ["GATEHOUSE_UPSTREAM": "http://127.0.0.1:8000", "GATEHOUSE_AUTH": "off"]

    func load(_ extra: [String: String]) -> Result<GatehouseConfiguration, ConfigurationError> {
        GatehouseConfiguration.load(environment: minimal.merging(extra) { $1 })
    }

    @Test func defaults() throws {
        let configuration = try load([:]).get()
        #expect(configuration.listen == ListenAddress(host: "0.0.0.0", port: 8080))
        #expect(configuration.adminListen == ListenAddress(host: "0.0.0.0", port: 9901))
        #expect(configuration.upstreamTimeout == .seconds(60))
        #expect(configuration.upstreamIdleTimeout == .seconds(300))
        #expect(configuration.maxHeaderBytes == 32 * 1024)
        #expect(configuration.shutdownDelay == .seconds(5))
        #expect(configuration.shutdownTimeout == .seconds(25))
        #expect(configuration.logFormat == .json)
        #expect(configuration.upstream.pathPrefix == "")
    }

    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("30s", .seconds(30)), ("5m", .seconds(300)), ("1h", .seconds(3600)),
        ("45", .seconds(45)), ("1.5s", .milliseconds(1500)),
    ])
    func durations(_ text: String, _ expected: Duration) {
        #expect(DurationValue.parse(text) == expected)
    }

    @Test(arguments: ["", "abc", "10 s", "-5s", "5d", "s", "1e3", "0x10"])
    func malformedDurations(_ text: String) {
        #expect(DurationValue.parse(text) == nil)
    }

    @Test(arguments: [("64KiB", 65536), ("1MiB", 1_048_576), ("1024", 1024), ("10B", 10)])
    func sizes(_ text: String, _ expected: Int) {
        #expect(SizeValue.parse(text) == expected)
    }

    @Test(arguments: ["12XB", "64kb", "1.5MiB", "-1", "", "KiB", "99999999999GiB"])
    func malformedSizes(_ text: String) {
        #expect(SizeValue.parse(text) == nil)
    }

    @Test func malformedValueIsAnErrorNotTheDefault() {
        guard case .failure(let error) = load(["GATEHOUSE_UPSTREAM_TIMEOUT": "abc"]) else {
            Issue.record("a malformed timeout was accepted")
            return
        }
        #expect(error.problems.map(\.variable) == ["GATEHOUSE_UPSTREAM_TIMEOUT"])
        #expect(error.description.contains("\"abc\""))
        #expect(error.description.contains("500ms"), "the message says what is accepted")
    }

    @Test func everyProblemIsReportedAtOnce() {
        let result = GatehouseConfiguration.load(environment: [
            "GATEHOUSE_MAX_HEADER_BYTES": "12XB", "GATEHOUSE_LOG_FORMAT": "xml", "GATEHOUSE_TRUSTED_PROXIES": "10.0.0.0/99",
        ])
        guard case .failure(let error) = result else {
            Issue.record("accepted")
            return
        }
        #expect(Set(error.problems.map(\.variable)) == [
            "GATEHOUSE_UPSTREAM", "GATEHOUSE_MAX_HEADER_BYTES", "GATEHOUSE_LOG_FORMAT", "GATEHOUSE_TRUSTED_PROXIES",
            "BETTER_AUTH_URL",
        ])
    }

    @Test func zeroTimeoutIsRejectedButZeroDelayIsAllowed() {
        #expect((try? load(["GATEHOUSE_UPSTREAM_TIMEOUT": "0s"]).get()) == nil)
        #expect((try? load(["GATEHOUSE_SHUTDOWN_DELAY": "0"]).get())?.shutdownDelay == .zero)
    }

    @Test func memoryTrimIntervalDefaultsToTenSecondsZeroTurnsItOffAndBelowASecondIsRefused() {
        #expect((try? load([:]).get())?.memoryTrimInterval == .seconds(10))
        #expect((try? load(["GATEHOUSE_MEMORY_TRIM_INTERVAL": "0"]).get())?.memoryTrimInterval == .zero)
        #expect((try? load(["GATEHOUSE_MEMORY_TRIM_INTERVAL": "2500ms"]).get())?.memoryTrimInterval == .milliseconds(2500))
        for bad in ["often", "500ms", "-1s"] {
            guard case .failure(let error) = load(["GATEHOUSE_MEMORY_TRIM_INTERVAL": bad]) else {
                Issue.record("GATEHOUSE_MEMORY_TRIM_INTERVAL=\(bad) was accepted")
                continue
            }
            #expect(error.problems.map(\.variable) == ["GATEHOUSE_MEMORY_TRIM_INTERVAL"])
        }
    }

    @Test func upstreamWithPathPrefix() throws {
        let configuration = try GatehouseConfiguration.load(environment: [
            "GATEHOUSE_UPSTREAM": "HTTP://api.internal:8000/v1/", "GATEHOUSE_AUTH": "off",
        ]).get()
        #expect(configuration.upstream.origin == "http://api.internal:8000")
        #expect(configuration.upstream.pathPrefix == "/v1")
    }

    @Test(arguments: [
        "127.0.0.1:8000", "ftp://host", "http://", "http://user:pw@host", "http://host/x?y=1", "http://host:99999",
        "http://ho st", "http://[::1", "http://host:abc",
    ])
    func malformedUpstreams(_ text: String) {
        #expect(UpstreamURL.parse(text) == nil)
    }

    @Test func unixSocketUpstream() throws {
        let upstream = try #require(UpstreamURL.parse("unix:/run/app/uvicorn.sock"))
        #expect(upstream.origin == "unix:/run/app/uvicorn.sock")
        #expect(upstream.pathPrefix == "")
        #expect(upstream.description == "unix:/run/app/uvicorn.sock")
        #expect(!upstream.isHTTPS)
        guard case .unix(let path) = upstream.socketAddress else {
            Issue.record("not a Unix socket address: \(upstream.socketAddress)")
            return
        }
        #expect(path == "/run/app/uvicorn.sock")
        #expect(UpstreamURL.parse("UNIX:/tmp/a.sock")?.origin == "unix:/tmp/a.sock")
        // The whole text is the socket's path: no query, no path prefix.
        #expect(UpstreamURL.parse("unix:/tmp/a?b#c.sock")?.origin == "unix:/tmp/a?b#c.sock")
        // sun_path: 107 bytes and the terminating NUL.
        let longest = "/" + String(repeating: "s", count: 106)
        #expect(UpstreamURL.parse("unix:" + longest)?.origin == "unix:" + longest)
        #expect(UpstreamURL.expected.contains("unix:/run/app/uvicorn.sock"))
    }

    @Test func tcpUpstreamSocketAddress() throws {
        guard case .inet(let host, let port) = try #require(UpstreamURL.parse("http://[::1]:9000/v1")).socketAddress else {
            Issue.record("not an IP address")
            return
        }
        #expect(host == "::1")
        #expect(port == 9000)
    }

    @Test(arguments: [
        "unix:", "unix:relative.sock", "unix:./a.sock", "unix:~/a.sock", "unix://run/a.sock", "unix:///run/a.sock",
        "unix:/run/app/", "unix:/", "unix: /run/a.sock", "unix:/run/my app.sock", "unix:/run/a.sock ", "unix:/run/a\tb",
        "unix:/run/a\nb", "unix:/run/a\u{0}b", "unix:/run/a\u{7f}b", "unix:/" + String(repeating: "s", count: 107), "unix",
    ])
    func malformedUnixSocketUpstreams(_ text: String) {
        #expect(UpstreamURL.parse(text) == nil)
    }

    @Test func unixSocketUpstreamIsAccepted() throws {
        let loaded = try load(["GATEHOUSE_UPSTREAM": "unix:/run/app/uvicorn.sock"]).get()
        #expect(loaded.upstream.origin == "unix:/run/app/uvicorn.sock")
        #expect(loaded.effectiveSettings.contains { $0.name == "GATEHOUSE_UPSTREAM" && $0.value == "unix:/run/app/uvicorn.sock" })
    }

    @Test func unixSocketIsNoIssuer() {
        let result = GatehouseConfiguration.load(environment: [
            "GATEHOUSE_UPSTREAM": "http://127.0.0.1:8000", "BETTER_AUTH_URL": "unix:/run/auth.sock",
        ])
        guard case .failure(let error) = result else {
            Issue.record("a Unix socket was accepted as BETTER_AUTH_URL")
            return
        }
        #expect(error.problems.map(\.variable) == ["BETTER_AUTH_URL"])
        #expect(GatehouseConfiguration.origin(of: "unix:/run/auth.sock") == nil)
        #expect(GatehouseConfiguration.origin(of: "https://auth.example.com/x") == "https://auth.example.com")
    }

    @Test func listenAddresses() {
        #expect(ListenAddress.parse("127.0.0.1:8080") == ListenAddress(host: "127.0.0.1", port: 8080))
        #expect(ListenAddress.parse("[::1]:9901") == ListenAddress(host: "::1", port: 9901))
        #expect(ListenAddress.parse(":8080") == ListenAddress(host: "0.0.0.0", port: 8080))
        #expect(ListenAddress.parse("8080") == nil)
        #expect(ListenAddress.parse("host:0") == nil)
        #expect(ListenAddress.parse("::1:80") == nil)
        #expect(ListenAddress(host: "0.0.0.0", port: 9901).loopbackReachable == "127.0.0.1:9901")
    }

    @Test func sameListenerTwiceIsRejected() {
        let result = load(["GATEHOUSE_LISTEN": "127.0.0.1:9000", "GATEHOUSE_ADMIN_LISTEN": "127.0.0.1:9000"])
        guard case .failure(let error) = result else {
            Issue.record("accepted")
            return
        }
        #expect(error.problems.first?.variable == "GATEHOUSE_ADMIN_LISTEN")
    }

    @Test func unknownVariablesAreListedNotFatal() throws {
        let configuration = try load(["GATEHOUSE_UPSTREAM_TIMOUT": "5s", "GATEHOUSE_PORT": "tcp://10.0.0.1:80"]).get()
        #expect(configuration.unknownVariables == ["GATEHOUSE_PORT", "GATEHOUSE_UPSTREAM_TIMOUT"])
    }

    @Test func badValuesAreShownWithoutControlCharacters() {
        guard case .failure(let error) = load(["GATEHOUSE_LOG_LEVEL": "loud\u{1b}[31m"]) else {
            Issue.record("accepted")
            return
        }
        #expect(!error.description.contains("\u{1b}"))
    }
}

@Suite struct RouteConfigurationTests {
    let minimal = ["GATEHOUSE_UPSTREAM": "http://127.0.0.1:8000", "BETTER_AUTH_URL": "https://auth.example.com"]

    func problems(_ extra: [String: String]) -> [GatehouseConfiguration.Problem] {
        guard case .failure(let error) = GatehouseConfiguration.load(environment: minimal.merging(extra) { $1 }) else { return [] }
        return error.problems
    }

    @Test func routeVariablesAreRead() throws {
        let configuration = try GatehouseConfiguration.load(environment: minimal.merging([
            "GATEHOUSE_PUBLIC_PATHS": "/health, GET /public/*",
            "GATEHOUSE_OPTIONAL_AUTH_PATHS": "/items/**",
            "GATEHOUSE_RULES": "/admin/** role=admin; POST /api/** emailVerified=true",
            "GATEHOUSE_CORS_ALLOW_ORIGINS": "https://app.example.com",
            "GATEHOUSE_CORS_ALLOW_CREDENTIALS": "true",
            "GATEHOUSE_CORS_PREFLIGHT": "reject",
        ]) { $1 }).get()
        #expect(configuration.routePolicy.publicPaths.map(\.text) == ["/health", "GET /public/*"])
        #expect(configuration.routePolicy.rules.map(\.description) == ["/admin/** role=admin", "POST /api/** emailVerified=true"])
        #expect(configuration.cors == CORSPolicy(allowedOrigins: .list(["https://app.example.com"]), allowCredentials: true, preflight: .reject))
        let settings = Dictionary(configuration.effectiveSettings, uniquingKeysWith: { $1 })
        #expect(settings["GATEHOUSE_RULES"] == "/admin/** role=admin; POST /api/** emailVerified=true")
        #expect(settings["GATEHOUSE_CORS_PREFLIGHT"] == "reject")
        #expect(configuration.unknownVariables.isEmpty)
    }

    @Test func invalidPatternNamesTheVariableAndThePattern() {
        let found = problems(["GATEHOUSE_RULES": "/admin/** role=admin; /reports/*x scope~r"])
        #expect(found.map(\.variable) == ["GATEHOUSE_RULES"])
        #expect(found.first?.message.contains(#""/reports/*x scope~r" (* and ** must be whole segments)"#) == true)
        #expect(problems(["GATEHOUSE_PUBLIC_PATHS": "/health,docs"]).map(\.variable) == ["GATEHOUSE_PUBLIC_PATHS"])
        #expect(problems(["GATEHOUSE_OPTIONAL_AUTH_PATHS": "/a/../b"]).map(\.variable) == ["GATEHOUSE_OPTIONAL_AUTH_PATHS"])
    }

    @Test func wildcardOriginWithCredentialsIsRefused() {
        let found = problems(["GATEHOUSE_CORS_ALLOW_ORIGINS": "*", "GATEHOUSE_CORS_ALLOW_CREDENTIALS": "true"])
        #expect(found.map(\.variable) == ["GATEHOUSE_CORS_ALLOW_CREDENTIALS"])
        #expect(problems(["GATEHOUSE_CORS_ALLOW_ORIGINS": "*"]).isEmpty)
    }

    @Test func rulesNeedVerification() {
        #expect(problems(["GATEHOUSE_AUTH": "off", "GATEHOUSE_RULES": "/admin/** role=admin"]).map(\.variable) == ["GATEHOUSE_RULES"])
    }

    @Test func badCORSValues() {
        #expect(problems(["GATEHOUSE_CORS_PREFLIGHT": "allow"]).map(\.variable) == ["GATEHOUSE_CORS_PREFLIGHT"])
        #expect(problems(["GATEHOUSE_CORS_ALLOW_ORIGINS": "https://a.example/"]).map(\.variable) == ["GATEHOUSE_CORS_ALLOW_ORIGINS"])
    }
}
