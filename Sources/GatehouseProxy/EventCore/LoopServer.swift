import EventLoop
import GatehouseAuth
import GatehouseUpstream
import HTTP1
public import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs gatehouse: `GATEHOUSE_WORKERS` worker threads, each one event loop for its client
/// sockets and its libcurl multi handle (see `Worker`), and the calling (main) thread's
/// `ControlLoop` for everything that is not a request: signals, the JWKS refresher and its own
/// curl multi, and the drain. That is `GATEHOUSE_WORKERS` + 1 threads; nothing else runs
/// (no Swift concurrency, no helper threads).
///
/// The admin listener (`/healthz`, `/readyz`, `/metrics`) runs on the first worker's loop
/// (`LocalAnswerServer`). Shutdown: /readyz turns 503, traffic is served for
/// `GATEHOUSE_SHUTDOWN_DELAY`, then the listeners close, idle connections close, in-flight
/// requests get `GATEHOUSE_SHUTDOWN_TIMEOUT`, and the rest is cut.
public struct LoopServer: Sendable {
    public let configuration: GatehouseConfiguration
    let logger: Logger

    public init(configuration: GatehouseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until SIGTERM or SIGINT has drained the workers; returns normally then.
    public func run() throws {
        // A peer that closed its socket must cost an EPIPE, not the process: every socket
        // write here passes MSG_NOSIGNAL, and this covers any write that does not.
        signal(SIGPIPE, SIG_IGN)
        var upstreamConfiguration = UpstreamClientConfiguration()
        upstreamConfiguration.headersTimeoutMilliseconds = configuration.upstreamTimeout.milliseconds
        upstreamConfiguration.connectTimeoutMilliseconds = configuration.upstreamConnectTimeout.milliseconds
        upstreamConfiguration.idleTimeoutMilliseconds = configuration.upstreamIdleTimeout.milliseconds

        let metrics = ProxyMetrics(version: GatehouseVersion.current)
        metrics.bootstrapMetricsSystem()
        let authenticator = configuration.auth.map {
            Authenticator(settings: $0, logger: self.logger) { result, duration in
                metrics.recordJWKSFetch(result, duration: duration)
            }
        }
        if authenticator == nil {
            logger.warning("GATEHOUSE_AUTH=off: every request is forwarded without token verification")
        }
        let readiness = Readiness(listenerCount: 2, jwks: authenticator?.jwks)
        let rules = ForwardingRules(
            configuration: configuration, authenticator: authenticator, metrics: metrics, logger: logger)
        let count = configuration.workers
        let inboxes = (0..<count).map { _ in WorkerInbox() }
        var sessions: SessionLookups?
        if let policy = configuration.sessions, let settings = configuration.auth {
            sessions = SessionLookups(policy: policy, settings: settings, inboxes: inboxes, metrics: metrics)
        }
        let shared = WorkerShared(
            proxy: rules, authenticator: authenticator, metrics: metrics, logger: logger,
            parserLimits: HTTP1Limits(maxHeadBytes: configuration.maxHeaderBytes),
            headerReadTimeoutMilliseconds: configuration.headerReadTimeout.milliseconds, upstream: upstreamConfiguration,
            connections: ConnectionBudget(limit: configuration.maxConnections), sessions: sessions)

        let listeners = try ListeningSocket.bind(configuration.listen, count: count)
        let adminListener = try ListeningSocket.bind(configuration.adminListen, count: 1)[0]
        let admin = AdminResponder(readiness: readiness, metrics: metrics, jwks: authenticator?.jwks)
        let control = try ControlLoop(
            configuration: configuration, upstream: upstreamConfiguration, readiness: readiness,
            jwks: authenticator?.jwks, inboxes: inboxes, logger: logger)
        var threads: [OSThread] = []
        for (index, fd) in listeners.enumerated() {
            let inbox = inboxes[index]
            shared.connections.register(inbox)
            let started = WorkerThread.Started()
            let adminPart: (fd: Int32, answer: @Sendable (String, String, [(name: String, value: String)]) -> LocalAnswer)? =
                index == 0 ? (adminListener, { method, path, _ in admin.answer(method: method, path: path) }) : nil
            let drained = control.drainedCallback
            let thread = OSThread {
                LinuxCalls.nameCurrentThread("gatehouse-w\(index)")
                do {
                    let worker = try Worker(
                        shared: shared, index: index, listenFD: fd, inbox: inbox, workerCount: count, admin: adminPart, drained: drained)
                    started.signal(nil)
                    worker.run()
                } catch {
                    started.signal("\(error)")
                }
            }
            thread.start()
            if let problem = started.wait() { throw LoopServerError(description: "worker did not start: \(problem)") }
            threads.append(thread)
        }
        readiness.listenerStarted()
        logger.info("proxy listening", metadata: [
            "address": "\(configuration.listen)", "workers": "\(count)", "core": "loop",
        ])
        readiness.listenerStarted()
        logger.info("admin listening", metadata: ["address": "\(configuration.adminListen)"])

        control.run()
        for inbox in inboxes { inbox.post(.stop) }
        for thread in threads { thread.join() }
        logger.notice("stopped")
    }
}

/// The main thread's loop: signals, JWKS fetches (with its own curl multi, so a slow issuer
/// never occupies a worker), and the drain sequence as timers. Workers reach it only through
/// its waker (`drainedCallback`, `JWKSCache`'s fetch requests).
final class ControlLoop: SignalHandler, LoopTimerHandler, LoopWakeHandler {
    private let multi: UpstreamMulti
    private let readiness: Readiness
    private let logger: Logger
    private let delay: Duration
    private let timeout: Duration
    private var refresher: JWKSRefresher?
    private var heapTrim: HeapTrim!
    private var signals: [SignalWatcher] = []
    private var drainTimer: LoopTimer!
    private var waker: LoopWaker!
    private let inboxes: [WorkerInbox]
    private let drainedWorkers = DrainedWorkers()

