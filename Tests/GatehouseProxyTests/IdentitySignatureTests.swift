import Foundation
import JOSE
import Testing

@testable import GatehouseProxy

#if canImport(Glibc)
import Glibc
#endif

/// `X-Gatehouse-Signature`: the canonical string, the MAC, and the secret variables.
@Suite struct IdentitySignatureTests {
    let signature = IdentitySignature(
        signingSecret: Array("0123456789abcdef0123456789abcdef".utf8), secretCount: 1,
        headerNames: [("X-User-Id", "x-user-id"), ("X-User-Email", "x-user-email"), ("X-Auth-Claims", "x-auth-claims")])

    @Test func theCanonicalStringIsTheDocumentedLines() {
        let identity = [("X-User-Id", "user-42"), ("X-Auth-Claims", "eyJzdWIiOiJ1c2VyLTQyIn0"), ("X-Auth-Method", "jwt")]
        let text = String(decoding: signature.canonical(
            time: 1_796_220_000, method: "GET", target: "/items/a%2Fb?x=1", requestID: "req-123",
            identity: identity.map { (name: $0.0, value: $0.1) }), as: UTF8.self)
        // The absent X-User-Email is an empty line of its own, in configured order.
        #expect(text == "gatehouse-v1\n1796220000\nGET\n/items/a%2Fb?x=1\nreq-123\njwt\nx-user-id:user-42\nx-user-email:\nx-auth-claims:eyJzdWIiOiJ1c2VyLTQyIn0\n")
    }

    @Test func theREADMEExample() {
        let identity = [
            ("X-User-Id", "user-42"), ("X-User-Email", "ada@example.com"), ("X-Auth-Claims", "eyJzdWIiOiJ1c2VyLTQyIn0"),
            ("X-Auth-Method", "jwt"),
        ].map { (name: $0.0, value: $0.1) }
        let value = signature.value(
            time: 1_796_220_000, method: "GET", target: "/items/a%20b?x=1", requestID: "req-123", identity: identity,
            signer: signature.makeSigner())
        #expect(value == "t=1796220000,v1=dbd42cab6334ec4cd23e9af8fa098f57fa3e5de256c981ec39a57c109a9e55c3")
    }

    @Test func anonymousRequestsAreSignedWithEmptyIdentity() {
        let text = String(decoding: signature.canonical(time: 5, method: "POST", target: "/", requestID: "r", identity: []), as: UTF8.self)
        #expect(text == "gatehouse-v1\n5\nPOST\n/\nr\n\nx-user-id:\nx-user-email:\nx-auth-claims:\n")
    }

    @Test func anEmptyQueryIsSignedAsNoQueryAsASGIReadsIt() {
        let withMark = signature.canonical(time: 5, method: "GET", target: "/search?", requestID: "r", identity: [])
        #expect(withMark == signature.canonical(time: 5, method: "GET", target: "/search", requestID: "r", identity: []))
        #expect(withMark != signature.canonical(time: 5, method: "GET", target: "/search?q", requestID: "r", identity: []))
    }

    @Test func theHeaderIsHexHMACOfTheCanonicalString() {
        let signer = signature.makeSigner()
        let value = signature.value(time: 7, method: "GET", target: "/a", requestID: "r", identity: [], signer: signer)
        let expected = HMACSHA256.mac(
            key: signature.signingSecret,
            data: signature.canonical(time: 7, method: "GET", target: "/a", requestID: "r", identity: []))
        #expect(value == "t=7,v1=" + IdentitySignature.hex(expected))
        // The worker's context is reused request after request: every MAC is computed afresh.
        let other = signature.value(time: 7, method: "GET", target: "/b", requestID: "r", identity: [], signer: signer)
        #expect(other != value)
        #expect(signature.value(time: 7, method: "GET", target: "/a", requestID: "r", identity: [], signer: signer) == value)
    }

