import GatehouseUpstream
import HTTPTypes

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
        method == "GET" && upgrade.contains { HopByHopHeaders.tokens($0).contains("websocket") }
            && connection.contains { HopByHopHeaders.tokens($0).contains("upgrade") }
    }

    /// The request line and fields sent to FastAPI. `headers` is the already-rewritten field list
    /// (hop-by-hop removed, forwarding and identity fields added); the upgrade fields that are
    /// hop-by-hop by nature are put back here, normalised.
    static func upstreamRequest(target: String, headers: [(name: String, value: String)]) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(512)
        buffer += "GET \(target) HTTP/1.1\r\n".utf8
        for (name, value) in headers {
            buffer += name.utf8
            buffer += ": ".utf8
            buffer += value.utf8
            buffer += "\r\n".utf8
        }
        buffer += "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n".utf8
        return buffer
    }

    /// FastAPI's answer to the handshake.
    struct Answer: Equatable {
        var head: UpstreamResponseHead
        /// Bytes after the head: WebSocket frames FastAPI sent right after its 101, or the body
        /// of a refusal.
        var rest: [UInt8]

        /// Body length declared by a refusal; nil when absent or malformed.
        var contentLength: Int? {
            let declared = head.headers.filter { $0.name.lowercased() == "content-length" }
            guard declared.count == 1, let length = Int(declared[0].value), length >= 0 else { return nil }
            return length
        }
    }

    enum ParseError: Error, Equatable {
        case headTooLarge
        case malformed
    }

    /// Parses `bytes` read so far. nil: the head is not complete yet. The head goes through
    /// the same parser as every upstream response (`ResponseHeadParser`, with 101 as a final
    /// status); one it refuses, or one larger than `maxHeadBytes`, is an error. A head with an
    /// interim status other than 101 is refused too: nothing else fits a GET handshake.
    static func parseAnswer(_ bytes: [UInt8]) throws(ParseError) -> Answer? {
        guard let end = Self.headEnd(bytes) else {
            if bytes.count > maxHeadBytes { throw .headTooLarge }
            return nil
        }
        if end > maxHeadBytes { throw .headTooLarge }
        var parser = ResponseHeadParser(switchingProtocolsIsFinal: true)
        let event = bytes.withUnsafeBytes { raw -> ResponseHeadParser.Event in
            // The lines of `raw[..<end]`, CRLF-separated, then the empty line that ends the head.
            var lineStart = 0
            while lineStart <= end {
                var lineEnd = lineStart
                while lineEnd < end, !(raw[lineEnd] == 13 && raw[lineEnd + 1] == 10) { lineEnd += 1 }
                let event = parser.feed(UnsafeRawBufferPointer(rebasing: raw[lineStart..<lineEnd]))
                guard case .needMore = event else { return event }
                lineStart = lineEnd + 2
            }
            return parser.feed(UnsafeRawBufferPointer(rebasing: raw[0..<0]))
        }
        guard case .head(let head) = event else { throw .malformed }
        return Answer(head: head, rest: Array(bytes[(end + 4)...]))
    }

    /// The 101 the client gets: `fields` are FastAPI's, already filtered and validated by
    /// `ForwardingRules.responseHead` (hop-by-hop ones dropped, `X-Request-Id` set), so they
    /// can be written as they are.
    static func switchingProtocols(_ fields: HTTPFields) -> [UInt8] {
        var buffer = Array("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n".utf8)
        for field in fields {
            buffer += field.name.rawName.utf8
            buffer += ": ".utf8
            buffer += field.value.utf8
            buffer += "\r\n".utf8
        }
        buffer += "\r\n".utf8
        return buffer
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
}
