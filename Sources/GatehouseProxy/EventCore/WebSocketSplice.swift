import EventLoop
import GatehouseUpstream

#if canImport(Glibc)
import Glibc
#endif

/// A WebSocket tunnel in the event-loop core (RFC 6455 §4): the handshake forwarded to FastAPI
/// over a plain non-blocking socket of our own (curl has no WebSocket support in Debian 12's
/// build), FastAPI's answer read, and — only if that answer is FastAPI's own `101` — the two
/// sockets spliced in the worker's loop, bytes passed through untouched.
///
/// The client's side stays with its `ClientConnection`: bytes for the client go through the
/// connection's output queue (`sendToClient`), and the connection hands over its readiness
/// (`clientReadable`, `clientDrained`). Each direction holds at most one read's worth of
/// bytes: a side is not read while what was read from it has not been written to the other.
///
/// Timeouts: connect (`GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT`) and answer
/// (`GATEHOUSE_UPSTREAM_TIMEOUT`) give 504; an open tunnel with no bytes either way for
/// `GATEHOUSE_UPSTREAM_IDLE_TIMEOUT` is closed.
final class WebSocketSplice: IOReadinessHandler, LoopTimerHandler {
    /// What became of the handshake, for the connection to act on.
    enum Refusal {
        /// FastAPI answered something else; relayed as it is, with its (short) body.
        case refused(UpstreamResponseHead, body: [UInt8])
        /// No usable answer: 502 (unreachable, malformed) or 504 (timed out).
        case failed(timedOut: Bool)
    }

    private unowned let connection: ClientConnection
    private let fd: Int32
    private var watcher: IOWatcher!
    private var timer: LoopTimer!
    private let timeouts: (connect: Int, answer: Int, idle: Int)
    private var phase = Phase.connecting
    private var toUpstream: [UInt8]
    private var toUpstreamSent = 0
    private var answer: [UInt8] = []
    private var clientEnded = false
    private var upstreamEnded = false
    private var lastActivity = Monotonic.milliseconds()
    /// Bytes FastAPI sent through the open tunnel (for the access log).
    private(set) var bytesFromUpstream = 0

    private enum Phase { case connecting, sending, awaitingAnswer, open, closed }

    /// Starts connecting to `address`; nil when no socket could be made (502 at once).
    init?(connection: ClientConnection, loop: EventLoop, address: UpstreamSocketAddress, handshake: [UInt8],
          timeouts: (connect: Int, answer: Int, idle: Int)) {
        self.connection = connection
        self.toUpstream = handshake
        self.timeouts = timeouts
        guard let fd = address.connectNonBlocking() else { return nil }
        self.fd = fd
        watcher = IOWatcher(loop: loop, fd: fd, handler: self)
        timer = LoopTimer(loop: loop, handler: self)
        watcher.setWrite(true)  // writable: connected (or failed: SO_ERROR says which)
        timer.arm(milliseconds: timeouts.connect)
    }

    deinit {
        closeUpstream()
    }

    // MARK: Upstream readiness

    func ioReady(_ watcher: IOWatcher, readable: Bool, writable: Bool) {
        switch phase {
        case .connecting:
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else { return finish(.failed(timedOut: false)) }
            phase = .sending
            timer.arm(milliseconds: timeouts.answer)
            writeUpstream()
        case .sending:
            if writable { writeUpstream() }
        case .awaitingAnswer:
            if readable { readAnswer() }
        case .open:
            if writable { writeUpstream() }
            if readable { readUpstream() }
        case .closed:
            break
        }
    }

    func timerFired(_ timer: LoopTimer) {
        switch phase {
        case .connecting, .sending, .awaitingAnswer:
            finish(.failed(timedOut: true))
        case .open:
            let now = Monotonic.milliseconds()
            if now >= lastActivity + UInt64(timeouts.idle) {
                connection.tunnelEnded()
            } else {
                timer.arm(milliseconds: Int(lastActivity + UInt64(timeouts.idle) - now))
            }
        case .closed:
            break
        }
    }

    // MARK: The handshake

    private func readAnswer() {
        let buffer = connection.worker.readBuffer
        let n = read(fd, buffer.baseAddress, buffer.count)
        if n < 0, errno == EAGAIN || errno == EINTR { return }
        if n <= 0 { return finish(.failed(timedOut: false)) }
        answer.append(contentsOf: UnsafeRawBufferPointer(buffer)[0..<n])
        let parsed: WebSocketHandshake.Answer?
        do {
            parsed = try WebSocketHandshake.parseAnswer(answer)
        } catch {
            return finish(.failed(timedOut: false))
        }
        guard let parsed else { return }
        if parsed.head.status == 101 {
            phase = .open
            answer = []
            lastActivity = Monotonic.milliseconds()
            timer.arm(milliseconds: timeouts.idle)
            connection.tunnelOpened(parsed.head, rest: parsed.rest)
            return
        }
        // A refusal: relayed with its body when that body is declared, short and complete.
        if let length = parsed.contentLength, length <= WebSocketHandshake.maxRefusalBodyBytes, parsed.rest.count < length {
            return  // more of the body to come
        }
        let body = parsed.contentLength.map { Array(parsed.rest.prefix($0)) } ?? []
        finish(.refused(parsed.head, body: body))
    }

