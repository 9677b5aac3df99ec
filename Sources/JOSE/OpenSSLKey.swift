// The ONLY file in JOSE that calls OpenSSL libcrypto or libsodium. Unsafe pointers appear
// here and in two small, commented corners of the parser: the base64url group loop
// (Base64URL.decode) and the memchr dot search (CompactJWS.dotOffset).
//
// Memory invariants:
// - An `EVP_PKEY` is created once at JWK import, owned by exactly one `OpenSSLKey`, never
//   mutated afterwards and freed in `deinit`.
// - Every verification uses its own `EVP_MD_CTX` (created and freed inside
//   `jose_digest_verify`); contexts are never cached or shared.
// - Byte buffers are passed to C only for the duration of a `withUnsafeBytes` closure; C
//   never keeps a pointer past the call.
//
// Thread invariants:
// - OpenSSL 3 documents EVP_PKEY objects as safe for concurrent *use* (not modification)
//   by multiple threads; verification only reads the key. Same for fetched `EVP_MD`s.
// - libsodium's `crypto_sign_verify_detached` is a pure function after `sodium_init()`,
//   which we run exactly once through a lazily initialised global.

import CCrypto
import CSodium

/// Fetched once: explicit fetching avoids OpenSSL 3's per-call implicit algorithm lookup.
/// `@unchecked Sendable`: the pointers are immutable after init and `EVP_MD` is documented
/// as shareable across threads; they are intentionally never freed (process lifetime).
private final class Digests: @unchecked Sendable {
    let sha256: OpaquePointer
    let sha512: OpaquePointer

    init() {
        guard let sha256 = EVP_MD_fetch(nil, "SHA2-256", nil), let sha512 = EVP_MD_fetch(nil, "SHA2-512", nil) else {
            fatalError("libcrypto without SHA-2: broken OpenSSL installation")
        }
        self.sha256 = sha256
        self.sha512 = sha512
    }
}

private let digests = Digests()

/// `sodium_init()` must run once before any other libsodium call; it is idempotent and
/// thread-safe, and a global `let` gives us a once-only lazy call.
private let sodiumReady: Bool = sodium_init() >= 0

/// An OpenSSL public key built from raw JWK parameters.
/// `@unchecked Sendable`: it wraps an `EVP_PKEY*` that is immutable after `init` and only
/// read by verification (see the thread invariants above); the class owns and frees it.
final class OpenSSLKey: @unchecked Sendable {
    private let pkey: OpaquePointer

    private init(pkey: OpaquePointer) { self.pkey = pkey }

    deinit { EVP_PKEY_free(pkey) }

    /// EC key from fixed-size coordinates; nil unless the point is valid on `curve`
    /// (EVP_PKEY_public_check: on the curve, not the point at infinity, correct order).
    static func ec(curve: String, x: [UInt8], y: [UInt8]) -> OpenSSLKey? {
        let point: [UInt8] = [0x04] + x + y  // SEC1 uncompressed
        let pkey = point.withUnsafeBufferPointer { jose_ec_public_key(curve, $0.baseAddress, $0.count) }
        guard let pkey else { return nil }
        let key = OpenSSLKey(pkey: pkey)
        return jose_pkey_public_check(pkey) == 1 ? key : nil
    }

    /// RSA key from big-endian modulus and exponent (already size-checked by the caller).
    static func rsa(n: [UInt8], e: [UInt8]) -> OpenSSLKey? {
        let pkey = n.withUnsafeBufferPointer { nb in
            e.withUnsafeBufferPointer { eb in
                jose_rsa_public_key(nb.baseAddress, nb.count, eb.baseAddress, eb.count)
            }
        }
        return pkey.map(OpenSSLKey.init(pkey:))
    }

    /// Ed25519 key through OpenSSL (kept for the benchmark's comparison with libsodium).
    static func ed25519(x: [UInt8]) -> OpenSSLKey? {
        let pkey = x.withUnsafeBufferPointer { jose_ed25519_public_key($0.baseAddress, $0.count) }
        return pkey.map(OpenSSLKey.init(pkey:))
    }

    enum Scheme: Sendable {
        case ed25519
        case ecdsa(coordinateBytes: Int, sha512: Bool)
        case rsaPKCS1SHA256
        case rsaPSSSHA256
    }

