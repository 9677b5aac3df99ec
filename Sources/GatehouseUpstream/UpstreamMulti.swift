import CCurl
public import EventLoop

#if canImport(Glibc)
import Glibc
#endif

/// One libcurl multi handle driven by one worker's `EventLoop` (curl's "multi_socket" API):
/// curl's sockets are watched by the loop (`CURLMOPT_SOCKETFUNCTION`), its timer is a loop
/// timer (`CURLMOPT_TIMERFUNCTION`), and readiness goes back to curl through
/// `curl_multi_socket_action`. Nothing here blocks and nothing crosses a thread.
///
/// Ownership: the worker's thread creates, drives and frees the multi, its sockets and its
/// transfers. libcurl's callbacks receive the multi and the transfers as unretained pointers;
/// the multi lives as long as its worker, and a transfer is retained while curl holds it
/// (between `curl_multi_add_handle` and `curl_multi_remove_handle`, see `UpstreamTransfer`).
///
/// Per request this costs no allocation beyond libcurl's own: transfers (with their easy
/// handles and timers) and socket watchers are kept and reused.
///
/// Idle connections: libcurl closes a pooled connection the upstream has closed only when a
/// new transfer starts (it prunes dead connections then, at most once a second; there is no
/// API to ask for it, curl/curl#22859). After a burst, uvicorn closes its keep-alive sockets
/// within 5 s and ours would sit in CLOSE-WAIT until the next request. So a multi that has run
/// no transfer for `configuration.idleSweepMilliseconds` is replaced by a fresh one, which
/// closes the pool.
public final class UpstreamMulti: LoopTimerHandler {
    let loop: EventLoop
    /// Replaced (never while a transfer runs) by the idle sweep.
    private(set) var multi: UnsafeMutableRawPointer
    let configuration: UpstreamClientConfiguration
    private var timer: LoopTimer!
    /// curl asked for its timeout to be handled "now" (timeout 0, e.g. on every add): done
    /// once after the batch, never from inside curl's timer callback.
    private var timeoutDue = false
    /// One watcher per socket number curl has used, kept across transfers (curl removes and
    /// re-adds a cached connection's socket on every request).
    private var sockets: [Int32: CurlSocket] = [:]
    private var idleTransfers: [UpstreamTransfer] = []
    /// Transfers started and not yet finished or cancelled.
    public private(set) var activeTransfers = 0
    private var sweepTimer: LoopTimer!
    private let sweepHandler = IdleSweep()
    /// When the last transfer ended (coarse monotonic milliseconds).
    private var lastActivity: UInt64 = 0
    /// Set while the pool is being closed: curl's callbacks then concern sockets already let go.
    private var sweeping = false
    /// Idle sweeps done (for tests).
    public private(set) var sweeps = 0

    public init(loop: EventLoop, configuration: UpstreamClientConfiguration = .init()) {
        CurlGlobal.initialise()
        self.loop = loop
        self.configuration = configuration
        multi = Self.makeMulti()
        timer = LoopTimer(loop: loop, handler: self)
        sweepTimer = LoopTimer(loop: loop, handler: sweepHandler)
        sweepHandler.multi = self
        configure()
    }

    private static func makeMulti() -> UnsafeMutableRawPointer {
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed (out of memory)") }
        return multi
    }

