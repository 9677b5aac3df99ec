import EventLoop
import GatehouseAuth
import GatehouseUpstream
import HTTP1
import HTTPTypes

#if canImport(Glibc)
import Glibc
#endif

/// One client connection of the event-loop core, from accept to close, on its worker's thread.
///
/// Everything a request touches happens here as plain calls on one thread: bytes are read
/// (into the worker's shared read buffer), parsed by `HTTP1RequestParser`, admitted
/// (`Admission.classify`, the token verified with the keys in hand), rewritten
/// (`ForwardingRules.makeUpstreamRequest`) and started on the worker's `UpstreamMulti`; curl's
/// callbacks hand the response back through `UpstreamTransferDelegate`, and the bytes are
/// written once per batch of loop events (`flush`, called by the worker).
///
/// Memory per connection is bounded: no read buffer of its own while idle (leftover bytes of a
/// partial head or a pipelined request are kept in `pending`), at most `highWaterMark` of
/// request body waiting for curl (reading stops above it), and at most `highWaterMark` of
/// response waiting for the client (curl is paused above it, `CURL_WRITEFUNC_PAUSE`, and
/// resumed below `lowWaterMark`).
final class ClientConnection: IOReadinessHandler, UpstreamTransferDelegate, LoopTimerHandler {
    unowned let worker: Worker
    let id: Int
    let fd: Int32
    let peer: String?
    private var watcher: IOWatcher!
    private var timer: LoopTimer!
    private var parser: HTTP1RequestParser

    /// Unparsed bytes read earlier: a partial head, or requests pipelined behind the current one.
    private var pending: [UInt8] = []
    private var output: [UInt8] = []
    private var outputSent = 0
    /// Waiting in the worker's list of connections to flush after this batch.
    var flushScheduled = false
    /// The client sent end-of-stream; requests already read are still answered.
    private var inputEnded = false
    private var state = State.awaitingHead
    private var exchange: Exchange?
    /// The WebSocket handshake being forwarded, or the open tunnel.
    private var tunnel: WebSocketSplice?

    static let highWaterMark = 256 * 1024
    static let lowWaterMark = 64 * 1024

    enum State {
        /// Between requests (or inside a partial head): the header read timer runs.
        case awaitingHead
        /// A request is being served.
        case exchanging
        /// The answer was the last: once written, the write side is shut and input drained
        /// for a moment (a lingering close, so the client reads the answer, not a reset).
        case closingAfterOutput
        case lingering
        /// A WebSocket tunnel is open: bytes pass through `tunnel`.
        case tunnel
        case closed
    }

    /// One request and its answer.
    final class Exchange {
        var entry: AccessLogEntry
        let started: ContinuousClock.Instant
        let requestID: String
        let origin: String?
        let isHead: Bool
        let keepAlive: Bool
        let version: HTTP1Version
        /// A WebSocket handshake (RFC 6455 §4.1): forwarded over a socket of our own.
        var isWebSocket = false
        var transfer: UpstreamTransfer?
        /// Request body bytes read from the client, not yet handed to curl.
        var body: [UInt8] = []
        var bodySent = 0
        var bodyComplete = false
        var headSent = false
        var chunked = false
        var closeAfter = false
        var receivingPaused = false
        var sendingPaused = false
        /// Parked: waiting for a key fetch to verify the token, or for a session lookup.
        var parked: ParkedRequest?

        init(requestID: String, entry: AccessLogEntry, head: HTTP1RequestHead?, origin: String?) {
            self.requestID = requestID
            self.entry = entry
            self.started = .now
            self.origin = origin
            self.isHead = head.map { $0.methodRange.count == 4 && $0.method == "HEAD" } ?? false
            self.keepAlive = head?.keepAlive ?? false
            self.version = head?.version ?? .http11
        }

        var bodyWaiting: Int { body.count - bodySent }
    }

    /// What a parked request needs to go on once its credential's verdict arrives.
    struct ParkedRequest {
        var pending: Admission.PendingVerification
        var method: String
        var fields: HTTPFields
        var authority: String
        var body: UpstreamRequest.Body
        var target: String
        var expectsContinue: Bool
    }

