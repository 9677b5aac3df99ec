import JOSE
import Logging

/// One access-log line per request. What it holds is chosen so it can never carry a secret:
/// no header values, and the path with query values removed (`LoggedPath`).
struct AccessLogEntry {
    var method: String
    var path: String
    var requestID: String
    var status = 0
    var bytes = 0
    var duration = Duration.zero
    var upstreamDuration: Duration?
    /// Why the exchange ended abnormally, from a fixed vocabulary; nil when it completed.
    var outcome: String?
    var routeClass: String?
    /// Token decision (`allowed`, `missing`, `invalid_token`, …) when verification is on.
    var auth: String?
    /// Why a token was refused (`expired`, `bad_signature`, …), the metrics' vocabulary.
    var authReason: String?
    /// Which kind of credential was checked: `jwt` or `session`.
    var authMethod: String?
    /// The verified subject (`sub`), never anything of the token itself.
    var user: String?

    func log(to logger: Logger) {
        guard logger.logLevel <= .info else { return }
        if let line = directLine(for: logger) {
            LineLogHandler.writeLine(line)
            return
        }
        logger.info("request", metadata: metadata)
    }

    /// gatehouse's own JSON backend takes the line as bytes, without building (and then
    /// sorting and merging) a metadata dictionary per request: the same bytes as the general
    /// path. nil when the logger is another backend or format (then `log(to:)` goes through
    /// swift-log); the event-loop core collects these lines and writes them once per batch.
    func directLine(for logger: Logger) -> [UInt8]? {
        guard let handler = logger.handler as? LineLogHandler, handler.format == .json, handler.metadata.isEmpty else {
            return nil
        }
        return jsonLine(timestamp: LineLogHandler.timestamp())
    }

    /// The JSON backend's line for this entry, built straight into bytes (no `String` per
    /// field); the same bytes `LineLogHandler.jsonLine` makes from `sortedFields()`.
    func jsonLine(timestamp: String) -> [UInt8] {
        var line = LineLogHandler.jsonLineStart(timestamp: timestamp, level: .info, message: "request")
        forEachField { key, value in
            LineLogHandler.appendJSONMember(key: key, to: &line)
            switch value {
            case .text(let text): JSONText.appendQuoted(text, to: &line)
            case .number(let number): JSONBytes.appendQuoted(number, to: &line)
            case .milliseconds(let duration): JSONBytes.appendQuotedMilliseconds(duration, to: &line)
            }
        }
        LineLogHandler.appendJSONLineEnd(to: &line)
        return line
    }

    /// The same fields for any other log backend.
    var metadata: Logger.Metadata {
        Logger.Metadata(uniqueKeysWithValues: sortedFields().map { ($0.key, .string($0.value)) })
    }

    /// Every field of the line as text, keys in sorted order (as `LineLogHandler` prints metadata).
    func sortedFields() -> [(key: String, value: String)] {
        var fields: [(key: String, value: String)] = []
        fields.reserveCapacity(12)
        forEachField { key, value in
            switch value {
            case .text(let text): fields.append((key, text))
            case .number(let number): fields.append((key, String(number)))
            case .milliseconds(let duration): fields.append((key, Self.milliseconds(duration)))
            }
        }
        return fields
    }

    enum FieldValue {
        case text(String)
        case number(Int)
        case milliseconds(Duration)
    }

    /// The one list of the line's fields, keys in sorted order.
    func forEachField(_ body: (String, FieldValue) -> Void) {
        if let auth { body("auth", .text(auth)) }
        if let authMethod { body("auth_method", .text(authMethod)) }
        if let authReason { body("auth_reason", .text(authReason)) }
        body("bytes", .number(bytes))
        body("duration_ms", .milliseconds(duration))
        body("method", .text(method))
        if let outcome { body("outcome", .text(outcome)) }
        body("path", .text(path))
        body("request_id", .text(requestID))
        if let routeClass { body("route_class", .text(routeClass)) }
        body("status", .number(status))
        if let upstreamDuration { body("upstream_ms", .milliseconds(upstreamDuration)) }
        if let user { body("user", .text(user)) }
    }

    static func milliseconds(_ duration: Duration) -> String {
        var bytes: [UInt8] = []
        JSONBytes.appendMilliseconds(duration, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Numbers and durations as JSON strings appended to a byte buffer, for the access log's line
/// (text goes through `JSONText.appendQuoted`).
enum JSONBytes {
    static func appendQuoted(_ number: Int, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        appendDecimal(number, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    static func appendQuotedMilliseconds(_ duration: Duration, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        appendMilliseconds(duration, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// `12.345`: whole milliseconds, a dot, three digits of microseconds.
    static func appendMilliseconds(_ duration: Duration, to out: inout [UInt8]) {
        let micros = duration.microseconds
        let fraction = Int(micros % 1_000)
        appendDecimal(Int(micros / 1_000), to: &out)
        out.append(UInt8(ascii: "."))
        out.append(UInt8(ascii: "0") + UInt8(fraction / 100))
        out.append(UInt8(ascii: "0") + UInt8(fraction / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(fraction % 10))
    }

    static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        if value < 0 {
            out.append(UInt8(ascii: "-"))
            appendDecimal(-value, to: &out)  // never Int.min here: sizes, statuses and durations
            return
        }
        if value >= 10 { appendDecimal(value / 10, to: &out) }
        out.append(UInt8(ascii: "0") + UInt8(value % 10))
    }
}
