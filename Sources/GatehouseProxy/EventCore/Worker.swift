import EventLoop
import GatehouseAuth
import GatehouseUpstream
import HTTP1
import JOSE
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What every worker reads and nothing changes after start: shared by reference (a class, so
/// reading `proxy` does not copy and retain the whole struct per request), never locked.
final class WorkerShared: Sendable {
    let proxy: ForwardingRules
    let authenticator: Authenticator?
    let metrics: ProxyMetrics
    let logger: Logger
    let parserLimits: HTTP1Limits
    let headerReadTimeoutMilliseconds: Int
    let upstream: UpstreamClientConfiguration
    let connections: ConnectionBudget
    /// Better Auth session lookups; nil with `GATEHOUSE_SESSIONS=off`.
    let sessions: SessionLookups?

    init(
        proxy: ForwardingRules, authenticator: Authenticator?, metrics: ProxyMetrics, logger: Logger,
        parserLimits: HTTP1Limits, headerReadTimeoutMilliseconds: Int, upstream: UpstreamClientConfiguration,
        connections: ConnectionBudget, sessions: SessionLookups?
    ) {
        self.sessions = sessions
        self.proxy = proxy
        self.authenticator = authenticator
        self.metrics = metrics
        self.logger = logger
        self.parserLimits = parserLimits
        self.headerReadTimeoutMilliseconds = headerReadTimeoutMilliseconds
        self.upstream = upstream
        self.connections = connections
    }
}

/// `GATEHOUSE_MAX_CONNECTIONS` across all workers: past it, workers stop accepting (new
/// connections wait in the kernel's backlog) until one closes. The count is one atomic, touched
/// once per connection, not per request.
final class ConnectionBudget: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)
    private let pausedWorkers = Atomic<Int>(0)
    private let inboxes = Mutex<[WorkerInbox]>([])

    init(limit: Int) { self.limit = limit }

    func register(_ inbox: WorkerInbox) { inboxes.withLock { $0.append(inbox) } }

    /// Takes a place for a new connection; false when all are taken.
    func acquire() -> Bool {
        if open.add(1, ordering: .relaxed).newValue <= limit { return true }
        open.subtract(1, ordering: .relaxed)
        return false
    }

    /// A connection closed: paused workers (if any) may accept again.
    func release() {
        open.subtract(1, ordering: .relaxed)
        if pausedWorkers.load(ordering: .relaxed) > 0 {
            for inbox in inboxes.withLock({ $0 }) { inbox.post(.resumeAccepting) }
        }
    }

    func paused() { pausedWorkers.add(1, ordering: .relaxed) }
    func resumed() { pausedWorkers.subtract(1, ordering: .relaxed) }
}

/// Messages to a worker from other threads, delivered through its `LoopWaker`.
final class WorkerInbox: Sendable {
    enum Message: Sendable {
        /// A JWKS fetch ended: the worker takes the new key snapshot, then its parked requests
        /// are decided (`ClientConnection.keysFetched`).
        case keysFetched(generation: UInt64)
        /// Stop accepting; close idle connections; close the others after their answer.
        case drain
        /// Close everything and leave the loop.
        case stop
        /// A connection closed somewhere: accept again if paused at the connection limit.
        case resumeAccepting
        /// A session lookup another worker ran has ended: the request of `connection` that
        /// joined it is decided (`ClientConnection.sessionDecided`).
        case sessionDecided(connection: Int, verdict: SessionVerdict)
    }

    private let messages = Mutex<[Message]>([])
    /// Set once the worker's loop exists; the waker's descriptor lives as long as the process.
    private let remote = Mutex<LoopWaker.Remote?>(nil)

    func attach(_ waker: LoopWaker.Remote) { remote.withLock { $0 = waker } }

    func post(_ message: Message) {
        messages.withLock { $0.append(message) }
        remote.withLock { $0 }?.wake()
    }

    func take() -> [Message] { messages.withLock { list in defer { list = [] }; return list } }
}

