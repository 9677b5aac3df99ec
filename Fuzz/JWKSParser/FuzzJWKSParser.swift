// libFuzzer target for the key-set path: `JSONParser.parse` and `JWKSet.parse`.
//
// Two builds of this one file:
// - `-DFUZZING -sanitize=fuzzer` (scripts/fuzz.sh): exports `LLVMFuzzerTestOneInput`;
//   libFuzzer supplies `main`.
// - plain `swift build --product FuzzJWKSParser`: an ordinary executable that replays the
//   files and directories given as arguments through the same `fuzzJWKS` (scripts/fuzz.sh
//   --replay, run by `make test`). A violated invariant traps in both builds.

import FuzzSupport
import JOSE

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Fixed world

/// The Better Auth 1.4 fixture tokens (Tests/Fixtures/better-auth-1.4-examples.json): a
/// fuzzed key set may only ever verify one of them with the key of the token's own kid.
let fixtureTokens: [String] = [
    "eyJhbGciOiJFZERTQSIsImtpZCI6IlBMNXFKRk1kTUlLR084UmNyQUE4UERIMmtDWWtuVlpTIn0.eyJpYXQiOjE3NjUxODA4MDAsIm5hbWUiOiJBZGEgTG92ZWxhY2UiLCJlbWFpbCI6ImFkYUBleGFtcGxlLmNvbSIsImVtYWlsVmVyaWZpZWQiOnRydWUsImltYWdlIjpudWxsLCJjcmVhdGVkQXQiOiIyMDI1LTExLTMwVDEyOjM0OjU2Ljc4OVoiLCJ1cGRhdGVkQXQiOiIyMDI1LTEyLTA3VDA5OjAwOjAwLjAwMFoiLCJpZCI6Ik0wSmJXNG4xYlhxN2NSMnNUOXZLM3laOGFMNWRGNmdIIiwic3ViIjoiTTBKYlc0bjFiWHE3Y1Iyc1Q5dkszeVo4YUw1ZEY2Z0giLCJleHAiOjE3NjUxODE3MDAsImlzcyI6Imh0dHBzOi8vYXBwLmV4YW1wbGUuY29tIiwiYXVkIjoiaHR0cHM6Ly9hcHAuZXhhbXBsZS5jb20ifQ.mX0mryzPyS6uYerSxMYkfFzn0uJYFoXzjjTeWyrvj2_yRUx-QM19BSY19d3BLcZbw0OrleBhstyAKrHf5VXqCQ",
    "eyJhbGciOiJFZERTQSIsImtpZCI6IjEyMWQzMzI1LTY0NTEtNDA5MS04ZWU0LTA1N2RiZGNhZGY5NSJ9.eyJpYXQiOjE3NjUxODQ0MDAsIm5hbWUiOiJBZGEgTG92ZWxhY2UiLCJlbWFpbCI6ImFkYUBleGFtcGxlLmNvbSIsImVtYWlsVmVyaWZpZWQiOnRydWUsImltYWdlIjpudWxsLCJjcmVhdGVkQXQiOiIyMDI1LTExLTMwVDEyOjM0OjU2Ljc4OVoiLCJ1cGRhdGVkQXQiOiIyMDI1LTEyLTA3VDA5OjAwOjAwLjAwMFoiLCJpZCI6Ik0wSmJXNG4xYlhxN2NSMnNUOXZLM3laOGFMNWRGNmdIIiwic3ViIjoiTTBKYlc0bjFiWHE3Y1Iyc1Q5dkszeVo4YUw1ZEY2Z0giLCJleHAiOjE3NjUxODUzMDAsImlzcyI6Imh0dHBzOi8vYXV0aC5leGFtcGxlLmNvbSIsImF1ZCI6Imh0dHBzOi8vYXV0aC5leGFtcGxlLmNvbSJ9.314EsrwezPm3AZHFkYRyGl3qSFSBFT56rrYaD60zI0Vy_TvpAK7qPC5RXQEk9fl8KuvkOaeT2JNw1XWK-dv3DQ",
    "eyJhbGciOiJFUzI1NiIsImtpZCI6Im90YlZOYVgxNTNvVWtvTUpaa2pVYlJRN1ZPT2hGZGlrIn0.eyJpYXQiOjE3NjUxODA4MDAsImlkIjoiTTBKYlc0bjFiWHE3Y1Iyc1Q5dkszeVo4YUw1ZEY2Z0giLCJlbWFpbCI6ImFkYUBleGFtcGxlLmNvbSIsInJvbGUiOiJhZG1pbiIsInN1YiI6Ik0wSmJXNG4xYlhxN2NSMnNUOXZLM3laOGFMNWRGNmdIIiwiZXhwIjoxNzY1MTg0NDAwLCJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJhdWQiOlsiaHR0cHM6Ly9hcGkuZXhhbXBsZS5jb20iLCJodHRwczovL2F1dGguZXhhbXBsZS5jb20iXX0.Kzzh2zRsVBseJbDQdjJerC_7givLcpAPAbEoG4yDuUEqYMUVHNeYMR5z9q5WXHQonwW1moe1OB2qqhnoKlvGYA",
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJOM0czanlzdXRJS2VJempiZUtWRkpaMGY4N2NIejZYIn0.eyJpYXQiOjE3NjUxODA4MDAsIm5hbWUiOiJBZGEgTG92ZWxhY2UiLCJlbWFpbCI6ImFkYUBleGFtcGxlLmNvbSIsImVtYWlsVmVyaWZpZWQiOnRydWUsImltYWdlIjpudWxsLCJjcmVhdGVkQXQiOiIyMDI1LTExLTMwVDEyOjM0OjU2Ljc4OVoiLCJ1cGRhdGVkQXQiOiIyMDI1LTEyLTA3VDA5OjAwOjAwLjAwMFoiLCJpZCI6Ik0wSmJXNG4xYlhxN2NSMnNUOXZLM3laOGFMNWRGNmdIIiwic3ViIjoiTTBKYlc0bjFiWHE3Y1Iyc1Q5dkszeVo4YUw1ZEY2Z0giLCJleHAiOjE3NjUxODE3MDAsImlzcyI6Imh0dHA6Ly9sb2NhbGhvc3Q6MzAwMCIsImF1ZCI6Imh0dHA6Ly9sb2NhbGhvc3Q6MzAwMCJ9.EbhDXdPb1-uc_QsfLl2iEzGFtZZG68ScFEfBL6M9hy6hQz1cHiogdMDuQll_q_Oh1QZrPlJ1pm4u-o9w3iMmdEvtgx99UQQPO_AZtlQ5Xna_YSEaATzuNJU3W9Is39dKiTlOAKP0mvp_ZTKFeB8tFyCJrNDWZDiEv4b9BJ7g16gYbGaKMGvZuyCnUfZEhPLQECeOB2gCL36tNBe545YRl2iBpk63ismITC1GEAKQcul8YO71NOV_X37PlbMADK8ResXTDsbmIhCPIxJLIbJHXW4xF-mYzmyIQOQPxdhcvGEzGXq1vfz5YjrzE7wtiQsxZTzggEUgdghAKQ6gnK14AA",
    "eyJhbGciOiJQUzI1NiIsImtpZCI6ImVCQjVuWmUzU25pZVVXQ1lqUVF4Y1k5aDBXTE5pQzVzIn0.eyJpYXQiOjE3NjUxODA4MDAsIm5hbWUiOiJBZGEgTG92ZWxhY2UiLCJlbWFpbCI6ImFkYUBleGFtcGxlLmNvbSIsImVtYWlsVmVyaWZpZWQiOnRydWUsImltYWdlIjpudWxsLCJjcmVhdGVkQXQiOiIyMDI1LTExLTMwVDEyOjM0OjU2Ljc4OVoiLCJ1cGRhdGVkQXQiOiIyMDI1LTEyLTA3VDA5OjAwOjAwLjAwMFoiLCJpZCI6Ik0wSmJXNG4xYlhxN2NSMnNUOXZLM3laOGFMNWRGNmdIIiwic3ViIjoiTTBKYlc0bjFiWHE3Y1Iyc1Q5dkszeVo4YUw1ZEY2Z0giLCJleHAiOjE3NjUxODE3MDAsImlzcyI6Imh0dHA6Ly9sb2NhbGhvc3Q6MzAwMCIsImF1ZCI6Imh0dHA6Ly9sb2NhbGhvc3Q6MzAwMCJ9.M8GZCPrpWO3HhhWyEqAgKBmcCrG6feZ9T3aECitUoXKIOXYP0SbwQgI4f6YlIIXokOqqbq2pckzWBGRO_X-Jp5JsH0Q-4FzhjYvBeJG6Y-ney-cM7-soy2OCHGV3RtOdwcZ5bIqkW1LHQPO0dmKeTOrguVDRNiAaP0TAZPHZZg_9t1RMAXPmLYkyKnkFrpE_ZR47uu4vDr6d44rQEdSvWhC_jdghjS6OxWCRW6_7mjGMyTe9nq8lHY9lfZm4-7sHdlnTTdKH6Ab4HmEgw_quNBTkp07QNk_dUVYQhYdqBBe9L_y5K5aoRAasH7_ZuMf0cmwTgCRqGesRA_Tbl8W-9g",
]

