import GatehouseUpstream
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as raw bytes (4 or 16). IPv4-mapped IPv6 addresses
/// (`::ffff:a.b.c.d`) are folded to IPv4 so one rule covers both spellings.
struct IPAddress: Sendable, Equatable {
    let bytes: [UInt8]
    var isV6: Bool { bytes.count == 16 }

    static func parse(_ text: String) -> IPAddress? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return IPAddress(bytes: withUnsafeBytes(of: &v4) { Array($0) })
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let raw = withUnsafeBytes(of: &v6) { Array($0) }
            if raw[0..<10].allSatisfy({ $0 == 0 }) && raw[10] == 0xff && raw[11] == 0xff {
                return IPAddress(bytes: Array(raw[12...]))
            }
            return IPAddress(bytes: raw)
        }
        return nil
    }
}

/// A CIDR block such as `10.0.0.0/8` or `fd00::/8`; a bare address is a single-host block.
struct CIDR: Sendable, Equatable, CustomStringConvertible {
    let network: IPAddress
    let prefixLength: Int
    let text: String

    static let expected = "a comma-separated list of CIDR blocks such as 10.0.0.0/8, 192.168.1.10 or fd00::/8"

    static func parse(_ raw: String) -> CIDR? {
        let text = raw.trimmingSpaces()
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress.parse(String(parts[0])) else { return nil }
        let maxLength = address.bytes.count * 8
        var length = maxLength
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(parts[1]),
                n <= maxLength
            else { return nil }
            // A v4-mapped v6 block: its prefix counts the 96 mapping bits.
            length = String(parts[0]).contains(":") && !address.isV6 ? n - 96 : n
            guard length >= 0 else { return nil }
        }
        return CIDR(network: address, prefixLength: length, text: text)
    }

    func contains(_ address: IPAddress) -> Bool {
        guard address.bytes.count == network.bytes.count else { return false }
        var remaining = prefixLength
        for (a, b) in zip(address.bytes, network.bytes) where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            if a & mask != b & mask { return false }
            remaining -= bits
        }
        return true
    }

    var description: String { text }
}