    @Test func hmacMatchesRFC4231() {
        // RFC 4231 §4.3, test case 2.
        let mac = HMACSHA256.mac(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
        #expect(IdentitySignature.hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}

@Suite struct IdentitySecretConfigurationTests {
    let base = ["GATEHOUSE_UPSTREAM": "http://127.0.0.1:8000", "GATEHOUSE_AUTH": "off"]
    let secret = String(repeating: "s", count: 32)

    func load(_ extra: [String: String]) -> Result<GatehouseConfiguration, ConfigurationError> {
        GatehouseConfiguration.load(environment: base.merging(extra) { $1 })
    }

    @Test func oneOrTwoSecretsTheFirstSigns() throws {
        let one = try load(["GATEHOUSE_IDENTITY_SECRET": secret]).get()
        #expect(one.identitySignature?.signingSecret == Array(secret.utf8))
        let two = try load(["GATEHOUSE_IDENTITY_SECRET": secret + "," + String(repeating: "t", count: 40)]).get()
        #expect(two.identitySignature?.signingSecret == Array(secret.utf8))
        #expect(two.identitySignature?.secretCount == 2)
        #expect(try load([:]).get().identitySignature == nil)
    }

    @Test(arguments: ["", "short", String(repeating: "s", count: 31), String(repeating: "s", count: 32) + ",short", "a,b,c", String(repeating: "s", count: 32) + ", " + String(repeating: "t", count: 32)])
    func weakSecretsAreRefusedWithoutShowingThem(_ value: String) {
        guard case .failure(let error) = load(["GATEHOUSE_IDENTITY_SECRET": value]) else {
            Issue.record("accepted \(value.count) bytes")
            return
        }
        #expect(error.problems.map(\.variable) == ["GATEHOUSE_IDENTITY_SECRET"])
        if !value.isEmpty { #expect(!error.description.contains(value)) }
    }

    func writeFile(_ path: String, _ bytes: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    @Test func aSecretFileIsReadAsBytesCRLFAndAll() throws {
        let path = "/tmp/gatehouse-identity-secret-bytes-\(getpid())"
        defer { unlink(path) }
        // Random bytes (not UTF-8) and a Windows line end: the key is exactly the bytes before it.
        let random: [UInt8] = (0..<40).map { UInt8(($0 * 97 + 200) % 256) } .map { $0 == 0x2C || $0 == 0x0A || $0 == 0x0D ? 0xFF : $0 }
        writeFile(path, random + [0x0D, 0x0A])
        #expect(try load(["GATEHOUSE_IDENTITY_SECRET_FILE": path]).get().identitySignature?.signingSecret == random)
        // 30 bytes and a CRLF are not 32 bytes of secret.
        writeFile(path, Array(repeating: 0x61, count: 30) + [0x0D, 0x0A])
        guard case .failure = load(["GATEHOUSE_IDENTITY_SECRET_FILE": path]) else {
            Issue.record("a 30-byte secret was accepted thanks to its line end")
            return
        }
    }

    @Test func theSecretMayComeFromAFileWithoutItsLineBreak() throws {
        let path = "/tmp/gatehouse-identity-secret-\(getpid())"
        writeFile(path, Array((secret + "\n").utf8))
        defer { unlink(path) }
        let configuration = try load(["GATEHOUSE_IDENTITY_SECRET_FILE": path]).get()
        #expect(configuration.identitySignature?.signingSecret == Array(secret.utf8))
        // check-config names the source, never the secret.
        let shown = configuration.effectiveSettings.map { "\($0.name)=\($0.value)" }.joined(separator: "\n")
        #expect(shown.contains("GATEHOUSE_IDENTITY_SECRET_FILE=(redacted: 1 secret)"))
        #expect(!shown.contains(secret))
        guard case .failure(let missing) = load(["GATEHOUSE_IDENTITY_SECRET_FILE": path + "-missing"]) else {
            Issue.record("a missing file was accepted")
            return
        }
        #expect(missing.problems.map(\.variable) == ["GATEHOUSE_IDENTITY_SECRET_FILE"])
        guard case .failure(let both) = load(["GATEHOUSE_IDENTITY_SECRET_FILE": path, "GATEHOUSE_IDENTITY_SECRET": secret]) else {
            Issue.record("both variables were accepted")
            return
        }
        #expect(both.problems.map(\.variable) == ["GATEHOUSE_IDENTITY_SECRET_FILE"])
    }
}

/// `Tests/Fixtures/identity-signatures.json`: the vectors `gatehouse-fastapi` is tested against
/// too (generated by `python/gatehouse-fastapi/tests/make_vectors.py` with plain `hmac`), read
/// through the real configuration path, so the two implementations cannot drift.
@Suite struct IdentitySignatureVectorTests {
    static func cases() throws -> [JSONValue] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/identity-signatures.json")
        let bytes = [UInt8](try Data(contentsOf: url))
        return try JSONParser.parse(bytes, maxDepth: 8).get().arrayValue ?? []
    }

    @Test func everyVectorGivesItsCanonicalStringAndSignature() throws {
        let cases = try Self.cases()
        #expect(cases.count >= 10)
        for vector in cases {
            let name = vector["name"]?.stringValue ?? "?"
            var environment = [
                "GATEHOUSE_UPSTREAM": "http://127.0.0.1:8000", "GATEHOUSE_AUTH": "off",
                "GATEHOUSE_IDENTITY_SECRET": try #require(vector["secret"]?.stringValue),
                "GATEHOUSE_CLAIMS_HEADER": vector["claims_header"]?.stringValue ?? "",
            ]
            environment["GATEHOUSE_CLAIM_HEADERS"] = vector["claim_headers"]?.stringValue
            let signature = try #require(try GatehouseConfiguration.load(environment: environment).get().identitySignature, "\(name)")
            var identity: [(name: String, value: String)] = (vector["headers"]?.objectValue ?? [:]).map { ($0.key, $0.value.stringValue ?? "") }
            if let method = vector["auth_method"]?.stringValue, !method.isEmpty { identity.append(("X-Auth-Method", method)) }
            let time = Int(try #require(vector["t"]?.numberValue))
            let method = try #require(vector["method"]?.stringValue)
            let target = try #require(vector["target"]?.stringValue)
            let requestID = try #require(vector["request_id"]?.stringValue)
            let canonical = signature.canonical(time: time, method: method, target: target, requestID: requestID, identity: identity)
            #expect(String(decoding: canonical, as: UTF8.self) == vector["canonical"]?.stringValue, "\(name)")
            let value = signature.value(
                time: time, method: method, target: target, requestID: requestID, identity: identity, signer: signature.makeSigner())
            #expect(value == vector["signature"]?.stringValue, "\(name)")
        }
    }
}
