import Synchronization

/// What Better Auth said about session credentials lately, and which lookups are in flight:
/// one per process, shared by every worker (a browser's connections spread over workers, and
/// each must not cost Better Auth a lookup of its own).
///
/// - A live session is kept for `GATEHOUSE_SESSION_CACHE_TTL`, never past its `expiresAt`;
///   `null` for `GATEHOUSE_SESSION_NEGATIVE_TTL`, so a flood of made-up cookies costs one
///   lookup per distinct value, then none. An outage is not kept: the next request asks again.
/// - Single flight: the first request for a credential starts the lookup; the ones that arrive
///   while it runs wait for its verdict (`Waiter`s, told by the looking-up worker).
/// - At most `maxLookups` lookups in flight; past that a request is answered `.overloaded`.
///
/// Keyed by `SessionCredential.digest`: the cache holds no credential. Bounded, LRU. One lock,
/// held for a dictionary lookup; the hot path (a hit) takes it once.
public final class SessionCache: Sendable {
    /// A request waiting for a lookup: the worker to tell, and its connection there.
    public struct Waiter: Sendable, Equatable {
        public var worker: Int
        public var connection: Int
        public init(worker: Int, connection: Int) {
            self.worker = worker
            self.connection = connection
        }
    }

    public enum Begin: Sendable {
        /// Decided without a lookup (cached, or overloaded).
        case decided(SessionVerdict, cached: Bool)
        /// The caller must look the credential up, then call `finish`.
        case lookUp
        /// A lookup for this credential is running; the waiter will be told its verdict.
        case joined
    }

    private struct Known {
        var verdict: SessionVerdict
        /// Seconds since the epoch.
        var until: Double
    }

    private struct State {
        var known: LRUTable<TokenCache.Digest, Known>
        var inFlight: [TokenCache.Digest: [Waiter]] = [:]
    }

    private let state: Mutex<State>
    public let ttl: Double
    public let negativeTTL: Double
    public let maxLookups: Int

    public init(capacity: Int, ttl: Double, negativeTTL: Double, maxLookups: Int) {
        state = Mutex(State(known: LRUTable(capacity: capacity)))
        self.ttl = ttl
        self.negativeTTL = negativeTTL
        self.maxLookups = maxLookups
    }

    /// The cached verdict, or the right to look up (`waiter` is then registered to hear the
    /// verdict, like every request that joins the lookup).
    public func begin(_ digest: TokenCache.Digest, now: Double, waiter: Waiter) -> Begin {
        state.withLock { state in
            if let known = state.known.get(digest) {
                if now < known.until { return .decided(known.verdict, cached: true) }
                state.known.remove(digest)
            }
            if state.inFlight[digest] != nil {
                state.inFlight[digest]!.append(waiter)
                return .joined
            }
            guard state.inFlight.count < maxLookups else { return .decided(.overloaded, cached: false) }
            state.inFlight[digest] = [waiter]
            return .lookUp
        }
    }

    /// Records a lookup's verdict; returns every request waiting for it (the caller's own
    /// included), each to be told by its worker.
    public func finish(_ digest: TokenCache.Digest, verdict: SessionVerdict, now: Double) -> [Waiter] {
        state.withLock { state in
            switch verdict {
            case .live(let identity):
                state.known.set(digest, Known(verdict: verdict, until: min(now + ttl, identity.expiresAt)))
            case .notFound, .expired:
                state.known.set(digest, Known(verdict: verdict, until: now + negativeTTL))
            case .unavailable, .overloaded:
                break
            }
            return state.inFlight.removeValue(forKey: digest) ?? []
        }
    }

    /// Lookups running now.
    public var lookupsInFlight: Int { state.withLock { $0.inFlight.count } }

    /// Credentials with a cached verdict.
    public var count: Int { state.withLock { $0.known.count } }
}
