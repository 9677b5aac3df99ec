import JOSE
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import Logging
import Synchronization

/// swift-log backends writing one line per event to standard output.
///
/// `json`: one JSON object per line (`ts`, `level`, `msg`, then metadata), for log
/// shippers; `text`: `ts LEVEL msg key=value …` for people. Lines are written whole under a
/// process-wide lock so concurrent requests never interleave within a line.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let format: GatehouseConfiguration.LogFormat
    let label: String

    public init(label: String, level: Logger.Level, format: GatehouseConfiguration.LogFormat) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = self.metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let timestamp = Self.timestamp()
        switch format {
        case .json:
            Self.writeLine(Self.jsonLine(
                timestamp: timestamp, level: event.level, message: event.message.description,
                sortedFields: all.keys.sorted().map { ($0, all[$0]!.description) }))
        case .text:
            var line = "\(timestamp) \(event.level.rawValue.uppercased()) \(event.message)"
            for key in all.keys.sorted() { line += " \(key)=\(all[key]!)" }
            line += "\n"
            Self.writeLine(Array(line.utf8))
        }
    }

    /// `{"ts":…,"level":…,"msg":…,` then the fields in the given order, and a newline.
    static func jsonLine(
        timestamp: String, level: Logger.Level, message: String, sortedFields: [(key: String, value: String)]
    ) -> [UInt8] {
        var line = jsonLineStart(timestamp: timestamp, level: level, message: message)
        for (key, value) in sortedFields {
            appendJSONMember(key: key, to: &line)
            JSONText.appendQuoted(value, to: &line)
        }
        appendJSONLineEnd(to: &line)
        return line
    }

    /// `{"ts":"…","level":"…","msg":"…"`: the start every JSON line shares.
    static func jsonLineStart(timestamp: String, level: Logger.Level, message: String) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(384)
        line.append(contentsOf: #"{"ts":"#.utf8)
        JSONText.appendQuoted(timestamp, to: &line)
        line.append(contentsOf: #","level":"#.utf8)
        JSONText.appendQuoted(level.rawValue, to: &line)
        line.append(contentsOf: #","msg":"#.utf8)
        JSONText.appendQuoted(message, to: &line)
        return line
    }

    /// `,"key":`, the value to follow.
    static func appendJSONMember(key: String, to line: inout [UInt8]) {
        line.append(UInt8(ascii: ","))
        JSONText.appendQuoted(key, to: &line)
        line.append(UInt8(ascii: ":"))
    }

    static func appendJSONLineEnd(to line: inout [UInt8]) {
        line.append(contentsOf: "}\n".utf8)
    }

    /// Writes one whole line under a process-wide lock, so concurrent lines never interleave.
    static func writeLine(_ line: [UInt8]) {
        LineLogHandler.lock.withLock { _ in
            line.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let n = write(STDOUT_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        }
    }

    private static let lock = Mutex(())

    /// RFC 3339 UTC timestamp with milliseconds, e.g. `2026-11-27T02:30:41.123Z`.
    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(unsafeUninitializedCapacity: 24) { buffer in
            var i = 0
            func put(_ value: Int, _ width: Int) {
                var v = value
                for k in stride(from: width - 1, through: 0, by: -1) {
                    buffer[i + k] = UInt8(ascii: "0") + UInt8(v % 10)
                    v /= 10
                }
                i += width
            }
            func put(_ byte: Unicode.Scalar) {
                buffer[i] = UInt8(ascii: byte)
                i += 1
            }
            put(Int(parts.tm_year) + 1900, 4); put("-"); put(Int(parts.tm_mon) + 1, 2); put("-")
            put(Int(parts.tm_mday), 2); put("T"); put(Int(parts.tm_hour), 2); put(":")
            put(Int(parts.tm_min), 2); put(":"); put(Int(parts.tm_sec), 2); put(".")
            put(Int(spec.tv_nsec / 1_000_000), 3); put("Z")
            return i
        }
    }
}
