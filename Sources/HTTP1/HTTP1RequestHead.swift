/// The HTTP version of a request line; only these two exist on the wire (RFC 9112 §2.3).
public enum HTTP1Version: Sendable, Equatable {
    case http10
    case http11
}

/// How the request body is delimited (RFC 9112 §6.3).
public enum HTTP1BodyFraming: Sendable, Equatable {
    /// No Content-Length and no Transfer-Encoding: a request without a body (RFC 9112 §6.3 item 7).
    case none
    case contentLength(Int64)
    case chunked
}

/// Offsets of one field line inside `HTTP1RequestHead.raw`; the value is already OWS-trimmed.
/// Int32 keeps the index at 16 bytes a field (heads are far below 2 GiB: `maxHeadBytes` is clamped).
struct FieldSpan: Sendable, Equatable {
    var nameStart: Int32
    var nameEnd: Int32
    var valueStart: Int32
    var valueEnd: Int32
}

/// Where the request line's parts are inside `raw`: the method is `raw[0..<methodEnd]`.
struct RequestLine: Sendable, Equatable {
    var methodEnd: Int32 = 0
    var targetStart: Int32 = 0
    var targetEnd: Int32 = 0
    var version: HTTP1Version = .http11
}

/// What the fields mean for the connection, decided once when the head is complete.
struct HeadSemantics: Equatable {
    var framing: HTTP1BodyFraming
    var keepAlive: Bool
    var expectsContinue: Bool
    var isUpgrade: Bool
}

/// A complete, validated request head: one copy of its bytes plus byte ranges into them.
/// Nothing is decoded until asked for; the `String` accessors allocate, the range accessors do not.
public struct HTTP1RequestHead: Sendable {
    /// The head's bytes from the request line's first byte through the empty line's CRLF
    /// (skipped leading empty lines are not part of it).
    public let raw: [UInt8]
    public let version: HTTP1Version
    /// How the body that follows is delimited; the parser has already refused every ambiguous case.
    public let framing: HTTP1BodyFraming
    /// Whether the connection may carry another request after this one (RFC 9112 §9.3):
    /// HTTP/1.1 unless a `Connection` field has the token `close`; HTTP/1.0 only with `keep-alive`
    /// (and no `close`).
    public let keepAlive: Bool
    /// `Expect: 100-continue` (token compared case-insensitively, RFC 9110 §10.1.1) on an HTTP/1.1
    /// request; RFC 9110 §10.1.1 says a server MUST ignore it in an HTTP/1.0 request.
    public let expectsContinue: Bool
    /// A `Connection` token `upgrade` and an `Upgrade` field (RFC 9110 §7.8), on HTTP/1.1 (an
    /// Upgrade in an HTTP/1.0 request MUST be ignored, RFC 9110 §7.8). If the server switches
    /// protocols, the bytes after this message are not HTTP/1.1: stop calling `parse`.
    public let isUpgrade: Bool

    let requestLine: RequestLine
    let fields: [FieldSpan]

    init(raw: [UInt8], requestLine: RequestLine, fields: [FieldSpan], semantics: HeadSemantics) {
        self.raw = raw
        self.requestLine = requestLine
        self.fields = fields
        self.version = requestLine.version
        self.framing = semantics.framing
        self.keepAlive = semantics.keepAlive
        self.expectsContinue = semantics.expectsContinue
        self.isUpgrade = semantics.isUpgrade
    }

    // MARK: Request line

    public var methodRange: Range<Int> { 0..<Int(requestLine.methodEnd) }
    public var targetRange: Range<Int> { Int(requestLine.targetStart)..<Int(requestLine.targetEnd) }
    public var method: String { String(decoding: raw[methodRange], as: UTF8.self) }
    /// The origin-form target, path and query, exactly as sent (visible ASCII only).
    public var target: String { String(decoding: raw[targetRange], as: UTF8.self) }
    /// True if there is body content to read (a zero Content-Length counts as none).
    public var hasBody: Bool { framing != .none && framing != .contentLength(0) }

    // MARK: Fields

