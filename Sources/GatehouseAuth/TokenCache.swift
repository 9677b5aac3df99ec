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

    private struct LRU {
        struct Node {
            var key: Digest
            var entry: Entry
            var prev: Int
            var next: Int
        }
        var index: [Digest: Int] = [:]
        var nodes: [Node] = []
        var head = -1  // most recent
        var tail = -1  // least recent
        var free: [Int] = []

        mutating func unlink(_ i: Int) {
            let (p, n) = (nodes[i].prev, nodes[i].next)
            if p >= 0 { nodes[p].next = n } else { head = n }
            if n >= 0 { nodes[n].prev = p } else { tail = p }
        }

        mutating func pushFront(_ i: Int) {
            nodes[i].prev = -1
            nodes[i].next = head
            if head >= 0 { nodes[head].prev = i }
            head = i
            if tail < 0 { tail = i }
        }

        mutating func remove(_ i: Int) {
            unlink(i)
            index[nodes[i].key] = nil
            free.append(i)
        }
    }

    private let lru: Mutex<LRU>
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = capacity
        self.lru = Mutex(LRU())
    }

    public func lookup(_ key: Digest, now: Double) -> Entry? {
        guard capacity > 0 else { return nil }
        return lru.withLock { l in
            guard let i = l.index[key] else { return nil }
            guard now < l.nodes[i].entry.exp else {
                l.remove(i)
                return nil
            }
            l.unlink(i)
            l.pushFront(i)
            return l.nodes[i].entry
        }
    }

    public func insert(_ key: Digest, _ entry: Entry) {
        guard capacity > 0 else { return }
        lru.withLock { l in
            if let i = l.index[key] {
                l.nodes[i].entry = entry
                l.unlink(i)
                l.pushFront(i)
                return
            }
            if l.index.count >= capacity, l.tail >= 0 { l.remove(l.tail) }
            let node = LRU.Node(key: key, entry: entry, prev: -1, next: -1)
            let i: Int
            if let reused = l.free.popLast() {
                l.nodes[reused] = node
                i = reused
            } else {
                l.nodes.append(node)
                i = l.nodes.count - 1
            }
            l.index[key] = i
            l.pushFront(i)
        }
    }

    /// Drops every token whose key is no longer published (and, conservatively, every token
    /// verified without a kid, since the key set it was checked against changed).
    public func retainOnly(kids: Set<String>) {
        lru.withLock { l in
            for i in Array(l.index.values) where !(l.nodes[i].entry.kid.map(kids.contains) ?? false) {
                l.remove(i)
            }
        }
    }

    public var count: Int { lru.withLock { $0.index.count } }
}
