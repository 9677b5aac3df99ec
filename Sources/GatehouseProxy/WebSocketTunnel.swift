import NIOCore
import NIOPosix

/// Opens the upstream side of a WebSocket tunnel: a plain SwiftNIO TCP connection to FastAPI
/// on the client's own event loop, the handshake sent, the answer read.
///
/// Why not libcurl: Debian's libcurl 7.88 has no WebSocket API, and `CURLOPT_CONNECT_ONLY`
/// would move every frame through the curl thread with `curl_easy_send`/`recv` polling. A NIO
/// socket on the same event loop as the client's lets the two sockets be spliced with the
/// usual readiness-driven backpressure and no thread hop per frame.
///
/// Invariant: the upstream channel is created on the client channel's event loop, so the
/// splice handlers of both pipelines run on one thread and may call each other directly.
enum WebSocketUpstream {
    struct Connected {
        let channel: any Channel
        let answer: WebSocketHandshake.Answer
    }

    enum Failure: Error {
        case unreachable
        case timedOut
        case malformedAnswer
    }

    /// Connects, sends `request`, and waits for the answer head (and, for a refusal, its body
    /// when it is short and declared). The channel is closed on every failure and on refusal.
    static func handshake(
        host: String, port: Int, request: ByteBuffer, on eventLoop: any EventLoop,
        connectTimeout: TimeAmount, answerTimeout: TimeAmount
    ) async throws(Failure) -> Connected {
        let promise = eventLoop.makePromise(of: WebSocketHandshake.Answer.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(connectTimeout)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HandshakeAnswerReader(promise))
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            promise.fail(Failure.unreachable)
            throw .unreachable
        }
        let answer: WebSocketHandshake.Answer
        // Completing a completed promise is a no-op in NIO, so the timer and the reader may race.
        let timeout = eventLoop.scheduleTask(in: answerTimeout) { promise.fail(Failure.timedOut) }
        do {
            channel.writeAndFlush(request, promise: nil)
            answer = try await promise.futureResult.get()
            timeout.cancel()
        } catch {
            timeout.cancel()
            channel.close(promise: nil)
            throw (error as? Failure) ?? .malformedAnswer
        }
        if answer.head.status != 101 { channel.close(promise: nil) }
        return Connected(channel: channel, answer: answer)
    }
}

/// Collects the upstream's answer to the handshake. Stays in the pipeline (buffering whatever
/// follows the head) until the splice replaces it, so no frame FastAPI sends right after its
/// 101 is lost.
final class HandshakeAnswerReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private var received: [UInt8] = []
    private var promise: EventLoopPromise<WebSocketHandshake.Answer>?
    private var parsed: WebSocketHandshake.Answer?
    /// Limit on bytes buffered after a 101 before the splice takes over.
    private static let maxBufferedAfterHead = 1 << 20

    init(_ promise: EventLoopPromise<WebSocketHandshake.Answer>) {
        self.promise = promise
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        promise?.fail(WebSocketUpstream.Failure.unreachable)
        promise = nil
    }

    private func fail(_ failure: WebSocketUpstream.Failure) {
        promise?.fail(failure)
        promise = nil
    }

    /// Whether FastAPI half-closed before the splice took over (its FIN is passed on then).
    private(set) var inputEnded = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputEnded = true
            if parsed == nil { fail(.unreachable) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Bytes that arrived after the head and were not yet handed on.
    func takeBuffered() -> [UInt8] {
        defer { received = [] }
        return received
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received += buffer.readBytes(length: buffer.readableBytes) ?? []
        if parsed != nil {
            if received.count > Self.maxBufferedAfterHead { context.close(promise: nil) }
            return
        }
        do {
            guard var answer = try WebSocketHandshake.parseAnswer(received) else { return }
            if answer.head.status != 101 {
                // A refusal: wait for its declared body if it is short, else relay no body.
                guard let length = answer.contentLength, length <= WebSocketHandshake.maxRefusalBodyBytes else {
                    answer.rest = []
                    return complete(answer)
                }
                guard answer.rest.count >= length else { return }
                answer.rest = Array(answer.rest.prefix(length))
                return complete(answer)
            }
            received = answer.rest
            answer.rest = []
            complete(answer)
        } catch {
            fail(.malformedAnswer)
        }
    }

    private func complete(_ answer: WebSocketHandshake.Answer) {
        parsed = answer
        promise?.succeed(answer)
        promise = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(.unreachable)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(.unreachable)
        context.close(promise: nil)
    }
}

