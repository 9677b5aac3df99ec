/// A small document fetched by gatehouse for itself (the JWKS).
public struct FetchedDocument: Sendable {
    public var status: Int
    public var headers: [UpstreamResponseHead.HeaderField]
    public var body: [UInt8]

    public init(status: Int, headers: [UpstreamResponseHead.HeaderField], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of a header, case-insensitively.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }
}

public enum FetchError: Error, Sendable, Equatable {
    case upstream(UpstreamError)
    /// The body exceeded the caller's limit; the transfer was cancelled, nothing kept.
    case tooLarge(limit: Int)
}

extension UpstreamMulti {
    /// GETs `target` from `origin` on this loop, keeping at most `maxBytes` of body, within
    /// `timeoutMilliseconds` for the whole exchange (connect, head and body). `completion` is
    /// called once, on the loop's thread, from a loop callback (never from inside this call);
    /// for an oversized body, from inside curl's write callback, so it must not start or end
    /// transfers on this multi itself (schedule that on a timer).
    public func fetchDocument(
        origin: String, target: String, headers: [(name: String, value: String)], timeoutMilliseconds: Int,
        maxBytes: Int, completion: @escaping (Result<FetchedDocument, FetchError>) -> Void
    ) {
        var request = UpstreamRequest(origin: origin, target: target, method: "GET", headers: headers, body: .none)
        request.totalTimeoutMilliseconds = timeoutMilliseconds
        let fetch = DocumentFetch(maxBytes: maxBytes, completion: completion)
        fetch.start(request, on: self)
    }
}

/// One document fetch: collects the body, bounded, and reports once. It keeps itself alive
/// (`self` retained in `keepAlive`) while curl works, since a transfer holds its delegate weakly.
final class DocumentFetch: UpstreamTransferDelegate {
    private let maxBytes: Int
    private var completion: ((Result<FetchedDocument, FetchError>) -> Void)?
    private var head: UpstreamResponseHead?
    private var body: [UInt8] = []
    private var keepAlive: DocumentFetch?
    private var tooLarge = false

    init(maxBytes: Int, completion: @escaping (Result<FetchedDocument, FetchError>) -> Void) {
        self.maxBytes = maxBytes
        self.completion = completion
    }

    func start(_ request: UpstreamRequest, on multi: UpstreamMulti) {
        keepAlive = self
        _ = multi.start(request, delegate: self)
    }

    func upstreamHead(_ transfer: UpstreamTransfer, _ head: UpstreamResponseHead) { self.head = head }

    func upstreamBody(_ transfer: UpstreamTransfer, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !tooLarge else { return true }
        guard body.count + bytes.count <= maxBytes else {
            // Nothing of an oversized document is kept; the transfer is abandoned. This is
            // inside curl's write callback: the completion must not start or end transfers.
            tooLarge = true
            body = []
            transfer.cancel()
            report(.failure(.tooLarge(limit: maxBytes)))
            return true
        }
        body.append(contentsOf: bytes)
        return true
    }

    func upstreamWantsBody(_ transfer: UpstreamTransfer, into: UnsafeMutableRawBufferPointer) -> UpstreamBodyRead {
        .end
    }

    func upstreamFinished(_ transfer: UpstreamTransfer, _ error: UpstreamError?) {
        if let error {
            report(.failure(.upstream(error)))
        } else if let head {
            report(.success(FetchedDocument(status: head.status, headers: head.headers, body: body)))
        } else {
            report(.failure(.upstream(.unavailable("no response"))))
        }
    }

    private func report(_ result: Result<FetchedDocument, FetchError>) {
        guard let completion else { return }
        self.completion = nil
        completion(result)
        keepAlive = nil
    }
}
