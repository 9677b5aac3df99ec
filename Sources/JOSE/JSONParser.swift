/// A small, strict RFC 8259 parser. We keep our own instead of Foundation's because:
/// - duplicate member names must be REJECTED: RFC 7515 §5.2 step 3 and RFC 7519 §7.2 allow
///   rejecting them, and RFC 8725 §2.x/§3 warns that parsers disagreeing on which duplicate
///   wins lets a token mean different things to the proxy and to the upstream API;
/// - it must reject invalid UTF-8 and lone surrogates (RFC 8259 §8.1, §8.2) rather than
///   repair them, for the same "one meaning" reason;
/// - it bounds nesting depth (stack safety) and stays off Foundation on the hot path.
/// Size limits are the caller's job (token ≤ 16 KiB, JWKS ≤ 1 MiB).
public enum JSONParser {
    public static let defaultMaxDepth = 16

    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) -> Result<JSONValue, JSONParseError> {
        var parser = Parser(bytes: bytes, maxDepth: maxDepth)
        // Scanning goes through a Span: bounds-checked, but free of the per-access
        // retain/release and uniqueness checks of Array in a mutating context.
        let b = bytes.span
        do throws(JSONParseError) {
            parser.skipWhitespace(b)
            let value = try parser.parseValue(b, depth: 0)
            parser.skipWhitespace(b)
            if parser.index != bytes.count { throw parser.error(.trailingData) }
            return .success(value)
        } catch {
            return .failure(error)
        }
    }

    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) -> Result<JSONValue, JSONParseError> {
        parse(Array(text.utf8), maxDepth: maxDepth)
    }

    /// Parses a document that must be one JSON object and returns its members in document
    /// order instead of a dictionary. Same grammar and the same rejections as `parse` (a
    /// non-object document fails with `.unexpectedByte` at its first byte); members are
    /// compared by name directly while there are few of them, so a JOSE header (2–3 members,
    /// of which the verifier reads three by name) costs no hashing at all.
    static func parseObjectMembers(
        _ bytes: [UInt8], maxDepth: Int = defaultMaxDepth, expectedCount: Int = 4
    ) -> Result<[JSONMember], JSONParseError> {
        var parser = Parser(bytes: bytes, maxDepth: maxDepth)
        let b = bytes.span
        do throws(JSONParseError) {
            parser.skipWhitespace(b)
            guard parser.index < b.count else { throw parser.error(.unexpectedEnd) }
            guard b[parser.index] == UInt8(ascii: "{") else { throw parser.error(.unexpectedByte) }
            let members = try parser.parseMembers(b, depth: 1, expectedCount: expectedCount)
            parser.skipWhitespace(b)
            if parser.index != bytes.count { throw parser.error(.trailingData) }
            return .success(members)
        } catch {
            return .failure(error)
        }
    }
}

private struct Parser {
    let bytes: [UInt8]
    let maxDepth: Int
    var index = 0
    /// Whether the last string `parseString` returned was plain ASCII without escapes.
    var lastStringWasPlainASCII = false

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    static let ones: UInt64 = 0x0101_0101_0101_0101
    static let highs: UInt64 = 0x8080_8080_8080_8080

    func error(_ kind: JSONParseError.Kind) -> JSONParseError {
        JSONParseError(kind: kind, offset: index)
    }