    /// Workers done draining, counted from their threads.
    private final class DrainedWorkers: Sendable {
        let count = Atomic<Int>(0)
    }
    private enum Phase { case serving, delaying, draining, done }
    private var phase = Phase.serving
    /// Declared last: Swift releases stored properties in declaration order, and every event
    /// above (timers, watchers, the multi's sockets) must be freed while the base still exists.
    private let loop: EventLoop

    init(
        configuration: GatehouseConfiguration, upstream: UpstreamClientConfiguration, readiness: Readiness,
        jwks: JWKSCache?, inboxes: [WorkerInbox], logger: Logger
    ) throws {
        self.inboxes = inboxes
        loop = try EventLoop()
        multi = UpstreamMulti(loop: loop, configuration: upstream)
        self.readiness = readiness
        self.logger = logger
        delay = configuration.shutdownDelay
        timeout = configuration.shutdownTimeout
        drainTimer = LoopTimer(loop: loop, handler: self)
        heapTrim = HeapTrim(loop: loop, interval: configuration.memoryTrimInterval, logger: logger)
        waker = try LoopWaker(loop: loop, handler: self)
        signals = [SignalWatcher(loop: loop, signal: SIGTERM, handler: self),
                   SignalWatcher(loop: loop, signal: SIGINT, handler: self)]
        if let jwks {
            refresher = try JWKSRefresher(cache: jwks, loop: loop, multi: multi) { generation in
                // On this thread, after every fetch: parked requests on any worker decide now.
                for inbox in inboxes { inbox.post(.keysFetched(generation: generation)) }
            }
        }
        let multi = self.multi
        loop.batchEnded = { multi.batchEnded() }
    }

    /// A worker has nothing left to serve after the drain (called on that worker's thread).
    var drainedCallback: @Sendable () -> Void {
        let remote = waker.remote
        let counter = drainedWorkers
        return {
            counter.count.add(1, ordering: .relaxed)
            remote.wake()
        }
    }

    /// Runs until the drain has finished or timed out.
    func run() { loop.run() }

    func signalReceived(_ signal: Int32) {
        guard phase == .serving else { return }
        let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
        logger.notice("shutdown requested", metadata: [
            "signal": "\(name)", "delay": "\(delay.settingText)", "timeout": "\(timeout.settingText)",
        ])
        readiness.startDraining()
        phase = .delaying
        drainTimer.arm(milliseconds: delay.milliseconds)
    }

    func timerFired(_ timer: LoopTimer) {
        switch phase {
        case .delaying:
            logger.notice("no longer accepting connections; draining")
            phase = .draining
            for inbox in inboxes { inbox.post(.drain) }
            drainTimer.arm(milliseconds: timeout.milliseconds)
        case .draining:
            logger.warning("shutdown timeout reached; closing remaining connections")
            finish()
        case .serving, .done:
            break
        }
    }

    func woken() {
        if phase == .draining, drainedWorkers.count.load(ordering: .relaxed) >= inboxes.count { finish() }
    }

    private func finish() {
        phase = .done
        drainTimer.disarm()
        heapTrim.stop()
        refresher?.stop()
        // The signal watchers stay until this object goes (after the workers are joined): a
        // second SIGTERM meanwhile is absorbed, not the default action that kills the process.
        loop.stop()
    }
}

struct LoopServerError: Error, CustomStringConvertible {
    let description: String
}

/// The proxy's listening sockets: one per worker, all bound to the same address with
/// `SO_REUSEPORT` (see `Worker` for why), non-blocking, backlog 1024.
///
/// `SO_REUSEPORT` would also let a second process of the same user bind the same port and
/// silently take a share of the connections. So a single socket is bound without it, and
/// several are bound only after a probe bind without it succeeded: a port already in use by
/// anyone, gatehouse included, fails with "Address already in use" as it would without the
/// option.
enum ListeningSocket {
    static func bind(_ address: ListenAddress, count: Int) throws -> [Int32] {
        if count > 1 {
            let probe = try bind(address, count: 1)
            close(probe[0])
        }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(address.host, String(address.port), &hints, &found)
        guard status == 0, let info = found else {
            throw LoopServerError(description: "cannot resolve listen address \(address): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        var sockets: [Int32] = []
        for _ in 0..<count {
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw LoopServerError(description: "socket() failed: errno \(errno)") }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if count > 1 { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
            guard Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
                let problem = String(cString: strerror(errno))
                close(fd)
                for other in sockets { close(other) }
                throw LoopServerError(description: "cannot listen on \(address): \(problem)")
            }
            guard listen(fd, 1024) == 0 else {
                close(fd)
                for other in sockets { close(other) }
                throw LoopServerError(description: "listen() on \(address) failed: errno \(errno)")
            }
            sockets.append(fd)
        }
        return sockets
    }
}

/// A worker's start-up report.
enum WorkerThread {
    /// A one-time start report from the new thread (nil: started; else why not).
    final class Started: Sendable {
        private let state = Mutex<(done: Bool, problem: String?)>((false, nil))
        func signal(_ problem: String?) { state.withLock { $0 = (true, problem) } }
        func wait() -> String? {
            while true {
                let (done, problem) = state.withLock { $0 }
                if done { return problem }
                usleep(1000)
            }
        }
    }
}
