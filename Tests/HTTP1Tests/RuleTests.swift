import Testing
@testable import HTTP1

/// One request that must be refused, with the exact rule it breaks.
struct Refusal: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let error: HTTP1ParseError
    var testDescription: String { name }

    init(_ name: String, _ text: String, _ error: HTTP1ParseError) {
        self.name = name
        self.bytes = Array(text.utf8)
        self.error = error
    }

    init(_ name: String, bytes: [UInt8], _ error: HTTP1ParseError) {
        self.name = name
        self.bytes = bytes
        self.error = error
    }
}

/// One request that must be accepted as exactly one complete message.
struct Acceptance: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let method: String
    let target: String
    let body: String
    var testDescription: String { name }

    init(_ name: String, _ text: String, method: String = "GET", target: String = "/", body: String = "") {
        self.name = name
        self.bytes = Array(text.utf8)
        self.method = method
        self.target = target
        self.body = body
    }
}

let refusals: [Refusal] = [
    // Request line, RFC 9112 §3
    Refusal("method with a non-token byte", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidMethod),
    Refusal("empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidMethod),
    Refusal("method followed by HTAB", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", .invalidMethod),
    Refusal("control byte in method", "GE\u{1}T / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidMethod),
    Refusal("two spaces after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidRequestLine),
    Refusal("two spaces before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTargetCharacter),
    Refusal("HTTP/0.9 form", "GET /\r\nHost: a\r\n\r\n", .invalidRequestLine),
    Refusal("method only", "GET\r\nHost: a\r\n\r\n", .invalidRequestLine),
    Refusal("trailing space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", .unsupportedVersion),
    Refusal("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", .unsupportedVersion),
    Refusal("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", .unsupportedVersion),
    Refusal("lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", .unsupportedVersion),
    Refusal("version with two minor digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", .unsupportedVersion),
    Refusal("version without minor", "GET / HTTP/1\r\nHost: a\r\n\r\n", .unsupportedVersion),
    Refusal("absolute-form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", .targetNotAbsolutePath),
    Refusal("asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", .targetNotAbsolutePath),
    Refusal("authority-form", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", .targetNotAbsolutePath),
    Refusal("space inside target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTargetCharacter),
    Refusal("HTAB inside target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTargetCharacter),
    Refusal("control byte in target", "GET /a\u{1}b HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTargetCharacter),
    Refusal("NUL in target", "GET /a\u{0}b HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTargetCharacter),
    Refusal("DEL in target", "GET /a\u{7F}b HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTargetCharacter),
    Refusal("non-ASCII in target", "GET /é HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTargetCharacter),
    Refusal("byte 0xFF in target", bytes: Array("GET /a".utf8) + [0xFF] + Array(" HTTP/1.1\r\nHost: a\r\n\r\n".utf8),
            .invalidTargetCharacter),
    Refusal("fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", .fragmentInTarget),
    Refusal("control byte in version", "GET / HTTP/1.1\u{1}\r\nHost: a\r\n\r\n", .invalidRequestLine),

    // Lines, RFC 9112 §2.2
    Refusal("bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", .bareLineFeed),
    Refusal("bare LF after a field", "GET / HTTP/1.1\r\nHost: a\n\r\n", .bareLineFeed),
    Refusal("bare LF ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", .bareLineFeed),
    Refusal("bare LF as leading empty line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .bareLineFeed),
    Refusal("bare CR inside a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", .bareCarriageReturn),
    Refusal("bare CR after request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", .bareCarriageReturn),
    Refusal("CR CR LF", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", .bareCarriageReturn),

    // Fields, RFC 9112 §5
    Refusal("space before colon", request("Transfer-Encoding : chunked\r\n"), .invalidFieldName),
    Refusal("HTAB before colon", request("X\t: a\r\n"), .invalidFieldName),
    Refusal("empty name", request(": a\r\n"), .invalidFieldName),
    Refusal("no colon", request("X-No-Colon\r\n"), .invalidFieldName),
    Refusal("non-token byte in name", request("X(y): a\r\n"), .invalidFieldName),
    Refusal("non-ASCII byte in name", request("Xé: a\r\n"), .invalidFieldName),
    Refusal("control byte in name", request("X\u{1}: a\r\n"), .invalidFieldName),
    Refusal("obs-fold with SP", request("X: a\r\n b\r\n"), .obsoleteLineFolding),
    Refusal("obs-fold with HTAB", request("X: a\r\n\tb\r\n"), .obsoleteLineFolding),
    Refusal("whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", .obsoleteLineFolding),
    Refusal("NUL in value", request("X: a\u{0}b\r\n"), .invalidFieldValue),
    Refusal("control byte in value", request("X: a\u{1B}b\r\n"), .invalidFieldValue),
    Refusal("DEL in value", request("X: a\u{7F}\r\n"), .invalidFieldValue),

    // Host, RFC 9112 §3.2
    Refusal("no Host, HTTP/1.1", request(host: nil), .missingHost),
    Refusal("no Host, HTTP/1.0", request(version: "HTTP/1.0", host: nil), .missingHost),
    Refusal("two Hosts", request("Host: example.com\r\n"), .multipleHosts),
    Refusal("two Hosts, different case", request("hOST: other\r\n"), .multipleHosts),
    Refusal("slash in Host", request(host: "Host: a/b\r\n"), .invalidHost),
    Refusal("userinfo in Host", request(host: "Host: user@a\r\n"), .invalidHost),
    Refusal("query in Host", request(host: "Host: a?b\r\n"), .invalidHost),
    Refusal("fragment in Host", request(host: "Host: a#b\r\n"), .invalidHost),
    Refusal("space in Host", request(host: "Host: a b\r\n"), .invalidHost),
    Refusal("non-digit port", request(host: "Host: a:b\r\n"), .invalidHost),
    Refusal("two ports", request(host: "Host: a:1:2\r\n"), .invalidHost),
    Refusal("unclosed IP-literal", request(host: "Host: [::1\r\n"), .invalidHost),
    Refusal("empty IP-literal", request(host: "Host: []\r\n"), .invalidHost),
    Refusal("junk after IP-literal", request(host: "Host: [::1]x\r\n"), .invalidHost),
    Refusal("non-ASCII Host", request(host: "Host: bücher.example\r\n"), .invalidHost),

    // Content-Length, RFC 9112 §6.3, RFC 9110 §8.6
    Refusal("Content-Length not a number", request("Content-Length: abc\r\n"), .invalidContentLength),
    Refusal("negative Content-Length", request("Content-Length: -1\r\n"), .invalidContentLength),
    Refusal("Content-Length with a sign", request("Content-Length: +5\r\n"), .invalidContentLength),
    Refusal("empty Content-Length", request("Content-Length:\r\n"), .invalidContentLength),
    Refusal("Content-Length list", request("Content-Length: 5, 5\r\n"), .invalidContentLength),
    Refusal("Content-Length with inner space", request("Content-Length: 5 5\r\n"), .invalidContentLength),
    Refusal("Content-Length hex", request("Content-Length: 0x5\r\n"), .invalidContentLength),
    Refusal("Content-Length overflow", request("Content-Length: 9223372036854775808\r\n"), .invalidContentLength),
    Refusal("differing Content-Lengths", request("Content-Length: 5\r\nContent-Length: 6\r\n"), .invalidContentLength),
    Refusal("identical Content-Lengths", request("Content-Length: 5\r\nContent-Length: 5\r\n"), .invalidContentLength),

    // Transfer-Encoding, RFC 9112 §6.1, §6.3
    Refusal("CL and TE", request("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            .contentLengthWithTransferEncoding),
    Refusal("TE and CL", request("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            .contentLengthWithTransferEncoding),
    Refusal("TE in HTTP/1.0", request("Transfer-Encoding: chunked\r\n", version: "HTTP/1.0"), .transferEncodingInHTTP10),
    Refusal("TE gzip", request("Transfer-Encoding: gzip\r\n"), .transferEncodingNotChunkedLast),
    Refusal("TE identity", request("Transfer-Encoding: identity\r\n"), .transferEncodingNotChunkedLast),
    Refusal("TE chunked, gzip", request("Transfer-Encoding: chunked, gzip\r\n"), .transferEncodingNotChunkedLast),
    Refusal("TE chunked with a parameter", request("Transfer-Encoding: chunked;q=1\r\n"), .transferEncodingNotChunkedLast),
    Refusal("TE gzip, chunked", request("Transfer-Encoding: gzip, chunked\r\n"), .unsupportedTransferCoding),
    Refusal("TE chunked, chunked", request("Transfer-Encoding: chunked, chunked\r\n"), .unsupportedTransferCoding),
    Refusal("TE chunked twice as fields", request("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            .unsupportedTransferCoding),
    Refusal("TE gzip then chunked as fields", request("Transfer-Encoding: gzip\r\ntransfer-encoding: CHUNKED\r\n"),
            .unsupportedTransferCoding),
    Refusal("TE empty", request("Transfer-Encoding:\r\n"), .invalidTransferEncoding),
    Refusal("TE trailing comma", request("Transfer-Encoding: chunked,\r\n"), .invalidTransferEncoding),
    Refusal("TE leading comma", request("Transfer-Encoding: , chunked\r\n"), .invalidTransferEncoding),
    Refusal("TE with a trailing HTAB", request("Transfer-Encoding: chunked\t\r\n"), .invalidTransferEncoding),
    Refusal("TE with a leading HTAB", request("Transfer-Encoding:\tchunked\r\n"), .invalidTransferEncoding),

    // Chunked body, RFC 9112 §7.1
    Refusal("chunk size not hex", chunked("x\r\n"), .invalidChunkSize),
    Refusal("empty chunk size", chunked("\r\nhello\r\n0\r\n\r\n"), .invalidChunkSize),
    Refusal("negative chunk size", chunked("-5\r\n"), .invalidChunkSize),
    Refusal("0x prefix", chunked("0x5\r\n"), .invalidChunkSize),
    Refusal("17 hex digits", chunked("00000000000000005\r\nhello\r\n0\r\n\r\n"), .invalidChunkSize),
    Refusal("chunk size above Int64", chunked("8000000000000000\r\n"), .invalidChunkSize),
    Refusal("chunk size 2^64-1", chunked("FFFFFFFFFFFFFFFF\r\n"), .invalidChunkSize),
    Refusal("space after chunk size", chunked("5 \r\nhello\r\n0\r\n\r\n"), .invalidChunkExtension),
    Refusal("BWS before extension", chunked("5 ;a=b\r\nhello\r\n0\r\n\r\n"), .invalidChunkExtension),
    Refusal("BWS after semicolon", chunked("5; a=b\r\nhello\r\n0\r\n\r\n"), .invalidChunkExtension),
    Refusal("BWS around equals", chunked("5;a = b\r\nhello\r\n0\r\n\r\n"), .invalidChunkExtension),
    Refusal("empty extension", chunked("5;\r\nhello\r\n0\r\n\r\n"), .invalidChunkExtension),
    Refusal("extension without value", chunked("5;a=\r\nhello\r\n0\r\n\r\n"), .invalidChunkExtension),
    Refusal("unclosed quoted extension", chunked("5;a=\"b\r\nhello\r\n0\r\n\r\n"), .invalidChunkExtension),
    Refusal("escaped closing quote", chunked("5;a=\"b\\\"\r\nhello\r\n0\r\n\r\n"), .invalidChunkExtension),
    Refusal("junk after extension value", chunked("5;a=b c\r\nhello\r\n0\r\n\r\n"), .invalidChunkExtension),
    Refusal("control byte in extension", chunked("5;a=\u{1}\r\nhello\r\n0\r\n\r\n"), .invalidChunkExtension),
    Refusal("control byte in chunk size", chunked("5\u{1}\r\nhello\r\n0\r\n\r\n"), .invalidChunkSize),
    Refusal("bare LF after chunk size", chunked("5\nhello\r\n0\r\n\r\n"), .bareLineFeed),
    Refusal("data longer than size", chunked("5\r\nhelloX\r\n0\r\n\r\n"), .missingCRLFAfterChunkData),
    Refusal("LF only after data", chunked("5\r\nhello\n0\r\n\r\n"), .missingCRLFAfterChunkData),
    Refusal("CR only after data", chunked("5\r\nhello\r0\r\n\r\n"), .missingCRLFAfterChunkData),
    Refusal("trailer with obs-fold", chunked("0\r\nX: a\r\n b\r\n\r\n"), .obsoleteLineFolding),
    Refusal("trailer with space before colon", chunked("0\r\nX : a\r\n\r\n"), .invalidFieldName),
    Refusal("trailer without colon", chunked("0\r\nX\r\n\r\n"), .invalidFieldName),
    Refusal("trailer with NUL", chunked("0\r\nX: \u{0}\r\n\r\n"), .invalidFieldValue),
    Refusal("trailer with bare LF", chunked("0\r\nX: a\n\r\n"), .bareLineFeed),
    Refusal("bare LF ends trailers", chunked("0\r\n\n"), .bareLineFeed),
]

let acceptances: [Acceptance] = [
    Acceptance("minimal HTTP/1.1", request()),
    Acceptance("HTTP/1.0 with Host", request(version: "HTTP/1.0")),
    Acceptance("extension method", request(method: "M-SEARCH"), method: "M-SEARCH"),
    Acceptance("token method of odd bytes", request(method: "!#$%&'*+-.^_`|~09azAZ"), method: "!#$%&'*+-.^_`|~09azAZ"),
    Acceptance("path and query", request(target: "/a/b?c=d&e=%20f"), target: "/a/b?c=d&e=%20f"),
    Acceptance("every visible byte but #",
               request(target: "/!\"$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"),
               target: "/!\"$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"),
    Acceptance("leading empty lines", "\r\n\r\n" + request()),
    Acceptance("obs-text, HTAB and empty values", request("X-A: caf\u{E9}\r\nX-B: a\tb\r\nX-C:\r\nX-D: \t \r\n")),
    Acceptance("U+00FF (obs-text bytes) in a value", request("X: a\u{FF}b\r\n")),
    Acceptance("Host with port", request(host: "Host: example.com:8080\r\n")),
    Acceptance("Host IPv4", request(host: "Host: 127.0.0.1:80\r\n")),
    Acceptance("Host IPv6", request(host: "Host: [::1]:8080\r\n")),
    Acceptance("Host with sub-delims and pct", request(host: "Host: a-b.c_d~e%41!$&'()*+,;=\r\n")),
    Acceptance("empty Host", request(host: "Host:\r\n")),
    Acceptance("Host name in capitals", request(host: "HOST: a\r\n")),
    Acceptance("Content-Length 0", request("Content-Length: 0\r\n", method: "POST"), method: "POST"),
    Acceptance("Content-Length body", request("Content-Length: 5\r\n", method: "POST") + "hello",
               method: "POST", body: "hello"),
    Acceptance("Content-Length leading zeros", request("Content-Length: 005\r\n", method: "POST") + "hello",
               method: "POST", body: "hello"),
    Acceptance("Content-Length with OWS", request("content-length: \t5 \r\n", method: "POST") + "hello",
               method: "POST", body: "hello"),
    Acceptance("chunked", chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), method: "POST", body: "hello world"),
    Acceptance("chunked in capitals", request("Transfer-Encoding: CHUNKED\r\n", method: "POST") + "1\r\na\r\n0\r\n\r\n",
               method: "POST", body: "a"),
    Acceptance("chunked with spaces", request("transfer-encoding:  Chunked  \r\n", method: "POST") + "0\r\n\r\n",
               method: "POST"),
    Acceptance("hex sizes, leading zeros, 16 digits",
               chunked("0000000000000003\r\nabc\r\nA\r\n0123456789\r\n0a\r\n0123456789\r\n0\r\n\r\n"),
               method: "POST", body: "abc01234567890123456789"),
    Acceptance("chunk extensions",
               chunked("3;a\r\nabc\r\n3;a=b;c=\"d e\\\"f\";g=h\r\ndef\r\n0;last=\"\"\r\n\r\n"),
               method: "POST", body: "abcdef"),
    Acceptance("trailers", chunked("3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other:\tv \r\n\r\n"), method: "POST", body: "abc"),
    Acceptance("chunk data with CRLF inside", chunked("4\r\n\r\n\r\n\r\n0\r\n\r\n"), method: "POST", body: "\r\n\r\n"),
]

@Suite("Rules: each refusal names its rule")
struct RefusalTests {
    @Test(arguments: refusals)
    func refused(_ refusal: Refusal) {
        let run = feed(refusal.bytes)
        #expect(run.error == refusal.error, "\(refusal.name): \(run.outcomes)")
        #expect(run.messages.allSatisfy { !$0.complete }, "a refused request must not complete")
    }

    @Test(arguments: refusals)
    func refusedTheSameWayByteByByte(_ refusal: Refusal) {
        #expect(feed(refusal.bytes.map { [$0] }).outcomes == feed(refusal.bytes).outcomes)
    }

    @Test func statusesAndDetails() {
        #expect(HTTP1ParseError.headTooLarge.status == 431)
        #expect(HTTP1ParseError.tooManyFields.status == 431)
        #expect(HTTP1ParseError.trailersTooLarge.status == 431)
        #expect(HTTP1ParseError.unsupportedTransferCoding.status == 501)
        #expect(HTTP1ParseError.invalidChunkSize.status == 400)
        #expect(HTTP1ParseError.headTooLarge.detail == "Request header fields too large")
        #expect(HTTP1ParseError.targetNotAbsolutePath.detail == "Request target must be an absolute path")
        #expect(HTTP1ParseError.fragmentInTarget.detail == "Fragment in request target")
        #expect(HTTP1ParseError.missingHost.detail == "Missing Host header")
        #expect(HTTP1ParseError.multipleHosts.detail == "Multiple Host headers")
        #expect(HTTP1ParseError.invalidContentLength.detail == "Invalid Content-Length")
        #expect(HTTP1ParseError.contentLengthWithTransferEncoding.detail == "Both Content-Length and Transfer-Encoding")
        #expect(HTTP1ParseError.transferEncodingNotChunkedLast.detail == "Transfer-Encoding must end with chunked")
        #expect(HTTP1ParseError.unsupportedTransferCoding.detail == "Transfer-Encoding other than chunked")
    }
}

@Suite("Rules: accepted requests")
struct AcceptanceTests {
    @Test(arguments: acceptances)
    func accepted(_ acceptance: Acceptance) throws {
        let run = feed(acceptance.bytes)
        let message = try #require(run.single, "\(acceptance.name): \(run.outcomes)")
        #expect(message.head.method == acceptance.method)
        #expect(message.head.target == acceptance.target)
        #expect(message.body == Array(acceptance.body.utf8))
        #expect(run.unconsumed == 0)
    }

    @Test func headBytesAndFields() throws {
        let text = "\r\nPOST /p?q HTTP/1.1\r\nHost: example.com\r\nX-Multi: one\r\nx-multi:  two\t\r\n"
            + "Content-Length: 2\r\nX-Empty:\r\n\r\nok"
        let run = feed(text)
        let head = try #require(run.single?.head)
        #expect(head.raw == Array(text.utf8.dropFirst(2).dropLast(2)))
        #expect(head.method == "POST")
        #expect(head.target == "/p?q")
        #expect(head.version == .http11)
        #expect(head.fieldCount == 5)
        #expect(head.name(at: 2) == "x-multi")
        #expect(head.value(at: 2) == "two")
        #expect(head.value(at: 4) == "")
        #expect(head.firstValue(forLowercasedName: "x-multi") == "one")
        #expect(head.values(forLowercasedName: "x-multi") == ["one", "two"])
        #expect(head.firstValue(forLowercasedName: "x-absent") == nil)
        #expect(head.host == "example.com")
        #expect(head.framing == .contentLength(2))
        #expect(head.hasBody)
        let valueBytes = head.raw[head.valueRange(at: 1)]
        #expect(Array(valueBytes) == Array("one".utf8))
    }

    @Test func framing() throws {
        #expect(try #require(feed(request()).single).head.framing == .none)
        #expect(try #require(feed(request("Content-Length: 0\r\n")).single).head.framing == .contentLength(0))
        #expect(try #require(feed(chunked("0\r\n\r\n")).single).head.framing == .chunked)
        let largest = feed(request("Content-Length: 9223372036854775807\r\n"))
        #expect(largest.error == nil)
        #expect(largest.messages.first?.head.framing == .contentLength(Int64.max))
    }
}
