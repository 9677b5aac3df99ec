import CCurl
public import EventLoop

#if canImport(Glibc)
import Glibc
#endif

/// What an `UpstreamTransfer` tells the one who started it (a client connection). Every call
/// comes on the worker's thread, from inside a loop callback.
public protocol UpstreamTransferDelegate: AnyObject {
    /// The final response head arrived (1xx interim heads are skipped).
    func upstreamHead(_ transfer: UpstreamTransfer, _ head: UpstreamResponseHead)
    /// Response body bytes. Return false to refuse them for now: curl pauses the transfer and
    /// offers the *same* bytes again after `resumeReceiving()`. Never keep part of them.
    func upstreamBody(_ transfer: UpstreamTransfer, _ bytes: UnsafeRawBufferPointer) -> Bool
    /// curl can send request body bytes: copy at most `into.count` of them.
    func upstreamWantsBody(_ transfer: UpstreamTransfer, into: UnsafeMutableRawBufferPointer) -> UpstreamBodyRead
    /// The exchange ended: `nil` when the whole response arrived. The transfer is recycled
    /// right after this returns: drop every reference to it.
    func upstreamFinished(_ transfer: UpstreamTransfer, _ error: UpstreamError?)
}

/// An answer to `upstreamWantsBody`.
public enum UpstreamBodyRead {
    /// This many bytes were copied.
    case bytes(Int)
    /// The request body is complete.
    case end
    /// Nothing yet: curl stops asking until `resumeSending()`.
    case pause
    /// The client's body failed (cut short): abort the exchange.
    case abort
}

/// One proxied exchange on an `UpstreamMulti`: an easy handle, its header list and its two
/// timers (time to the response head, idle). Pooled by the multi and reused.
///
/// Lifetime: `begin` takes one retain that libcurl's callbacks rely on (they get `self` as an
/// unretained pointer); it is dropped in `end`, after `curl_multi_remove_handle`, so no callback
/// can ever see a freed transfer.
public final class UpstreamTransfer: LoopTimerHandler {
    /// Largest upstream response head accepted (status line and fields); past it, 502.
    static let maxResponseHeadBytes = 256 * 1024

    private unowned let multi: UpstreamMulti
    private let easy: UnsafeMutableRawPointer
    private weak var delegate: (any UpstreamTransferDelegate)?
    private var timer: LoopTimer!
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var parser = ResponseHeadParser()
    private var headerBytes = 0
    private var failure: UpstreamError?
    private var retained: Unmanaged<UpstreamTransfer>?
    private var inMulti = false

    private var headReceived = false
    private var bodyBytesSent: Int64 = 0
    private var declaredBodyLength: Int64?
    /// When the request was fully sent (the headers timeout runs from here); 0 while sending.
    private var requestSentAt: UInt64 = 0
    private var lastActivity: UInt64 = 0
    private var receivingPaused = false
    private var sendingPaused = false
    /// Inside one of curl's data callbacks, where `curl_multi_remove_handle` must not be called.
    private var inCurlCallback = false
    /// A final answer of 300 or more arrived while the upload was paused: curl (7.88) stops
    /// the upload but keeps the send pause, and would never report the transfer done. Sending
    /// is resumed from the next timer callback (never from inside curl's), which lets it end.
    private var resumeSendingDue = false

    init(multi: UpstreamMulti) {
        self.multi = multi
        guard let easy = curl_easy_init() else { fatalError("curl_easy_init failed (out of memory)") }
        self.easy = easy
        timer = LoopTimer(loop: multi.loop, handler: self)
    }

    /// Frees the easy handle; only for a transfer not in use (the pool's).
    func free() {
        curl_easy_cleanup(easy)
    }

