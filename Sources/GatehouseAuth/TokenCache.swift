public import JOSE
import Synchronization

/// Verified tokens, so a repeated token costs a SHA-256 and a lookup instead of a signature
/// check. Bounded (least recently used entry evicted), never valid past the token's `exp`,
/// and purged of tokens whose key left the JWKS.
///
/// Keyed by the token's SHA-256, never the token itself: the cache holds no credential.
public final class TokenCache: Sendable {
    public struct Digest: Hashable, Sendable {
        let a: UInt64, b: UInt64, c: UInt64, d: UInt64

        public init(_ bytes: [UInt8]) {
            precondition(bytes.count == 32)
            func word(_ i: Int) -> UInt64 {
                var v: UInt64 = 0
                for j in 0..<8 { v = v << 8 | UInt64(bytes[i * 8 + j]) }
                return v
            }
            (a, b, c, d) = (word(0), word(1), word(2), word(3))
        }
    }

    public struct Entry: Sendable {
        /// Seconds since the epoch.
        public var exp: Double
        public var kid: String?
        /// The key that verified the token; a hit counts only while the current JWKS still
        /// maps `kid` to this very key (a kid re-used with new material, or a purge racing
        /// with an insert, must not keep a token alive).
        public var key: VerificationKey?
        /// Identity headers to send upstream, computed once at verification.
        public var identityHeaders: [(name: String, value: String)]
        public var sub: String
        /// The verified payload, so route rules on claims work on cache hits too.
        public var claims: JWTClaims = [:]
    }

    private let lru: Mutex<LRUTable<Digest, Entry>>
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = capacity
        self.lru = Mutex(LRUTable(capacity: capacity))
    }

    public func lookup(_ key: Digest, now: Double) -> Entry? {
        guard capacity > 0 else { return nil }
        return lru.withLock { table in
            guard let entry = table.get(key) else { return nil }
            guard now < entry.exp else {
                table.remove(key)
                return nil
            }
            return entry
        }
    }

    public func insert(_ key: Digest, _ entry: Entry) {
        guard capacity > 0 else { return }
        lru.withLock { $0.set(key, entry) }
    }

    /// Drops every token whose key is no longer published (and, conservatively, every token
    /// verified without a kid, since the key set it was checked against changed).
    public func retainOnly(kids: Set<String>) {
        lru.withLock { table in table.removeAll { !($0.kid.map(kids.contains) ?? false) } }
    }

    public var count: Int { lru.withLock { $0.count } }
}