    /// Field lines in the order received, duplicates included.
    public var fieldCount: Int { fields.count }
    public func nameRange(at index: Int) -> Range<Int> {
        Int(fields[index].nameStart)..<Int(fields[index].nameEnd)
    }
    /// The value without leading and trailing SP/HTAB (RFC 9112 §5.1).
    public func valueRange(at index: Int) -> Range<Int> {
        Int(fields[index].valueStart)..<Int(fields[index].valueEnd)
    }
    /// The field name as sent (case preserved).
    public func name(at index: Int) -> String { String(decoding: raw[nameRange(at: index)], as: UTF8.self) }
    /// The value, OWS-trimmed. obs-text bytes that are not UTF-8 decode as U+FFFD; use
    /// `valueRange(at:)` for the exact bytes.
    public func value(at index: Int) -> String { String(decoding: raw[valueRange(at: index)], as: UTF8.self) }

    /// True if field `index` is named `lowercasedName` (field names are case-insensitive,
    /// RFC 9110 §5.1; the argument must be lowercase ASCII).
    public func nameEquals(at index: Int, lowercasedName: String) -> Bool {
        let range = nameRange(at: index)
        guard lowercasedName.utf8.count == range.count else { return false }
        var position = range.lowerBound
        for expected in lowercasedName.utf8 {
            var byte = raw[position]
            if byte &- 0x41 < 26 { byte |= 0x20 }
            guard byte == expected else { return false }
            position += 1
        }
        return true
    }

    public func firstIndex(ofLowercasedName name: String) -> Int? {
        (0..<fields.count).first { nameEquals(at: $0, lowercasedName: name) }
    }
    public func firstValue(forLowercasedName name: String) -> String? {
        firstIndex(ofLowercasedName: name).map(value(at:))
    }
    public func values(forLowercasedName name: String) -> [String] {
        (0..<fields.count).filter { nameEquals(at: $0, lowercasedName: name) }.map(value(at:))
    }
    /// The `Host` value (exactly one is guaranteed, RFC 9112 §3.2).
    public var host: String { firstValue(forLowercasedName: "host") ?? "" }

    /// Every token of every `Connection` field, lowercased, in order (RFC 9110 §7.6.1): the
    /// hop-by-hop field names a proxy must remove besides the standard ones.
    public var connectionTokens: [String] {
        var tokens: [String] = []
        raw.withUnsafeBytes { bytes in
            for index in 0..<fields.count where nameEquals(at: index, lowercasedName: "connection") {
                forEachListElement(bytes, valueRange(at: index)) { element in
                    guard !element.isEmpty else { return }
                    tokens.append(String(decoding: bytes[element], as: UTF8.self).lowercased())
                }
            }
        }
        return tokens
    }
}

// MARK: - Meaning of the fields

