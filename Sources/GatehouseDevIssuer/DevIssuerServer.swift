import HTTPTypes
import HummingbirdCore
public import Logging
import NIOCore
import NIOPosix
import Synchronization

/// `gatehouse dev-issuer`: serves the development keys' JWKS at `/api/auth/jwks`, as Better
/// Auth does, on a loopback address only (it exists for local development and demos).
///
/// The key file is read again whenever it changes, so a key that `gatehouse mint --alg` adds
/// is served without a restart: its kid appears in the JWKS unannounced, as a rotated Better
/// Auth key does.
public struct DevIssuerServer: Sendable {
    public let keyFile: String
    public let host: String
    public let port: Int

    public init(keyFile: String, host: String, port: Int) {
        self.keyFile = keyFile
        self.host = host
        self.port = port
    }

    public func run(logger: Logger) async throws {
        let document = JWKSDocument(path: keyFile, logger: logger)
        let kids = try document.current().kids
        let server = Server(
            childChannelSetup: HTTP1Channel(responder: { request, writer, _ in
                var fields = HTTPFields()
                fields[.contentType] = "application/json"
                let found = request.head.path?.split(separator: "?").first == "/api/auth/jwks"
                var status = HTTPResponse.Status.ok
                var body = ByteBuffer(string: #"{"detail":"Not Found"}"#)
                if found {
                    do {
                        body = try document.current().body
                    } catch {
                        logger.error("dev issuer cannot serve its keys", metadata: ["error": "\(error)"])
                        status = .internalServerError
                        body = ByteBuffer(string: #"{"detail":"The key file cannot be read"}"#)
                    }
                } else {
                    status = .notFound
                }
                fields[.contentLength] = String(body.readableBytes)
                var bodyWriter = try await writer.writeHead(HTTPResponse(status: status, headerFields: fields))
                try await bodyWriter.write(body)
                try await bodyWriter.finish(nil)
            }),
            configuration: .init(address: .hostname(host, port: port)),
            onServerRunning: { channel in
                logger.info("dev issuer serving JWKS", metadata: [
                    "url": "http://\(host):\(port)/api/auth/jwks", "kids": .string(kids.joined(separator: ",")),
                ])
            },
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
        try await server.run()
    }
}

/// The JWKS document of the key file, rebuilt when the file's modification time or size changes.
private final class JWKSDocument: Sendable {
    struct Snapshot {
        var stamp: [Int]
        var body: ByteBuffer
        var kids: [String]
    }

    let path: String
    let logger: Logger
    private let cached = Mutex<Snapshot?>(nil)

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    func current() throws -> Snapshot {
        var info = stat()
        let found = stat(path, &info) == 0
        #if canImport(Darwin)
        let modified = info.st_mtimespec
        #else
        let modified = info.st_mtim
        #endif
        let stamp: [Int] = found ? [Int(modified.tv_sec), Int(modified.tv_nsec), Int(info.st_size), Int(info.st_ino)] : []
        if let snapshot = cached.withLock({ $0 }), snapshot.stamp == stamp { return snapshot }
        let keys = try DevKeySet.load(path: path)
        let snapshot = Snapshot(stamp: stamp, body: ByteBuffer(string: keys.jwksDocument), kids: keys.keys.map(\.kid))
        cached.withLock { $0 = snapshot }
        logger.info("dev issuer keys loaded", metadata: ["kids": .string(snapshot.kids.joined(separator: ","))])
        return snapshot
    }
}
