/// A parsed JSON value (RFC 8259). Integral numbers that fit are kept as `Int64` so that
/// NumericDate claims (RFC 7519 §2) round-trip exactly; everything else is a `Double`.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Member lookup; nil unless `self` is an object holding `key`.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// Any JSON number as a Double (NumericDate may be written either way, RFC 7519 §2).
    public var numberValue: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return nil
        }
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }
}

/// One `"name": value` member of an object, for objects kept in document order (a JOSE
/// header, a JWT Claims Set). A struct rather than a tuple: arrays of it are created and
/// freed per token, and the compiler specialises a struct's copy and destroy where a tuple
/// array falls back to the runtime's generic value witnesses.
public struct JSONMember: Sendable, Equatable {
    public let name: String
    public let value: JSONValue

    public init(name: String, value: JSONValue) {
        self.name = name
        self.value = value
    }
}

/// Why a document was rejected, with the byte offset (never the content) for diagnostics.
public struct JSONParseError: Error, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case unexpectedEnd, unexpectedByte, invalidNumber, invalidEscape
        case invalidUTF8, loneSurrogate, controlCharacter, duplicateMember, tooDeep, trailingData
    }
    public let kind: Kind
    public let offset: Int
}
