import EventLoop
import Glibc
import Testing

@testable import GatehouseUpstream

/// The event-loop-driven client (`UpstreamMulti`, `UpstreamTransfer`) against a real HTTP/1.1
/// server on 127.0.0.1, with the loop run on the test's own thread: curl's sockets and timer
/// go through libevent, and every delegate call comes from inside the loop.
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
        /// Refuse the first `refusals` body deliveries (each makes curl pause), resuming from a timer.
        var refusals = 0
        var offeredTwice = 0
        var lastRefused: [UInt8] = []
        var cancelOnHead = false
        var transfer: UpstreamTransfer?
        var resumeTimer: LoopTimer!
        var deadline: LoopTimer!

        init(loop: EventLoop, expectedFinishes: Int = 1) {
            self.loop = loop
            self.expectedFinishes = expectedFinishes
            resumeTimer = LoopTimer(loop: loop, handler: self)
            deadline = LoopTimer(loop: loop, handler: self)
            deadline.arm(milliseconds: 10_000)
        }

        /// Exactly one finish, without an error.
        var succeeded: Bool { finished.count == 1 && finished[0] == nil }

        func upstreamHead(_ transfer: UpstreamTransfer, _ head: UpstreamResponseHead) {
            heads.append(head)
            if cancelOnHead {
                transfer.cancel()
                resumeTimer.arm(milliseconds: 50)  // give a wrongly delivered finish a chance to show
            }
        }

        func upstreamBody(_ transfer: UpstreamTransfer, _ bytes: UnsafeRawBufferPointer) -> Bool {
            if !lastRefused.isEmpty, Array(bytes.prefix(lastRefused.count)) == lastRefused { offeredTwice += 1 }
            lastRefused = []
            if refusals > 0 {
                refusals -= 1
                lastRefused = Array(bytes)
                self.transfer = transfer
                resumeTimer.arm(milliseconds: 5)
                return false
            }
            body += bytes
            return true
        }

        func upstreamWantsBody(_ transfer: UpstreamTransfer, into: UnsafeMutableRawBufferPointer) -> UpstreamBodyRead {
            if uploaded == upload.count { return .end }
            let n = min(into.count, pieceSize, upload.count - uploaded)
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
            } else if cancelOnHead {
                loop.stop()
            } else {
                transfer?.resumeReceiving()
            }
        }
    }

    func request(_ origin: String, _ target: String, method: String = "GET", body: UpstreamRequest.Body = .none) -> UpstreamRequest {
        UpstreamRequest(origin: origin, target: target, method: method, headers: [("Host", "h"), ("X-Probe", "p")], body: body)
    }

    func run(_ loop: EventLoop, _ multi: UpstreamMulti) {
        loop.batchEnded = { multi.batchEnded() }
        loop.run()
    }

    @Test func aResponseArrivesWholeThroughTheLoop() async throws {
        try await UpstreamClientTests().withEchoServer { origin, requests in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            _ = multi.start(request(origin, "/a/b?x=1%2F"), delegate: recorder)
            run(loop, multi)
            #expect(recorder.finished.count == 1)
            #expect(recorder.succeeded, "\(recorder.finished)")
            #expect(recorder.heads.map(\.status) == [201])
            #expect(recorder.heads.first?.headers.filter { $0.name == "Set-Cookie" }.map(\.value) == ["a=1", "b=2"])
            #expect(String(decoding: recorder.body, as: UTF8.self) == "GET /a/b?x=1%2F p ")
            #expect(multi.activeTransfers == 0)
            #expect(requests.count == 1)
        }
    }

    @Test func concurrentTransfersAllComplete() async throws {
        try await UpstreamClientTests().withEchoServer { origin, requests in
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
            for (index, delegate) in delegates.enumerated() { _ = multi.start(request(origin, "/n/\(index)"), delegate: delegate) }
            run(loop, multi)
            #expect(counter.finished.count == 20)
            for (index, recorder) in recorders.enumerated() {
                #expect(String(decoding: recorder.body, as: UTF8.self) == "GET /n/\(index) p ")
            }
            #expect(multi.activeTransfers == 0)
            #expect(requests.count == 20)
            // A second round reuses the pooled transfers and cached connections.
            let again = Recorder(loop: loop)
            _ = multi.start(request(origin, "/again"), delegate: again)
            run(loop, multi)
            #expect(String(decoding: again.body, as: UTF8.self) == "GET /again p ")
        }
    }

    @Test func anUploadOfDeclaredLengthArrivesWhole() async throws {
        try await UpstreamClientTests().withEchoServer { origin, _ in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            recorder.upload = Array("0123456789abcdef".utf8)
            recorder.pieceSize = 5
            _ = multi.start(request(origin, "/up", method: "PUT", body: .length(16)), delegate: recorder)
            run(loop, multi)
            #expect(recorder.succeeded, "\(recorder.finished)")
            #expect(String(decoding: recorder.body, as: UTF8.self) == "PUT /up p 0123456789abcdef")
        }
    }

    @Test func aRefusedBodyIsOfferedAgainAfterResuming() async throws {
        try await UpstreamClientTests().withEchoServer { origin, _ in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            recorder.refusals = 2
            _ = multi.start(request(origin, "/paused"), delegate: recorder)
            run(loop, multi)
            #expect(recorder.succeeded, "\(recorder.finished)")
            #expect(recorder.offeredTwice == 2)
            #expect(String(decoding: recorder.body, as: UTF8.self) == "GET /paused p ")
        }
    }

    @Test func cancellingFromTheHeadCallbackEndsTheTransferSilently() async throws {
        try await UpstreamClientTests().withEchoServer { origin, _ in
            let loop = try EventLoop()
            let multi = UpstreamMulti(loop: loop)
            let recorder = Recorder(loop: loop)
            recorder.cancelOnHead = true
            _ = multi.start(request(origin, "/cancel"), delegate: recorder)
            run(loop, multi)
            #expect(recorder.heads.count == 1)
            #expect(recorder.finished.isEmpty)
            #expect(recorder.body.isEmpty)
            #expect(multi.activeTransfers == 0)
        }
    }

    @Test func aRefusedConnectionFinishesWithUnavailable() async throws {
        // A port nothing listens on: bind one, note it, close it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                _ = bind(fd, $0, length)
                _ = getsockname(fd, $0, &length)
            }
        }
        close(fd)
        let loop = try EventLoop()
        let multi = UpstreamMulti(loop: loop)
        let recorder = Recorder(loop: loop)
        _ = multi.start(request("http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))", "/"), delegate: recorder)
        run(loop, multi)
        guard case .unavailable? = recorder.finished.first ?? nil else {
            Issue.record("expected unavailable, got \(recorder.finished)")
            return
        }
        #expect(recorder.heads.isEmpty)
    }

    @Test func aRequestWithALineBreakIsRefusedBeforeCurlAndReportedFromTheLoop() async throws {
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
}
