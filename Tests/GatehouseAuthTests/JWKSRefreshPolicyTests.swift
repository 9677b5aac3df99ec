import Testing

@testable import GatehouseAuth

@Suite struct JWKSRefreshPolicyTests {
    let t0 = ContinuousClock.now

    func policy() -> JWKSRefreshPolicy {
        JWKSRefreshPolicy(
            defaultTTL: .seconds(300), minTTL: .seconds(30), maxTTL: .seconds(3600), cooldown: .seconds(10),
            maxStale: .seconds(86_400))
    }

    @Test func maxAgeIsClampedAndRefreshComesBeforeExpiry() {
        var p = policy()
        #expect(p.ttl(maxAge: nil) == .seconds(300))
        #expect(p.ttl(maxAge: 5) == .seconds(30))
        #expect(p.ttl(maxAge: 600) == .seconds(600))
        #expect(p.ttl(maxAge: 999_999) == .seconds(3600))
        p.fetchSucceeded(at: t0, maxAge: 600)
        #expect(p.delayUntilRefresh(from: t0) == .seconds(540), "refreshed at 90 % of the TTL")
    }

    @Test func failuresBackOffFromOneSecondToAMinute() {
        var p = policy()
        var delays: [Duration] = []
        for _ in 0..<9 {
            p.fetchFailed(at: t0)
            delays.append(p.delayUntilRefresh(from: t0))
        }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { .seconds($0) })
        p.fetchSucceeded(at: t0, maxAge: nil)
        p.fetchFailed(at: t0)
        #expect(p.delayUntilRefresh(from: t0) == .seconds(1), "a success resets the backoff")
    }

    @Test func keysServeUntilMaxStaleThenStop() {
        var p = policy()
        #expect(!p.keysUsable(at: t0), "no keys before the first fetch")
        p.fetchSucceeded(at: t0, maxAge: nil)
        p.fetchFailed(at: t0 + .seconds(400))
        #expect(p.keysUsable(at: t0 + .seconds(86_400)))
        #expect(!p.keysUsable(at: t0 + .seconds(86_401)))
    }

    @Test func unknownKidFetchesAreRateLimited() {
        var p = policy()
        let decisions = [.zero, .seconds(1), .milliseconds(9_999), .seconds(10)].map { (offset: Duration) in
            p.allowOnDemandFetch(at: t0 + offset)
        }
        #expect(decisions == [true, false, false, true])
    }

    @Test(arguments: [
        ("max-age=600", 600), ("public, max-age=60", 60), ("max-age=\"120\", must-revalidate", 120), ("no-store", 0),
        ("no-cache, max-age=60", 0), ("private", nil), ("max-age=-5", nil), ("max-age=abc", nil),
        // Directives without a name (once a trap that took the process down on a JWKS fetch).
        ("=", nil), ("==", nil), ("max-age=60,=", 60), (",,=,", nil), ("max-age", nil),
    ] as [(String, Int?)])
    func cacheControl(_ header: String, _ expected: Int?) {
        #expect(CacheControl.maxAge(header) == expected)
    }
}

@Suite struct TokenCacheTests {
    func key(_ n: UInt8) -> TokenCache.Digest { TokenCache.Digest([UInt8](repeating: n, count: 32)) }
    func entry(exp: Double = 2_000, kid: String? = "k1", sub: String = "u") -> TokenCache.Entry {
        .init(exp: exp, kid: kid, key: nil, identityHeaders: [("X-User-Id", sub)], sub: sub)
    }

    @Test func leastRecentlyUsedIsEvicted() {
        let cache = TokenCache(capacity: 2)
        cache.insert(key(1), entry(sub: "a"))
        cache.insert(key(2), entry(sub: "b"))
        #expect(cache.lookup(key(1), now: 0)?.sub == "a")  // 1 becomes most recent
        cache.insert(key(3), entry(sub: "c"))
        #expect(cache.lookup(key(2), now: 0) == nil, "2 was least recently used")
        #expect(cache.lookup(key(1), now: 0)?.sub == "a")
        #expect(cache.lookup(key(3), now: 0)?.sub == "c")
        #expect(cache.count == 2)
    }

    @Test func entriesNeverOutliveTheirToken() {
        let cache = TokenCache(capacity: 10)
        cache.insert(key(1), entry(exp: 100))
        #expect(cache.lookup(key(1), now: 99.9) != nil)
        #expect(cache.lookup(key(1), now: 100) == nil)
        #expect(cache.count == 0, "an expired entry is dropped when seen")
    }

    @Test func tokensOfRemovedKeysArePurged() {
        let cache = TokenCache(capacity: 10)
        cache.insert(key(1), entry(kid: "old"))
        cache.insert(key(2), entry(kid: "new"))
        cache.insert(key(3), entry(kid: nil))
        cache.retainOnly(kids: ["new"])
        #expect(cache.lookup(key(1), now: 0) == nil)
        #expect(cache.lookup(key(2), now: 0) != nil)
        #expect(cache.lookup(key(3), now: 0) == nil)
    }

    @Test func sizeZeroTurnsTheCacheOff() {
        let cache = TokenCache(capacity: 0)
        cache.insert(key(1), entry())
        #expect(cache.lookup(key(1), now: 0) == nil)
    }

    @Test func slotsAreReusedUnderChurn() {
        let cache = TokenCache(capacity: 3)
        for i in 0..<200 { cache.insert(key(UInt8(i)), entry(sub: "\(i)")) }
        #expect(cache.count == 3)
        #expect(cache.lookup(key(199), now: 0)?.sub == "199")
        #expect(cache.lookup(key(196), now: 0) == nil)
    }
}
