public import GatehouseAuth
public import GatehouseUpstream
import HTTPTypes
public import HummingbirdCore
public import Logging
public import NIOCore

/// Serves one client request: checks it, verifies its token, forwards it through the upstream
/// client, and streams the answer back. One instance serves every connection; it holds no
/// per-request state.
///
/// Order of work for a request (each step can end it):
/// 1. framing checks the HTTP decoder leaves to us (Host, Content-Length) → 400;
/// 2. admission (`admit`): preflight handling, the route's class and rule, the bearer token
///    → 400/401/403/503, or the identity to forward;
/// 3. header rewrite: hop-by-hop and identity fields dropped, forwarding fields rebuilt,
///    request id, identity headers added;
/// 4. the exchange starts; the request body is pumped concurrently (with backpressure);
/// 5. upstream head → 502/504 on failure, else the head is sent to the client;
/// 6. body chunks are relayed as they arrive; if the upstream dies mid-body the client's
///    connection is aborted, so a cut body never looks complete.
public struct ProxyResponder: Sendable {
    let configuration: GatehouseConfiguration
    let client: UpstreamClient
    let authenticator: Authenticator?
    let forwarding: ForwardingHeaders
    let tokenSources: TokenSources
    let metrics: ProxyMetrics
    let logger: Logger
    /// The `route_class` label of requests refused before admission (framing errors).
    let defaultRouteClass: String
    /// Connections that got an answer saying `Connection: close`.
    let closingConnections = ClosingConnections()
    /// `identityHeaderNames` with `_` read as `-` (see `upstreamHeaders`).
    let identityNamesDashed: Set<String>

    public init(
        configuration: GatehouseConfiguration, client: UpstreamClient, authenticator: Authenticator?,
        metrics: ProxyMetrics, logger: Logger
    ) {
        self.metrics = metrics
        self.defaultRouteClass = authenticator == nil ? "unauthenticated" : "protected"
        self.identityNamesDashed = Set(configuration.identityHeaderNames.map(Self.dashed))
        self.configuration = configuration
        self.client = client
        self.authenticator = authenticator
        self.forwarding = ForwardingHeaders(trustedProxies: configuration.trustedProxies)
        self.tokenSources = TokenSources(cookie: configuration.tokenCookie, queryParameter: configuration.tokenQueryParam)
        self.logger = logger
    }

    public func respond(to request: Request, writer: consuming ResponseWriter, channel: any Channel) async throws {
        // A request pipelined behind an answer that closed the connection: never served.
        if closingConnections.contains(channel) { return }
        let started = ContinuousClock.now
        let requestID = RequestID.accept(request.headers[.requestID]) ?? RequestID.generate()
        var entry = AccessLogEntry(
            method: request.method.rawValue, path: LoggedPath.redacting(request.head.path ?? ""), requestID: requestID)
        entry.routeClass = defaultRouteClass
        metrics.inFlight.increment()
        defer {
            metrics.inFlight.decrement()
            entry.duration = ContinuousClock.now - started
            metrics.recordRequest(routeClass: entry.routeClass ?? defaultRouteClass, status: entry.status, duration: entry.duration)
            if let upstream = entry.upstreamDuration { metrics.upstreamDuration.record(upstream) }
            entry.log(to: logger)
        }

        if let problem = Self.framingProblem(request.head) {
            entry.status = problem.status.code
            entry.outcome = "rejected"
            entry.bytes = try await send(
                problem, to: writer, requestID: requestID, closeConnection: true, channel: channel,
                origin: request.headers[.origin])
            return
        }

        // The token comes out of the target (query parameter) before anything is forwarded.
        let (target, admission) = await admit(request.head, recordingIn: &entry)
        let identity: [(name: String, value: String)]
        switch admission.outcome {
        case .forward(let headers, _):
            identity = headers
        case .refuse(let response, _):
            entry.status = response.status.code
            entry.outcome = "rejected"
            // A rejected preflight gets no CORS permission: that is what makes the browser stop.
            let origin = admission.routeClass == "preflight" ? nil : request.headers[.origin]
            entry.bytes = try await send(
                response, to: writer, requestID: requestID, closeConnection: request.headers.announceContent, channel: channel,
                origin: origin)
            return
        }

        let upstreamRequest = makeUpstreamRequest(
            request, target: target, identity: identity, requestID: requestID, peer: channel.remoteAddress?.ipAddress)
        if upstreamRequest.body != .none, request.headers[.expect]?.lowercased() == "100-continue" {
            try await writer.writeInformationalHead(HTTPResponse(status: .continue))
        }

        let exchange = client.start(upstreamRequest)
        let pump: Task<Bool, Never>? =
            upstreamRequest.body == .none
            ? nil
            : Task {
                var declared: Int64?
                if case .length(let length) = upstreamRequest.body { declared = length }
                return await Self.pumpRequestBody(request.body, declaredLength: declared, into: exchange)
            }

        let head: UpstreamResponseHead
        do {
            head = try await exchange.responseHead()
            entry.upstreamDuration = ContinuousClock.now - started
        } catch {
            let bodyComplete = await pump?.value ?? true
            let response = Self.errorResponse(for: error)
            entry.status = response.status.code
            entry.outcome = Self.reason(for: error)
            if case UpstreamError.cancelled = error { throw error }  // the client went away
            entry.bytes = try await send(
                response, to: writer, requestID: requestID, closeConnection: !bodyComplete, channel: channel,
                origin: request.headers[.origin])
            return
        }
        entry.status = head.status
        do {
            try await relay(head, of: exchange, requestID: requestID, to: writer, channel: channel, bytes: &entry.bytes)
        } catch {
            exchange.cancel()
            _ = await pump?.value
            entry.outcome = error is UpstreamError ? Self.reason(for: error) : "client_closed"
            throw error  // HummingbirdCore closes the connection: the client sees a cut, not an end.
        }
        _ = await pump?.value
    }

