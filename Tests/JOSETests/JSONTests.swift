import JOSE
import Testing

@Suite struct JSONTests {
    @Test func parsesAValidDocument() throws {
        let value = try JSONParser.parse(#"""
         {"a": [1, -2, 3.5, 1e3, -0, 9223372036854775807, 92233720368547758070],
          "b": {"c": null, "d": true, "e": false}, "s": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00é", "empty": {}, "list": []}
        """#).get()
        #expect(value["a"] == .array([.int(1), .int(-2), .double(3.5), .double(1000), .int(0),
                                      .int(Int64.max), .double(92233720368547758080)]))
        #expect(value["b"] == .object(["c": .null, "d": .bool(true), "e": .bool(false)]))
        #expect(value["s"] == .string("x\"\\/\u{8}\u{c}\n\r\té😀é"))
        #expect(value["empty"] == .object([:]))
        #expect(value["list"] == .array([]))
    }

    @Test func scalarsAtTopLevel() throws {
        #expect(try JSONParser.parse("  42 ").get() == .int(42))
        #expect(try JSONParser.parse("\"x\"").get() == .string("x"))
        #expect(try JSONParser.parse("null").get() == .null)
    }

    @Test func rejectsDuplicateMembers() {
        #expect(JSONParser.parse(#"{"a":1,"a":2}"#).failureValue?.kind == .duplicateMember)
        #expect(JSONParser.parse(#"{"a":1,"b":{"x":1,"x":1}}"#).failureValue?.kind == .duplicateMember)
        // Escaped spelling of the same name is still a duplicate.
        #expect(JSONParser.parse(#"{"sub":"a","s\u0075b":"b"}"#).failureValue?.kind == .duplicateMember)
    }

    /// Memory stays proportional to the input: many tiny nested objects (a hostile token
    /// payload or JWKS, parsed before any signature check) must not each reserve room for
    /// members they do not have.
    @Test func nestedObjectsReserveNoMoreThanTheyHold() throws {
        let many = "[" + Array(repeating: "{}", count: 4_000).joined(separator: ",") + "]"
        guard case .array(let elements) = try JSONParser.parse(many).get() else {
            Issue.record("an array expected")
            return
        }
        #expect(elements.count == 4_000)
        for element in elements {
            guard case .object(let members) = element, members.capacity == 0 else {
                Issue.record("an empty object holding storage: \(element)")
                return
            }
        }
        guard case .object(let one)? = try JSONParser.parse(#"{"o":{"a":1}}"#).get()["o"] else {
            Issue.record("an object expected")
            return
        }
        #expect(one.capacity < 16)
    }

    @Test func enforcesTheDepthLimit() {
        let ok = String(repeating: "[", count: 16) + String(repeating: "]", count: 16)
        let deep = String(repeating: "[", count: 17) + String(repeating: "]", count: 17)
        #expect(JSONParser.parse(ok).isSuccess)
        #expect(JSONParser.parse(deep).failureValue?.kind == .tooDeep)
        let bomb = String(repeating: "{\"a\":", count: 10_000)
        #expect(JSONParser.parse(bomb).failureValue?.kind == .tooDeep)
    }

    @Test(arguments: [
        (#""\x""#, JSONParseError.Kind.invalidEscape),
        (#""\u12G4""#, .invalidEscape),
        (#""\ud83d""#, .loneSurrogate),
        (#""\ud83dx""#, .loneSurrogate),
        (#""\ude00""#, .loneSurrogate),
        (#""\ud83d\u0041""#, .loneSurrogate),
        ("\"a\nb\"", .controlCharacter),
        ("\"abc", .unexpectedEnd),
        ("01", .invalidNumber),
        ("1.", .invalidNumber),
        ("-", .invalidNumber),
        ("1e", .invalidNumber),
        ("1e999", .invalidNumber),
        ("+1", .unexpectedByte),
        ("{\"a\":1,}", .unexpectedByte),
        ("[1,]", .unexpectedByte),
        ("{a:1}", .unexpectedByte),
        ("tru", .unexpectedEnd),
        ("nul1", .unexpectedByte),
        ("{} {}", .trailingData),
        ("", .unexpectedEnd),
    ])
    func rejectsInvalidText(_ text: String, _ kind: JSONParseError.Kind) {
        #expect(JSONParser.parse(text).failureValue?.kind == kind)
    }

    @Test func rejectsInvalidUTF8() {
        let cases: [[UInt8]] = [
            [0x22, 0xFF, 0x22],                 // invalid byte
            [0x22, 0xC3, 0x22],                 // truncated sequence
            [0x22, 0xC0, 0xAF, 0x22],           // overlong "/"
            [0x22, 0xED, 0xA0, 0x80, 0x22],     // UTF-8-encoded surrogate
            [0x22, 0x5C, 0x6E, 0xFF, 0x22],     // invalid byte on the escape path
        ]
        for bytes in cases {
            #expect(JSONParser.parse(bytes).failureValue?.kind == .invalidUTF8)
        }
    }
}
