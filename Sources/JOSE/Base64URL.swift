/// Strict, table-driven base64url (RFC 4648 §5) as JWS requires it (RFC 7515 §2, Appendix C):
/// no padding, no whitespace, no line breaks, and only the canonical encoding.
///
/// Why strict: a verifier that accepts several spellings of the same bytes lets an attacker
/// produce many distinct tokens for one signature, which defeats caches keyed on the token
/// and hides tampering from log correlation (RFC 8725 §3.x). So we reject `=`, any byte
/// outside `A-Z a-z 0-9 - _`, lengths with `len % 4 == 1` (never produced by an encoder) and
/// non-zero bits in the final character's unused low bits (RFC 4648 §3.5, "canonical").
public enum Base64URL {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Decodes `input`, or returns nil if it is not strict canonical base64url.
    public static func decode(_ input: some StringProtocol) -> [UInt8]? {
        var text = String(input)
        return text.withUTF8 { decode($0) }
    }

    /// Decodes a slice of ASCII bytes (e.g. one part of a compact JWS without copying it).
    public static func decode(_ input: ArraySlice<UInt8>) -> [UInt8]? {
        input.withUnsafeBufferPointer { decode($0) }
    }

    /// Four 256-entry tables, one per position in a 4-character group, holding each
    /// character's 6 bits already shifted into place in a 24-bit group (RFC 4648 §4:
    /// "the first character ... the most significant 6 bits"), so a group decodes with four
    /// loads and three ORs. Characters outside the alphabet map to `invalidBit`, which no
    /// valid value ever sets.
    private static let invalidBit: UInt32 = 1 << 24
    private static let shiftedTables: [UInt32] = {
        var tables = [UInt32](repeating: invalidBit, count: 4 * 256)
        for (value, char) in alphabet.enumerated() {
            for position in 0..<4 {
                tables[position * 256 + Int(char)] = UInt32(value) << (18 - 6 * position)
            }
        }
        return tables
    }()

    /// The decoder proper, on borrowed bytes.
    ///
    /// RFC 4648 §5 maps every 4 characters to 3 bytes; a final group of 2 or 3 characters
    /// carries 1 or 2 bytes (JWS drops the `=` padding, RFC 7515 §2). The output length is
    /// therefore known up front, so the result is written once into an uninitialised array
    /// rather than zero-filled first. Validity is accumulated (`bad |= group`) and tested once
    /// at the end, so the loop has no data-dependent branch; the bytes written for a bad
    /// group are thrown away with the array. The unused low bits of a final partial group
    /// must be zero (RFC 4648 §3.5, canonical encoding): 2 characters carry 12 bits for 8,
    /// 3 carry 18 for 16.
    ///
    /// Unsafe corner: plain buffer subscripts are not bounds-checked in release builds. The
    /// invariants that keep every access in range are stated next to the accesses.
    static func decode(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let count = input.count
        let remainder = count & 3
        if remainder == 1 { return nil }  // 6 bits cannot carry a byte: never produced by an encoder
        if count == 0 { return [] }
        let outputCount = count / 4 * 3 + (remainder == 0 ? 0 : remainder - 1)
        return shiftedTables.withUnsafeBufferPointer { t -> [UInt8]? in
            // `t` has 4 × 256 entries and every index below is `position * 256 + byte` with
            // position < 4 and byte < 256, so every table read is in range.
            var bad: UInt32 = 0
            let output = [UInt8](unsafeUninitializedCapacity: outputCount) { out, initialized in
                let fullEnd = count - remainder
                var i = 0, o = 0
                // Invariant: i + 4 ≤ fullEnd ≤ count, so input[i...i+3] is in range, and
                // o = i / 4 × 3 with outputCount ≥ fullEnd / 4 × 3, so out[o...o+2] is too.
                while i < fullEnd {
                    let n = t[Int(input[i])] | t[256 &+ Int(input[i &+ 1])]
                        | t[512 &+ Int(input[i &+ 2])] | t[768 &+ Int(input[i &+ 3])]
                    bad |= n
                    out[o] = UInt8(truncatingIfNeeded: n >> 16)
                    out[o &+ 1] = UInt8(truncatingIfNeeded: n >> 8)
                    out[o &+ 2] = UInt8(truncatingIfNeeded: n)
                    i &+= 4
                    o &+= 3
                }
                // Now i == fullEnd, o == fullEnd / 4 × 3: `remainder` characters remain and
                // outputCount − o == remainder − 1 bytes of room.
                if remainder == 2 {
                    let n = t[Int(input[i])] | t[256 &+ Int(input[i &+ 1])]
                    bad |= n & 0xFFFF == 0 ? n : invalidBit  // 4 unused bits must be zero
                    out[o] = UInt8(truncatingIfNeeded: n >> 16)
                } else if remainder == 3 {
                    let n = t[Int(input[i])] | t[256 &+ Int(input[i &+ 1])] | t[512 &+ Int(input[i &+ 2])]
                    bad |= n & 0xFF == 0 ? n : invalidBit  // 2 unused bits must be zero
                    out[o] = UInt8(truncatingIfNeeded: n >> 16)
                    out[o &+ 1] = UInt8(truncatingIfNeeded: n >> 8)
                }
                initialized = outputCount  // every slot was written above (UInt8 is trivial)
            }
            return bad & ~0x00FF_FFFF == 0 ? output : nil
        }
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

/// Standard base64 with padding (RFC 4648 §4), as Better Auth writes a session cookie's
/// signature: the same alphabet as base64url but for `+` and `/`.
public enum Base64Standard {
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var text = String(Base64URL.encode(bytes).map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        while text.utf8.count % 4 != 0 { text.append("=") }
        return text
    }

    /// nil for anything but canonical padded standard base64.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 4 == 0 else { return nil }
        var body = utf8[...]
        while body.last == UInt8(ascii: "=") { body = body.dropLast() }
        guard utf8.count - body.count <= 2,
            !body.contains(UInt8(ascii: "-")), !body.contains(UInt8(ascii: "_"))
        else { return nil }
        let url = body.map { $0 == UInt8(ascii: "+") ? UInt8(ascii: "-") : $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0 }
        return Base64URL.decode(url[...])
    }
}

/// `%XX` escapes (RFC 3986 §2.1), as Better Auth's cookie values use them (`encodeURIComponent`).
public enum PercentEncoding {
    /// The bytes with every `%XX` decoded; nil for a `%` not followed by two hex digits.
    public static func decode(_ bytes: some Sequence<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                out.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }

    /// `encodeURIComponent`'s escapes for the characters of standard base64 it changes.
    public static func encodeBase64Characters(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "+": out += "%2B"
            case "/": out += "%2F"
            case "=": out += "%3D"
            default: out.append(character)
            }
        }
        return out
    }

    /// The value of one hex digit (either case), or nil.
    public static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
