import JOSE

/// One requirement of a `GATEHOUSE_RULES` rule on a verified token's claims.
///
/// - `claim=value`: the claim equals `value`, read as the claim's own type — a string
///   exactly, a number numerically (`level=2` matches `2` and `2.0`), a boolean as `true` or
///   `false`; for an array claim, any element equal to `value` (`role=admin` matches
///   `["user","admin"]`).
/// - `claim~value`: the claim contains `value` as a word — a space-delimited string such as
///   OAuth's `scope` (RFC 6749 §3.3: `scope~reports:read` matches `"openid reports:read"`), or
///   an array with that string as an element.
///
/// `claim` may be a dot path into nested objects (`org.role=owner`), as in
/// `GATEHOUSE_CLAIM_HEADERS`. A missing claim, `null`, or an object never satisfies a requirement.
package struct ClaimRequirement: Sendable, Equatable, CustomStringConvertible {
    package var claim: [String]
    package var kind: Kind
    package var value: String

    package enum Kind: Character, Sendable {
        case equals = "="
        case containsWord = "~"
    }

    package static func parse(_ text: Substring) throws(RoutePattern.ParseError) -> ClaimRequirement {
        // Among Unicode scalars, as the route patterns: a combining or prepended mark must not
        // hide an operator or a dot in one `Character`.
        guard let op = text.unicodeScalars.firstIndex(where: { $0 == "=" || $0 == "~" }),
            let kind = Kind(rawValue: Character(text.unicodeScalars[op]))
        else {
            throw RoutePattern.ParseError(reason: "a requirement is claim=value or claim~value")
        }
        let name = Substring(text.unicodeScalars[..<op])
        let value = Substring(text.unicodeScalars[text.unicodeScalars.index(after: op)...])
        let path = name.unicodeScalars.split(separator: ".", omittingEmptySubsequences: false).map { String(Substring($0)) }
        guard !name.isEmpty, path.allSatisfy({ !$0.isEmpty }) else {
            throw RoutePattern.ParseError(reason: "missing claim name before \(kind.rawValue)")
        }
        guard !value.isEmpty else { throw RoutePattern.ParseError(reason: "missing value after \(kind.rawValue)") }
        return ClaimRequirement(claim: path, kind: kind, value: String(value))
    }

    func isSatisfied(by claims: JWTClaims) -> Bool {
        guard let found = claims.value(at: claim) else { return false }
        switch (kind, found) {
        case (.equals, .array(let elements)): return elements.contains(where: equals)
        case (.equals, _): return equals(found)
        case (.containsWord, .string(let words)): return words.split(separator: " ").contains { $0.utf8.elementsEqual(value.utf8) }
        case (.containsWord, .array(let elements)): return elements.contains(.string(value))
        case (.containsWord, _): return false
        }
    }

    /// `value` compared with one scalar claim, in the claim's type.
    private func equals(_ claim: JSONValue) -> Bool {
        switch claim {
        case .string(let string): return string.utf8.elementsEqual(value.utf8)
        case .bool(let bool): return value == (bool ? "true" : "false")
        case .int(let int):
            // Integers compare exactly (a Double would equate 2^53 and 2^53 + 1); `1.0` and
            // `1e0` still mean 1.
            if let exact = Int64(value) { return exact == int }
            return number.flatMap { Int64(exactly: $0) } == int
        case .double(let double): return number == double
        case .null, .array, .object: return false
        }
    }

    /// `value` as a decimal number (no hex, `nan` or `inf`, which `Double.init` would accept).
    private var number: Double? {
        guard value.utf8.allSatisfy({ "0123456789+-.eE".utf8.contains($0) }), let number = Double(value), number.isFinite
        else { return nil }
        return number
    }

    package var description: String { claim.joined(separator: ".") + String(kind.rawValue) + value }
}
