import GatehouseUpstream
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// The upstream client against a real HTTP/1.1 server on 127.0.0.1 (a SwiftNIO channel
/// handler), through the real curl thread: what a caller that lives on an event loop sees
/// with `start(_:whenComplete:)`.
@Suite(.timeLimit(.minutes(1))) struct UpstreamClientTests {
    /// Answers every request with 201 and a body naming the method, target, `X-Probe` and
    /// `X-Injected` fields and the request body it received, so a test sees what reached the
    /// server. Counts the requests it read.
    final class EchoHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let requests: Counter
        private var head: HTTPRequestHead?
        private var received = ""

        init(requests: Counter) { self.requests = requests }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                received = ""
                requests.value.withLock { $0 += 1 }
            case .body(let bytes): received += String(buffer: bytes)
            case .end:
                guard let head else { return }
                let fields = head.headers["X-Probe"] + head.headers["X-Injected"]
                let body = "\(head.method.rawValue) \(head.uri) \(fields.joined(separator: ",")) \(received)"
                var headers = HTTPHeaders([("Content-Length", String(body.utf8.count)), ("X-Served", "echo")])
                headers.add(name: "Set-Cookie", value: "a=1")
                headers.add(name: "Set-Cookie", value: "b=2")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .created, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }

    /// Requests an echo server has read (tests run in parallel, each with its own server).
    final class Counter: Sendable {
        let value = Mutex(0)
        var count: Int { value.withLock { $0 } }
    }

    /// Runs `body` with the origin of an echo server that lives for its duration, and its
    /// request counter.
    func withEchoServer(_ body: (String, Counter) async throws -> Void) async throws {
        let requests = Counter()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHandler(requests: requests))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            try await body("http://127.0.0.1:\(channel.localAddress!.port!)", requests)
        } catch {
            try? await channel.close()
            try? await group.shutdownGracefully()
            throw error
        }
        try await channel.close()
        try await group.shutdownGracefully()
    }

    /// Starts `request` and waits for its completion callback.
    func completed(_ request: UpstreamRequest, on client: UpstreamClient) async -> UpstreamExchange {
        await withCheckedContinuation { continuation in
            _ = client.start(request) { exchange in continuation.resume(returning: exchange) }
        }
    }

    @Test func completionCarriesTheWholeResponse() async throws {
        let client = UpstreamClient()
        defer { client.shutdown() }
        try await withEchoServer { origin, _ in
            for round in 1...3 {  // a reused connection completes the same way
                let request = UpstreamRequest(
                    origin: origin, target: "/items/\(round)?q=%2F", method: "GET",
                    headers: [("X-Probe", "round-\(round)")], body: .none)
                let exchange = await completed(request, on: client)
                guard case .success(let head)? = exchange.completedHead else {
                    Issue.record("no response head: \(String(describing: exchange.completedHead))")
                    return
                }
                #expect(head.status == 201)
                #expect(head.headers.filter { $0.name == "Set-Cookie" }.map(\.value) == ["a=1", "b=2"])
                let body = (exchange.takeCompleteBody() ?? []).map { String(buffer: $0) }.joined()
                #expect(body == "GET /items/\(round)?q=%2F round-\(round) ")
            }
        }
    }

    @Test func refusedConnectionCompletesWithUnavailable() async throws {
        // A port that was just free: nothing listens there.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let probe = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()
        try await group.shutdownGracefully()

        let client = UpstreamClient()
        defer { client.shutdown() }
        let request = UpstreamRequest(origin: "http://127.0.0.1:\(port)", target: "/", method: "GET", headers: [], body: .none)
        let exchange = await completed(request, on: client)
        guard case .failure(.unavailable)? = exchange.completedHead else {
            Issue.record("expected unavailable, got \(String(describing: exchange.completedHead))")
            return
        }
        #expect(exchange.takeCompleteBody() == nil, "a failed exchange has no body to take")
    }

    /// Streams `chunks` as the request body and returns the completed exchange.
    func upload(
        _ chunks: [String], declared body: UpstreamRequest.Body, to origin: String, on client: UpstreamClient
    ) async throws -> UpstreamExchange {
        let request = UpstreamRequest(origin: origin, target: "/up", method: "POST", headers: [], body: body)
        let (completed, done) = AsyncStream.makeStream(of: UpstreamExchange.self)
        let exchange = client.start(request) { exchange in
            done.yield(exchange)
            done.finish()
        }
        for chunk in chunks {
            try await exchange.writeRequestBody(ByteBuffer(string: chunk))
            // Give curl time to take what is there, so the next chunk meets a waiting reader.
            try await Task.sleep(for: .milliseconds(50))
        }
        exchange.finishRequestBody()
        for await exchange in completed { return exchange }
        throw UpstreamError.cancelled
    }

    func body(of exchange: UpstreamExchange) -> String {
        (exchange.takeCompleteBody() ?? []).map { String(buffer: $0) }.joined()
    }

    @Test func anEmptyChunkDoesNotEndAStreamedBody() async throws {
        let client = UpstreamClient()
        defer { client.shutdown() }
        try await withEchoServer { origin, _ in
            let streamed = try await upload(["abc", "", "def"], declared: .streamed, to: origin, on: client)
            #expect(body(of: streamed) == "POST /up  abcdef")
            let sized = try await upload(["abc", "", "def"], declared: .length(6), to: origin, on: client)
            #expect(body(of: sized) == "POST /up  abcdef")
        }
    }

    @Test func bytesPastTheDeclaredLengthAreNeverSent() async throws {
        let client = UpstreamClient()
        defer { client.shutdown() }
        try await withEchoServer { origin, requests in
            let smuggling = "abcGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
            let exchange = try await upload([smuggling], declared: .length(3), to: origin, on: client)
            #expect(body(of: exchange) == "POST /up  abc")
            // A request that would follow on the same connection sees no smuggled one first.
            let next = await completed(
                UpstreamRequest(origin: origin, target: "/next", method: "GET", headers: [], body: .none), on: client)
            #expect(body(of: next) == "GET /next  ")
            #expect(requests.count == 2)
        }
    }

    @Test(arguments: [
        ("X-Probe", "1\r\nX-Injected: yes"), ("X-Probe", "1\nX-Injected: yes"), ("X-Probe", "a\u{0}b"),
        ("X-Probe\r\nX-Injected", "yes"),
    ])
    func headerLineBreaksAreRefusedBeforeCurl(_ name: String, _ value: String) async throws {
        let client = UpstreamClient()
        defer { client.shutdown() }
        try await withEchoServer { origin, requests in
            let exchange = await completed(
                UpstreamRequest(origin: origin, target: "/h", method: "GET", headers: [(name, value)], body: .none), on: client)
            guard case .failure(.unavailable)? = exchange.completedHead else {
                Issue.record("expected a refusal, got \(String(describing: exchange.completedHead))")
                return
            }
            #expect(requests.count == 0, "nothing reached the server")
        }
    }
}
