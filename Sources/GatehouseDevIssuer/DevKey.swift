import CCrypto
import CSodium
import FoundationEssentials
import JOSE

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One signing key of the development issuer, for one of Better Auth's algorithms.
///
/// For `make demo` and for people without Better Auth at hand; never for production (the
/// keys sit unencrypted on disk). EdDSA signs with libsodium's `crypto_sign_detached`
/// (RFC 8032 Ed25519, RFC 8037 §3.1); ES256, ES512, RS256 and PS256 with OpenSSL 3 through
/// `CCrypto` (RFC 7518 §3.3-3.5: ECDSA as raw r‖s, PSS with a salt as long as the hash).
public struct DevKey: Sendable {
    /// Better Auth's kid: 32 characters of [A-Za-z0-9].
    public let kid: String
    public let algorithm: String
    /// The public JWK, members in the order Better Auth 1.4 serves them.
    let publicJWK: String
    /// The private JWK (public members plus `d`, and for RSA the CRT members).
    let privateJWK: String
    private let signer: Signer

    /// The algorithms Better Auth's `jwt` plugin offers, with EdDSA (its default) first.
    public static let algorithms = ["EdDSA", "ES256", "ES512", "RS256", "PS256"]

    enum Signer: Sendable {
        case ed25519(secretKey: [UInt8])
        case openssl(SigningKey)
    }

    /// Signs `input` (the JWS signing input); the JWS signature bytes.
    func sign(_ input: [UInt8]) -> [UInt8] {
        switch signer {
        case .ed25519(let secretKey):
            var signature = [UInt8](repeating: 0, count: 64)
            _ = crypto_sign_detached(&signature, nil, input, UInt64(input.count), secretKey)
            return signature
        case .openssl(let key):
            return key.sign(input)
        }
    }

    // MARK: Creating

    /// A new key for `algorithm` (one of `algorithms`) with a new random kid.
    static func generate(algorithm: String) -> DevKey? {
        let kid = randomKid()
        switch algorithm {
        case "EdDSA":
            var seed = [UInt8](repeating: 0, count: 32)
            randombytes_buf(&seed, 32)
            return ed25519(kid: kid, seed: seed)
        case "ES256", "ES512":
            let curve = algorithm == "ES256" ? Curve.p256 : Curve.p521
            guard let pkey = jose_generate_ec(curve.group) else { return nil }
            return ec(kid: kid, algorithm: algorithm, curve: curve, pkey: pkey)
        case "RS256", "PS256":
            guard let pkey = jose_generate_rsa(2048) else { return nil }
            return rsa(kid: kid, algorithm: algorithm, pkey: pkey)
        default:
            return nil
        }
    }

