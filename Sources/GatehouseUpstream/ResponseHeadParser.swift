/// Assembles the upstream's final response head from the lines libcurl's header callback
/// delivers one at a time.
///
/// curl calls the header callback once per line, including interim `1xx` blocks
/// (RFC 9110 §15.2), each ending with an empty line. We reset on every status line and
/// report only a block whose status is not 1xx. Obsolete line folding (RFC 9112 §5.2) is
/// joined with a single space.
struct ResponseHeadParser {
    private var status = 0
    private var reason = ""
    private var headers: [UpstreamResponseHead.HeaderField] = []
    private var inBlock = false

    enum Event: Equatable {
        case needMore
        case head(UpstreamResponseHead)
        case malformed(String)
    }

    mutating func feed(_ line: UnsafeRawBufferPointer) -> Event {
        var bytes = line[...]
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") {
            bytes = bytes.dropLast()
        }
        if bytes.isEmpty {
            guard inBlock else { return .needMore }
            inBlock = false
            if (100..<200).contains(status) { return .needMore }
            // RFC 9112 §6.3: a response with both framings, or with conflicting lengths, is
            // unparseable; forwarding either length could desynchronise the client.
            let lengths = Set(headers.lazy.filter { $0.name.lowercased() == "content-length" }.map(\.value))
            if lengths.count > 1 { return .malformed("conflicting Content-Length") }
            if !lengths.isEmpty, headers.contains(where: { $0.name.lowercased() == "transfer-encoding" }) {
                return .malformed("both Content-Length and Transfer-Encoding")
            }
            return .head(UpstreamResponseHead(status: status, reason: reason, headers: headers))
        }
        if !inBlock {
            // Status line: HTTP/x.y SP 3DIGIT SP reason
            let text = String(decoding: bytes, as: UTF8.self)
            let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), parts[1].count == 3,
                let code = Int(parts[1]), (100...599).contains(code)
            else { return .malformed("bad status line") }
            status = code
            reason = parts.count == 3 ? String(parts[2]) : ""
            headers.removeAll(keepingCapacity: true)
            inBlock = true
            return .needMore
        }
        if bytes.first == UInt8(ascii: " ") || bytes.first == UInt8(ascii: "\t") {
            guard !headers.isEmpty else { return .malformed("continuation line before any header") }
            let extra = String(decoding: bytes, as: UTF8.self).trimmingSpaces()
            headers[headers.count - 1].value += " " + extra
            return .needMore
        }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon != bytes.startIndex else {
            return .malformed("header line without a name")
        }
        let name = String(decoding: bytes[..<colon], as: UTF8.self)
        let value = String(decoding: bytes[(colon + 1)...], as: UTF8.self).trimmingSpaces()
        headers.append(.init(name: name, value: value))
        return .needMore
    }
}

extension StringProtocol {
    /// Removes leading and trailing spaces and tabs (RFC 9110 §5.5 optional whitespace).
    package func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
