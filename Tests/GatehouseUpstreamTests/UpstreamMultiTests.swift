import EventLoop
import Glibc
import Testing

@testable import GatehouseUpstream

/// The event-loop-driven client (`UpstreamMulti`, `UpstreamTransfer`) against a real HTTP/1.1
/// server on 127.0.0.1 (`TestServer`, blocking sockets on its own threads), with the loop run
/// on the test's own thread: curl's sockets and timer go through libevent, and every delegate
/// call comes from inside the loop.
@Suite(.timeLimit(.minutes(1))) struct UpstreamMultiTests {
    /// Collects what one transfer reports; stops the loop when all expected transfers ended.
    final class Recorder: UpstreamTransferDelegate, LoopTimerHandler {
        let loop: EventLoop
        var heads: [UpstreamResponseHead] = []
        var body: [UInt8] = []
        var finished: [UpstreamError?] = []
        var expectedFinishes: Int
        /// Request body to send, in pieces of at most `pieceSize`.
        var upload: [UInt8] = []
        var uploaded = 0
        var pieceSize = Int.max
        /// Upload offsets at which to answer `.pause` once each (in order; an offset may repeat),
        /// as a client connection does when it has no body bytes yet. With `resumeAfterPause`,
        /// `resumeSending()` follows from a timer; without, sending stays paused.
        var pauses: [Int] = []
        var resumeAfterPause = true
        var pausesAnswered = 0
        /// Calls of `upstreamWantsBody` after the response head arrived.
        var bodyAskedAfterHead = 0
        /// Refuse the first `refusals` body deliveries (each makes curl pause), resuming from a timer.
        var refusals = 0
        /// Refuse every `refuseEvery`-th delivery (0: never), resuming from a timer.
        var refuseEvery = 0
        var deliveries = 0
        var offeredTwice = 0
        var lastRefused: [UInt8] = []
        var cancelOnHead = false
        /// Resume sending (from a timer) once the response head arrived.
        var resumeSendingOnHead = false
        var transfer: UpstreamTransfer?
        var resumeTimer: LoopTimer!
        var sendTimer: LoopTimer!
        var deadline: LoopTimer!

        init(loop: EventLoop, expectedFinishes: Int = 1) {
            self.loop = loop
            self.expectedFinishes = expectedFinishes
            resumeTimer = LoopTimer(loop: loop, handler: self)
            sendTimer = LoopTimer(loop: loop, handler: self)
            deadline = LoopTimer(loop: loop, handler: self)
            deadline.arm(milliseconds: 10_000)
        }

        /// Exactly one finish, without an error.
        var succeeded: Bool { finished.count == 1 && finished[0] == nil }

        func upstreamHead(_ transfer: UpstreamTransfer, _ head: UpstreamResponseHead) {
            heads.append(head)
            if resumeSendingOnHead {
                self.transfer = transfer
                sendTimer.arm(milliseconds: 5)
            }
            if cancelOnHead {
                transfer.cancel()
                resumeTimer.arm(milliseconds: 50)  // give a wrongly delivered finish a chance to show
            }
        }

        func upstreamBody(_ transfer: UpstreamTransfer, _ bytes: UnsafeRawBufferPointer) -> Bool {
            if !lastRefused.isEmpty, Array(bytes.prefix(lastRefused.count)) == lastRefused { offeredTwice += 1 }
            let wasRefused = !lastRefused.isEmpty
            lastRefused = []
            deliveries += 1
            if refusals > 0 || (refuseEvery > 0 && !wasRefused && deliveries % refuseEvery == 0) {
                if refusals > 0 { refusals -= 1 }
                lastRefused = Array(bytes)
                self.transfer = transfer
                resumeTimer.arm(milliseconds: 5)
                return false
            }
            body += bytes
            return true
        }

        func upstreamWantsBody(_ transfer: UpstreamTransfer, into: UnsafeMutableRawBufferPointer) -> UpstreamBodyRead {
            if !heads.isEmpty { bodyAskedAfterHead += 1 }
            if let next = pauses.first, next == uploaded {
                pauses.removeFirst()
                pausesAnswered += 1
                self.transfer = transfer
                if resumeAfterPause { sendTimer.arm(milliseconds: 5) }
                return .pause
            }
            if uploaded == upload.count { return .end }
            var n = min(into.count, pieceSize, upload.count - uploaded)
            if let next = pauses.first { n = min(n, next - uploaded) }
            upload.withUnsafeBytes { source in
                into.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[uploaded..<(uploaded + n)]))
            }
            uploaded += n
            return .bytes(n)
        }

        func upstreamFinished(_ transfer: UpstreamTransfer, _ error: UpstreamError?) {
            finished.append(error)
            if finished.count == expectedFinishes { loop.stop() }
        }

        func timerFired(_ timer: LoopTimer) {
            if timer === deadline {
                loop.stop()
            } else if timer === sendTimer {
                transfer?.resumeSending()
            } else if cancelOnHead {
                loop.stop()
            } else {
                transfer?.resumeReceiving()
            }
        }
    }

    func request(
        _ origin: String, _ target: String, method: String = "GET", body: UpstreamRequest.Body = .none,
        headers: [(name: String, value: String)] = [("Host", "h"), ("X-Probe", "p")]
    ) -> UpstreamRequest {
        UpstreamRequest(origin: origin, target: target, method: method, headers: headers, body: body)
    }

    func run(_ loop: EventLoop, _ multi: UpstreamMulti) {
        loop.batchEnded = { multi.batchEnded() }
        loop.run()
    }

    /// Runs the loop `milliseconds` more, so a second (wrong) finish or a late callback shows.
    func linger(_ loop: EventLoop, _ multi: UpstreamMulti, milliseconds: Int = 200) {
        let stopper = LoopStopper(loop: loop, milliseconds: milliseconds)
        run(loop, multi)
        stopper.cancel()
    }

    @Test func aResponseArrivesWholeThroughTheLoop() throws {
        try TestServer.with { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            _ = multi.start(request(server.origin, "/a/b?x=1%2F"), delegate: recorder)
            run(loop, multi)
            #expect(recorder.finished.count == 1)
            #expect(recorder.succeeded, "\(recorder.finished)")
            #expect(recorder.heads.map(\.status) == [201])
            #expect(recorder.heads.first?.headers.filter { $0.name == "Set-Cookie" }.map(\.value) == ["a=1", "b=2"])
            #expect(String(decoding: recorder.body, as: UTF8.self) == "GET /a/b?x=1%2F p ")
            #expect(multi.activeTransfers == 0)
            #expect(server.requests.count == 1)
        }
    }

    /// Ported from `UpstreamClientTests.completionCarriesTheWholeResponse`: each exchange on a
    /// reused connection arrives whole and carries its own request's fields.
    @Test func eachExchangeOnAReusedConnectionArrivesWhole() throws {
        try TestServer.with { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            for round in 1...3 {
                let recorder = Recorder(loop: loop)
                _ = multi.start(
                    request(server.origin, "/items/\(round)?q=%2F", headers: [("X-Probe", "round-\(round)")]), delegate: recorder)
                run(loop, multi)
                #expect(recorder.succeeded, "round \(round): \(recorder.finished)")
                #expect(recorder.heads.map(\.status) == [201])
                #expect(recorder.heads.first?.headers.filter { $0.name == "Set-Cookie" }.map(\.value) == ["a=1", "b=2"])
                #expect(String(decoding: recorder.body, as: UTF8.self) == "GET /items/\(round)?q=%2F round-\(round) ")
            }
            #expect(server.requests.map(\.target) == ["/items/1?q=%2F", "/items/2?q=%2F", "/items/3?q=%2F"])
            #expect(server.connections == 1, "the idle connection is kept and reused")
            #expect(multi.activeTransfers == 0)
        }
    }

    /// libcurl closes a pooled connection the server has closed only when a new transfer
    /// starts; an idle multi closes its pool itself (no CLOSE-WAIT sockets after a burst), and
    /// the next request simply opens a new connection.
    @Test func anIdleMultiClosesItsPooledConnections() throws {
        try TestServer.with { server in
            let loop = try EventLoop()
            var configuration = UpstreamClientConfiguration()
            configuration.idleSweepMilliseconds = 150
            let multi = UpstreamMulti(loop: loop, configuration: configuration)
            let first = Recorder(loop: loop)
            _ = multi.start(request(server.origin, "/one"), delegate: first)
            run(loop, multi)
            #expect(first.succeeded, "\(first.finished)")
            #expect(multi.sweeps == 0)
            linger(loop, multi, milliseconds: 400)
            #expect(multi.sweeps == 1, "the pool was closed once the multi had been idle")
            linger(loop, multi, milliseconds: 300)
            #expect(multi.sweeps == 1, "nothing more to close")
            let second = Recorder(loop: loop)
            _ = multi.start(request(server.origin, "/two"), delegate: second)
            run(loop, multi)
            #expect(second.succeeded, "\(second.finished)")
            #expect(String(decoding: second.body, as: UTF8.self) == "GET /two p ")
            #expect(server.connections == 2, "the second request needed a new connection")
        }
    }

    @Test func concurrentTransfersAllComplete() throws {
        try TestServer.with { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorders = (0..<20).map { _ in Recorder(loop: loop) }
            let counter = Recorder(loop: loop, expectedFinishes: 20)
            // Each recorder forwards its finish to the shared counter, which stops the loop.
            final class Forwarding: UpstreamTransferDelegate {
                let inner: Recorder, total: Recorder
                init(_ inner: Recorder, _ total: Recorder) { self.inner = inner; self.total = total }
                func upstreamHead(_ t: UpstreamTransfer, _ h: UpstreamResponseHead) { inner.upstreamHead(t, h) }
                func upstreamBody(_ t: UpstreamTransfer, _ b: UnsafeRawBufferPointer) -> Bool { inner.upstreamBody(t, b) }
                func upstreamWantsBody(_ t: UpstreamTransfer, into: UnsafeMutableRawBufferPointer) -> UpstreamBodyRead { .end }
                func upstreamFinished(_ t: UpstreamTransfer, _ e: UpstreamError?) {
                    inner.finished.append(e)
                    total.upstreamFinished(t, e)
                }
            }
            let delegates = recorders.map { Forwarding($0, counter) }
            for (index, delegate) in delegates.enumerated() { _ = multi.start(request(server.origin, "/n/\(index)"), delegate: delegate) }
            run(loop, multi)
            #expect(counter.finished.count == 20)
            for (index, recorder) in recorders.enumerated() {
                #expect(String(decoding: recorder.body, as: UTF8.self) == "GET /n/\(index) p ")
            }
            #expect(multi.activeTransfers == 0)
            #expect(server.requests.count == 20)
            // A second round reuses the pooled transfers and cached connections.
            let again = Recorder(loop: loop)
            _ = multi.start(request(server.origin, "/again"), delegate: again)
            run(loop, multi)
            #expect(String(decoding: again.body, as: UTF8.self) == "GET /again p ")
        }
    }

    @Test func anUploadOfDeclaredLengthArrivesWhole() throws {
        try TestServer.with { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            recorder.upload = Array("0123456789abcdef".utf8)
            recorder.pieceSize = 5
            _ = multi.start(request(server.origin, "/up", method: "PUT", body: .length(16)), delegate: recorder)
            run(loop, multi)
            #expect(recorder.succeeded, "\(recorder.finished)")
            #expect(String(decoding: recorder.body, as: UTF8.self) == "PUT /up p 0123456789abcdef")
        }
    }

    /// Ported from `UpstreamClientTests.anEmptyChunkDoesNotEndAStreamedBody` and
    /// `TransferStateMachineTests.anEmptyUploadChunkIsNeverHandedToCurl` / `uploadBackpressure`:
    /// a client connection with no body bytes yet (before the first, between two, and for an
    /// empty chunk) answers `.pause`; that never ends the body, chunked or of declared length,
    /// and `resumeSending()` carries on where it stopped.
    @Test(arguments: [UpstreamRequest.Body.streamed, .length(6)])
    func pausingTheUploadDoesNotEndTheBody(_ declared: UpstreamRequest.Body) throws {
        try TestServer.with { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            recorder.upload = Array("abcdef".utf8)
            recorder.pauses = [0, 3, 3]  // nothing yet; "abc"; an empty chunk; "def"
            _ = multi.start(request(server.origin, "/up", method: "POST", body: declared, headers: []), delegate: recorder)
            run(loop, multi)
            #expect(recorder.succeeded, "\(recorder.finished)")
            #expect(recorder.pausesAnswered == 3)
            #expect(String(decoding: recorder.body, as: UTF8.self) == "POST /up  abcdef")
            #expect(server.requests.map { String(decoding: $0.body, as: UTF8.self) } == ["abcdef"])
            if declared == .streamed {
                #expect(server.requests.first?.values("Transfer-Encoding") == ["chunked"])
            } else {
                #expect(server.requests.first?.values("Content-Length") == ["6"])
            }
        }
    }

    /// Ported from `UpstreamClientTests.bytesPastTheDeclaredLengthAreNeverSent`: a delegate that
    /// has more than the declared length is offered room for the declared bytes only, so the
    /// rest (here a whole request) can never reach the upstream as its next request.
    @Test func bytesPastTheDeclaredLengthAreNeverSent() throws {
        try TestServer.with { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            recorder.upload = Array("abcGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            _ = multi.start(request(server.origin, "/up", method: "POST", body: .length(3), headers: []), delegate: recorder)
            run(loop, multi)
            #expect(recorder.succeeded, "\(recorder.finished)")
            #expect(recorder.uploaded == 3)
            #expect(String(decoding: recorder.body, as: UTF8.self) == "POST /up  abc")
            // A request that follows on the same connection sees no smuggled one first.
            let next = Recorder(loop: loop)
            _ = multi.start(request(server.origin, "/next", headers: []), delegate: next)
            run(loop, multi)
            #expect(String(decoding: next.body, as: UTF8.self) == "GET /next  ")
            #expect(server.requests.map(\.target) == ["/up", "/next"])
            #expect(!server.received.contains("smuggled"))
        }
    }

    /// Ported from `TransferStateMachineTests.uploadAfterUpstreamAnsweredIsRefused`: an upstream
    /// that answers before it has read the body (a 413, a 401 from a middleware) ends the
    /// exchange with its answer; the rest of the body is not asked for.
    ///
    /// `resumeOnHead: false` is the case that once hung: while the delegate has sending paused
    /// (a client whose next body bytes have not come), curl 7.88 stops the upload on a final
    /// status >= 300 yet keeps the send pause, so the transfer never ended until the client sent
    /// more or the idle timeout. `UpstreamTransfer` now lifts the pause itself after such a head.
    @Test(arguments: [false, true])
    func anAnswerBeforeTheBodyEndsTheExchangeWithoutTheRestOfTheBody(resumeOnHead: Bool) throws {
        let answer = TestServer.response(status: 413, reason: "Content Too Large", headers: [("Connection", "close")], body: Array("too large".utf8))
        try TestServer.with(script: { connection in
            // The head and the 3 bytes the client had, then time for curl to meet the pause:
            // the answer comes while sending is paused.
            guard connection.readHead() != nil, connection.read(count: 3) != nil else { return }
            usleep(100_000)
            connection.write(answer)
            connection.drainUntilClosed()
        }) { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            recorder.upload = [UInt8](repeating: 0x61, count: 1_000_000)
            // The first 3 bytes, then a client that has nothing more for a while.
            recorder.pauses = [3]
            recorder.resumeAfterPause = false
            recorder.resumeSendingOnHead = resumeOnHead
            recorder.deadline.arm(milliseconds: 2_000)
            _ = multi.start(request(server.origin, "/up", method: "POST", body: .length(1_000_000), headers: []), delegate: recorder)
            run(loop, multi)
            #expect(recorder.heads.map(\.status) == [413])
            #expect(String(decoding: recorder.body, as: UTF8.self) == "too large")
            #expect(recorder.bodyAskedAfterHead == 0)
            #expect(recorder.uploaded == 3 && recorder.pausesAnswered == 1)
            #expect(recorder.succeeded, "\(recorder.finished)")
            #expect(multi.activeTransfers == 0)
        }
    }

    @Test func aRefusedBodyIsOfferedAgainAfterResuming() throws {
        try TestServer.with { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            recorder.refusals = 2
            _ = multi.start(request(server.origin, "/paused"), delegate: recorder)
            run(loop, multi)
            #expect(recorder.succeeded, "\(recorder.finished)")
            #expect(recorder.offeredTwice == 2)
            #expect(String(decoding: recorder.body, as: UTF8.self) == "GET /paused p ")
        }
    }

    /// Ported from `TransferStateMachineTests.downloadPausesAtHighWaterAndResumesBelowLowWater`
    /// (the new client keeps no buffer of its own: refusing is the backpressure): a large body
    /// refused again and again arrives whole and in order, nothing lost or doubled.
    @Test func aLargeBodyRefusedRepeatedlyArrivesWholeAndInOrder() throws {
        let payload = (0..<(3 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        try TestServer.with(script: TestServer.always(TestServer.response(status: 200, reason: "OK", body: payload))) { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            recorder.refuseEvery = 3
            _ = multi.start(request(server.origin, "/big"), delegate: recorder)
            run(loop, multi)
            #expect(recorder.succeeded, "\(recorder.finished)")
            #expect(recorder.deliveries > 6, "the body came in several deliveries")
            #expect(recorder.offeredTwice > 1)
            #expect(recorder.body.count == payload.count)
            #expect(recorder.body == payload)
        }
    }

    /// Ported from `TransferStateMachineTests.bodyCutShortThrowsAfterBufferedChunks`: a body cut
    /// short of its Content-Length is delivered as far as it came and then fails; it never
    /// looks complete.
    @Test func aBodyCutShortFinishesWithUnavailableAfterItsBytes() throws {
        try TestServer.with(script: { connection in
            guard connection.readRequest() != nil else { return }
            connection.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            // `end()` follows: the connection closes 90 bytes short.
        }) { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            _ = multi.start(request(server.origin, "/cut"), delegate: recorder)
            run(loop, multi)
            #expect(recorder.heads.map(\.status) == [200])
            #expect(String(decoding: recorder.body, as: UTF8.self) == "0123456789")
            guard recorder.finished.count == 1, case .unavailable? = recorder.finished[0] else {
                Issue.record("expected one unavailable, got \(recorder.finished)")
                return
            }
        }
    }

    /// Ported from `TransferStateMachineTests.completionWithoutHeadFailsTheHeadWaiter`: an
    /// upstream that closes without answering is a failure, not a success without a head.
    @Test func aConnectionClosedWithoutAnAnswerFinishesWithUnavailable() throws {
        try TestServer.with(script: { connection in _ = connection.readRequest() }) { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            _ = multi.start(request(server.origin, "/nothing"), delegate: recorder)
            run(loop, multi)
            #expect(recorder.heads.isEmpty)
            guard recorder.finished.count == 1, case .unavailable? = recorder.finished[0] else {
                Issue.record("expected one unavailable, got \(recorder.finished)")
                return
            }
            #expect(server.requests.count == 1)
        }
    }

    /// Ported from `TransferStateMachineTests.completedHeadIsKnownOnlyOnceTheExchangeHasEnded`
    /// (its timed-out case): an upstream that reads the request and never answers ends the
    /// exchange with `.headersTimedOut` after the configured time, once.
    @Test func aSilentUpstreamFinishesWithHeadersTimedOutOnce() throws {
        try TestServer.with(script: { connection in
            _ = connection.readRequest()
            connection.drainUntilClosed()
        }) { server in
            let loop = try EventLoop()
            var configuration = UpstreamClientConfiguration()
            configuration.headersTimeoutMilliseconds = 300
            let multi = UpstreamMulti(loop: loop, configuration: configuration)
            let recorder = Recorder(loop: loop)
            let started = Monotonic.milliseconds()
            _ = multi.start(request(server.origin, "/silent"), delegate: recorder)
            run(loop, multi)
            let elapsed = Monotonic.milliseconds() - started
            linger(loop, multi)
            #expect(recorder.finished.count == 1 && recorder.finished[0] == .headersTimedOut, "\(recorder.finished)")
            #expect(recorder.heads.isEmpty)
            #expect(elapsed >= 250 && elapsed < 5_000, "\(elapsed) ms")
            #expect(multi.activeTransfers == 0)
        }
    }

    /// An upstream that sends its head and part of the body, then nothing: `.idleTimedOut`.
    @Test func anUpstreamSilentMidBodyFinishesWithIdleTimedOut() throws {
        try TestServer.with(script: { connection in
            guard connection.readRequest() != nil else { return }
            connection.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            connection.drainUntilClosed()
        }) { server in
            let loop = try EventLoop()
            var configuration = UpstreamClientConfiguration()
            configuration.idleTimeoutMilliseconds = 300
            let multi = UpstreamMulti(loop: loop, configuration: configuration)
            let recorder = Recorder(loop: loop)
            let started = Monotonic.milliseconds()
            _ = multi.start(request(server.origin, "/stall"), delegate: recorder)
            run(loop, multi)
            let elapsed = Monotonic.milliseconds() - started
            linger(loop, multi)
            #expect(recorder.heads.map(\.status) == [200])
            #expect(String(decoding: recorder.body, as: UTF8.self) == "abc")
            #expect(recorder.finished.count == 1 && recorder.finished[0] == .idleTimedOut, "\(recorder.finished)")
            #expect(elapsed >= 250 && elapsed < 5_000, "\(elapsed) ms")
        }
    }

    @Test func cancellingFromTheHeadCallbackEndsTheTransferSilently() throws {
        try TestServer.with { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            recorder.cancelOnHead = true
            _ = multi.start(request(server.origin, "/cancel"), delegate: recorder)
            run(loop, multi)
            #expect(recorder.heads.count == 1)
            #expect(recorder.finished.isEmpty)
            #expect(recorder.body.isEmpty)
            #expect(multi.activeTransfers == 0)
        }
    }

    /// Ported from `UpstreamClientTests.refusedConnectionCompletesWithUnavailable`.
    @Test func aRefusedConnectionFinishesWithUnavailable() throws {
        let loop = try EventLoop()
        let multi = UpstreamMulti(loop: loop)
        let recorder = Recorder(loop: loop)
        _ = multi.start(request(TestServer.refusedOrigin(), "/"), delegate: recorder)
        run(loop, multi)
        guard recorder.finished.count == 1, case .unavailable? = recorder.finished[0] else {
            Issue.record("expected one unavailable, got \(recorder.finished)")
            return
        }
        #expect(recorder.heads.isEmpty)
        #expect(recorder.body.isEmpty, "a failed exchange has no body")
        #expect(multi.activeTransfers == 0)
    }

    @Test func aRequestWithALineBreakIsRefusedBeforeCurlAndReportedFromTheLoop() throws {
        let loop = try EventLoop()
        let multi = UpstreamMulti(loop: loop)
        let recorder = Recorder(loop: loop)
        var smuggled = request("http://127.0.0.1:9", "/")
        smuggled.headers.append(("X-Injected", "a\r\nGET /admin HTTP/1.1"))
        _ = multi.start(smuggled, delegate: recorder)
        #expect(recorder.finished.isEmpty)  // never from inside start
        run(loop, multi)
        #expect(recorder.finished.count == 1 && recorder.finished[0] == .unavailable("request line or header with CR, LF or NUL"))
    }

    /// Ported from `UpstreamClientTests.headerLineBreaksAreRefusedBeforeCurl` (same cases, plus
    /// the request line): nothing reaches a real server, not even a connection.
    @Test(arguments: [
        ("GET", "/h", "X-Probe", "1\r\nX-Injected: yes"), ("GET", "/h", "X-Probe", "1\nX-Injected: yes"),
        ("GET", "/h", "X-Probe", "a\u{0}b"), ("GET", "/h", "X-Probe\r\nX-Injected", "yes"),
        ("GET", "/h HTTP/1.1\r\nX-Injected: yes\r\nX:", "X-Probe", "1"), ("GET /x HTTP/1.1\r\n\r\nGET", "/h", "X-Probe", "1"),
    ])
    func lineBreaksAreRefusedBeforeCurl(_ method: String, _ target: String, _ name: String, _ value: String) throws {
        try TestServer.with { server in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            _ = multi.start(request(server.origin, target, method: method, headers: [(name, value)]), delegate: recorder)
            run(loop, multi)
            linger(loop, multi, milliseconds: 50)
            #expect(recorder.finished.count == 1 && recorder.finished[0] == .unavailable("request line or header with CR, LF or NUL"),
                "\(recorder.finished)")
            #expect(recorder.heads.isEmpty)
            #expect(server.connections == 0, "nothing reached the server")
            #expect(server.requests.isEmpty)
            #expect(multi.activeTransfers == 0)
        }
    }
}