/// One side of a spliced pair of sockets: what it reads is written to its partner.
///
/// Backpressure: a side only asks its socket for more data while the partner's socket is
/// writable; when the partner becomes writable again it asks on this side's behalf. So a slow
/// reader on one end stops the reads on the other end instead of filling memory.
///
/// Ending: a half-close (FIN) is passed on as a half-close once everything before it is
/// written; when both directions have ended, or either socket fails or closes, both close.
/// `idle` closes a tunnel in which nothing moved either way for that long.
///
/// Invariant: both handlers live on the same event loop (see `WebSocketUpstream`), so `partner`
/// calls are plain synchronous calls on that loop.
final class SpliceHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: SpliceHandler?
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var inputEnded = false
    private var outputEnded = false
    /// Counted for the access log.
    private(set) var bytesRead = 0
    private let onIdle: TimeAmount?
    private var lastActivity = NIODeadline.now()
    private var idleCheck: Scheduled<Void>?

    init(idleTimeout: TimeAmount?) {
        self.onIdle = idleTimeout
    }

    /// Pairs two handlers. Call on their shared event loop before adding them to pipelines.
    static func pair(idleTimeout: TimeAmount?) -> (SpliceHandler, SpliceHandler) {
        let first = SpliceHandler(idleTimeout: idleTimeout)
        let second = SpliceHandler(idleTimeout: idleTimeout)
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        scheduleIdleCheck(context: context)
        if !context.channel.isActive { partner?.partnerClosed() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        self.context = nil
        self.partner = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytesRead += unwrapInboundIn(data).readableBytes
        lastActivity = .now()
        partner?.partnerWrite(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputEnded = true
            partner?.partnerInputEnded()
            closeIfBothEnded()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Outbound

    func read(context: ChannelHandlerContext) {
        if partner?.isWritable ?? false {
            context.read()
        } else {
            readPending = true
        }
    }

    /// This side's peer sent FIN before the splice was in place: handle it as if seen now.
    func inputEndedBeforeSplice() {
        inputEnded = true
        partner?.partnerInputEnded()
        closeIfBothEnded()
    }

    /// Writes bytes of gatehouse's own (the 101) straight to this side's socket.
    func writeRaw(_ buffer: ByteBuffer) {
        context?.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    // MARK: Partner calls (same event loop)

    private var isWritable: Bool { context?.channel.isWritable ?? false }

    private func partnerWrite(_ data: NIOAny) {
        lastActivity = .now()
        context?.write(data, promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerBecameWritable() {
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// The partner's peer sent FIN: pass it on once everything before it has been written.
    private func partnerInputEnded() {
        guard let context, !outputEnded else { return }
        outputEnded = true
        context.writeAndFlush(wrapOutboundOut(ByteBuffer())).assumeIsolated().whenComplete { _ in
            context.close(mode: .output, promise: nil)
            self.closeIfBothEnded()
        }
    }

    /// The partner's socket is gone: flush what it sent us, then close.
    private func partnerClosed() {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer())).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func closeIfBothEnded() {
        guard inputEnded, outputEnded, let context else { return }
        context.close(promise: nil)
    }

    private func scheduleIdleCheck(context: ChannelHandlerContext) {
        guard let onIdle else { return }
        let deadline = lastActivity + onIdle
        idleCheck = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            guard let context = self.context else { return }
            let partnerActivity = self.partner?.lastActivity ?? .distantPast
            if max(self.lastActivity, partnerActivity) + onIdle <= .now() {
                context.close(promise: nil)
            } else {
                self.lastActivity = max(self.lastActivity, partnerActivity)
                self.scheduleIdleCheck(context: context)
            }
        }
    }
}