    /// Verifies `signature` over `message`. For ECDSA, `signature` is the JWS r‖s form
    /// (RFC 7518 §3.4) and is converted to DER here; its length was checked by the caller.
    func verify(_ scheme: Scheme, signature: [UInt8], message: ArraySlice<UInt8>) -> Bool {
        message.withUnsafeBytes { msg in
            switch scheme {
            case .ed25519:
                return signature.withUnsafeBytes { sig in
                    jose_digest_verify(pkey, nil, -1, sig.baseAddress, sig.count, msg.baseAddress, msg.count) == 1
                }
            case .rsaPKCS1SHA256, .rsaPSSSHA256:
                let saltLength: Int32 = if case .rsaPSSSHA256 = scheme { 32 } else { -1 }
                return signature.withUnsafeBytes { sig in
                    jose_digest_verify(pkey, digests.sha256, saltLength, sig.baseAddress, sig.count, msg.baseAddress, msg.count) == 1
                }
            case .ecdsa(let half, let sha512):
                guard signature.count == 2 * half else { return false }
                // DER of two ≤66-byte INTEGERs is at most 3 + 2 × (3 + 67) = 143 bytes. The
                // buffer lives on the stack for this call only (no heap allocation per token);
                // C writes at most `der.count` bytes into it and keeps no pointer.
                let md = sha512 ? digests.sha512 : digests.sha256
                return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 160) { der in
                    let derLength = signature.withUnsafeBufferPointer { rs in
                        jose_ecdsa_raw_to_der(rs.baseAddress, half, der.baseAddress, der.count)
                    }
                    guard derLength > 0 else { return false }
                    return jose_digest_verify(pkey, md, -1, der.baseAddress, Int(derLength), msg.baseAddress, msg.count) == 1
                }
            }
        }
    }
}

/// Ed25519 via libsodium's `crypto_sign_verify_detached` (faster here than OpenSSL's EVP
/// path; see jose-bench). libsodium rejects non-canonical S and small-order keys/R, which is
/// what RFC 8032 §5.1.7 and Wycheproof expect.
struct SodiumEd25519Key: Sendable {
    let publicKey: [UInt8]  // exactly 32 bytes, checked at import

    init?(x: [UInt8]) {
        guard sodiumReady, x.count == Int(crypto_sign_PUBLICKEYBYTES) else { return nil }
        publicKey = x
    }

    func verify(signature: [UInt8], message: ArraySlice<UInt8>) -> Bool {
        guard signature.count == Int(crypto_sign_BYTES) else { return false }
        // libsodium wants non-null pointers even for an empty message.
        let empty: [UInt8] = [0]
        return signature.withUnsafeBufferPointer { sig in
            message.withUnsafeBufferPointer { msg in
                publicKey.withUnsafeBufferPointer { pk in
                    empty.withUnsafeBufferPointer { placeholder in
                        crypto_sign_verify_detached(sig.baseAddress!, msg.baseAddress ?? placeholder.baseAddress!,
                                                    UInt64(msg.count), pk.baseAddress!) == 0
                    }
                }
            }
        }
    }
}

/// SHA-256 via libcrypto, e.g. for the proxy's verified-token cache key.
public enum SHA256 {
    public static func hash(_ bytes: some Collection<UInt8>) -> [UInt8] {
        // A token is a slice of a header's String: hash it in place, without a copy.
        if let digest = bytes.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) { return digest }
        return Array(bytes).withUnsafeBytes { hash($0) }
    }

    private static func hash(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = out.withUnsafeMutableBufferPointer { jose_sha256(data.baseAddress, data.count, $0.baseAddress, digests.sha256) }
        precondition(ok == 1, "EVP_Digest(SHA-256) failed")
        return out
    }

    public static func hash(_ text: String) -> [UInt8] { hash(Array(text.utf8)) }
}

/// HMAC-SHA256 (RFC 2104) via libcrypto: gatehouse's identity signature
/// (`X-Gatehouse-Signature`) and the signature of a Better Auth session cookie (`gatehouse
/// dev-issuer` signs and checks its own). Not used for JWTs: symmetric JWS algorithms are
/// refused outright (`JWSAlgorithm`).
///
/// Thread rule: a `HMACSHA256` holds one libcrypto context; use it from one thread at a time
/// (gatehouse makes one per worker). The context is freed with the object.
public final class HMACSHA256 {
    private let context: OpaquePointer

    /// nil when libcrypto cannot make an HMAC context (no default provider), or for an empty
    /// key (libcrypto reads a NULL key as "keep the previous one", which a new context lacks).
    public init?(key: some Collection<UInt8>) {
        let key = Array(key)
        guard !key.isEmpty else { return nil }
        guard let context = key.withUnsafeBufferPointer({ jose_hmac_sha256_new($0.baseAddress, $0.count) }) else { return nil }
        self.context = context
    }

    deinit { EVP_MAC_CTX_free(context) }

    /// The 32-byte MAC of `data`.
    public func mac(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { out, count in
            let ok = jose_hmac_sha256_mac(context, data.baseAddress, data.count, out.baseAddress)
            precondition(ok == 1, "HMAC-SHA256 failed")
            count = 32
        }
    }

    public func mac(_ data: some Collection<UInt8>) -> [UInt8] {
        if let result = data.withContiguousStorageIfAvailable({ mac(UnsafeRawBufferPointer($0)) }) { return result }
        return Array(data).withUnsafeBytes { mac($0) }
    }

    /// One MAC with a key used once.
    public static func mac(key: some Collection<UInt8>, data: some Collection<UInt8>) -> [UInt8] {
        guard let hmac = HMACSHA256(key: key) else { preconditionFailure("HMAC-SHA256 unavailable") }
        return hmac.mac(data)
    }

    /// Compares two MACs in time independent of where they differ.
    public static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
