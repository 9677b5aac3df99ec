public import GatehouseUpstream
public import JOSE
public import Logging
import Synchronization

/// The issuer's keys, fetched through the upstream client and refreshed in the background.
///
/// Requests never wait for a scheduled refresh: they read the current `JWKSet` under a lock.
/// The only time a request waits is an unknown `kid` (a key rotated in since the last fetch):
/// then at most one fetch runs (others join it), at most one per cooldown, bounded by the
/// fetch timeout. All timing decisions live in `JWKSRefreshPolicy`.
public final class JWKSCache: Sendable {
    public enum Keys: Sendable {
        case ready(JWKSet)
        /// Never loaded, or older than `maxStale`.
        case unavailable
    }

    /// What `/readyz` shows about the keys.
    public struct Status: Sendable {
        public var keyCount: Int
        public var ageSeconds: Double?
        public var lastError: String?
        public var usable: Bool
    }

    private struct State {
        var policy: JWKSRefreshPolicy
        var keys: JWKSet?
        var etag: String?
        /// The document the current keys came from: an identical refetch keeps the same key
        /// objects, so the verified-token cache (which checks key identity) stays warm.
        var document: [UInt8] = []
        var lastError: String?
        var inFlight: Task<Void, Never>?
        /// Rejected-key reasons already logged, so one bad key is logged once, not per refresh.
        var loggedRejections: Set<String> = []
    }

    private let state: Mutex<State>
    private let settings: AuthSettings
    private let client: UpstreamClient
    private let logger: Logger
    private let keysChanged: @Sendable (Set<String>) -> Void
    private let fetched: @Sendable (FetchResult, Duration) -> Void

    /// How a fetch ended, for metrics.
    public enum FetchResult: String, Sendable {
        case success, notModified = "not_modified", error
    }

    /// - Parameter keysChanged: called with the new set of kids after a fetch changed them
    ///   (the token cache drops tokens whose key left).
    public init(
        settings: AuthSettings, client: UpstreamClient, logger: Logger,
        keysChanged: @escaping @Sendable (Set<String>) -> Void = { _ in },
        fetched: @escaping @Sendable (FetchResult, Duration) -> Void = { _, _ in }
    ) {
        self.fetched = fetched
        self.settings = settings
        self.client = client
        self.logger = logger
        self.keysChanged = keysChanged
        self.state = Mutex(State(policy: JWKSRefreshPolicy(
            defaultTTL: settings.jwksDefaultTTL, minTTL: settings.jwksMinTTL, maxTTL: settings.jwksMaxTTL,
            cooldown: settings.refetchCooldown, maxStale: settings.maxStale)))
    }

    /// The keys to verify with now.
    public func currentKeys() -> Keys {
        let now = ContinuousClock.now
        return state.withLock { s in
            guard let keys = s.keys, s.policy.keysUsable(at: now) else { return .unavailable }
            return .ready(keys)
        }
    }

    /// For a token whose kid we do not know: fetch again (or join a fetch in flight) unless
    /// the cooldown forbids it, then return the keys. Waits at most the fetch timeout.
    public func keysAfterUnknownKid() async -> Keys {
        let now = ContinuousClock.now
        let task: Task<Void, Never>? = state.withLock { s in
            if let inFlight = s.inFlight { return inFlight }
            guard s.policy.allowOnDemandFetch(at: now) else { return nil }
            return startFetchLocked(&s)
        }
        if let task { await task.value }
        return currentKeys()
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

    /// The background refresher: fetches now, then whenever the policy says. Runs until cancelled.
    public func run() async {
        while !Task.isCancelled {
            let task = state.withLock { s in s.inFlight ?? startFetchLocked(&s) }
            await task.value
            let delay = state.withLock { $0.policy.delayUntilRefresh(from: .now) }
            try? await Task.sleep(for: max(delay, .milliseconds(50)))
        }
    }

    private func startFetchLocked(_ s: inout State) -> Task<Void, Never> {
        let etag = s.etag
        let task = Task { await self.fetch(etag: etag) }
        s.inFlight = task
        return task
    }

    private func fetch(etag: String?) async {
        var headers: [(name: String, value: String)] = [("User-Agent", settings.userAgent), ("Accept", "application/json")]
        if let etag { headers.append(("If-None-Match", etag)) }
        let outcome: Result<FetchedDocument, FetchError>
        let started = ContinuousClock.now
        do {
            outcome = .success(try await client.fetch(
                origin: settings.jwksOrigin, target: settings.jwksTarget, headers: headers,
                timeoutMilliseconds: Int(settings.fetchTimeout.secondsDouble * 1000), maxBytes: JWKSet.defaultMaxBytes))
        } catch {
            outcome = .failure(error)
        }
        fetched(apply(outcome), ContinuousClock.now - started)
    }

    @discardableResult
    private func apply(_ outcome: Result<FetchedDocument, FetchError>) -> FetchResult {
        let now = ContinuousClock.now
        var result = FetchResult.success
        var changedKids: Set<String>?
        var problem: String?
        var newRejections: [String] = []
        state.withLock { s in
            defer { s.inFlight = nil }
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
            keysChanged(changedKids)
        }
        return result
    }

    private static func describe(_ error: UpstreamError) -> String {
        switch error {
        case .unavailable(let why): return why
        case .headersTimedOut, .idleTimedOut: return "timed out"
        case .cancelled: return "cancelled"
        case .requestBodyNotNeeded: return "unexpected"
        }
    }
}

extension Duration {
    var secondsDouble: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
