import GatehouseAuth
import GatehouseUpstream
import HummingbirdCore
public import Logging
import NIOCore
import NIOPosix
import Synchronization
import UnixSignals

/// Runs gatehouse: the proxy listener, the admin listener, and the shutdown sequence.
///
/// Shutdown on SIGTERM or SIGINT, in the order orchestrators expect:
/// 1. `/readyz` turns 503 at once, so load balancers stop choosing this instance;
/// 2. for `GATEHOUSE_SHUTDOWN_DELAY` traffic is still served (endpoints lists lag behind);
/// 3. the proxy listener closes; idle keep-alive connections close; in-flight requests get
///    `GATEHOUSE_SHUTDOWN_TIMEOUT` to finish;
/// 4. whatever remains (SSE streams, slow uploads) is cancelled and the process exits 0.
public struct GatehouseServer: Sendable {
    public let configuration: GatehouseConfiguration
    let logger: Logger

    public init(configuration: GatehouseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    private enum Event: Sendable {
        case signal(String)
        case listenerStopped
    }

    public func run() async throws {
        var upstreamConfiguration = UpstreamClientConfiguration()
        upstreamConfiguration.headersTimeoutMilliseconds = configuration.upstreamTimeout.milliseconds
        upstreamConfiguration.connectTimeoutMilliseconds = configuration.upstreamConnectTimeout.milliseconds
        upstreamConfiguration.idleTimeoutMilliseconds = configuration.upstreamIdleTimeout.milliseconds
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
            self.logger.warning("GATEHOUSE_AUTH=off: every request is forwarded without token verification")
        }
        let readiness = Readiness(listenerCount: 2, jwks: authenticator?.jwks)
        let proxy = ProxyResponder(
            configuration: configuration, client: client, authenticator: authenticator, metrics: metrics, logger: logger)
        let admin = AdminResponder(readiness: readiness, metrics: metrics, jwks: authenticator?.jwks)
        let logger = self.logger

        let maxHeaderBytes = configuration.maxHeaderBytes
        let tunnelIdleTimeout = TimeAmount.milliseconds(Int64(configuration.upstreamIdleTimeout.milliseconds))
        let proxyChannel = HTTP1Channel(
            responder: { request, writer, channel in try await proxy.respond(to: request, writer: writer, channel: channel) },
            configuration: .init(
                additionalChannelHandlers: [
                    ParseErrorHandler(logger: logger),
                    WebSocketUpgradeHandler(proxy: proxy, tunnelIdleTimeout: tunnelIdleTimeout),
                ],
                // HummingbirdCore's idle timer closes a connection that has not completed its
                // request head in this time (slowloris), and idle keep-alive connections.
                idleTimeout: .milliseconds(Int64(configuration.headerReadTimeout.milliseconds)),
                httpDecoderConfiguration: .init(
                    maxHeaderFieldSize: maxHeaderBytes, maxHeaderListSize: maxHeaderBytes, maxHeaderFieldCount: 1000)))
        let proxyServer = Server(
            childChannelSetup: proxyChannel,
            configuration: .init(
                address: .hostname(configuration.listen.host, port: configuration.listen.port), backlog: 1024,
                // Past the limit the listener stops accepting: new connections wait in the
                // backlog; established ones (streams, tunnels) are unaffected.
                availableConnectionsDelegate: MaximumAvailableConnections(configuration.maxConnections, logger: logger)),
            onServerRunning: { channel in
                readiness.listenerStarted()
                logger.info("proxy listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
            },
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: quietServerLogger())
        let adminServer = Server(
            childChannelSetup: HTTP1Channel(
                responder: { request, writer, channel in try await admin.respond(to: request, writer: writer, channel: channel) },
                configuration: .init(idleTimeout: .seconds(30))),
            configuration: .init(address: .hostname(configuration.adminListen.host, port: configuration.adminListen.port)),
            onServerRunning: { channel in
                readiness.listenerStarted()
                logger.info("admin listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
            },
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: quietServerLogger())

        let delay = configuration.shutdownDelay
        let timeout = configuration.shutdownTimeout
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        try await withThrowingTaskGroup(of: Event.self) { group in
            group.addTask {
                try await proxyServer.run()
                return .listenerStopped
            }
            group.addTask {
                try await adminServer.run()
                return .listenerStopped
            }
            group.addTask {
                for await signal in signals { return .signal("\(signal)") }
                return .signal("none")
            }
            if let jwks = authenticator?.jwks {
                group.addTask {
                    await jwks.run()
                    return .listenerStopped
                }
            }
            // A listener that cannot bind throws here; otherwise we wait for a signal.
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
            let drained = await Self.race(timeout: timeout) { try? await proxyServer.shutdownGracefully() }
            if !drained {
                logger.warning("shutdown timeout reached; closing remaining connections")
            }
            _ = await Self.race(timeout: .seconds(1)) { try? await adminServer.shutdownGracefully() }
            client.shutdown()
            group.cancelAll()
        }
        logger.notice("stopped")
    }

    /// Starts `work` and returns true if it finished within `timeout`, false otherwise.
    /// `work` is not awaited past the timeout (a graceful shutdown cannot be interrupted;
    /// the caller cancels the listeners instead, which lets it complete).
    private static func race(timeout: Duration, _ work: @escaping @Sendable () async -> Void) async -> Bool {
        await withCheckedContinuation { continuation in
            let once = ResumeOnce(continuation)
            Task {
                await work()
                once.resume(true)
            }
            Task {
                try? await Task.sleep(for: timeout)
                once.resume(false)
            }
        }
    }

    /// HummingbirdCore logs connection-level noise (e.g. reset peers) at debug/trace; keep it
    /// out of gatehouse's log unless the operator asked for trace.
    private func quietServerLogger() -> Logger {
        var server = logger
        server.logLevel = max(logger.logLevel, .notice)
        return server
    }
}

/// A continuation that the first of several racing tasks resumes; later calls do nothing.
private final class ResumeOnce: Sendable {
    private let continuation: Mutex<CheckedContinuation<Bool, Never>?>

    init(_ continuation: CheckedContinuation<Bool, Never>) {
        self.continuation = Mutex(continuation)
    }

    func resume(_ value: Bool) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}
