import JOSE
import Testing

/// Project Wycheproof vectors (Tests/Fixtures/wycheproof). Every group's key goes through
/// our JWK import; every vector through `VerificationKey.isValidSignature`, which includes
/// the signature-length check the verifier performs before any cryptography.
@Suite struct WycheproofTests {
    static let files: [(String, JWSAlgorithm)] = [
        ("ed25519_test.json", .EdDSA),
        ("ecdsa_secp256r1_sha256_p1363_test.json", .ES256),
        ("ecdsa_secp521r1_sha512_p1363_test.json", .ES512),
        ("rsa_signature_2048_sha256_test.json", .RS256),
        ("rsa_pss_2048_sha256_mgf1_32_test.json", .PS256),
    ]

    /// The group's JWK; a few EC groups only carry `publicKey.wx/wy` (hex), from which we
    /// write the JWK ourselves (RFC 7518 §6.2.1: fixed-size coordinates).
    static func jwk(of group: JSONValue) -> JSONValue? {
        if let jwk = group["publicKeyJwk"] ?? group["keyJwk"] { return jwk }
        guard let key = group["publicKey"], let curve = key["curve"]?.stringValue,
              let wx = key["wx"]?.stringValue, let wy = key["wy"]?.stringValue else { return nil }
        let (crv, size) = curve == "secp256r1" ? ("P-256", 32) : ("P-521", 66)
        func coordinate(_ hex: String) -> String {
            var bytes = Array(hexBytes(hex).drop(while: { $0 == 0 }))
            if bytes.count < size { bytes = [UInt8](repeating: 0, count: size - bytes.count) + bytes }
            return Base64URL.encode(bytes)
        }
        return .object(["kty": .string("EC"), "crv": .string(crv), "x": .string(coordinate(wx)), "y": .string(coordinate(wy))])
    }

    @Test(arguments: files.map(\.0))
    func vectors(_ file: String) throws {
        let algorithm = Self.files.first { $0.0 == file }!.1
        let document = try Fixtures.project("wycheproof/\(file)")
        let groups = try #require(document["testGroups"]?.arrayValue)
        var ran = 0, rejectedGroups = 0, validLostToRejectedKeys = 0
        var tally: [String: Int] = [:]
        for group in groups {
            let jwk = try #require(Self.jwk(of: group))
            let tests = try #require(group["tests"]?.arrayValue)
            let key: VerificationKey?
            switch JWK.parse(jwk) {
            case .success(let imported): key = imported
            case .failure(let rejection):
                key = nil
                rejectedGroups += 1
                print("wycheproof \(file): group key rejected by our import: \(rejection)")
            }
            for test in tests {
                let id = test["tcId"]?.numberValue ?? -1
                let message = hexBytes(try #require(test["msg"]?.stringValue))
                let signature = hexBytes(try #require(test["sig"]?.stringValue))
                let expected = try #require(test["result"]?.stringValue)
                // A rejected key verifies nothing: all its vectors count as failures.
                let verified = key?.isValidSignature(signature, for: message, algorithm: algorithm) ?? false
                ran += 1
                tally[expected, default: 0] += 1
                switch expected {
                case "valid":
                    if key == nil { validLostToRejectedKeys += 1; continue }
                    #expect(verified, "tcId \(id) is valid but did not verify")
                case "invalid":
                    #expect(!verified, "tcId \(id) is invalid but verified")
                default:
                    break  // "acceptable": either outcome is fine
                }
            }
        }
        print("wycheproof \(file): \(ran) vectors (\(tally.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))), \(groups.count) groups, \(rejectedGroups) keys rejected by import, \(validLostToRejectedKeys) valid vectors lost to rejected keys")
        #expect(ran > 0, "no vectors ran for \(file)")
        // Every Wycheproof key here is a legitimate key of the right size.
        #expect(rejectedGroups == 0)
    }
}
