// nio-floor: the least a SwiftNIO HTTP/1.1 server pays per request on this machine, for
// bench/run.sh. It answers every request with gatehouse's /healthz answer straight from a
// channel handler on the event loop: no HummingbirdCore, no async/await, nothing forwarded.
// Set beside HummingbirdCore's own floor (gatehouse's admin /healthz), it shows what the
// server layer costs by itself.
//
//   nio-floor HOST PORT     (two event loops, as gatehouse uses on two cores)
import NIOCore
import NIOHTTP1
import NIOPosix

final class HealthzHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private static let body = #"{"status":"ok"}"#
    private var keepAlive = true

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(Self.body.utf8.count))
            let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: Self.body)))), promise: nil)
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                let channel = context.channel
                written.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let port = Int(arguments[2]) else {
    print("usage: nio-floor HOST PORT")
    exit(2)
}
let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
let channel = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            try channel.pipeline.syncOperations.addHandler(HealthzHandler())
        }
    }
    .bind(host: arguments[1], port: port)
    .wait()
try channel.closeFuture.wait()
