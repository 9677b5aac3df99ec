import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Takes WebSocket handshakes out of the HTTP request stream and turns them into tunnels.
///
/// Sits in the proxy connection's pipeline behind the swift-http-types codec and
/// `ParseErrorHandler`, in front of HummingbirdCore's idle handler and request loop. Every
/// other request passes through untouched. A handshake (RFC 6455 §4.1) is kept from the
/// request loop (if the previous exchange's response has not ended yet — a client may send the
/// handshake as soon as it has that whole body, before gatehouse writes the end — it waits,
/// unread behind it, for that end), and:
///
/// 1. the connection stops reading and HummingbirdCore's idle timer is removed (the upstream
///    timeouts bound the handshake from here);
/// 2. `ProxyResponder.openTunnel` authenticates it and forwards it to FastAPI;
/// 3. refused → the answer is written and the connection closed; FastAPI's 101 → every HTTP
///    handler is removed, a `SpliceHandler` joins the client socket to FastAPI's, and the 101
///    is written raw.
///
/// NIO's own upgrade handler was not used: it considers the first request of a connection
/// only, and it swallows a request whose upgrade fails (the caller must answer it blind).
///
/// Runs on the channel's event loop only (NIO's handler contract); the async handshake
/// resumes on that loop (`assumeIsolated`).
final class WebSocketUpgradeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        case passing
        /// A handshake head arrived while a response was still being written; `ended` says
        /// whether its own end has been read. Taken over when that response ends.
        case waiting(HTTPRequest, ended: Bool)
        /// A handshake head was taken; waiting for its end.
        case handshake(HTTPRequest)
        /// The HTTP half of the tunnel is running; the client is not read meanwhile.
        case opening
        case finished
    }

    private let proxy: ProxyResponder
    private let tunnelIdleTimeout: TimeAmount
    private var state = State.passing
    /// Request heads passed on minus final response ends seen: 0 between exchanges.
    private var exchangesInProgress = 0
    /// A request or response head passed here said `Connection: close`: the connection ends
    /// after that exchange, so a handshake held behind it is dropped, never tunnelled.
    private var closing = false
    private var readHeld = false

    init(proxy: ProxyResponder, tunnelIdleTimeout: TimeAmount) {
        self.proxy = proxy
        self.tunnelIdleTimeout = tunnelIdleTimeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch state {
        case .passing:
            guard case .head(let head) = part else { return context.fireChannelRead(data) }
            if Self.isHandshake(head) {
                if exchangesInProgress == 0 {
                    take(head, ended: false, context: context)
                } else {
                    state = .waiting(head, ended: false)
                }
                return
            }
            exchangesInProgress += 1
            if Self.saysClose(head.headerFields) { closing = true }
            context.fireChannelRead(data)
        case .waiting(let head, ended: false):
            if case .end = part {
                state = .waiting(head, ended: true)
            } else {
                state = .finished  // as below: a handshake has no body
                refuse(.badRequest("A WebSocket handshake has no body"), context: context)
            }
        case .waiting(_, ended: true):
            break  // not read while waiting
        case .handshake(let head):
            switch part {
            case .end:
                state = .opening
                open(head, context: context)
            case .head, .body:
                // Unreachable: `isHandshake` admits no head announcing content, and the
                // decoder ends a bodiless message at once. Fail closed all the same.
                state = .finished
                refuse(.badRequest("A WebSocket handshake has no body"), context: context)
            }
        case .opening, .finished:
            break
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            if head.status.kind != .informational, Self.saysClose(head.headerFields) { closing = true }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            exchangesInProgress -= 1
            context.write(data, promise: promise)
            guard exchangesInProgress == 0, case .waiting = state else { return }
            if closing {
                state = .finished  // the connection ends with this answer
                return
            }
            // Taken over once the handlers that wrote this end have returned, in the state
            // the handshake is in by then.
            context.eventLoop.assumeIsolated().execute {
                guard context.channel.isActive, case .waiting(let head, let ended) = self.state else { return }
                self.take(head, ended: ended, context: context)
            }
        }
    }

    private static func saysClose(_ fields: HTTPFields) -> Bool {
        fields[values: .connection].contains { HopByHopHeaders.tokens($0).contains("close") }
    }

    func read(context: ChannelHandlerContext) {
        switch state {
        case .passing, .finished: context.read()
        case .waiting, .handshake, .opening: readHeld = true
        }
    }

    /// The connection becomes the handshake's; it opens once the head's end has been read.
    private func take(_ head: HTTPRequest, ended: Bool, context: ChannelHandlerContext) {
        // From here the connection is ours: its idle timer would cut a slow handshake.
        let sync = context.pipeline.syncOperations
        if let idle = try? sync.handler(type: HTTPConnectionStateHandler.self) { sync.removeHandler(idle, promise: nil) }
        if ended {
            state = .opening
            open(head, context: context)
        } else {
            state = .handshake(head)
            if readHeld {  // the end is still to be read
                readHeld = false
                context.read()
            }
        }
    }

    static func isHandshake(_ head: HTTPRequest) -> Bool {
        // Cheap test first: this runs for every request head. RFC 6455 §4.1: a handshake is
        // a GET without content; one announcing a body is served as a plain request (its
        // `Upgrade` is hop-by-hop and dropped), so no body is ever left unread here.
        guard head.method == .get, head.headerFields[.upgrade] != nil, !head.headerFields.announceContent else {
            return false
        }
        return WebSocketHandshake.isUpgradeRequest(
            method: head.method.rawValue, upgrade: head.headerFields[values: .upgrade],
            connection: head.headerFields[values: .connection])
    }

    // MARK: The handshake

    private func open(_ head: HTTPRequest, context: ChannelHandlerContext) {
        let proxy = self.proxy
        let peer = context.channel.remoteAddress?.ipAddress
        let eventLoop = context.eventLoop
        eventLoop.makeFutureWithTask {
            await proxy.openTunnel(head, peer: peer, eventLoop: eventLoop)
        }.assumeIsolated().whenSuccess { opening in
            switch opening {
            case .refused(let response, let body, let log, let started):
                self.state = .finished
                self.write(response, body: body, context: context)
                proxy.logTunnel(log, started: started, bytes: nil)
            case .open(let upstream, let response, var log, let started):
                guard context.channel.isActive else {
                    upstream.close(promise: nil)
                    log.outcome = "client_closed"
                    proxy.logTunnel(log, started: started, bytes: nil)
                    return
                }
                let fromUpstream: SpliceHandler
                do {
                    (fromUpstream, log.bytes) = try self.splice(context: context, upstream: upstream, response: response)
                } catch {
                    upstream.close(promise: nil)
                    context.close(promise: nil)
                    log.outcome = "tunnel_failed"
                    proxy.logTunnel(log, started: started, bytes: nil)
                    return
                }
                proxy.metrics.inFlight.increment()
                context.channel.closeFuture.and(upstream.closeFuture).assumeIsolated().whenComplete { _ in
                    proxy.metrics.inFlight.decrement()
                    proxy.logTunnel(log, started: started, bytes: fromUpstream.bytesRead)
                }
            }
        }
    }

    private func refuse(_ response: ErrorResponse, context: ChannelHandlerContext) {
        write(response.head(requestID: nil, closeConnection: true), body: response.body, context: context)
    }

    /// Writes a whole answer and closes the connection.
    private func write(_ head: HTTPResponse, body: ByteBuffer, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Replaces the HTTP handlers with the splice and sends the 101. Returns FastAPI's side of
    /// the splice and the number of bytes FastAPI sent right behind its 101 (forwarded here).
    private func splice(
        context: ChannelHandlerContext, upstream: any Channel, response: ByteBuffer
    ) throws -> (SpliceHandler, Int) {
        // The splice calls across both pipelines synchronously: one event loop for both.
        precondition(upstream.eventLoop === context.eventLoop, "tunnel sides must share an event loop")
        let client = context.pipeline.syncOperations
        // Raw bytes must meet no HTTP handler: drop the decoder, encoder, codec and ours.
        client.removeHandler(try client.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self), promise: nil)
        client.removeHandler(try client.handler(type: HTTPResponseEncoder.self), promise: nil)
        client.removeHandler(try client.handler(type: HTTP1ToHTTPServerCodec.self), promise: nil)
        client.removeHandler(try client.handler(type: ParseErrorHandler.self), promise: nil)
        let server = upstream.pipeline.syncOperations
        let reader = try server.handler(type: HandshakeAnswerReader.self)
        let early = reader.takeBuffered()
        let upstreamEnded = reader.inputEnded
        server.removeHandler(reader, promise: nil)

        let (clientSide, upstreamSide) = SpliceHandler.pair(idleTimeout: tunnelIdleTimeout)
        try client.addHandler(clientSide, position: .first)
        try server.addHandler(upstreamSide)
        clientSide.writeRaw(response)
        if !early.isEmpty { clientSide.writeRaw(ByteBuffer(bytes: early)) }
        if upstreamEnded { upstreamSide.inputEndedBeforeSplice() }  // FastAPI's FIN came with its 101
        let channel = context.channel
        client.removeHandler(self, promise: nil)
        if readHeld { channel.read() }  // passes through the splice's own read gate
        return (upstreamSide, early.count)
    }
}
