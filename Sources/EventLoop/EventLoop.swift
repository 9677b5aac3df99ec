import CEvent

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// One event loop per worker thread, over libevent 2.1 (the dispatcher Envoy is built on).
//
// Ownership (the rule every type here follows): an `EventLoop` and everything registered with
// it — `IOWatcher`, `LoopTimer`, `LoopWaker`'s reading side — belong to the one thread that
// runs `run()`. They are created, changed, fired and released on that thread only. The only
// cross-thread entry point is `LoopWaker.wake()`, which writes to an eventfd.
//
// This file is the only place where libevent calls into Swift. Each C callback receives its
// Swift object as an *unretained* pointer (`Unmanaged.passUnretained`). That is sound because
// every object frees its libevent `event` in `deinit` (or earlier, in `cancel()`): once the
// Swift object is gone, libevent holds no event that could call back with its pointer. While a
// callback runs, the object is held strongly by the callback's local reference.

/// Why a loop could not be made.
public struct EventLoopError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// One libevent `event_base`, run by one thread.
///
/// The loop runs callbacks in batches (one `event_base_loop(EVLOOP_ONCE)` each) and, after each
/// batch, calls `batchEnded` once. That hook is where work that must not run inside a callback
/// goes — libcurl's timer expiry (`curl_multi_socket_action(CURL_SOCKET_TIMEOUT)` may not be
/// called from curl's own timer callback) and closing connections found dead during the batch.
public final class EventLoop {
    let base: OpaquePointer
    private var stopped = false
    /// Watchers whose read or write interest changed since the last `epoll_wait` (see
    /// `IOWatcher.setRead`), applied together right before the loop waits again.
    fileprivate var interestChanged: [IOWatcher] = []
    private var interestApplying: [IOWatcher] = []

    /// Called on the loop thread after every batch of callbacks. Set it once, before `run()`.
    public var batchEnded: (() -> Void)?

    public init() throws(EventLoopError) {
        guard let config = event_config_new() else { throw EventLoopError(description: "event_config_new failed") }
        defer { event_config_free(config) }
        // One thread owns the base: libevent's own locking is not wanted (and not initialised).
        event_config_set_flag(config, Int32(EVENT_BASE_FLAG_NOLOCK.rawValue))
        // epoll's change list folds a del+add of one fd in one batch into nothing, which is what
        // a connection that stops and restarts reading within a batch does.
        event_config_set_flag(config, Int32(EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST.rawValue))
        guard let base = event_base_new_with_config(config) else {
            throw EventLoopError(description: "event_base_new_with_config failed")
        }
        self.base = base
    }

    deinit {
        // Watchers still queued are kept alive by the queue: their events are freed now,
        // while the base they point into still exists.
        for watcher in interestChanged { watcher.cancel() }
        interestChanged = []
        event_base_free(base)
    }

    /// Runs batches until `stop()`. Returns when stopped, or when nothing is registered at all.
    public func run() {
        stopped = false
        while !stopped {
            applyInterestChanges()
            let result = event_base_loop(base, EVLOOP_ONCE)
            batchEnded?()
            if result != 0 { break }  // 1: no events registered; -1: a backend error
        }
    }

    /// Interest switched off and on again within one batch (a connection that stops reading
    /// while its request is served and reads again once answered, all in one batch) costs no
    /// system call at all: only the net change reaches libevent. (libevent's own epoll change
    /// list folds the pair too, but still issues an `EPOLL_CTL_MOD` that changes nothing: one
    /// wasted system call per request, measured.)
    private func applyInterestChanges() {
        guard !interestChanged.isEmpty else { return }
        swap(&interestChanged, &interestApplying)  // two buffers, reused: no allocation per batch
        for watcher in interestApplying { watcher.applyInterest() }
        interestApplying.removeAll(keepingCapacity: true)
    }

    /// Makes `run()` return after the current batch. Loop thread only.
    public func stop() {
        stopped = true
        event_base_loopbreak(base)
    }

    /// The loop's backend method (`epoll` on Linux), for logs and tests.
    public var backend: String { String(cString: event_base_get_method(base)) }
}

// MARK: - File descriptors

