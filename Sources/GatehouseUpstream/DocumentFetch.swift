import NIOCore

/// A small document fetched by gatehouse for itself (the JWKS), through the same curl
/// thread and connection pool as proxied traffic.
public struct FetchedDocument: Sendable {
    public var status: Int
    public var headers: [UpstreamResponseHead.HeaderField]
    public var body: [UInt8]

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

extension UpstreamClient {
    /// GETs `target` from `origin`, keeping at most `maxBytes` of body, within `timeout`
    /// (the whole exchange: connect, headers and body).
    public func fetch(
        origin: String, target: String, headers: [(name: String, value: String)], timeoutMilliseconds: Int, maxBytes: Int
    ) async throws(FetchError) -> FetchedDocument {
        var request = UpstreamRequest(origin: origin, target: target, method: "GET", headers: headers, body: .none)
        request.totalTimeoutMilliseconds = timeoutMilliseconds
        let exchange = start(request)
        do {
            let head = try await exchange.responseHead()
            var body: [UInt8] = []
            while let chunk = try await exchange.nextBodyChunk() {
                guard body.count + chunk.readableBytes <= maxBytes else {
                    exchange.cancel()
                    throw FetchError.tooLarge(limit: maxBytes)
                }
                body.append(contentsOf: chunk.readableBytesView)
            }
            return FetchedDocument(status: head.status, headers: head.headers, body: body)
        } catch let error as FetchError {
            throw error
        } catch let error as UpstreamError {
            throw .upstream(error)
        } catch {
            throw .upstream(.cancelled)
        }
    }
}
