import Testing
@testable import HTTP1

@Suite("Connection semantics: keep-alive, Expect, Upgrade")
struct ConnectionSemanticsTests {
    struct KeepAliveCase: Sendable, CustomTestStringConvertible {
        let version: String
        let fields: String
        let keepAlive: Bool
        var testDescription: String { "\(version) \(fields.debugDescription) → \(keepAlive)" }
    }

    static let keepAliveCases: [KeepAliveCase] = [
        .init(version: "HTTP/1.1", fields: "", keepAlive: true),
        .init(version: "HTTP/1.1", fields: "Connection: close\r\n", keepAlive: false),
        .init(version: "HTTP/1.1", fields: "Connection: CLOSE\r\n", keepAlive: false),
        .init(version: "HTTP/1.1", fields: "Connection: keep-alive, close\r\n", keepAlive: false),
        .init(version: "HTTP/1.1", fields: "Connection: x-a\r\nconnection: Close\r\n", keepAlive: false),
        .init(version: "HTTP/1.1", fields: "Connection: keep-alive\r\n", keepAlive: true),
        .init(version: "HTTP/1.1", fields: "Connection: closed\r\n", keepAlive: true),
        .init(version: "HTTP/1.1", fields: "X-Connection: close\r\n", keepAlive: true),
        .init(version: "HTTP/1.0", fields: "", keepAlive: false),
        .init(version: "HTTP/1.0", fields: "Connection: keep-alive\r\n", keepAlive: true),
        .init(version: "HTTP/1.0", fields: "Connection: Keep-Alive\r\n", keepAlive: true),
        .init(version: "HTTP/1.0", fields: "Connection: foo ,keep-alive\r\n", keepAlive: true),
        .init(version: "HTTP/1.0", fields: "Connection: keep-alive, close\r\n", keepAlive: false),
        .init(version: "HTTP/1.0", fields: "Keep-Alive: timeout=5\r\n", keepAlive: false),
    ]

    @Test(arguments: keepAliveCases)
    func keepAlive(_ testCase: KeepAliveCase) throws {
        let head = try #require(feed(request(testCase.fields, version: testCase.version)).single?.head)
        #expect(head.keepAlive == testCase.keepAlive)
        #expect(head.version == (testCase.version == "HTTP/1.1" ? .http11 : .http10))
    }

    @Test(arguments: [
        ("HTTP/1.1", "Expect: 100-continue\r\n", true),
        ("HTTP/1.1", "Expect: 100-Continue\r\n", true),
        ("HTTP/1.1", "expect:  100-CONTINUE \r\n", true),
        ("HTTP/1.1", "", false),
        ("HTTP/1.1", "Expect: 200-ok\r\n", false),
        ("HTTP/1.1", "Expect: 100-continued\r\n", false),
        ("HTTP/1.0", "Expect: 100-continue\r\n", false),
    ])
    func expectContinue(version: String, fields: String, expected: Bool) throws {
        let text = request(fields + "Content-Length: 1\r\n", method: "PUT", version: version) + "x"
        let head = try #require(feed(text).single?.head)
        #expect(head.expectsContinue == expected)
    }

    @Test func upgrade() throws {
        let websocket = "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
        #expect(try #require(feed(request(websocket)).single).head.isUpgrade)
        #expect(try !#require(feed(request("Connection: upgrade\r\n")).single).head.isUpgrade)
        #expect(try !#require(feed(request("Upgrade: websocket\r\n")).single).head.isUpgrade)
        #expect(try !#require(feed(request(websocket, version: "HTTP/1.0")).single).head.isUpgrade)
    }

    @Test func connectionTokens() throws {
        let head = try #require(feed(request("Connection: Keep-Alive, X-Hop ,\r\nConnection: upgrade\r\n")).single?.head)
        #expect(head.connectionTokens == ["keep-alive", "x-hop", "upgrade"])
        #expect(try #require(feed(request()).single).head.connectionTokens == [])
    }
}

