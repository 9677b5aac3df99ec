import Logging
import Testing

@testable import GatehouseProxy

@Suite struct AccessLogTests {
    /// The access log's fast path writes `sortedFields()`; the general path sorts `metadata`.
    /// Both must give the same line.
    @Test(arguments: [false, true])
    func fastPathFieldsMatchTheMetadata(allFields: Bool) {
        var entry = AccessLogEntry(method: "GET", path: "/a?q=", requestID: "req-1")
        entry.status = 200
        entry.bytes = 12
        entry.duration = .microseconds(1_234)
        if allFields {
            entry.upstreamDuration = .microseconds(999)
            entry.outcome = "upstream_timeout"
            entry.routeClass = "protected"
            entry.auth = "invalid_token"
            entry.authReason = "expired"
            entry.user = "user \"quoted\""
        }
        let metadata = entry.metadata
        let expected = metadata.keys.sorted().map { ($0, metadata[$0]!.description) }
        let fast = entry.sortedFields()
        #expect(fast.map(\.key) == expected.map(\.0))
        #expect(fast.map(\.value) == expected.map(\.1))
        let line = LineLogHandler.jsonLine(timestamp: "t", level: .info, message: "request", sortedFields: fast)
        #expect(line.hasPrefix(#"{"ts":"t","level":"info","msg":"request","#))
        #expect(line.hasSuffix("}\n"))
    }

    @Test func timestampIsRFC3339WithMilliseconds() {
        let ts = LineLogHandler.timestamp()
        #expect(ts.utf8.count == 24)
        #expect(ts.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil)
    }
}