extension HTTP1RequestHead {
    /// Checks the fields that decide framing and routing, and derives the connection's fate.
    /// `head` is the head's bytes (the spans are offsets into it). One pass over the fields; the
    /// names are matched by length first, so most fields cost one integer compare.
    static func analyze(_ head: UnsafeRawBufferPointer, fields: [FieldSpan],
                        version: HTTP1Version) -> Result<HeadSemantics, HTTP1ParseError> {
        var hostCount = 0
        var contentLength: Int64?
        var transferCodingCount = 0, hasEmptyTransferCoding = false, lastCodingIsChunked = false
        var connectionClose = false, connectionKeepAlive = false, connectionUpgrade = false
        var hasUpgradeField = false, expectsContinue = false

        for field in fields {
            let name = Int(field.nameStart)..<Int(field.nameEnd)
            let value = Int(field.valueStart)..<Int(field.valueEnd)
            switch name.count {
            case 4 where equalsLowercased(head, name, "host"):
                hostCount += 1
                guard hostCount == 1 else { return .failure(.multipleHosts) }
                guard isValidHost(head, value) else { return .failure(.invalidHost) }
            case 6 where equalsLowercased(head, name, "expect"):
                forEachListElement(head, value) { element in
                    if equalsLowercased(head, element, "100-continue") { expectsContinue = true }
                }
            case 7 where equalsLowercased(head, name, "upgrade"):
                hasUpgradeField = true
            case 10 where equalsLowercased(head, name, "connection"):
                forEachListElement(head, value) { token in
                    if equalsLowercased(head, token, "close") { connectionClose = true }
                    if equalsLowercased(head, token, "keep-alive") { connectionKeepAlive = true }
                    if equalsLowercased(head, token, "upgrade") { connectionUpgrade = true }
                }
            case 14 where equalsLowercased(head, name, "content-length"):
                // Any repeat is refused, identical or not (see HTTP1ParseError.invalidContentLength).
                guard contentLength == nil, let length = parseContentLength(head, value) else {
                    return .failure(.invalidContentLength)
                }
                contentLength = length
            case 17 where equalsLowercased(head, name, "transfer-encoding"):
                guard !containsTabBeforeLineEnd(head, from: name.upperBound + 1) else {
                    return .failure(.invalidTransferEncoding)
                }
                // The codings of all Transfer-Encoding fields form one list (RFC 9110 §5.3).
                forEachListElement(head, value) { coding in
                    transferCodingCount += 1
                    if coding.isEmpty { hasEmptyTransferCoding = true }
                    lastCodingIsChunked = equalsLowercased(head, coding, "chunked")
                }
            default:
                break
            }
        }

        guard hostCount == 1 else { return .failure(.missingHost) }
        let framing: HTTP1BodyFraming
        if transferCodingCount > 0 {
            guard contentLength == nil else { return .failure(.contentLengthWithTransferEncoding) }
            guard version == .http11 else { return .failure(.transferEncodingInHTTP10) }
            guard !hasEmptyTransferCoding else { return .failure(.invalidTransferEncoding) }
            guard lastCodingIsChunked else { return .failure(.transferEncodingNotChunkedLast) }
            guard transferCodingCount == 1 else { return .failure(.unsupportedTransferCoding) }
            framing = .chunked
        } else if let contentLength {
            framing = .contentLength(contentLength)
        } else {
            framing = .none
        }
        let isHTTP11 = version == .http11
        return .success(HeadSemantics(
            framing: framing,
            keepAlive: isHTTP11 ? !connectionClose : connectionKeepAlive && !connectionClose,
            expectsContinue: isHTTP11 && expectsContinue,
            isUpgrade: isHTTP11 && connectionUpgrade && hasUpgradeField))
    }

    /// True if an HTAB comes before the CR that ends the line (the head always has that CR).
    static func containsTabBeforeLineEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Bool {
        var index = start
        while index < bytes.count, bytes[index] != ASCII.cr {
            if bytes[index] == ASCII.htab { return true }
            index += 1
        }
        return false
    }

    /// Content-Length = 1*DIGIT (RFC 9110 §8.6), as an Int64 without overflow; nil otherwise
    /// (which includes a comma list such as `5, 5`).
    static func parseContentLength(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int64? {
        guard !range.isEmpty else { return nil }
        var length: Int64 = 0
        for index in range {
            let byte = bytes[index]
            guard isDigit(byte) else { return nil }
            let (shifted, overflow1) = length.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = shifted.addingReportingOverflow(Int64(byte &- 0x30))
            guard !overflow1, !overflow2 else { return nil }
            length = sum
        }
        return length
    }

    /// Host = uri-host [ ":" port ] (RFC 9110 §7.2), where uri-host is an IP-literal in brackets
    /// or a reg-name (which also covers IPv4 addresses) and port is *DIGIT (RFC 3986 §3.2.2–3.2.3).
    /// An empty value is allowed by that grammar (RFC 9112 §3.2 even requires it for URIs without
    /// authority) and passes.
    static func isValidHost(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var index = range.lowerBound
        let end = range.upperBound
        if index < end, bytes[index] == ASCII.leftBracket {
            index += 1
            let literalStart = index
            while index < end, bytes[index] != ASCII.rightBracket {
                guard isRegNameByte(bytes[index]) || bytes[index] == ASCII.colon else { return false }
                index += 1
            }
            guard index < end, index > literalStart else { return false }
            index += 1
        } else {
            while index < end, bytes[index] != ASCII.colon {
                guard isRegNameByte(bytes[index]) else { return false }
                index += 1
            }
        }
        guard index < end else { return true }
        guard bytes[index] == ASCII.colon else { return false }
        index += 1
        while index < end {
            guard isDigit(bytes[index]) else { return false }
            index += 1
        }
        return true
    }
}
