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
final class ParseErrorHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    private let logger: Logger
    private var answered = false

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // One answer per connection: the decoder stays in its error state afterwards.
        guard !answered else { return }
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
