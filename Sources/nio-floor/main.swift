// nio-floor: the least a SwiftNIO HTTP/1.1 server pays per request on this machine, for
// bench/run.sh. Two modes, both straight from a channel handler on the event loop: no
// HummingbirdCore, no async/await, no token check, no log line, no metrics.
//
//   nio-floor HOST PORT                       answers gatehouse's /healthz body itself
//   nio-floor HOST PORT ORIGIN HEADER-FILE    forwards every request to ORIGIN through
//                                             gatehouse's libcurl client (GatehouseUpstream)
//
// The first, set beside HummingbirdCore's own floor (gatehouse's admin /healthz), shows what
// the server layer costs by itself. The second is the cheapest proxy that can be built from
// SwiftNIO and gatehouse's upstream client: it sends each request's method and target with
// the fixed header lines of HEADER-FILE (gatehouse's upstream header set for the benchmark's
// token, as bench/curl_floor.c sends them) and answers with the upstream's status, headers
// and body once the exchange is complete. Whatever it reaches is a ceiling for gatehouse,
// which does all that plus the work it exists for.
//
// Two event loops, as gatehouse uses on two cores.
import Foundation
import GatehouseUpstream
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

/// Forwards each request through `UpstreamClient` and answers from the event loop once the
/// exchange is complete (the benchmark's responses are a few bytes). One request at a time
/// per connection: reads stop until the answer is written, as HTTP/1.1 pipelining requires.
final class ForwardingHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let client: UpstreamClient
    private let origin: String
    private let headers: [(name: String, value: String)]
    private var head: HTTPRequestHead?
    private var waiting = false
    private var readPending = false

    init(client: UpstreamClient, origin: String, headers: [(name: String, value: String)]) {
        self.client = client
        self.origin = origin
        self.headers = headers
    }

    func read(context: ChannelHandlerContext) {
        if waiting { readPending = true } else { context.read() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            waiting = true
            let request = UpstreamRequest(
                origin: origin, target: head.uri, method: head.method.rawValue, headers: headers, body: .none)
            // The completion runs on the curl thread; the answer is written on the event loop.
            let bound = NIOLoopBound((self, context, head.isKeepAlive), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            _ = client.start(request) { exchange in
                eventLoop.execute {
                    let (handler, context, keepAlive) = bound.value
                    handler.answer(exchange, keepAlive: keepAlive, context: context)
                }
            }
        }
    }

    private func answer(_ exchange: UpstreamExchange, keepAlive: Bool, context: ChannelHandlerContext) {
        waiting = false
        guard case .success(let upstream)? = exchange.completedHead else {
            context.close(promise: nil)
            return
        }
        var headers = HTTPHeaders()
        for field in upstream.headers where !["connection", "keep-alive"].contains(field.name.lowercased()) {
            headers.add(name: field.name, value: field.value)
        }
        let status = HTTPResponseStatus(statusCode: upstream.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        for chunk in exchange.takeCompleteBody() ?? [] {
            context.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        } else if readPending {
            readPending = false
            context.read()
        }
    }
}

/// "Name: value" lines; an empty value ("Expect:") tells libcurl not to send its own.
func headerLines(_ path: String) throws -> [(name: String, value: String)] {
    try String(contentsOfFile: path, encoding: .utf8).split(whereSeparator: \.isNewline).compactMap { line in
        guard let colon = line.firstIndex(of: ":") else { return nil }
        return (String(line[..<colon]), String(line[line.index(after: colon)...].drop(while: { $0 == " " })))
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 3 || arguments.count == 5, let port = Int(arguments[2]) else {
    print("usage: nio-floor HOST PORT [ORIGIN HEADER-FILE]")
    exit(2)
}
let forwarding: (client: UpstreamClient, origin: String, headers: [(name: String, value: String)])? =
    arguments.count == 5 ? (UpstreamClient(), arguments[3], try headerLines(arguments[4])) : nil
let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
let channel = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            if let forwarding {
                try channel.pipeline.syncOperations.addHandler(
                    ForwardingHandler(client: forwarding.client, origin: forwarding.origin, headers: forwarding.headers))
            } else {
                try channel.pipeline.syncOperations.addHandler(HealthzHandler())
            }
        }
    }
    .bind(host: arguments[1], port: port)
    .wait()
try channel.closeFuture.wait()
