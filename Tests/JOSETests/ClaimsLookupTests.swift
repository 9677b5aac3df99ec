import JOSE
import Testing

/// Lookups that compare names instead of hashing them (`JWTClaims`, `JWKSet.key(for:)`):
/// they must find exactly what a dictionary would, on both sides of the size limits where
/// they switch strategy.
@Suite struct ClaimsLookupTests {
    static var mainKeys: [JSONValue] { KeySetTests.mainKeys }

    /// A set of `count` copies of the Ed25519 key, each with its own kid.
    static func keySet(count: Int) throws -> JWKSet {
        let keys = (0..<count).map { index -> JSONValue in
            var jwk = mainKeys[0].objectValue!
            jwk["kid"] = .string("kid-\(index)-" + String(repeating: "x", count: index))
            return .object(jwk)
        }
        return try JWKSet.parse(KeySetTests.document(keys)).get()
    }

    @Test(arguments: [1, 3, 8, 9, 40])
    func everyKidFindsItsOwnKeyAndNoOther(count: Int) throws {
        let set = try Self.keySet(count: count)
        #expect(set.keys.count == count)
        for key in set.keys {
            #expect(set.key(for: key.kid) === key)
        }
        #expect(set.key(for: "kid-0") == nil)  // a prefix of a kid
        #expect(set.key(for: "kid-0-x") == nil)  // one longer than kid-0-
        #expect(set.key(for: "KID-0-") == nil)  // kids are case-sensitive
        #expect(set.key(for: "") == nil)
        #expect((set.key(for: nil) != nil) == (count == 1))
    }

    /// A Claims Set in an unusual order, with names that resemble the registered ones.
    static let payload = #"{"sub":"u1","expiry":5,"ex":1,"EXP":2,"org":{"role":"owner","n":[1]},"aud":["a","b"],"iss":"https://i","exp":4102444800,"nbf":0,"iat":1,"email":"e@x"}"#

    @Test func claimsAreFoundByTheirExactName() throws {
        let header = #"{"alg":"EdDSA","kid":"k"}"#
        let token = [header, Self.payload].map { Base64URL.encode(Array($0.utf8)) }.joined(separator: ".") + ".sig"
        let jws = try CompactJWS.parse(token).get()
        let claims = jws.payload
        #expect(claims["exp"] == .int(4_102_444_800))
        #expect(claims["EXP"] == .int(2))
        #expect(claims["ex"] == .int(1))
        #expect(claims["expiry"] == .int(5))
        #expect(claims["missing"] == nil)
        #expect(claims.value(at: ["org", "role"]) == .string("owner"))
        #expect(claims.value(at: ["org", "role", "deeper"]) == nil)
        #expect(claims.value(at: ["email"]) == .string("e@x"))
        #expect(claims.members.map(\.name) == ["sub", "expiry", "ex", "EXP", "org", "aud", "iss", "exp", "nbf", "iat", "email"])
        #expect(claims.object == (try JSONParser.parse(Array(Self.payload.utf8)).get()))
    }

    @Test func claimsFromADictionaryCompareByContentNotOrder() {
        let a: JWTClaims = ["x": .int(1), "y": .string("2")]
        let b = JWTClaims(["y": .string("2"), "x": .int(1)])
        #expect(a == b)
        #expect(a != JWTClaims(["x": .int(1)]))
        #expect(a != JWTClaims(["x": .int(1), "y": .string("3")]))
    }
}

/// Duplicate member names are found as Swift compares strings — canonically equivalent names
/// count as one — whatever the object's size, so a dictionary view never meets two of them.
@Suite struct DuplicateNameTests {
    static func object(_ names: [String], padding: Int) -> [UInt8] {
        let members = (0..<padding).map { #""p\#($0)":0"# } + names.map { #""\#($0)":0"# }
        return Array(("{" + members.joined(separator: ",") + "}").utf8)
    }

    @Test(arguments: [0, 5, 15, 20])
    func canonicallyEquivalentNamesAreDuplicates(padding: Int) {
        for pair in [["K", "\u{212A}"], ["é", "e\u{301}"], ["exp", "exp"]] {
            let parsed = JSONParser.parse(Self.object(pair, padding: padding))
            #expect(parsed.failureValue?.kind == .duplicateMember, "\(pair) after \(padding) members")
        }
        #expect((try? JSONParser.parse(Self.object(["exp", "expx", "EXP"], padding: padding)).get()) != nil)
    }

    @Test func aTokenHeaderWithEquivalentNamesIsMalformed() {
        let header = Base64URL.encode(Array(#"{"alg":"EdDSA","K":0,"\u212A":0}"#.utf8))
        let payload = Base64URL.encode(Array(#"{"sub":"u"}"#.utf8))
        #expect(CompactJWS.parse("\(header).\(payload).c2ln").failureValue?.reason == .malformed)
    }
}