    func begin(_ request: UpstreamRequest, delegate: any UpstreamTransferDelegate) {
        self.delegate = delegate
        parser = ResponseHeadParser()
        headerBytes = 0
        failure = nil
        headReceived = false
        bodyBytesSent = 0
        receivingPaused = false
        sendingPaused = false
        resumeSendingDue = false
        curl_easy_reset(easy)
        let me = Unmanaged.passRetained(self)
        retained = me
        let setup = CurlRequestSetup.apply(
            request, to: easy, configuration: multi.configuration, userdata: me.toOpaque(),
            callbacks: .init(header: transferHeaderCallback, write: transferWriteCallback, read: transferReadCallback))
        headerList = setup.headerList
        declaredBodyLength = setup.declaredBodyLength
        let now = Monotonic.milliseconds()
        lastActivity = now
        requestSentAt = setup.bodyless || setup.declaredBodyLength == 0 ? now : 0
        if let problem = setup.failure {
            failure = .unavailable(problem)
            // Reported from the next batch, never from inside `start` (the caller may not be
            // ready for its delegate to be called yet).
            timer.arm(milliseconds: 0)
            return
        }
        guard curl_multi_add_handle(multi.multi, easy) == CURLM_OK else {
            failure = .unavailable("curl_multi_add_handle failed")
            timer.arm(milliseconds: 0)
            return
        }
        inMulti = true
        armTimeout(now: now)
    }

    /// Resumes delivery after `upstreamBody` returned false. curl may deliver the held bytes
    /// from inside this call.
    public func resumeReceiving() {
        guard receivingPaused, inMulti else { return }
        receivingPaused = false
        curl_easy_pause(easy, sendingPaused ? Int32(CURLPAUSE_SEND) : GH_PAUSE_CONT)
    }

    /// Resumes sending after `upstreamWantsBody` answered `.pause`. curl may ask for bytes from
    /// inside this call.
    public func resumeSending() {
        guard sendingPaused, inMulti else { return }
        sendingPaused = false
        curl_easy_pause(easy, receivingPaused ? Int32(CURLPAUSE_RECV) : GH_PAUSE_CONT)
    }

    /// Abandons the exchange (the client went away): the delegate hears nothing more. The
    /// upstream connection is closed by curl if the exchange was mid-way. Called from inside a
    /// delegate call, the callback answers curl with an abort instead, and the transfer ends
    /// when curl reports it done.
    public func cancel() {
        delegate = nil
        failure = .cancelled
        if !inCurlCallback { end() }
    }

    // MARK: Completion

    func complete(_ code: CURLcode) {
        let error: UpstreamError?
        if let failure {
            error = failure
        } else if code == CURLE_OK {
            error = nil
        } else if code == CURLE_OPERATION_TIMEDOUT {
            error = headReceived ? .idleTimedOut : .headersTimedOut
        } else {
            error = .unavailable(String(cString: curl_easy_strerror(code)))
        }
        let delegate = self.delegate
        end()
        delegate?.upstreamFinished(self, error)
    }

    /// Out of the multi, timers off, the retain dropped, back in the pool.
    private func end() {
        guard retained != nil else { return }
        timer.disarm()
        if inMulti { curl_multi_remove_handle(multi.multi, easy) }
        inMulti = false
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
        delegate = nil
        multi.recycle(self)
        let retained = self.retained
        self.retained = nil
        retained?.release()
    }

    // MARK: Timeouts

    /// One loop timer serves both limits: time to the response head once the request is
    /// sent, and silence in either direction after that. Activity only stamps
    /// `lastActivity`; the timer re-arms itself for what is left when it fires, so a busy
    /// transfer costs no timer call per chunk.
    private func armTimeout(now: UInt64) {
        let configuration = multi.configuration
        var deadline = lastActivity + UInt64(configuration.idleTimeoutMilliseconds)
        if !headReceived, requestSentAt != 0 {
            deadline = min(deadline, requestSentAt + UInt64(configuration.headersTimeoutMilliseconds))
        }
        timer.arm(milliseconds: deadline > now ? Int(deadline - now) : 0)
    }

    public func timerFired(_ timer: LoopTimer) {
        guard retained != nil else { return }
        if failure != nil, !inMulti {
            complete(CURLE_OK)  // a request refused before curl: report it now
            return
        }
        if resumeSendingDue {
            resumeSendingDue = false
            resumeSending()
            guard retained != nil else { return }  // curl finished it from inside the call
        }
        let configuration = multi.configuration
        let now = Monotonic.milliseconds()
        if !headReceived, requestSentAt != 0, now >= requestSentAt + UInt64(configuration.headersTimeoutMilliseconds) {
            failure = .headersTimedOut
        } else if now >= lastActivity + UInt64(configuration.idleTimeoutMilliseconds) {
            failure = .idleTimedOut
        }
        if failure != nil {
            complete(CURLE_OPERATION_TIMEDOUT)
        } else {
            armTimeout(now: now)
        }
    }