@Suite("Streaming: pipelining, resumption, splits")
struct StreamingTests {
    /// Requests of every shape (valid and refused); each is fed whole, cut at every byte, and
    /// byte by byte, and must give the same events and body bytes every time.
    static let corpus: [String] = [
        request(),
        "\r\n" + request("Connection: close\r\n", version: "HTTP/1.0"),
        request("Content-Length: 11\r\n", method: "POST") + "hello world",
        chunked("5;a=\"b\"\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\n"),
        chunked("2\r\n\r\n\r\n0\r\n\r\n") + request(target: "/next"),
        request("Content-Length: 3\r\n", method: "PUT") + "abc" + chunked("3\r\nxyz\r\n0\r\n\r\n") + request(),
        request("Content-Length: 10\r\n", method: "POST") + "short",
        chunked("5\r\nhel"),
        request("X: a\r\n b\r\n"),
        request("Content-Length: 5\r\nContent-Length: 6\r\n"),
        chunked("5\r\nhelloXX"),
        chunked("5\r\nhello\r\n0\r\nX : y\r\n\r\n"),
        "GET / HTTP/1.1\r\nHost: a\rX",
        request() + "GET /a\u{1}b HTTP/1.1\r\n",
        chunked("1;" + String(repeating: "a", count: 100) + "\r\nx\r\n0\r\n\r\n"),
    ]

