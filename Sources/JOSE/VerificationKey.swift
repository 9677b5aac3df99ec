/// A public key imported once from a JWK and reused for every verification.
///
/// Immutable after creation, so it is `Sendable` without any unchecked annotations: the
/// only reference-typed state is `OpenSSLKey`, whose own thread-safety argument lives in
/// OpenSSLKey.swift.
public final class VerificationKey: Sendable {
    /// The key family, as far as JWS algorithm compatibility is concerned (RFC 7518 §6,
    /// RFC 8037 §2).
    public enum KeyType: Sendable, Hashable {
        case ed25519
        case p256
        case p521
        case rsa(modulusBits: Int)
    }

    enum Backend: Sendable {
        case sodium(SodiumEd25519Key)
        case openSSL(OpenSSLKey)
    }

    /// `kid` from the JWK, if any (RFC 7517 §4.5).
    public let kid: String?
    /// The JWK's own `alg` (RFC 7517 §4.4). When present, tokens must use exactly it.
    public let declaredAlgorithm: JWSAlgorithm?
    public let type: KeyType
    /// Exact JWS signature length for this key: 64 (Ed25519, ES256), 132 (ES512), or the
    /// RSA modulus length in bytes (RFC 7518 §3.3, §3.4, §3.5; RFC 8037 §3.1).
    public let signatureLength: Int
    let backend: Backend

    init(kid: String?, declaredAlgorithm: JWSAlgorithm?, type: KeyType, signatureLength: Int, backend: Backend) {
        self.kid = kid
        self.declaredAlgorithm = declaredAlgorithm
        self.type = type
        self.signatureLength = signatureLength
        self.backend = backend
    }

    /// Whether a token signed with `algorithm` may be checked with this key: the JWK's `alg`
    /// must match exactly if it has one, and the algorithm must fit the key type either way
    /// (RFC 8725 §3.1: never let the token pick an algorithm its key was not made for).
    /// An RSA key without `alg` accepts RS256 and PS256 — decided per token, never pinned.
    public func accepts(_ algorithm: JWSAlgorithm) -> Bool {
        if let declaredAlgorithm, declaredAlgorithm != algorithm { return false }
        return Self.algorithm(algorithm, fits: type)
    }

    static func algorithm(_ algorithm: JWSAlgorithm, fits type: KeyType) -> Bool {
        switch (algorithm, type) {
        case (.EdDSA, .ed25519), (.ES256, .p256), (.ES512, .p521), (.RS256, .rsa), (.PS256, .rsa): return true
        default: return false
        }
    }

    /// The signature layer alone: checks `signature` over `signingInput` (the ASCII
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, RFC 7515 §5.2 step 8) with
    /// `algorithm`. Returns false for an algorithm this key does not accept or a signature of
    /// the wrong length, before any cryptography runs.
    public func isValidSignature(_ signature: [UInt8], for signingInput: ArraySlice<UInt8>, algorithm: JWSAlgorithm) -> Bool {
        guard accepts(algorithm), signature.count == signatureLength else { return false }
        switch backend {
        case .sodium(let key):
            return key.verify(signature: signature, message: signingInput)
        case .openSSL(let key):
            let scheme: OpenSSLKey.Scheme
            switch algorithm {
            case .EdDSA: scheme = .ed25519
            case .ES256: scheme = .ecdsa(coordinateBytes: 32, sha512: false)
            case .ES512: scheme = .ecdsa(coordinateBytes: 66, sha512: true)
            case .RS256: scheme = .rsaPKCS1SHA256
            case .PS256: scheme = .rsaPSSSHA256
            }
            return key.verify(scheme, signature: signature, message: signingInput)
        }
    }

    public func isValidSignature(_ signature: [UInt8], for signingInput: [UInt8], algorithm: JWSAlgorithm) -> Bool {
        isValidSignature(signature, for: signingInput[...], algorithm: algorithm)
    }
}
