import Testing

@testable import GatehouseProxy

@Suite struct RoutePolicyTests {
    /// The example configuration.
    static let policy = RoutePolicy(
        rules: try! RoutePolicy.parseRules("/admin/** role=admin; POST /api/** emailVerified=true; /reports/** scope~reports:read"),
        optionalPaths: try! RoutePolicy.parsePatterns("/items/**"),
        publicPaths: try! RoutePolicy.parsePatterns("/health,/docs,/openapi.json,GET /public/*"))

    static let admin = RoutePolicy.Decision.protected(requirements: [try! ClaimRequirement.parse("role=admin")])
    static let token = RoutePolicy.Decision.protected(requirements: [])

    @Test(arguments: [
        // the admin rule, however /admin is spelled
        ("GET", "/admin", admin),
        ("GET", "/admin/", admin),
        ("GET", "/admin/users", admin),
        ("DELETE", "/admin/users/7?force=1", admin),
        ("GET", "/%61dmin", admin),  // unreserved escape: %61 is a
        ("GET", "/%61%64%6D%69%6E/x", admin),
        ("GET", "/admin/.hidden", admin),  // a dot in a name is no dot segment
        ("GET", "/admin%3F/x", token),  // Starlette sees "admin?": not the admin route
        // spellings FastAPI would route differently from their look: refused, never reclassified
        ("GET", "/admin/%2e%2e/x", .invalidPath(.dotSegment)),
        ("GET", "/admin/%2E%2E/x", .invalidPath(.dotSegment)),
        ("GET", "/admin/../public/x", .invalidPath(.dotSegment)),
        ("GET", "/public/../admin", .invalidPath(.dotSegment)),
        ("GET", "/public/x/..", .invalidPath(.dotSegment)),
        ("GET", "/admin/./x", .invalidPath(.dotSegment)),
        ("GET", "/admin/.%2e", .invalidPath(.dotSegment)),
        ("GET", "//admin", .invalidPath(.emptySegment)),
        // Python's `$` matches before a final newline: Starlette routes `/admin\n` as `/admin`
        ("GET", "/admin%0A", .invalidPath(.controlCharacter)),
        ("GET", "/admin%0a/x", .invalidPath(.controlCharacter)),
        ("GET", "/public/x%00", .invalidPath(.controlCharacter)),
        ("GET", "/public/%7F", .invalidPath(.controlCharacter)),
        ("GET", "/public/%09x", .invalidPath(.controlCharacter)),
        ("GET", "/admin//x", .invalidPath(.emptySegment)),
        ("GET", "/health//", .invalidPath(.emptySegment)),
        ("GET", "/admin%2Fx", .invalidPath(.encodedSeparator)),  // Starlette would route /admin/x
        ("GET", "/public%2f..%2fadmin", .invalidPath(.encodedSeparator)),
        ("GET", "/admin%5Cx", .invalidPath(.encodedSeparator)),
        ("GET", "/admin\\x", .invalidPath(.backslash)),
        ("GET", "/admin%zz", .invalidPath(.invalidEscape)),
        ("GET", "/admin%2", .invalidPath(.invalidEscape)),
        ("GET", "/health%", .invalidPath(.invalidEscape)),
        // case: Starlette routes are case-sensitive, so /ADMIN is not the admin route (FastAPI
        // answers 404 unless a route of its own matches); it still needs a token
        ("GET", "/ADMIN", token),
        ("GET", "/Admin/x", token),
        ("GET", "/HEALTH", token),
        // `;` is an ordinary character to Starlette: /admin;x=1 is not the admin route, and
        // /health;x is not the public one (it would be the token-protected 404)
        ("GET", "/admin;x=1/users", token),
        ("GET", "/health;jsessionid=1", token),
        // public paths
        ("GET", "/health", .publicRoute),
        // a public pattern opens the spelling it is written with: /health/ may be another
        // route to Starlette (`/health/{rest:path}`), so it stays protected
        ("GET", "/health/", token),
        ("POST", "/health", .publicRoute),
        // `**` opens the subtree, trailing slash or not
        ("GET", "/items/", .optional),
        ("GET", "/items/a/", .optional),
        ("GET", "/health?probe=1", .publicRoute),
        ("GET", "/health/x", token),
        ("GET", "/%68ealth", .publicRoute),
        ("GET", "/openapi.json", .publicRoute),
        ("GET", "/openapi%2Ejson", .publicRoute),
        ("GET", "/public/a", .publicRoute),
        ("HEAD", "/public/a", .publicRoute),  // GET covers HEAD
        ("POST", "/public/a", token),
        ("get", "/public/a", token),  // methods are case-sensitive
        ("GET", "/public", token),  // * is exactly one segment
        ("GET", "/public/a/b", token),
        // optional paths
        ("GET", "/items", .optional),
        ("PUT", "/items/1/tags", .optional),
        // method-specific rule
        ("POST", "/api/orders", .protected(requirements: [try! ClaimRequirement.parse("emailVerified=true")])),
        ("GET", "/api/orders", token),
        ("GET", "/reports/q3", .protected(requirements: [try! ClaimRequirement.parse("scope~reports:read")])),
        // everything else: a token, no claim requirement
        ("GET", "/", token),
        ("GET", "/other", token),
    ] as [(String, String, RoutePolicy.Decision)])
    func decisions(_ method: String, _ target: String, _ expected: RoutePolicy.Decision) {
        #expect(Self.policy.decide(method: method, target: Substring(target)) == expected, "\(method) \(target)")
    }