/// One worker: a thread running one `EventLoop` that owns a listening socket, the client
/// connections it accepted, and one `UpstreamMulti` with its easy-handle pool. Nothing of it
/// is touched by another thread; the only ways in are `WorkerInbox.post` (a wake-up) and the
/// immutable `WorkerShared`.
///
/// Accepting: each worker has its own listening socket bound with `SO_REUSEPORT`, so the
/// kernel spreads new connections over the workers by a hash of the peer's address and port,
/// and no two workers ever wake for one connection. (A shared listener with `EPOLLEXCLUSIVE`
/// would balance better under uneven load, but every accept would then contend on one queue,
/// and libevent does not expose the flag.)
final class Worker: IOReadinessHandler, LoopWakeHandler {
    let shared: WorkerShared
    /// This worker's place among all workers (how another worker addresses its inbox).
    let index: Int
    let multi: UpstreamMulti
    let inbox: WorkerInbox
    /// Bytes read from any client land here first; a connection keeps only what it could not
    /// use yet. 64 KiB, the most one `read` takes.
    let readBuffer: UnsafeMutableRawBufferPointer
    private(set) var draining = false
    private var reportedDrained = false
    private var listener: IOWatcher?
    private let listenFD: Int32
    private var waker: LoopWaker!
    private var connections: [Int: ClientConnection] = [:]
    private var nextConnectionID = 0
    private var toFlush: [ClientConnection] = []
    private var toContinue: [ClientConnection] = []
    /// Connections whose request waits for a JWKS fetch (an unknown kid), and for which fetch.
    private var parkedForKeys: [(connection: Int, generation: UInt64)] = []
    /// Session verdicts for this worker's parked requests, delivered after the batch.
    private var sessionVerdicts: [(connection: Int, verdict: SessionVerdict)] = []
    /// This worker's key snapshot and token-cache share; nil with `GATEHOUSE_AUTH=off`.
    let auth: WorkerAuthState?
    /// This worker's HMAC context for `X-Gatehouse-Signature`; nil without a secret.
    let signer: HMACSHA256?
    /// Not accepting: all of `GATEHOUSE_MAX_CONNECTIONS` are open.
    private var acceptPaused = false
    private let acceptRetryHandler = AcceptRetry()
    private var acceptRetry: LoopTimer!
    /// Access-log lines of this batch, written with one `write` when it ends.
    private var accessLog: [UInt8] = []
    /// The logger is gatehouse's JSON backend at level info or below (decided once, not per
    /// request): lines go straight into `accessLog`.
    private lazy var logsDirectly = AccessLogEntry(method: "", path: "", requestID: "").directLine(for: shared.logger) != nil
        && shared.logger.logLevel <= .info
    /// Fresh request ids from a buffer of random bytes (one `getrandom` per 256 ids).
    var requestIDs = RequestIDSource()
    /// Called (on this thread) once the worker has nothing left to serve after a drain.
    private let drained: @Sendable () -> Void
    /// The admin listener, on the first worker's loop (it answers in microseconds).
    private var admin: LocalAnswerServer?

    /// Declared last: Swift releases stored properties in declaration order, and every event
    /// above (watchers, timers, the multi's sockets) must be freed while the base still exists.
    let loop: EventLoop

    /// `admin`: the admin listener's socket and its answers, for one worker only.
    init(
        shared: WorkerShared, index: Int, listenFD: Int32, inbox: WorkerInbox, workerCount: Int,
        admin: (fd: Int32, answer: @Sendable (String, String, [(name: String, value: String)]) -> LocalAnswer)? = nil,
        drained: @escaping @Sendable () -> Void
    ) throws {
        self.shared = shared
        self.index = index
        signer = shared.proxy.configuration.identitySignature?.makeSigner()
        auth = shared.authenticator?.makeWorkerState(workers: workerCount)
        self.listenFD = listenFD
        self.inbox = inbox
        self.drained = drained
        loop = try EventLoop()
        multi = UpstreamMulti(loop: loop, configuration: shared.upstream)
        readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        waker = try LoopWaker(loop: loop, handler: self)
        inbox.attach(waker.remote)
        listener = IOWatcher(loop: loop, fd: listenFD, handler: self)
        listener?.setRead(true)
        acceptRetry = LoopTimer(loop: loop, handler: acceptRetryHandler)
        acceptRetryHandler.worker = self
        if let admin { self.admin = LocalAnswerServer(loop: loop, listenFD: admin.fd, answer: admin.answer) }
        loop.batchEnded = { [unowned self] in self.batchEnded() }
    }

