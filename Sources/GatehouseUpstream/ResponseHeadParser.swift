/// Assembles the upstream's final response head from the lines libcurl's header callback
/// delivers one at a time.
///
/// curl calls the header callback once per line, including interim `1xx` blocks
/// (RFC 9110 §15.2), each ending with an empty line. We reset on every status line and
/// report only a block whose status is not 1xx. Obsolete line folding (RFC 9112 §5.2) is
/// joined with a single space.
///
/// Also reads FastAPI's answer to a forwarded WebSocket handshake (`GatehouseProxy`), where
/// `101 Switching Protocols` is the final answer rather than an interim one.
package struct ResponseHeadParser {
    /// Whether a 101 ends the head (a WebSocket handshake's answer) instead of being skipped.
    private let switchingProtocolsIsFinal: Bool
    private var status = 0
    private var reason = ""
    private var headers: [UpstreamResponseHead.HeaderField] = []
    private var inBlock = false

    package init(switchingProtocolsIsFinal: Bool = false) {
        self.switchingProtocolsIsFinal = switchingProtocolsIsFinal
    }

    package enum Event: Equatable {
        case needMore
        case head(UpstreamResponseHead)
        case malformed(String)
    }

    /// Called once per header line on the curl thread, so it works on the bytes and makes
    /// only the strings it returns (no per-line `String` for splitting or lowercasing).
    package mutating func feed(_ line: UnsafeRawBufferPointer) -> Event {
        var end = line.count
        while end > 0, line[end - 1] == UInt8(ascii: "\n") || line[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        if end == 0 {
            guard inBlock else { return .needMore }
            inBlock = false
            if status == 101 {
                // RFC 9110 §15.2.2: a server switches protocols only when asked. Plain
                // exchanges never send `Upgrade` (it is hop-by-hop), so a 101 there is a broken
                // upstream — and curl would hand what follows it over as a body with no head.
                guard switchingProtocolsIsFinal else { return .malformed("101 Switching Protocols without an upgrade request") }
            } else if (100..<200).contains(status) {
                return .needMore
            }
            // RFC 9112 §6.3: a response with both framings, or with conflicting lengths, is
            // unparseable; forwarding either length could desynchronise the client.
            var length: String?
            var chunked = false
            for header in headers {
                if Self.nameIs(header.name, "content-length") {
                    if let length, length != header.value { return .malformed("conflicting Content-Length") }
                    length = header.value
                } else if Self.nameIs(header.name, "transfer-encoding") {
                    chunked = true
                }
            }
            if length != nil, chunked { return .malformed("both Content-Length and Transfer-Encoding") }
            return .head(UpstreamResponseHead(status: status, reason: reason, headers: headers))
        }
        let bytes = UnsafeRawBufferPointer(rebasing: line[0..<end])
        if !inBlock {
            // Status line: HTTP/x.y SP 3DIGIT SP reason
            guard let space = bytes.firstIndex(of: UInt8(ascii: " ")), space >= 5,
                bytes[0] == UInt8(ascii: "H"), bytes[1] == UInt8(ascii: "T"), bytes[2] == UInt8(ascii: "T"),
                bytes[3] == UInt8(ascii: "P"), bytes[4] == UInt8(ascii: "/")
            else { return .malformed("bad status line") }
            let codeEnd = bytes[(space + 1)...].firstIndex(of: UInt8(ascii: " ")) ?? bytes.count
            guard codeEnd - space - 1 == 3 else { return .malformed("bad status line") }
            var code = 0
            for i in (space + 1)..<codeEnd {
                let digit = bytes[i] &- UInt8(ascii: "0")
                guard digit < 10 else { return .malformed("bad status line") }
                code = code * 10 + Int(digit)
            }
            guard (100...599).contains(code) else { return .malformed("bad status line") }
            status = code
            reason = codeEnd < bytes.count ? String(decoding: bytes[(codeEnd + 1)...], as: UTF8.self) : ""
            headers.removeAll(keepingCapacity: true)
            inBlock = true
            return .needMore
        }
        if bytes[0] == UInt8(ascii: " ") || bytes[0] == UInt8(ascii: "\t") {
            guard !headers.isEmpty else { return .malformed("continuation line before any header") }
            headers[headers.count - 1].value += " " + Self.trimmed(bytes, from: 0)
            return .needMore
        }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon != 0 else {
            return .malformed("header line without a name")
        }
        let name = String(decoding: bytes[..<colon], as: UTF8.self)
        headers.append(.init(name: name, value: Self.trimmed(bytes, from: colon + 1)))
        return .needMore
    }

    /// `bytes[from...]` without leading and trailing spaces and tabs, as a string.
    private static func trimmed(_ bytes: UnsafeRawBufferPointer, from start: Int) -> String {
        var lower = start
        var upper = bytes.count
        while lower < upper, bytes[lower] == UInt8(ascii: " ") || bytes[lower] == UInt8(ascii: "\t") { lower += 1 }
        while upper > lower, bytes[upper - 1] == UInt8(ascii: " ") || bytes[upper - 1] == UInt8(ascii: "\t") { upper -= 1 }
        return String(decoding: bytes[lower..<upper], as: UTF8.self)
    }

    /// ASCII case-insensitive comparison with a lowercase name.
    private static func nameIs(_ name: String, _ lowercase: StaticString) -> Bool {
        let expected = UnsafeRawBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        guard name.utf8.count == expected.count else { return false }
        return zip(name.utf8, expected).allSatisfy { byte, want in
            (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte) == want
        }
    }
}

extension StringProtocol {
    /// Removes leading and trailing spaces and tabs (RFC 9110 §5.5 optional whitespace).
    package func trimmingSpaces() -> String {
        String(Substring(self).droppingSpaces())
    }
}

extension Substring {
    /// `trimmingSpaces()` without a copy: the same characters as a slice.
    package func droppingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
