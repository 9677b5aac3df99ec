/// Strict, table-driven base64url (RFC 4648 §5) as JWS requires it (RFC 7515 §2, Appendix C):
/// no padding, no whitespace, no line breaks, and only the canonical encoding.
///
/// Why strict: a verifier that accepts several spellings of the same bytes lets an attacker
/// produce many distinct tokens for one signature, which defeats caches keyed on the token
/// and hides tampering from log correlation (RFC 8725 §3.x). So we reject `=`, any byte
/// outside `A-Z a-z 0-9 - _`, lengths with `len % 4 == 1` (never produced by an encoder) and
/// non-zero bits in the final character's unused low bits (RFC 4648 §3.5, "canonical").
public enum Base64URL {
    /// 0xFF marks bytes outside the alphabet.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, char) in alphabet.enumerated() { table[Int(char)] = UInt8(value) }
        return table
    }()

    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Decodes `input`, or returns nil if it is not strict canonical base64url.
    public static func decode(_ input: some StringProtocol) -> [UInt8]? {
        decode(Array(input.utf8)[...])
    }

    /// Decodes a slice of ASCII bytes (e.g. one part of a compact JWS without copying it).
    /// Works on `Span`s: bounds-checked like arrays, but without per-access retain/release
    /// or uniqueness checks, which roughly halves the cost of this loop.
    public static func decode(_ input: ArraySlice<UInt8>) -> [UInt8]? {
        let count = input.count
        let remainder = count & 3
        if remainder == 1 { return nil }
        let outputCount = count / 4 * 3 + (remainder == 0 ? 0 : remainder - 1)
        var output = [UInt8](repeating: 0, count: outputCount)
        let ok = decode(input.span, into: &output)
        return ok ? output : nil
    }

    private static func decode(_ input: Span<UInt8>, into output: inout [UInt8]) -> Bool {
        let table = decodeTable.span
        var out = output.mutableSpan
        let remainder = input.count & 3
        let fullEnd = input.count - remainder
        var i = 0, o = 0
        while i < fullEnd {
            let a = table[Int(input[i])], b = table[Int(input[i + 1])]
            let c = table[Int(input[i + 2])], d = table[Int(input[i + 3])]
            if (a | b | c | d) & 0x80 != 0 { return false }
            out[o] = a << 2 | b >> 4
            out[o + 1] = b << 4 | c >> 2
            out[o + 2] = c << 6 | d
            i += 4
            o += 3
        }
        switch remainder {
        case 2:
            let a = table[Int(input[i])], b = table[Int(input[i + 1])]
            // 12 bits carry 8: the low 4 bits of `b` must be zero.
            if (a | b) & 0x80 != 0 || b & 0x0F != 0 { return false }
            out[o] = a << 2 | b >> 4
        case 3:
            let a = table[Int(input[i])], b = table[Int(input[i + 1])], c = table[Int(input[i + 2])]
            // 18 bits carry 16: the low 2 bits of `c` must be zero.
            if (a | b | c) & 0x80 != 0 || c & 0x03 != 0 { return false }
            out[o] = a << 2 | b >> 4
            out[o + 1] = b << 4 | c >> 2
        default:
            break
        }
        return true
    }

    /// Encodes without padding.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        let alphabet = self.alphabet
        var out = [UInt8]()
        out.reserveCapacity((input.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= input.count {
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
            i += 3
        }
        switch input.count - i {
        case 1:
            let n = UInt32(input[i]) << 16
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
        case 2:
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
        default:
            break
        }
        return String(decoding: out, as: UTF8.self)
    }
}
