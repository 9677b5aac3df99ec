import JOSE
import Testing

@Suite struct Base64URLTests {
    /// RFC 4648 §10 vectors, without padding (RFC 7515 §2).
    static let vectors: [(String, String)] = [
        ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"),
        ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy"),
    ]

    @Test func rfc4648Vectors() {
        for (plain, encoded) in Self.vectors {
            #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
            #expect(Base64URL.decode(encoded) == Array(plain.utf8))
        }
    }

    @Test func urlSafeAlphabet() {
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xFB, 0xFF])
        #expect(Base64URL.decode("+/8") == nil)  // standard alphabet is not base64url
    }

    @Test func roundTripsAllLengths() {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
    }

    @Test(arguments: [
        "Zg==", "Zm8=", "Zg=", // padding
        "Zm9v Yg", " Zm9v", "Zm9v\n", "Zm9v\tYg", // whitespace
        "Zm9v*g", "Zm9v.g", "Zm\u{0}9", "Zmé9", // outside the alphabet
        "Z", "Zm9vY", // impossible lengths (len % 4 == 1)
        "Zh", "Zm9", "Zm9vYh", "Zm9vYmF", // non-zero trailing bits (non-canonical)
    ])
    func rejects(_ input: String) {
        #expect(Base64URL.decode(input) == nil)
    }
}
