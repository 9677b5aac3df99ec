import Foundation
import JOSE
import Logging
import Testing

@testable import GatehouseProxy

@Suite struct AccessLogTests {
    /// The line the JSON backend writes, read back by Foundation's JSON parser (not ours):
    /// every field present with its text value, keys in sorted order, quotes escaped.
    @Test(arguments: [false, true])
    func jsonLineReadsBackWithEveryField(allFields: Bool) throws {
        var entry = AccessLogEntry(method: "GET", path: "/a?q=", requestID: "req-1")
        entry.status = 200
        entry.bytes = 12
        entry.duration = .microseconds(1_234)
        var expected = [
            "method": "GET", "path": "/a?q=", "request_id": "req-1", "status": "200", "bytes": "12", "duration_ms": "1.234",
        ]
        if allFields {
            entry.upstreamDuration = .microseconds(999)
            entry.outcome = "upstream_timeout"
            entry.routeClass = "protected"
            entry.auth = "invalid_token"
            entry.authReason = "expired"
            entry.user = "user \"quoted\""
            expected.merge([
                "upstream_ms": "0.999", "outcome": "upstream_timeout", "route_class": "protected", "auth": "invalid_token",
                "auth_reason": "expired", "user": "user \"quoted\"",
            ]) { $1 }
        }
        let line = String(decoding: LineLogHandler.jsonLine(timestamp: "t", level: .info, message: "request", sortedFields: entry.sortedFields()), as: UTF8.self)
        #expect(line.hasSuffix("}\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object == expected.merging(["ts": "t", "level": "info", "msg": "request"]) { $1 })
        let keys = entry.sortedFields().map(\.key)
        #expect(keys == keys.sorted())
        #expect(Set(entry.metadata.keys) == Set(expected.keys))
    }

    /// The direct byte path writes exactly what the general path writes, escapes included.
    @Test func directLineEqualsGeneralLine() {
        var entry = AccessLogEntry(method: "PURGE", path: "/ü/\"x\"\\y", requestID: "r\u{7f}")
        entry.status = 503
        entry.bytes = 1_234_567
        entry.duration = .seconds(12) + .microseconds(5)
        entry.upstreamDuration = .microseconds(40)
        entry.user = "tab\there\nnew\u{1}line\r"
        entry.auth = "allowed"
        let general = String(decoding: LineLogHandler.jsonLine(timestamp: "2026-01-01T00:00:00.000Z", level: .info, message: "request", sortedFields: entry.sortedFields()), as: UTF8.self)
        let direct = String(decoding: entry.jsonLine(timestamp: "2026-01-01T00:00:00.000Z"), as: UTF8.self)
        #expect(direct == general)
        #expect(direct.contains(#""duration_ms":"12000.005""#))
        #expect(direct.contains(#""user":"tab\there\nnew\u0001line\r""#))
        #expect(direct.contains(#""request_id":"r\u007f""#))
        // Escapes read back by Foundation's JSON parser (not ours).
        let object = try? JSONSerialization.jsonObject(with: Data(direct.utf8)) as? [String: String]
        #expect(object?["user"] == entry.user)
        #expect(object?["path"] == entry.path)
        #expect(object?["request_id"] == entry.requestID)
    }

    @Test func timestampIsRFC3339WithMilliseconds() {
        let ts = LineLogHandler.timestamp()
        #expect(ts.utf8.count == 24)
        #expect(ts.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil)
    }
}