    private static func randomKid() -> String {
        _ = sodium_init()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<32).map { _ in alphabet[Int(randombytes_uniform(UInt32(alphabet.count)))] })
    }

    // MARK: Loading

    /// A key from its private JWK members (as written by `generate`); nil if they do not
    /// describe a key pair of a supported algorithm.
    static func from(jwk members: [String: JSONValue]) -> DevKey? {
        guard let kid = members["kid"]?.stringValue, !kid.isEmpty,
            let kty = members["kty"]?.stringValue
        else { return nil }
        func bytes(_ name: String) -> [UInt8]? { members[name]?.stringValue.flatMap(Base64URL.decode) }
        switch (kty, members["crv"]?.stringValue) {
        case ("OKP", "Ed25519"):
            guard members["alg"]?.stringValue ?? "EdDSA" == "EdDSA", let seed = bytes("d"), seed.count == 32,
                let key = ed25519(kid: kid, seed: seed), members["x"] == nil || bytes("x") == key.x
            else { return nil }
            return key
        case ("EC", let crv?):
            guard let curve = Curve(crv: crv), members["alg"]?.stringValue == curve.algorithm,
                let x = bytes("x"), let y = bytes("y"), let d = bytes("d"),
                x.count == curve.coordinateBytes, y.count == curve.coordinateBytes, d.count == curve.coordinateBytes
            else { return nil }
            let point = [0x04] + x + y
            guard let pkey = jose_ec_private_key(curve.group, point, point.count, d, d.count) else { return nil }
            guard jose_pkey_pair_check(pkey) == 1 else {
                EVP_PKEY_free(pkey)
                return nil
            }
            return ec(kid: kid, algorithm: curve.algorithm, curve: curve, pkey: pkey)
        case ("RSA", _):
            guard let algorithm = members["alg"]?.stringValue, ["RS256", "PS256"].contains(algorithm) else { return nil }
            let parts = RSAMember.allCases.map { bytes($0.rawValue) }
            guard parts.allSatisfy({ $0?.isEmpty == false }) else { return nil }
            let numbers = parts.map { $0! }
            // gatehouse refuses RSA keys under 2048 bits (RFC 8725 §3.5 via RFC 7518 §3.3).
            guard numbers[0].drop(while: { $0 == 0 }).count >= 256 else { return nil }
            let pkey = withPointers(numbers) { pointers, lengths in jose_rsa_private_key(pointers, lengths) }
            guard let pkey else { return nil }
            guard jose_pkey_pair_check(pkey) == 1 else {
                EVP_PKEY_free(pkey)
                return nil
            }
            return rsa(kid: kid, algorithm: algorithm, pkey: pkey)
        default:
            return nil
        }
    }

    // MARK: Building

    private var x: [UInt8]? {
        guard case .ed25519(let secretKey) = signer else { return nil }
        return Array(secretKey[32...])  // libsodium's secret key is seed ‖ public key
    }

    private static func ed25519(kid: String, seed: [UInt8]) -> DevKey? {
        guard seed.count == 32 else { return nil }
        _ = sodium_init()
        var pk = [UInt8](repeating: 0, count: 32)
        var sk = [UInt8](repeating: 0, count: 64)
        _ = crypto_sign_seed_keypair(&pk, &sk, seed)
        let x = Base64URL.encode(pk)
        let k = JSONText.quoted(kid)
        return DevKey(
            kid: kid, algorithm: "EdDSA",
            publicJWK: #"{"alg":"EdDSA","crv":"Ed25519","x":"\#(x)","kty":"OKP","kid":\#(k)}"#,
            privateJWK: #"{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":\#(k),"x":"\#(x)","d":"\#(Base64URL.encode(seed))"}"#,
            signer: .ed25519(secretKey: sk))
    }

    /// Takes ownership of `pkey` (freed with the `SigningKey`, or here on failure).
    private static func ec(kid: String, algorithm: String, curve: Curve, pkey: OpaquePointer) -> DevKey? {
        let key = SigningKey(pkey: pkey, scheme: .ecdsa(coordinateBytes: curve.coordinateBytes, sha512: curve == .p521))
        var point = [UInt8](repeating: 0, count: 1 + 2 * curve.coordinateBytes)
        guard jose_pkey_ec_point(pkey, &point, point.count) == point.count,
            let d = key.number(index: -1, pad: curve.coordinateBytes)
        else { return nil }
        let x = Base64URL.encode(Array(point[1...curve.coordinateBytes]))
        let y = Base64URL.encode(Array(point[(1 + curve.coordinateBytes)...]))
        let k = JSONText.quoted(kid)
        return DevKey(
            kid: kid, algorithm: algorithm,
            publicJWK: #"{"alg":"\#(algorithm)","crv":"\#(curve.crv)","kty":"EC","x":"\#(x)","y":"\#(y)","kid":\#(k)}"#,
            privateJWK: #"{"kty":"EC","crv":"\#(curve.crv)","alg":"\#(algorithm)","kid":\#(k),"x":"\#(x)","y":"\#(y)","d":"\#(Base64URL.encode(d))"}"#,
            signer: .openssl(key))
    }

    /// Takes ownership of `pkey` (freed with the `SigningKey`).
    private static func rsa(kid: String, algorithm: String, pkey: OpaquePointer) -> DevKey? {
        let key = SigningKey(pkey: pkey, scheme: algorithm == "PS256" ? .pss : .pkcs1)
        var members: [String] = []
        for member in RSAMember.allCases {
            guard let number = key.number(index: member.index, pad: 0) else { return nil }
            members.append(#""\#(member.rawValue)":"\#(Base64URL.encode(number))""#)
        }
        let n = members[0], e = members[1]
        let k = JSONText.quoted(kid)
        return DevKey(
            kid: kid, algorithm: algorithm,
            publicJWK: #"{"alg":"\#(algorithm)","kty":"RSA",\#(n),\#(e),"kid":\#(k)}"#,
            privateJWK: #"{"kty":"RSA","alg":"\#(algorithm)","kid":\#(k),\#(members.joined(separator: ","))}"#,
            signer: .openssl(key))
    }

    enum Curve: Equatable {
        case p256, p521
        init?(crv: String) {
            switch crv {
            case "P-256": self = .p256
            case "P-521": self = .p521
            default: return nil
            }
        }
        var crv: String { self == .p256 ? "P-256" : "P-521" }
        var group: String { crv }
        var algorithm: String { self == .p256 ? "ES256" : "ES512" }
        var coordinateBytes: Int { self == .p256 ? 32 : 66 }
    }

    /// RFC 7518 §6.3: the RSA private JWK members, in `JOSE_RSA_MEMBER_PARAMS` order.
    enum RSAMember: String, CaseIterable {
        case n, e, d, p, q, dp, dq, qi
        var index: Int32 { Int32(Self.allCases.firstIndex(of: self)!) }
    }

    /// Calls `body` with C arrays of pointers to and lengths of `numbers`, valid only during the call.
    private static func withPointers<R>(
        _ numbers: [[UInt8]],
        _ body: (UnsafePointer<UnsafePointer<UInt8>?>, UnsafePointer<Int>) -> R
    ) -> R {
        let buffers = numbers.map { bytes -> UnsafeMutableBufferPointer<UInt8> in
            let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: bytes.count)
            _ = buffer.initialize(from: bytes)
            return buffer
        }
        defer {
            for buffer in buffers {
                buffer.update(repeating: 0)  // private key material: wipe before freeing
                buffer.deallocate()
            }
        }
        let pointers: [UnsafePointer<UInt8>?] = buffers.map { UnsafePointer($0.baseAddress) }
        let lengths = numbers.map(\.count)
        return pointers.withUnsafeBufferPointer { p in lengths.withUnsafeBufferPointer { l in body(p.baseAddress!, l.baseAddress!) } }
    }
}

