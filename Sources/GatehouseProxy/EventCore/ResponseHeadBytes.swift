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