    @Test(arguments: corpus)
    func splitsGiveTheSameEvents(_ text: String) {
        let bytes = Array(text.utf8)
        let whole = feed(bytes)
        #expect(!whole.outcomes.isEmpty)
        for pieces in splits(of: bytes) {
            let run = feed(pieces)
            #expect(run.outcomes == whole.outcomes, "cut into \(pieces.map(\.count))")
            // After an error the connection closes; what was consumed before it does not matter
            // (a chunked body may consume framing bytes with `.needMore` in one cut and not in another).
            if whole.error == nil { #expect(run.unconsumed == whole.unconsumed) }
        }
    }

    @Test func smallLimitsSplitTheSame() {
        let limits = HTTP1Limits(maxHeadBytes: 66, maxFields: 3, maxChunkLineBytes: 5, maxTrailerBytes: 9)
        let texts = [
            chunked("5;a=b\r\nhello\r\n0\r\nX: 1\r\n\r\n", fields: ""),
            chunked("5;a=bc\r\nhello\r\n0\r\n\r\n"),
            chunked("1\r\nx\r\n0\r\nX: 12\r\n\r\n"),
            chunked("1\r\nx\r\n0\r\nX: 123\r\n\r\n"),
            request("A: 1\r\nB: 2\r\n"),
            request("A: 1\r\nB: 2\r\nC: 3\r\n"),
            request("A: 1234567890\r\n"),
            request("A: \(String(repeating: "1", count: 30))\r\n"),
        ]
        var errors: [HTTP1ParseError?] = []
        for text in texts {
            let bytes = Array(text.utf8)
            let whole = feed(bytes, limits: limits)
            errors.append(whole.error)
            for pieces in splits(of: bytes) {
                #expect(feed(pieces, limits: limits).outcomes == whole.outcomes, "\(text.debugDescription)")
            }
        }
        #expect(errors == [nil, .chunkLineTooLong, nil, .trailersTooLarge, nil, .tooManyFields, nil, .headTooLarge])
    }

    @Test func pipelinedRequestsInOneBuffer() throws {
        let text = request(target: "/1") + request("Content-Length: 2\r\n", method: "POST", target: "/2") + "ab"
            + chunked("1\r\nc\r\n0\r\n\r\n") + request(target: "/4", version: "HTTP/1.0") + "GET /5 HT"
        let run = feed(text)
        #expect(run.error == nil)
        #expect(run.messages.map(\.head.target) == ["/1", "/2", "/", "/4"])
        #expect(run.messages.map { String(decoding: $0.body, as: UTF8.self) } == ["", "ab", "c", ""])
        #expect(run.messages.allSatisfy { $0.complete })
        #expect(run.unconsumed == "GET /5 HT".utf8.count)
        #expect(run.outcomes.filter { $0 == .end }.count == 4)
    }

    @Test func errorInSecondPipelinedRequestKeepsTheFirst() {
        let run = feed(request(target: "/ok") + "GET /bad HTTP/1.1\r\n\r\n")
        #expect(run.messages.count == 1 && run.messages[0].complete)
        #expect(run.error == .missingHost)
    }

    @Test func resumesWhereItStopped() {
        var parser = HTTP1RequestParser()
        let bytes = Array(request("X-Long: \(String(repeating: "v", count: 300))\r\n").utf8)
        for length in [1, 17, 100, 250, bytes.count - 3, bytes.count - 1] {
            let step = bytes[..<length].withUnsafeBytes { parser.parse($0) }
            guard case .needMore = step.event else {
                Issue.record("expected needMore at \(length)")
                return
            }
            #expect(step.consumed == 0)
            // Everything but a possible trailing CR has been checked and is not looked at again.
            let expected = bytes[length - 1] == UInt8(ascii: "\r") ? length - 1 : length
            #expect(parser.resumeOffset == expected)
        }
        let step = bytes.withUnsafeBytes { parser.parse($0) }
        guard case .head(let head) = step.event else {
            Issue.record("expected the head")
            return
        }
        #expect(step.consumed == bytes.count)
        #expect(head.fieldCount == 2)
    }

    @Test func bodyEventsAreRangesIntoInput() {
        var parser = HTTP1RequestParser()
        let text = chunked("3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        let bytes = Array(text.utf8)
        var offset = 0
        var events: [String] = []
        bytes.withUnsafeBytes { buffer in
            while true {
                let input = UnsafeRawBufferPointer(rebasing: buffer[offset...])
                let step = parser.parse(input)
                switch step.event {
                case .head: events.append("head")
                case .body(let range):
                    events.append("body \(range.lowerBound)..<\(range.upperBound) consumed \(step.consumed)")
                case .end: events.append("end \(step.consumed)")
                case .needMore, .error: return
                }
                offset += step.consumed
            }
        }
        // The chunk line is consumed with its data; the CRLF after the data with the next line.
        #expect(events == ["head", "body 7..<10 consumed 10", "body 5..<7 consumed 7", "end 7"])
    }

    @Test func oneGibibyteBodyInConstantMemory() {
        var parser = HTTP1RequestParser()
        let total: Int64 = 1 << 30
        let head = Array(request("Content-Length: \(total)\r\n", method: "PUT").utf8)
        let step = head.withUnsafeBytes { parser.parse($0) }
        guard case .head = step.event else {
            Issue.record("no head")
            return
        }
        let block = [UInt8](repeating: 0x61, count: 1 << 16)
        var received: Int64 = 0
        block.withUnsafeBytes { buffer in
            while received < total {
                let step = parser.parse(buffer)
                guard case .body(let range) = step.event, range == 0..<buffer.count else {
                    Issue.record("unexpected \(step.event)")
                    return
                }
                received += Int64(range.count)
            }
            guard case .end = parser.parse(buffer).event else {
                Issue.record("no end")
                return
            }
        }
        #expect(received == total)
        #expect(MemoryLayout<HTTP1RequestParser>.size < 256)
        #expect(parser.fieldScratch.capacity <= 32)
    }

    @Test func largeChunkSizeStreams() {
        var parser = HTTP1RequestParser()
        let head = Array(chunked("7FFFFFFFFFFFFFFF\r\n").utf8)
        var offset = 0
        var events = 0
        head.withUnsafeBytes { buffer in
            while events < 3 {
                let step = parser.parse(UnsafeRawBufferPointer(rebasing: buffer[offset...]))
                if case .needMore = step.event { break }
                offset += step.consumed
                events += 1
            }
        }
        #expect(events == 1)
        guard case .chunkData(let remaining) = parser.state else {
            Issue.record("expected chunk data, got \(parser.state)")
            return
        }
        #expect(remaining == Int64.max)
    }
}

@Suite("Limits")
struct LimitTests {
    @Test func headExactlyAtTheLimit() {
        let text = request("X: \(String(repeating: "a", count: 50))\r\n")
        let size = text.utf8.count
        #expect(feed(text, limits: .init(maxHeadBytes: size)).single != nil)
        #expect(feed(text, limits: .init(maxHeadBytes: size - 1)).error == .headTooLarge)
        // Leading empty lines count.
        #expect(feed("\r\n" + text, limits: .init(maxHeadBytes: size)).error == .headTooLarge)
        #expect(feed("\r\n" + text, limits: .init(maxHeadBytes: size + 2)).single != nil)
    }

    @Test func oversizedHeadFailsBeforeItEnds() {
        let limit = HTTP1Limits().maxHeadBytes
        let prefix = Array("GET / HTTP/1.1\r\nHost: a\r\nX: ".utf8)
        let filler = [UInt8](repeating: UInt8(ascii: "a"), count: limit - prefix.count)
        #expect(feed(prefix + filler).error == nil)
        #expect(feed(prefix + filler + [UInt8(ascii: "a")]).error == .headTooLarge)
        #expect(HTTP1ParseError.headTooLarge.status == 431)
        // Without any line end at all (e.g. not HTTP).
        #expect(feed([UInt8](repeating: UInt8(ascii: "G"), count: limit + 1)).error == .headTooLarge)
    }

    @Test func fieldCount() {
        let three = "A: 1\r\nB: 2\r\nC: 3\r\n"
        #expect(feed(request(three), limits: .init(maxFields: 4)).single?.head.fieldCount == 4)
        #expect(feed(request(three), limits: .init(maxFields: 3)).error == .tooManyFields)
        let many = String(repeating: "X: y\r\n", count: 256)
        #expect(feed(request(many)).error == .tooManyFields)
        // Detected at the field, before the head ends.
        #expect(feed("GET / HTTP/1.1\r\nHost: a\r\n" + many).error == .tooManyFields)
    }

    @Test func chunkLine() {
        let extensions = ";" + String(repeating: "e", count: 98)  // with "1", 100 bytes
        let text = chunked("1" + extensions + "\r\nx\r\n0\r\n\r\n")
        #expect(feed(text, limits: .init(maxChunkLineBytes: 100)).single?.body == [UInt8(ascii: "x")])
        #expect(feed(text, limits: .init(maxChunkLineBytes: 99)).error == .chunkLineTooLong)
        #expect(HTTP1ParseError.chunkLineTooLong.status == 400)
        // Unbounded input without a line end fails at the limit.
        let endless = chunked("1;" + String(repeating: "e", count: 5000))
        #expect(feed(endless).error == .chunkLineTooLong)
    }

    @Test func trailerSection() {
        let trailer = "X: 12345\r\n\r\n"  // 12 bytes
        let text = chunked("1\r\nx\r\n0\r\n" + trailer)
        #expect(feed(text, limits: .init(maxTrailerBytes: 12)).single != nil)
        #expect(feed(text, limits: .init(maxTrailerBytes: 11)).error == .trailersTooLarge)
        #expect(HTTP1ParseError.trailersTooLarge.status == 431)
        let many = String(repeating: "X: y\r\n", count: 3000)
        #expect(feed(chunked("0\r\n" + many)).error == .trailersTooLarge)
    }
}

@Suite("Byte classes")
struct ByteClassTests {
    @Test func tokenBytesAreRFC9110() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        for byte in UInt8.min...UInt8.max {
            #expect(isTokenByte(byte) == tchar.contains(byte), "byte \(byte)")
        }
    }

    @Test func regNameBytesAreRFC3986() {
        let regName = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=".utf8)
        for byte in UInt8.min...UInt8.max {
            #expect(isRegNameByte(byte) == regName.contains(byte), "byte \(byte)")
        }
    }

    @Test func wordScanFindsEveryControlByteAtEveryPosition() {
        let plain: UInt64 = 0x6162_6364_6566_6768
        #expect(!containsControlOrDelete(plain))
        #expect(!containsControlOrDelete(0xFFFF_FFFF_FFFF_FFFF))
        #expect(!containsControlOrDelete(0x8080_8080_8080_8080))
        #expect(!containsControlOrDelete(0x2020_2020_2020_2020))
        for position in 0..<8 {
            for byte in UInt8.min...UInt8.max {
                var word = plain
                word &= ~(UInt64(0xFF) << UInt64(position * 8))
                word |= UInt64(byte) << UInt64(position * 8)
                let special = byte < 0x20 || byte == 0x7F
                #expect(containsControlOrDelete(word) == special, "byte \(byte) at \(position)")
            }
        }
    }

    @Test func hexDigits() {
        #expect(hexValue(UInt8(ascii: "0")) == 0)
        #expect(hexValue(UInt8(ascii: "9")) == 9)
        #expect(hexValue(UInt8(ascii: "a")) == 10)
        #expect(hexValue(UInt8(ascii: "F")) == 15)
        #expect(hexValue(UInt8(ascii: "g")) == nil)
        #expect(hexValue(UInt8(ascii: "G")) == nil)
        #expect(hexValue(UInt8(ascii: "/")) == nil)
        #expect(hexValue(UInt8(ascii: ":")) == nil)
        #expect(hexValue(UInt8(ascii: "@")) == nil)
        #expect(hexValue(UInt8(ascii: "`")) == nil)
    }
}
