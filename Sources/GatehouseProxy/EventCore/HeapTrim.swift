import CEvent
import EventLoop
import Logging

/// Gives memory that the allocator holds but no longer uses back to the operating system,
/// every `GATEHOUSE_MEMORY_TRIM_INTERVAL`, from the control loop's thread.
///
/// Why: glibc's malloc (2.36 here) hands memory back to the kernel only from the *top* of a
/// heap — `free` shrinks the main heap, or a worker arena's heap, when its free top exceeds
/// the trim threshold, and glibc raises that threshold on its own (up to 64 MiB) after freeing
/// large blocks. Free space in the *middle* of a heap stays resident until it is reused. Each
/// worker allocates from its own arena, and what one request frees sits between what
/// longer-lived streams still hold, so the process's resident size followed the highest number
/// of requests, streams and uploads ever in flight at once, not the number in flight now.
/// Measured in the 10-minute soak (`make soak`, 40 requests/s, ~150 concurrent SSE streams,
/// uploads up to 64 MiB): after the load stopped, `malloc_stats()` showed 5.7 MB in use of
/// 20.4 MB taken from the kernel, and the resident size had kept rising for minutes as rarer,
/// larger peaks came by. `malloc_trim(0)` walks every arena and releases the whole free pages
/// inside its free chunks (`madvise(MADV_DONTNEED)`), so the resident size comes back down to
/// what is live. (Fixed `M_MMAP_THRESHOLD` / `M_TRIM_THRESHOLD` only lowered the curve: the
/// middle of the heaps is what grew.)
///
/// Cost: the walk takes each arena's lock in turn for as long as it takes to visit that
/// arena's free chunks (more free chunks, more `madvise` calls, a longer walk), and pages that
/// are used again fault back in. Measured between bursts of 150 SSE streams, 300 GETs and four
/// 4 MiB uploads, trimming every second: 0.2–1.2 ms per call (median 0.58 ms, 61 calls, a busy
/// 2-core machine). Every 10 s that is about 0.01 % of a core; a worker that allocates during a
/// walk of its arena waits for it. At least 1 s apart (configuration); `0` turns it off.
///
/// Threading: lives on the control loop's thread, like the rest of `ControlLoop`;
/// `malloc_trim` itself is safe to call while the workers allocate.
final class HeapTrim: LoopTimerHandler {
    private let intervalMilliseconds: Int
    private let logger: Logger
    private var timer: LoopTimer!

    /// `interval` zero: never trims.
    init(loop: EventLoop, interval: Duration, logger: Logger) {
        intervalMilliseconds = interval.milliseconds
        self.logger = logger
        timer = LoopTimer(loop: loop, handler: self)
        if intervalMilliseconds > 0 { timer.arm(milliseconds: intervalMilliseconds) }
    }

    func timerFired(_ timer: LoopTimer) {
        let clock = ContinuousClock()
        let start = clock.now
        let released = malloc_trim(0)
        if logger.logLevel <= .debug {
            logger.debug("heap trimmed", metadata: [
                "released": "\(released != 0)", "duration_us": "\(start.duration(to: clock.now).microseconds)",
            ])
        }
        timer.arm(milliseconds: intervalMilliseconds)
    }

    func stop() { timer.disarm() }
}