    /// Sends the upstream's head and body to the client.
    private func relay(
        _ head: UpstreamResponseHead, of exchange: UpstreamExchange, requestID: String,
        to writer: consuming ResponseWriter, channel: any Channel, bytes: inout Int
    ) async throws {
        let responseHead = responseHead(from: head, requestID: requestID)
        if let complete = exchange.takeCompleteBody() {
            // Everything is here already: one write, one flush.
            var body = ByteBuffer()
            if complete.count == 1 {
                body = complete[0]
            } else {
                for var chunk in complete { body.writeBuffer(&chunk) }
            }
            bytes = body.readableBytes
            try await writer.write(response: responseHead, body: ResponseBody(byteBuffer: body))
            return
        }
        var bodyWriter = try await writer.writeHead(responseHead)
        var sinceBarrier = 0
        while let chunk = try await exchange.nextBodyChunk() {
            bytes += chunk.readableBytes
            try await bodyWriter.write(chunk)
            // The response writer hands each chunk to the event loop without waiting, and only
            // stops accepting once the loop has seen the socket fill up. A round trip through
            // the loop every `writeBarrierBytes` makes that signal current, so a fast upstream
            // cannot queue megabytes ahead of a slow client.
            sinceBarrier += chunk.readableBytes
            if sinceBarrier >= Self.writeBarrierBytes {
                sinceBarrier = 0
                try await channel.eventLoop.submit {}.get()
            }
        }
        try await bodyWriter.finish(nil)
    }

    // MARK: Request

