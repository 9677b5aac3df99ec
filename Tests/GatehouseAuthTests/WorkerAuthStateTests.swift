import GatehouseUpstream
import JOSE
import Logging
import Synchronization
import Testing

@testable import GatehouseAuth

/// The hand-over between the fetching loop and the workers, without sockets: `JWKSCache`'s
/// fetch bookkeeping (`requestFetchForUnknownKid`, `beginFetch`, `finishFetch`) and a worker's
/// own snapshot (`WorkerAuthState.refresh`).
@Suite struct WorkerAuthStateTests {
    /// RFC 8037 §A.2's Ed25519 public key, under a chosen kid.
    static func document(kids: [String]) -> [UInt8] {
        let keys = kids.map {
            #"{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"\#($0)"}"#
        }
        return Array(#"{"keys":[\#(keys.joined(separator: ","))]}"#.utf8)
    }

    static func settings() -> AuthSettings {
        var settings = AuthSettings(
            jwksOrigin: "http://127.0.0.1:1", jwksTarget: "/api/auth/jwks",
            verifier: JWTVerifier.Configuration(issuer: "http://127.0.0.1:1", audiences: ["http://127.0.0.1:1"]),
            claimHeaders: [], claimsHeader: nil, userAgent: "test")
        settings.maxStale = .seconds(60)
        return settings
    }

    final class Hooks: Sendable {
        let wanted = Mutex(0)
        let ended = Mutex<[UInt64]>([])
    }

    static func cacheWithHooks() -> (JWKSCache, Hooks) {
        let cache = JWKSCache(settings: settings(), logger: Logger(label: "test"))
        let hooks = Hooks()
        cache.attach(wantFetch: { hooks.wanted.withLock { $0 += 1 } }, fetchEnded: { generation in hooks.ended.withLock { $0.append(generation) } })
        return (cache, hooks)
    }

    static func served(_ kids: [String]) -> Result<FetchedDocument, FetchError> {
        .success(FetchedDocument(status: 200, headers: [], body: document(kids: kids)))
    }

    @Test func aWorkerSeesNoKeysUntilAFetchEndedAndItRefreshed() throws {
        let (cache, hooks) = Self.cacheWithHooks()
        let worker = Authenticator(settings: Self.settings(), logger: Logger(label: "test")).makeWorkerState(workers: 2)
        let state = WorkerAuthState(jwks: cache, tokenCacheCapacity: 10)
        #expect(state.snapshot.keys(at: .now) == nil)
        #expect(worker.tokenCache.capacity == 5_000, "the configured 10 000 split over 2 workers")

        let plan = try #require(cache.beginFetch())
        #expect(plan.target == "/api/auth/jwks" && plan.headers.contains { $0.name == "User-Agent" && $0.value == "test" })
        #expect(cache.beginFetch() == nil, "one fetch at a time")
        cache.finishFetch(Self.served(["k1"]), duration: .zero)
        #expect(hooks.ended.withLock { $0 } == [1])
        #expect(state.snapshot.keys(at: .now) == nil, "the worker's copy changes only when it refreshes")
        state.refresh()
        #expect(state.snapshot.keys(at: .now)?.kids == ["k1"] as Set)
        // Past GATEHOUSE_JWKS_MAX_STALE without a successful fetch, the keys stop verifying.
        #expect(state.snapshot.keys(at: .now + .seconds(61)) == nil)
    }

    @Test func unknownKidsShareOneFetchAndRespectTheCooldown() throws {
        let (cache, hooks) = Self.cacheWithHooks()
        _ = try #require(cache.beginFetch())
        cache.finishFetch(Self.served(["k1"]), duration: .zero)

        // Waiting for fetch 2: the end of fetch 1 (announced before, maybe read late by a
        // worker) must not release it.
        #expect(cache.requestFetchForUnknownKid() == 2, "the first unknown kid asks for a fetch")
        #expect(cache.requestFetchForUnknownKid() == 2, "a second one joins it")
        #expect(hooks.wanted.withLock { $0 } == 1, "the fetching loop is woken once")
        #expect(cache.fetchIsWanted)
        _ = try #require(cache.beginFetch())
        #expect(!cache.fetchIsWanted)
        #expect(cache.requestFetchForUnknownKid() == 2, "joins the fetch in flight")
        cache.finishFetch(Self.served(["k1", "k2"]), duration: .zero)
        #expect(hooks.ended.withLock { $0 } == [1, 2])
        // Within GATEHOUSE_JWKS_REFETCH_COOLDOWN (10 s): no fetch, decide with the keys in hand.
        #expect(cache.requestFetchForUnknownKid() == nil)
        #expect(hooks.wanted.withLock { $0 } == 1)
    }

    @Test func withoutAFetchingLoopNothingWaits() {
        let cache = JWKSCache(settings: Self.settings(), logger: Logger(label: "test"))
        #expect(cache.requestFetchForUnknownKid() == nil, "a request must never park for a fetch nobody runs")
    }

    @Test func aFailedFetchKeepsTheKeysAndTokensOfAKeyThatLeftAreDropped() throws {
        let (cache, _) = Self.cacheWithHooks()
        let state = WorkerAuthState(jwks: cache, tokenCacheCapacity: 10)
        _ = try #require(cache.beginFetch())
        cache.finishFetch(Self.served(["old", "new"]), duration: .zero)
        state.refresh()
        let entry = { (kid: String) in
            TokenCache.Entry(exp: 1e12, kid: kid, key: nil, identityHeaders: [], sub: "u")
        }
        state.tokenCache.insert(TokenCache.Digest([UInt8](repeating: 1, count: 32)), entry("old"))
        state.tokenCache.insert(TokenCache.Digest([UInt8](repeating: 2, count: 32)), entry("new"))

        _ = try #require(cache.beginFetch())
        cache.finishFetch(.failure(.upstream(.unavailable("refused"))), duration: .zero)
        state.refresh()
        #expect(state.snapshot.keys(at: .now)?.kids == ["old", "new"] as Set, "the last good keys keep serving")
        #expect(cache.status.lastError != nil)

        _ = try #require(cache.beginFetch())
        cache.finishFetch(Self.served(["new"]), duration: .zero)
        state.refresh()
        #expect(state.snapshot.keys(at: .now)?.kids == ["new"] as Set)
        #expect(state.tokenCache.lookup(TokenCache.Digest([UInt8](repeating: 1, count: 32)), now: 0) == nil)
        #expect(state.tokenCache.lookup(TokenCache.Digest([UInt8](repeating: 2, count: 32)), now: 0) != nil)
    }
}