let signatureVerifier = JWTVerifier(configuration: .init(issuer: "https://auth.example.com", audiences: []))

// MARK: - Invariants

/// Container nesting depth: scalars 0, `[]`/`{}` 1.
func depth(_ value: JSONValue) -> Int {
    switch value {
    case .array(let elements): 1 + (elements.map(depth).max() ?? 0)
    case .object(let members): 1 + (members.values.map(depth).max() ?? 0)
    default: 0
    }
}

/// An independent RFC 8259 serializer, for the parse → serialize → parse round trip.
func serialize(_ value: JSONValue, into out: inout [UInt8]) {
    switch value {
    case .null: out += Array("null".utf8)
    case .bool(let flag): out += Array((flag ? "true" : "false").utf8)
    case .int(let number): out += Array(String(number).utf8)
    case .double(let number): out += Array(String(number).utf8)  // shortest round-tripping form
    case .string(let text): serialize(string: text, into: &out)
    case .array(let elements):
        out.append(UInt8(ascii: "["))
        for (index, element) in elements.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            serialize(element, into: &out)
        }
        out.append(UInt8(ascii: "]"))
    case .object(let members):
        out.append(UInt8(ascii: "{"))
        for (index, (name, member)) in members.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            serialize(string: name, into: &out)
            out.append(UInt8(ascii: ":"))
            serialize(member, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}

func serialize(string: String, into out: inout [UInt8]) {
    let hex = Array("0123456789abcdef".utf8)
    out.append(UInt8(ascii: "\""))
    for byte in string.utf8 {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
        case 0..<0x20: out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
        default: out.append(byte)
        }
    }
    out.append(UInt8(ascii: "\""))
}

