// libFuzzer target for the route-pattern and rules parser: `RoutePattern.parse`,
// `ClaimRequirement.parse`, `RoutePolicy.parsePatterns`/`parseRules` (GATEHOUSE_PUBLIC_PATHS,
// GATEHOUSE_OPTIONAL_AUTH_PATHS, GATEHOUSE_RULES) and the matching of the patterns they accept
// against request paths decoded by `RoutePath`.
//
// Two builds of this one file:
// - `-DFUZZING -sanitize=fuzzer` (scripts/fuzz.sh): exports `LLVMFuzzerTestOneInput`;
//   libFuzzer supplies `main`.
// - plain `swift build --product FuzzRulesParser`: an ordinary executable that replays the
//   files and directories given as arguments through the same `fuzzRules` (scripts/fuzz.sh
//   --replay, run by `make test`). A violated invariant traps in both builds.
//
// An input is text (invalid UTF-8 becomes U+FFFD, as a configuration value would). Its first
// line is a configuration value, given to every parser whole and in its `;`, `,` and blank-
// separated pieces; every line (the first included) is also a request target. Invariants: no
// trap; an error carries a non-empty reason; an accepted pattern, requirement, pattern list or
// rule list re-parses from its own text/description to an equal value; a pattern's literal
// segments are what a request path can decode to; a path spelled from a pattern's own segments
// (literals percent-encoded as a client would send them, `*` as one segment, `**` as none, one
// or two) parses and matches it, also exactly, and as `HEAD` when the pattern says `GET`; `**`
// matches its own prefix; on every target, `matches` agrees with an independent backtracking
// matcher, `matchesExactly` implies `matches`, a method-less pattern ignores the method, and
// a decoded path re-encodes to itself.
//
// `fuzzRules` returns true when the first line is accepted by `parseRules` or
// `parsePatterns` with at least one pattern (the `accept-`/`reject-` convention of the corpus).

import FuzzSupport
import GatehouseProxy

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Spelling paths the way a client would

let hexDigits = Array("0123456789ABCDEF".utf8)

func isUnreserved(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        true
    default:
        byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
    }
}

