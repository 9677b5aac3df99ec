import EventLoop
import GatehouseAuth
import GatehouseUpstream
import HTTP1
public import Logging
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// Runs gatehouse on the event-loop core (`GATEHOUSE_CORE=loop`): `GATEHOUSE_WORKERS` worker
/// threads, each one loop for its client sockets and its libcurl multi handle (see `Worker`).
///
/// The admin listener (`/healthz`, `/readyz`, `/metrics`) runs on the first worker's loop
/// (`LocalAnswerServer`). JWKS fetches still use the curl-thread client of the previous core. The shutdown sequence is `GatehouseServer`'s: /readyz
/// turns 503, traffic is served for `GATEHOUSE_SHUTDOWN_DELAY`, then the listeners close, idle
/// connections close, in-flight requests get `GATEHOUSE_SHUTDOWN_TIMEOUT`, and the rest is cut.
public struct LoopServer: Sendable {
    public let configuration: GatehouseConfiguration
    let logger: Logger

    public init(configuration: GatehouseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        // A peer that closed its socket must cost an EPIPE, not the process: every socket
        // write here passes MSG_NOSIGNAL, and this covers any write that does not.
        signal(SIGPIPE, SIG_IGN)
        var upstreamConfiguration = UpstreamClientConfiguration()
        upstreamConfiguration.headersTimeoutMilliseconds = configuration.upstreamTimeout.milliseconds
        upstreamConfiguration.connectTimeoutMilliseconds = configuration.upstreamConnectTimeout.milliseconds
        upstreamConfiguration.idleTimeoutMilliseconds = configuration.upstreamIdleTimeout.milliseconds
        // The curl-thread client now serves JWKS fetches only.
        let client = UpstreamClient(configuration: upstreamConfiguration)
        defer { client.shutdown() }

        let metrics = ProxyMetrics(version: GatehouseVersion.current)
        metrics.bootstrapMetricsSystem()
        let authenticator = configuration.auth.map {
            Authenticator(settings: $0, client: client, logger: self.logger) { result, duration in
                metrics.recordJWKSFetch(result, duration: duration)
            }
        }
        if authenticator == nil {
            logger.warning("GATEHOUSE_AUTH=off: every request is forwarded without token verification")
        }
        let readiness = Readiness(listenerCount: 2, jwks: authenticator?.jwks)
        let proxy = ProxyResponder(
            configuration: configuration, client: client, authenticator: authenticator, metrics: metrics, logger: logger)
        let shared = WorkerShared(
            proxy: proxy, authenticator: authenticator, metrics: metrics, logger: logger,
            parserLimits: HTTP1Limits(maxHeadBytes: configuration.maxHeaderBytes),
            headerReadTimeoutMilliseconds: configuration.headerReadTimeout.milliseconds, upstream: upstreamConfiguration,
            connections: ConnectionBudget(limit: configuration.maxConnections))

        let count = configuration.workers
        let listeners = try ListeningSocket.bind(configuration.listen, count: count)
        let adminListener = try ListeningSocket.bind(configuration.adminListen, count: 1)[0]
        let admin = AdminResponder(readiness: readiness, metrics: metrics, jwks: authenticator?.jwks)
        let drainedWorkers = Mutex(0)
        var threads: [OSThread] = []
        var inboxes: [WorkerInbox] = []
        for (index, fd) in listeners.enumerated() {
            let inbox = WorkerInbox()
            inboxes.append(inbox)
            shared.connections.register(inbox)
            let started = WorkerThread.Started()
            let adminPart: (fd: Int32, answer: @Sendable (String, String) -> LocalAnswer)? =
                index == 0 ? (adminListener, { method, path in admin.answer(method: method, path: path) }) : nil
            let thread = OSThread {
                LinuxCalls.nameCurrentThread("gatehouse-w\(index)")
                do {
                    let worker = try Worker(shared: shared, listenFD: fd, inbox: inbox, admin: adminPart) {
                        drainedWorkers.withLock { $0 += 1 }
                    }
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
        let logger = self.logger

        let delay = configuration.shutdownDelay
        let timeout = configuration.shutdownTimeout
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        enum Event: Sendable { case signal(String), stopped }
        try await withThrowingTaskGroup(of: Event.self) { group in
            group.addTask {
                for await signal in signals { return .signal("\(signal)") }
                return .signal("none")
            }
            if let jwks = authenticator?.jwks {
                group.addTask {
                    await jwks.run()
                    return .stopped
                }
            }
            guard case .signal(let name)? = try await group.next() else {
                group.cancelAll()
                return
            }
            logger.notice("shutdown requested", metadata: [
                "signal": "\(name)", "delay": "\(delay.settingText)", "timeout": "\(timeout.settingText)",
            ])
            readiness.startDraining()
            try? await Task.sleep(for: delay)
            logger.notice("no longer accepting connections; draining")
            for inbox in inboxes { inbox.post(.drain) }
            let deadline = ContinuousClock.now + timeout
            while drainedWorkers.withLock({ $0 }) < count, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
            if drainedWorkers.withLock({ $0 }) < count {
                logger.warning("shutdown timeout reached; closing remaining connections")
            }
            for inbox in inboxes { inbox.post(.stop) }
            for thread in threads { thread.join() }
            client.shutdown()
            group.cancelAll()
        }
        logger.notice("stopped")
    }

}

struct LoopServerError: Error, CustomStringConvertible {
    let description: String
}

/// The proxy's listening sockets: one per worker, all bound to the same address with
/// `SO_REUSEPORT` (see `Worker` for why), non-blocking, backlog 1024.
enum ListeningSocket {
    static func bind(_ address: ListenAddress, count: Int) throws -> [Int32] {
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
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
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
