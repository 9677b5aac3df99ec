import EventLoop
import Glibc
import Synchronization

/// A real HTTP/1.1 server for the upstream tests, on plain blocking sockets: one pthread accepts
/// on 127.0.0.1 (or a Unix socket) and one pthread per connection runs a `Script` against it.
/// No NIO, no Swift concurrency: the loop under test runs on the test's own thread, and nothing
/// here waits on it.
///
/// Descriptors are closed only by `stop()` (connection threads end a connection with
/// `shutdown`), so a number the test process reuses meanwhile (curl's sockets in a test running
/// in parallel) can never be hit by a late `shutdown` here.
final class TestServer: Sendable {
    /// One request as the server parsed it off the wire.
    struct Request: Sendable {
        var method: String
        var target: String
        var headers: [(name: String, value: String)]
        var body: [UInt8]
        /// 1 for the first connection accepted, 2 for the second, …
        var connection: Int

        /// Every value of a field, case-insensitively, in order.
        func values(_ name: String) -> [String] {
            headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        }
    }

    /// What the server does with one accepted connection (on that connection's own thread).
    typealias Script = @Sendable (Connection) -> Void

    private struct State {
        var requests: [Request] = []
        var connections = 0
        var received: [UInt8] = []
        var connectionFDs: [Int32] = []
        var threads: [OSThread] = []
    }

    private let state = Mutex(State())
    private let listenFD: Int32
    private let script: Script
    private let unixPath: String?
    /// `http://127.0.0.1:port`, or `unix:/path` for a Unix-socket server.
    let origin: String
    private let acceptThread = Mutex<OSThread?>(nil)

    private static let sequence = Atomic(0)