/// The JSON layer alone.
func checkJSON(_ bytes: [UInt8], _ parsed: Result<JSONValue, JSONParseError>) {
    switch parsed {
    case .success(let value):
        // RFC 8259 §8.1: an accepted text is UTF-8 as a whole, not only inside strings.
        invariant(String(validating: bytes, as: UTF8.self) != nil, "accepted a document that is not UTF-8")
        let levels = depth(value)
        invariant(levels <= JSONParser.defaultMaxDepth, "accepted nesting deeper than maxDepth")
        var text: [UInt8] = []
        serialize(value, into: &text)
        invariant(JSONParser.parse(text) == .success(value), "parse → serialize → parse changed the value")
        // A tighter limit accepts exactly the shallow documents, with the same value.
        let shallow = JSONParser.parse(bytes, maxDepth: 2)
        if levels <= 2 {
            invariant(shallow == .success(value), "maxDepth 2 refused a shallow document")
        } else {
            invariant(shallow.failureValue?.kind == .tooDeep, "maxDepth 2 did not refuse a deep document as tooDeep")
        }
    case .failure(let error):
        invariant((0...bytes.count).contains(error.offset), "error offset outside the document")
        invariant(JSONParseError.Kind(rawValue: error.kind.rawValue) == error.kind, "error kind does not round-trip")
        // Only the depth limit depends on maxDepth: any other error survives a looser limit.
        if error.kind != .tooDeep {
            invariant(JSONParser.parse(bytes, maxDepth: 64) == parsed, "a looser depth limit changed a non-depth error")
        }
    }
}

/// One imported key is self-consistent and usable for at least one allowed algorithm.
func checkKey(_ key: VerificationKey, in set: JWKSet) {
    switch key.type {
    case .ed25519: invariant(key.signatureLength == 64, "Ed25519 signature length")
    case .p256: invariant(key.signatureLength == 64, "P-256 signature length")
    case .p521: invariant(key.signatureLength == 132, "P-521 signature length")
    case .rsa(let bits):
        invariant((JWK.minimumRSABits...JWK.maximumRSABits).contains(bits), "RSA modulus size \(bits) out of bounds")
        invariant(key.signatureLength == (bits + 7) / 8, "RSA signature length does not match the modulus")
    }
    invariant(JWSAlgorithm.allCases.contains(where: key.accepts), "key accepts no algorithm")
    if let declared = key.declaredAlgorithm {
        invariant(key.accepts(declared), "key does not accept its own alg")
        invariant(JWSAlgorithm.allCases.filter(key.accepts) == [declared], "key with alg accepts another alg")
    }
    if let kid = key.kid {
        invariant(set.contains(kid: kid) && set.key(for: kid) === key, "kid lookup does not return the key")
    }
}

