/// Why one JWK was not imported. Key sets are configuration, not attacker input, so the
/// detail may name parameters; it never includes key material.
public struct KeyRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: String, Sendable {
        case notAnObject = "not_an_object"
        case privateKeyMaterial = "private_key_material"
        case unsupportedKeyType = "unsupported_kty"
        case unsupportedCurve = "unsupported_crv"
        case unsupportedAlgorithm = "unsupported_alg"
        case algorithmMismatch = "alg_mismatch"
        case notForSignatures = "not_for_signatures"
        case invalidParameter = "invalid_parameter"
        case weakKey = "weak_key"
        case invalidPoint = "invalid_point"
        case duplicateKid = "duplicate_kid"
    }

    public let reason: Reason
    public let detail: String
    /// The key's `kid`, when it had a string one.
    public var kid: String?
    /// Position in the JWKS `keys` array, when imported from a set.
    public var index: Int?

    public init(_ reason: Reason, _ detail: String, kid: String? = nil, index: Int? = nil) {
        self.reason = reason
        self.detail = detail
        self.kid = kid
        self.index = index
    }

    public var description: String {
        var text = "\(reason.rawValue): \(detail)"
        if let index { text += " (keys[\(index)]" + (kid.map { ", kid \($0)" } ?? "") + ")" }
        else if let kid { text += " (kid \(kid))" }
        return text
    }
}

/// JWK import (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2) for the key types Better Auth emits.
public enum JWK {
    /// RSA moduli outside [2048, 8192] bits are refused: below is too weak (RFC 7518 §3.3,
    /// §3.5 require ≥ 2048), above only costs verification time (a DoS lever).
    public static let minimumRSABits = 2048
    public static let maximumRSABits = 8192