    mutating func skipWhitespace(_ b: Span<UInt8>) {
        while index < b.count {
            switch b[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func expect(_ b: Span<UInt8>, _ literal: StaticString, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
        let count = literal.utf8CodeUnitCount
        guard index + count <= b.count else { throw error(.unexpectedEnd) }
        let matches = literal.withUTF8Buffer { lit in
            for k in 0..<count where b[index + k] != lit[k] { return false }
            return true
        }
        guard matches else { throw error(.unexpectedByte) }
        index += count
        return value
    }

    mutating func parseValue(_ b: Span<UInt8>, depth: Int) throws(JSONParseError) -> JSONValue {
        guard index < b.count else { throw error(.unexpectedEnd) }
        switch b[index] {
        case UInt8(ascii: "{"): return try parseObject(b, depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(b, depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString(b))
        case UInt8(ascii: "t"): return try expect(b, "true", .bool(true))
        case UInt8(ascii: "f"): return try expect(b, "false", .bool(false))
        case UInt8(ascii: "n"): return try expect(b, "null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber(b)
        default: throw error(.unexpectedByte)
        }
    }

    mutating func parseObject(_ b: Span<UInt8>, depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maxDepth else { throw error(.tooDeep) }
        index += 1  // {
        // No capacity reserved up front: this parses nested objects, which hostile input can
        // make tiny and numerous (`[{},{},…]`); a reservation per object would turn each
        // 3-byte `{},` into a kilobyte of memory. (The claims object itself goes through
        // `parseMembers`.)
        var members: [String: JSONValue] = [:]
        skipWhitespace(b)
        if index < b.count, b[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            let (name, _, nameOffset, value) = try parseMember(b, depth: depth)
            if members.updateValue(value, forKey: name) != nil {
                throw JSONParseError(kind: .duplicateMember, offset: nameOffset)
            }
            if try !moreMembers(b) { return .object(members) }
        }
    }

    /// One `"name": value` member of an object (RFC 8259 §4); returns the name's offset too,
    /// for a duplicate's error.
    private mutating func parseMember(
        _ b: Span<UInt8>, depth: Int
    ) throws(JSONParseError) -> (name: String, isASCII: Bool, offset: Int, value: JSONValue) {
        skipWhitespace(b)
        guard index < b.count else { throw error(.unexpectedEnd) }
        guard b[index] == UInt8(ascii: "\"") else { throw error(.unexpectedByte) }
        let nameOffset = index
        let name = try parseString(b)
        let isASCII = lastStringWasPlainASCII
        skipWhitespace(b)
        guard index < b.count else { throw error(.unexpectedEnd) }
        guard b[index] == UInt8(ascii: ":") else { throw error(.unexpectedByte) }
        index += 1
        skipWhitespace(b)
        return (name, isASCII, nameOffset, try parseValue(b, depth: depth))
    }

    /// After a member: true at `,` (another member follows), false at the closing `}`.
    private mutating func moreMembers(_ b: Span<UInt8>) throws(JSONParseError) -> Bool {
        skipWhitespace(b)
        guard index < b.count else { throw error(.unexpectedEnd) }
        switch b[index] {
        case UInt8(ascii: ","): index += 1; return true
        case UInt8(ascii: "}"): index += 1; return false
        default: throw error(.unexpectedByte)
        }
    }

    /// `parseObject`, but keeping the members as an array. Duplicates (RFC 8259 §4 leaves
    /// them undefined; we reject, see above) are found by direct comparison while the object
    /// has at most `linearLimit` members and by a set beyond that, so a hostile header with
    /// thousands of members costs O(n), not O(n²).
    mutating func parseMembers(_ b: Span<UInt8>, depth: Int, expectedCount: Int) throws(JSONParseError) -> [JSONMember] {
        // Up to this many members, duplicates are found by comparing names rather than by
        // hashing them: cheaper for a JOSE header or a Better Auth payload (about a dozen).
        let linearLimit = 16
        guard depth <= maxDepth else { throw error(.tooDeep) }
        index += 1  // {
        var members: [JSONMember] = []
        var names: Set<String>?  // only once the object outgrows `linearLimit`
        var asciiNames: UInt32 = 0  // bit i: member i's name is plain ASCII (i < linearLimit)
        skipWhitespace(b)
        if index < b.count, b[index] == UInt8(ascii: "}") {
            index += 1
            return members
        }
        members.reserveCapacity(expectedCount)
        while true {
            let (name, isASCII, nameOffset, value) = try parseMember(b, depth: depth)
            // Same order as `parseObject`: the value is parsed before the duplicate is reported.
            let duplicate: Bool
            if names != nil {
                duplicate = !names!.insert(name).inserted
            } else if members.count < linearLimit {
                // Names are compared as Swift compares strings (canonical equivalence), as the
                // set below and dictionaries do. Between two plain-ASCII names that is plain
                // byte equality, so differing lengths settle it without the general comparison.
                let count = name.utf8.count
                let fastMask = isASCII ? asciiNames : 0
                var found = false
                for (i, member) in members.enumerated() {
                    if fastMask & (1 << i) != 0 && member.name.utf8.count != count { continue }
                    if member.name == name {
                        found = true
                        break
                    }
                }
                duplicate = found
            } else {
                var set = Set(members.map(\.name))
                duplicate = !set.insert(name).inserted
                names = set
            }
            if duplicate { throw JSONParseError(kind: .duplicateMember, offset: nameOffset) }
            if isASCII && members.count < linearLimit { asciiNames |= 1 << members.count }
            members.append(JSONMember(name: name, value: value))
            if try !moreMembers(b) { return members }
        }
    }

    mutating func parseArray(_ b: Span<UInt8>, depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maxDepth else { throw error(.tooDeep) }
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace(b)
        if index < b.count, b[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace(b)
            elements.append(try parseValue(b, depth: depth))
            skipWhitespace(b)
            guard index < b.count else { throw error(.unexpectedEnd) }
            switch b[index] {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"): index += 1; return .array(elements)
            default: throw error(.unexpectedByte)
            }
        }
    }

    /// Parses a string starting at its opening quote (RFC 8259 §7).
    ///
    /// Fast path, taken by practically every JWT string: no escapes. One scan finds the closing
    /// quote and rejects control characters (§7: U+0000–U+001F must be escaped), while OR-ing
    /// all bytes together records whether any is non-ASCII. ASCII text is valid UTF-8 by
    /// construction, so it becomes a String without a second validation; anything else goes
    /// through the standard library's validating initialiser, which rejects (never repairs)
    /// ill-formed UTF-8 (§8.1). The scan keeps its position in a local so the hot loop does no
    /// memory traffic on `self`.
    mutating func parseString(_ b: Span<UInt8>) throws(JSONParseError) -> String {
        let start = index + 1  // after the opening quote
        let count = b.count
        var i = start
        var seen: UInt8 = 0  // OR of every byte: bit 7 set iff some byte is non-ASCII
        // Eight bytes at a time while none of them needs a closer look (SWAR: the classic
        // "has a byte less than n" / "has a zero byte" tests, exact as to *whether* a lane
        // matches, which is all we need — the byte loop below finds *which*). The load is a
        // bounds-checked RawSpan read, so this stays safe code.
        let raw = b.bytes
        var wide: UInt64 = 0
        while i &+ 8 <= count {
            let w = raw.unsafeLoadUnaligned(fromByteOffset: i, as: UInt64.self)
            let quote = w ^ (Self.ones &* 0x22), backslash = w ^ (Self.ones &* 0x5C)
            let control = (w &- Self.ones &* 0x20) & ~w
            let hit = (control | (quote &- Self.ones) & ~quote | (backslash &- Self.ones) & ~backslash) & Self.highs
            if hit != 0 { break }
            wide |= w
            i &+= 8
        }
        if wide & Self.highs != 0 { seen = 0x80 }
        while i < count {
            let byte = b[i]
            // Stop at the closing quote, an escape, or a control character (an error).
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            seen |= byte
            i += 1
        }
        guard i < count else { index = i; throw error(.unexpectedEnd) }
        let byte = b[i]
        if byte == UInt8(ascii: "\"") {
            let raw = bytes[start..<i]
            index = i + 1
            lastStringWasPlainASCII = seen & 0x80 == 0
            if seen & 0x80 == 0 {
                // Through a buffer pointer: `String(decoding:)` on an ArraySlice pays a dynamic
                // cast per call (to find contiguous storage), more than decoding a short name.
                return raw.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
            }
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw JSONParseError(kind: .invalidUTF8, offset: start)
            }
            return text
        }
        index = i
        if byte < 0x20 { throw error(.controlCharacter) }
        lastStringWasPlainASCII = false
        return try parseEscapedString(b, start: start)
    }

    /// Slow path for strings containing escapes (RFC 8259 §7).
    mutating func parseEscapedString(_ b: Span<UInt8>, start: Int) throws(JSONParseError) -> String {
        var buffer = Array(bytes[start..<index])
        while index < b.count {
            let byte = b[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let text = String(validating: buffer, as: UTF8.self) else {
                    throw JSONParseError(kind: .invalidUTF8, offset: start)
                }
                return text
            case UInt8(ascii: "\\"):
                index += 1
                guard index < b.count else { throw error(.unexpectedEnd) }
                let escape = b[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): buffer.append(escape)
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(0x0A)
                case UInt8(ascii: "r"): buffer.append(0x0D)
                case UInt8(ascii: "t"): buffer.append(0x09)
                case UInt8(ascii: "u"): appendUTF8(of: try parseUnicodeEscape(b), to: &buffer)
                default: throw error(.invalidEscape)
                }
            default:
                if byte < 0x20 { throw error(.controlCharacter) }
                buffer.append(byte)
                index += 1
            }
        }
        throw error(.unexpectedEnd)
    }

    /// After `\u`: one BMP scalar, or a high+low surrogate pair written as two escapes.
    mutating func parseUnicodeEscape(_ b: Span<UInt8>) throws(JSONParseError) -> UInt32 {
        let first = try parseHex4(b)
        switch first {
        case 0xD800...0xDBFF:
            guard index + 2 <= b.count, b[index] == UInt8(ascii: "\\"), b[index + 1] == UInt8(ascii: "u") else {
                throw error(.loneSurrogate)
            }
            index += 2
            let second = try parseHex4(b)
            guard (0xDC00...0xDFFF).contains(second) else { throw error(.loneSurrogate) }
            return 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        case 0xDC00...0xDFFF:
            throw error(.loneSurrogate)
        default:
            return first
        }
    }

    mutating func parseHex4(_ b: Span<UInt8>) throws(JSONParseError) -> UInt32 {
        guard index + 4 <= b.count else { throw error(.unexpectedEnd) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = b[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error(.invalidEscape)
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    func appendUTF8(of scalar: UInt32, to buffer: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            buffer.append(UInt8(scalar))
        case 0x80..<0x800:
            buffer.append(UInt8(0xC0 | scalar >> 6))
            buffer.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            buffer.append(UInt8(0xE0 | scalar >> 12))
            buffer.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            buffer.append(UInt8(0x80 | scalar & 0x3F))
        default:
            buffer.append(UInt8(0xF0 | scalar >> 18))
            buffer.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            buffer.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            buffer.append(UInt8(0x80 | scalar & 0x3F))
        }
    }

    /// RFC 8259 §6 grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    mutating func parseNumber(_ b: Span<UInt8>) throws(JSONParseError) -> JSONValue {
        let start = index
        var negative = false
        if b[index] == UInt8(ascii: "-") { negative = true; index += 1 }
        guard index < b.count, isDigit(b[index]) else { throw error(.invalidNumber) }
        if b[index] == UInt8(ascii: "0") {
            index += 1
            if index < b.count, isDigit(b[index]) { throw error(.invalidNumber) }  // leading zero
        } else {
            while index < b.count, isDigit(b[index]) { index += 1 }
        }
        let integerDigits = index - start - (negative ? 1 : 0)
        var integral = true
        if index < b.count, b[index] == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard index < b.count, isDigit(b[index]) else { throw error(.invalidNumber) }
            while index < b.count, isDigit(b[index]) { index += 1 }
        }
        if index < b.count, b[index] == UInt8(ascii: "e") || b[index] == UInt8(ascii: "E") {
            integral = false
            index += 1
            if index < b.count, b[index] == UInt8(ascii: "+") || b[index] == UInt8(ascii: "-") { index += 1 }
            guard index < b.count, isDigit(b[index]) else { throw error(.invalidNumber) }
            while index < b.count, isDigit(b[index]) { index += 1 }
        }
        // Up to 18 digits always fit in Int64: accumulate without any string work.
        if integral, integerDigits <= 18 {
            var value: Int64 = 0
            for k in (start + (negative ? 1 : 0))..<index { value = value * 10 + Int64(b[k] - UInt8(ascii: "0")) }
            return .int(negative ? -value : value)
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if integral, let value = Int64(text) { return .int(value) }
        guard let value = Double(text), value.isFinite else {
            throw JSONParseError(kind: .invalidNumber, offset: start)
        }
        return .double(value)
    }

    @inline(__always) func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}
