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
        let found = tokenSources.find(in: head.headerFields, target: head.path ?? "")
        let admission = await admit(
            method: head.method.rawValue, path: head.path ?? "", headers: head.headerFields, token: found.token,
            recordingIn: &entry)
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
        let request = WebSocketHandshake.upstreamRequest(target: configuration.upstream.pathPrefix + found.target, headers: headers)
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
        if connected.answer.status < 200 && connected.answer.status != 101 {
            connected.channel.close(promise: nil)
            return refuse(.badGateway, outcome: "upstream_unavailable")  // no other interim answer fits a GET handshake
        }
        entry.status = connected.answer.status

        // FastAPI's fields minus hop-by-hop ones (RFC 9110 §7.6.1), which this hop sets itself.
        let answer = connected.answer
        let hopByHop = HopByHopHeaders.names(connectionValues: answer.values("connection"))
        let passed = answer.headers.filter { !hopByHop.contains($0.name.lowercased()) && $0.name.lowercased() != "x-request-id" }
        if answer.status == 101 {
            var response = ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n")
            for field in passed { response.writeString("\(field.name): \(field.value)\r\n") }
            response.writeString("X-Request-Id: \(requestID)\r\n\r\n")
            return .open(upstream: connected.channel, response: response, log: entry, started: started)
        }
        // FastAPI refused (e.g. 403 from a handler that closed before accepting): relay it.
        var fields = HTTPFields()
        for field in passed where field.name.lowercased() != "content-length" {
            if let name = HTTPField.Name(field.name) { fields.append(HTTPField(name: name, value: field.value)) }
        }
        fields[.contentLength] = String(answer.rest.count)
        fields[.connection] = "close"
        fields[HTTPField.Name.requestID] = requestID
        entry.outcome = "upgrade_refused"
        entry.bytes = answer.rest.count
        return .refused(
            HTTPResponse(status: .init(code: answer.status), headerFields: fields), body: ByteBuffer(bytes: answer.rest), log: entry,
            started: started)
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
