import NIOCore
import Synchronization

/// The proxy connections gatehouse is closing: those where it sent an answer that says
/// `Connection: close` (a framing error, a refusal whose request body was left unread, an
/// upstream failure mid-upload, RFC 9112 §9.6).
///
/// HummingbirdCore reads ahead, so requests the client pipelined behind such an answer may
/// already be queued for the responder. `ProxyResponder` checks this set first and drops them:
/// nothing more is admitted, forwarded or answered on the connection. The connection itself
/// ends `linger` after the answer: its output is shut at once, and its input stays open until
/// then so that what the client still sends is read and discarded (closing a socket with
/// unread data sends a TCP reset, which can destroy the answer before the client has read it).
///
/// Thread-safety: the set is behind a `Mutex`; any task may mark or ask. An entry leaves the set
/// when its channel closes, before the channel can be freed and its identifier reused.
final class ClosingConnections: Sendable {
    private let closing = Mutex(Set<ObjectIdentifier>())
    let linger: TimeAmount

    init(linger: TimeAmount = .seconds(2)) {
        self.linger = linger
    }

    /// After the closing answer has been written: shuts the output, drops whatever else the
    /// connection asks, and closes it after `linger`.
    func close(_ channel: any Channel) async {
        let id = ObjectIdentifier(channel)
        let inserted = closing.withLock { $0.insert(id).inserted }
        guard inserted else { return }
        channel.closeFuture.whenComplete { [self] _ in _ = closing.withLock { $0.remove(id) } }
        channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
        try? await channel.eventLoop.submit {}.get()  // the answer's write is processed first (FIFO)
        try? await channel.close(mode: .output)
    }

    /// Whether requests on `channel` are to be dropped: it got a closing answer, or it is
    /// closed already (HummingbirdCore closes a connection itself once an answer saying
    /// `Connection: close` is written, and may still hand over requests it had read): an
    /// answer could not reach the client, and the request must not reach FastAPI.
    func contains(_ channel: any Channel) -> Bool {
        if !channel.isActive { return true }
        let id = ObjectIdentifier(channel)
        return closing.withLock { $0.contains(id) }
    }
}
