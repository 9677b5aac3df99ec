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

    @Test(arguments: ["", "short", String(repeating: "s", count: 31), String(repeating: "s", count: 32) + ",short", "a,b,c"])
    func weakSecretsAreRefusedWithoutShowingThem(_ value: String) {
        guard case .failure(let error) = load(["GATEHOUSE_IDENTITY_SECRET": value]) else {
            Issue.record("accepted \(value.count) bytes")
            return
        }
        #expect(error.problems.map(\.variable) == ["GATEHOUSE_IDENTITY_SECRET"])
        if !value.isEmpty { #expect(!error.description.contains(value)) }
    }

    @Test func theSecretMayComeFromAFileWithoutItsLineBreak() throws {
        let path = "/tmp/gatehouse-identity-secret-\(getpid())"
        let text = secret + "\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, text.utf8.count) }
        close(fd)
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