/// Receives readiness of one file descriptor. Implemented by the owner of an `IOWatcher`.
public protocol IOReadinessHandler: AnyObject {
    func ioReady(_ watcher: IOWatcher, readable: Bool, writable: Bool)
}

/// Read and write interest in one file descriptor, as two persistent libevent events (so each
/// direction is switched on and off on its own without rebuilding the other).
///
/// Invariant: `handler` owns this watcher, so the handler outlives it; the reference back is
/// therefore `unowned(unsafe)`, which costs nothing per event. The loop's queue of interest
/// changes may hold the watcher a little longer, so an owner must `cancel()` it before letting
/// go (a cancelled watcher never calls back). The watcher does not own `fd`: the handler closes
/// it, after `cancel()` — never after only switching interest off, which reaches epoll later
/// (`applyInterestNow` when someone else closes the descriptor).
public final class IOWatcher {
    public let fd: Int32
    private unowned(unsafe) let handler: any IOReadinessHandler
    /// The loop outlives its watchers (its owners declare it last).
    private unowned(unsafe) let loop: EventLoop
    private var readEvent: OpaquePointer?
    private var writeEvent: OpaquePointer?

    /// The interest asked for. The handler hears only of readiness it asked for, even before
    /// a change has reached libevent.
    public private(set) var wantsRead = false
    public private(set) var wantsWrite = false
    /// The interest registered with libevent.
    private var registeredRead = false
    private var registeredWrite = false
    private var queued = false

    public init(loop: EventLoop, fd: Int32, handler: any IOReadinessHandler) {
        self.fd = fd
        self.handler = handler
        self.loop = loop
        let me = Unmanaged.passUnretained(self).toOpaque()
        readEvent = event_new(loop.base, fd, Int16(EV_READ | EV_PERSIST), ioCallback, me)
        writeEvent = event_new(loop.base, fd, Int16(EV_WRITE | EV_PERSIST), ioCallback, me)
        precondition(readEvent != nil && writeEvent != nil, "event_new failed (out of memory)")
    }

    deinit { cancel() }

    /// Switches read interest on or off. Takes effect at once for this watcher's callbacks,
    /// and reaches libevent before the loop next waits (`EventLoop.applyInterestChanges`).
    public func setRead(_ on: Bool) {
        guard on != wantsRead, readEvent != nil else { return }
        wantsRead = on
        queueInterestChange()
    }

    /// Switches write interest on or off, as `setRead` does.
    public func setWrite(_ on: Bool) {
        guard on != wantsWrite, writeEvent != nil else { return }
        wantsWrite = on
        queueInterestChange()
    }

    private func queueInterestChange() {
        guard !queued else { return }
        queued = true
        loop.interestChanged.append(self)
    }

    /// Sends a queued change to libevent at once. Call it before the descriptor may be closed
    /// by someone else (libcurl closes its sockets itself): a change still queued when the
    /// number is reused would be compared against the old socket's registration.
    public func applyInterestNow() {
        if queued { applyInterest() }
    }

    fileprivate func applyInterest() {
        queued = false
        if let readEvent, wantsRead != registeredRead {
            registeredRead = wantsRead
            _ = wantsRead ? event_add(readEvent, nil) : event_del(readEvent)
        }
        if let writeEvent, wantsWrite != registeredWrite {
            registeredWrite = wantsWrite
            _ = wantsWrite ? event_add(writeEvent, nil) : event_del(writeEvent)
        }
    }

    /// Forgets the descriptor: no callback after this returns. Call before closing `fd`, so the
    /// backend never watches a number the kernel may hand out again.
    public func cancel() {
        if let readEvent { event_free(readEvent) }
        if let writeEvent { event_free(writeEvent) }
        readEvent = nil
        writeEvent = nil
        wantsRead = false
        wantsWrite = false
        registeredRead = false
        registeredWrite = false
    }

    fileprivate func fire(_ what: Int16) {
        // An event libevent had already queued in this batch for interest switched off since.
        let readable = wantsRead && what & Int16(EV_READ) != 0
        let writable = wantsWrite && what & Int16(EV_WRITE) != 0
        guard readable || writable else { return }
        handler.ioReady(self, readable: readable, writable: writable)
    }
}

private func ioCallback(_ fd: gh_socket_t, _ what: Int16, _ argument: UnsafeMutableRawPointer?) {
    guard let argument else { return }
    Unmanaged<IOWatcher>.fromOpaque(argument).takeUnretainedValue().fire(what)
}

