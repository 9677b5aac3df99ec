import Synchronization

/// What `/readyz` reports. Ready means: both listeners are bound and we are not draining.
/// Later checks (JWKS loaded, …) add their reasons here.
public final class Readiness: Sendable {
    private struct State {
        var listenersUp = 0
        var draining = false
    }
    private let state = Mutex(State())
    private let listenerCount: Int

    public init(listenerCount: Int) {
        self.listenerCount = listenerCount
    }

    func listenerStarted() { state.withLock { $0.listenersUp += 1 } }
    public func startDraining() { state.withLock { $0.draining = true } }

    /// Reasons the process is not ready; empty when ready.
    public var reasons: [String] {
        state.withLock { s in
            var reasons: [String] = []
            if s.draining { reasons.append("shutting down") }
            if s.listenersUp < listenerCount { reasons.append("listeners starting") }
            return reasons
        }
    }
}
