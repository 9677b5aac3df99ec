import JOSE

#if canImport(Glibc)
import Glibc
#endif

/// `X-Gatehouse-Signature: t=<unix seconds>,v1=<hex>` on every forwarded request
/// (`GATEHOUSE_IDENTITY_SECRET`), so FastAPI can prove its identity headers came from gatehouse
/// and not from a client that reached it around the proxy (the `gatehouse-fastapi` package
/// checks it). Ory Oathkeeper's `id_token` mutator answers the same need with a JWT; an HMAC over
/// a canonical string costs a microsecond instead, and the app holds only a shared secret.
///
/// `v1` is the lowercase hex HMAC-SHA256 (RFC 2104), keyed by the first secret, of these
/// lines, each ending in LF:
///
///     gatehouse-v1
///     <t>
///     <method>
///     <target as forwarded: raw path (with the upstream's path prefix) and query, byte for byte>
///     <request id>
///     <auth method: jwt, session, or empty when anonymous>
///     <lowercased name>:<value>   one line per identity header in `headerNames` order; empty value when absent
///
/// Anonymous requests on public and optional paths are signed too (with empty identity), so
/// the app can tell "through gatehouse, anonymous" from "around gatehouse". The time and the
/// target make a captured signature useless on another path, and after the app's tolerance.
struct IdentitySignature: Sendable {
    static let headerName = "X-Gatehouse-Signature"

    /// The secret that signs (the first of `GATEHOUSE_IDENTITY_SECRET`); the second, if any,
    /// is only for the app, which accepts both during a rotation.
    let signingSecret: [UInt8]
    let secretCount: Int
    /// Identity header names in signing order: `GATEHOUSE_CLAIM_HEADERS`, then
    /// `GATEHOUSE_CLAIMS_HEADER`; as configured (matched case-insensitively) and lowercased.
    let headerNames: [(configured: String, lowercased: String)]

    /// A worker's own HMAC context (libcrypto contexts are not shared between threads).
    func makeSigner() -> HMACSHA256 {
        guard let hmac = HMACSHA256(key: signingSecret) else { preconditionFailure("HMAC-SHA256 unavailable") }
        return hmac
    }

    /// The header value for one forwarded request. `identity` is what gatehouse adds (empty
    /// when anonymous); `X-Auth-Method` in it gives the auth method.
    func value(
        time: Int, method: String, target: String, requestID: String, identity: [(name: String, value: String)],
        signer: HMACSHA256
    ) -> String {
        let message = canonical(time: time, method: method, target: target, requestID: requestID, identity: identity)
        return "t=\(time),v1=" + Self.hex(signer.mac(message))
    }

    func canonical(time: Int, method: String, target: String, requestID: String, identity: [(name: String, value: String)]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + target.utf8.count + identity.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count })
        func line(_ text: String) {
            out.append(contentsOf: text.utf8)
            out.append(0x0A)
        }
        line("gatehouse-v1")
        line(String(time))
        line(method)
        // `/a?` is signed as `/a`: an ASGI server splits it into `raw_path` and an empty
        // `query_string`, and the app cannot tell the two apart.
        line(target.utf8.last == UInt8(ascii: "?") ? String(target.dropLast()) : target)
        line(requestID)
        line(Self.value(named: "x-auth-method", in: identity) ?? "")
        for name in headerNames {
            out.append(contentsOf: name.lowercased.utf8)
            out.append(UInt8(ascii: ":"))
            line(Self.value(named: name.lowercased, in: identity) ?? "")
        }
        return out
    }

    private static func value(named lowercased: String, in identity: [(name: String, value: String)]) -> String? {
        identity.first { $0.name.utf8.count == lowercased.utf8.count && $0.name.lowercased() == lowercased }?.value
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits: StaticString = "0123456789abcdef"
        return String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            for (index, byte) in bytes.enumerated() {
                buffer[2 * index] = digits.utf8Start[Int(byte >> 4)]
                buffer[2 * index + 1] = digits.utf8Start[Int(byte & 0xf)]
            }
            return bytes.count * 2
        }
    }


    // MARK: Configuration

    static let minimumSecretBytes = 32

    /// `GATEHOUSE_IDENTITY_SECRET` (or the content of `GATEHOUSE_IDENTITY_SECRET_FILE`, trailing
    /// line breaks removed): one secret, or two separated by a comma during a rotation.
    static func parseSecrets(_ bytes: [UInt8]) -> [[UInt8]]? {
        let secrets = bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { Array($0) }
        // No blank around a secret (`new, old` is a typo the app, which refuses it too, would
        // otherwise read differently).
        let blank: (UInt8?) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        guard (1...2).contains(secrets.count),
            secrets.allSatisfy({ $0.count >= minimumSecretBytes && !blank($0.first) && !blank($0.last) })
        else { return nil }
        return secrets
    }

    static let secretExpected =
        "one secret of at least \(minimumSecretBytes) bytes, or two separated by a comma during a rotation (the first signs)"
}

/// Reads `GATEHOUSE_IDENTITY_SECRET` or `GATEHOUSE_IDENTITY_SECRET_FILE` (not both). A problem
/// names the variable and never shows the value.
enum IdentitySecretReader {
    /// The secrets and the variable they came from; nil when neither is set (or on a problem).
    static func read(_ reader: inout EnvironmentReader) -> (secrets: [[UInt8]], source: String)? {
        let direct = reader.environment["GATEHOUSE_IDENTITY_SECRET"]
        let file = reader.environment["GATEHOUSE_IDENTITY_SECRET_FILE"]
        switch (direct, file) {
        case (nil, nil):
            return nil
        case (.some, .some):
            reader.problems.append(.init(variable: "GATEHOUSE_IDENTITY_SECRET_FILE", message: "set either it or GATEHOUSE_IDENTITY_SECRET, not both"))
            return nil
        case (let text?, nil):
            guard let secrets = IdentitySignature.parseSecrets(Array(text.utf8)) else {
                reader.problems.append(.init(variable: "GATEHOUSE_IDENTITY_SECRET",
                    message: "invalid value (not shown); expected \(IdentitySignature.secretExpected)"))
                return nil
            }
            return (secrets, "GATEHOUSE_IDENTITY_SECRET")
        case (nil, let path?):
            guard let data = readSmallFile(path) else {
                reader.problems.append(.init(variable: "GATEHOUSE_IDENTITY_SECRET_FILE",
                    message: "cannot read \"\(EnvironmentReader.printable(path))\""))
                return nil
            }
            // Bytes, not text: a secret made with `head -c 48 /dev/urandom` is not UTF-8, and a
            // Windows editor's CRLF is two bytes to strip (a Swift String sees one character).
            var bytes = data
            while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
            guard let secrets = IdentitySignature.parseSecrets(bytes) else {
                reader.problems.append(.init(variable: "GATEHOUSE_IDENTITY_SECRET_FILE",
                    message: "the file's content (not shown) is not valid; expected \(IdentitySignature.secretExpected)"))
                return nil
            }
            return (secrets, "GATEHOUSE_IDENTITY_SECRET_FILE")
        }
    }
}

/// A file of at most 64 KiB (a secret), read whole; nil when it cannot be read or is larger.
private func readSmallFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { return nil }
        if n == 0 { return data }
        data.append(contentsOf: chunk[0..<n])
        if data.count > 65536 { return nil }
    }
}
