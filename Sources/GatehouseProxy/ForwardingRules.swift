public import GatehouseAuth
import GatehouseUpstream
import HTTPTypes
import JOSE
public import Logging

/// The rules that turn a client's request into the one FastAPI receives, and FastAPI's answer
/// into the one the client receives: which fields pass, which are rebuilt, which identity is
/// added. One instance serves every worker (a class: a request reads it through one reference
/// instead of copying a struct of a dozen references); it holds no per-request state and does no I/O
/// (`ClientConnection` does that).
///
/// Order of work for a request (each step can end it; `ClientConnection` drives it):
/// 1. framing: the HTTP/1.1 parser (`HTTP1RequestParser`) refuses what it cannot frame → 400;
/// 2. admission (`Admission`): preflight handling, the route's class and rule, the bearer
///    token → 400/401/403/503, or the identity to forward;
/// 3. header rewrite (`upstreamHeaders`): hop-by-hop and identity fields dropped, forwarding
///    fields rebuilt, request id, identity headers added;
/// 4. the exchange starts on the worker's curl multi, the request body streamed with
///    backpressure;
/// 5. upstream head → 502/504 on failure, else the head (`responseHead`) goes to the client;
/// 6. body bytes are relayed as they arrive; if the upstream dies mid-body the client's
///    connection is cut, so a cut body never looks complete.
public final class ForwardingRules: Sendable {
    let configuration: GatehouseConfiguration
    let authenticator: Authenticator?
    let forwarding: ForwardingHeaders
    let tokenSources: TokenSources
    let metrics: ProxyMetrics
    let logger: Logger
    /// The `route_class` label of requests refused before admission (framing errors).
    let defaultRouteClass: String
    /// The cookies that carry a credential (the JWT cookie, the session cookie), kept from
    /// FastAPI with `GATEHOUSE_FORWARD_TOKEN=false`.
    let credentialCookies: [String]
    /// Better Auth's cookie cache, `<prefix>.session_data` (split into `.session_data.0`, `.1`,
    /// … when large): it holds the session object, `session.token` included, so it stays
    /// behind with the session cookie.
    let credentialCookiePrefix: String?
    /// `identityHeaderNames` with `_` read as `-` (see `upstreamHeaders`).
    let identityNamesDashed: Set<String>

    public init(
        configuration: GatehouseConfiguration, authenticator: Authenticator?,
        metrics: ProxyMetrics, logger: Logger
    ) {
        self.metrics = metrics
        self.defaultRouteClass = authenticator == nil ? "unauthenticated" : "protected"
        self.identityNamesDashed = Set(configuration.identityHeaderNames.map(Self.dashed))
        self.configuration = configuration
        self.authenticator = authenticator
        self.forwarding = ForwardingHeaders(trustedProxies: configuration.trustedProxies)
        var sources = TokenSources(cookie: configuration.tokenCookie, queryParameter: configuration.tokenQueryParam)
        if let sessions = configuration.sessions {
            sources.sessionCookie = sessions.acceptsCookie ? sessions.cookieName : nil
            sources.sessionBearer = sessions.acceptsBearer
        }
        self.tokenSources = sources
        self.credentialCookies = [configuration.tokenCookie, sources.sessionCookie].compactMap { $0 }
        self.credentialCookiePrefix = configuration.sessions.flatMap { sessions in
            sessions.cookieName.hasSuffix(".session_token") ? String(sessions.cookieName.dropLast(13)) + "session_data" : nil
        }
        self.logger = logger
    }

    /// The request FastAPI receives, from a head the parser has framed. `signer`: the worker's
    /// HMAC context for `X-Gatehouse-Signature`, when `GATEHOUSE_IDENTITY_SECRET` is set.
    func makeUpstreamRequest(
        method: String, fields: HTTPFields, authority: String, body: UpstreamRequest.Body, target path: String,
        identity: [(name: String, value: String)], requestID: String, peer: String?, signer: HMACSHA256? = nil
    ) -> UpstreamRequest {
        var headers = upstreamHeaders(fields, authority: authority, identity: identity, requestID: requestID, peer: peer)
        let target = configuration.upstream.pathPrefix + path
        if let signature = configuration.identitySignature, let signer {
            headers.append((IdentitySignature.headerName, signature.value(
                time: Int(Authenticator.now()), method: method, target: target, requestID: requestID, identity: identity,
                signer: signer)))
        }
        return UpstreamRequest(
            origin: configuration.upstream.origin, target: target, method: method, headers: headers, body: body)
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
            if dropAuthorization, field.name == .cookie, !credentialCookies.isEmpty {
                // The credential cookies stay behind too; the other cookies pass.
                let kept = field.value.split(separator: ";").filter { pair in
                    !credentialCookies.contains { TokenSources.isCookie(pair, named: $0) } && !isCookieCache(pair)
                }
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

    /// Whether one pair of a `Cookie` header is Better Auth's cookie cache (or a chunk of it).
    private func isCookieCache(_ pair: Substring) -> Bool {
        guard let prefix = credentialCookiePrefix, let name = TokenSources.cookieName(of: pair) else { return false }
        return name == prefix || (name.hasPrefix(prefix + ".") && name.dropFirst(prefix.count + 1).allSatisfy(\.isNumber))
    }

    /// A lowercased header name with `_` read as `-`, as WSGI reads it.
    static func dashed(_ name: String) -> String {
        String(name.map { $0 == "_" ? "-" : $0 })
    }

    /// Request fields the proxy regenerates rather than copies (lowercased).
    static let rebuilt: Set<String> = ["content-length", "expect", "x-request-id", "host"]

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
