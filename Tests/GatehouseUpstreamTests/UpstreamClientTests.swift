import GatehouseUpstream
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The upstream client against a real HTTP/1.1 server on 127.0.0.1 (a SwiftNIO channel
/// handler), through the real curl thread: what a caller that lives on an event loop sees
/// with `start(_:whenComplete:)`.
@Suite(.timeLimit(.minutes(1))) struct UpstreamClientTests {
    /// Answers every request with 201 and a body naming the method, target and `X-Probe`
    /// it received, so a test sees what reached the server.
    final class EchoHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        private var head: HTTPRequestHead?

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): self.head = head
            case .body: break
            case .end:
                guard let head else { return }
                let body = "\(head.method.rawValue) \(head.uri) \(head.headers["X-Probe"].joined(separator: ","))"
                var headers = HTTPHeaders([("Content-Length", String(body.utf8.count)), ("X-Served", "echo")])
                headers.add(name: "Set-Cookie", value: "a=1")
                headers.add(name: "Set-Cookie", value: "b=2")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .created, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }

    /// Runs `body` with the origin of an echo server that lives for its duration.
    func withEchoServer(_ body: (String) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            try await body("http://127.0.0.1:\(channel.localAddress!.port!)")
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
        try await withEchoServer { origin in
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
                #expect(body == "GET /items/\(round)?q=%2F round-\(round)")
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
}
