import Glibc
import Testing

@testable import EventLoop

/// The loop against real descriptors: a socket pair, an eventfd, libevent's timers.
@Suite struct EventLoopTests {
    /// Reads what arrives on one end of a socket pair; stops the loop after `expected` bytes.
    final class Reader: IOReadinessHandler {
        let loop: EventLoop
        var watcher: IOWatcher!
        var received: [UInt8] = []
        var writableSeen = 0
        let expected: Int
        init(loop: EventLoop, fd: Int32, expected: Int) {
            self.loop = loop
            self.expected = expected
            watcher = IOWatcher(loop: loop, fd: fd, handler: self)
        }
        func ioReady(_ watcher: IOWatcher, readable: Bool, writable: Bool) {
            if writable {
                writableSeen += 1
                watcher.setWrite(false)
            }
            if readable {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = read(watcher.fd, &buffer, buffer.count)
                if n > 0 { received += buffer[0..<n] }
                if received.count >= expected { loop.stop() }
            }
        }
    }

    final class Alarm: LoopTimerHandler {
        let loop: EventLoop
        var timer: LoopTimer!
        var fired: [Int] = []
        var batches = 0
        init(loop: EventLoop) {
            self.loop = loop
            timer = LoopTimer(loop: loop, handler: self)
        }
        func timerFired(_ timer: LoopTimer) {
            fired.append(batches)
            if fired.count == 2 { loop.stop() } else { timer.arm(milliseconds: 5) }
        }
    }

    final class Wakeable: LoopWakeHandler {
        let loop: EventLoop
        var waker: LoopWaker!
        var wakes = 0
        init(loop: EventLoop) throws {
            self.loop = loop
            waker = try LoopWaker(loop: loop, handler: self)
        }
        func woken() {
            wakes += 1
            loop.stop()
        }
    }

    func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        let result = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds)
        precondition(result == 0)
        return (fds[0], fds[1])
    }

    @Test func readinessOfASocketAndWriteInterestSwitchedOff() throws {
        let loop = try EventLoop()
        #expect(loop.backend.hasPrefix("epoll"))
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        let reader = Reader(loop: loop, fd: a, expected: 11)
        reader.watcher.setRead(true)
        reader.watcher.setWrite(true)
        _ = "hello world".withCString { write(b, $0, 11) }
        loop.run()
        #expect(String(decoding: reader.received, as: UTF8.self) == "hello world")
        // Write interest was switched off in the first callback: it fired once, not per batch.
        #expect(reader.writableSeen == 1)
    }

    @Test func aCancelledWatcherIsNeverCalledAgain() throws {
        let loop = try EventLoop()
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        let reader = Reader(loop: loop, fd: a, expected: 1)
        reader.watcher.setRead(true)
        reader.watcher.cancel()
        _ = "x".withCString { write(b, $0, 1) }
        let alarm = Alarm(loop: loop)
        alarm.timer.arm(milliseconds: 1)
        loop.run()
        #expect(reader.received.isEmpty)
    }

    /// Two readable sockets whose handlers each switch the other's read interest off: libevent
    /// has both events queued in one batch, yet exactly one handler runs, because a switched-off
    /// interest is honoured at once even before the change reaches epoll.
    @Test func interestSwitchedOffInABatchSilencesAnEventAlreadyQueued() throws {
        final class Silencer: IOReadinessHandler {
            var watcher: IOWatcher!
            var other: Silencer?
            var calls = 0
            func ioReady(_ watcher: IOWatcher, readable: Bool, writable: Bool) {
                calls += 1
                other?.watcher.setRead(false)
                self.watcher.setRead(false)
            }
        }
        let loop = try EventLoop()
        let (a1, b1) = socketPair()
        let (a2, b2) = socketPair()
        defer { close(a1); close(b1); close(a2); close(b2) }
        let first = Silencer()
        let second = Silencer()
        first.watcher = IOWatcher(loop: loop, fd: a1, handler: first)
        second.watcher = IOWatcher(loop: loop, fd: a2, handler: second)
        first.other = second
        second.other = first
        first.watcher.setRead(true)
        second.watcher.setRead(true)
        _ = "x".withCString { write(b1, $0, 1) }
        _ = "y".withCString { write(b2, $0, 1) }
        let alarm = Alarm(loop: loop)
        alarm.timer.arm(milliseconds: 50)  // both sockets are readable well before this
        loop.run()
        #expect(first.calls + second.calls == 1)
        first.other = nil
        second.other = nil
    }

    /// Interest switched off and on within one batch stays registered: the socket's readiness
    /// is reported again in the next batch, as if nothing had changed.
    @Test func interestSwitchedOffAndOnInOneBatchKeepsReporting() throws {
        final class Toggler: IOReadinessHandler {
            var watcher: IOWatcher!
            var calls = 0
            let loop: EventLoop
            init(loop: EventLoop) { self.loop = loop }
            func ioReady(_ watcher: IOWatcher, readable: Bool, writable: Bool) {
                calls += 1
                watcher.setRead(false)
                watcher.setRead(true)  // nothing read: still readable
                if calls == 3 {
                    watcher.setRead(false)
                    loop.stop()
                }
            }
        }
        let loop = try EventLoop()
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        let toggler = Toggler(loop: loop)
        toggler.watcher = IOWatcher(loop: loop, fd: a, handler: toggler)
        toggler.watcher.setRead(true)
        _ = "x".withCString { write(b, $0, 1) }
        loop.run()
        #expect(toggler.calls == 3)
    }

    @Test func timersFireInLaterBatchesAndTheBatchHookRunsAfterEach() throws {
        let loop = try EventLoop()
        let alarm = Alarm(loop: loop)
        loop.batchEnded = { alarm.batches += 1 }
        alarm.timer.arm(milliseconds: 1)
        #expect(alarm.timer.isArmed)
        loop.run()
        #expect(alarm.fired.count == 2)
        #expect(alarm.fired[1] > alarm.fired[0])  // the second firing came in a later batch
        #expect(!alarm.timer.isArmed)
    }

    @Test func aDisarmedTimerDoesNotFire() throws {
        let loop = try EventLoop()
        let early = Alarm(loop: loop)
        early.timer.arm(milliseconds: 1)
        early.timer.disarm()
        let late = Alarm(loop: loop)
        late.timer.arm(milliseconds: 20)
        loop.run()
        #expect(early.fired.isEmpty)
        #expect(late.fired.count == 2)
    }

    @Test func anotherThreadWakesTheLoop() async throws {
        let loop = try EventLoop()
        let wakeable = try Wakeable(loop: loop)
        let remote = wakeable.waker.remote
        let thread = OSThread { usleep(20_000); remote.wake(); remote.wake() }
        thread.start()
        loop.run()
        thread.join()
        #expect(wakeable.wakes >= 1)
    }
}
