/// A JWT Claims Set (RFC 7519 §4): the members of the payload object, in document order.
///
/// Why not a `Dictionary`: a Better Auth payload has a dozen short member names, and a
/// verification looks up six of them (exp, nbf, iat, iss, aud, sub). Hashing every name on
/// insert and again on each lookup (Swift's seeded SipHash) cost more instructions than the
/// rest of the JSON parse; comparing a dozen small strings costs a fraction of that. Names
/// are unique: the parser rejects a duplicate (RFC 7519 §4 lets a parser reject them, and
/// RFC 8725 §3.11 warns that parsers picking different duplicates disagree on the claims).
public struct JWTClaims: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public let members: [JSONMember]

    /// Call only with unique names (the parser guarantees it).
    init(uniqueMembers: [JSONMember]) {
        self.members = uniqueMembers
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(Dictionary(uniqueKeysWithValues: elements))
    }

    public init(_ dictionary: [String: JSONValue]) {
        self.members = dictionary.sorted { $0.key < $1.key }.map { JSONMember(name: $0.key, value: $0.value) }
    }

    /// Same claims, whatever their order.
    public static func == (a: JWTClaims, b: JWTClaims) -> Bool {
        a.members.count == b.members.count && a.members.allSatisfy { b[$0.name] == $0.value }
    }

    /// The claim named `name`, if present.
    public subscript(name: String) -> JSONValue? {
        for member in members where member.name == name { return member.value }
        return nil
    }

    /// A claim reached through nested objects (`["org", "role"]` is `org.role`).
    public func value(at path: [String]) -> JSONValue? {
        guard let first = path.first, var value = self[first] else { return nil }
        for key in path.dropFirst() {
            guard let next = value[key] else { return nil }
            value = next
        }
        return value
    }

    /// The registered claims a verifier checks (RFC 7519 §4.1), found in one pass.
    struct Registered {
        var exp: JSONValue?, nbf: JSONValue?, iat: JSONValue?
        var iss: JSONValue?, aud: JSONValue?, sub: JSONValue?
    }

    /// All six names have three ASCII letters, so a member is matched by its length and then
    /// by its three bytes as one integer: a Better Auth payload's other members (`email`,
    /// `createdAt`, …) are skipped without a string comparison.
    var registered: Registered {
        var found = Registered()
        for member in members where member.name.utf8.count == 3 {
            var key: UInt32 = 0
            for byte in member.name.utf8 { key = key << 8 | UInt32(byte) }
            let value = member.value
            switch key {
            case 0x657870: found.exp = value  // "exp"
            case 0x6e6266: found.nbf = value  // "nbf"
            case 0x696174: found.iat = value  // "iat"
            case 0x697373: found.iss = value  // "iss"
            case 0x617564: found.aud = value  // "aud"
            case 0x737562: found.sub = value  // "sub"
            default: break
            }
        }
        return found
    }

    /// The whole Claims Set as a JSON object.
    public var object: JSONValue {
        .object(Dictionary(uniqueKeysWithValues: members.map { ($0.name, $0.value) }))
    }
}
