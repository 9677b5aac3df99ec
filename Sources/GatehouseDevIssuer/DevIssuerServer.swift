public import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `gatehouse dev-issuer`: the development keys' JWKS at `/api/auth/jwks`, and get-session at
/// `/api/auth/get-session` for the sessions `gatehouse mint --session` created (`DevSessions`),
/// as Better Auth serves them, for a server on a loopback address only (it exists for local development and
/// demos). This type only decides the answers; the executable serves them (on gatehouse's own
/// event loop), so this module needs no server and no dependency on the proxy.
///
/// The key file is read again whenever it changes, so a key that `gatehouse mint --alg` adds
/// is served without a restart: its kid appears in the JWKS unannounced, as a rotated Better
/// Auth key does.
public final class DevIssuerAnswers: Sendable {
    public let keyFile: String
    private let document: JWKSDocument
    private let logger: Logger

    static let jwksPath = "/api/auth/jwks"
    static let sessionPath = "/api/auth/get-session"
    static let notFound = Array(#"{"detail":"Not Found"}"#.utf8)
    static let unreadable = Array(#"{"detail":"The key file cannot be read"}"#.utf8)

    /// Reads the key file once (logging its kids), so a file that cannot be served stops the
    /// command before it listens.
    public init(keyFile: String, logger: Logger) throws {
        self.keyFile = keyFile
        self.logger = logger
        document = JWKSDocument(path: keyFile, logger: logger)
        _ = try document.current()
    }

    /// The kids of the keys last read from the file.
    public var kids: [String] { document.latestKids }

    /// The answer (status, JSON body) for a request; `path` is without its query. The method
    /// does not matter (nothing here changes state); the server leaves the body out for HEAD.
    public func answer(method: String, path: String, fields: [(name: String, value: String)] = []) -> (status: Int, body: [UInt8]) {
        if path == Self.sessionPath { return (200, sessionAnswer(fields)) }
        guard path == Self.jwksPath else { return (404, Self.notFound) }
        do {
            return (200, try document.current().body)
        } catch {
            logger.error("dev issuer cannot serve its keys", metadata: ["error": "\(error)"])
            return (500, Self.unreadable)
        }
    }

    /// get-session: the credential is the session cookie (any `*.session_token` cookie, the
    /// development and the `__Secure-` name alike) or the bearer plugin's header.
    func sessionAnswer(_ fields: [(name: String, value: String)]) -> [UInt8] {
        var credential: String?
        for field in fields {
            switch field.name.lowercased() {
            case "authorization":
                let parts = field.value.split(separator: " ", maxSplits: 1)
                if parts.count == 2, parts[0].lowercased() == "bearer" { credential = String(parts[1]) }
            case "cookie" where credential == nil:
                for pair in field.value.split(separator: ";") {
                    let nameValue = pair.split(separator: "=", maxSplits: 1)
                    let trim = { (text: Substring) in String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed()) }
                    if nameValue.count == 2, trim(nameValue[0]).hasSuffix(".session_token") {
                        credential = trim(nameValue[1])
                    }
                }
            default: break
            }
        }
        guard let credential else { return Array("null".utf8) }
        return DevSessions.answer(keyFile: keyFile, credential: credential)
    }

    /// Logs that the JWKS is served at `host:port` (once the socket listens), with the kids.
    public func announce(host: String, port: Int) {
        logger.info("dev issuer serving JWKS", metadata: [
            "url": "http://\(host):\(port)\(Self.jwksPath)", "kids": .string(kids.joined(separator: ",")),
        ])
    }
}

/// The JWKS document of the key file, rebuilt when the file's modification time, size or
/// inode changes (`mint` replaces the file by a rename: a new inode even within one mtime tick).
private final class JWKSDocument: Sendable {
    struct Snapshot {
        var stamp: [Int]
        var body: [UInt8]
        var kids: [String]
    }

    let path: String
    let logger: Logger
    private let cached = Mutex<Snapshot?>(nil)

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    var latestKids: [String] { cached.withLock { $0?.kids ?? [] } }

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
        let snapshot = Snapshot(stamp: stamp, body: Array(keys.jwksDocument.utf8), kids: keys.keys.map(\.kid))
        cached.withLock { $0 = snapshot }
        logger.info("dev issuer keys loaded", metadata: ["kids": .string(snapshot.kids.joined(separator: ","))])
        return snapshot
    }
}