    deinit {
        readBuffer.deallocate()
    }

    func run() {
        loop.run()
        admin?.close()
        for connection in Array(connections.values) { connection.close() }
        writeAccessLog()
        closeListener()
    }

    private var listenerClosed = false

    private func closeListener() {
        guard !listenerClosed else { return }
        listenerClosed = true
        listener?.cancel()
        listener = nil
        acceptRetry.disarm()
        Glibc.close(listenFD)
    }

    /// Accepting again after running out of descriptors.
    private final class AcceptRetry: LoopTimerHandler {
        unowned(unsafe) var worker: Worker?
        func timerFired(_ timer: LoopTimer) { worker?.retryAccepting() }
    }

    private func retryAccepting() {
        if !acceptPaused, !draining { listener?.setRead(true) }
    }

    // MARK: Batches

    /// After every batch of loop callbacks: curl's due work first (it may complete answers),
    /// then the requests held back behind answers, then one write per connection with output.
    private func batchEnded() {
        multi.batchEnded()
        while !toContinue.isEmpty || !toFlush.isEmpty || !sessionVerdicts.isEmpty {
            let verdicts = sessionVerdicts
            sessionVerdicts = []
            for (id, verdict) in verdicts { connections[id]?.sessionDecided(verdict) }
            let continuing = toContinue
            toContinue = []
            for connection in continuing { connection.continueAfterBatch() }
            let flushing = toFlush
            toFlush = []
            for connection in flushing where connection.flushScheduled { connection.flush() }
        }
        writeAccessLog()
    }

    /// One access-log line per request: collected during a batch and written at its end, so a
    /// busy worker makes one `write` for many requests instead of one each.
    func log(_ entry: AccessLogEntry) {
        guard logsDirectly else {
            entry.log(to: shared.logger)
            return
        }
        accessLog.append(contentsOf: entry.jsonLine(timestamp: LineLogHandler.timestamp()))
        if accessLog.count >= 64 * 1024 { writeAccessLog() }
    }

    private func writeAccessLog() {
        guard !accessLog.isEmpty else { return }
        LineLogHandler.writeLine(accessLog)
        accessLog.removeAll(keepingCapacity: accessLog.count <= 64 * 1024)
    }

    func scheduleFlush(_ connection: ClientConnection) { toFlush.append(connection) }

    func afterBatch(_ connection: ClientConnection) { toContinue.append(connection) }

    // MARK: Accepting

    func ioReady(_ watcher: IOWatcher, readable: Bool, writable: Bool) {
        // Up to 64 connections per readiness event, so one flood cannot starve the others.
        for _ in 0..<64 {
            guard shared.connections.acquire() else {
                acceptPaused = true
                shared.connections.paused()
                listener?.setRead(false)
                // A close between the failed acquire and `paused()` posted no wake-up: look once
                // more; a place found is handed back, which wakes every paused worker.
                if shared.connections.acquire() { shared.connections.release() }
                return
            }
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &address) {
                LinuxCalls.acceptNonBlocking(listenFD, address: UnsafeMutableRawPointer($0), length: &length)
            }
            if fd < 0 {
                shared.connections.release()
                // Out of descriptors: the listener stays readable and would spin; it rests for
                // 100 ms instead. EAGAIN (all taken) and other errors: the next event retries.
                if errno == EMFILE || errno == ENFILE {
                    listener?.setRead(false)
                    acceptRetry.arm(milliseconds: 100)
                }
                return
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            nextConnectionID += 1
            let connection = ClientConnection(
                worker: self, id: nextConnectionID, fd: fd, peer: SocketAddressText.ip(of: &address))
            connections[nextConnectionID] = connection
        }
    }

