import CCurl

/// The proxy's client for its upstream: every proxied exchange goes through one libcurl
/// multi handle driven by one thread (`CurlLoop`), so connections to FastAPI are pooled and
/// reused across requests.
public final class UpstreamClient: Sendable {
    private let loop: CurlLoop
    public let configuration: UpstreamClientConfiguration

    public init(configuration: UpstreamClientConfiguration = .init()) {
        self.configuration = configuration
        self.loop = CurlLoop(configuration: configuration)
    }

    /// Starts an exchange. The request goes out at once; stream its body (if any) through the
    /// returned exchange, then read the response from it.
    ///
    /// `whenComplete`, for callers that run on an event loop rather than in a task, is called
    /// once when the exchange has ended (response complete, failed or cancelled), on the curl
    /// thread, after every waiting task was resumed — or, once the client is shut down, at
    /// once on the calling thread, before `start` returns (the exchange is then cancelled). It must return at once: hop to your own
    /// executor (`EventLoop.execute`) and read `completedHead` and `takeCompleteBody()` there.
    /// The response body stays buffered in the exchange until then, so this suits responses
    /// known to be small; a large body would pause at the high-water mark and never complete.
    public func start(
        _ request: UpstreamRequest, whenComplete: (@Sendable (UpstreamExchange) -> Void)? = nil
    ) -> UpstreamExchange {
        let exchange = UpstreamExchange(
            request: request, loop: loop,
            highWater: configuration.highWaterMark, lowWater: configuration.lowWaterMark, whenComplete: whenComplete)
        loop.start(exchange)
        return exchange
    }

    /// Cancels all exchanges and stops the curl thread.
    public func shutdown() {
        loop.stop()
    }

    /// The libcurl version string, for diagnostics.
    public static var curlVersion: String { String(cString: curl_version()) }
}
