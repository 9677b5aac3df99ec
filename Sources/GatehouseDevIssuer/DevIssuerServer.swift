import HTTPTypes
import HummingbirdCore
public import Logging
import NIOCore
import NIOPosix

/// `gatehouse dev-issuer`: serves the development key's JWKS at `/api/auth/jwks`, as Better
/// Auth does, on a loopback address only (it exists for local development and demos).
public struct DevIssuerServer: Sendable {
    public let key: DevKey
    public let host: String
    public let port: Int

    public init(key: DevKey, host: String, port: Int) {
        self.key = key
        self.host = host
        self.port = port
    }

    public func run(logger: Logger) async throws {
        let document = ByteBuffer(string: key.jwksDocument)
        let server = Server(
            childChannelSetup: HTTP1Channel(responder: { request, writer, _ in
                var fields = HTTPFields()
                fields[.contentType] = "application/json"
                let found = request.head.path?.split(separator: "?").first == "/api/auth/jwks"
                let body = found ? document : ByteBuffer(string: #"{"detail":"Not Found"}"#)
                fields[.contentLength] = String(body.readableBytes)
                var bodyWriter = try await writer.writeHead(HTTPResponse(status: found ? .ok : .notFound, headerFields: fields))
                try await bodyWriter.write(body)
                try await bodyWriter.finish(nil)
            }),
            configuration: .init(address: .hostname(host, port: port)),
            onServerRunning: { channel in
                logger.info("dev issuer serving JWKS", metadata: [
                    "url": "http://\(host):\(port)/api/auth/jwks", "kid": .string(key.kid),
                ])
            },
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
        try await server.run()
    }
}