    /// Starts a server on 127.0.0.1 (an ephemeral port) or, with `unixSocket`, on a fresh Unix
    /// socket under /tmp.
    init(unixSocket: Bool = false, script: @escaping Script = TestServer.echo) {
        self.script = script
        if unixSocket {
            let n = Self.sequence.add(1, ordering: .relaxed).newValue
            let path = "/tmp/gh-upstreamtests-\(getpid())-\(n).sock"
            unlink(path)
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            precondition(fd >= 0, "socket: \(errno)")
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: Array(path.utf8) + [0])
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            precondition(bound == 0 && listen(fd, 128) == 0, "bind/listen \(path): \(errno)")
            listenFD = fd
            unixPath = path
            origin = "unix:" + path
        } else {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            precondition(fd >= 0, "socket: \(errno)")
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            precondition(bound && listen(fd, 128) == 0, "bind/listen: \(errno)")
            listenFD = fd
            unixPath = nil
            origin = "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
        }
        let thread = OSThread { [self] in acceptLoop() }
        acceptThread.withLock { $0 = thread }
        thread.start()
    }

    /// Runs `body` with a server that lives for its duration.
    static func with<T>(
        unixSocket: Bool = false, script: @escaping Script = TestServer.echo, _ body: (TestServer) throws -> T
    ) rethrows -> T {
        let server = TestServer(unixSocket: unixSocket, script: script)
        defer { server.stop() }
        return try body(server)
    }

    /// Requests read so far, in the order read.
    var requests: [Request] { state.withLock { $0.requests } }
    /// Connections accepted so far.
    var connections: Int { state.withLock { $0.connections } }
    /// Every byte read from every connection, in the order read (a connection's bytes together).
    var received: String { state.withLock { String(decoding: $0.received, as: UTF8.self) } }

    private func acceptLoop() {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return  // `stop()` shut the listening socket down
            }
            let number = state.withLock { state -> Int in
                state.connections += 1
                state.connectionFDs.append(fd)
                return state.connections
            }
            let connection = Connection(server: self, fd: fd, number: number)
            let thread = OSThread { [script] in
                script(connection)
                connection.end()
            }
            state.withLock { $0.threads.append(thread) }
            thread.start()
        }
    }

    /// Stops accepting, cuts every connection, joins every thread, then closes every descriptor.
    func stop() {
        shutdown(listenFD, Int32(SHUT_RDWR))
        acceptThread.withLock { $0 }?.join()
        let (fds, threads) = state.withLock { ($0.connectionFDs, $0.threads) }
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
        for thread in threads { thread.join() }
        for fd in fds { close(fd) }
        close(listenFD)
        if let unixPath { unlink(unixPath) }
    }

    fileprivate func record(_ request: Request) { state.withLock { $0.requests.append(request) } }
    fileprivate func record(received bytes: ArraySlice<UInt8>) { state.withLock { $0.received += bytes } }

    /// A connection as a script sees it: blocking reads of requests, blocking writes.
    final class Connection: @unchecked Sendable {
        // @unchecked: used by its own thread only (made on the accept thread before it starts).
        private unowned let server: TestServer
        let fd: Int32
        let number: Int
        private var buffer: [UInt8] = []
        /// The peer closed (or `stop()` cut the connection).
        private(set) var closed = false

        fileprivate init(server: TestServer, fd: Int32, number: Int) {
            self.server = server
            self.fd = fd
            self.number = number
        }

        /// Reads more bytes into the buffer; false once the connection is closed.
        private func fill() -> Bool {
            guard !closed else { return false }
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    buffer += chunk[..<n]
                    server.record(received: chunk[..<n])
                    return true
                }
                if n < 0, errno == EINTR { continue }
                closed = true
                return false
            }
        }

        /// One CRLF-terminated line, without its CRLF.
        private func readLine() -> String? {
            while true {
                if let end = indexOf([0x0D, 0x0A]) {
                    let line = String(decoding: buffer[..<end], as: UTF8.self)
                    buffer.removeFirst(end + 2)
                    return line
                }
                guard fill() else { return nil }
            }
        }

        /// Exactly `count` bytes (of a body read by hand); nil if the connection ended first.
        func read(count: Int) -> [UInt8]? {
            while buffer.count < count { guard fill() else { return nil } }
            let bytes = Array(buffer[..<count])
            buffer.removeFirst(count)
            return bytes
        }

        private func indexOf(_ needle: [UInt8]) -> Int? {
            guard buffer.count >= needle.count else { return nil }
            for start in 0...(buffer.count - needle.count) where buffer[start] == needle[0] {
                if Array(buffer[start..<(start + needle.count)]) == needle { return start }
            }
            return nil
        }

        /// The next request's line and fields, its body left unread; nil once the peer closed.
        func readHead() -> Request? {
            guard let line = readLine() else { return nil }
            let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
            guard parts.count == 3 else { return nil }
            var headers: [(name: String, value: String)] = []
            while let field = readLine(), !field.isEmpty {
                guard let colon = field.firstIndex(of: ":") else { return nil }
                let value = field[field.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
                headers.append((String(field[..<colon]), String(value)))
            }
            return Request(method: parts[0], target: parts[1], headers: headers, body: [], connection: number)
        }

        /// The body of `head`'s request (Content-Length or chunked), then the request is
        /// recorded; nil if the connection ended first.
        func readBody(of head: Request) -> Request? {
            var request = head
            if let length = head.values("Content-Length").first.flatMap({ Int($0) }) {
                guard let body = read(count: length) else { return nil }
                request.body = body
            } else if head.values("Transfer-Encoding").contains(where: { $0.lowercased().contains("chunked") }) {
                while true {
                    guard let sizeLine = readLine(), let size = Int(sizeLine.prefix { $0 != ";" }, radix: 16) else { return nil }
                    if size == 0 {
                        while let trailer = readLine(), !trailer.isEmpty {}
                        break
                    }
                    guard let chunk = read(count: size), readLine() == "" else { return nil }
                    request.body += chunk
                }
            }
            server.record(request)
            return request
        }

        /// A whole request (head and body), recorded; nil once the peer closed.
        func readRequest() -> Request? {
            guard let head = readHead() else { return nil }
            return readBody(of: head)
        }

        func write(_ bytes: [UInt8]) {
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                if n > 0 {
                    offset += n
                } else if n < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }

        func write(_ text: String) { write(Array(text.utf8)) }

        /// Reads and discards until the peer closes (or `stop()` cuts the connection): a server
        /// that stalls, or that answered early and lets the client finish sending.
        func drainUntilClosed() {
            buffer.removeAll()
            while fill() { buffer.removeAll() }
        }

        /// Ends the connection (a FIN to the peer); the descriptor stays open until `stop()`.
        func end() { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    // MARK: Scripts and answers

    /// Answers every request with 201 and a body naming the method, target, `X-Probe` and
    /// `X-Injected` fields and the request body it received, so a test sees what reached the
    /// server. Keeps the connection open between requests.
    static let echo: Script = { connection in
        while let request = connection.readRequest() {
            let fields = request.values("X-Probe") + request.values("X-Injected")
            let body = "\(request.method) \(request.target) \(fields.joined(separator: ",")) "
                + String(decoding: request.body, as: UTF8.self)
            connection.write(
                response(status: 201, reason: "Created",
                    headers: [("X-Served", "echo"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], body: Array(body.utf8)))
        }
    }

    /// Answers every request with the same response.
    static func always(_ bytes: [UInt8]) -> Script {
        { connection in
            while connection.readRequest() != nil { connection.write(bytes) }
        }
    }

    /// A response with a Content-Length.
    static func response(status: Int, reason: String, headers: [(String, String)] = [], body: [UInt8]) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(reason)\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        return Array((head + "\r\n").utf8) + body
    }

    /// A response with a chunked body: the chunks as given.
    static func chunkedResponse(status: Int = 200, headers: [(String, String)] = [], chunks: [[UInt8]]) -> [UInt8] {
        var head = "HTTP/1.1 \(status) OK\r\nTransfer-Encoding: chunked\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        var bytes = Array((head + "\r\n").utf8)
        for chunk in chunks where !chunk.isEmpty {
            bytes += Array((String(chunk.count, radix: 16) + "\r\n").utf8) + chunk + [0x0D, 0x0A]
        }
        return bytes + Array("0\r\n\r\n".utf8)
    }

    /// An origin where nothing listens: a port bound and released (connecting is refused).
    static func refusedOrigin() -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                _ = bind(fd, $0, length)
                _ = getsockname(fd, $0, &length)
            }
        }
        return "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
    }
}

/// Runs the loop and stops it after `milliseconds` (a deadline, or a pause to let late
/// callbacks show). The handler owns its timer, as `LoopTimer` requires.
final class LoopStopper: LoopTimerHandler {
    let loop: EventLoop
    private var timer: LoopTimer!
    private(set) var fired = false

    init(loop: EventLoop, milliseconds: Int) {
        self.loop = loop
        timer = LoopTimer(loop: loop, handler: self)
        timer.arm(milliseconds: milliseconds)
    }

    func timerFired(_ timer: LoopTimer) {
        fired = true
        loop.stop()
    }

    func cancel() { timer.disarm() }
}