    init(worker: Worker, id: Int, fd: Int32, peer: String?) {
        self.worker = worker
        self.id = id
        self.fd = fd
        self.peer = peer
        parser = HTTP1RequestParser(limits: worker.shared.parserLimits)
        watcher = IOWatcher(loop: worker.loop, fd: fd, handler: self)
        timer = LoopTimer(loop: worker.loop, handler: self)
        watcher.setRead(true)
        timer.arm(milliseconds: worker.shared.headerReadTimeoutMilliseconds)
    }

    // MARK: Events

    func ioReady(_ watcher: IOWatcher, readable: Bool, writable: Bool) {
        if writable { flush() }
        guard readable else { return }
        switch state {
        case .tunnel: tunnel?.clientReadable()
        case .closed: break
        default: readAvailable()
        }
    }

    func timerFired(_ timer: LoopTimer) {
        switch state {
        case .awaitingHead, .lingering, .closingAfterOutput: close()
        case .exchanging:
            // A request body that stopped arriving (`GATEHOUSE_HEADER_READ_TIMEOUT` is also the
            // longest pause inside a body): the exchange is cut, so FastAPI never sees a short
            // body as complete. Not while reading is paused because FastAPI is slow to read.
            if let exchange, !exchange.bodyComplete, watcher.wantsRead { close() }
        case .tunnel, .closed: break
        }
    }

