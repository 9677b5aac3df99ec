import CSodium
import Foundation
import JOSE

/// The development issuer's Ed25519 key, kept as a private JWK in a local file (mode 0600).
///
/// For `make demo` and for people without Better Auth at hand; never for production (the key
/// sits unencrypted on disk). Signing uses libsodium's `crypto_sign_detached` (RFC 8032 Ed25519,
/// the JWS `EdDSA` algorithm of RFC 8037 §3.1).
public struct DevKey: Sendable {
    public let kid: String
    let seed: [UInt8]
    public let publicKey: [UInt8]
    private let secretKey: [UInt8]

    public enum Problem: Error, CustomStringConvertible {
        case unreadable(String)
        case malformed(String)
        public var description: String {
            switch self {
            case .unreadable(let why), .malformed(let why): return why
            }
        }
    }

    init(kid: String, seed: [UInt8]) {
        precondition(seed.count == 32)
        _ = sodium_init()
        var pk = [UInt8](repeating: 0, count: 32)
        var sk = [UInt8](repeating: 0, count: 64)
        _ = crypto_sign_seed_keypair(&pk, &sk, seed)
        self.kid = kid
        self.seed = seed
        self.publicKey = pk
        self.secretKey = sk
    }

    /// Loads the key file, creating it (with a new random key) if it does not exist.
    public static func loadOrCreate(path: String) throws(Problem) -> DevKey {
        if FileManager.default.fileExists(atPath: path) { return try load(path: path) }
        _ = sodium_init()
        var seed = [UInt8](repeating: 0, count: 32)
        randombytes_buf(&seed, 32)
        // Better Auth's kids are 32 characters of [A-Za-z0-9].
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        let kid = String((0..<32).map { _ in alphabet[Int(randombytes_uniform(UInt32(alphabet.count)))] })
        let key = DevKey(kid: kid, seed: seed)
        let json = #"{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"\#(kid)","x":"\#(Base64URL.encode(key.publicKey))","d":"\#(Base64URL.encode(seed))"}"#
        guard FileManager.default.createFile(atPath: path, contents: Data(json.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw .unreadable("cannot write the key file \(path)")
        }
        return key
    }

    static func load(path: String) throws(Problem) -> DevKey {
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable("cannot read \(path)") }
        guard case .success(let json) = JSONParser.parse(Array(data)), case .object(let members) = json,
            members["kty"]?.stringValue == "OKP", members["crv"]?.stringValue == "Ed25519",
            let kid = members["kid"]?.stringValue, let d = members["d"]?.stringValue,
            let seed = Base64URL.decode(d), seed.count == 32
        else { throw .malformed("\(path) is not an Ed25519 private JWK with kid and d") }
        return DevKey(kid: kid, seed: seed)
    }

    /// The public JWKS document, in Better Auth 1.4's exact shape.
    public var jwksDocument: String {
        #"{"keys":[{"alg":"EdDSA","crv":"Ed25519","x":"\#(Base64URL.encode(publicKey))","kty":"OKP","kid":"\#(kid)"}]}"#
    }

    /// Signs `input` (the JWS signing input) with Ed25519.
    func sign(_ input: [UInt8]) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: 64)
        _ = crypto_sign_detached(&signature, nil, input, UInt64(input.count), secretKey)
        return signature
    }
}
