import EventLoop

#if canImport(Glibc)
import Glibc
#endif

/// A `LocalAnswerServer` as a whole process: `gatehouse dev-issuer` serves its JWKS with it.
///
/// Everything runs on the calling thread: one `EventLoop` that owns the listening socket, the
/// connections and the SIGTERM/SIGINT watchers (a process watches signals on one loop only, and
/// this is the only loop of the process). A signal stops the loop; the connections are closed
/// and `run` returns, so the command exits with status 0 as after any normal end.
public enum LocalAnswerService {
    /// Serves `answer(method, path, fields)` (the path without its query) on `host:port` until SIGTERM
    /// or SIGINT. `started` is called once the socket listens and the signals are watched, so a
    /// caller that announces the service there never announces one a signal would kill.
    /// Throws when the address cannot be resolved or bound, or when the loop cannot be made.
    public static func run(
        host: String, port: Int,
        answer: @escaping (_ method: String, _ path: String, _ fields: [(name: String, value: String)]) -> LocalAnswer,
        started: () -> Void
    ) throws {
        // Every socket write passes MSG_NOSIGNAL; this covers any that does not (a client that
        // closed must cost an EPIPE, not the process), as in `LoopServer`.
        signal(SIGPIPE, SIG_IGN)
        // One socket, so without `SO_REUSEPORT`: a port in use fails to bind.
        let listenFD = try ListeningSocket.bind(ListenAddress(host: host, port: port), count: 1)[0]
        let loop: EventLoop
        do {
            loop = try EventLoop()
        } catch {
            close(listenFD)
            throw error
        }
        let server = LocalAnswerServer(loop: loop, listenFD: listenFD, answer: answer)
        let stopper = LoopStopper(loop: loop, signals: [SIGTERM, SIGINT])
        started()
        loop.run()
        // Frees the signal events while the loop is certainly alive (each holds the base), and
        // gives SIGTERM/SIGINT their default disposition back.
        stopper.cancel()
        server.close()
    }
}

/// Stops a loop on the first of its signals. It owns its `SignalWatcher`s (their invariant:
/// the handler outlives them) and keeps the loop alive as long as they are.
private final class LoopStopper: SignalHandler {
    private let loop: EventLoop
    private var watchers: [SignalWatcher] = []

    init(loop: EventLoop, signals: [Int32]) {
        self.loop = loop
        watchers = signals.map { SignalWatcher(loop: loop, signal: $0, handler: self) }
    }

    func signalReceived(_ signal: Int32) { loop.stop() }

    func cancel() {
        for watcher in watchers { watcher.cancel() }
        watchers = []
    }
}
