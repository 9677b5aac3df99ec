import JOSE
import Testing

@testable import GatehouseProxy

@Suite struct HeaderRulesTests {
    @Test func hopByHopIncludesFieldsNamedByConnection() {
        let names = HopByHopHeaders.names(connectionValues: ["keep-alive, X-Secret-Hop", " Upgrade ,,x-other"])
        #expect(names.isSuperset(of: HopByHopHeaders.fixed))
        #expect(names.contains("x-secret-hop"))
        #expect(names.contains("x-other"))
        #expect(!names.contains("x-normal"))
        #expect(HopByHopHeaders.fixed.contains("proxy-authorization"))
        #expect(HopByHopHeaders.fixed.contains("te"))
    }

    @Test func untrustedPeerForwardingHeadersAreOverwritten() {
        let forwarding = ForwardingHeaders(trustedProxies: [])
        let incoming = ForwardingHeaders.Incoming(forwardedFor: ["6.6.6.6"], forwardedProto: "https", forwardedHost: "evil")
        let fields = forwarding.fields(peer: "10.1.2.3", host: "app.example.com", incoming: incoming)
        #expect(fields.map(\.name) == ["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"])
        #expect(fields.map(\.value) == ["10.1.2.3", "http", "app.example.com"])
    }

    @Test func trustedPeerChainIsExtended() throws {
        let forwarding = ForwardingHeaders(trustedProxies: [try #require(CIDR.parse("10.0.0.0/8"))])
        let incoming = ForwardingHeaders.Incoming(forwardedFor: ["203.0.113.7"], forwardedProto: "https", forwardedHost: "app.example.com")
        let fields = forwarding.fields(peer: "10.1.2.3", host: "gatehouse:8080", incoming: incoming)
        #expect(fields.map(\.value) == ["203.0.113.7, 10.1.2.3", "https", "app.example.com"])
    }

    @Test func cidrMatching() throws {
        let v4 = try #require(CIDR.parse("192.168.0.0/16"))
        #expect(v4.contains(try #require(IPAddress.parse("192.168.44.1"))))
        #expect(!v4.contains(try #require(IPAddress.parse("192.169.0.1"))))
        #expect(v4.contains(try #require(IPAddress.parse("::ffff:192.168.1.1"))), "v4-mapped v6 peers match v4 rules")
        let v6 = try #require(CIDR.parse("fd00::/8"))
        #expect(v6.contains(try #require(IPAddress.parse("fd12::1"))))
        #expect(!v6.contains(try #require(IPAddress.parse("fe80::1"))))
        let host = try #require(CIDR.parse("10.0.0.1"))
        #expect(!host.contains(try #require(IPAddress.parse("10.0.0.2"))))
        for bad in ["10.0.0.0/33", "10.0.0/8", "::/129", "x", "10.0.0.0/", "10.0.0.0/8/1"] {
            #expect(CIDR.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func requestIDs() {
        #expect(RequestID.accept("abc-123_X.y:z") == "abc-123_X.y:z")
        #expect(RequestID.accept("has space") == nil)
        #expect(RequestID.accept("new\nline") == nil)
        #expect(RequestID.accept(String(repeating: "a", count: 129)) == nil)
        #expect(RequestID.accept("") == nil)
        let generated = RequestID.generate()
        #expect(generated.count == 32 && RequestID.accept(generated) == generated)
        #expect(RequestID.generate() != generated)
    }

    @Test func loggedPathsDropQueryValues() {
        #expect(LoggedPath.redacting("/search?q=secret&page=2") == "/search?q=&page=")
        #expect(LoggedPath.redacting("/sse?access_token=eyJhbGciOi") == "/sse?access_token=")
        #expect(LoggedPath.redacting("/plain") == "/plain")
        #expect(LoggedPath.redacting("/x?&a") == "/x?=&a=")
    }

    @Test func jsonQuoting() {
        #expect(JSONText.quoted("a\"b\\c\n\u{1}") == #""a\"b\\c\n\u0001""#)
        #expect(JSONText.quoted("") == #""""#)
        #expect(JSONText.quoted("plain/path?q=1") == #""plain/path?q=1""#)
        #expect(JSONText.quoted("\t\r\u{7f}end") == #""\t\r\u007fend""#)
        #expect(JSONText.quoted("héllo \u{1F600}\"") == "\"héllo \u{1F600}\\\"\"", "UTF-8 passes as it is")
        #expect(JSONText.quoted("\\\\") == #""\\\\""#)
        #expect(String(decoding: ErrorResponse.badGateway.body, as: UTF8.self) == #"{"detail":"Upstream unavailable"}"#)
    }
}