    /// Checks HTTP/1.1 framing rules the decoder does not enforce.
    static func framingProblem(_ head: HTTPRequest) -> ErrorResponse? {
        let fields = head.headerFields
        // RFC 9112 §3.2: exactly one Host in an HTTP/1.1 request.
        guard head.authority != nil else { return .badRequest("Missing Host header") }
        if fields[.host] != nil { return .badRequest("Multiple Host headers") }
        // RFC 9112 §3.2.1: origin-form has no fragment. Parsers differ on `#` (uvicorn's
        // httptools cuts the path there, h11 keeps it), so gatehouse and FastAPI could route
        // one target two ways: refused.
        if head.path?.utf8.contains(UInt8(ascii: "#")) == true { return .badRequest("Fragment in request target") }
        guard head.path?.hasPrefix("/") == true else { return .badRequest("Request target must be an absolute path") }
        // RFC 9112 §6.3: a message with both is an attack vector (request smuggling).
        let contentLengths = fields[values: .contentLength]
        let transferEncodings = fields[values: .transferEncoding]
        if !transferEncodings.isEmpty {
            if !contentLengths.isEmpty { return .badRequest("Both Content-Length and Transfer-Encoding") }
            // RFC 9112 §6.3: without `chunked` as the final coding a request body's length
            // cannot be known (400, close). Other codings before it (RFC 9112 §6.1: 501 for
            // codings a server does not understand) would reach FastAPI undeclared, since the
            // body is re-framed upstream: only plain `chunked` is accepted.
            let codings = transferEncodings.flatMap(HopByHopHeaders.tokens)
            guard codings.last == "chunked" else { return .badRequest("Transfer-Encoding must end with chunked") }
            guard codings.count == 1 else {
                return ErrorResponse(status: .notImplemented, detail: "Transfer-Encoding other than chunked")
            }
        }
        if let first = contentLengths.first {
            guard contentLengths.allSatisfy({ $0 == first }), !first.isEmpty,
                first.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), Int64(first) != nil
            else { return .badRequest("Invalid Content-Length") }
        }
        return nil
    }

    /// The request FastAPI receives. Call only after `framingProblem` found nothing.
    func makeUpstreamRequest(
        _ request: Request, target path: String, identity: [(name: String, value: String)], requestID: String, peer: String?
    ) -> UpstreamRequest {
        let fields = request.headers
        var body = UpstreamRequest.Body.none
        if fields[.transferEncoding] != nil {
            body = .streamed
        } else if let length = fields[.contentLength].flatMap({ Int64($0) }) {
            body = .length(length)
        }
        return makeUpstreamRequest(
            method: request.method.rawValue, fields: fields, authority: request.head.authority ?? "", body: body,
            target: path, identity: identity, requestID: requestID, peer: peer)
    }

    /// The request FastAPI receives, from a head already checked for framing (both cores).
    func makeUpstreamRequest(
        method: String, fields: HTTPFields, authority: String, body: UpstreamRequest.Body, target path: String,
        identity: [(name: String, value: String)], requestID: String, peer: String?
    ) -> UpstreamRequest {
        let headers = upstreamHeaders(fields, authority: authority, identity: identity, requestID: requestID, peer: peer)
        return UpstreamRequest(
            origin: configuration.upstream.origin, target: configuration.upstream.pathPrefix + path,
            method: method, headers: headers, body: body)
    }

    /// The header fields FastAPI receives: `Host` kept, hop-by-hop and identity fields dropped
    /// (so a client can never forge identity), forwarding fields rebuilt, request id and the
    /// verified identity added. Shared by plain requests and WebSocket handshakes.
    func upstreamHeaders(
        _ fields: HTTPFields, authority: String, identity: [(name: String, value: String)], requestID: String, peer: String?
    ) -> [(name: String, value: String)] {
        let connectionValues = fields[values: .connection]
        let hopByHop = connectionValues.isEmpty ? HopByHopHeaders.fixed : HopByHopHeaders.names(connectionValues: connectionValues)
        var headers: [(name: String, value: String)] = [("Host", authority)]
        headers.reserveCapacity(fields.count + 4)
        var incoming = ForwardingHeaders.Incoming()
        let identityNames = identityNamesDashed
        let dropAuthorization = !configuration.forwardToken
        for field in fields {
            let name = field.name.canonicalName
            if hopByHop.contains(name) || Self.rebuilt.contains(name) { continue }
            // WSGI servers (and Starlette's WSGIMiddleware) read `X_User_Id` and `X-User-Id`
            // as one variable: a spelling of a header gatehouse sets or drops that differs only
            // in `_` and `-` is dropped too (both ways: identity names may be configured with
            // `_`), or a client could forge it for a mounted WSGI app.
            let hasUnderscore = name.utf8.contains(UInt8(ascii: "_"))
            let dashed = hasUnderscore ? Self.dashed(name) : name
            if identityNames.contains(dashed) { continue }
            if hasUnderscore,
                hopByHop.contains(dashed) || Self.rebuilt.contains(dashed) || ForwardingHeaders.managed.contains(dashed)
                    || dashed == "authorization"
            {
                continue
            }
            if dropAuthorization && field.name == .authorization { continue }
            if dropAuthorization, field.name == .cookie, let cookie = configuration.tokenCookie {
                // The token's cookie stays behind too; the other cookies pass.
                let kept = field.value.split(separator: ";").filter { !TokenSources.isCookie($0, named: cookie) }
                if !kept.isEmpty { headers.append((field.name.rawName, kept.joined(separator: ";").trimmingSpaces())) }
                continue
            }
            if ForwardingHeaders.managed.contains(name) {
                switch name {
                case "x-forwarded-for": incoming.forwardedFor.append(field.value)
                case "x-forwarded-proto": incoming.forwardedProto = field.value
                case "x-forwarded-host": incoming.forwardedHost = field.value
                default: break
                }
                continue
            }
            headers.append((field.name.rawName, field.value))
        }
        headers += forwarding.fields(peer: peer, host: authority, incoming: incoming)
        headers.append(("X-Request-Id", requestID))
        headers += identity
        return headers
    }

    /// A lowercased header name with `_` read as `-`, as WSGI reads it.
    static func dashed(_ name: String) -> String {
        String(name.map { $0 == "_" ? "-" : $0 })
    }

    static let writeBarrierBytes = 256 * 1024

    /// Request fields the proxy regenerates rather than copies (lowercased).
    static let rebuilt: Set<String> = ["content-length", "expect", "x-request-id", "host"]

    /// Copies the request body to the exchange. Returns whether the whole body was read
    /// (if not, the connection cannot be reused: the rest of the body is still on it).
    static func pumpRequestBody(
        _ body: RequestBody, declaredLength: Int64?, into exchange: UpstreamExchange
    ) async -> Bool {
        do {
            var received: Int64 = 0
            for try await chunk in body {
                received += Int64(chunk.readableBytes)
                try await exchange.writeRequestBody(chunk)
            }
            // The stream also ends when the client disconnects mid-body; a short body is an
            // aborted request, never a complete one.
            if let declaredLength, received != declaredLength {
                exchange.cancel()
                return false
            }
            exchange.finishRequestBody()
            return true
        } catch UpstreamError.requestBodyNotNeeded {
            return false
        } catch {
            exchange.cancel()
            return false
        }
    }

    // MARK: Response

    func responseHead(from head: UpstreamResponseHead, requestID: String) -> HTTPResponse {
        var hopByHop = HopByHopHeaders.fixed
        let isConnection = { (name: String) in name.utf8.count == 10 && name.lowercased() == "connection" }
        if head.headers.contains(where: { isConnection($0.name) }) {
            hopByHop = HopByHopHeaders.names(connectionValues: head.headers.lazy.filter { isConnection($0.name) }.map(\.value))
        }
        var fields = HTTPFields()
        fields.reserveCapacity(head.headers.count + 1)
        for header in head.headers {
            guard let name = HTTPField.Name(header.name) else { continue }
            let canonical = name.canonicalName
            if hopByHop.contains(canonical) || canonical == "x-request-id" { continue }
            fields.append(HTTPField(name: name, value: header.value))
        }
        fields[.requestID] = requestID
        return HTTPResponse(status: .init(code: head.status), headerFields: fields)
    }

    /// Writes one of gatehouse's own answers; returns the body size (for the access log).
    /// `origin` (the request's `Origin`) decides the CORS fields (`CORSPolicy`), so a browser
    /// script can read the answer; nil withholds them.
    /// With `closeConnection` the connection really ends after the answer (`ClosingConnections`):
    /// HummingbirdCore would otherwise go on reading (and draining an unread body) whatever the
    /// header says. The output side is shut after the answer has reached the socket, so the
    /// client reads the answer and then end-of-stream; requests queued behind it are dropped.
    @discardableResult
    func send(
        _ response: ErrorResponse, to writer: consuming ResponseWriter, requestID: String, closeConnection: Bool,
        channel: any Channel, origin: String?
    ) async throws -> Int {
        let bytes = response.body
        let head = response.head(
            requestID: requestID, closeConnection: closeConnection, cors: configuration.cors.responseFields(origin: origin))
        try await writer.write(response: head, body: ResponseBody(byteBuffer: bytes))
        if closeConnection { await closingConnections.close(channel) }
        return bytes.readableBytes
    }

    static func errorResponse(for error: any Error) -> ErrorResponse {
        switch error as? UpstreamError {
        case .headersTimedOut?, .idleTimedOut?: return .gatewayTimeout
        default: return .badGateway
        }
    }

    /// Short, bounded vocabulary for logs (never raw error text from the network).
    static func reason(for error: any Error) -> String {
        switch error as? UpstreamError {
        case .headersTimedOut?: return "upstream_timeout"
        case .idleTimedOut?: return "upstream_idle_timeout"
        case .cancelled?: return "cancelled"
        case .requestBodyNotNeeded?: return "body_not_needed"
        case .unavailable?: return "upstream_unavailable"
        case nil: return "client_closed"
        }
    }
}

extension HTTPFields {
    /// Whether a request head announces content (RFC 9112 §6.3): `Transfer-Encoding`, or a
    /// `Content-Length` other than 0.
    var announceContent: Bool {
        self[.transferEncoding] != nil || (self[.contentLength].map { $0 != "0" } ?? false)
    }
}

extension HTTPField.Name {
    static let host = HTTPField.Name("Host")!
}
