/// What one worker verifies tokens with, touched by that worker's thread alone: its copy of the
/// issuer's key set (a `JWKSCache.Snapshot`, replaced after every fetch) and its share of the
/// verified-token cache. Nothing here is shared with another worker, so a request's token
/// decision takes no lock another thread could hold.
///
/// The cost of a share per worker: a token that arrives on two workers is verified once on
/// each (connections, and so tokens, mostly stay on one worker), and each share holds
/// `GATEHOUSE_TOKEN_CACHE_SIZE` / workers entries (rounded up), so the process holds about the
/// configured total.
public final class WorkerAuthState {
    public private(set) var snapshot: JWKSCache.Snapshot
    let tokenCache: TokenCache
    private let jwks: JWKSCache

    init(jwks: JWKSCache, tokenCacheCapacity: Int) {
        self.jwks = jwks
        snapshot = jwks.snapshot()
        tokenCache = TokenCache(capacity: tokenCacheCapacity)
    }

    /// Takes the key set of the fetch that just ended (call when told so, on this worker's
    /// thread). Tokens verified by a key that left are dropped from this share at once; a
    /// replaced key never matches anyway (`Authenticator` compares key identity).
    /// Returns whether the set of kids changed.
    @discardableResult
    public func refresh() -> Bool {
        let fresh = jwks.snapshot()
        let before = snapshot.keys?.kids
        let after = fresh.keys?.kids
        snapshot = fresh
        if let after, after != before { tokenCache.retainOnly(kids: after) }
        return after != before
    }
}
