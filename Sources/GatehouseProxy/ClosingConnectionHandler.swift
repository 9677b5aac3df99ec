import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Serves a connection's requests one at a time, and nothing after an answer that closes it.
///
/// HummingbirdCore reads ahead: requests a client pipelines (RFC 9112 §9.3.2) are queued in
/// its request stream while an earlier one is still being answered. When that answer ends the
/// connection (`Connection: close`, RFC 9112 §9.6: a framing error, a refusal whose request
/// body was left unread, an upstream failure mid-upload), the queued requests would still be
/// admitted and forwarded to FastAPI, their answers lost. So this handler passes on a request
/// head only once every earlier answer has ended: a head that arrives earlier is held, with
/// whatever follows it, and the connection is not read meanwhile. When an answer that says
/// `Connection: close` ends, held requests are dropped, nothing more is passed on, and the
/// connection is closed after `linger`. Until then what the client still sends is read and
/// discarded (a lingering close, as RFC 9112 §9.6 advises): closing a socket with unread data
/// would send a TCP reset, which can destroy the answer before the client has read it.
///
/// Sits behind the swift-http-types codec and `ParseErrorHandler`, in front of
/// `WebSocketUpgradeHandler`. Runs on the channel's event loop only (NIO's handler contract).
final class ClosingConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let linger: TimeAmount
    /// Request heads passed on minus final answers ended.
    private var inProgress = 0
    /// Parts of pipelined requests, in order, waiting for the answer in progress to end.
    private var held: [NIOAny] = []
    private var readPending = false
    /// The final answer being written says `Connection: close`.
    private var closing = false
    /// That answer has ended: everything read from now on is discarded.
    private var finished = false
    private var lingerTimer: Scheduled<Void>?

    init(linger: TimeAmount = .seconds(2)) {
        self.linger = linger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if finished { return }
        if !held.isEmpty {
            held.append(data)
            return
        }
        if case .head = unwrapInboundIn(data) {
            if inProgress > 0 {
                held.append(data)
                return
            }
            inProgress += 1
        }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        if held.isEmpty || finished {
            context.read()
        } else {
            readPending = true
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            if head.status.kind != .informational,
                head.headerFields[values: .connection].contains(where: { HopByHopHeaders.tokens($0).contains("close") })
            {
                closing = true
            }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            inProgress -= 1
            context.write(data, promise: promise)
            if closing {
                end(context: context)
            } else if inProgress == 0, !held.isEmpty {
                // Passed on once the handlers writing this end have returned.
                context.eventLoop.assumeIsolated().execute { self.release(context: context) }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        lingerTimer?.cancel()
        held.removeAll()
        context.fireChannelInactive()
    }

    /// The connection's last answer has ended: drop what is held, discard what comes, close
    /// after `linger`.
    private func end(context: ChannelHandlerContext) {
        guard !finished else { return }
        finished = true
        held.removeAll()
        if readPending {
            readPending = false
            context.read()
        }
        let channel = context.channel
        lingerTimer = context.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
    }

    /// Passes on the held parts, up to the next request head that has to wait in turn.
    private func release(context: ChannelHandlerContext) {
        guard !finished, inProgress == 0, context.channel.isActive else { return }
        let parts = held
        held.removeAll()
        for part in parts {
            channelRead(context: context, data: part)
        }
        // HummingbirdCore's request stream takes in what it was given at the end of a read.
        context.fireChannelReadComplete()
        if held.isEmpty, readPending {
            readPending = false
            context.read()
        }
    }
}
