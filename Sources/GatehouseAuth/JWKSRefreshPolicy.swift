/// When to fetch the JWKS, and whether the keys we hold may still be used — as a plain value,
/// so every timing rule is unit-tested with made-up instants.
///
/// Rules (the issue's, in one place):
/// - after a good fetch the keys are fresh for a TTL: `Cache-Control: max-age` clamped to
///   [min, max], else the default; the background refresh runs at 90 % of it, so requests never
///   wait for a refresh;
/// - after a failed fetch, retries back off 1 s, 2 s, 4 s … up to 60 s;
/// - the last good keys keep serving for `maxStale` after their last successful fetch, so an
///   outage of the auth server does not take the API down; past that (or before any key was
///   ever loaded) token requests get 503;
/// - an unknown `kid` may trigger one extra fetch, at most one per `cooldown`, however many
///   distinct unknown kids arrive.
public struct JWKSRefreshPolicy: Sendable {
    public typealias Instant = ContinuousClock.Instant

    let defaultTTL: Duration
    let minTTL: Duration
    let maxTTL: Duration
    let cooldown: Duration
    let maxStale: Duration

    private(set) var lastSuccess: Instant?
    private(set) var nextRefresh: Instant?
    private(set) var consecutiveFailures = 0
    private(set) var lastOnDemandFetch: Instant?

    public init(defaultTTL: Duration, minTTL: Duration, maxTTL: Duration, cooldown: Duration, maxStale: Duration) {
        self.defaultTTL = defaultTTL
        self.minTTL = minTTL
        self.maxTTL = maxTTL
        self.cooldown = cooldown
        self.maxStale = maxStale
    }

    /// The TTL for a response with this `max-age` (seconds), if any.
    func ttl(maxAge: Int?) -> Duration {
        guard let maxAge else { return defaultTTL }
        return min(max(.seconds(maxAge), minTTL), maxTTL)
    }

    /// A 200 or 304 arrived.
    mutating func fetchSucceeded(at now: Instant, maxAge: Int?) {
        lastSuccess = now
        consecutiveFailures = 0
        nextRefresh = now + ttl(maxAge: maxAge) * 0.9
    }

    mutating func fetchFailed(at now: Instant) {
        consecutiveFailures += 1
        let backoff = Duration.seconds(min(60, 1 << min(consecutiveFailures - 1, 6)))
        nextRefresh = now + backoff
    }

    /// How long the background refresher should sleep.
    func delayUntilRefresh(from now: Instant) -> Duration {
        guard let nextRefresh else { return .zero }
        return max(.zero, nextRefresh - now)
    }

    /// Whether keys fetched at `lastSuccess` may still verify tokens.
    func keysUsable(at now: Instant) -> Bool {
        guard let lastSuccess else { return false }
        return now - lastSuccess <= maxStale
    }

    /// An unknown kid arrived: may we fetch now? Records the fetch if so.
    mutating func allowOnDemandFetch(at now: Instant) -> Bool {
        if let last = lastOnDemandFetch, now - last < cooldown { return false }
        lastOnDemandFetch = now
        return true
    }
}

/// Parses `max-age` from a `Cache-Control` value (RFC 9111 §5.2.2.1); `no-store` and
/// `no-cache` count as 0 (then clamped up to the minimum TTL).
enum CacheControl {
    static func maxAge(_ value: String?) -> Int? {
        guard let value else { return nil }
        var result: Int?
        for directive in value.split(separator: ",") {
            // `split` drops empty pieces: a directive that is only "=" has no parts at all.
            let parts = directive.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: " \t\"") }
            guard let name = parts.first else { continue }
            switch name.lowercased() {
            case "no-store", "no-cache": return 0
            case "max-age" where parts.count == 2:
                if let seconds = Int(parts[1]), seconds >= 0 { result = seconds }
            default: break
            }
        }
        return result
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