    /// Members that only private (or symmetric) keys have (RFC 7518 §6.2.2, §6.3.2, §6.4.1;
    /// RFC 8037 §2). Their presence in a public set means someone published a secret: we
    /// refuse the key rather than silently use its public half.
    static let privateMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]

    public static func parse(_ json: JSONValue) -> Result<VerificationKey, KeyRejection> {
        guard let members = json.objectValue else {
            return .failure(KeyRejection(.notAnObject, "JWK is not a JSON object"))
        }
        var kid: String?
        if let value = members["kid"] {
            guard let string = value.stringValue else {
                return .failure(KeyRejection(.invalidParameter, "kid is not a string"))
            }
            kid = string
        }
        return importKey(members).mapError { rejection in
            var rejection = rejection
            rejection.kid = kid
            return rejection
        }.map { parts in
            VerificationKey(kid: kid, declaredAlgorithm: parts.alg, type: parts.type,
                            signatureLength: parts.signatureLength, backend: parts.backend)
        }
    }

    public static func parse(_ text: String) -> Result<VerificationKey, KeyRejection> {
        switch JSONParser.parse(text) {
        case .success(let json): return parse(json)
        case .failure(let error): return .failure(KeyRejection(.notAnObject, "invalid JSON (\(error.kind.rawValue))"))
        }
    }

    private struct Parts {
        var alg: JWSAlgorithm?
        var type: VerificationKey.KeyType
        var signatureLength: Int
        var backend: VerificationKey.Backend
    }

    private static func importKey(_ members: [String: JSONValue]) -> Result<Parts, KeyRejection> {
        for name in privateMembers where members[name] != nil {
            return .failure(KeyRejection(.privateKeyMaterial, "private key member \"\(name)\" present"))
        }
        // RFC 7517 §4.2: a key meant for encryption must not verify signatures.
        if let use = members["use"], use.stringValue != "sig" {
            return .failure(KeyRejection(.notForSignatures, "use is not \"sig\""))
        }
        // RFC 7517 §4.3: if key_ops is given it must allow "verify".
        if let ops = members["key_ops"] {
            guard let list = ops.arrayValue, list.allSatisfy({ $0.stringValue != nil }),
                  list.contains(.string("verify")) else {
                return .failure(KeyRejection(.notForSignatures, "key_ops does not include \"verify\""))
            }
        }
        var alg: JWSAlgorithm?
        if let value = members["alg"] {
            guard let name = value.stringValue, let known = JWSAlgorithm(rawValue: name) else {
                return .failure(KeyRejection(.unsupportedAlgorithm, "alg is not one of EdDSA, ES256, ES512, RS256, PS256"))
            }
            alg = known
        }
        guard let kty = members["kty"]?.stringValue else {
            return .failure(KeyRejection(.unsupportedKeyType, "kty missing or not a string"))
        }
        let result: Result<Parts, KeyRejection>
        switch kty {
        case "OKP": result = importOKP(members)
        case "EC": result = importEC(members)
        case "RSA": result = importRSA(members)
        default: return .failure(KeyRejection(.unsupportedKeyType, "unsupported kty \"\(printable(kty))\""))
        }
        return result.flatMap { parts in
            var parts = parts
            if let alg {
                guard VerificationKey.algorithm(alg, fits: parts.type) else {
                    return .failure(KeyRejection(.algorithmMismatch, "alg \(alg.rawValue) does not fit kty/crv"))
                }
                parts.alg = alg
            }
            return .success(parts)
        }
    }

    /// Decodes a required base64url member.
    private static func bytes(_ members: [String: JSONValue], _ name: String) -> Result<[UInt8], KeyRejection> {
        guard let text = members[name]?.stringValue else {
            return .failure(KeyRejection(.invalidParameter, "\(name) missing or not a string"))
        }
        guard let decoded = Base64URL.decode(text) else {
            return .failure(KeyRejection(.invalidParameter, "\(name) is not strict base64url"))
        }
        return .success(decoded)
    }

    /// RFC 8037 §2: OKP with crv Ed25519 and a 32-byte x.
    private static func importOKP(_ members: [String: JSONValue]) -> Result<Parts, KeyRejection> {
        guard let crv = members["crv"]?.stringValue else {
            return .failure(KeyRejection(.unsupportedCurve, "crv missing"))
        }
        guard crv == "Ed25519" else {
            return .failure(KeyRejection(.unsupportedCurve, "unsupported OKP crv \"\(printable(crv))\""))
        }
        return bytes(members, "x").flatMap { x in
            guard x.count == 32 else { return .failure(KeyRejection(.invalidParameter, "Ed25519 x must be 32 bytes")) }
            guard let key = SodiumEd25519Key(x: x) else {
                return .failure(KeyRejection(.invalidPoint, "libsodium unavailable"))
            }
            return .success(Parts(type: .ed25519, signatureLength: 64, backend: .sodium(key)))
        }
    }

    /// RFC 7518 §6.2.1: x and y are the full coordinate length (32 for P-256, 66 for P-521);
    /// the point must lie on the curve (invalid-curve attacks).
    private static func importEC(_ members: [String: JSONValue]) -> Result<Parts, KeyRejection> {
        guard let crv = members["crv"]?.stringValue else {
            return .failure(KeyRejection(.unsupportedCurve, "crv missing"))
        }
        let size: Int, type: VerificationKey.KeyType
        switch crv {
        case "P-256": (size, type) = (32, .p256)
        case "P-521": (size, type) = (66, .p521)
        default: return .failure(KeyRejection(.unsupportedCurve, "unsupported EC crv \"\(printable(crv))\""))
        }
        return bytes(members, "x").flatMap { x in
            bytes(members, "y").flatMap { y in
                guard x.count == size, y.count == size else {
                    return .failure(KeyRejection(.invalidParameter, "\(crv) coordinates must be \(size) bytes"))
                }
                guard let key = OpenSSLKey.ec(curve: crv, x: x, y: y) else {
                    return .failure(KeyRejection(.invalidPoint, "point is not on \(crv)"))
                }
                return .success(Parts(type: type, signatureLength: 2 * size, backend: .openSSL(key)))
            }
        }
    }

    /// RFC 7518 §6.3.1: n and e as unsigned big-endian integers. We tolerate leading zero
    /// octets in n (some libraries emit them, as §6.3.1.1 notes) but size the key without
    /// them. e must be odd, > 1 and < 2^32.
    private static func importRSA(_ members: [String: JSONValue]) -> Result<Parts, KeyRejection> {
        bytes(members, "n").flatMap { rawN in
            bytes(members, "e").flatMap { rawE in
                let n = Array(rawN.drop(while: { $0 == 0 }))
                let e = Array(rawE.drop(while: { $0 == 0 }))
                guard let first = n.first, n.last! & 1 == 1 else {
                    return .failure(KeyRejection(.invalidParameter, "n is not an odd positive integer"))
                }
                let bits = n.count * 8 - first.leadingZeroBitCount
                guard bits >= minimumRSABits else {
                    return .failure(KeyRejection(.weakKey, "RSA modulus has \(bits) bits, minimum is \(minimumRSABits)"))
                }
                guard bits <= maximumRSABits else {
                    return .failure(KeyRejection(.weakKey, "RSA modulus has \(bits) bits, maximum is \(maximumRSABits)"))
                }
                guard !e.isEmpty, e.count <= 4, e.last! & 1 == 1, e != [1] else {
                    return .failure(KeyRejection(.weakKey, "RSA exponent must be odd, > 1 and < 2^32"))
                }
                guard let key = OpenSSLKey.rsa(n: n, e: e) else {
                    return .failure(KeyRejection(.invalidParameter, "libcrypto refused the RSA key"))
                }
                return .success(Parts(type: .rsa(modulusBits: bits), signatureLength: n.count, backend: .openSSL(key)))
            }
        }
    }

    /// Keeps configuration-provided names log-safe: printable ASCII, at most 32 characters.
    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.prefix(32).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
    }
}
