import GatehouseUpstream

/// Which requests need a token, and what its claims must say: `GATEHOUSE_RULES`,
/// `GATEHOUSE_OPTIONAL_AUTH_PATHS` and `GATEHOUSE_PUBLIC_PATHS`.
///
/// A request is classified once, by its method and path (`RoutePath`):
/// 1. the first matching rule of `GATEHOUSE_RULES` → a token whose claims meet the rule;
/// 2. else a pattern of `GATEHOUSE_OPTIONAL_AUTH_PATHS` → a token is checked if present;
/// 3. else a pattern of `GATEHOUSE_PUBLIC_PATHS` → no token needed;
/// 4. else a token is needed (the default: everything is protected).
///
/// Where patterns of different variables overlap, the more demanding one wins, so a broad
/// public or optional pattern can never open a path a rule protects (fail closed).
package struct RoutePolicy: Sendable {
    package struct Rule: Sendable, Equatable, CustomStringConvertible {
        package var pattern: RoutePattern
        /// All must hold; none means "a valid token, whatever its claims".
        package var requirements: [ClaimRequirement]

        package var description: String { ([pattern.text] + requirements.map(\.description)).joined(separator: " ") }
    }

    var rules: [Rule] = []
    var optionalPaths: [RoutePattern] = []
    var publicPaths: [RoutePattern] = []

    enum Decision: Sendable, Equatable {
        case publicRoute
        case optional
        /// A token is required; its claims must meet `requirements`.
        case protected(requirements: [ClaimRequirement])
        /// The path cannot be matched unambiguously: 400.
        case invalidPath(RoutePath.Problem)
    }

    /// True when no pattern is configured: every request is protected, whatever its path.
    var isEmpty: Bool { rules.isEmpty && optionalPaths.isEmpty && publicPaths.isEmpty }

    /// `target` is the request target as received (a query is ignored).
    func decide(method: String, target: Substring) -> Decision {
        // Without patterns the path cannot change the answer, so odd paths are not refused.
        if isEmpty { return .protected(requirements: []) }
        let path: RoutePath
        do throws(RoutePath.Problem) {
            path = try RoutePath.parse(target)
        } catch {
            return .invalidPath(error)
        }
        if let rule = rules.first(where: { $0.pattern.matches(method: method, path: path) }) {
            return .protected(requirements: rule.requirements)
        }
        // Rules ignore a trailing slash (stricter); the patterns that relax the default take
        // the path's spelling as written (also stricter).
        if optionalPaths.contains(where: { $0.matchesExactly(method: method, path: path) }) { return .optional }
        if publicPaths.contains(where: { $0.matchesExactly(method: method, path: path) }) { return .publicRoute }
        return .protected(requirements: [])
    }

    // MARK: Configuration syntax

    static let patternsExpected =
        "a comma list of [METHOD ]/path patterns such as /health,/docs,GET /public/* (* is one segment, ** any depth)"
    static let rulesExpected =
        "a ;-separated list of [METHOD ]/path claim=value|claim~value … such as /admin/** role=admin; POST /api/** emailVerified=true"

    /// A comma list of patterns (`GATEHOUSE_PUBLIC_PATHS`, `GATEHOUSE_OPTIONAL_AUTH_PATHS`).
    package static func parsePatterns(_ text: String) throws(ConfigurationValueError) -> [RoutePattern] {
        var patterns: [RoutePattern] = []
        for item in text.unicodeScalars.split(separator: ",").map(Substring.init) where !item.allSatisfy({ $0 == " " || $0 == "\t" }) {
            do throws(RoutePattern.ParseError) {
                patterns.append(try RoutePattern.parse(item))
            } catch {
                throw ConfigurationValueError(offending: item.trimmingSpaces(), reason: error.reason)
            }
        }
        return patterns
    }

    /// `GATEHOUSE_RULES`: `;`-separated `[METHOD ]/path requirement…`.
    package static func parseRules(_ text: String) throws(ConfigurationValueError) -> [Rule] {
        var rules: [Rule] = []
        for item in text.unicodeScalars.split(separator: ";").map(Substring.init) where !item.allSatisfy({ $0 == " " || $0 == "\t" }) {
            let words = item.unicodeScalars.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(Substring.init)
            let pathIndex = words.first?.unicodeScalars.first == "/" ? 0 : 1
            do throws(RoutePattern.ParseError) {
                guard words.count > pathIndex else {
                    throw RoutePattern.ParseError(reason: "expected [METHOD ]/path followed by requirements")
                }
                let patternText = words[...pathIndex].joined(separator: " ")
                let pattern = try RoutePattern.parse(Substring(patternText))
                var requirements: [ClaimRequirement] = []
                for word in words[(pathIndex + 1)...] {
                    requirements.append(try ClaimRequirement.parse(word))
                }
                rules.append(Rule(pattern: pattern, requirements: requirements))
            } catch {
                throw ConfigurationValueError(offending: item.trimmingSpaces(), reason: error.reason)
            }
        }
        return rules
    }
}

/// A configuration value that failed to parse: which part, and why.
package struct ConfigurationValueError: Error, Sendable, Equatable {
    package var offending: String
    package var reason: String
}
