import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers requests the HTTP/1 decoder rejects, in gatehouse's JSON error shape.
///
/// HummingbirdCore would answer every parse error with an empty 400. This handler, placed
/// right after the decoder, answers instead: 431 (RFC 6585 §5) when the header block exceeds
/// `GATEHOUSE_MAX_HEADER_BYTES` (the decoder is configured with that limit and fails with
/// `HTTPParserError.headerOverflow`), and a JSON 400 for framing errors — both
/// `Content-Length` and `Transfer-Encoding`, an invalid `Content-Length`, a malformed request
/// line (RFC 9112 §6.3 treats these as unrecoverable, the stream cannot be parsed further),
/// so the connection is closed after the answer. Runs on the channel's event loop only.
///
/// Only between messages: when a request is being read or a response written, the error is
/// passed on instead, so the request body stream fails (the upstream exchange is aborted, a
/// truncated body never looks complete) and no second response head is interleaved.
final class ParseErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let logger: Logger
    private var answered = false
    /// Request heads read minus final response ends written: 0 means between messages.
    private var exchangesInProgress = 0

    init(logger: Logger) {
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { exchangesInProgress += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { exchangesInProgress -= 1 }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, exchangesInProgress == 0, !answered else {
            context.fireErrorCaught(error)
            return
        }
        // One answer per connection: the decoder stays in its error state afterwards.
        answered = true
        let response: ErrorResponse
        switch parserError {
        case .headerOverflow: response = .headersTooLarge
        case .invalidContentLength, .unexpectedContentLength: response = .badRequest("Invalid Content-Length")
        default: response = .badRequest("Malformed HTTP request")
        }
        var entry = AccessLogEntry(method: "-", path: "-", requestID: RequestID.generate())
        entry.status = response.status.code
        entry.outcome = "rejected"
        entry.log(to: logger)
        context.write(wrapOutboundOut(.head(response.head(requestID: entry.requestID, closeConnection: true))), promise: nil)
        context.write(wrapOutboundOut(.body(response.body)), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
