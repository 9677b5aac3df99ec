public import NIOCore
import Synchronization

/// One request/response exchange with the upstream, as seen by the proxy task.
///
/// The proxy task streams the request body in with `writeRequestBody`/`finishRequestBody`,
/// awaits `responseHead()`, then pulls body chunks with `nextBodyChunk()` until `nil`.
/// Both directions apply backpressure, so memory per exchange stays around two high-water
/// marks whatever the body sizes.
///
/// Thread-safety: all mutable state is the `TransferStateMachine` inside `state`; the curl
/// thread and the proxy task meet only there. Continuations are always resumed after the
/// lock is released.
public final class UpstreamExchange: Sendable {
    let state: Mutex<TransferStateMachine>
    let request: UpstreamRequest
    private let loop: CurlLoop
    let allocator = ByteBufferAllocator()
    /// Called on the curl thread once the exchange has ended (`UpstreamClient.start(_:whenComplete:)`).
    let whenComplete: (@Sendable (UpstreamExchange) -> Void)?

    init(
        request: UpstreamRequest, loop: CurlLoop, highWater: Int, lowWater: Int,
        whenComplete: (@Sendable (UpstreamExchange) -> Void)? = nil
    ) {
        self.whenComplete = whenComplete
        self.request = request
        self.loop = loop
        self.state = Mutex(TransferStateMachine(highWater: highWater, lowWater: lowWater))
    }

    // MARK: Request body

    /// Hands request-body bytes to curl; suspends while too much is buffered.
    /// Throws when the upstream no longer wants the body (it answered, failed or was cancelled).
    public func writeRequestBody(_ buffer: ByteBuffer) async throws {
        let decision = try state.withLock { state throws(UpstreamError) in try state.appendUpload(buffer) }
        if decision.wakeCurl { loop.resume(self) }
        if decision.mustWait {
            try await withCheckedThrowingContinuation { (continuation: TransferStateMachine.RoomContinuation) in
                state.withLock { $0.waitForUploadRoom(continuation) }.run()
            }
        }
    }

    /// The client's body is complete.
    public func finishRequestBody() {
        if state.withLock({ $0.finishUpload() }) { loop.resume(self) }
    }

    // MARK: Response

    /// The upstream's final response head. Throws `UpstreamError` when none arrives.
    public func responseHead() async throws -> UpstreamResponseHead {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: TransferStateMachine.HeadContinuation) in
                state.withLock { $0.waitForHead(continuation) }.run()
            }
        } onCancel: {
            self.cancel()
        }
    }

    /// The next response-body chunk, or `nil` once the body is complete.
    /// Throws when the body was cut short (upstream died, idle timeout, cancel): the caller
    /// must then abort the client connection rather than end the response normally.
    public func nextBodyChunk() async throws -> ByteBuffer? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: TransferStateMachine.BodyContinuation) in
                let (action, wake) = state.withLock { $0.nextBodyChunk(continuation) }
                if wake { loop.resume(self) }
                action.run()
            }
        } onCancel: {
            self.cancel()
        }
    }

    /// The whole response body if the exchange has already completed successfully, else nil
    /// (then read it with `nextBodyChunk()`). Lets the proxy write head, body and end in one
    /// flush — one segment on the wire instead of three.
    public func takeCompleteBody() -> [ByteBuffer]? {
        state.withLock { $0.takeCompleteBody() }
    }

    /// Ends the exchange early (client gone, shutdown). Safe to call from any thread, any time.
    public func cancel() {
        loop.cancel(self)
    }

    // MARK: Called on the curl thread only
    //
    // Wake-ups of the proxy task are not run here but collected in `wakeups`, which the loop
    // runs once per iteration, after `curl_multi_perform` and the reaping of finished
    // transfers. A small response's head, body and end usually arrive in one iteration, so
    // the proxy task wakes once and finds everything, instead of once per event.

    func curlRead(into destination: UnsafeMutableRawBufferPointer, wakeups: ResumeBatch) -> TransferStateMachine.ReadResult {
        let (result, action) = state.withLock { $0.readUpload(into: destination) }
        if case .resume = action { wakeups.add(action.run) }
        return result
    }

    func curlReceivedHead(_ head: UpstreamResponseHead, wakeups: ResumeBatch) {
        let action = state.withLock { $0.receiveHead(head) }
        if case .resume = action { wakeups.add(action.run) }
    }

    /// Returns false when curl must pause (and redeliver the bytes later).
    func curlReceivedBody(_ bytes: UnsafeRawBufferPointer, wakeups: ResumeBatch) -> Bool {
        let result = state.withLock { $0.receiveBody(bytes, allocator: allocator) }
        switch result {
        case .pause: return false
        case .accepted(let action):
            if case .resume = action { wakeups.add(action.run) }
            return true
        }
    }

    func complete(_ result: Result<Void, UpstreamError>, wakeups: ResumeBatch) {
        // Only the first completion counts (a cancel can race the transfer's own end).
        let (actions, first) = state.withLock { state in
            let first = !state.isComplete
            return (state.complete(result), first)
        }
        wakeups.add(actions.run)
        if first, let whenComplete { wakeups.add { whenComplete(self) } }
    }

    var hasHead: Bool { state.withLock { $0.hasHead } }

    /// nil while the exchange runs; once it has ended, the final response head, or the error
    /// that ended it.
    public var completedHead: Result<UpstreamResponseHead, UpstreamError>? {
        state.withLock { $0.completedHead }
    }
}
