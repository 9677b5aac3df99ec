import JOSE
public import GatehouseAuth
import Synchronization

/// What `/readyz` reports. Ready means: both listeners are bound, we are not draining, and —
/// with token verification on — usable JWKS keys are loaded (before the first successful fetch
/// every token request would get 503, so the orchestrator must not send traffic yet).
public final class Readiness: Sendable {
    private struct State {
        var listenersUp = 0
        var draining = false
    }
    private let state = Mutex(State())
    private let listenerCount: Int
    private let jwks: JWKSCache?

    public init(listenerCount: Int, jwks: JWKSCache?) {
        self.listenerCount = listenerCount
        self.jwks = jwks
    }

    func listenerStarted() { state.withLock { $0.listenersUp += 1 } }
    public func startDraining() { state.withLock { $0.draining = true } }

    /// Reasons the process is not ready; empty when ready.
    public var reasons: [String] {
        var reasons: [String] = state.withLock { s in
            var reasons: [String] = []
            if s.draining { reasons.append("shutting down") }
            if s.listenersUp < listenerCount { reasons.append("listeners starting") }
            return reasons
        }
        if let status = jwks?.status, !status.usable {
            reasons.append(status.ageSeconds == nil ? "JWKS not loaded yet" : "JWKS older than GATEHOUSE_JWKS_MAX_STALE")
        }
        return reasons
    }

    /// The `/readyz` body.
    var json: String {
        let reasons = self.reasons
        var body = #"{"status":"# + (reasons.isEmpty ? #""ready""# : #""not ready""#)
        body += #","reasons":["# + reasons.map(JSONText.quoted).joined(separator: ",") + "]"
        if let status = jwks?.status {
            body += #","jwks":{"keys":\#(status.keyCount),"age_seconds":"#
            body += status.ageSeconds.map { String(Int($0)) } ?? "null"
            body += #","last_error":"# + (status.lastError.map(JSONText.quoted) ?? "null") + "}"
        }
        return body + "}"
    }
}