    @Test func withoutPatternsOddPathsAreNotRefused() {
        // Every path needs a token anyway, so the path cannot open anything: forwarded as before.
        #expect(RoutePolicy().decide(method: "GET", target: "//a/../b%2Fc") == .protected(requirements: []))
    }

    @Test func theMoreDemandingVariableWinsOverlaps() throws {
        let policy = RoutePolicy(
            rules: try RoutePolicy.parseRules("/api/admin/** role=admin; /docs/internal/**"),
            optionalPaths: try RoutePolicy.parsePatterns("/api/**"),
            publicPaths: try RoutePolicy.parsePatterns("/**"))
        #expect(policy.decide(method: "GET", target: "/api/admin/x") == Self.admin)
        #expect(policy.decide(method: "GET", target: "/docs/internal/a") == .protected(requirements: []))
        #expect(policy.decide(method: "GET", target: "/api/items") == .optional)
        #expect(policy.decide(method: "GET", target: "/docs") == .publicRoute)
    }

    @Test func firstMatchingRuleWins() throws {
        let policy = RoutePolicy(rules: try RoutePolicy.parseRules("GET /admin/stats role=auditor; /admin/** role=admin"))
        #expect(policy.decide(method: "GET", target: "/admin/stats")
            == .protected(requirements: [try ClaimRequirement.parse("role=auditor")]))
        #expect(policy.decide(method: "POST", target: "/admin/stats") == Self.admin)
    }

    @Test func severalRequirementsAllApply() throws {
        let rules = try RoutePolicy.parseRules(" DELETE  /admin/**  role=admin   emailVerified=true ;")
        #expect(rules.count == 1)
        #expect(rules[0].pattern.method == "DELETE")
        #expect(rules[0].requirements.map(\.description) == ["role=admin", "emailVerified=true"])
    }

    // MARK: patterns

    @Test(arguments: [
        ("/a/**/z", "/a/z", true), ("/a/**/z", "/a/b/c/z", true), ("/a/**/z", "/a/b", false), ("/a/**/z", "/z", false),
        ("/**", "/", true), ("/**", "/x/y", true), ("/", "/", true), ("/", "/x", false),
        ("/a/*/c", "/a/b/c", true), ("/a/*/c", "/a/c", false), ("/a/*/c", "/a/b/b/c", false),
        ("/files/a:b", "/files/a%3Ab", true), ("/files/a%3Ab", "/files/a:b", true), ("/files/a%3ab", "/files/a%3A%62", true),
        ("/caf%C3%A9", "/café", true), ("/café", "/cafe%CC%81", false),  // code points, not canonical equivalence
        ("/x/", "/x", true), ("/x", "/x/", true),
    ])
    func patternMatching(_ pattern: String, _ target: String, _ matches: Bool) throws {
        let parsed = try RoutePattern.parse(Substring(pattern))
        #expect(parsed.matches(method: "GET", path: try RoutePath.parse(Substring(target))) == matches, "\(pattern) ~ \(target)")
    }

    /// Public and optional patterns: the trailing slash as written, except after `**`.
    @Test(arguments: [
        ("/x", "/x", true), ("/x", "/x/", false), ("/x/", "/x/", true), ("/x/", "/x", false),
        ("/x/*", "/x/a", true), ("/x/*", "/x/a/", false), ("/x/**", "/x/", true), ("/x/**", "/x/a/", true),
        ("/", "/", true), ("/**", "/", true), ("/a/**/z", "/a/z/", false), ("/a/**/z", "/a/b/z", true),
    ])
    func exactPatternMatching(_ pattern: String, _ target: String, _ matches: Bool) throws {
        let parsed = try RoutePattern.parse(Substring(pattern))
        #expect(parsed.matchesExactly(method: "GET", path: try RoutePath.parse(Substring(target))) == matches, "\(pattern) ~ \(target)")
    }

    @Test(arguments: [
        ("admin", "the path must start with /"),
        ("get /x", "the method must be upper-case letters such as GET (methods are case-sensitive)"),
        ("GET POST /x", "expected [METHOD ]/path"),
        ("/a/*b", "* and ** must be whole segments"),
        ("/a/**/b/**", "at most one ** per pattern"),
        ("/a/../b", "dot segments (. and ..) are not allowed"),
        ("/a/%2e/b", "dot segments (. and ..) are not allowed"),
        ("/a//b", "empty segments (//) are not allowed"),
        ("/a%2Fb", "%2F and %5C (encoded / and \\) are not allowed"),
        ("/a%g0", "% must be followed by two hex digits"),
        ("/a?x=1", "? is not allowed in a pattern"),
        ("   ", "empty pattern"),
    ])
    func patternErrors(_ text: String, _ reason: String) {
        #expect(throws: RoutePattern.ParseError(reason: reason)) { try RoutePattern.parse(Substring(text)) }
    }

    @Test(arguments: [
        ("/health,/docs x y", "/docs x y", "expected [METHOD ]/path"),
        ("/health, GET /a/*b ,/x", "GET /a/*b", "* and ** must be whole segments"),
    ])
    func patternListErrorsNameTheOffendingPattern(_ text: String, _ offending: String, _ reason: String) {
        #expect(throws: ConfigurationValueError(offending: offending, reason: reason)) { try RoutePolicy.parsePatterns(text) }
    }

    @Test(arguments: [
        ("/admin/** role=", "missing value after ="),
        ("/admin/** =admin", "missing claim name before ="),
        ("/admin/** role", "a requirement is claim=value or claim~value"),
        ("/admin/** a..b=c", "missing claim name before ="),
        ("GET", "expected [METHOD ]/path followed by requirements"),
        ("GET admin role=admin", "the path must start with /"),
    ])
    func ruleErrors(_ text: String, _ reason: String) {
        #expect(throws: ConfigurationValueError(offending: text, reason: reason)) { try RoutePolicy.parseRules("/ok; " + text) }
    }

    /// Separators are found among Unicode scalars (found by Fuzz/RulesParser): a combining mark
    /// after `/` (U+031E) or a prepended one before `/`, `,`, `;` or `?` (U+0600) forms one
    /// `Character` with it. Split by `Character`s, `POST /admin/\u{31E}dmin` was one literal
    /// segment holding a `/` that no request path decodes to (the rule never matched), and
    /// `/a\u{600},/b` one pattern instead of two.
    @Test func separatorsAreFoundAmongUnicodeScalars() throws {
        let pattern = try RoutePattern.parse("POST /admin/\u{31E}dmin")
        #expect(pattern.segments == [.literal("admin"), .literal("\u{31E}dmin")])
        #expect(pattern.matches(method: "POST", path: try RoutePath.parse("/admin/%CC%9Edmin")))
        #expect(try RoutePolicy.parsePatterns("/a\u{600},/b").map(\.segments) == [[.literal("a\u{600}")], [.literal("b")]])
        #expect(try RoutePolicy.parseRules("/a\u{600};/b role=x").map(\.description) == ["/a\u{600}", "/b role=x"])
        #expect(throws: RoutePattern.ParseError(reason: "* and ** must be whole segments")) { try RoutePattern.parse("/*\u{301}") }
        #expect(throws: RoutePattern.ParseError(reason: "? is not allowed in a pattern")) { try RoutePattern.parse("/a\u{600}?b") }
        #expect(try RoutePath.parse("/a/\u{301}b").segments == ["a", "\u{301}b"])
        // the text is trimmed among scalars too: U+0600 and a space are one `Character`
        #expect(try RoutePolicy.parsePatterns(",/+\u{600} ,").map(\.text) == ["/+\u{600}"])
        #expect(try RoutePattern.parse("\tGET  /x\u{600} ").text == "GET  /x\u{600}")
    }
}