// MARK: - Timers

/// Receives a `LoopTimer`'s expiry. Implemented by the timer's owner.
public protocol LoopTimerHandler: AnyObject {
    func timerFired(_ timer: LoopTimer)
}

/// A one-shot timer on the loop; re-arm it to fire again. Same ownership invariant as
/// `IOWatcher`: the handler owns the timer.
public final class LoopTimer {
    private unowned(unsafe) let handler: any LoopTimerHandler
    private var event: OpaquePointer?
    public private(set) var isArmed = false

    public init(loop: EventLoop, handler: any LoopTimerHandler) {
        self.handler = handler
        event = event_new(loop.base, -1, 0, timerCallback, Unmanaged.passUnretained(self).toOpaque())
        precondition(event != nil, "event_new failed (out of memory)")
    }

    deinit {
        if let event { event_free(event) }
    }

    /// Fires once after `milliseconds` (0: in the next batch). Re-arming replaces the deadline.
    public func arm(milliseconds: Int) {
        guard let event else { return }
        var delay = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        event_add(event, &delay)
        isArmed = true
    }

    public func disarm() {
        guard isArmed, let event else { return }
        event_del(event)
        isArmed = false
    }

    fileprivate func fire() {
        isArmed = false
        handler.timerFired(self)
    }
}

private func timerCallback(_ fd: gh_socket_t, _ what: Int16, _ argument: UnsafeMutableRawPointer?) {
    guard let argument else { return }
    Unmanaged<LoopTimer>.fromOpaque(argument).takeUnretainedValue().fire()
}

// MARK: - Signals

/// Receives a signal on the loop thread. Implemented by the `SignalWatcher`'s owner.
public protocol SignalHandler: AnyObject {
    func signalReceived(_ signal: Int32)
}

/// A Unix signal (SIGTERM, SIGINT) delivered as a loop callback instead of in a signal handler.
/// libevent installs the process-wide handler, which only writes the signal's number to a pipe
/// the loop reads, so the callback may do anything. Only one loop of the process may watch
/// signals (libevent's rule); gatehouse watches them on the main thread's control loop.
/// Same ownership invariant as `IOWatcher`: the handler owns the watcher.
public final class SignalWatcher {
    private unowned(unsafe) let handler: any SignalHandler
    private var event: OpaquePointer?
    public let signal: Int32

    public init(loop: EventLoop, signal: Int32, handler: any SignalHandler) {
        self.handler = handler
        self.signal = signal
        event = event_new(loop.base, signal, Int16(EV_SIGNAL | EV_PERSIST), signalCallback,
            Unmanaged.passUnretained(self).toOpaque())
        precondition(event != nil, "event_new failed (out of memory)")
        event_add(event, nil)
    }

    deinit { cancel() }

    /// Stops watching; the signal's previous disposition is restored.
    public func cancel() {
        if let event { event_free(event) }
        event = nil
    }

    fileprivate func fire() { handler.signalReceived(signal) }
}

private func signalCallback(_ fd: gh_socket_t, _ what: Int16, _ argument: UnsafeMutableRawPointer?) {
    guard let argument else { return }
    Unmanaged<SignalWatcher>.fromOpaque(argument).takeUnretainedValue().fire()
}

// MARK: - Wake-ups from other threads

/// Receives wake-ups on the loop thread.
public protocol LoopWakeHandler: AnyObject {
    func woken()
}

/// Lets another thread wake a loop (shutdown, a new key set, a finished key fetch): an eventfd
/// the loop reads. Wake-ups that arrive before the loop reads coalesce into one `woken()` call;
/// the handler looks at shared state (atomics) to see what changed.
public final class LoopWaker: IOReadinessHandler {
    /// Thread-safe handle to `wake()` the loop from anywhere. It only writes to the eventfd,
    /// which the kernel makes safe from any thread; the descriptor stays open until the
    /// `LoopWaker` is gone, so callers must stop using their `Remote` before that (a worker's
    /// waker lives as long as the process).
    public struct Remote: Sendable {
        let fd: Int32
        public func wake() {
            var one: UInt64 = 1
            _ = write(fd, &one, 8)
        }
    }

