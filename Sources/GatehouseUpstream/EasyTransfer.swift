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
        let request = exchange.request
        let me = Unmanaged.passRetained(self)
        retained = me
        let userdata = me.toOpaque()

        var failed: String?
        func check(_ code: CURLcode, _ what: String) {
            if code != CURLE_OK, failed == nil {
                failed = "\(what): \(String(cString: curl_easy_strerror(code)))"
            }
        }
        check(gh_easy_setopt_string(easy, CURLOPT_URL, request.origin + "/"), "upstream URL")
        // The client's request target, byte for byte: no dot-segment removal, no re-encoding.
        check(gh_easy_setopt_string(easy, CURLOPT_REQUEST_TARGET, request.target), "request target")
        check(gh_easy_setopt_long(easy, CURLOPT_PATH_AS_IS, 1), "path as is")
        check(gh_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"), "protocols")
        // Never route proxied traffic through an http_proxy from the environment.
        check(gh_easy_setopt_string(easy, CURLOPT_PROXY, ""), "proxy")
        check(gh_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1), "nosignal")
        check(gh_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1), "http version")
        // Bytes pass through unchanged: no content decoding (transfer decoding stays on, since
        // chunked framing is hop-by-hop).
        check(gh_easy_setopt_long(easy, CURLOPT_HTTP_CONTENT_DECODING, 0), "content decoding")
        check(gh_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeoutMilliseconds), "connect timeout")
        check(gh_easy_setopt_long(easy, CURLOPT_MAXAGE_CONN, configuration.maxConnectionAgeSeconds), "max connection age")
        if let total = request.totalTimeoutMilliseconds {
            check(gh_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, total), "total timeout")
        }
        check(gh_easy_setopt_long(easy, CURLOPT_BUFFERSIZE, 64 * 1024), "buffer size")
        check(gh_easy_setopt_long(easy, CURLOPT_UPLOAD_BUFFERSIZE, 64 * 1024), "upload buffer size")
        check(gh_easy_setopt_ptr(easy, CURLOPT_PRIVATE, userdata), "private")
        check(gh_easy_setopt_datacb(easy, CURLOPT_HEADERFUNCTION, headerCallback), "header callback")
        check(gh_easy_setopt_ptr(easy, CURLOPT_HEADERDATA, userdata), "header data")
        check(gh_easy_setopt_datacb(easy, CURLOPT_WRITEFUNCTION, writeCallback), "write callback")
        check(gh_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, userdata), "write data")

        // CR, LF or NUL in the request line or a header would let the text after it pass as
        // another header or request (curl copies the bytes as they are): refused here, whatever
        // the caller checked.
        if Self.hasLineBreakOrNUL(request.target) || Self.hasLineBreakOrNUL(request.method)
            || request.headers.contains(where: { Self.hasLineBreakOrNUL($0.name) || Self.hasLineBreakOrNUL($0.value) })
        {
            return "request line or header with CR, LF or NUL"
        }
        var sawAccept = false
        var sawContentType = false
        for (name, value) in request.headers {
            if name.utf8.count == 6, name.lowercased() == "accept" { sawAccept = true }
            if name.utf8.count == 12, name.lowercased() == "content-type" { sawContentType = true }
            headerList = Self.append(name: name, value: value, to: headerList)
        }
        // Remove what curl would add on its own.
        headerList = curl_slist_append(headerList, "Expect:")
        if !sawAccept { headerList = curl_slist_append(headerList, "Accept:") }

        switch (request.method, request.body) {
        case ("HEAD", _):
            check(gh_easy_setopt_long(easy, CURLOPT_NOBODY, 1), "HEAD")
            requestSentAt = .now
        case (_, .none):
            if request.method != "GET" {
                check(gh_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method), "method")
            }
            requestSentAt = .now
        case (_, .length(let length)):
            declaredBodyLength = length
            configureUpload(easy, userdata: userdata, length: length, check: check)
            if !sawContentType { headerList = curl_slist_append(headerList, "Content-Type:") }
        case (_, .streamed):
            configureUpload(easy, userdata: userdata, length: -1, check: check)
            if !sawContentType { headerList = curl_slist_append(headerList, "Content-Type:") }
        }
        check(gh_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList), "headers")
        return failed
    }

    /// Runs on the curl thread over every header byte of every request, so it is written to
    /// vectorise: contiguous bytes (`withUTF8`; a native string is not copied) and no early
    /// exit. 0.35-0.5 µs for a Better Auth request's ~1.6 KiB of headers, against 4.5-5 µs for
    /// `utf8.contains(where:)` (swiftc -O microbenchmark).
    static func hasLineBreakOrNUL(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            var found: UInt8 = 0
            for byte in bytes {
                found |= (byte == 0x0D ? 1 : 0) | (byte == 0x0A ? 1 : 0) | (byte == 0 ? 1 : 0)
            }
            return found != 0
        }
    }

    /// Appends `Name: value` to a curl header list. The line is assembled once in a temporary
    /// buffer (curl copies it), instead of through an interpolated `String` per header.
    /// curl drops `Name:` with an empty value; `Name;` sends it empty.
    static func append(name: String, value: String, to list: UnsafeMutablePointer<curl_slist>?) -> UnsafeMutablePointer<curl_slist>? {
        var name = name, value = value
        return name.withUTF8 { n in
            value.withUTF8 { v in
                let length = n.count + (v.isEmpty ? 1 : 2 + v.count)
                return withUnsafeTemporaryAllocation(of: CChar.self, capacity: length + 1) { line in
                    let bytes = UnsafeMutableRawBufferPointer(line)
                    bytes.copyMemory(from: UnsafeRawBufferPointer(n))
                    if v.isEmpty {
                        bytes[n.count] = UInt8(ascii: ";")
                    } else {
                        bytes[n.count] = UInt8(ascii: ":")
                        bytes[n.count + 1] = UInt8(ascii: " ")
                        UnsafeMutableRawBufferPointer(rebasing: bytes[(n.count + 2)...]).copyMemory(from: UnsafeRawBufferPointer(v))
                    }
                    bytes[length] = 0
                    return curl_slist_append(list, line.baseAddress)
                }
            }
        }
    }

    private func configureUpload(
        _ easy: UnsafeMutableRawPointer, userdata: UnsafeMutableRawPointer, length: Int64,
        check: (CURLcode, String) -> Void
    ) {
        // POST + CUSTOMREQUEST sends any method with a streamed body; a length of -1 makes
        // curl use chunked transfer coding.
        check(gh_easy_setopt_long(easy, CURLOPT_POST, 1), "post")
        check(gh_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, exchange.request.method), "method")
        check(gh_easy_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(length)), "body size")
        check(gh_easy_setopt_datacb(easy, CURLOPT_READFUNCTION, readCallback), "read callback")
        check(gh_easy_setopt_ptr(easy, CURLOPT_READDATA, userdata), "read data")
        if length == 0 { requestSentAt = .now }
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
