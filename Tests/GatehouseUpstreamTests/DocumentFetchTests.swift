import EventLoop
import Glibc
import Testing

@testable import GatehouseUpstream

/// `UpstreamMulti.fetchDocument` (the JWKS fetch) against a real server on 127.0.0.1 or a Unix
/// socket, through real libcurl driven by a real loop on the test's thread.
@Suite(.timeLimit(.minutes(1))) struct DocumentFetchTests {
    /// One loop and its multi; fetches run on them one after another.
    final class Harness {
        let loop: EventLoop
        let multi: UpstreamMulti

        init(configuration: UpstreamClientConfiguration = .init()) throws {
            loop = try EventLoop()
            multi = UpstreamMulti(loop: loop, configuration: configuration)
            loop.batchEnded = { [multi] in multi.batchEnded() }
        }

        /// What one fetch came to.
        struct Fetched {
            /// Every call of the completion, in order (exactly one expected).
            var results: [Result<FetchedDocument, FetchError>]
            /// Calls made before `fetchDocument` returned (none expected).
            var callsDuringTheCall: Int
            /// From the call to the (first) completion.
            var milliseconds: UInt64
            /// The document, when the one result is a success.
            var document: FetchedDocument? {
                guard results.count == 1, case .success(let document) = results[0] else { return nil }
                return document
            }
            /// The error, when the one result is a failure.
            var error: FetchError? {
                guard results.count == 1, case .failure(let error) = results[0] else { return nil }
                return error
            }
        }

        /// Fetches, runs the loop until the completion (or a 10 s deadline), then 200 ms more
        /// so that a second completion would show.
        func fetch(
            _ origin: String, _ target: String = "/.well-known/jwks.json",
            headers: [(name: String, value: String)] = [("User-Agent", "gatehouse-test"), ("Accept", "application/json")],
            timeoutMilliseconds: Int = 5_000, maxBytes: Int = 64 * 1024
        ) -> Fetched {
            final class Box {
                var results: [Result<FetchedDocument, FetchError>] = []
                var milliseconds: UInt64 = 0
            }
            let box = Box()
            let loop = self.loop
            let started = Monotonic.milliseconds()
            multi.fetchDocument(
                origin: origin, target: target, headers: headers, timeoutMilliseconds: timeoutMilliseconds, maxBytes: maxBytes
            ) { result in
                if box.results.isEmpty { box.milliseconds = Monotonic.milliseconds() - started }
                box.results.append(result)
                loop.stop()
            }
            let callsDuringTheCall = box.results.count
            let deadline = LoopStopper(loop: loop, milliseconds: 10_000)
            loop.run()
            deadline.cancel()
            let linger = LoopStopper(loop: loop, milliseconds: 200)
            loop.run()
            linger.cancel()
            return Fetched(results: box.results, callsDuringTheCall: callsDuringTheCall, milliseconds: box.milliseconds)
        }
    }

    static let jwks = Array(
        #"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#.utf8)

    @Test func aDocumentArrivesWholeWithItsHeaders() throws {
        let answer = TestServer.response(
            status: 200, reason: "OK",
            headers: [
                ("ETag", "\"v1\""), ("Cache-Control", "max-age=300, must-revalidate"), ("content-type", "application/json"),
                ("X-Dup", "first"), ("X-Dup", "second"),
            ], body: Self.jwks)
        try TestServer.with(script: TestServer.always(answer)) { server in
            let harness = try Harness()
            let fetched = harness.fetch(server.origin)
            #expect(fetched.results.count == 1, "the completion is called exactly once")
            #expect(fetched.callsDuringTheCall == 0, "never from inside fetchDocument")
            guard let document = fetched.document else {
                Issue.record("expected a document, got \(fetched.results)")
                return
            }
            #expect(document.status == 200)
            #expect(document.body == Self.jwks)
            #expect(document.header("ETag") == "\"v1\"")
            #expect(document.header("etag") == "\"v1\"")
            #expect(document.header("CACHE-CONTROL") == "max-age=300, must-revalidate")
            #expect(document.header("Content-Type") == "application/json")
            #expect(document.header("x-dup") == "first", "the first of repeated fields")
            #expect(document.header("Last-Modified") == nil)
            // The request the server read: the exact target and the caller's fields.
            let requests = server.requests
            #expect(requests.map(\.method) == ["GET"])
            #expect(requests.map(\.target) == ["/.well-known/jwks.json"])
            #expect(requests.first?.values("User-Agent") == ["gatehouse-test"])
            #expect(requests.first?.values("Accept") == ["application/json"])
            #expect(requests.first?.body.isEmpty == true)
            #expect(harness.multi.activeTransfers == 0)
        }
    }

    /// A status other than 200 is a document like any other: the caller decides (a 404 JWKS URL).
    @Test func anErrorStatusIsADocumentWithThatStatus() throws {
        let answer = TestServer.response(status: 404, reason: "Not Found", body: Array("no such keys".utf8))
        try TestServer.with(script: TestServer.always(answer)) { server in
            let fetched = try Harness().fetch(server.origin)
            #expect(fetched.results.count == 1)
            #expect(fetched.document?.status == 404)
            #expect(fetched.document.map { String(decoding: $0.body, as: UTF8.self) } == "no such keys")
        }
    }

    enum Framing: String, Sendable, CustomTestStringConvertible {
        case contentLength, chunked
        var testDescription: String { rawValue }
    }

    /// The body limit, at and past it, with either framing. Past it the fetch fails with
    /// `.tooLarge` and no document; the transfer is abandoned (its connection closed, not
    /// reused) and the multi goes on serving fetches.
    @Test(arguments: [
        (Framing.contentLength, 1_000, 1_000, true), (.contentLength, 1_001, 1_000, false),
        (.contentLength, 1_000_000, 64 * 1024, false),
        (.chunked, 1_000, 1_000, true), (.chunked, 3_000, 1_000, false), (.chunked, 1_000_000, 64 * 1024, false),
    ])
    func theBodyLimit(_ framing: Framing, _ size: Int, _ maxBytes: Int, _ fits: Bool) throws {
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let big: [UInt8] =
            switch framing {
            case .contentLength: TestServer.response(status: 200, reason: "OK", body: payload)
            case .chunked: TestServer.chunkedResponse(chunks: stride(from: 0, to: size, by: 100).map { Array(payload[$0..<min($0 + 100, size)]) })
            }
        let small = TestServer.response(status: 200, reason: "OK", body: Array("small".utf8))
        try TestServer.with(script: { connection in
            while let request = connection.readRequest() {
                connection.write(request.target == "/small" ? small : big)
            }
        }) { server in
            let harness = try Harness()
            let fetched = harness.fetch(server.origin, "/big", maxBytes: maxBytes)
            #expect(fetched.results.count == 1, "the completion is called exactly once: \(fetched.results.count)")
            #expect(fetched.callsDuringTheCall == 0)
            if fits {
                #expect(fetched.document?.body == payload)
            } else {
                #expect(fetched.error == .tooLarge(limit: maxBytes), "\(fetched.results)")
            }
            #expect(harness.multi.activeTransfers == 0)
            // The same multi afterwards (started from outside the completion, as documented).
            let next = harness.fetch(server.origin, "/small", maxBytes: maxBytes)
            #expect(next.document.map { String(decoding: $0.body, as: UTF8.self) } == "small", "\(next.results)")
            #expect(server.connections == (fits ? 1 : 2), "an abandoned transfer's connection is not reused")
            #expect(harness.multi.activeTransfers == 0)
        }
    }

    enum Stall: String, Sendable, CustomTestStringConvertible {
        /// Reads the request, never answers.
        case beforeTheHead
        /// Sends the head (Content-Length 1000) and nothing more.
        case afterTheHead
        /// Sends the head and 10 of the 1000 bytes.
        case midBody
        var testDescription: String { rawValue }
    }

    /// The whole-exchange limit fires for a server that stalls, however far it got, within about
    /// the limit (the loop's own headers and idle timeouts are far longer). curl's
    /// `CURLE_OPERATION_TIMEDOUT` is reported as `.headersTimedOut` before the head and as
    /// `.idleTimedOut` after it (`UpstreamTransfer.complete`).
    @Test(arguments: [Stall.beforeTheHead, .afterTheHead, .midBody])
    func theTotalTimeoutFiresForAStalledServer(_ stall: Stall) throws {
        try TestServer.with(script: { connection in
            guard connection.readRequest() != nil else { return }
            switch stall {
            case .beforeTheHead: break
            case .afterTheHead: connection.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nETag: \"v1\"\r\n\r\n")
            case .midBody: connection.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
            }
            connection.drainUntilClosed()
        }) { server in
            let harness = try Harness()  // default headers (60 s) and idle (300 s) timeouts
            let fetched = harness.fetch(server.origin, timeoutMilliseconds: 500)
            #expect(fetched.results.count == 1, "\(fetched.results)")
            let expected: FetchError = stall == .beforeTheHead ? .upstream(.headersTimedOut) : .upstream(.idleTimedOut)
            #expect(fetched.error == expected, "\(fetched.results)")
            #expect(fetched.milliseconds >= 450 && fetched.milliseconds < 3_000, "\(fetched.milliseconds) ms")
            #expect(server.requests.count == 1)
            #expect(harness.multi.activeTransfers == 0)
        }
    }

    @Test func aRefusedPortFailsWithUnavailable() throws {
        let harness = try Harness()
        let fetched = harness.fetch(TestServer.refusedOrigin())
        #expect(fetched.results.count == 1)
        #expect(fetched.callsDuringTheCall == 0)
        guard case .upstream(.unavailable)? = fetched.error else {
            Issue.record("expected unavailable, got \(fetched.results)")
            return
        }
        #expect(fetched.milliseconds < 3_000)
        #expect(harness.multi.activeTransfers == 0)
    }

    /// A header the caller built with a line break never reaches the server; the refusal comes
    /// from the loop, not from inside the call.
    @Test func aHeaderWithALineBreakIsRefusedBeforeCurl() throws {
        try TestServer.with { server in
            let harness = try Harness()
            let fetched = harness.fetch(server.origin, headers: [("User-Agent", "x\r\nX-Injected: yes")])
            #expect(fetched.callsDuringTheCall == 0)
            #expect(fetched.results.count == 1)
            #expect(fetched.error == .upstream(.unavailable("request line or header with CR, LF or NUL")), "\(fetched.results)")
            #expect(server.connections == 0)
        }
    }

    /// `unix:/path` origins (an issuer behind a Unix socket) are fetched over that socket.
    @Test func aUnixSocketOriginIsFetchedOverTheSocket() throws {
        let answer = TestServer.response(status: 200, reason: "OK", headers: [("ETag", "\"u\"")], body: Self.jwks)
        try TestServer.with(unixSocket: true, script: TestServer.always(answer)) { server in
            #expect(server.origin.hasPrefix("unix:/tmp/"))
            let harness = try Harness()
            let fetched = harness.fetch(server.origin, "/api/auth/jwks")
            #expect(fetched.results.count == 1)
            #expect(fetched.document?.body == Self.jwks, "\(fetched.results)")
            #expect(fetched.document?.header("etag") == "\"u\"")
            #expect(server.requests.map(\.target) == ["/api/auth/jwks"])
            #expect(server.connections == 1)
        }
    }
}
