import NIOCore

/// The shared state of one proxied exchange, as a plain value.
///
/// Two parties drive it: the *proxy task* (an async task serving one client request) and the
/// *curl thread* (libcurl callbacks). Neither touches the other's resources; each call here
/// returns an action telling the caller what to do once the lock is released (resume a
/// suspended task, or wake the curl thread to unpause the transfer). Following
/// async-http-client's design, no I/O happens inside: the whole protocol can be unit-tested
/// by calling these methods in sequence.
///
/// Backpressure (both directions) uses two watermarks: a producer is stopped once `high` bytes
/// are buffered and restarted when the consumer has drained below `low`. For the download,
/// "stopped" means the write callback returned `CURL_WRITEFUNC_PAUSE` (curl keeps those bytes
/// and delivers them again after unpause); for the upload it means the proxy task suspends.
struct TransferStateMachine {
    typealias HeadContinuation = CheckedContinuation<UpstreamResponseHead, any Error>
    typealias BodyContinuation = CheckedContinuation<ByteBuffer?, any Error>
    typealias RoomContinuation = CheckedContinuation<Void, any Error>

    let highWater: Int
    let lowWater: Int

    // Response head
    private var head: UpstreamResponseHead?
    private var headWaiter: HeadContinuation?

    // Request body (proxy task → curl read callback)
    private var upload = CircularBuffer<ByteBuffer>()
    private var uploadBuffered = 0
    private var uploadEnded = false
    private var uploadPausedByCurl = false
    private var uploadWaiter: RoomContinuation?

    // Response body (curl write callback → proxy task)
    private var download = CircularBuffer<ByteBuffer>()
    private var downloadBuffered = 0
    private var downloadPausedByCurl = false
    private var downloadWaiter: BodyContinuation?

    /// Set once curl reports the transfer done (or it was cancelled).
    private(set) var outcome: Result<Void, UpstreamError>?

    init(highWater: Int, lowWater: Int) {
        precondition(lowWater < highWater)
        self.highWater = highWater
        self.lowWater = lowWater
    }

    // MARK: Actions

    enum HeadAction {
        case none
        case resume(HeadContinuation, Result<UpstreamResponseHead, any Error>)
    }

    enum BodyAction {
        case none
        case resume(BodyContinuation, Result<ByteBuffer?, any Error>)
    }

    enum RoomAction {
        case none
        case resume(RoomContinuation, Result<Void, any Error>)
    }

    /// What the proxy task must do after handing over request-body bytes.
    struct UploadDecision: Equatable {
        /// curl had paused the upload for lack of data: wake it.
        var wakeCurl: Bool
        /// Too much is buffered: suspend in `waitForUploadRoom` before sending more.
        var mustWait: Bool
    }

    enum ReadResult: Equatable {
        case bytes(Int)
        case endOfBody
        case pause
        case abort
    }

    // MARK: Proxy task side

    mutating func waitForHead(_ continuation: HeadContinuation) -> HeadAction {
        if let head { return .resume(continuation, .success(head)) }
        if case .failure(let error) = outcome { return .resume(continuation, .failure(error)) }
        if case .success = outcome {
            return .resume(continuation, .failure(UpstreamError.unavailable("upstream sent no response head")))
        }
        precondition(headWaiter == nil, "only one task may wait for the head")
        headWaiter = continuation
        return .none
    }

    mutating func appendUpload(_ buffer: ByteBuffer) throws(UpstreamError) -> UploadDecision {
        if let outcome {
            switch outcome {
            case .failure(let error): throw error
            case .success: throw .requestBodyNotNeeded
            }
        }
        precondition(!uploadEnded, "request body written after it was finished")
        // An empty chunk must never reach curl: a read callback returning 0 bytes is curl's
        // end of the body, and the rest of the body would be lost.
        guard buffer.readableBytes > 0 else { return UploadDecision(wakeCurl: false, mustWait: uploadBuffered >= highWater) }
        uploadBuffered += buffer.readableBytes
        upload.append(buffer)
        let wake = uploadPausedByCurl
        uploadPausedByCurl = false
        return UploadDecision(wakeCurl: wake, mustWait: uploadBuffered >= highWater)
    }

    mutating func waitForUploadRoom(_ continuation: RoomContinuation) -> RoomAction {
        if case .failure(let error) = outcome { return .resume(continuation, .failure(error)) }
        if case .success = outcome { return .resume(continuation, .failure(UpstreamError.requestBodyNotNeeded)) }
        if uploadBuffered < highWater { return .resume(continuation, .success(())) }
        precondition(uploadWaiter == nil)
        uploadWaiter = continuation
        return .none
    }

    /// The client's body ended. Returns whether curl must be woken to see it.
    mutating func finishUpload() -> Bool {
        uploadEnded = true
        let wake = uploadPausedByCurl
        uploadPausedByCurl = false
        return wake
    }

    /// Takes the next response-body chunk, or suspends until one arrives.
    /// Returns the action and whether curl must be woken to resume receiving.
    mutating func nextBodyChunk(_ continuation: BodyContinuation) -> (BodyAction, wakeCurl: Bool) {
        if let chunk = download.popFirst() {
            downloadBuffered -= chunk.readableBytes
            var wake = false
            if downloadPausedByCurl && downloadBuffered <= lowWater {
                downloadPausedByCurl = false
                wake = true
            }
            return (.resume(continuation, .success(chunk)), wake)
        }
        switch outcome {
        case .success: return (.resume(continuation, .success(nil)), false)
        case .failure(let error): return (.resume(continuation, .failure(error)), false)
        case nil:
            precondition(downloadWaiter == nil, "only one task may read the body")
            downloadWaiter = continuation
            // Nothing is buffered, so if curl is paused it must resume now.
            let wake = downloadPausedByCurl
            downloadPausedByCurl = false
            return (.none, wake)
        }
    }

