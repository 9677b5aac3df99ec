import Foundation
import JOSE
import Testing

/// Locates fixtures relative to this file: `Fixtures/` next to it (this target's own), and the
/// project-wide `Tests/Fixtures/` one level up (Better Auth examples, Wycheproof vectors; see its
/// README for where each file comes from). Nothing outside the repository is read.
enum Fixtures {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()

    /// `Tests/Fixtures`, beside this test target's folder.
    static let projectFixtures = testsDirectory.deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func bytes(_ url: URL) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url))
    }

    static func json(_ url: URL) throws -> JSONValue {
        try JSONParser.parse(try bytes(url)).get()
    }

    /// A file under `Tests/Fixtures/`.
    static func project(_ relativePath: String) throws -> JSONValue {
        try json(projectFixtures.appendingPathComponent(relativePath))
    }

    static func local(_ name: String) throws -> JSONValue {
        try json(testsDirectory.appendingPathComponent("Fixtures/\(name)"))
    }
}

/// Serialises a JSONValue (test-only; enough to rebuild JWKS documents).
func encodeJSON(_ value: JSONValue) -> String {
    switch value {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .int(let i): return String(i)
    case .double(let d): return String(d)
    case .string(let s):
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    case .array(let items): return "[" + items.map(encodeJSON).joined(separator: ",") + "]"
    case .object(let members):
        return "{" + members.sorted { $0.key < $1.key }.map { encodeJSON(.string($0.key)) + ":" + encodeJSON($0.value) }.joined(separator: ",") + "}"
    }
}

func hexBytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var iterator = hex.utf8.makeIterator()
    while let high = iterator.next(), let low = iterator.next() {
        out.append(UInt8(hexDigit(high) << 4 | hexDigit(low)))
    }
    return out
}

private func hexDigit(_ c: UInt8) -> UInt8 {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    default: return c - UInt8(ascii: "A") + 10
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
