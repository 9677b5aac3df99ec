import GatehouseUpstream
import HTTPTypes

/// Response heads and chunk framing as bytes on the wire (RFC 9112 §4, §7.1).
enum ResponseHeadBytes {
    /// `HTTP/1.1 <code> <reason>` and the fields, in order, then the empty line. Field names
    /// and values come from `HTTPFields`, which refuses CR, LF and NUL in them, so nothing
    /// here can split the head.
    static func serialize(_ response: HTTPResponse) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64 + response.headerFields.count * 40)
        bytes.append(contentsOf: "HTTP/1.1 ".utf8)
        appendDecimal(response.status.code, to: &bytes)
        bytes.append(0x20)
        let phrase = response.status.reasonPhrase
        bytes.append(contentsOf: (phrase.isEmpty ? reasonPhrase(response.status.code) : phrase).utf8)
        bytes.append(contentsOf: [0x0D, 0x0A])
        for field in response.headerFields {
            bytes.append(contentsOf: field.name.rawName.utf8)
            bytes.append(contentsOf: [0x3A, 0x20])
            bytes.append(contentsOf: field.value.utf8)
            bytes.append(contentsOf: [0x0D, 0x0A])
        }
        bytes.append(contentsOf: [0x0D, 0x0A])
        return bytes
    }

    /// The reason phrase RFC 9110 §15 gives a status code (clients ignore it, but people read
    /// it); empty for codes it does not define, which RFC 9112 §4 allows.
    static func reasonPhrase(_ code: Int) -> String {
        switch code {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 203: "Non-Authoritative Information"
        case 204: "No Content"
        case 205: "Reset Content"
        case 206: "Partial Content"
        case 300: "Multiple Choices"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 303: "See Other"
        case 304: "Not Modified"
        case 307: "Temporary Redirect"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 402: "Payment Required"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 406: "Not Acceptable"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 416: "Range Not Satisfiable"
        case 417: "Expectation Failed"
        case 421: "Misdirected Request"
        case 422: "Unprocessable Content"
        case 426: "Upgrade Required"
        case 428: "Precondition Required"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: ""
        }
    }

    /// How the body of a forwarded response is framed to the client.
    enum Framing {
        /// FastAPI's own `Content-Length` (or no body at all) goes through.
        case asSent
        /// No length: chunked to an HTTP/1.1 client.
        case chunked
        /// No length, HTTP/1.0 client: the body ends with the connection.
        case untilClose
    }

    /// The client's response head for FastAPI's, written straight from the parsed upstream
    /// head: the same rules as `ForwardingRules.responseHead` (which builds `HTTPFields` for the
    /// other paths) in one pass over the bytes, with no per-field allocation. Hop-by-hop fields
    /// are dropped (RFC 9110 §7.6.1: the fixed set and what `Connection` names), and
    /// `X-Request-Id` is replaced; a name that is not a token is dropped and a control byte in
    /// a value becomes a space, as swift-http-types does. `bodyless`: HEAD, 1xx, 204, 304.
    /// Returns the bytes and the framing chosen (`Content-Length` from FastAPI, or none).
    static func forwarded(
        _ head: UpstreamResponseHead, requestID: String, bodyless: Bool, http10: Bool, close: Bool
    ) -> (bytes: [UInt8], framing: Framing) {
        var nominated: Set<String>?
        for field in head.headers where isName(field.name, "connection") {
            // The usual values name only fields dropped anyway: no list to parse.
            var value = field.value
            if value.withUTF8({ equalsLowercased($0, "keep-alive") || equalsLowercased($0, "close") }) { continue }
            let names = HopByHopHeaders.names(connectionValues: [field.value])
            if names.count != HopByHopHeaders.fixed.count { nominated = (nominated ?? []).union(names) }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128 + head.headers.count * 48)
        bytes.append(contentsOf: "HTTP/1.1 ".utf8)
        appendDecimal(head.status, to: &bytes)
        bytes.append(0x20)
        bytes.append(contentsOf: reasonPhrase(head.status).utf8)
        bytes.append(contentsOf: [0x0D, 0x0A])
        var hasLength = false
        for field in head.headers {
            var name = field.name
            let keep = name.withUTF8 { raw -> Bool in
                guard isToken(raw) else { return false }
                if isHopByHop(raw) || equalsLowercased(raw, "x-request-id") { return false }
                if let nominated, nominated.contains(field.name.lowercased()) { return false }
                if equalsLowercased(raw, "content-length") { hasLength = true }
                bytes.append(contentsOf: raw)
                return true
            }
            guard keep else { continue }
            bytes.append(contentsOf: [0x3A, 0x20])
            var value = field.value
            value.withUTF8 { raw in
                for byte in raw {
                    // RFC 9110 §5.5: field values are VCHAR, obs-text, SP and HTAB.
                    bytes.append((byte < 0x20 && byte != 0x09) || byte == 0x7F ? 0x20 : byte)
                }
            }
            bytes.append(contentsOf: [0x0D, 0x0A])
        }
        bytes.append(contentsOf: "X-Request-Id: ".utf8)
        bytes.append(contentsOf: requestID.utf8)
        bytes.append(contentsOf: [0x0D, 0x0A])
        var framing = Framing.asSent
        if !bodyless, !hasLength {
            if http10 {
                framing = .untilClose
            } else {
                framing = .chunked
                bytes.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8)
            }
        }
        if close || framing == .untilClose {
            bytes.append(contentsOf: "Connection: close\r\n".utf8)
        } else if http10 {
            bytes.append(contentsOf: "Connection: keep-alive\r\n".utf8)
        }
        bytes.append(contentsOf: [0x0D, 0x0A])
        return (bytes, framing)
    }

    /// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
    /// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
    static func isToken(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !bytes.isEmpty else { return false }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                continue
            case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
                UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// One of `HopByHopHeaders.fixed`, compared without building a lowercased string.
    private static func isHopByHop(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        switch name.count {
        case 2: return equalsLowercased(name, "te")
        case 7: return equalsLowercased(name, "upgrade") || equalsLowercased(name, "trailer")
        case 10: return equalsLowercased(name, "connection") || equalsLowercased(name, "keep-alive")
        case 16: return equalsLowercased(name, "proxy-connection")
        case 17: return equalsLowercased(name, "transfer-encoding")
        case 18: return equalsLowercased(name, "proxy-authenticate")
        case 19: return equalsLowercased(name, "proxy-authorization")
        default: return false
        }
    }

    /// ASCII case-insensitive equality with a lowercase literal.
    static func equalsLowercased(_ bytes: UnsafeBufferPointer<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for index in 0..<bytes.count where bytes[index] | 0x20 != expected[index] && bytes[index] != expected[index] {
            return false
        }
        return true
    }

    private static func isName(_ name: String, _ lowercase: StaticString) -> Bool {
        var name = name
        return name.withUTF8 { equalsLowercased($0, lowercase) }
    }

    /// `<hex size>\r\n` before a chunk's data.
    static func appendChunkSize(_ size: Int, to bytes: inout [UInt8]) {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var shift = (Int.bitWidth - size.leadingZeroBitCount + 3) / 4 * 4 - 4
        if shift < 0 { shift = 0 }
        while shift >= 0 {
            bytes.append(digits[(size >> shift) & 0xF])
            shift -= 4
        }
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    /// The last chunk and the end of an (empty) trailer section.
    static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    static func appendDecimal(_ value: Int, to bytes: inout [UInt8]) {
        bytes.append(contentsOf: String(value).utf8)
    }
}