    /// If the transfer already finished successfully, hands over the whole buffered body
    /// (the common case for small responses), so it can be written with the head at once.
    mutating func takeCompleteBody() -> [ByteBuffer]? {
        guard case .success = outcome, downloadWaiter == nil else { return nil }
        let chunks = Array(download)
        download.removeAll()
        downloadBuffered = 0
        return chunks
    }

    // MARK: curl thread side

    /// libcurl asks for up to `capacity` request-body bytes (read callback).
    mutating func readUpload(into destination: UnsafeMutableRawBufferPointer) -> (ReadResult, RoomAction) {
        if outcome != nil { return (.abort, .none) }
        guard !upload.isEmpty else {
            if uploadEnded { return (.endOfBody, .none) }
            uploadPausedByCurl = true
            return (.pause, .none)
        }
        var written = 0
        while written < destination.count, var chunk = upload.popFirst() {
            let n = min(chunk.readableBytes, destination.count - written)
            chunk.withUnsafeReadableBytes { source in
                UnsafeMutableRawBufferPointer(rebasing: destination[written..<written + n])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<n]))
            }
            chunk.moveReaderIndex(forwardBy: n)
            written += n
            if chunk.readableBytes > 0 { upload.prepend(chunk) }
        }
        uploadBuffered -= written
        var action = RoomAction.none
        if uploadBuffered < lowWater, let waiter = uploadWaiter {
            uploadWaiter = nil
            action = .resume(waiter, .success(()))
        }
        return (.bytes(written), action)
    }

    mutating func receiveHead(_ received: UpstreamResponseHead) -> HeadAction {
        precondition(head == nil, "final response head received twice")
        head = received
        if let waiter = headWaiter {
            headWaiter = nil
            return .resume(waiter, .success(received))
        }
        return .none
    }

    enum WriteResult {
        case accepted(BodyAction)
        /// Buffer full: tell curl to pause and redeliver these bytes later.
        case pause
    }

    /// libcurl delivers response-body bytes (write callback).
    mutating func receiveBody(_ bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> WriteResult {
        if let waiter = downloadWaiter {
            downloadWaiter = nil
            return .accepted(.resume(waiter, .success(allocator.buffer(bytes: bytes))))
        }
        if downloadBuffered >= highWater {
            downloadPausedByCurl = true
            return .pause
        }
        download.append(allocator.buffer(bytes: bytes))
        downloadBuffered += bytes.count
        return .accepted(.none)
    }

    struct CompletionActions {
        var head: HeadAction = .none
        var body: BodyAction = .none
        var room: RoomAction = .none
    }

    /// The transfer ended (curl's done message, a timeout, or a cancel). Idempotent.
    mutating func complete(_ result: Result<Void, UpstreamError>) -> CompletionActions {
        guard outcome == nil else { return CompletionActions() }
        // A transfer that ends without a head failed, whatever curl said.
        var result = result
        if head == nil, case .success = result {
            result = .failure(.unavailable("upstream closed the connection without a response"))
        }
        outcome = result
        var actions = CompletionActions()
        if let waiter = headWaiter {
            headWaiter = nil
            if case .failure(let error) = result { actions.head = .resume(waiter, .failure(error)) }
        }
        if let waiter = downloadWaiter {
            downloadWaiter = nil
            switch result {
            case .success: actions.body = .resume(waiter, .success(nil))
            case .failure(let error): actions.body = .resume(waiter, .failure(error))
            }
        }
        if let waiter = uploadWaiter {
            uploadWaiter = nil
            let error: UpstreamError
            switch result {
            case .success: error = .requestBodyNotNeeded
            case .failure(let e): error = e
            }
            actions.room = .resume(waiter, .failure(error))
        }
        // Upload bytes nobody will send are dropped now rather than at deinit.
        upload.removeAll()
        uploadBuffered = 0
        return actions
    }

    var isComplete: Bool { outcome != nil }
    /// nil until the exchange has ended; then its final head, or the error that ended it.
    /// (`complete` already turned a success without a head into a failure.)
    var completedHead: Result<UpstreamResponseHead, UpstreamError>? {
        switch outcome {
        case nil: return nil
        case .failure(let error): return .failure(error)
        case .success:
            return head.map { .success($0) } ?? .failure(.unavailable("upstream closed the connection without a response"))
        }
    }
    var hasHead: Bool { head != nil }
    var bufferedDownloadBytes: Int { downloadBuffered }
    var bufferedUploadBytes: Int { uploadBuffered }
}

extension TransferStateMachine.HeadAction {
    func run() {
        if case .resume(let c, let r) = self { c.resume(with: r) }
    }
}

extension TransferStateMachine.BodyAction {
    func run() {
        if case .resume(let c, let r) = self { c.resume(with: r) }
    }
}

extension TransferStateMachine.RoomAction {
    func run() {
        if case .resume(let c, let r) = self { c.resume(with: r) }
    }
}

extension TransferStateMachine.CompletionActions {
    func run() {
        head.run()
        body.run()
        room.run()
    }
}
