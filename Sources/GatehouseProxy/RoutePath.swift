import JOSE

/// A request path as route patterns see it: its segments, percent-decoded the way FastAPI's
/// router (Starlette) decodes them before it routes.
///
/// The request itself is forwarded byte for byte; this form exists only to decide which route
/// rule applies. The aim is that the rule gatehouse enforces is the rule for the route FastAPI
/// will actually run, so every spelling that could make the two disagree is either mapped to
/// the same segments or refused:
///
/// - **Escapes are decoded.** RFC 3986 §2.3/§6.2.2.2 makes `%61` and `a` the same (unreserved
///   characters), so `/%61dmin` is `/admin`. `%2e` is unreserved too (`.`). Starlette goes
///   further and decodes *every* escape before matching its routes (`/a%3Ab` routes as `/a:b`),
///   so gatehouse decodes every escape as well — comparing the encoded form would let `/x%3Ay`
///   slip past a rule written for `/x:y`.
/// - **Escapes that would change the segment structure are refused**: `%2F` (`/`) and `%5C`
///   (`\`). Starlette would route `/admin%2Fx` as `/admin/x`; a matcher keeping it as one
///   segment would not. Literal `\` is refused too (browsers turn it into `/`).
/// - **Dot segments are refused, not removed.** RFC 3986 §5.2.4 removes `.` and `..`, but
///   Starlette does not: it routes `/admin/../public` to `/admin/{path}`. Normalising would make
///   gatehouse apply `/public`'s rule to a request FastAPI serves as an admin route. Browsers
///   and HTTP clients remove dot segments before sending, so only crafted requests carry them.
/// - **Empty segments (`//`) are refused** for the same reason: Starlette does not collapse
///   them, and which route it picks for `//admin` depends on the app.
/// - **A trailing slash** is recorded apart from the segments: rules ignore it (a rule on
///   `/admin` also covers `/admin/`), while public and optional patterns do not (see
///   `RoutePolicy`), because Starlette may route `/x/` elsewhere than `/x`.
/// - **Case is kept**: paths are case-sensitive (RFC 3986 §6.2.2.1 only folds scheme and
///   host), as are Starlette's routes, so `/ADMIN` does not match `/admin/**` — and FastAPI
///   answers it 404 unless a route of its own matches that spelling.
package struct RoutePath: Sendable, Equatable, CustomStringConvertible {
    /// Decoded segments; the root `/` has none. Invalid UTF-8 decodes to U+FFFD, as in Starlette.
    package var segments: [String]
    /// Whether the path ends in `/` after at least one segment (`/a/`; the root does not count).
    package var trailingSlash = false

    /// Why a path cannot be matched unambiguously (answered 400).
    package enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        case notAbsolute
        case invalidEscape
        case encodedSeparator
        case backslash
        case dotSegment
        case emptySegment
        case controlCharacter

        package var description: String {
            switch self {
            case .notAbsolute: return "the path must start with /"
            case .invalidEscape: return "% must be followed by two hex digits"
            case .encodedSeparator: return "%2F and %5C (encoded / and \\) are not allowed"
            case .backslash: return "\\ is not allowed"
            case .dotSegment: return "dot segments (. and ..) are not allowed"
            case .emptySegment: return "empty segments (//) are not allowed"
            case .controlCharacter: return "control characters (%00-%1F, %7F) are not allowed"
            }
        }
    }

    /// `target` is the request target; a query (after `?`) is ignored.
    package static func parse(_ target: Substring) throws(Problem) -> RoutePath {
        // Unicode scalars, not `Character`s, as `RoutePattern.parse` (the same for an ASCII target).
        let path = target.unicodeScalars.prefix { $0 != "?" }
        guard path.first == "/" else { throw .notAbsolute }
        var raw = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        let trailingSlash = raw.count > 1 && raw.last?.isEmpty == true
        if raw.last?.isEmpty == true { raw.removeLast() }  // trailing slash (and the root itself)
        var segments: [String] = []
        segments.reserveCapacity(raw.count)
        for segment in raw {
            segments.append(try decodeSegment(Substring(segment)))
        }
        return RoutePath(segments: segments, trailingSlash: trailingSlash)
    }

    /// One segment, percent-decoded; refuses what `parse` documents.
    package static func decodeSegment(_ raw: Substring) throws(Problem) -> String {
        guard !raw.isEmpty else { throw .emptySegment }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(raw.utf8.count)
        var iterator = raw.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(PercentEncoding.hexValue), let low = iterator.next().flatMap(PercentEncoding.hexValue) else {
                    throw .invalidEscape
                }
                let decoded = high << 4 | low
                if decoded == UInt8(ascii: "/") || decoded == UInt8(ascii: "\\") { throw .encodedSeparator }
                // Python's `$` also matches before a final newline, so Starlette routes
                // `/admin%0A` to `/admin` while a literal comparison would not match it.
                if decoded < 0x20 || decoded == 0x7F { throw .controlCharacter }
                bytes.append(decoded)
            case UInt8(ascii: "\\"):
                throw .backslash
            default:
                if byte < 0x20 || byte == 0x7F { throw .controlCharacter }
                bytes.append(byte)
            }
        }
        if bytes == [0x2e] || bytes == [0x2e, 0x2e] { throw .dotSegment }
        return String(decoding: bytes, as: UTF8.self)
    }

    package var description: String { "/" + segments.joined(separator: "/") }
}
