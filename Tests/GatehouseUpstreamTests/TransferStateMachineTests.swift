import NIOCore
import Testing

@testable import GatehouseUpstream

/// Drives the exchange protocol the way the curl thread and the proxy task do, without
/// sockets: each test is a sequence of calls and the decisions they return.
@Suite struct TransferStateMachineTests {
    static let allocator = ByteBufferAllocator()

    func receive(_ machine: inout TransferStateMachine, bytes count: Int) -> TransferStateMachine.WriteResult {
        let bytes = [UInt8](repeating: 0x61, count: count)
        return bytes.withUnsafeBytes { machine.receiveBody($0, allocator: Self.allocator) }
    }

    func nextChunk(_ machine: inout TransferStateMachine) async throws -> (ByteBuffer?, wake: Bool) {
        var wake = false
        let chunk = try await withCheckedThrowingContinuation { continuation in
            let (action, wakeCurl) = machine.nextBodyChunk(continuation)
            wake = wakeCurl
            action.run()
        }
        return (chunk, wake)
    }

    @Test func downloadPausesAtHighWaterAndResumesBelowLowWater() async throws {
        var machine = TransferStateMachine(highWater: 100, lowWater: 40)
        // 4 × 30 bytes: the fourth arrives with 90 buffered (< 100) and is accepted.
        for _ in 0..<4 {
            guard case .accepted = receive(&machine, bytes: 30) else {
                Issue.record("accepted expected below the high-water mark")
                return
            }
        }
        #expect(machine.bufferedDownloadBytes == 120)
        // Now at/over the mark: curl must pause and keep the bytes.
        guard case .pause = receive(&machine, bytes: 30) else {
            Issue.record("pause expected at the high-water mark")
            return
        }
        #expect(machine.bufferedDownloadBytes == 120, "paused bytes are not taken")

        // Draining: no wake until at or below the low-water mark (40).
        var wakes: [Bool] = []
        for _ in 0..<4 {
            let (chunk, wake) = try await nextChunk(&machine)
            #expect(chunk?.readableBytes == 30)
            wakes.append(wake)
        }
        #expect(wakes == [false, false, true, false], "exactly one wake, when 30 bytes remain")
    }

    @Test func bodyEndsWithNilAfterBufferedChunksOnSuccess() async throws {
        var machine = TransferStateMachine(highWater: 100, lowWater: 40)
        _ = machine.receiveHead(.init(status: 200, reason: "OK", headers: []))
        _ = receive(&machine, bytes: 10)
        machine.complete(.success(())).run()
        #expect(try await nextChunk(&machine).0?.readableBytes == 10, "buffered bytes are delivered before the end")
        #expect(try await nextChunk(&machine).0 == nil)
    }

    @Test func bodyCutShortThrowsAfterBufferedChunks() async throws {
        var machine = TransferStateMachine(highWater: 100, lowWater: 40)
        _ = machine.receiveHead(.init(status: 200, reason: "OK", headers: []))
        _ = receive(&machine, bytes: 10)
        machine.complete(.failure(.unavailable("reset"))).run()
        #expect(try await nextChunk(&machine).0?.readableBytes == 10)
        await #expect(throws: UpstreamError.unavailable("reset")) { try await nextChunk(&machine) }
    }

    @Test func completionWithoutHeadFailsTheHeadWaiter() async throws {
        var machine = TransferStateMachine(highWater: 100, lowWater: 40)
        // The waiter is parked first, then the transfer completes "successfully" without a
        // head (upstream closed the connection): that is a failure, not a hang.
        do {
            let head = try await withCheckedThrowingContinuation { continuation in
                machine.waitForHead(continuation).run()
                machine.complete(.success(())).run()
            }
            Issue.record("expected a failure, got \(head)")
        } catch let error as UpstreamError {
            guard case .unavailable = error else {
                Issue.record("expected unavailable, got \(error)")
                return
            }
        }
    }

