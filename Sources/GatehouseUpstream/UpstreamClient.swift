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
    public func start(_ request: UpstreamRequest) -> UpstreamExchange {
        let exchange = UpstreamExchange(
            request: request, loop: loop,
            highWater: configuration.highWaterMark, lowWater: configuration.lowWaterMark)
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