    private unowned(unsafe) let handler: any LoopWakeHandler
    private let fd: Int32
    private var watcher: IOWatcher?

    public init(loop: EventLoop, handler: any LoopWakeHandler) throws(EventLoopError) {
        fd = eventfd(0, GH_EFD_NONBLOCK | GH_EFD_CLOEXEC)
        guard fd >= 0 else { throw EventLoopError(description: "eventfd failed: errno \(errno)") }
        self.handler = handler
        watcher = IOWatcher(loop: loop, fd: fd, handler: self)
        watcher?.setRead(true)
    }

    deinit {
        watcher?.cancel()
        close(fd)
    }

    public var remote: Remote { Remote(fd: fd) }

    public func ioReady(_ watcher: IOWatcher, readable: Bool, writable: Bool) {
        var count: UInt64 = 0
        _ = read(fd, &count, 8)
        handler.woken()
    }
}

// MARK: - Time

/// Milliseconds on a coarse monotonic clock (a vDSO read, no system call), for the loop's
/// timeouts: they are seconds long, so a few milliseconds of coarseness do not matter.
public enum Monotonic {
    public static func milliseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &now)
        return UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
    }
}

// MARK: - Linux calls Swift's Glibc module lacks

/// Two Linux calls glibc declares only under `_GNU_SOURCE`, which Swift's Glibc module does not
/// define; declared in `CEvent`, which must not be imported next to Glibc elsewhere (its
/// textual copies of the socket headers would make `SOCK_STREAM` and friends ambiguous).
public enum LinuxCalls {
    /// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the new descriptor, or -1 (see errno).
    /// `address` points at a `sockaddr_storage` of `length` bytes, or is nil.
    public static func acceptNonBlocking(
        _ listenFD: Int32, address: UnsafeMutableRawPointer?, length: UnsafeMutablePointer<UInt32>?
    ) -> Int32 {
        gh_accept4(listenFD, address?.assumingMemoryBound(to: sockaddr.self), length, GH_ACCEPT_FLAGS)
    }

    /// Names the calling thread (at most 15 bytes), for `top -H`, `ps -L` and profilers.
    public static func nameCurrentThread(_ name: String) {
        _ = gh_pthread_setname_np(pthread_self(), String(name.utf8.prefix(15))!)
    }

    /// CPUs in this process's affinity mask, or nil if it cannot be read.
    public static func cpusInAffinityMask() -> Int? {
        var mask = [UInt8](repeating: 0, count: 128)  // 1024 CPUs, glibc's cpu_set_t
        guard gh_sched_getaffinity(0, mask.count, &mask) == 0 else { return nil }
        return mask.reduce(0) { $0 + $1.nonzeroBitCount }
    }
}

// MARK: - Writing to a non-blocking socket

/// What writing queued bytes to a non-blocking socket came to.
public enum SocketWrite {
    /// Every byte from `offset` on was written.
    case done
    /// The socket is full: wait for writability, then write again from the new offset.
    case wouldBlock
    /// The peer is gone (or another error): close.
    case failed

    /// Writes `bytes[offset...]` to `fd` until done or the socket is full, advancing `offset`.
    /// `MSG_NOSIGNAL`: a peer that closed costs an error here, never a SIGPIPE.
    public static func send(_ fd: Int32, _ bytes: [UInt8], from offset: inout Int) -> SocketWrite {
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                offset += n
                continue
            }
            if n < 0, errno == EINTR { continue }
            return n < 0 && errno == EAGAIN ? .wouldBlock : .failed
        }
        return .done
    }
}

// MARK: - Threads

/// A plain pthread for a worker's loop: no Swift concurrency executor, no Foundation.
public final class OSThread: @unchecked Sendable {
    // @unchecked: `body` is immutable and read only by the new thread; `handle` is written by
    // `start` and read by `join`, both on the thread that owns this object.
    private let body: @Sendable () -> Void
    private var handle = pthread_t()

    public init(_ body: @escaping @Sendable () -> Void) { self.body = body }

    public func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&handle, nil, { argument in
            let thread = Unmanaged<OSThread>.fromOpaque(argument!).takeRetainedValue()
            thread.body()
            return nil
        }, box)
    }

    public func join() { pthread_join(handle, nil) }
}