    private func readAvailable() {
        let buffer = worker.readBuffer
        let n = read(fd, buffer.baseAddress, buffer.count)
        if n == 0 {
            inputEnded = true
            watcher.setRead(false)
            if state == .lingering { close(); return }
            if state == .awaitingHead {
                // A half-close after the last request: its answer is still written whole.
                if outputWaiting { state = .closingAfterOutput } else { close() }
                return
            }
            if let exchange, !exchange.bodyComplete {
                // Cut mid-body: the upstream must never see a short body as complete.
                exchange.transfer?.resumeSending()
                if exchange.transfer == nil { close() }
            }
            return
        }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            close()
            return
        }
        if state == .lingering { return }  // discarded
        if pending.isEmpty {
            let used = consume(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<n]))
            if used < n, state != .closed { pending.append(contentsOf: UnsafeRawBufferPointer(buffer)[used..<n]) }
        } else {
            pending.append(contentsOf: UnsafeRawBufferPointer(buffer)[0..<n])
            consumePending()
        }
    }

    private func consumePending() {
        guard !pending.isEmpty else { return }
        let used = pending.withUnsafeBytes { consume($0) }
        if state == .closed { return }
        if used == pending.count { pending.removeAll(keepingCapacity: false) } else { pending.removeFirst(used) }
    }

    /// Parses as much of `bytes` as the connection can act on now; returns the bytes used.
    private func consume(_ bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while state == .awaitingHead || state == .exchanging {
            if let exchange {
                // One request at a time: pipelined bytes wait for this answer to end, in the
                // kernel's buffer rather than ours (reading resumes in `finishExchange`).
                if exchange.bodyComplete {
                    watcher.setRead(false)
                    break
                }
                if exchange.bodyWaiting >= Self.highWaterMark {
                    watcher.setRead(false)
                    break
                }
            }
            let step = parser.parse(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            switch step.event {
            case .needMore:
                offset += step.consumed
                return offset
            case .head(let head):
                offset += step.consumed
                begin(head)
            case .body(let range):
                timer.arm(milliseconds: worker.shared.headerReadTimeoutMilliseconds)
                exchange?.body.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[(offset + range.lowerBound)..<(offset + range.upperBound)]))
                offset += step.consumed
                if let exchange, exchange.sendingPaused { resumeSending(exchange) }
            case .end:
                offset += step.consumed
                if let exchange {
                    if !exchange.bodyComplete { timer.disarm() }
                    exchange.bodyComplete = true
                    if exchange.sendingPaused { resumeSending(exchange) }
                }
            case .error(let error):
                offset += step.consumed
                refuseUnparsable(error)
                return offset
            }
        }
        return offset
    }

    // MARK: Requests

    private func begin(_ head: HTTP1RequestHead) {
        if head.hasBody {
            timer.arm(milliseconds: worker.shared.headerReadTimeoutMilliseconds)
        } else {
            timer.disarm()
        }
        state = .exchanging
        let shared = worker.shared
        let proxy = shared.proxy
        let requestIDIndex = head.firstIndex(ofLowercasedName: "x-request-id")
        let requestID = RequestID.accept(requestIDIndex.map { head.value(at: $0) }) ?? worker.requestIDs.next()
        let target = head.target
        var entry = AccessLogEntry(method: head.method, path: LoggedPath.redacting(target), requestID: requestID)
        entry.routeClass = proxy.defaultRouteClass
        var fields = HTTPFields()
        fields.reserveCapacity(head.fieldCount)
        var authority = ""
        for index in 0..<head.fieldCount {
            let name = head.name(at: index)
            // RFC 9112 §3.2: Host is the request's authority (the parser checked there is one).
            if head.nameEquals(at: index, lowercasedName: "host") {
                authority = head.value(at: index)
                continue
            }
            guard let fieldName = HTTPField.Name(name) else { continue }
            fields.append(HTTPField(name: fieldName, value: head.value(at: index)))
        }
        let origin = fields[.origin]
        let exchange = Exchange(requestID: requestID, entry: entry, head: head, origin: origin)
        self.exchange = exchange
        shared.metrics.inFlight.increment()

        // RFC 6455 §4.1: a handshake is a GET without content; one announcing a body is served
        // as a plain request (its `Upgrade` is hop-by-hop and dropped).
        exchange.isWebSocket =
            head.isUpgrade && fields[.upgrade] != nil && !fields.announceContent
            && WebSocketHandshake.isUpgradeRequest(
                method: head.method, upgrade: fields[values: .upgrade], connection: fields[values: .connection])

        let found = proxy.tokenSources.find(in: fields, target: target)
        let method = head.method
        var body = UpstreamRequest.Body.none
        switch head.framing {
        case .none: break
        case .contentLength(let length): body = .length(length)
        case .chunked: body = .streamed
        }
        let step = Admission.classify(
            method: method, target: target, headers: fields, token: found.token,
            policy: proxy.configuration.routePolicy, cors: proxy.configuration.cors, sessions: proxy.configuration.sessions,
            verifies: shared.authenticator != nil)
        switch step {
        case .decided(let admission):
            admit(admission, method: method, fields: fields, authority: authority, body: body, target: found.target,
                  expectsContinue: head.expectsContinue)
        case .verify(let pending):
            let parked = ParkedRequest(
                pending: pending, method: method, fields: fields, authority: authority, body: body,
                target: found.target, expectsContinue: head.expectsContinue)
            switch pending.credential {
            case .jwt(let token): verify(token, parked)
            case .session(let credential): verify(credential, parked)
            }
        }
    }

    /// A JWT's verdict from the keys in hand, or the request parked for a key fetch.
    private func verify(_ token: Substring, _ parked: ParkedRequest) {
        guard let exchange else { return }
        let proxy = worker.shared.proxy
        let authenticator = worker.shared.authenticator!
        let auth = worker.auth!
        var outcome = authenticator.authenticateWithKeysInHand(token: token, state: auth)
        if outcome == nil, auth.refresh() {
            // A fetch ended whose announcement this worker has not read yet: its keys may
            // know the kid.
            outcome = authenticator.authenticateWithKeysInHand(token: token, state: auth)
        }
        if outcome == nil {
            if let generation = authenticator.jwks.requestFetchForUnknownKid() {
                // An unknown kid: only a key fetch can decide. The request waits, parked on
                // this worker, reading stopped, until the control loop's fetch ends.
                park(parked, in: exchange)
                worker.parkUntilKeysFetched(connection: id, generation: generation)
                return
            }
            // The cooldown forbids another fetch so soon: the kid is unknown.
            outcome = .rejected(.unknownKey)
        }
        admit(parked, proxy.verdict(for: outcome!))
    }

    /// A session's verdict from the session cache, or the request parked for a lookup (its
    /// own, or one already running for the same credential on any worker).
    private func verify(_ credential: SessionCredential, _ parked: ParkedRequest) {
        guard let exchange else { return }
        // Admission yields a session credential only when sessions are configured.
        guard let sessions = worker.shared.sessions else { preconditionFailure("a session credential without GATEHOUSE_SESSIONS") }
        let metrics = worker.shared.metrics
        let digest = credential.digest
        switch sessions.cache.begin(digest, now: Authenticator.now(), waiter: .init(worker: worker.index, connection: id)) {
        case .decided(let verdict, let cached):
            if !cached { metrics.recordSessionLookup(verdict) }
            admit(parked, worker.shared.proxy.verdict(for: verdict, cached: cached))
        case .lookUp:
            metrics.sessionCacheMisses.increment()
            park(parked, in: exchange)
            worker.lookUpSession(credential, digest: digest)
        case .joined:
            metrics.sessionCacheMisses.increment()
            park(parked, in: exchange)
        }
    }

    /// The request waits on this worker, reading stopped, for a verdict that needs I/O.
    private func park(_ parked: ParkedRequest, in exchange: Exchange) {
        watcher.setRead(false)
        exchange.parked = parked
    }

    /// The key fetch a parked request waited for has ended: its token is decided now.
    func keysFetched() {
        guard let exchange, let parked = exchange.parked, state == .exchanging, case .jwt(let token) = parked.pending.credential,
            let authenticator = worker.shared.authenticator, let auth = worker.auth
        else { return }
        exchange.parked = nil
        let outcome = authenticator.authenticateAfterKeyFetch(token: token, state: auth)
        watcher.setRead(!inputEnded)
        admit(parked, worker.shared.proxy.verdict(for: outcome))
        consumePending()
    }

    /// The session lookup a parked request waited for has ended.
    func sessionDecided(_ verdict: SessionVerdict) {
        guard let exchange, let parked = exchange.parked, state == .exchanging, case .session = parked.pending.credential
        else { return }
        exchange.parked = nil
        watcher.setRead(!inputEnded)
        admit(parked, worker.shared.proxy.verdict(for: verdict, cached: false))
        consumePending()
    }

    private func admit(_ parked: ParkedRequest, _ verdict: Admission.Verdict) {
        admit(
            parked.pending.finish(verdict), method: parked.method, fields: parked.fields, authority: parked.authority,
            body: parked.body, target: parked.target, expectsContinue: parked.expectsContinue)
    }

    private func admit(
        _ admission: Admission, method: String, fields: HTTPFields, authority: String, body: UpstreamRequest.Body,
        target: String, expectsContinue: Bool
    ) {
        guard let exchange else { return }
        let proxy = worker.shared.proxy
        proxy.record(admission, in: &exchange.entry)
        switch admission.outcome {
        case .refuse(let response, _):
            // A rejected preflight gets no CORS permission: that is what makes the browser stop.
            exchange.entry.outcome = "rejected"
            send(response, close: fields.announceContent, cors: admission.routeClass != "preflight")
        case .forward(let identity, _):
            let request = proxy.makeUpstreamRequest(
                method: method, fields: fields, authority: authority, body: body, target: target, identity: identity,
                requestID: exchange.requestID, peer: peer, signer: worker.signer)
            if exchange.isWebSocket {
                openTunnel(request)
                return
            }
            if expectsContinue, body != .none {
                queue(Self.continueLine)
            }
            exchange.transfer = worker.multi.start(request, delegate: self)
        }
    }

    static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// Answers with one of gatehouse's own responses and ends the exchange. `close`: the
    /// connection ends after it (an unread body, a broken stream).
    private func send(_ response: ErrorResponse, close: Bool, cors: Bool = true) {
        guard let exchange else { return }
        let origin = cors ? exchange.origin : nil
        let head = response.head(
            requestID: exchange.requestID, closeConnection: close,
            cors: worker.shared.proxy.configuration.cors.responseFields(origin: origin))
        var bytes = ResponseHeadBytes.serialize(head)
        // RFC 9110 §9.3.2: the answer to HEAD has the GET answer's fields (Content-Length
        // included) and no content; a body here would be read as the start of the next answer.
        let body = exchange.isHead ? [] : response.body
        bytes.append(contentsOf: body)
        exchange.entry.status = response.status.code
        exchange.entry.bytes = body.count
        exchange.closeAfter = exchange.closeAfter || close
        if let transfer = exchange.transfer {
            exchange.transfer = nil
            transfer.cancel()
        }
        queue(bytes)
        finishExchange()
    }

    /// A request the parser refused: answered in the JSON error shape, then closed (RFC 9112
    /// §6.3: after a framing error the stream cannot be read further).
    private func refuseUnparsable(_ error: HTTP1ParseError) {
        let response =
            error.status == 431
            ? ErrorResponse.headersTooLarge
            : ErrorResponse(status: .init(code: error.status), detail: error.detail)
        if exchange == nil {
            let entry = AccessLogEntry(method: "-", path: "-", requestID: worker.requestIDs.next())
            exchange = Exchange(requestID: entry.requestID, entry: entry, head: nil, origin: nil)
            worker.shared.metrics.inFlight.increment()
            exchange?.entry.routeClass = worker.shared.proxy.defaultRouteClass
            state = .exchanging
        }
        exchange?.entry.outcome = "rejected"
        if exchange?.headSent == true {
            close()  // mid-answer: the client sees a cut, never a second head
            return
        }
        send(response, close: true)
    }

    // MARK: WebSocket tunnels

    /// Forwards an admitted handshake to FastAPI over a socket of our own; the client is not
    /// read meanwhile (a client sends no frame before the 101).
    private func openTunnel(_ request: UpstreamRequest) {
        let configuration = worker.shared.proxy.configuration
        watcher.setRead(false)
        guard !configuration.upstream.isHTTPS else {
            exchange?.entry.outcome = "upstream_unavailable"
            send(ErrorResponse(status: .badGateway, detail: "WebSocket tunnels need an http:// upstream"), close: true)
            return
        }
        let handshake = WebSocketHandshake.upstreamRequest(target: request.target, headers: request.headers)
        let upstream = worker.shared.upstream
        tunnel = WebSocketSplice(
            connection: self, loop: worker.loop, address: configuration.upstream.socketAddress,
            handshake: handshake,
            timeouts: (upstream.connectTimeoutMilliseconds, upstream.headersTimeoutMilliseconds, upstream.idleTimeoutMilliseconds))
        if tunnel == nil { tunnelRefused(.failed(timedOut: false)) }
    }

    /// FastAPI's 101: the client gets it (with FastAPI's own fields), then the bytes pass
    /// through until either side ends.
    func tunnelOpened(_ head: UpstreamResponseHead, rest: [UInt8]) {
        guard let exchange else { return }
        exchange.entry.status = head.status
        exchange.entry.upstreamDuration = ContinuousClock.now - exchange.started
        exchange.entry.bytes = rest.count
        let response = worker.shared.proxy.responseHead(from: head, requestID: exchange.requestID)
        queue(WebSocketHandshake.switchingProtocols(response.headerFields))
        if !rest.isEmpty { queue(rest) }
        state = .tunnel
        if !pending.isEmpty {
            let early = pending
            pending = []
            tunnel?.forwardEarly(early)
        } else if !inputEnded {
            watcher.setRead(true)
        }
    }

    /// No tunnel: gatehouse's 502/504, or FastAPI's refusal relayed; the connection closes after.
    func tunnelRefused(_ refusal: WebSocketSplice.Refusal) {
        tunnel = nil
        guard let exchange else { return }
        switch refusal {
        case .failed(let timedOut):
            exchange.entry.outcome = timedOut ? "upstream_timeout" : "upstream_unavailable"
            send(timedOut ? .gatewayTimeout : .badGateway, close: true)
        case .refused(let head, let body):
            exchange.entry.status = head.status
            exchange.entry.upstreamDuration = ContinuousClock.now - exchange.started
            exchange.entry.outcome = "upgrade_refused"
            exchange.entry.bytes = body.count
            var response = worker.shared.proxy.responseHead(from: head, requestID: exchange.requestID)
            response.headerFields[.contentLength] = String(body.count)
            response.headerFields[.connection] = "close"
            exchange.closeAfter = true
            queue(ResponseHeadBytes.serialize(response) + body)
            finishExchange()
        }
    }

    /// The tunnel is over (either side ended, an error, the idle timeout): logged, then closed.
    func tunnelEnded() {
        if let exchange, let tunnel {
            exchange.entry.bytes += tunnel.bytesFromUpstream
            account(exchange)
            self.exchange = nil
        }
        close()
    }

    func sendToClient(_ bytes: [UInt8]) {
        if bytes.isEmpty { scheduleFlush() } else { queue(bytes) }
    }

    func stopReading() { watcher.setRead(false) }

    func resumeReading() {
        if !inputEnded, state == .tunnel { watcher.setRead(true) }
    }

    /// Ends the client's input side of the conversation: FastAPI closed its end of the tunnel.
    func shutdownOutput() { shutdown(fd, Int32(SHUT_WR)) }

    // MARK: Upstream (curl's callbacks, through UpstreamTransfer)

    func upstreamHead(_ transfer: UpstreamTransfer, _ head: UpstreamResponseHead) {
        guard let exchange else { return }
        exchange.entry.status = head.status
        exchange.entry.upstreamDuration = ContinuousClock.now - exchange.started
        let bodyless = exchange.isHead || head.status == 204 || head.status == 304 || (100..<200).contains(head.status)
        if !exchange.keepAlive || worker.draining { exchange.closeAfter = true }
        let (bytes, framing) = ResponseHeadBytes.forwarded(
            head, requestID: exchange.requestID, bodyless: bodyless, http10: exchange.version == .http10,
            close: exchange.closeAfter)
        switch framing {
        case .asSent: break
        case .chunked: exchange.chunked = true
        case .untilClose: exchange.closeAfter = true  // HTTP/1.0: the end of the body is the end of the connection
        }
        exchange.headSent = true
        queue(bytes)
    }

    func upstreamBody(_ transfer: UpstreamTransfer, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let exchange, state != .closed else { return true }
        if output.count - outputSent >= Self.highWaterMark {
            // curl keeps these bytes and offers them again after `resumeReceiving`, which the
            // flush at the end of this batch (or a writable socket later) calls once the
            // queue drains. Not flushed from here: a resume inside curl's own callback, before
            // curl knows of the pause, would be lost.
            exchange.receivingPaused = true
            scheduleFlush()
            return false
        }
        exchange.entry.bytes += bytes.count
        if exchange.chunked {
            ResponseHeadBytes.appendChunkSize(bytes.count, to: &output)
            output.append(contentsOf: bytes)
            output.append(contentsOf: [0x0D, 0x0A])
        } else {
            output.append(contentsOf: bytes)
        }
        scheduleFlush()
        return true
    }

    func upstreamWantsBody(_ transfer: UpstreamTransfer, into destination: UnsafeMutableRawBufferPointer) -> UpstreamBodyRead {
        guard let exchange else { return .abort }
        let waiting = exchange.bodyWaiting
        if waiting == 0 {
            if exchange.bodyComplete { return .end }
            if inputEnded { return .abort }  // cut mid-body
            exchange.sendingPaused = true
            if !watcher.wantsRead, state == .exchanging { watcher.setRead(true) }
            return .pause
        }
        let n = min(waiting, destination.count)
        exchange.body.withUnsafeBytes { source in
            destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[exchange.bodySent..<(exchange.bodySent + n)]))
        }
        exchange.bodySent += n
        if exchange.bodySent >= 64 * 1024, exchange.bodySent * 2 >= exchange.body.count, exchange.bodySent < exchange.body.count {
            // Bytes already sent are dropped as they pile up, so the buffer never holds more
            // than the high-water mark of unsent bytes plus what has not been compacted yet.
            exchange.body.removeFirst(exchange.bodySent)
            exchange.bodySent = 0
        }
        if exchange.bodySent == exchange.body.count {
            exchange.body.removeAll(keepingCapacity: exchange.body.capacity <= Self.highWaterMark)
            exchange.bodySent = 0
            // Room again: read more of the body (and parse what was held back).
            if !watcher.wantsRead, !inputEnded, !exchange.bodyComplete, state == .exchanging { watcher.setRead(true) }
            if !pending.isEmpty { worker.afterBatch(self) }
        }
        return .bytes(n)
    }

    func upstreamFinished(_ transfer: UpstreamTransfer, _ error: UpstreamError?) {
        guard let exchange else { return }
        exchange.transfer = nil
        if let error {
            exchange.entry.outcome = ForwardingRules.reason(for: error)
            if exchange.headSent {
                close()  // a cut body must never look complete: no terminating chunk
                return
            }
            let response = ForwardingRules.errorResponse(for: error)
            send(response, close: !exchange.bodyComplete)
            return
        }
        if exchange.chunked { output.append(contentsOf: ResponseHeadBytes.lastChunk) }
        // The upstream answered before reading the whole body: the rest is still on the wire.
        if !exchange.bodyComplete { exchange.closeAfter = true }
        finishExchange()
    }

    private func resumeSending(_ exchange: Exchange) {
        exchange.sendingPaused = false
        exchange.transfer?.resumeSending()
    }

    // MARK: End of an exchange

    /// The access log line and the request metrics of an exchange that ended (either way).
    private func account(_ exchange: Exchange) {
        let shared = worker.shared
        shared.metrics.inFlight.decrement()
        exchange.entry.duration = ContinuousClock.now - exchange.started
        shared.metrics.recordRequest(
            routeClass: exchange.entry.routeClass ?? shared.proxy.defaultRouteClass, status: exchange.entry.status,
            duration: exchange.entry.duration)
        if let upstream = exchange.entry.upstreamDuration { shared.metrics.upstreamDuration.record(upstream) }
        worker.log(exchange.entry)
    }

    private func finishExchange() {
        guard let exchange else { return }
        let shared = worker.shared
        account(exchange)
        self.exchange = nil
        scheduleFlush()
        if exchange.closeAfter || worker.draining {
            state = .closingAfterOutput
            watcher.setRead(false)
            timer.arm(milliseconds: shared.upstream.idleTimeoutMilliseconds)
            return
        }
        state = .awaitingHead
        // The keep-alive idle time starts once the answer is written (`flush`); until then a
        // client that stops reading gets the idle timeout.
        timer.arm(milliseconds: shared.headerReadTimeoutMilliseconds)
        if inputEnded, pending.isEmpty {
            state = .closingAfterOutput
            timer.arm(milliseconds: shared.upstream.idleTimeoutMilliseconds)
            return
        }
        watcher.setRead(!inputEnded)
        // Pipelined requests already read are served next (after this batch, so the answer
        // just queued is written first).
        if !pending.isEmpty { worker.afterBatch(self) }
    }

    /// Runs what was held back (pipelined requests), from the worker after a batch.
    func continueAfterBatch() {
        if state == .awaitingHead || state == .exchanging { consumePending() }
    }

    // MARK: Output

    private func queue(_ bytes: [UInt8]) {
        if output.isEmpty { output = bytes } else { output.append(contentsOf: bytes) }
        scheduleFlush()
    }

    private func scheduleFlush() {
        if !flushScheduled {
            flushScheduled = true
            worker.scheduleFlush(self)
        }
    }

    /// Writes what is queued; called once per batch, and when the socket becomes writable.
    func flush() {
        flushScheduled = false
        guard state != .closed else { return }
        let before = outputSent
        switch SocketWrite.send(fd, output, from: &outputSent) {
        case .done: break
        case .wouldBlock:
            watcher.setWrite(true)
            // Between requests (or closing), a client that stops reading its answer is given
            // the idle timeout, counted from the last byte it took.
            if outputSent > before || !timer.isArmed, state == .awaitingHead || state == .closingAfterOutput {
                timer.arm(milliseconds: worker.shared.upstream.idleTimeoutMilliseconds)
            }
            return
        case .failed:
            close()  // the client is gone
            return
        }
        output.removeAll(keepingCapacity: output.count <= 64 * 1024)
        outputSent = 0
        watcher.setWrite(false)
        // The answer is out: the keep-alive idle time starts now, not when it was queued.
        if state == .awaitingHead { timer.arm(milliseconds: worker.shared.headerReadTimeoutMilliseconds) }
        if state == .tunnel {
            tunnel?.clientDrained()
            return
        }
        if let exchange, exchange.receivingPaused {
            exchange.receivingPaused = false
            exchange.transfer?.resumeReceiving()
        }
        if state == .closingAfterOutput { lingeringClose() }
    }

    /// Shuts the write side so the client reads the whole answer and then end-of-stream, and
    /// reads (discarding) for up to two seconds so an unread request body does not turn the
    /// close into a reset that destroys the answer in flight.
    private func lingeringClose() {
        state = .lingering
        shutdown(fd, Int32(SHUT_WR))
        if inputEnded {
            close()
            return
        }
        watcher.setRead(true)
        timer.arm(milliseconds: 2000)
    }

    func close() {
        guard state != .closed else { return }
        state = .closed
        if let exchange {
            exchange.transfer?.cancel()
            exchange.transfer = nil
            if exchange.entry.outcome == nil { exchange.entry.outcome = "client_closed" }
            account(exchange)
            self.exchange = nil
        }
        tunnel?.closeUpstream()
        tunnel = nil
        watcher.cancel()
        timer.disarm()
        // Nothing queued may outlive the descriptor: its number is free the moment it is closed,
        // and curl or the listener may get it again in this very batch (a flush still scheduled
        // would write this connection's bytes into that socket).
        flushScheduled = false
        output = []
        outputSent = 0
        pending = []
        Glibc.close(fd)
        worker.connectionClosed(self)
    }

    /// Idle between requests, with nothing left to write: safe to close for shutdown.
    var isIdle: Bool { state == .awaitingHead && exchange == nil && pending.isEmpty && outputSent == output.count }

    /// Bytes queued for the client and not yet written.
    private var outputWaiting: Bool { outputSent < output.count }
}
