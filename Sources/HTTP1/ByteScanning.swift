// Byte classes and the one loop that finds line ends. Everything here works on raw bytes:
// no String, no allocation, no table that needs lazy initialisation.

enum ASCII {
    static let htab: UInt8 = 0x09
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let doubleQuote: UInt8 = 0x22
    static let hash: UInt8 = 0x23
    static let comma: UInt8 = 0x2C
    static let slash: UInt8 = 0x2F
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let equals: UInt8 = 0x3D
    static let leftBracket: UInt8 = 0x5B
    static let backslash: UInt8 = 0x5C
    static let rightBracket: UInt8 = 0x5D
    static let delete: UInt8 = 0x7F
}

/// One bit per ASCII byte (bit n of `low` is byte n, bit n of `high` is byte 64 + n).
/// The constants are checked against the RFC's character lists in HTTP1Tests.
@inline(__always)
func isInByteSet(_ byte: UInt8, low: UInt64, high: UInt64) -> Bool {
    let mask = byte < 64 ? low : high  // compiles to a conditional move, not a branch
    return byte < 128 && (mask >> UInt64(byte & 63)) & 1 != 0
}

/// tchar (RFC 9110 §5.6.2): `!#$%&'*+-.^_`|~`, DIGIT, ALPHA. Methods, field names, transfer
/// codings and chunk-extension names are made of these.
@inline(__always)
func isTokenByte(_ byte: UInt8) -> Bool {
    isInByteSet(byte, low: 0x03FF_6CFA_0000_0000, high: 0x57FF_FFFF_C7FF_FFFE)
}

/// reg-name bytes (RFC 3986 §3.2.2): unreserved, sub-delims and `%` (of pct-encoded).
@inline(__always)
func isRegNameByte(_ byte: UInt8) -> Bool {
    isInByteSet(byte, low: 0x2BFF_7FF2_0000_0000, high: 0x47FF_FFFE_87FF_FFFE)
}

@inline(__always)
func isOptionalWhitespace(_ byte: UInt8) -> Bool { byte == ASCII.space || byte == ASCII.htab }

@inline(__always)
func isDigit(_ byte: UInt8) -> Bool { byte &- 0x30 < 10 }

/// The value of a HEXDIG, or nil.
@inline(__always)
func hexValue(_ byte: UInt8) -> UInt8? {
    if byte &- 0x30 < 10 { return byte &- 0x30 }
    let lower = byte | 0x20
    if lower &- 0x61 < 6 { return lower &- 0x61 &+ 10 }
    return nil
}

/// True if any of the 8 bytes is below 0x20 (CTL, including HTAB, CR and LF) or is DEL.
/// Classic SWAR: `(x - 0x20…) & ~x & 0x80…` is non-zero iff some byte is < 0x20 (exact for
/// "is there one", which is all we ask); the same on `x ^ 0x7F…` finds a DEL.
@inline(__always)
func containsControlOrDelete(_ word: UInt64) -> Bool {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let highBits: UInt64 = 0x8080_8080_8080_8080
    let belowSpace = (word &- (ones &* 0x20)) & ~word & highBits
    let delete = word ^ (ones &* UInt64(ASCII.delete))
    let isDelete = (delete &- ones) & ~delete & highBits
    return (belowSpace | isDelete) != 0
}

/// What is wrong with a line, found while looking for its end.
enum LineFault {
    case bareCarriageReturn
    case bareLineFeed
    /// A CTL other than HTAB, or DEL: never allowed in a request line, a field line or a chunk
    /// line (RFC 9112 §3, RFC 9110 §5.5, RFC 9112 §7.1.1).
    case controlCharacter
}

enum LineScan {
    /// The line's content ends at `contentEnd`, where its CRLF starts.
    case complete(contentEnd: Int)
    /// No line end yet; everything before `resumeAt` is checked, scan from there next time.
    case incomplete(resumeAt: Int)
    /// The line would end at or past `limit`.
    case tooLong
    case invalid(LineFault, at: Int)
}

/// Finds the CRLF ending the line that continues at `start`, checking every byte on the way:
/// RFC 9112 §2.2 — lines end in CRLF only — and no CTL but HTAB, no DEL, anywhere. The LF must
/// be at an index below `limit`. Bytes at or past `limit` are looked at only to decide "too long".
///
/// Eight bytes at a time while no byte is a control or DEL (the common case: long values such as
/// tokens and cookies), then byte by byte through the word that has one.
@inline(__always)
func scanLine(_ input: UnsafeRawBufferPointer, from start: Int, limit: Int) -> LineScan {
    let count = input.count
    let end = min(count, limit)
    var index = start
    while index < end {
        while index &+ 8 <= end,
              !containsControlOrDelete(input.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
            index &+= 8
        }
        let wordEnd = min(index &+ 8, end)
        while index < wordEnd {
            let byte = input[index]
            if (byte >= ASCII.space && byte != ASCII.delete) || byte == ASCII.htab {
                index &+= 1
                continue
            }
            if byte == ASCII.cr {
                guard index &+ 1 < count else { return .incomplete(resumeAt: index) }
                guard input[index &+ 1] == ASCII.lf else { return .invalid(.bareCarriageReturn, at: index) }
                return index &+ 1 < limit ? .complete(contentEnd: index) : .tooLong
            }
            return .invalid(byte == ASCII.lf ? .bareLineFeed : .controlCharacter, at: index)
        }
    }
    return count > limit ? .tooLong : .incomplete(resumeAt: index)
}

/// `bytes[range]` without leading and trailing SP/HTAB (OWS, RFC 9110 §5.6.3).
@inline(__always)
func trimmingWhitespace(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int> {
    var lower = range.lowerBound, upper = range.upperBound
    while lower < upper, isOptionalWhitespace(bytes[lower]) { lower &+= 1 }
    while upper > lower, isOptionalWhitespace(bytes[upper &- 1]) { upper &-= 1 }
    return lower..<upper
}

/// ASCII case-insensitive equality of `bytes[range]` with `lowercase` (which must be lowercase).
@inline(__always)
func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: StaticString) -> Bool {
    guard range.count == lowercase.utf8CodeUnitCount else { return false }
    let expected = lowercase.utf8Start
    var offset = 0
    for index in range {
        var byte = bytes[index]
        if byte &- 0x41 < 26 { byte |= 0x20 }
        if byte != expected[offset] { return false }
        offset &+= 1
    }
    return true
}

/// Calls `body` with each element of a comma-separated list (RFC 9110 §5.6.1) in
/// `bytes[range]`, OWS trimmed; empty elements included (the caller decides about them).
@inline(__always)
func forEachListElement(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
    var start = range.lowerBound
    var index = range.lowerBound
    while index <= range.upperBound {
        if index == range.upperBound || bytes[index] == ASCII.comma {
            body(trimmingWhitespace(bytes, start..<index))
            start = index &+ 1
        }
        index &+= 1
    }
}
