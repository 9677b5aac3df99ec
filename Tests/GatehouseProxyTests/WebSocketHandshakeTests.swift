import HTTPTypes
import Testing

@testable import GatehouseProxy

@Suite struct WebSocketHandshakeTests {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test(arguments: [
        ("GET", ["websocket"], ["Upgrade"], true),
        ("GET", ["WebSocket"], ["keep-alive, Upgrade"], true),
        ("GET", ["h2c, websocket"], ["upgrade"], true),
        ("POST", ["websocket"], ["Upgrade"], false),
        ("GET", ["h2c"], ["Upgrade"], false),
        ("GET", ["websocket"], ["keep-alive"], false),
        ("GET", [], ["Upgrade"], false),
    ])
    func recognisesHandshakes(method: String, upgrade: [String], connection: [String], expected: Bool) {
        #expect(WebSocketHandshake.isUpgradeRequest(method: method, upgrade: upgrade, connection: connection) == expected)
    }

    @Test func upstreamRequestPutsBackTheUpgradeFields() {
        let request = WebSocketHandshake.upstreamRequest(
            target: "/prefix/ws?room=1", headers: [("Host", "app.example.com"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")])
        let text = String(decoding: request, as: UTF8.self)
        #expect(
            text == "GET /prefix/ws?room=1 HTTP/1.1\r\nHost: app.example.com\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    }

    @Test func incompleteHeadAsksForMore() throws {
        #expect(try WebSocketHandshake.parseAnswer(bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")) == nil)
        #expect(try WebSocketHandshake.parseAnswer([]) == nil)
    }

    @Test func switchingProtocolsKeepsFieldsAndFramesBehindTheHead() throws {
        let frame: [UInt8] = [0x81, 0x03, 0x62, 0x79, 0x65]  // text "bye", unmasked (server → client)
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol:  chat.v2 \r\n\r\n"
        let answer = try #require(try WebSocketHandshake.parseAnswer(bytes(head) + frame))
        #expect(answer.head.status == 101)
        #expect(answer.head.headers.map(\.name) == ["Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol"])
        #expect(answer.head.headers[3].value == "chat.v2")
        #expect(answer.rest == frame)
    }

    @Test func refusalDeclaresItsBody() throws {
        let answer = try #require(
            try WebSocketHandshake.parseAnswer(bytes("HTTP/1.1 403 Forbidden\r\ncontent-length: 9\r\n\r\nForbidden")))
        #expect(answer.head.status == 403)
        #expect(answer.contentLength == 9)
        #expect(answer.rest == bytes("Forbidden"))
    }

    @Test(arguments: [
        "HTTP/1.1 1O1 Switching\r\n\r\n",  // status not digits
        "HTTP/1.1 99 Odd\r\n\r\n",  // status out of range
        "HTTX/1.1 101 Switching\r\n\r\n",  // not HTTP
        "HTTP/1.1 101 OK\r\nNo colon here\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\n",  // an interim answer other than 101 fits no handshake
        "HTTP/1.1 403 No\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",  // conflicting lengths
        "\r\n\r\n",
    ])
    func malformedAnswersAreRejected(text: String) {
        #expect(throws: WebSocketHandshake.ParseError.malformed) { try WebSocketHandshake.parseAnswer(bytes(text)) }
    }

    @Test func switchingProtocolsResponseIsWrittenFromValidatedFields() {
        var fields = HTTPFields()
        fields.append(HTTPField(name: HTTPField.Name("Sec-WebSocket-Accept")!, value: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
        fields.append(HTTPField(name: .requestID, value: "abc"))
        let response = WebSocketHandshake.switchingProtocols(fields)
        #expect(
            String(decoding: response, as: UTF8.self)
                == "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Request-Id: abc\r\n\r\n")
    }

    @Test func oversizedHeadIsRejectedWithOrWithoutItsEnd() {
        let huge = "HTTP/1.1 101 OK\r\nX: " + String(repeating: "a", count: WebSocketHandshake.maxHeadBytes)
        #expect(throws: WebSocketHandshake.ParseError.headTooLarge) { try WebSocketHandshake.parseAnswer(bytes(huge)) }
        #expect(throws: WebSocketHandshake.ParseError.headTooLarge) {
            try WebSocketHandshake.parseAnswer(bytes(huge + "\r\n\r\n"))
        }
    }

    @Test func upstreamHostAndPort() throws {
        #expect(try #require(UpstreamURL.parse("http://127.0.0.1:8000")).hostAndPort == ("127.0.0.1", 8000))
        #expect(try #require(UpstreamURL.parse("http://api.internal/prefix")).hostAndPort == ("api.internal", 80))
        #expect(try #require(UpstreamURL.parse("https://api.internal")).hostAndPort == ("api.internal", 443))
        #expect(try #require(UpstreamURL.parse("http://[::1]:9000")).hostAndPort == ("::1", 9000))
        #expect(try #require(UpstreamURL.parse("http://[::1]")).hostAndPort == ("::1", 80))
    }
}
