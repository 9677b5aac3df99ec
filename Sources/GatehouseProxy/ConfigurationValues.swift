/// Parsers for the value syntaxes gatehouse's environment variables share. Each returns nil
/// for malformed input; the caller reports the variable, the value and `expected`.

/// A duration: `500ms`, `30s`, `5m`, `1h`; a bare number means seconds.
enum DurationValue {
    static let expected = "a duration such as 500ms, 30s, 5m or 1h (a bare number means seconds)"

    static func parse(_ text: String) -> Duration? {
        let units: [(suffix: String, milliseconds: Double)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)]
        var number = Substring(text)
        var scale = 1_000.0
        for unit in units where text.hasSuffix(unit.suffix) {
            number = text.dropLast(unit.suffix.count)
            scale = unit.milliseconds
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            let value = Double(number), value.isFinite, value >= 0, value * scale <= 1e12
        else { return nil }
        return .milliseconds(Int64((value * scale).rounded()))
    }
}

/// A byte size: `64KiB`, `1MiB`, `1GiB`; a bare number means bytes.
enum SizeValue {
    static let expected = "a size such as 32768, 64KiB or 1MiB (a bare number means bytes)"

    static func parse(_ text: String) -> Int? {
        let units: [(suffix: String, factor: Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("B", 1)]
        var number = Substring(text)
        var factor = 1
        for unit in units where text.hasSuffix(unit.suffix) {
            number = text.dropLast(unit.suffix.count)
            factor = unit.factor
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(number),
            value <= Int(Int32.max) / factor
        else { return nil }
        return value * factor
    }
}

/// A listen address: `host:port`, `[v6]:port`, or `:port` (all interfaces).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    static let expected = "host:port such as 0.0.0.0:8080, 127.0.0.1:8080 or [::]:8080"

    static func parse(_ text: String) -> ListenAddress? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText),
            (1...65535).contains(port)
        else { return nil }
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { return nil }
            host = String(host.dropFirst().dropLast())
            guard IPAddress.parse(host)?.isV6 == true else { return nil }
        } else if host.isEmpty {
            host = "0.0.0.0"
        } else if host.contains(":") {
            return nil
        }
        guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:".contains($0)) }) else { return nil }
        return ListenAddress(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The address a local client should use to reach this listener (`0.0.0.0` → loopback).
    public var loopbackReachable: String {
        switch host {
        case "0.0.0.0": return "127.0.0.1:\(port)"
        case "::": return "[::1]:\(port)"
        default: return description
        }
    }
}

/// The upstream FastAPI origin plus an optional path prefix, or FastAPI's Unix socket.
public struct UpstreamURL: Sendable, Equatable, CustomStringConvertible {
    /// `scheme://host[:port]`, or `unix:/absolute/path` for a Unix socket (uvicorn `--uds`).
    public var origin: String
    /// Path prefix without a trailing slash (empty for none), prepended to every request target.
    /// Always empty for a Unix socket.
    public var pathPrefix: String
    static let expected = "an http:// or https:// URL such as http://127.0.0.1:8000 (optionally with a path prefix; no query, no credentials), or unix: followed by the absolute path of a Unix socket such as unix:/run/app/uvicorn.sock"

    /// sun_path holds 108 bytes, the last one the terminating NUL.
    static let maxSocketPathBytes = 107

    static func parse(_ text: String) -> UpstreamURL? {
        let lower = text.lowercased()
        if lower.hasPrefix("unix:") {
            return parseUnixSocket(String(text.dropFirst(5)))
        }
        guard let schemeEnd = text.firstRange(of: "://"), lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
            return nil
        }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = String(rest[authorityEnd...])
        guard !authority.isEmpty, !authority.contains("@"), !path.contains("?"), !path.contains("#"),
            !text.contains(where: { $0.isWhitespace || !$0.isASCII })
        else { return nil }
        // Validate host[:port] / [v6][:port]
        var host = Substring(authority)
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let port = Int(after.dropFirst()), (1...65535).contains(port) else { return nil }
            }
            host = host[host.index(after: host.startIndex)..<close]
            guard IPAddress.parse(String(host))?.isV6 == true else { return nil }
        } else if let colon = host.firstIndex(of: ":") {
            guard let port = Int(host[host.index(after: colon)...]), (1...65535).contains(port) else { return nil }
            host = host[..<colon]
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || ".-:".contains($0) }) else { return nil }
        while path.hasSuffix("/") { path.removeLast() }
        return UpstreamURL(origin: String(text[..<schemeEnd.upperBound]).lowercased() + authority, pathPrefix: path)
    }

    /// `unix:` and an absolute path: no query, no path prefix (the whole text is the socket's
    /// path, as curl's `CURLOPT_UNIX_SOCKET_PATH` and uvicorn's `--uds` take it). Refused: a
    /// relative path, `unix://…`, a directory (trailing `/`), whitespace or control characters,
    /// and a path longer than `sun_path` holds.
    private static func parseUnixSocket(_ path: String) -> UpstreamURL? {
        guard path.hasPrefix("/"), !path.hasPrefix("//"), !path.hasSuffix("/"),
            path.utf8.count <= maxSocketPathBytes,
            !path.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control })
        else { return nil }
        return UpstreamURL(origin: "unix:" + path, pathPrefix: "")
    }

    public var description: String { origin + pathPrefix }

    var isHTTPS: Bool { origin.hasPrefix("https://") }

    /// The socket path of a `unix:` upstream; nil for an http(s) one.
    var unixSocketPath: String? { origin.hasPrefix("unix:") ? String(origin.dropFirst(5)) : nil }

    /// Where gatehouse's own sockets (WebSocket tunnels) connect to.
    var socketAddress: UpstreamSocketAddress {
        if let path = unixSocketPath { return .unix(path: path) }
        let (host, port) = hostAndPort
        return .inet(host: host, port: port)
    }

    /// Host and port for a direct TCP connection (WebSocket tunnels) to an http(s) upstream;
    /// brackets of an IPv6 literal removed, the scheme's default port when none is given.
    var hostAndPort: (host: String, port: Int) {
        let authority = origin[origin.firstRange(of: "://")!.upperBound...]
        let defaultPort = isHTTPS ? 443 : 80
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            let host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            return (host, after.hasPrefix(":") ? Int(after.dropFirst()) ?? defaultPort : defaultPort)
        }
        if let colon = authority.lastIndex(of: ":") {
            return (String(authority[..<colon]), Int(authority[authority.index(after: colon)...]) ?? defaultPort)
        }
        return (String(authority), defaultPort)
    }
}
