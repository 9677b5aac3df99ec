import Foundation
import JOSE
import Testing

/// Tests/Fixtures/better-auth-1.4-examples.json: tokens and JWKS in Better Auth 1.4's shape.
@Suite struct BetterAuthTests {
    static let pairs = [
        ("ex1_token", "ex1_jwks"), ("ex2_token_new", "ex2_jwks"), ("ex3_es256_token", "ex3_es256_jwks"),
        ("ex3_rs256_token", "ex3_rs256_jwks"), ("ex3_ps256_token", "ex3_ps256_jwks"),
    ]

    static func fixture() throws -> JSONValue { try Fixtures.project("better-auth-1.4-examples.json") }

    static func keySet(_ name: String) throws -> JWKSet {
        let jwks = try #require(try fixture()[name])
        let set = try JWKSet.parse(encodeJSON(jwks)).get()
        #expect(set.rejected.isEmpty)
        return set
    }

    /// A verifier configured from the token's own (unverified) claims, as the test brief
    /// asks; production configures these from settings.
    static func verifier(for token: String) throws -> (JWTVerifier, now: Double) {
        let payload = try CompactJWS.parse(token).get().payload
        let issuer = try #require(payload["iss"]?.stringValue)
        let audience: String = switch payload["aud"] {
        case .string(let value)?: value
        case .array(let values)?: try #require(values.first?.stringValue)
        default: "none"
        }
        let iat = try #require(payload["iat"]?.numberValue)
        return (JWTVerifier(configuration: .init(issuer: issuer, audiences: [audience])), iat + 60)
    }

    @Test(arguments: pairs.map(\.0))
    func tokenVerifies(_ tokenName: String) throws {
        let jwksName = Self.pairs.first { $0.0 == tokenName }!.1
        let token = try #require(try Self.fixture()[tokenName]?.stringValue)
        let keys = try Self.keySet(jwksName)
        let (verifier, now) = try Self.verifier(for: token)
        let verified = try verifier.verify(token: token, keys: keys, now: now).get()
        #expect(verified.sub == "M0JbW4n1bXq7cR2sT9vK3yZ8aL5dF6gH")
        #expect(verified.exp == (verified.claims["iat"]?.numberValue ?? 0) + 900 || tokenName == "ex3_es256_token")
        #expect(verified.kid != nil && keys.kids.contains(verified.kid!))
        #expect(verified.payloadBase64URL == token.split(separator: ".")[1].description)
        #expect(Base64URL.encode(verified.payloadBytes) == verified.payloadBase64URL)
        // Better Auth user fields survive parsing (image may be null).
        if tokenName != "ex3_es256_token" {
            #expect(verified.claims["image"] == .null)
            #expect(verified.claims["emailVerified"] == .bool(true))
        }
    }

    @Test func rotationSetPicksTheRightKid() throws {
        let token = try #require(try Self.fixture()["ex2_token_new"]?.stringValue)
        let keys = try Self.keySet("ex2_jwks")
        #expect(keys.kids == ["82437b8c-d052-47e3-b7a8-b9fb1c9f6184", "121d3325-6451-4091-8ee4-057dbdcadf95"])
        let (verifier, now) = try Self.verifier(for: token)
        let verified = try verifier.verify(token: token, keys: keys, now: now).get()
        #expect(verified.kid == "121d3325-6451-4091-8ee4-057dbdcadf95")
        // With only the old key left, the same token has no key to be checked with.
        let oldOnly = try JWKSet.parse(encodeJSON(.object(["keys": .array([try #require(try Self.fixture()["ex2_jwks"]?["keys"]?.arrayValue?.first)])]))).get()
        #expect(verifier.verify(token: token, keys: oldOnly, now: now).failureValue?.reason == .unknownKey)
    }

    @Test func es512KeyImports() throws {
        let keys = try Self.keySet("ex3_es512_jwks")
        #expect(keys.keys.count == 1)
        #expect(keys.keys[0].type == .p521)
        #expect(keys.keys[0].signatureLength == 132)
        #expect(keys.keys[0].declaredAlgorithm == .ES512)
    }

    @Test func databaseRowPublicKeyImports() throws {
        let row = try #require(try Self.fixture()["db_row_publicKey_example"]?.stringValue)
        let key = try JWK.parse(row).get()
        #expect(key.type == .ed25519 && key.kid == nil)
    }

    @Test(arguments: pairs.map(\.0))
    func expiredAtTheRealCurrentTime(_ tokenName: String) throws {
        let jwksName = Self.pairs.first { $0.0 == tokenName }!.1
        let token = try #require(try Self.fixture()[tokenName]?.stringValue)
        let (verifier, _) = try Self.verifier(for: token)
        let now = Date().timeIntervalSince1970
        #expect(verifier.verify(token: token, keys: try Self.keySet(jwksName), now: now).failureValue?.reason == .expired)
    }
}
