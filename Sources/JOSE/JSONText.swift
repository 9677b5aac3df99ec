/// Minimal JSON string encoding (RFC 8259 §7): the inverse of `JSONParser` for strings. Used
/// wherever gatehouse writes JSON by hand (error bodies, logs, /readyz, minted tokens).
public enum JSONText {
    public static func quoted(_ text: String) -> String {
        // Most text (log fields, ids) needs no escaping: copy it whole.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f || $0 == 0x22 || $0 == 0x5c }) {
            return "\"" + text + "\""
        }
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
