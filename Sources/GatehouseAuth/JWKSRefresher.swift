public import EventLoop
public import GatehouseUpstream

/// Fetches the issuer's JWKS for a `JWKSCache`, on one event loop (the main thread's control
/// loop), with that loop's own curl multi: at start, whenever the refresh policy says, and
/// when a worker met an unknown `kid` (`JWKSCache.requestFetchForUnknownKid` wakes this loop).
///
/// Thread rule: everything here runs on the loop's thread; other threads reach it only through
/// the waker, via `JWKSCache`.
public final class JWKSRefresher: LoopTimerHandler, LoopWakeHandler {
    private let cache: JWKSCache
    private let multi: UpstreamMulti
    private var timer: LoopTimer!
    private var waker: LoopWaker!
    private var stopped = false

    /// `fetchEnded` runs on this loop's thread after every fetch, with its generation (workers
    /// are told from it).
    public init(
        cache: JWKSCache, loop: EventLoop, multi: UpstreamMulti, fetchEnded: @escaping @Sendable (UInt64) -> Void
    ) throws {
        self.cache = cache
        self.multi = multi
        timer = LoopTimer(loop: loop, handler: self)
        waker = try LoopWaker(loop: loop, handler: self)
        let remote = waker.remote
        cache.attach(wantFetch: { remote.wake() }, fetchEnded: fetchEnded)
        timer.arm(milliseconds: 0)  // the first fetch, from the loop's first batch
    }

    /// No fetch starts after this (shutdown).
    public func stop() {
        stopped = true
        timer.disarm()
    }

    public func timerFired(_ timer: LoopTimer) { startFetch() }

    public func woken() {
        if cache.fetchIsWanted { startFetch() }
    }

    private func startFetch() {
        guard !stopped, let plan = cache.beginFetch() else { return }
        let started = ContinuousClock.now
        multi.fetchDocument(
            origin: plan.origin, target: plan.target, headers: plan.headers,
            timeoutMilliseconds: plan.timeoutMilliseconds, maxBytes: plan.maxBytes
        ) { [self] outcome in
            cache.finishFetch(outcome, duration: ContinuousClock.now - started)
            // A fetch asked for in the moment after this one was applied starts in 50 ms
            // (never from here: this may be inside curl's callback).
            let delay = cache.fetchIsWanted ? .zero : cache.delayUntilRefresh()
            if !stopped { timer.arm(milliseconds: max(50, Int(delay.secondsDouble * 1000))) }
        }
    }
}
