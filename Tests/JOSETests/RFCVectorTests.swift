import Foundation
import JOSE
import Testing

/// Published examples: RFC 8037 Appendix A.4 (Ed25519) and RFC 7515 Appendix A.2 (RS256)
/// and A.3 (ES256). Their payloads are not Better Auth claims, so they test the signature
/// layer: `VerificationKey.isValidSignature` and `JWTVerifier.verifySignature`.
@Suite struct RFCVectorTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String
        let jwk: String
        let token: String
        let algorithm: JWSAlgorithm
        var testDescription: String { name }
    }

    static let rfc7515Payload = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"

    static let vectors: [Vector] = [
        Vector(name: "RFC 8037 A.4 Ed25519",
               jwk: #"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
               token: "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
               algorithm: .EdDSA),
        Vector(name: "RFC 7515 A.2 RS256",
               jwk: #"{"kty":"RSA","e":"AQAB","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}"#,
               token: "eyJhbGciOiJSUzI1NiJ9.\(rfc7515Payload).cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw",
               algorithm: .RS256),
        Vector(name: "RFC 7515 A.3 ES256",
               jwk: #"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#,
               token: "eyJhbGciOiJFUzI1NiJ9.\(rfc7515Payload).DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
               algorithm: .ES256),
    ]

    static func split(_ token: String) -> (signingInput: [UInt8], signature: [UInt8]) {
        let lastDot = token.utf8.lastIndex(of: UInt8(ascii: "."))!
        let signingInput = Array(token.utf8[..<lastDot])
        let signature = Base64URL.decode(token[token.index(after: lastDot)...])!
        return (signingInput, signature)
    }

    @Test(arguments: vectors)
    func signatureVerifies(_ vector: Vector) throws {
        let key = try JWK.parse(vector.jwk).get()
        let (input, signature) = Self.split(vector.token)
        #expect(key.isValidSignature(signature, for: input, algorithm: vector.algorithm))
    }

    /// Flipping any single bit — in the header part, the payload part or the signature —
    /// must make verification fail.
    @Test(arguments: vectors)
    func anyFlippedBitFails(_ vector: Vector) throws {
        let key = try JWK.parse(vector.jwk).get()
        let (input, signature) = Self.split(vector.token)
        let firstDot = input.firstIndex(of: UInt8(ascii: "."))!
        for position in [0, firstDot - 1, firstDot + 1, input.count - 1] {
            for bit in [0, 1, 5] {
                var tampered = input
                tampered[position] ^= 1 << bit
                #expect(!key.isValidSignature(signature, for: tampered, algorithm: vector.algorithm))
            }
        }
        for position in [0, signature.count / 2, signature.count - 1] {
            var tampered = signature
            tampered[position] ^= 0x01
            #expect(!key.isValidSignature(tampered, for: input, algorithm: vector.algorithm))
        }
        // The same key with a different algorithm of the wrong family never verifies.
        let other: JWSAlgorithm = vector.algorithm == .EdDSA ? .ES256 : .EdDSA
        #expect(!key.isValidSignature(signature, for: input, algorithm: other))
    }

    /// RFC 7515 A.2 / A.3 through the whole token path (structure, header, key selection,
    /// signature); claims are not checked since they are not Better Auth shaped.
    @Test(arguments: vectors.dropFirst())
    func compactTokenPathVerifies(_ vector: Vector) throws {
        let keys = JWKSet(keys: [try JWK.parse(vector.jwk).get()])
        let verifier = JWTVerifier(configuration: .init(issuer: "joe", audiences: ["unused"]))
        let verified = try verifier.verifySignature(token: vector.token, keys: keys).get()
        #expect(verified.jws.payload["iss"] == .string("joe"))
        #expect(verified.jws.payload["exp"] == .int(1_300_819_380))

        // Tampering with the payload ("joe" → "jof", still valid JSON) must fail.
        var parts = vector.token.split(separator: ".").map(String.init)
        let payload = String(decoding: Base64URL.decode(parts[1])!, as: UTF8.self).replacingOccurrences(of: "joe", with: "jof")
        parts[1] = Base64URL.encode(Array(payload.utf8))
        #expect(verifier.verifySignature(token: parts.joined(separator: "."), keys: keys).failureValue?.reason == .badSignature)

        // Full verification at the RFC's own time fails only on the missing audience.
        let result = verifier.verify(token: vector.token, keys: keys, now: 1_300_819_000)
        #expect(result.failureValue?.reason == .audience)
    }
}