    // MARK: curl's data callbacks (loop thread, from inside curl calls)

    fileprivate func onHeaderLine(_ line: UnsafeRawBufferPointer) -> Int {
        lastActivity = Monotonic.milliseconds()
        // Trailer fields arrive here after the body; they are not forwarded.
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
            if sendingPaused, head.status >= 300 {
                resumeSendingDue = true
                timer.arm(milliseconds: 0)
            } else {
                armTimeout(now: lastActivity)
            }
            inCurlCallback = true
            delegate?.upstreamHead(self, head)
            inCurlCallback = false
            if delegate == nil { return 0 }  // cancelled from the delegate
        case .malformed(let why):
            failure = .unavailable("malformed upstream response: \(why)")
            return 0
        }
        return line.count
    }

    fileprivate func onBody(_ bytes: UnsafeRawBufferPointer) -> Int {
        lastActivity = Monotonic.milliseconds()
        guard let delegate else { return 0 }  // cancelled: a short write aborts the transfer
        inCurlCallback = true
        let taken = delegate.upstreamBody(self, bytes)
        inCurlCallback = false
        if self.delegate == nil { return 0 }
        if taken { return bytes.count }
        receivingPaused = true
        return GH_WRITEFUNC_PAUSE
    }

    fileprivate func onRead(_ destination: UnsafeMutableRawBufferPointer) -> Int {
        var destination = destination
        if let declared = declaredBodyLength, declared - bodyBytesSent < Int64(destination.count) {
            // Never more than the declared length: curl 7.88 sends whatever the callback
            // gives, and bytes past the Content-Length would be the upstream's next request.
            destination = UnsafeMutableRawBufferPointer(rebasing: destination[..<Int(max(0, declared - bodyBytesSent))])
        }
        guard let delegate else { return GH_READFUNC_ABORT }
        inCurlCallback = true
        let answer = delegate.upstreamWantsBody(self, into: destination)
        inCurlCallback = false
        if self.delegate == nil { return GH_READFUNC_ABORT }
        switch answer {
        case .bytes(let n):
            lastActivity = Monotonic.milliseconds()
            bodyBytesSent += Int64(n)
            if bodyBytesSent == declaredBodyLength {
                requestSentAt = lastActivity
                armTimeout(now: lastActivity)
            }
            return n
        case .end:
            // A body shorter than its Content-Length must never look complete upstream: the
            // upstream would read the next request's bytes as this body (request smuggling).
            if let declared = declaredBodyLength, bodyBytesSent != declared {
                failure = .unavailable("request body ended before its Content-Length")
                return GH_READFUNC_ABORT
            }
            if requestSentAt == 0 {
                requestSentAt = Monotonic.milliseconds()
                armTimeout(now: requestSentAt)
            }
            return 0
        case .pause:
            sendingPaused = true
            return GH_READFUNC_PAUSE
        case .abort:
            return GH_READFUNC_ABORT
        }
    }
}

private func transferFrom(_ userdata: UnsafeMutableRawPointer?) -> UpstreamTransfer {
    Unmanaged<UpstreamTransfer>.fromOpaque(userdata!).takeUnretainedValue()
}

private let transferHeaderCallback: gh_data_callback = { buffer, size, count, userdata in
    transferFrom(userdata).onHeaderLine(UnsafeRawBufferPointer(start: buffer, count: size * count))
}

private let transferWriteCallback: gh_data_callback = { buffer, size, count, userdata in
    transferFrom(userdata).onBody(UnsafeRawBufferPointer(start: buffer, count: size * count))
}

private let transferReadCallback: gh_data_callback = { buffer, size, count, userdata in
    transferFrom(userdata).onRead(UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
}
