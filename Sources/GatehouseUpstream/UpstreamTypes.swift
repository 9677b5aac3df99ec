
/// What the proxy asks the upstream for. Everything here is already sanitised by the caller:
/// hop-by-hop headers removed, forwarding headers set. The request target is sent to the
/// upstream byte-for-byte (no normalisation, no re-encoding).
public struct UpstreamRequest: Sendable {
    /// Upstream origin, e.g. `http://127.0.0.1:8000` (no path).
    public var origin: String
    /// The exact request target to send, e.g. `/prefix/a%2Fb?x=1&x=2`.
    public var target: String
    public var method: String
    /// Header fields in order; repeated names stay repeated.
    public var headers: [(name: String, value: String)]
    public var body: Body
    /// A limit on the whole exchange (for gatehouse's own small requests, such as JWKS
    /// fetches). Proxied requests leave it nil: a stream has no total time limit.
    public var totalTimeoutMilliseconds: Int?

    public enum Body: Sendable, Equatable {
        /// No request body (GET, HEAD, …).
        case none
        /// A body of known length, streamed by `UpstreamExchange.writeRequestBody`.
        case length(Int64)
        /// A body of unknown length (chunked from the client), streamed likewise.
        case streamed
    }

    public init(origin: String, target: String, method: String, headers: [(name: String, value: String)], body: Body) {
        self.origin = origin
        self.target = target
        self.method = method
        self.headers = headers
        self.body = body
    }
}

/// The final (non-1xx) response head the upstream sent.
public struct UpstreamResponseHead: Sendable, Equatable {
    public var status: Int
    public var reason: String
    /// Header fields in the order received; repeated fields (several `Set-Cookie`) preserved.
    public var headers: [HeaderField]

    public struct HeaderField: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(status: Int, reason: String, headers: [HeaderField]) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }
}

/// Why an exchange with the upstream ended badly. The proxy maps these to 502/504 before the
/// response head is sent, and to an aborted client connection after.
public enum UpstreamError: Error, Sendable, Equatable {
    /// Connection refused, reset, DNS failure, malformed response: 502.
    case unavailable(String)
    /// No response head within the configured time (or connect timeout): 504.
    case headersTimedOut
    /// No bytes in either direction for the idle timeout.
    case idleTimedOut
    /// The proxy cancelled the exchange (client went away, shutdown).
    case cancelled
}

/// Tunables for one `UpstreamClient`.
public struct UpstreamClientConfiguration: Sendable {
    /// Time allowed for the TCP connect.
    public var connectTimeoutMilliseconds: Int = 5_000
    /// Time from the end of the request body to the final response head.
    public var headersTimeoutMilliseconds: Int = 60_000
    /// Longest silence (no bytes either way) tolerated on a transfer.
    public var idleTimeoutMilliseconds: Int = 300_000
    /// Idle upstream connections older than this are not reused. uvicorn closes idle
    /// keep-alive connections after 5 s; a streamed upload that lands on a connection the
    /// server is closing cannot be rewound, so we stay below that.
    public var maxConnectionAgeSeconds: Int = 4
    /// A multi that has run no transfer this long closes its pooled connections
    /// (`UpstreamMulti`'s idle sweep); they are older than `maxConnectionAgeSeconds` by then,
    /// so nothing reusable is lost.
    public var idleSweepMilliseconds: UInt64 = 6_000
    /// Bytes buffered per direction before the producer is paused (backpressure).
    public var highWaterMark: Int = 256 * 1024
    public var lowWaterMark: Int = 64 * 1024
    /// `User-Agent` for requests gatehouse makes on its own behalf (never for proxied ones).
    public var userAgent: String = "gatehouse"

    public init() {}
}