    @Test func uploadBackpressure() throws {
        var machine = TransferStateMachine(highWater: 100, lowWater: 40)
        var destination = [UInt8](repeating: 0, count: 64)

        // curl asks before any data: it must pause, and the next append must wake it.
        let (first, _) = destination.withUnsafeMutableBytes { machine.readUpload(into: $0) }
        #expect(first == .pause)
        let decision = try machine.appendUpload(ByteBuffer(repeating: 1, count: 60))
        #expect(decision == .init(wakeCurl: true, mustWait: false))
        // Going over the high-water mark tells the producer to wait.
        #expect(try machine.appendUpload(ByteBuffer(repeating: 2, count: 60)) == .init(wakeCurl: false, mustWait: true))

        // curl copies across chunk boundaries, in order.
        let (read, _) = destination.withUnsafeMutableBytes { machine.readUpload(into: $0) }
        #expect(read == .bytes(64))
        #expect(destination[59] == 1 && destination[60] == 2)
        #expect(machine.bufferedUploadBytes == 56)

        _ = machine.finishUpload()
        let (rest, _) = destination.withUnsafeMutableBytes { machine.readUpload(into: $0) }
        #expect(rest == .bytes(56))
        let (end, _) = destination.withUnsafeMutableBytes { machine.readUpload(into: $0) }
        #expect(end == .endOfBody)
    }

    @Test func uploadAfterUpstreamAnsweredIsRefused() {
        var machine = TransferStateMachine(highWater: 100, lowWater: 40)
        _ = machine.receiveHead(.init(status: 413, reason: "Too Large", headers: []))
        machine.complete(.success(())).run()
        #expect(throws: UpstreamError.requestBodyNotNeeded) { try machine.appendUpload(ByteBuffer(string: "x")) }
    }

    @Test func completedHeadIsKnownOnlyOnceTheExchangeHasEnded() {
        var answered = TransferStateMachine(highWater: 100, lowWater: 40)
        #expect(answered.completedHead == nil)
        let head = UpstreamResponseHead(status: 204, reason: "No Content", headers: [])
        _ = answered.receiveHead(head)
        #expect(answered.completedHead == nil, "a head alone is not the end of the exchange")
        answered.complete(.success(())).run()
        #expect(answered.completedHead == .success(head))

        var silent = TransferStateMachine(highWater: 100, lowWater: 40)
        silent.complete(.success(())).run()
        guard case .failure(.unavailable)? = silent.completedHead else {
            Issue.record("an exchange that ended without a head must have failed")
            return
        }

        var timedOut = TransferStateMachine(highWater: 100, lowWater: 40)
        timedOut.complete(.failure(.headersTimedOut)).run()
        timedOut.complete(.success(())).run()  // a later completion changes nothing
        #expect(timedOut.completedHead == .failure(.headersTimedOut))
    }

    @Test func anEmptyUploadChunkIsNeverHandedToCurl() throws {
        var machine = TransferStateMachine(highWater: 100, lowWater: 40)
        var destination = [UInt8](repeating: 0, count: 16)
        _ = try machine.appendUpload(ByteBuffer(string: "abc"))
        let (first, _) = destination.withUnsafeMutableBytes { machine.readUpload(into: $0) }
        #expect(first == .bytes(3))
        // curl has taken everything; an empty chunk arrives before the rest of the body.
        #expect(try machine.appendUpload(ByteBuffer()) == .init(wakeCurl: false, mustWait: false))
        // 0 bytes would be curl's end of body: with nothing buffered curl must pause instead.
        let (second, _) = destination.withUnsafeMutableBytes { machine.readUpload(into: $0) }
        #expect(second == .pause)
        _ = try machine.appendUpload(ByteBuffer(string: "def"))
        let (third, _) = destination.withUnsafeMutableBytes { machine.readUpload(into: $0) }
        #expect(third == .bytes(3))
    }
}
