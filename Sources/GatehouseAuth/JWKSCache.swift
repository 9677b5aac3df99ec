public import GatehouseUpstream
public import JOSE
public import Logging
import Synchronization

/// The issuer's keys: the current `JWKSet`, how old it is, and whether a fetch is due or running.
///
/// Workers never read this on a request's path: each holds its own copy of the current
/// `Snapshot` (in its `WorkerAuthState`), an immutable key set replaced whole when a fetch
/// ends, so a reader never sees half a rotation and no lock is shared between workers. Fetches
/// run on the main thread's control loop (`JWKSRefresher`), never on a worker. A worker that
/// meets an unknown `kid` (a key rotated in since the last fetch) asks for one
/// (`requestFetchForUnknownKid`) and parks the request; every worker hears when the fetch ended
/// (`fetchEnded`). At most one fetch runs, at most one on demand per cooldown, each bounded by
/// the fetch timeout. All timing decisions live in `JWKSRefreshPolicy`.
public final class JWKSCache: Sendable {
    /// What `/readyz` shows about the keys.
    public struct Status: Sendable {
        public var keyCount: Int
        public var ageSeconds: Double?
        public var lastError: String?
        public var usable: Bool
    }

    /// One fetch to run: what `JWKSRefresher` hands to its curl multi.
    public struct FetchPlan: Sendable {
        public var origin: String
        public var target: String
        public var headers: [(name: String, value: String)]
        public var timeoutMilliseconds: Int
        public var maxBytes: Int
    }

    private struct State {
        var policy: JWKSRefreshPolicy
        var keys: JWKSet?
        var etag: String?
        /// The document the current keys came from: an identical refetch keeps the same key
        /// objects, so the verified-token cache (which checks key identity) stays warm.
        var document: [UInt8] = []
        var lastError: String?
        var fetchInFlight = false
        /// A worker asked for a fetch the control loop has not started yet.
        var fetchRequested = false
        /// Fetches started so far: the number of the one in flight, or of the last one.
        var generation: UInt64 = 0
        /// Rejected-key reasons already logged, so one bad key is logged once, not per refresh.
        var loggedRejections: Set<String> = []
    }

    /// How the control loop is told (a wake-up) and how workers hear back (their inboxes).
    private struct Hooks {
        var wantFetch: (@Sendable () -> Void)?
        var fetchEnded: @Sendable (UInt64) -> Void = { _ in }
    }

    private let state: Mutex<State>
    private let hooks = Mutex(Hooks())
    private let settings: AuthSettings
    private let logger: Logger
    private let fetched: @Sendable (FetchResult, Duration) -> Void

    /// How a fetch ended, for metrics.
    public enum FetchResult: String, Sendable {
        case success, notModified = "not_modified", error
    }

    public init(
        settings: AuthSettings, logger: Logger,
        fetched: @escaping @Sendable (FetchResult, Duration) -> Void = { _, _ in }
    ) {
        self.fetched = fetched
        self.settings = settings
        self.logger = logger
        self.state = Mutex(State(policy: JWKSRefreshPolicy(
            defaultTTL: settings.jwksDefaultTTL, minTTL: settings.jwksMinTTL, maxTTL: settings.jwksMaxTTL,
            cooldown: settings.refetchCooldown, maxStale: settings.maxStale)))
    }

    /// Connects the cache to the loop that fetches (`wantFetch` wakes it, from any thread) and
    /// to the workers (`fetchEnded` is called on the fetching thread after every fetch, with
    /// that fetch's generation).
    public func attach(wantFetch: @escaping @Sendable () -> Void, fetchEnded: @escaping @Sendable (UInt64) -> Void) {
        hooks.withLock { $0 = Hooks(wantFetch: wantFetch, fetchEnded: fetchEnded) }
    }

    /// The key set as fetched and until when it may verify tokens: what a worker copies after
    /// every fetch (`WorkerAuthState.refresh`). Immutable; the keys are a shared reference.
    public struct Snapshot: Sendable {
        public var keys: JWKSet?
        /// The last successful fetch plus `GATEHOUSE_JWKS_MAX_STALE`.
        public var usableUntil: ContinuousClock.Instant?

        /// The keys, unless never loaded or stale past the limit at `now`.
        public func keys(at now: ContinuousClock.Instant) -> JWKSet? {
            guard let keys, let usableUntil, now <= usableUntil else { return nil }
            return keys
        }
    }

    /// The current snapshot (one lock, taken once per fetch per worker, never per request).
    public func snapshot() -> Snapshot {
        state.withLock { s in
            Snapshot(keys: s.keys, usableUntil: s.policy.lastSuccess.map { $0 + s.policy.maxStale })
        }
    }

