import JOSE
import Testing

/// Edge cases of the fast paths in `Base64URL.decode` (4-character groups, one validity check
/// per call), `JSONParser`'s string scan (8 bytes at a time) and `CompactJWS.parse`
/// (memchr dot search, header members without a dictionary).
@Suite struct FastPathTests {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Obviously-correct strict decoder (RFC 4648 §5 without padding) to compare against.
    static func referenceDecode(_ text: [UInt8]) -> [UInt8]? {
        if text.count % 4 == 1 { return nil }
        var bits = 0, buffer = 0
        var out: [UInt8] = []
        for char in text {
            guard let value = alphabet.firstIndex(of: char) else { return nil }
            buffer = buffer << 6 | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> bits))
                buffer &= (1 << bits) - 1
            }
        }
        return buffer == 0 ? out : nil  // leftover bits must be zero (canonical)
    }

    @Test func base64MatchesTheReferenceOnEveryLengthAndTail() {
        var rng = SystemRandomNumberGenerator()
        let extra: [UInt8] = Array("=+/. \n\0é".utf8) + [0x80, 0xFF]
        for length in 0..<48 {
            for _ in 0..<200 {
                var text = (0..<length).map { _ in Self.alphabet.randomElement(using: &rng)! }
                if length > 0, Bool.random(using: &rng), Bool.random(using: &rng) {
                    text[Int.random(in: 0..<length, using: &rng)] = extra.randomElement(using: &rng)!
                }
                #expect(Base64URL.decode(text[...]) == Self.referenceDecode(text), "\(text)")
            }
        }
    }

    @Test func base64RejectsEveryNonCanonicalTail() {
        for prefix in ["", "Zm9v", "Zm9vYmFy"] {
            for char in Self.alphabet {
                for tailLength in [2, 3] {
                    let text = Array(prefix.utf8) + Array(repeating: UInt8(ascii: "A"), count: tailLength - 1) + [char]
                    let value = Self.alphabet.firstIndex(of: char)!
                    let canonical = tailLength == 2 ? value & 0x0F == 0 : value & 0x03 == 0
                    #expect((Base64URL.decode(text[...]) != nil) == canonical, "\(text)")
                }
            }
        }
    }

    @Test func base64BadByteAtEveryPosition() {
        let good = Array("Zm9vYmFyYmF6cXV4".utf8)  // 16 characters, 4 full groups
        for cut in [16, 15, 14] {
            for position in 0..<cut {
                for bad in Array("=.+/ ".utf8) + [0x00, 0x7F, 0x80, 0xC3, 0xFF] {
                    var text = Array(good[..<cut])
                    text[position] = bad
                    #expect(Base64URL.decode(text[...]) == nil)
                }
            }
        }
        // A slice that does not start at index 0 decodes the same.
        let padded = Array("..Zm9vYmE..".utf8)
        #expect(Base64URL.decode(padded[2..<9]) == Array("fooba".utf8))
        #expect(Base64URL.decode("Zm9vYmE"[...]) == Array("fooba".utf8))
    }

    /// A string whose special byte sits at every offset, so both the 8-byte scan and the
    /// byte-at-a-time tail see it.
    @Test func jsonStringSpecialBytesAtEveryOffset() throws {
        for offset in 0..<24 {
            let prefix = String(repeating: "a", count: offset)
            #expect(try JSONParser.parse("\"\(prefix)\"").get() == .string(prefix))
            #expect(try JSONParser.parse("\"\(prefix)\\n\(prefix)\"").get() == .string(prefix + "\n" + prefix))
            #expect(try JSONParser.parse("\"\(prefix)\\\"x\"").get() == .string(prefix + "\"x"))
            #expect(try JSONParser.parse("\"\(prefix)é\(prefix)\"").get() == .string(prefix + "é" + prefix))
            #expect(try JSONParser.parse("\"\(prefix)\u{7F}~\"").get() == .string(prefix + "\u{7F}~"))
            let control = JSONParser.parse("\"\(prefix)\u{1F}abcdefgh\"").failureValue
            #expect(control?.kind == .controlCharacter && control?.offset == 1 + offset)
            let nul = JSONParser.parse(Array("\"\(prefix)".utf8) + [0x00] + Array("abcdefghij\"".utf8)).failureValue
            #expect(nul?.kind == .controlCharacter && nul?.offset == 1 + offset)
            let end = JSONParser.parse("\"\(prefix)").failureValue
            #expect(end?.kind == .unexpectedEnd && end?.offset == 1 + offset)
            for invalid: [UInt8] in [[0xFF], [0xC3], [0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80]] {
                let bytes = Array("\"\(prefix)".utf8) + invalid + Array("abcdefghij\"".utf8)
                let failure = JSONParser.parse(bytes).failureValue
                #expect(failure?.kind == .invalidUTF8 && failure?.offset == 1)
            }
        }
    }

    static func token(header: String, payload: String = #"{"sub":"x"}"#, signature: String = "AAAA") -> String {
        Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8)) + "." + signature
    }

    @Test func headerMembersWithoutADictionary() throws {
        let jws = try CompactJWS.parse(Self.token(header: #"{"alg":"EdDSA","kid":"k1","typ":"JWT","x":[1,{"y":null}]}"#)).get()
        #expect(jws.algorithmName == "EdDSA" && jws.kid == "k1")
        #expect(JSONParser.parse(Array(#"{"alg":"EdDSA","kid":"k1","typ":"JWT","x":[1,{"y":null}]}"#.utf8)) == .success(.object(jws.header)))
        #expect(try CompactJWS.parse(Self.token(header: "{}")).get().header.isEmpty)
        #expect(try CompactJWS.parse(Self.token(header: " { \"kid\" : \"a\" } ")).get().kid == "a")
        // Duplicates: among the first members (direct comparison) and beyond (set).
        for count in [2, 3, 8, 9, 10, 30] {
            for duplicateOf in [0, count / 2, count - 2] where duplicateOf >= 0 && duplicateOf < count - 1 {
                var names = (0..<(count - 1)).map { "m\($0)" }
                names.append(names[duplicateOf])
                let header = "{" + names.map { "\"\($0)\":1" }.joined(separator: ",") + "}"
                #expect(CompactJWS.parse(Self.token(header: header)).failureValue?.detail == "header is not a JSON object")
                let unique = "{" + (0..<count).map { "\"m\($0)\":1" }.joined(separator: ",") + "}"
                #expect(try CompactJWS.parse(Self.token(header: unique)).get().header.count == count)
            }
        }
        #expect(CompactJWS.parse(Self.token(header: #"{"alg":"EdDSA","a\u006cg":"ES256"}"#)).failureValue?.detail == "header is not a JSON object")
        for header in ["[]", "\"x\"", "1", "{", #"{"a":1}x"#, #"{"a":1,}"#, ""] {
            #expect(CompactJWS.parse(Self.token(header: header)).failureValue?.reason == .malformed)
        }
        #expect(CompactJWS.parse(Self.token(header: #"{"alg":"EdDSA","crit":[]}"#)).failureValue?.detail == "crit header is not supported")
        #expect(CompactJWS.parse(Self.token(header: #"{"alg":1}"#)).failureValue?.detail == "alg is not a string")
        #expect(CompactJWS.parse(Self.token(header: #"{"kid":null}"#)).failureValue?.detail == "kid is not a string")
    }

    @Test func dotPositions() {
        let h = Base64URL.encode(Array(#"{"alg":"EdDSA"}"#.utf8)), p = Base64URL.encode(Array(#"{"sub":"x"}"#.utf8))
        for (text, detail) in [
            ("\(h)", "not three parts"), ("\(h).\(p)", "not three parts"), ("\(h).\(p).AAAA.", "not three parts"),
            ("\(h).\(p).AA.AA.AA", "not three parts"), ("..", "empty part"), ("...", "not three parts"),
            (".\(p).AAAA", "empty part"), ("\(h)..AAAA", "empty part"), ("\(h).\(p).", "empty part"),
            ("", "not three parts"), (".", "not three parts"),
        ] {
            #expect(CompactJWS.parse(text).failureValue?.detail == detail, "\(text)")
        }
        #expect(CompactJWS.parse("\(h).\(p).AAAA").isSuccess)
    }
}