/// Runs one input through the JSON parser and the JWKS parser; returns true if it is a key
/// set with at least one usable key. Traps if an invariant does not hold.
@discardableResult
func fuzzJWKS(_ bytes: [UInt8]) -> Bool {
    let json = JSONParser.parse(bytes)
    checkJSON(bytes, json)

    // A single JWK (Better Auth's database row form) parses the same from text or value.
    if case .success(let value) = json, value.objectValue != nil, let text = String(validating: bytes, as: UTF8.self) {
        switch (JWK.parse(text), JWK.parse(value)) {
        case (.success(let a), .success(let b)):
            invariant(a.kid == b.kid && a.type == b.type && a.declaredAlgorithm == b.declaredAlgorithm,
                      "JWK text and value imports differ")
        case (.failure(let a), .failure(let b)):
            invariant(a == b, "JWK text and value imports fail differently")
        default:
            invariant(false, "JWK text and value imports disagree")
        }
    }

    switch JWKSet.parse(bytes) {
    case .failure(let error):
        invariant(JWKSet.DocumentError.Reason(rawValue: error.reason.rawValue) == error.reason, "reason outside the vocabulary")
        switch error.reason {
        case .tooLarge:
            invariant(bytes.count > JWKSet.defaultMaxBytes, "refused as too large within the limit")
        case .invalidJSON:
            invariant(json.failureValue != nil, "refused as invalid JSON that parses")
        case .notAKeySet:
            invariant(json.successValue.map { $0["keys"]?.arrayValue == nil } == true, "refused a document with a keys array")
        case .tooManyKeys:
            invariant((json.successValue?["keys"]?.arrayValue?.count ?? 0) > JWKSet.defaultMaxKeys, "refused too few keys as too many")
        }
        return false

    case .success(let set):
        guard let entries = json.successValue?["keys"]?.arrayValue else {
            invariant(false, "accepted a document without a keys array")
            return false
        }
        invariant(entries.count <= JWKSet.defaultMaxKeys && set.keys.count <= JWKSet.defaultMaxKeys, "more than maxKeys keys")
        invariant(set.keys.count + set.rejected.count == entries.count, "a key was neither accepted nor rejected")
        let kids = set.keys.compactMap(\.kid)
        invariant(Set(kids).count == kids.count, "duplicate kids accepted")
        invariant(set.kids == Set(kids), "kids differs from the accepted keys")
        // Kid-less tokens: only a document of exactly one key, and that key accepted.
        invariant(set.key(for: nil) === (entries.count == 1 && set.keys.count == 1 ? set.keys[0] : nil), "kid-less selection is ambiguous")
        for key in set.keys { checkKey(key, in: set) }

        // Rejections are in document order, each with its index; every entry either
        // imports on its own or is rejected for the same reason.
        var rejectedAt: [Int: KeyRejection] = [:]
        var previous = -1
        for rejection in set.rejected {
            invariant(KeyRejection.Reason(rawValue: rejection.reason.rawValue) == rejection.reason, "rejection reason outside the vocabulary")
            invariant(!rejection.detail.isEmpty, "empty rejection detail")
            guard let index = rejection.index, index > previous, index < entries.count else {
                invariant(false, "rejection index missing, out of range or out of order")
                return false
            }
            previous = index
            rejectedAt[index] = rejection
            if rejection.reason == .duplicateKid {
                invariant(rejection.kid.map(set.contains(kid:)) == true, "duplicate of a kid that is not in the set")
            }
        }
        var accepted = 0
        for (index, entry) in entries.enumerated() {
            let single = JWK.parse(entry)
            if let rejection = rejectedAt[index] {
                if rejection.reason == .duplicateKid {
                    invariant(single.successValue?.kid == rejection.kid, "duplicate-kid entry does not import alone")
                } else {
                    invariant(single.failureValue?.reason == rejection.reason, "entry rejected in the set but not alone")
                }
            } else {
                guard let key = single.successValue else {
                    invariant(false, "entry accepted in the set but rejected alone")
                    return false
                }
                invariant(accepted < set.keys.count && set.keys[accepted].kid == key.kid
                          && set.keys[accepted].type == key.type, "accepted keys out of document order")
                accepted += 1
            }
        }

        // A fuzzed set may verify a fixture token only with the key the token names.
        for token in fixtureTokens {
            if case .success(let pair) = signatureVerifier.verifySignature(token: token, keys: set) {
                invariant(pair.jws.kid != nil && pair.key.kid == pair.jws.kid, "verified with a key of another kid")
            }
        }
        return !set.keys.isEmpty
    }
}

// MARK: - Entry points

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzJWKS(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
@main
enum ReplayMain {
    static func main() {
        exit(Replay.run(name: "FuzzJWKSParser", arguments: Array(CommandLine.arguments.dropFirst()), fuzzJWKS))
    }
}
#endif