/// An OpenSSL private key of the development issuer.
///
/// `@unchecked Sendable`: it owns an `EVP_PKEY*` that is never modified after creation; each
/// signature uses its own `EVP_MD_CTX` (inside `jose_digest_sign`), and OpenSSL 3 documents
/// EVP_PKEY objects as safe for concurrent use. The pointer is freed in `deinit`, once.
final class SigningKey: @unchecked Sendable {
    enum Scheme {
        case ecdsa(coordinateBytes: Int, sha512: Bool)
        case pkcs1
        case pss
    }

    private let pkey: OpaquePointer
    private let scheme: Scheme

    init(pkey: OpaquePointer, scheme: Scheme) {
        self.pkey = pkey
        self.scheme = scheme
    }

    deinit { EVP_PKEY_free(pkey) }

    /// A big-endian number of the key (see `jose_pkey_number`).
    func number(index: Int32, pad: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 1024)
        let length = jose_pkey_number(pkey, index, &out, out.count, Int32(pad))
        return length > 0 ? Array(out[..<Int(length)]) : nil
    }

    func sign(_ input: [UInt8]) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: 1024)
        var length = signature.count
        switch scheme {
        case .ecdsa(let half, let sha512):
            guard jose_digest_sign(pkey, sha512 ? DevDigests.sha512 : DevDigests.sha256, -1, input, input.count, &signature, &length) == 1
            else { fatalError("ECDSA signing failed") }
            var raw = [UInt8](repeating: 0, count: 2 * half)
            guard jose_ecdsa_der_to_raw(signature, length, half, &raw) == 1 else { fatalError("ECDSA signature conversion failed") }
            return raw
        case .pkcs1, .pss:
            let salt: Int32 = if case .pss = scheme { 32 } else { -1 }  // RFC 7518 §3.5: salt = hash length
            guard jose_digest_sign(pkey, DevDigests.sha256, salt, input, input.count, &signature, &length) == 1
            else { fatalError("RSA signing failed") }
            return Array(signature[..<length])
        }
    }
}

/// SHA-256 and SHA-512, fetched once (process lifetime, never freed).
private enum DevDigests {
    nonisolated(unsafe) static let sha256: OpaquePointer = EVP_MD_fetch(nil, "SHA2-256", nil)!
    nonisolated(unsafe) static let sha512: OpaquePointer = EVP_MD_fetch(nil, "SHA2-512", nil)!
}

/// The development issuer's keys, kept as private JWKs in one local file (mode 0600): a JWK
/// Set `{"keys":[…]}`, or a single private JWK (the Ed25519-only format of earlier versions).
/// Created with one Ed25519 key; `gatehouse mint --alg` adds a key for another algorithm, which
/// the issuer then serves (it checks the file for changes on every JWKS request, so the new kid
/// appears without a restart, as a rotated Better Auth key does).
///
/// Creating and adding happen under an exclusive `flock` on `<file>.lock`, re-reading the file
/// under the lock, so two `mint` runs at once never lose each other's key.
public struct DevKeySet: Sendable {
    public let path: String
    public private(set) var keys: [DevKey]