    /// For a token whose kid we do not know: the generation of the fetch to wait for (the one
    /// running, or the one just asked for), whose end `fetchEnded` will announce; nil when the
    /// cooldown forbids a fetch or nothing fetches (decide with the keys in hand: the kid is
    /// unknown). A worker must not decide on the end of an earlier fetch: it may have read
    /// that announcement late, after this request arrived.
    public func requestFetchForUnknownKid() -> UInt64? {
        guard let wantFetch = hooks.withLock({ $0.wantFetch }) else { return nil }
        let now = ContinuousClock.now
        let answer: (generation: UInt64, wake: Bool)? = state.withLock { s in
            if s.fetchInFlight { return (s.generation, false) }
            if s.fetchRequested { return (s.generation + 1, false) }
            guard s.policy.allowOnDemandFetch(at: now) else { return nil }
            s.fetchRequested = true
            return (s.generation + 1, true)
        }
        guard let answer else { return nil }
        if answer.wake { wantFetch() }
        return answer.generation
    }

    public var status: Status {
        let now = ContinuousClock.now
        return state.withLock { s in
            Status(
                keyCount: s.keys?.keys.count ?? 0,
                ageSeconds: s.policy.lastSuccess.map { (now - $0).secondsDouble },
                lastError: s.lastError,
                usable: s.keys != nil && s.policy.keysUsable(at: now))
        }
    }

    // MARK: For the fetching loop (`JWKSRefresher`)

    /// The fetch to run now, or nil when one is already running.
    public func beginFetch() -> FetchPlan? {
        let etag: String?? = state.withLock { s in
            guard !s.fetchInFlight else { return nil }
            s.fetchInFlight = true
            s.fetchRequested = false
            s.generation += 1
            return .some(s.etag)
        }
        guard let etag else { return nil }
        var headers: [(name: String, value: String)] = [("User-Agent", settings.userAgent), ("Accept", "application/json")]
        if let etag { headers.append(("If-None-Match", etag)) }
        return FetchPlan(
            origin: settings.jwksOrigin, target: settings.jwksTarget, headers: headers,
            timeoutMilliseconds: Int(settings.fetchTimeout.secondsDouble * 1000), maxBytes: JWKSet.defaultMaxBytes)
    }

    /// Applies a finished fetch, then tells the workers.
    public func finishFetch(_ outcome: Result<FetchedDocument, FetchError>, duration: Duration) {
        let generation = state.withLock { $0.generation }
        fetched(apply(outcome), duration)
        hooks.withLock { $0.fetchEnded }(generation)
    }

    /// Whether a worker asked for a fetch that has not started.
    public var fetchIsWanted: Bool { state.withLock { $0.fetchRequested && !$0.fetchInFlight } }

    /// How long until the next scheduled refresh.
    public func delayUntilRefresh() -> Duration {
        state.withLock { $0.policy.delayUntilRefresh(from: .now) }
    }

    @discardableResult
    private func apply(_ outcome: Result<FetchedDocument, FetchError>) -> FetchResult {
        let now = ContinuousClock.now
        var result = FetchResult.success
        var changedKids: Set<String>?
        var problem: String?
        var newRejections: [String] = []
        state.withLock { s in
            defer { s.fetchInFlight = false }
            switch outcome {
            case .failure(.tooLarge):
                problem = "JWKS document larger than 1 MiB"
            case .failure(.upstream(let error)):
                problem = "JWKS fetch failed: \(Self.describe(error))"
            case .success(let document) where document.status == 304 && s.keys != nil:
                result = .notModified
                s.policy.fetchSucceeded(at: now, maxAge: CacheControl.maxAge(document.header("Cache-Control")))
                s.lastError = nil
            case .success(let document) where document.status != 200:
                problem = "JWKS fetch answered HTTP \(document.status)"
            case .success(let document) where s.keys != nil && document.body == s.document:
                result = .notModified
                s.etag = document.header("ETag")
                s.lastError = nil
                s.policy.fetchSucceeded(at: now, maxAge: CacheControl.maxAge(document.header("Cache-Control")))
            case .success(let document):
                switch JWKSet.parse(document.body) {
                case .failure(let error):
                    problem = "JWKS document rejected: \(error)"
                case .success(let set):
                    let oldKids = s.keys?.kids
                    s.keys = set
                    s.document = document.body
                    s.etag = document.header("ETag")
                    s.lastError = nil
                    s.policy.fetchSucceeded(at: now, maxAge: CacheControl.maxAge(document.header("Cache-Control")))
                    if oldKids != set.kids { changedKids = set.kids }
                    for rejection in set.rejected {
                        let text = "\(rejection)"
                        if s.loggedRejections.insert(text).inserted { newRejections.append(text) }
                    }
                }
            }
            if let problem {
                s.lastError = problem
                s.policy.fetchFailed(at: now)
                result = .error
            }
        }
        if let problem {
            logger.warning("JWKS refresh failed", metadata: ["error": .string(problem)])
        }
        for rejection in newRejections {
            logger.warning("JWKS key skipped", metadata: ["reason": .string(rejection)])
        }
        if let changedKids {
            logger.info("JWKS loaded", metadata: ["keys": .stringConvertible(changedKids.count)])
        }
        return result
    }

    private static func describe(_ error: UpstreamError) -> String {
        switch error {
        case .unavailable(let why): return why
        case .headersTimedOut, .idleTimedOut: return "timed out"
        case .cancelled: return "cancelled"
        }
    }
}

extension Duration {
    var secondsDouble: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