/// One decoded segment percent-encoded as an HTTP client sends it: ASCII only, every byte
/// outside RFC 3986's unreserved set escaped. `lowercase` picks the hex case (both decode alike).
func encodeSegment(_ segment: String, lowercase: Bool = false) -> String {
    var bytes: [UInt8] = []
    for byte in segment.utf8 {
        if isUnreserved(byte) {
            bytes.append(byte)
        } else {
            let high = hexDigits[Int(byte >> 4)], low = hexDigits[Int(byte & 0x0F)]
            bytes += [UInt8(ascii: "%"), lowercase ? high | 0x20 : high, lowercase ? low | 0x20 : low]
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

func spell(_ segments: [String], trailingSlash: Bool, lowercase: Bool = false) -> String {
    "/" + segments.map { encodeSegment($0, lowercase: lowercase) }.joined(separator: "/") + (trailingSlash && !segments.isEmpty ? "/" : "")
}

/// FNV-1a of the input, so libFuzzer can steer the choices derived from it.
func fnv(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
    return hash
}

// MARK: - An independent matcher

/// Backtracking over the segments, `**` as zero or more: written without `RoutePattern`'s
/// prefix/suffix arithmetic, to compare with it.
func referenceMatches(_ pattern: ArraySlice<RoutePattern.Segment>, _ path: ArraySlice<String>) -> Bool {
    guard let first = pattern.first else { return path.isEmpty }
    switch first {
    case .any:
        var rest = path
        while true {
            if referenceMatches(pattern.dropFirst(), rest) { return true }
            if rest.isEmpty { return false }
            rest = rest.dropFirst()
        }
    case .one:
        return !path.isEmpty && referenceMatches(pattern.dropFirst(), path.dropFirst())
    case .literal(let literal):
        guard let segment = path.first, Array(literal.utf8) == Array(segment.utf8) else { return false }
        return referenceMatches(pattern.dropFirst(), path.dropFirst())
    }
}

func referenceMatches(_ pattern: RoutePattern, method: String, path: RoutePath) -> Bool {
    if let expected = pattern.method, expected != method, !(expected == "GET" && method == "HEAD") { return false }
    return referenceMatches(pattern.segments[...], path.segments[...])
}

// MARK: - Invariants

let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get", "X"]

/// A pattern the parser accepted.
func checkPattern(_ pattern: RoutePattern, hash: UInt64) {
    invariant(pattern.description == pattern.text, "description is not the text")
    invariant(!pattern.text.isEmpty, "accepted pattern with empty text")
    invariant(pattern.segments.count(where: { $0 == .any }) <= 1, "more than one ** accepted")
    if let method = pattern.method {
        invariant(!method.isEmpty && method.utf8.allSatisfy { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") },
                  "method not upper-case letters: \(method)")
    }
    invariant(!(pattern.trailingSlash && pattern.segments.isEmpty), "trailing slash on the root")
    // The grammar as written: `[METHOD ]/path`, the path without `?`, `#`, `,`, `;` or blanks.
    let textBytes = Array(pattern.text.utf8)
    if let slash = textBytes.firstIndex(of: UInt8(ascii: "/")) {
        invariant(!textBytes[slash...].contains(where: { Array("?#,; \t\r\n".utf8).contains($0) }),
                  "accepted pattern \(pattern.text.debugDescription) holds ?, #, ,, ; or a blank in its path")
        let head = textBytes[..<slash]
        let method = head.prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
        invariant(head.dropFirst(method.count).allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                  && String(decoding: method, as: UTF8.self) == (pattern.method ?? ""),
                  "accepted pattern \(pattern.text.debugDescription) is not [METHOD ]/path")
    } else {
        invariant(false, "accepted pattern \(pattern.text.debugDescription) without /")
    }
    var literals: [String] = []
    for segment in pattern.segments {
        guard case .literal(let literal) = segment else { continue }
        literals.append(literal)
        // What `RoutePath.decodeSegment` can produce: anything else could never match a request.
        let bytes = Array(literal.utf8)
        invariant(!bytes.isEmpty, "empty literal segment")
        invariant(!bytes.contains(UInt8(ascii: "/")) && !bytes.contains(UInt8(ascii: "\\")),
                  "literal segment \(literal.debugDescription) holds a separator")
        invariant(!bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }), "literal segment holds a control byte")
        invariant(bytes != [0x2E] && bytes != [0x2E, 0x2E], "dot segment accepted")
    }

    // Re-parsing the text gives the same pattern.
    do throws(RoutePattern.ParseError) {
        let again = try RoutePattern.parse(Substring(pattern.text))
        invariant(again == pattern, "text \(pattern.text.debugDescription) re-parses to another pattern")
    } catch {
        invariant(false, "text \(pattern.text.debugDescription) of an accepted pattern is refused: \(error.reason)")
    }

    // A canonical spelling (literals percent-encoded) is the same pattern but for its text.
    var canonical = (pattern.method.map { $0 + " " } ?? "") + "/"
    canonical += pattern.segments.map { segment -> String in
        switch segment {
        case .literal(let literal): encodeSegment(literal, lowercase: hash & 1 == 1)
        case .one: "*"
        case .any: "**"
        }
    }.joined(separator: "/")
    if pattern.trailingSlash { canonical += "/" }
    do throws(RoutePattern.ParseError) {
        let again = try RoutePattern.parse(Substring(canonical))
        invariant(again.method == pattern.method && again.segments == pattern.segments && again.trailingSlash == pattern.trailingSlash,
                  "canonical spelling \(canonical.debugDescription) is another pattern")
    } catch {
        invariant(false, "canonical spelling \(canonical.debugDescription) is refused: \(error.reason)")
    }

    // Paths spelled from the pattern's own segments match it.
    let wildcard = ["x", "a b", "é", "*", "%", "..x", "HEAD"][Int(hash % 7)]
    for anyCount in [0, 1, 2] {
        var segments: [String] = []
        for segment in pattern.segments {
            switch segment {
            case .literal(let literal): segments.append(literal)
            case .one: segments.append(wildcard)
            case .any: segments += Array(repeating: wildcard, count: anyCount) + (anyCount == 2 ? ["z"] : [])
            }
        }
        let target = spell(segments, trailingSlash: pattern.trailingSlash, lowercase: hash & 2 == 2)
        let path: RoutePath
        do throws(RoutePath.Problem) {
            path = try RoutePath.parse(Substring(target))
        } catch {
            invariant(false, "\(target.debugDescription), spelled from pattern \(pattern.text.debugDescription), is refused: \(error)")
            return
        }
        invariant(path.segments == segments, "\(target.debugDescription) decodes to other segments")
        let method = pattern.method ?? methods[Int((hash >> 8) % UInt64(methods.count))]
        invariant(pattern.matches(method: method, path: path),
                  "pattern \(pattern.text.debugDescription) does not match \(target.debugDescription), spelled from its own segments")
        invariant(pattern.matchesExactly(method: method, path: path),
                  "pattern \(pattern.text.debugDescription) does not exactly match \(target.debugDescription)")
        if pattern.method == "GET" {
            invariant(pattern.matches(method: "HEAD", path: path), "GET pattern does not match HEAD")
        }
        if let expected = pattern.method {
            for other in methods where other != expected && !(expected == "GET" && other == "HEAD") {
                invariant(!pattern.matches(method: other, path: path), "pattern \(pattern.text) matches method \(other)")
            }
        }
        // Without `**` the segment count must be exact.
        if !pattern.segments.contains(.any) {
            if let longer = try? RoutePath.parse(Substring(spell(segments + ["extra"], trailingSlash: false))) {
                invariant(!pattern.matches(method: method, path: longer), "pattern without ** matches a longer path")
            }
            if !segments.isEmpty, let shorter = try? RoutePath.parse(Substring(spell(Array(segments.dropLast()), trailingSlash: false))) {
                invariant(!pattern.matches(method: method, path: shorter), "pattern without ** matches a shorter path")
            }
        }
        // The other trailing-slash spelling: `matches` ignores it, `matchesExactly` does not
        // (unless the pattern ends in `**`).
        if !segments.isEmpty, let flipped = try? RoutePath.parse(Substring(spell(segments, trailingSlash: !pattern.trailingSlash))) {
            invariant(pattern.matches(method: method, path: flipped), "matches depends on the trailing slash")
            invariant(pattern.matchesExactly(method: method, path: flipped) == (pattern.segments.last == .any),
                      "matchesExactly and the trailing slash disagree")
        }
    }
}

func checkRequirement(_ requirement: ClaimRequirement) {
    invariant(!requirement.claim.isEmpty && requirement.claim.allSatisfy { !$0.isEmpty }, "empty claim name accepted")
    invariant(!requirement.value.isEmpty, "empty value accepted")
    invariant(!requirement.claim.contains { $0.utf8.contains { "=~.".utf8.contains($0) } },
              "claim name \(requirement.claim) holds an operator or a dot")
    do throws(RoutePattern.ParseError) {
        let again = try ClaimRequirement.parse(Substring(requirement.description))
        invariant(again == requirement, "requirement \(requirement.description.debugDescription) re-parses to another")
    } catch {
        invariant(false, "description of an accepted requirement is refused: \(error.reason)")
    }
}

/// Every accepted pattern against one path.
func checkMatching(_ patterns: [RoutePattern], path: RoutePath) {
    for pattern in patterns {
        for method in methods {
            let matches = pattern.matches(method: method, path: path)
            invariant(matches == referenceMatches(pattern, method: method, path: path),
                      "pattern \(pattern.text.debugDescription) and the reference matcher disagree on \(method) \(path.segments)")
            if pattern.matchesExactly(method: method, path: path) {
                invariant(matches, "matchesExactly without matches")
            }
        }
        if pattern.method == nil {
            invariant(pattern.matches(method: "GET", path: path) == pattern.matches(method: "DELETE", path: path),
                      "a pattern without a method depends on it")
        }
        if pattern.method == "GET" {
            invariant(pattern.matches(method: "GET", path: path) == pattern.matches(method: "HEAD", path: path),
                      "GET pattern and HEAD disagree")
        }
    }
}

/// A request target as the HTTP/1.1 parser delivers it (`HTTP1` refuses anything else).
func isRequestTarget(_ line: Substring) -> Bool {
    line.utf8.first == UInt8(ascii: "/") && line.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") }
}

func checkPath(_ line: Substring, patterns: [RoutePattern]) {
    let path: RoutePath
    do throws(RoutePath.Problem) {
        path = try RoutePath.parse(line)
    } catch {
        invariant(!error.description.isEmpty, "path problem without a description")
        return
    }
    invariant(!path.trailingSlash || !path.segments.isEmpty, "trailing slash on the root")
    invariant(path.description == "/" + path.segments.joined(separator: "/"), "description is not the segments")
    if isRequestTarget(line) {
        // What a client can send decodes to segments a client can spell again.
        for segment in path.segments {
            let bytes = Array(segment.utf8)
            invariant(!bytes.isEmpty && !bytes.contains(UInt8(ascii: "/")) && !bytes.contains(UInt8(ascii: "\\"))
                      && !bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) && bytes != [0x2E] && bytes != [0x2E, 0x2E],
                      "decoded segment \(segment.debugDescription) of \(line.debugDescription) is not a valid segment")
        }
        let query = line.firstIndex(of: "?").map { String(line[$0...]) } ?? ""
        let respelled = spell(path.segments, trailingSlash: path.trailingSlash) + query
        do throws(RoutePath.Problem) {
            invariant(try RoutePath.parse(Substring(respelled)) == path, "\(respelled.debugDescription) decodes to another path")
        } catch {
            invariant(false, "re-encoded path \(respelled.debugDescription) is refused: \(error)")
        }
    }
    checkMatching(patterns, path: path)
}

// MARK: - Entry

@discardableResult
func fuzzRules(_ bytes: [UInt8]) -> Bool {
    let text = String(decoding: bytes, as: UTF8.self)
    let hash = fnv(bytes)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    let config = String(lines.first ?? "")
    var accepted: [RoutePattern] = []

    // Single patterns: the whole value and each piece a list parser would see.
    var pieces: [Substring] = [Substring(config)]
    pieces += config.split(separator: ",").prefix(16)
    pieces += config.split(separator: ";").prefix(16)
    // Among scalars too, as the list parsers split (a mark can join a separator to a `Character`).
    pieces += config.unicodeScalars.split(separator: ",").prefix(16).map(Substring.init)
    pieces += config.unicodeScalars.split(separator: ";").prefix(16).map(Substring.init)
    for piece in pieces {
        do throws(RoutePattern.ParseError) {
            let pattern = try RoutePattern.parse(piece)
            checkPattern(pattern, hash: hash)
            accepted.append(pattern)
        } catch {
            invariant(!error.reason.isEmpty, "pattern refused without a reason")
        }
    }

    // Requirements: every blank-separated word.
    for word in config.split(whereSeparator: { $0 == " " || $0 == "\t" }).prefix(32) {
        do throws(RoutePattern.ParseError) {
            checkRequirement(try ClaimRequirement.parse(word))
        } catch {
            invariant(!error.reason.isEmpty, "requirement refused without a reason")
        }
    }

    var listAccepted = false
    do throws(ConfigurationValueError) {
        let patterns = try RoutePolicy.parsePatterns(config)
        for pattern in patterns { checkPattern(pattern, hash: hash) }
        do throws(ConfigurationValueError) {
            let again = try RoutePolicy.parsePatterns(patterns.map(\.text).joined(separator: ","))
            invariant(again == patterns, "the pattern list re-parses to another list")
        } catch {
            invariant(false, "the texts of an accepted pattern list are refused: \(error.reason)")
        }
        accepted += patterns
        listAccepted = !patterns.isEmpty
    } catch {
        invariant(!error.reason.isEmpty && !error.offending.isEmpty, "pattern list refused without a reason")
    }

    do throws(ConfigurationValueError) {
        let rules = try RoutePolicy.parseRules(config)
        for rule in rules {
            checkPattern(rule.pattern, hash: hash)
            for requirement in rule.requirements { checkRequirement(requirement) }
        }
        do throws(ConfigurationValueError) {
            let again = try RoutePolicy.parseRules(rules.map(\.description).joined(separator: "; "))
            invariant(again == rules, "the rules re-parse to other rules")
        } catch {
            invariant(false, "the descriptions of accepted rules are refused: \(error.reason)")
        }
        accepted += rules.map(\.pattern)
        listAccepted = listAccepted || !rules.isEmpty
    } catch {
        invariant(!error.reason.isEmpty && !error.offending.isEmpty, "rules refused without a reason")
    }

    // Every line is also a request target; `accepted` is small (at most a few dozen patterns).
    for line in lines.prefix(64) {
        checkPath(line, patterns: Array(accepted.prefix(64)))
    }
    return listAccepted
}

// MARK: - Entry points

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzRules(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
@main
enum ReplayMain {
    static func main() {
        exit(Replay.run(name: "FuzzRulesParser", arguments: Array(CommandLine.arguments.dropFirst()), fuzzRules))
    }
}
#endif