    public enum Problem: Error, CustomStringConvertible {
        case unreadable(String)
        case malformed(String)
        public var description: String {
            switch self {
            case .unreadable(let why), .malformed(let why): return why
            }
        }
    }

    /// Loads the key file, creating it with a new Ed25519 key if it does not exist.
    public static func loadOrCreate(path: String) throws(Problem) -> DevKeySet {
        try locked(path) { () throws(Problem) in try loadOrCreateUnlocked(path: path) }
    }

    /// The newest key for `algorithm` in the file (created if missing), adding a new one to
    /// the file when it has none; `added` tells which.
    public static func key(for algorithm: String, path: String) throws(Problem) -> (key: DevKey, added: Bool) {
        try locked(path) { () throws(Problem) in
            var set = try loadOrCreateUnlocked(path: path)
            if let key = set.key(for: algorithm) { return (key, false) }
            guard let key = DevKey.generate(algorithm: algorithm) else { throw .unreadable("cannot create a \(algorithm) key") }
            set.keys.append(key)
            try set.write()
            return (key, true)
        }
    }

    public static func load(path: String) throws(Problem) -> DevKeySet {
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable("cannot read \(path)") }
        guard case .success(.object(let document)) = JSONParser.parse(Array(data)) else {
            throw .malformed("\(path) is not JSON: expected a private JWK or a JWK Set")
        }
        let entries = document["keys"]?.arrayValue ?? [.object(document)]
        var keys: [DevKey] = []
        for (position, entry) in entries.enumerated() {
            guard case .object(let members) = entry, let key = DevKey.from(jwk: members) else {
                throw .malformed("\(path): key \(position + 1) is not a private JWK of \(DevKey.algorithms.joined(separator: ", ")) with kid")
            }
            guard !keys.contains(where: { $0.kid == key.kid }) else {
                throw .malformed("\(path): key \(position + 1) repeats the kid of an earlier key")
            }
            keys.append(key)
        }
        guard !keys.isEmpty else { throw .malformed("\(path) holds no key") }
        return DevKeySet(path: path, keys: keys)
    }

    /// The newest key for `algorithm`.
    public func key(for algorithm: String) -> DevKey? {
        keys.last { $0.algorithm == algorithm }
    }

    /// The public JWKS document, in Better Auth 1.4's exact shape (no `use`, no `d`).
    public var jwksDocument: String {
        #"{"keys":[\#(keys.map(\.publicJWK).joined(separator: ","))]}"#
    }

    private static func loadOrCreateUnlocked(path: String) throws(Problem) -> DevKeySet {
        if FileManager.default.fileExists(atPath: path) { return try load(path: path) }
        guard let key = DevKey.generate(algorithm: "EdDSA") else { throw .unreadable("cannot create an Ed25519 key") }
        let set = DevKeySet(path: path, keys: [key])
        try set.write()
        return set
    }

    /// Runs `body` holding an exclusive `flock` on `<path>.lock` (kept, never deleted: removing
    /// a lock file lets a waiter lock an unlinked inode).
    static func locked<R>(_ path: String, _ body: () throws(Problem) -> R) throws(Problem) -> R {
        let descriptor = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .unreadable("cannot open the lock file \(path).lock") }
        defer { close(descriptor) }  // also releases the lock
        guard flock(descriptor, LOCK_EX) == 0 else { throw .unreadable("cannot lock \(path).lock") }
        return try body()
    }

    private func write() throws(Problem) {
        try Self.replaceFile(path, with: #"{"keys":[\#(keys.map(\.privateJWK).joined(separator: ",\n"))]}"# + "\n")
    }

    /// Replaces a file whole: the text goes to a new temporary file created with mode 0600 from
    /// the start (never readable by others, not even briefly), which is synced and renamed over it.
    static func replaceFile(_ path: String, with text: String) throws(Problem) {
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .unreadable("cannot create \(temporary)") }
        var written = 0
        let bytes = Array(text.utf8)
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + written, bytes.count - written) }
            if n <= 0 { break }
            written += n
        }
        let complete = written == bytes.count && fchmod(descriptor, 0o600) == 0 && fsync(descriptor) == 0
        close(descriptor)
        guard complete, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw .unreadable("cannot write \(path)")
        }
    }
}