    func connectionClosed(_ connection: ClientConnection) {
        connections[connection.id] = nil
        shared.connections.release()
        if draining { reportDrainedIfDone() }
    }

    // MARK: Messages from other threads

    func woken() {
        for message in inbox.take() {
            switch message {
            case .keysFetched(let generation):
                auth?.refresh()
                // Only requests waiting for this fetch or an earlier one: a request parked for
                // a later fetch must not be decided on this one's keys.
                let released = parkedForKeys.filter { $0.generation <= generation }
                parkedForKeys.removeAll { $0.generation <= generation }
                for parked in released { connections[parked.connection]?.keysFetched() }
            case .drain:
                guard !draining else { continue }
                draining = true
                // The listening socket itself closes, so new connections are refused (and go
                // elsewhere) instead of waiting in a backlog nobody reads.
                closeListener()
                for connection in Array(connections.values) where connection.isIdle { connection.close() }
                reportDrainedIfDone()
            case .stop:
                loop.stop()
            case .sessionDecided(let connection, let verdict):
                connections[connection]?.sessionDecided(verdict)
            case .resumeAccepting:
                if acceptPaused, !draining {
                    acceptPaused = false
                    shared.connections.resumed()
                    listener?.setRead(true)
                }
            }
        }
    }

    /// Tells the control loop once, and only once, that this worker has nothing left to serve.
    private func reportDrainedIfDone() {
        guard draining, connections.isEmpty, !reportedDrained else { return }
        reportedDrained = true
        drained()
    }

    /// A connection's request waits for the JWKS fetch it asked for; `.keysFetched` (posted to
    /// every worker when any fetch ends) releases it. Connections are named by id, never
    /// by reference, so one that closed meanwhile is simply not found.
    func parkUntilKeysFetched(connection id: Int, generation: UInt64) {
        parkedForKeys.append((id, generation))
    }

    /// Runs the session lookup a connection's request asked for first (`SessionCache.begin`
    /// said `.lookUp`); every request that joined it hears the verdict by connection id.
    func lookUpSession(_ credential: SessionCredential, digest: TokenCache.Digest) {
        shared.sessions?.lookUp(credential, digest: digest, on: multi, worker: index) { [unowned self] id, verdict in
            sessionVerdicts.append((id, verdict))
        }
    }
}

/// The text form of a peer's IP address, for `X-Forwarded-For` and trusted-proxy checks.
enum SocketAddressText {
    static func ip(of address: inout sockaddr_storage) -> String? {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch Int32(address.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { ipv4 in
                    var raw = ipv4.pointee.sin_addr
                    return inet_ntop(AF_INET, &raw, &text, socklen_t(text.count)).map { String(cString: $0) }
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { ipv6 in
                    var raw = ipv6.pointee.sin6_addr
                    return inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count)).map { String(cString: $0) }
                }
            }
        default:
            return nil
        }
    }
}

/// Request ids (`X-Request-Id`) for one worker: 128 random bits each, in hex, cut from a buffer
/// filled 4 KiB at a time. Debian 12's glibc makes every `arc4random_buf` a `getrandom` system
/// call; one per request showed in the syscall profile.
struct RequestIDSource {
    private var pool = [UInt8](repeating: 0, count: 4096)
    private var used = 4096

    mutating func next() -> String {
        if used + 16 > pool.count {
            pool.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
            used = 0
        }
        defer { used += 16 }
        return pool.withUnsafeBytes { bytes in
            String(unsafeUninitializedCapacity: 32) { buffer in
                let hex: StaticString = "0123456789abcdef"
                for index in 0..<16 {
                    let byte = bytes[used + index]
                    buffer[2 * index] = hex.utf8Start[Int(byte >> 4)]
                    buffer[2 * index + 1] = hex.utf8Start[Int(byte & 0xf)]
                }
                return 32
            }
        }
    }
}