    private func configure() {
        let me = Unmanaged.passUnretained(self).toOpaque()
        gh_multi_setopt_socketfunction(multi, socketCallback)
        gh_multi_setopt_ptr(multi, CURLMOPT_SOCKETDATA, me)
        gh_multi_setopt_timerfunction(multi, timerCallback)
        gh_multi_setopt_ptr(multi, CURLMOPT_TIMERDATA, me)
        // HTTP/1.1 only: never wait to multiplex or pipeline on a connection.
        _ = gh_multi_setopt_long(multi, CURLMOPT_PIPELINING, GH_PIPE_NOTHING)
        // Keep every idle upstream connection for reuse. curl's default cache holds 4 per easy
        // handle *in the multi*, and ours leave it after each exchange, so the default would
        // close and reopen a connection per request (measured: connect + close on every one).
        _ = gh_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, 1024)
    }

    deinit {
        for transfer in idleTransfers { transfer.free() }
        curl_multi_cleanup(multi)
    }

    /// Starts one exchange. The delegate hears of it on this thread only, from inside loop
    /// callbacks, never from inside this call.
    public func start(_ request: UpstreamRequest, delegate: any UpstreamTransferDelegate) -> UpstreamTransfer {
        let transfer = idleTransfers.popLast() ?? UpstreamTransfer(multi: self)
        activeTransfers += 1
        transfer.begin(request, delegate: delegate)
        return transfer
    }

    /// Call after every batch of loop callbacks (the worker's `batchEnded`): runs curl's due
    /// timeout and hands finished transfers to their delegates.
    public func batchEnded() {
        if timeoutDue {
            timeoutDue = false
            timer.disarm()
            socketAction(-1, 0)  // CURL_SOCKET_TIMEOUT
        }
        finishCompleted()
    }

    func socketAction(_ socket: Int32, _ events: Int32) {
        var running: Int32 = 0
        _ = curl_multi_socket_action(multi, socket, events, &running)
    }

    /// Reads curl's completion messages. A `CURLMsg` is invalid once its handle is removed, so
    /// the handle and result are copied out first.
    func finishCompleted() {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let result = gh_msg_result(message)
            var pointer: UnsafeMutableRawPointer?
            _ = gh_easy_getinfo_ptr(easy, CURLINFO_PRIVATE, &pointer)
            guard let pointer else { continue }
            Unmanaged<UpstreamTransfer>.fromOpaque(pointer).takeUnretainedValue().complete(result)
        }
    }

    /// A transfer is done with (finished or cancelled): its handle goes back to the pool.
    func recycle(_ transfer: UpstreamTransfer) {
        activeTransfers -= 1
        if idleTransfers.count < 256 { idleTransfers.append(transfer) } else { transfer.free() }
        if activeTransfers == 0 {
            lastActivity = Monotonic.milliseconds()
            if !sweepTimer.isArmed { sweepTimer.arm(milliseconds: Int(configuration.idleSweepMilliseconds)) }
        }
    }

    /// The sweep timer fired: if no transfer has run for the whole period, the pool is closed
    /// by replacing the multi; otherwise the timer waits for the rest of the period.
    fileprivate func sweepIfIdle() {
        guard activeTransfers == 0, !sockets.isEmpty else { return }
        let idle = Monotonic.milliseconds() &- lastActivity
        if idle < configuration.idleSweepMilliseconds {
            sweepTimer.arm(milliseconds: Int(configuration.idleSweepMilliseconds - idle))
            return
        }
        // The loop lets go of every socket first (curl closes them in the cleanup, and their
        // numbers may be reused at once), then the old multi and its pool go.
        for socket in sockets.values { socket.watcher.cancel() }
        sockets.removeAll()
        sweeping = true
        curl_multi_cleanup(multi)
        sweeping = false
        timer.disarm()
        timeoutDue = false
        multi = Self.makeMulti()
        configure()
        sweeps += 1
    }

    private final class IdleSweep: LoopTimerHandler {
        unowned(unsafe) var multi: UpstreamMulti?
        func timerFired(_ timer: LoopTimer) { multi?.sweepIfIdle() }
    }

    public func timerFired(_ timer: LoopTimer) {
        timeoutDue = false
        socketAction(-1, 0)
        finishCompleted()
    }

    // MARK: curl's callbacks (loop thread, from inside curl calls)

    fileprivate func watch(socket: Int32, what: Int32) {
        if sweeping { return }
        let watcher: CurlSocket
        if let known = sockets[socket] {
            watcher = known
        } else {
            watcher = CurlSocket(multi: self, fd: socket)
            sockets[socket] = watcher
        }
        // CURL_POLL_IN 1, OUT 2, INOUT 3, REMOVE 4.
        watcher.watcher.setRead(what == 1 || what == 3)
        watcher.watcher.setWrite(what == 2 || what == 3)
        // curl may close the socket right after removing it, and a socket it opens next in the
        // same batch may get the same number: the removal must reach epoll now, or libevent
        // would believe the new socket already registered (the kernel dropped the old one on
        // close) and never watch it.
        if what == 4 { watcher.watcher.applyInterestNow() }
    }

    fileprivate func setTimer(milliseconds: Int) {
        if sweeping { return }
        if milliseconds < 0 {
            timer.disarm()
        } else if milliseconds == 0 {
            // Handled after the current batch (`batchEnded`); the zero timer is for a call
            // made outside any batch, so the loop does not sleep on it.
            timeoutDue = true
            timer.arm(milliseconds: 0)
        } else {
            timer.arm(milliseconds: milliseconds)
        }
    }
}

/// The loop's watch over one of curl's sockets. Its number can outlive one connection: when
/// curl closes a socket it first asks to remove it (both interests off here), and a later
/// socket with the same number reuses this watcher.
final class CurlSocket: IOReadinessHandler {
    unowned let multi: UpstreamMulti
    var watcher: IOWatcher!

    init(multi: UpstreamMulti, fd: Int32) {
        self.multi = multi
        watcher = IOWatcher(loop: multi.loop, fd: fd, handler: self)
    }

    func ioReady(_ watcher: IOWatcher, readable: Bool, writable: Bool) {
        // CURL_CSELECT_IN 1, OUT 2.
        multi.socketAction(watcher.fd, (readable ? 1 : 0) | (writable ? 2 : 0))
        multi.finishCompleted()
    }
}

private func multiFrom(_ pointer: UnsafeMutableRawPointer?) -> UpstreamMulti {
    Unmanaged<UpstreamMulti>.fromOpaque(pointer!).takeUnretainedValue()
}

private let socketCallback: gh_socket_callback = { _, socket, what, userp, _ in
    multiFrom(userp).watch(socket: socket, what: what)
    return 0
}

private let timerCallback: gh_timer_callback = { _, milliseconds, userp in
    multiFrom(userp).setTimer(milliseconds: milliseconds)
    return 0
}

/// libcurl's process-wide setup.
enum CurlGlobal {
    /// `curl_global_init` is not thread-safe and must run once before any other curl call;
    /// a Swift global's initialiser runs exactly once, under a lock.
    private static let once: Void = { _ = curl_global_init(GH_GLOBAL_ALL) }()
    static func initialise() { once }
}