    private func finish(_ refusal: Refusal) {
        closeUpstream()
        connection.tunnelRefused(refusal)
    }

    // MARK: The open tunnel

    /// Bytes from the client, to be written to FastAPI.
    func clientReadable() {
        guard phase == .open, toUpstream.count == toUpstreamSent else { return }
        let buffer = connection.worker.readBuffer
        let n = read(connection.fd, buffer.baseAddress, buffer.count)
        if n < 0, errno == EAGAIN || errno == EINTR { return }
        if n <= 0 {
            clientEnded = true
            connection.stopReading()
            if n < 0 { return connection.tunnelEnded() }
            shutdown(fd, Int32(SHUT_WR))  // the client's end of stream, passed on
            if upstreamEnded { connection.tunnelEnded() }
            return
        }
        lastActivity = Monotonic.milliseconds()
        toUpstream = Array(UnsafeRawBufferPointer(buffer)[0..<n])
        toUpstreamSent = 0
        writeUpstream()
    }

    /// Bytes the client had not read were all written: FastAPI may be read again, or, after
    /// FastAPI's end of stream, the client's output is ended too.
    func clientDrained() {
        guard phase == .open else { return }
        if !upstreamEnded {
            watcher.setRead(true)
            return
        }
        connection.shutdownOutput()
        if clientEnded { connection.tunnelEnded() }
    }

    /// Bytes the client sent before the tunnel opened (read with the handshake).
    func forwardEarly(_ bytes: [UInt8]) {
        toUpstream = bytes
        toUpstreamSent = 0
        writeUpstream()
    }

    private func writeUpstream() {
        switch SocketWrite.send(fd, toUpstream, from: &toUpstreamSent) {
        case .done: break
        case .wouldBlock:
            watcher.setWrite(true)
            if phase == .open { connection.stopReading() }
            return
        case .failed:
            if phase == .open { return connection.tunnelEnded() }
            return finish(.failed(timedOut: false))
        }
        toUpstream = []
        toUpstreamSent = 0
        watcher.setWrite(false)
        switch phase {
        case .sending:
            phase = .awaitingAnswer
            watcher.setRead(true)
        case .open:
            if !clientEnded { connection.resumeReading() }
        default:
            break
        }
    }

    private func readUpstream() {
        let buffer = connection.worker.readBuffer
        let n = read(fd, buffer.baseAddress, buffer.count)
        if n < 0, errno == EAGAIN || errno == EINTR { return }
        if n <= 0 {
            upstreamEnded = true
            watcher.setRead(false)
            if n < 0 { return connection.tunnelEnded() }
            connection.sendToClient([])  // FastAPI's end of stream, passed on after the bytes (`clientDrained`)
            return
        }
        lastActivity = Monotonic.milliseconds()
        bytesFromUpstream += n
        // Not read again until the client has taken these (`clientDrained`).
        watcher.setRead(false)
        connection.sendToClient(Array(UnsafeRawBufferPointer(buffer)[0..<n]))
    }

    /// Closes FastAPI's side; the connection closes the client's.
    func closeUpstream() {
        guard phase != .closed else { return }
        phase = .closed
        watcher?.cancel()
        timer?.disarm()
        if fd >= 0 { close(fd) }
    }
}

/// Where FastAPI listens, for the sockets gatehouse opens itself (WebSocket tunnels): an IP
/// address and port, or a Unix socket path (`GATEHOUSE_UPSTREAM=unix:/path`).
enum UpstreamSocketAddress {
    case inet(host: String, port: Int)
    case unix(path: String)

    /// A non-blocking socket with its connect started; nil if it failed at once.
    func connectNonBlocking() -> Int32? {
        switch self {
        case .unix(let path):
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return nil }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                close(fd)
                return nil
            }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            return Self.started(fd, result)
        case .inet(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_NUMERICSERV
            var found: UnsafeMutablePointer<addrinfo>?
            // Usually a numeric address (a sidecar's FastAPI is on loopback), resolved without
            // a lookup; a name is resolved here, blocking this worker for the lookup.
            guard getaddrinfo(host, String(port), &hints, &found) == 0, let info = found else { return nil }
            defer { freeaddrinfo(found) }
            let fd = socket(
                info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return nil }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return Self.started(fd, connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen))
        }
    }

    private static func started(_ fd: Int32, _ result: Int32) -> Int32? {
        if result == 0 || errno == EINPROGRESS { return fd }
        close(fd)
        return nil
    }
}
