import EventLoop
import HTTP1

#if canImport(Glibc)
import Glibc
#endif

/// One of gatehouse's own small answers: the admin endpoints, the development issuer's JWKS.
/// Public because the executable builds them for `LocalAnswerService` (the dev issuer's answers
/// come from `GatehouseDevIssuer`, which does not depend on this module).
public struct LocalAnswer: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public var extraFields: [(name: String, value: String)]

    public init(
        status: Int, contentType: String = "application/json", body: [UInt8],
        extraFields: [(name: String, value: String)] = []
    ) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.extraFields = extraFields
    }

    public static let notFound = LocalAnswer(status: 404, body: Array(#"{"detail":"Not Found"}"#.utf8))
}

/// A small HTTP/1.1 server on an event loop for answers gatehouse computes itself, at once,
/// from the method and path alone (`GET`/`HEAD` of `/healthz`, `/readyz`, `/metrics`, a JWKS).
/// It shares the proxy's parser (`HTTP1RequestParser`), so it refuses exactly what the proxy
/// refuses; request bodies are read and dropped. Keep-alive, pipelining one request at a time,
/// an idle limit of 30 s. Everything runs on the loop's thread.
final class LocalAnswerServer: IOReadinessHandler, LoopTimerHandler {
    /// The answer for a method, a path (query removed) and the request's header fields.
    typealias Answerer = (_ method: String, _ path: String, _ fields: [(name: String, value: String)]) -> LocalAnswer

    private let loop: EventLoop
    private let listenFD: Int32
    private var listener: IOWatcher!
    private let answer: Answerer
    private var connections: [ObjectIdentifier: LocalAnswerConnection] = [:]
    /// Out of descriptors, the listener rests 100 ms instead of spinning on a readable socket.
    private var acceptRetry: LoopTimer!

    init(loop: EventLoop, listenFD: Int32, answer: @escaping Answerer) {
        self.loop = loop
        self.listenFD = listenFD
        self.answer = answer
        listener = IOWatcher(loop: loop, fd: listenFD, handler: self)
        listener.setRead(true)
        acceptRetry = LoopTimer(loop: loop, handler: self)
    }

    /// Stops accepting and closes every connection.
    func close() {
        listener.cancel()
        acceptRetry.disarm()
        Glibc.close(listenFD)
        for connection in Array(connections.values) { connection.close() }
    }

    func ioReady(_ watcher: IOWatcher, readable: Bool, writable: Bool) {
        for _ in 0..<16 {
            let fd = LinuxCalls.acceptNonBlocking(listenFD, address: nil, length: nil)
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE {
                    listener.setRead(false)
                    acceptRetry.arm(milliseconds: 100)
                }
                return
            }
            let connection = LocalAnswerConnection(server: self, loop: loop, fd: fd)
            connections[ObjectIdentifier(connection)] = connection
        }
    }

    func timerFired(_ timer: LoopTimer) { listener.setRead(true) }

    fileprivate func respond(method: String, path: String, fields: [(name: String, value: String)]) -> LocalAnswer {
        answer(method, path, fields)
    }

    fileprivate func closed(_ connection: LocalAnswerConnection) {
        connections[ObjectIdentifier(connection)] = nil
    }
}

private final class LocalAnswerConnection: IOReadinessHandler, LoopTimerHandler {
    unowned let server: LocalAnswerServer
    let fd: Int32
    var watcher: IOWatcher!
    var timer: LoopTimer!
    var parser = HTTP1RequestParser()
    var pending: [UInt8] = []
    var output: [UInt8] = []
    var closeAfterOutput = false
    /// `answerPending` stopped at `maxQueued` with requests left in `pending`.
    var heldBack = false
    var closed = false

    static let idleMilliseconds = 30_000

    init(server: LocalAnswerServer, loop: EventLoop, fd: Int32) {
        self.server = server
        self.fd = fd
        watcher = IOWatcher(loop: loop, fd: fd, handler: self)
        timer = LoopTimer(loop: loop, handler: self)
        watcher.setRead(true)
        timer.arm(milliseconds: Self.idleMilliseconds)
    }

    func timerFired(_ timer: LoopTimer) { close() }

    func ioReady(_ watcher: IOWatcher, readable: Bool, writable: Bool) {
        if writable { flush() }
        if readable, !closed { readAvailable() }
    }

    private func readAvailable() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &buffer, buffer.count)
        if n < 0, errno == EAGAIN || errno == EINTR { return }
        if n <= 0 { return close() }
        timer.arm(milliseconds: Self.idleMilliseconds)
        pending += buffer[0..<n]
        answerPending()
    }

    /// Answers what has been read, while the answers waiting for the client stay under
    /// `maxQueued`: a client that pipelines requests and never reads is no longer read (its
    /// bytes wait in the kernel) instead of making answers pile up here.
    private func answerPending() {
        var used = 0
        heldBack = false
        parsing: while !closeAfterOutput {
            if output.count >= Self.maxQueued {
                heldBack = true
                break
            }
            let step = pending.withUnsafeBytes { parser.parse(UnsafeRawBufferPointer(rebasing: $0[used...])) }
            used += step.consumed
            switch step.event {
            case .needMore: break parsing
            case .head(let head): answer(head)
            case .body, .end: continue
            case .error(let error):
                let body = Array(#"{"detail":"\#(error.status == 431 ? "Request header fields too large" : "Malformed HTTP request")"}"#.utf8)
                write(LocalAnswer(status: error.status, body: body), method: "GET", keepAlive: false)
                break parsing
            }
        }
        pending.removeFirst(used)
        flush()
    }

    static let maxQueued = 64 * 1024

    private func answer(_ head: HTTP1RequestHead) {
        let target = head.target
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        let method = head.method
        let fields = (0..<head.fieldCount).map { (name: head.name(at: $0), value: head.value(at: $0)) }
        write(server.respond(method: method, path: path, fields: fields), method: method, keepAlive: head.keepAlive)
    }

    private func write(_ answer: LocalAnswer, method: String, keepAlive: Bool) {
        var head = "HTTP/1.1 \(answer.status) \(ResponseHeadBytes.reasonPhrase(answer.status))\r\n"
        head += "Content-Type: \(answer.contentType)\r\nContent-Length: \(answer.body.count)\r\n"
        for (name, value) in answer.extraFields { head += "\(name): \(value)\r\n" }
        if !keepAlive { head += "Connection: close\r\n" }
        head += "\r\n"
        output += Array(head.utf8)
        if method != "HEAD" { output += answer.body }
        if !keepAlive { closeAfterOutput = true }
    }

    private func flush() {
        var sent = 0
        if case .failed = SocketWrite.send(fd, output, from: &sent) { return close() }
        output.removeFirst(sent)
        let waiting = !output.isEmpty
        if !waiting, closeAfterOutput { return close() }
        watcher.setWrite(waiting)
        watcher.setRead(!waiting)
        // Requests held back while the answers waited are answered now.
        if !waiting, heldBack { answerPending() }
    }

    func close() {
        guard !closed else { return }
        closed = true
        watcher.cancel()
        timer.disarm()
        Glibc.close(fd)
        server.closed(self)
    }
}
