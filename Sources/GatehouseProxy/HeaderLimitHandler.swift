import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers 431 (RFC 6585 §5) when a request's header block exceeds
/// `GATEHOUSE_MAX_HEADER_BYTES`.
///
/// The HTTP/1 decoder is configured with that limit and fails with
/// `HTTPParserError.headerOverflow`; HummingbirdCore would answer any parse error with a
/// generic 400, so this handler, placed after the decoder, turns that one error into a 431
/// and closes the connection (the rest of the stream cannot be parsed). Every other error
/// passes through unchanged. Runs on the channel's event loop only.
final class HeaderLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, parserError == .headerOverflow else {
            context.fireErrorCaught(error)
            return
        }
        logger.info("request headers too large", metadata: ["status": "431"])
        let response = ErrorResponse.headersTooLarge
        context.write(wrapOutboundOut(.head(response.head(requestID: nil, closeConnection: true))), promise: nil)
        context.write(wrapOutboundOut(.body(response.body)), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
