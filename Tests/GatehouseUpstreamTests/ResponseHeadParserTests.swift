import Testing

@testable import GatehouseUpstream

@Suite struct ResponseHeadParserTests {
    func feed(_ lines: [String]) -> [ResponseHeadParser.Event] {
        var parser = ResponseHeadParser()
        return lines.map { line in Array(line.utf8).withUnsafeBytes { parser.feed($0) } }
    }

    @Test func finalHeadAfterInterimResponses() {
        let events = feed([
            "HTTP/1.1 100 Continue\r\n", "\r\n",
            "HTTP/1.1 103 Early Hints\r\n", "Link: </a.css>\r\n", "\r\n",
            "HTTP/1.1 201 Created\r\n", "Set-Cookie: a=1\r\n", "Set-Cookie: b=2\r\n", "X-Empty:\r\n", "\r\n",
        ])
        let heads = events.compactMap { event -> UpstreamResponseHead? in
            if case .head(let head) = event { return head }
            return nil
        }
        #expect(heads.count == 1)
        #expect(heads.first?.status == 201)
        #expect(heads.first?.headers == [
            .init(name: "Set-Cookie", value: "a=1"), .init(name: "Set-Cookie", value: "b=2"),
            .init(name: "X-Empty", value: ""),
        ])
    }

    @Test func switchingProtocolsIsMalformedUnlessAnUpgradeWasAsked() {
        guard case .malformed = feed(["HTTP/1.1 101 Switching Protocols\r\n", "Upgrade: h2c\r\n", "\r\n"]).last else {
            Issue.record("a 101 on a plain exchange must fail it")
            return
        }
        var upgrading = ResponseHeadParser(switchingProtocolsIsFinal: true)
        let events = ["HTTP/1.1 101 Switching Protocols\r\n", "Upgrade: websocket\r\n", "\r\n"].map { line in
            Array(line.utf8).withUnsafeBytes { upgrading.feed($0) }
        }
        guard case .head(let head) = events.last else {
            Issue.record("the handshake's 101 is its final head")
            return
        }
        #expect(head.status == 101)
    }

    @Test func obsoleteLineFoldingIsJoined() {
        let events = feed(["HTTP/1.1 200 OK\r\n", "X-Long: a\r\n", "\t b\r\n", "\r\n"])
        #expect(events.last == .head(.init(status: 200, reason: "OK", headers: [.init(name: "X-Long", value: "a b")])))
    }

    @Test(arguments: ["HTTP/1.1 20 OK\r\n", "HTTP/1.1 abc OK\r\n", "ICY 200 OK\r\n", "HTTP/1.1 999 X\r\n"])
    func malformedStatusLines(_ line: String) {
        guard case .malformed = feed([line]).first else {
            Issue.record("accepted \(line)")
            return
        }
    }

    @Test func headerWithoutNameIsMalformed() {
        guard case .malformed = feed(["HTTP/1.1 200 OK\r\n", ": value\r\n"]).last else {
            Issue.record("accepted a header without a name")
            return
        }
    }
}

extension ResponseHeadParserTests {
    @Test(arguments: [
        ["Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n"],
        ["Content-Length: 5\r\n", "Content-Length: 6\r\n"],
    ])
    func ambiguousFramingIsMalformed(_ fields: [String]) {
        guard case .malformed = feed(["HTTP/1.1 200 OK\r\n"] + fields + ["\r\n"]).last else {
            Issue.record("accepted ambiguous framing \(fields)")
            return
        }
    }
}
