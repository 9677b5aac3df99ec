import CCurl

/// A libcurl easy handle carrying one `UpstreamExchange`. Confined to the curl loop thread
/// (see `CurlLoop`): it is created, configured, called back, timed and freed there.
///
/// libcurl callbacks are C function pointers that cannot capture; each receives this object
/// through `*DATA`/`CURLOPT_PRIVATE` as an unretained pointer. The object is kept alive by one
/// explicit retain taken in `configure()` and dropped in `release()`, which runs only after
/// `curl_multi_remove_handle`, so no callback can see a freed object.
final class EasyTransfer {
    let easy: UnsafeMutableRawPointer?
    let exchange: UpstreamExchange
    private let configuration: UpstreamClientConfiguration
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var parser = ResponseHeadParser()
    private var headerBytes = 0
    private var failure: UpstreamError?
    private var retained: Unmanaged<EasyTransfer>?

    private(set) var headReceived = false
    /// Request-body bytes handed to curl, and the declared length (nil when chunked).
    private var bodyBytesSent: Int64 = 0
    private var declaredBodyLength: Int64?
    private(set) var requestSentAt: ContinuousClock.Instant?
    private(set) var lastActivity = ContinuousClock.now

    /// Upper bound on the upstream's response head, so a hostile or broken upstream cannot
    /// make us buffer without limit.
    static let maxResponseHeadBytes = 256 * 1024

    /// `easy` is a fresh or `curl_easy_reset` handle from `LoopThread`'s pool.
    private let wakeups: ResumeBatch

    init(
        easy: UnsafeMutableRawPointer?, exchange: UpstreamExchange, configuration: UpstreamClientConfiguration,
        wakeups: ResumeBatch
    ) {
        self.wakeups = wakeups
        self.easy = easy
        self.exchange = exchange
        self.configuration = configuration
    }

    /// Applies every option. Returns a description of the first failure, or nil.
    func configure() -> String? {
        guard let easy else { return "no handle" }
        let me = Unmanaged.passRetained(self)
        retained = me
        let setup = CurlRequestSetup.apply(
            exchange.request, to: easy, configuration: configuration, userdata: me.toOpaque(),
            callbacks: .init(header: headerCallback, write: writeCallback, read: readCallback))
        headerList = setup.headerList
        declaredBodyLength = setup.declaredBodyLength
        if setup.bodyless || setup.declaredBodyLength == 0 { requestSentAt = .now }
        return setup.failure
    }

    /// Frees the header list and drops the retain taken in `configure()`; the easy handle
    /// itself goes back to the caller's pool. Only after `curl_multi_remove_handle` (or if
    /// the handle was never added).
    func release() {
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
        retained?.release()
        retained = nil
    }

    /// Maps curl's result for this transfer to ours, preferring a reason we recorded.
    func outcome(for code: CURLcode) -> Result<Void, UpstreamError> {
        if let failure { return .failure(failure) }
        if code == CURLE_OK { return .success(()) }
        if code == CURLE_OPERATION_TIMEDOUT { return .failure(headReceived ? .idleTimedOut : .headersTimedOut) }
        return .failure(.unavailable(String(cString: curl_easy_strerror(code))))
    }

    // MARK: Callbacks (loop thread)

    fileprivate func onHeaderLine(_ line: UnsafeRawBufferPointer) -> Int {
        lastActivity = .now
        // Trailer fields arrive through this callback after the body; they are dropped
        // (trailers are not forwarded).
        if headReceived { return line.count }
        headerBytes += line.count
        if headerBytes > Self.maxResponseHeadBytes {
            failure = .unavailable("upstream response head too large")
            return 0
        }
        switch parser.feed(line) {
        case .needMore: break
        case .head(let head):
            headReceived = true
            exchange.curlReceivedHead(head, wakeups: wakeups)
        case .malformed(let why):
            failure = .unavailable("malformed upstream response: \(why)")
            return 0
        }
        return line.count
    }

    fileprivate func onBody(_ bytes: UnsafeRawBufferPointer) -> Int {
        lastActivity = .now
        return exchange.curlReceivedBody(bytes, wakeups: wakeups) ? bytes.count : GH_WRITEFUNC_PAUSE
    }

    fileprivate func onRead(_ destination: UnsafeMutableRawBufferPointer) -> Int {
        var destination = destination
        if let declared = declaredBodyLength, declared - bodyBytesSent < Int64(destination.count) {
            // Never more than the declared length: curl 7.88 sends whatever the callback
            // gives, and bytes past the Content-Length would be the upstream's next request.
            destination = UnsafeMutableRawBufferPointer(rebasing: destination[..<Int(max(0, declared - bodyBytesSent))])
        }
        switch exchange.curlRead(into: destination, wakeups: wakeups) {
        case .bytes(let n):
            lastActivity = .now
            bodyBytesSent += Int64(n)
            // With a declared length curl never asks again after the last byte, so the time
            // to the response head starts here.
            if bodyBytesSent == declaredBodyLength { requestSentAt = .now }
            return n
        case .endOfBody:
            // A body shorter than its Content-Length must never look complete upstream: curl
            // 7.88 would end the request there and keep the connection, and the upstream would
            // read the next request's bytes as this body (request smuggling). Abort instead.
            if let declared = declaredBodyLength, bodyBytesSent != declared {
                failure = .unavailable("request body ended before its Content-Length")
                return GH_READFUNC_ABORT
            }
            if requestSentAt == nil { requestSentAt = .now }
            return 0
        case .pause:
            return GH_READFUNC_PAUSE
        case .abort:
            return GH_READFUNC_ABORT
        }
    }
}

private func transfer(_ userdata: UnsafeMutableRawPointer?) -> EasyTransfer {
    Unmanaged<EasyTransfer>.fromOpaque(userdata!).takeUnretainedValue()
}

private let headerCallback: gh_data_callback = { buffer, size, count, userdata in
    transfer(userdata).onHeaderLine(UnsafeRawBufferPointer(start: buffer, count: size * count))
}

private let writeCallback: gh_data_callback = { buffer, size, count, userdata in
    transfer(userdata).onBody(UnsafeRawBufferPointer(start: buffer, count: size * count))
}

private let readCallback: gh_data_callback = { buffer, size, count, userdata in
    transfer(userdata).onRead(UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
}
