import NIOCore

/// The HTTP half of a WebSocket tunnel (RFC 6455 §4): the handshake request gatehouse sends to
/// FastAPI, and the parsing of FastAPI's answer. Plain values, no I/O.
///
/// gatehouse does not speak the WebSocket protocol itself. It forwards the client's handshake
/// (keeping `Sec-WebSocket-Key`, `-Version`, `-Protocol`, `-Extensions`), and only if FastAPI
/// answers `101 Switching Protocols` does the client get its 101 — with FastAPI's
/// `Sec-WebSocket-Accept`, which is computed from the same key. After that the two sockets are
/// spliced and frames pass byte for byte, masking and compression untouched.
enum WebSocketHandshake {
    /// Largest upstream answer head (status line + fields) accepted.
    static let maxHeadBytes = 32 * 1024
    /// Largest body of a refusal (non-101 answer) relayed to the client; longer bodies are dropped.
    static let maxRefusalBodyBytes = 64 * 1024

    /// RFC 6455 §4.2.1: a handshake is a GET whose `Upgrade` names `websocket` and whose
    /// `Connection` names `upgrade` (both case-insensitive, both possibly lists).
    static func isUpgradeRequest(method: String, upgrade: [String], connection: [String]) -> Bool {
        method == "GET" && Self.lists(upgrade, contain: "websocket") && Self.lists(connection, contain: "upgrade")
    }

    static func lists(_ values: [String], contain token: String) -> Bool {
        values.contains { value in
            value.split(separator: ",").contains { $0.trimmingSpaces().lowercased() == token }
        }
    }

    /// The request line and fields sent to FastAPI. `headers` is the already-rewritten field list
    /// (hop-by-hop removed, forwarding and identity fields added); the upgrade fields that are
    /// hop-by-hop by nature are put back here, normalised.
    static func upstreamRequest(target: String, headers: [(name: String, value: String)]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(512)
        buffer.writeString("GET \(target) HTTP/1.1\r\n")
        for (name, value) in headers {
            buffer.writeString(name)
            buffer.writeString(": ")
            buffer.writeString(value)
            buffer.writeString("\r\n")
        }
        buffer.writeString("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        return buffer
    }

    /// FastAPI's answer to the handshake.
    struct Answer: Equatable {
        var status: Int
        var headers: [Field]
        /// Bytes after the head: WebSocket frames FastAPI sent right after its 101, or the body
        /// of a refusal.
        var rest: [UInt8]

        struct Field: Equatable {
            var name: String
            var value: String
        }

        func values(_ name: String) -> [String] {
            headers.filter { $0.name.lowercased() == name }.map(\.value)
        }

        /// Body length declared by a refusal; nil when absent or malformed.
        var contentLength: Int? {
            let declared = values("content-length")
            guard declared.count == 1, let length = Int(declared[0]), length >= 0 else { return nil }
            return length
        }
    }

    enum ParseError: Error, Equatable {
        case headTooLarge
        case malformed
    }

    /// Parses `bytes` read so far. nil: the head is not complete yet. A head that cannot be
    /// HTTP/1.1 (bad status line, field without a colon, obsolete line folding — RFC 9112
    /// §5.2 lets a proxy reject it) is an error, as is one larger than `maxHeadBytes`.
    static func parseAnswer(_ bytes: [UInt8]) throws(ParseError) -> Answer? {
        guard let end = Self.headEnd(bytes) else {
            if bytes.count > maxHeadBytes { throw .headTooLarge }
            return nil
        }
        if end > maxHeadBytes { throw .headTooLarge }
        guard let text = String(validating: bytes[..<end], as: UTF8.self) else { throw .malformed }
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        while lines.last == "" { lines.removeLast() }
        guard let statusLine = lines.first else { throw .malformed }
        // status-line = HTTP-version SP status-code SP [ reason-phrase ]  (RFC 9112 §4)
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0", parts[1].count == 3,
            let status = Int(parts[1]), (100...599).contains(status)
        else { throw .malformed }
        var fields: [Answer.Field] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex,
                line.first != " ", line.first != "\t"
            else { throw .malformed }
            let name = line[..<colon]
            guard name.utf8.allSatisfy(Self.isTokenByte) else { throw .malformed }
            let value = line[line.index(after: colon)...].trimmingSpaces()
            guard !value.utf8.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F }) else { throw .malformed }
            fields.append(.init(name: String(name), value: value))
        }
        return Answer(status: status, headers: fields, rest: Array(bytes[(end + 4)...]))
    }

    /// Index of the CR of the first CRLFCRLF, if any.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var index = 0
        while index + 3 < bytes.count {
            if bytes[index] == 13, bytes[index + 1] == 10, bytes[index + 2] == 13, bytes[index + 3] == 10 {
                return index
            }
            index += 1
        }
        return nil
    }

    /// RFC 9110 §5.6.2 tchar.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
