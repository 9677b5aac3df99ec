import GatehouseAuth
import GatehouseUpstream

/// Better Auth session lookups for every worker: the shared verdict cache, the get-session
/// endpoint, and the way a worker that finished a lookup tells the workers whose requests
/// joined it (their inboxes).
///
/// A lookup runs on the worker whose request asked first, on that worker's own curl multi (the
/// loop never blocks), bounded by `GATEHOUSE_SESSION_TIMEOUT`. It sends the one credential and
/// nothing else of the client's request: no other cookie, no forwarding header, no user agent.
/// Better Auth's answer may refresh the session with `Set-Cookie`; gatehouse drops it, since a
/// cookie meant for the browser must come from Better Auth's own routes, not appear on an API
/// answer the browser did not expect it on (and the refreshed expiry reaches the browser the
/// next time it talks to Better Auth).
final class SessionLookups: Sendable {
    let policy: SessionPolicy
    let cache: SessionCache
    let settings: AuthSettings
    let inboxes: [WorkerInbox]
    let metrics: ProxyMetrics

    init(policy: SessionPolicy, settings: AuthSettings, inboxes: [WorkerInbox], metrics: ProxyMetrics) {
        self.policy = policy
        self.settings = settings
        self.inboxes = inboxes
        self.metrics = metrics
        cache = SessionCache(
            capacity: policy.cacheSize, ttl: Double(policy.cacheTTL.milliseconds) / 1000,
            negativeTTL: Double(policy.negativeTTL.milliseconds) / 1000, maxLookups: policy.maxLookups)
    }

    /// Asks get-session about `credential` on `multi` (the calling worker's), records the
    /// verdict, and hands it to every waiting request: through `deliverLocally` for the
    /// calling worker's own (after the current batch: the completion may run inside curl's
    /// callbacks), through the inbox for the others.
    func lookUp(
        _ credential: SessionCredential, digest: TokenCache.Digest, on multi: UpstreamMulti, worker: Int,
        deliverLocally: @escaping (Int, SessionVerdict) -> Void
    ) {
        let header: (name: String, value: String) =
            switch credential.kind {
            case .cookie: ("Cookie", policy.cookieName + "=" + credential.value)
            case .bearer: ("Authorization", "Bearer " + credential.value)
            }
        let started = ContinuousClock.now
        multi.fetchDocument(
            origin: policy.lookupOrigin, target: policy.lookupTarget,
            headers: [header, ("Accept", "application/json"), ("User-Agent", settings.userAgent)],
            timeoutMilliseconds: policy.timeout.milliseconds, maxBytes: BetterAuthSession.maxAnswerBytes
        ) { [self] result in
            let now = Authenticator.now()
            let verdict: SessionVerdict =
                switch result {
                case .success(let answer): BetterAuthSession.verdict(status: answer.status, body: answer.body, now: now, settings: settings)
                case .failure: .unavailable
                }
            metrics.sessionLookupDuration.record(ContinuousClock.now - started)
            metrics.recordSessionLookup(verdict)
            for waiter in cache.finish(digest, verdict: verdict, now: now) {
                if waiter.worker == worker {
                    deliverLocally(waiter.connection, verdict)
                } else if inboxes.indices.contains(waiter.worker) {
                    inboxes[waiter.worker].post(.sessionDecided(connection: waiter.connection, verdict: verdict))
                }
            }
        }
    }
}
