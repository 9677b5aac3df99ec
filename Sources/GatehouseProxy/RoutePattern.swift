import GatehouseUpstream

/// One route pattern of `GATEHOUSE_PUBLIC_PATHS`, `GATEHOUSE_OPTIONAL_AUTH_PATHS` or
/// `GATEHOUSE_RULES`: `[METHOD ]/path`, where a segment is a literal, `*` (exactly one segment)
/// or `**` (any number of segments, none included; at most one `**` per pattern).
///
/// Literal segments are decoded exactly like request paths (`RoutePath`), so `/a%3Ab` and
/// `/a:b` are the same pattern, and compared case-sensitively. `matches` ignores a trailing
/// slash; `matchesExactly` (for patterns that relax the default) does not. Without a method it matches every method; `GET` also matches
/// `HEAD`, which RFC 9110 §9.3.2 defines as GET without the body (and which Starlette routes to
/// GET handlers), so a rule on `GET` cannot be dodged with `HEAD`.
package struct RoutePattern: Sendable, Equatable, CustomStringConvertible {
    package var method: String?
    package var segments: [Segment]
    /// As written in the configuration (for messages and `check-config`).
    package var text: String
    /// Whether the path was written with a trailing slash (`/a/`).
    package var trailingSlash = false

    package enum Segment: Sendable, Equatable {
        case literal(String)
        /// `*`: one whole segment.
        case one
        /// `**`: zero or more segments.
        case any
    }

    /// A pattern that cannot be parsed; `reason` says why, in words.
    package struct ParseError: Error, Sendable, Equatable {
        package var reason: String
    }

    /// Parses `[METHOD ]/path` (surrounding spaces ignored).
    ///
    /// Separators are found among Unicode scalars, not `Character`s: a combining mark after
    /// `/` (`/a/\u{301}b`) or a prepended mark before it would otherwise hide it in one
    /// grapheme cluster, and a literal segment could hold a `/` that no request path decodes to.
    package static func parse(_ text: Substring) throws(ParseError) -> RoutePattern {
        let words = text.unicodeScalars.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(Substring.init)
        let method: Substring?
        let path: Substring
        switch words.count {
        case 1: (method, path) = (nil, words[0])
        case 2: (method, path) = (words[0], words[1])
        case 0: throw ParseError(reason: "empty pattern")
        default: throw ParseError(reason: "expected [METHOD ]/path")
        }
        if let method {
            guard method.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else {
                throw ParseError(reason: "the method must be upper-case letters such as GET (methods are case-sensitive)")
            }
        }
        guard path.unicodeScalars.first == "/" else { throw ParseError(reason: "the path must start with /") }
        if let bad = path.unicodeScalars.first(where: { "?#,;".unicodeScalars.contains($0) || $0.properties.isWhitespace }) {
            throw ParseError(reason: "\(bad) is not allowed in a pattern")
        }
        var raw = path.unicodeScalars.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map(Substring.init)
        let trailingSlash = raw.count > 1 && raw.last?.isEmpty == true
        if raw.last?.isEmpty == true { raw.removeLast() }
        var segments: [Segment] = []
        for segment in raw {
            switch segment {
            case "*": segments.append(.one)
            case "**":
                guard !segments.contains(.any) else { throw ParseError(reason: "at most one ** per pattern") }
                segments.append(.any)
            default:
                guard !segment.unicodeScalars.contains("*") else { throw ParseError(reason: "* and ** must be whole segments") }
                do throws(RoutePath.Problem) {
                    segments.append(.literal(try RoutePath.decodeSegment(segment)))
                } catch {
                    throw ParseError(reason: error.description)
                }
            }
        }
        return RoutePattern(
            method: method.map(String.init), segments: segments,
            // From the first word to the last, among scalars too (`trimmingSpaces` would keep a
            // blank that a prepended mark joins into one `Character`).
            text: String(Substring(text.unicodeScalars[words[0].startIndex..<words[words.count - 1].endIndex])),
            trailingSlash: trailingSlash)
    }

    /// `matches`, and the trailing slash as written: `/x` opens `/x` but not `/x/`, which
    /// Starlette may route elsewhere (`/x/{rest:path}` with an empty rest). A pattern ending in
    /// `**` opens its whole subtree, so it covers both spellings.
    package func matchesExactly(method requestMethod: String, path: RoutePath) -> Bool {
        guard segments.last == .any || trailingSlash == path.trailingSlash else { return false }
        return matches(method: requestMethod, path: path)
    }

    package func matches(method requestMethod: String, path: RoutePath) -> Bool {
        if let method, method != requestMethod, !(method == "GET" && requestMethod == "HEAD") { return false }
        let actual = path.segments
        guard let star = segments.firstIndex(of: .any) else {
            return actual.count == segments.count && zip(segments, actual).allSatisfy(Self.matches)
        }
        // One `**`: the segments before it match a prefix, those after it a suffix.
        let before = segments[..<star]
        let after = segments[(star + 1)...]
        guard actual.count >= before.count + after.count else { return false }
        return zip(before, actual.prefix(before.count)).allSatisfy(Self.matches)
            && zip(after, actual.suffix(after.count)).allSatisfy(Self.matches)
    }

    private static func matches(_ pattern: Segment, _ segment: String) -> Bool {
        switch pattern {
        case .literal(let literal): return literal.utf8.elementsEqual(segment.utf8)  // code points, as Python compares
        case .one, .any: return true
        }
    }

    package var description: String { text }
}
