import HTTPTypes
import NIOCore

extension ProxyResponder {
    /// What became of a WebSocket handshake.
    enum TunnelOpening: Sendable {
        /// FastAPI switched protocols: `upstream` is connected and past its 101; `response` is
        /// the 101 the client gets, serialised.
        case open(upstream: any Channel, response: ByteBuffer, log: AccessLogEntry, started: ContinuousClock.Instant)
        /// No upgrade: gatehouse's own error, or FastAPI's refusal relayed. The connection
        /// closes after this answer.
        case refused(HTTPResponse, body: ByteBuffer, log: AccessLogEntry, started: ContinuousClock.Instant)
    }

    /// The HTTP half of a WebSocket tunnel. A handshake is checked and authenticated exactly
    /// like any request (token from `Authorization`, the cookie, or the query parameter —
    /// browsers cannot set headers on a WebSocket), then forwarded to FastAPI over a direct
    /// connection; only FastAPI's own 101 opens the tunnel.
    func openTunnel(_ head: HTTPRequest, peer: String?, eventLoop: any EventLoop) async -> TunnelOpening {
        let started = ContinuousClock.now
        let requestID = RequestID.accept(head.headerFields[.requestID]) ?? RequestID.generate()
        var entry = AccessLogEntry(method: head.method.rawValue, path: LoggedPath.redacting(head.path ?? ""), requestID: requestID)
        entry.routeClass = defaultRouteClass
        let cors = configuration.cors.responseFields(origin: head.headerFields[.origin])

        func refuse(_ response: ErrorResponse, outcome: String) -> TunnelOpening {
            entry.status = response.status.code
            entry.outcome = outcome
            let body = response.body
            entry.bytes = body.readableBytes
            return .refused(
                response.head(requestID: requestID, closeConnection: true, cors: cors), body: body, log: entry, started: started)
        }

        if let problem = Self.framingProblem(head) { return refuse(problem, outcome: "rejected") }

        // Route rules, token and claim requirements: the same decision as for any request.
        let (target, admission) = await admit(head, recordingIn: &entry)
        let identity: [(name: String, value: String)]
        switch admission.outcome {
        case .forward(let headers, _):
            identity = headers
        case .refuse(let response, _):
            return refuse(response, outcome: "rejected")
        }

        guard !configuration.upstream.isHTTPS else {
            return refuse(.init(status: .badGateway, detail: "WebSocket tunnels need an http:// upstream"), outcome: "upstream_unavailable")
        }
        let headers = upstreamHeaders(
            head.headerFields, authority: head.authority ?? "", identity: identity, requestID: requestID, peer: peer)
        let request = WebSocketHandshake.upstreamRequest(target: configuration.upstream.pathPrefix + target, headers: headers)
        let (host, port) = configuration.upstream.hostAndPort
        let connected: WebSocketUpstream.Connected
        do {
            connected = try await WebSocketUpstream.handshake(
                host: host, port: port, request: request, on: eventLoop,
                connectTimeout: .milliseconds(Int64(configuration.upstreamConnectTimeout.milliseconds)),
                answerTimeout: .milliseconds(Int64(configuration.upstreamTimeout.milliseconds)))
        } catch .timedOut {
            return refuse(.gatewayTimeout, outcome: "upstream_timeout")
        } catch {
            return refuse(.badGateway, outcome: "upstream_unavailable")
        }
        entry.upstreamDuration = ContinuousClock.now - started
        let answer = connected.answer
        entry.status = answer.head.status
        // FastAPI's fields as for any response: hop-by-hop ones dropped (RFC 9110 §7.6.1;
        // this hop sets its own), names and values validated, `X-Request-Id` set.
        var response = responseHead(from: answer.head, requestID: requestID)
        if answer.head.status == 101 {
            return .open(
                upstream: connected.channel, response: WebSocketHandshake.switchingProtocols(response.headerFields), log: entry,
                started: started)
        }
        // FastAPI refused (e.g. 403 from a handler that closed before accepting): relay it.
        response.headerFields[.contentLength] = String(answer.rest.count)
        response.headerFields[.connection] = "close"
        entry.outcome = "upgrade_refused"
        entry.bytes = answer.rest.count
        return .refused(response, body: ByteBuffer(bytes: answer.rest), log: entry, started: started)
    }
}

extension ProxyResponder {
    /// The access-log line and request metrics of a handshake, written when the tunnel ends
    /// (or at once for a refusal). `bytes`: what FastAPI sent through the spliced tunnel.
    func logTunnel(_ entry: AccessLogEntry, started: ContinuousClock.Instant, bytes: Int?) {
        var entry = entry
        entry.duration = ContinuousClock.now - started
        if let bytes { entry.bytes += bytes }
        metrics.recordRequest(routeClass: entry.routeClass ?? defaultRouteClass, status: entry.status, duration: entry.duration)
        if let upstream = entry.upstreamDuration { metrics.upstreamDuration.record(upstream) }
        entry.log(to: logger)
    }
}
