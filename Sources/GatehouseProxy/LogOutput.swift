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
        var line: String
        switch format {
        case .json:
            line = "{\"ts\":\"\(timestamp)\",\"level\":\"\(event.level.rawValue)\",\"msg\":\(JSONText.quoted(event.message.description))"
            for key in all.keys.sorted() {
                line += ",\(JSONText.quoted(key)):\(JSONText.quoted(all[key]!.description))"
            }
            line += "}\n"
        case .text:
            line = "\(timestamp) \(event.level.rawValue.uppercased()) \(event.message)"
            for key in all.keys.sorted() { line += " \(key)=\(all[key]!)" }
            line += "\n"
        }
        LineLogHandler.lock.withLock { _ in
            line.withUTF8 { bytes in
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

    /// RFC 3339 UTC timestamp with milliseconds.
    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int = 2) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T"
            + "\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec)).\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}
