// libFuzzer target for the token path: `CompactJWS.parse` and `JWTVerifier.verify`.
//
// Two builds of this one file:
// - `-DFUZZING -sanitize=fuzzer` (scripts/fuzz.sh): exports `LLVMFuzzerTestOneInput`;
//   libFuzzer supplies `main`.
// - plain `swift build --product FuzzTokenParser`: an ordinary executable that replays the
//   files and directories given as arguments through the same `fuzzToken` (scripts/fuzz.sh
//   --replay, run by `make test`). A violated invariant traps in both builds.
//
// The world is fixed so that runs are reproducible: the Better Auth 1.4 fixture keys
// (Tests/Fixtures/better-auth-1.4-examples.json) and a clock per issuer at which the
// fixture tokens are valid.

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

/// Every key of the fixture's ex1, ex2 and ex3 (ES256, RS256, ES512, PS256) sets; kids are distinct.
let fixtureJWKS = #"""
{"keys":[
    {"alg":"EdDSA","crv":"Ed25519","x":"wdGXEhHDJP3EUv4ec_7MNTsMNwygce8gZDBreyYeFCg","kty":"OKP","kid":"PL5qJFMdMIKGO8RcrAA8PDH2kCYknVZS"},
    {"alg":"EdDSA","crv":"Ed25519","x":"g0wZ9dCcnHIMULZGMffX4rtdaGo1Lt1O6X77LXEp0IQ","kty":"OKP","kid":"82437b8c-d052-47e3-b7a8-b9fb1c9f6184"},
    {"alg":"EdDSA","crv":"Ed25519","x":"2-RulitOv_n68O5eYHwCPGYvWmoUVZY-1Vo7Ne5tV70","kty":"OKP","kid":"121d3325-6451-4091-8ee4-057dbdcadf95"},
    {"alg":"ES256","crv":"P-256","kty":"EC","x":"habtJcgVRVthWl58azPcL6jO8Gp8YK8hfLHX8aILd9o","y":"eN8vxKkToRQCM72mQtxrBX58JMJ4Bpn6giUqdeSQHA0","kid":"otbVNaX153oUkoMJZkjUbRQ7VOOhFdik"},
    {"alg":"RS256","kty":"RSA","n":"tWcgmiPIZbSCfBXzAD8RFhhsyYyiVVa_p_v2ADTWDYGAsLiYlLXr6y1GiUHbfB-LpAJ8a1XLos75ai0xq69LN2VP48ZsXrrjCsIWWq056-fJVg3teRCAcfpTVMix09DaX23FILISngonnBT3q7LoNyCJjN7423in-Vrl-hXuyVZDZqtJuFC0173qJ3RxR97P0K116Yco9-skq5IKjV1ZaaXLRCDRamhdm4kX3YQPLO4Wk6aSyC4E285PdFSbyRGzGMdyaOEkuSaW9AqW498gcd_fQVqOYOGjr2-z4lXjNtfxxOiruSsLeUTUs0o49VPg19gTgD5F929Nq0YUOQfLBQ","e":"AQAB","kid":"bN3G3jysutIKeIzjbeKVFJZ0f87cHz6X"},
    {"alg":"ES512","crv":"P-521","kty":"EC","x":"AEp-AYBfUQxiur5gim8yY6pQwjCiJjB9z1zrw24xPy5kC4FaosxBZOU5-GUlIAaSAkempIZYXvz4PVFFf_V8ypet","y":"AdwUIMHCBlw6AyLbTKSyuYdD05-aSykbU-3cUelzO5v52ukkjoQnJtJAOdeWaFA7hcxyP4Ni2a_0O2wRigc3H0BK","kid":"LXfi52MOCAJaUjWxeg6oKbkovJlgTger"},
    {"alg":"PS256","kty":"RSA","n":"pGBedsAmM-Mo_AFaW0cRKDmIRvQ8SzZkBtYncwDEU9YJSyEJNA1p0ajkf1c_mm2zuPHkeqFCE_2NG0R6HWwrnEVL-GNMLHtm_mJngOHeXTiHN9UsQmNlgXrJVw2CO2jrswt36T6dru9MoPX6ZyLoGi0ATX9LzB66Dc60eTVRiF-qFTlLNSz1C_TQrE9nROPE-P3ZwYAgem6JLd_aA8ED_UVh0C9WOGSP8OUqTWGjJQgrjcL2P_fsuR4jgCyktfRTduTyouZ3TaiRBsKpkXK7ItiXzfr811lsjrr64kpE_REVXCKXO7JJCs15Hf_klIGnWKj9MU63x8lpQG8zjNpZlw","e":"AQAB","kid":"eBB5nZe3SnieUWCYjQQxcY9h0WLNiC5s"}
]}
"""#

/// The fixture's `db_row_publicKey_example`: ex1's key without a kid, so the
/// "no kid, exactly one key" selection rule is reachable.
let singleKeyJWKS = #"{"keys":[{"crv":"Ed25519","x":"wdGXEhHDJP3EUv4ec_7MNTsMNwygce8gZDBreyYeFCg","kty":"OKP"}]}"#

let keySets: [JWKSet] = [fixtureJWKS, singleKeyJWKS].map { text in
    guard case .success(let set) = JWKSet.parse(text), set.rejected.isEmpty, !set.keys.isEmpty else {
        fatalError("fixture JWKS does not import")
    }
    return set
}

/// One verifier configuration per fixture issuer, each with a fixed clock at which that
/// issuer's fixture tokens are valid (iat ≤ now < exp + skew).
struct Profile: Sendable {
    let verifier: JWTVerifier
    let now: Double
}

let audiences: Set<String> = [
    "https://app.example.com", "https://auth.example.com", "https://api.example.com", "http://localhost:3000",
]

let profiles: [Profile] = [
    Profile(verifier: JWTVerifier(configuration: .init(issuer: "https://app.example.com", audiences: audiences)),
            now: 1_765_181_000),
    Profile(verifier: JWTVerifier(configuration: .init(issuer: "https://auth.example.com", audiences: audiences)),
            now: 1_765_184_400),
    Profile(verifier: JWTVerifier(configuration: .init(issuer: "http://localhost:3000", audiences: audiences)),
            now: 1_765_181_000),
]

// MARK: - Invariants

func checkVocabulary(_ failure: VerificationFailure) {
    invariant(VerificationFailure.Reason.allCases.contains(failure.reason), "reason outside the vocabulary")
    invariant(VerificationFailure.Reason(rawValue: failure.reason.rawValue) == failure.reason, "reason does not round-trip")
    invariant(!failure.detail.isEmpty, "empty failure detail")
}

/// Strict canonical base64url: whatever decodes re-encodes to exactly the input, and
/// encode → decode is the identity.
func checkBase64URL(_ bytes: [UInt8]) {
    if let decoded = Base64URL.decode(bytes[...]) {
        invariant(Array(Base64URL.encode(decoded).utf8) == bytes, "base64url decode accepted a non-canonical spelling")
    }
    invariant(Base64URL.decode(Base64URL.encode(bytes)) == bytes, "base64url encode/decode is not the identity")
}

/// The three segments and the dot positions, computed independently of `CompactJWS`.
func dotOffsets(_ bytes: [UInt8]) -> [Int] {
    bytes.indices.filter { bytes[$0] == UInt8(ascii: ".") }
}

/// Runs one input through the parser and the verifier; returns true if any profile
/// accepted it. Traps if an invariant does not hold.
@discardableResult
func fuzzToken(_ bytes: [UInt8]) -> Bool {
    checkBase64URL(bytes)

    let dots = dotOffsets(bytes)
    let parsed = CompactJWS.parse(bytes)

    // The String entry point must agree with the bytes one.
    if let text = String(validating: bytes, as: UTF8.self) {
        switch (parsed, CompactJWS.parse(text)) {
        case (.failure(let a), .failure(let b)):
            invariant(a == b, "String and byte parse disagree on the failure")
        case (.success(let a), .success(let b)):
            invariant(a.header == b.header && a.payload == b.payload && a.signature == b.signature
                      && a.payloadBytes == b.payloadBytes && a.kid == b.kid && a.algorithmName == b.algorithmName
                      && Array(a.signingInput) == Array(b.signingInput),
                      "String and byte parse disagree on the token")
        default:
            invariant(false, "String and byte parse disagree on success")
        }
    }

    switch parsed {
    case .failure(let failure):
        checkVocabulary(failure)
        invariant(failure.reason == .malformed, "a structural failure that is not `malformed`")
        if bytes.count > CompactJWS.defaultMaxBytes {
            invariant(failure.detail == "token too large", "oversized token not refused for its size")
        } else if dots.count != 2 {
            invariant(failure.detail == "not three parts", "wrong part count not refused as such")
        }
        // Verification must stop at the same, first, problem.
        for set in keySets {
            let result = profiles[0].verifier.verify(token: bytes, keys: set, now: profiles[0].now)
            guard case .failure(let verifyFailure) = result else {
                invariant(false, "verify accepted a token CompactJWS.parse refused")
                return false
            }
            invariant(verifyFailure == failure, "verify reports a different failure than parse")
        }
        return false

    case .success(let jws):
        checkParsedToken(jws, bytes: bytes, dots: dots)
        var accepted = false
        for set in keySets {
            // Everything but the claims is independent of issuer and clock: check it once.
            let signature = profiles[0].verifier.verifySignature(token: bytes, keys: set)
            if case .success(let pair) = signature {
                checkSignedToken(pair.jws, key: pair.key, keys: set)
            }
            // Before the claims no profile differs, so an unverified signature needs one
            // profile only (this keeps the cryptography per input, and so exec/s, down).
            for profile in signature.failureValue == nil ? profiles[...] : profiles[..<1] {
                let result = profile.verifier.verify(token: bytes, keys: set, now: profile.now)
                if checkVerification(result, signature: signature, jws: jws, bytes: bytes, dots: dots,
                                     keys: set, profile: profile) {
                    accepted = true
                }
            }
        }
        return accepted
    }
}

/// A structurally valid token: exactly three non-empty canonical base64url parts whose
/// header and payload are the JSON objects reported.
func checkParsedToken(_ jws: CompactJWS, bytes: [UInt8], dots: [Int]) {
    invariant(bytes.count <= CompactJWS.defaultMaxBytes, "accepted an oversized token")
    invariant(dots.count == 2, "accepted a token without exactly three parts")
    let (first, second) = (dots[0], dots[1])
    let header = Array(bytes[..<first]), payload = Array(bytes[(first + 1)..<second])
    let signature = Array(bytes[(second + 1)...])
    invariant(!header.isEmpty && !payload.isEmpty && !signature.isEmpty, "accepted an empty part")
    invariant(Array(jws.signingInput) == Array(bytes[..<second]), "signing input is not header.payload")
    invariant(Array(jws.payloadSegment) == payload, "payload segment is not the middle part")
    invariant(Array(Base64URL.encode(jws.payloadBytes).utf8) == payload, "payload bytes do not re-encode to the segment")
    invariant(Array(Base64URL.encode(jws.signature).utf8) == signature, "signature does not re-encode to the segment")
    guard let headerBytes = Base64URL.decode(bytes[..<first]) else {
        invariant(false, "accepted a header that is not base64url")
        return
    }
    invariant(JSONParser.parse(headerBytes) == .success(.object(jws.header)), "header JSON differs on reparse")
    invariant(JSONParser.parse(jws.payloadBytes) == .success(jws.payload.object), "payload JSON differs on reparse")
    invariant(jws.header["crit"] == nil, "accepted a crit header")
    invariant(jws.algorithmName == jws.header["alg"]?.stringValue, "alg differs from the header member")
    invariant(jws.kid == jws.header["kid"]?.stringValue, "kid differs from the header member")
    invariant((jws.header["alg"] == nil) == (jws.algorithmName == nil), "non-string alg accepted")
    invariant((jws.header["kid"] == nil) == (jws.kid == nil), "non-string kid accepted")
}

/// A token whose signature verified: exactly the kid's key (or the only key), an allowed
/// algorithm that fits it, a signature of the right length that the key accepts.
func checkSignedToken(_ jws: CompactJWS, key: VerificationKey, keys: JWKSet) {
    guard let name = jws.algorithmName, let algorithm = JWSAlgorithm(rawValue: name) else {
        invariant(false, "signature verified without a supported alg")
        return
    }
    if let kid = jws.kid {
        invariant(key.kid == kid && keys.contains(kid: kid), "verified with a key of another kid")
    } else {
        invariant(keys.keys.count == 1 && keys.keys[0] === key, "no kid, yet not the only key of the set")
    }
    invariant(key.accepts(algorithm), "verified with an algorithm the key does not accept")
    invariant(jws.signature.count == key.signatureLength, "verified a signature of the wrong length")
    invariant(key.isValidSignature(jws.signature, for: jws.signingInput, algorithm: algorithm),
              "the key itself does not accept the signature")
}

/// Consistency between `verify`, `verifySignature` and the claims; returns true on success.
func checkVerification(_ result: Result<VerifiedToken, VerificationFailure>,
                       signature: Result<(jws: CompactJWS, key: VerificationKey), VerificationFailure>,
                       jws: CompactJWS, bytes: [UInt8], dots: [Int], keys: JWKSet, profile: Profile) -> Bool {
    let configuration = profile.verifier.configuration
    switch result {
    case .success(let token):
        guard case .success(let pair) = signature else {
            invariant(false, "verify succeeded but verifySignature failed")
            return true
        }
        invariant(token.kid == pair.key.kid, "verified token reports another key's kid")
        invariant(token.claims == jws.payload, "verified claims differ from the parsed payload")
        invariant(Array(token.payloadBase64URL.utf8) == Array(bytes[(dots[0] + 1)..<dots[1]]),
                  "payloadBase64URL is not the token's middle part")
        invariant(token.payloadBytes == jws.payloadBytes, "payload bytes differ")
        invariant(token.algorithm.rawValue == jws.algorithmName, "algorithm differs from the header")
        invariant(!token.sub.isEmpty && token.sub == jws.payload["sub"]?.stringValue, "sub missing or different")
        invariant(token.exp == jws.payload["exp"]?.numberValue, "exp differs from the claim")
        invariant(profile.now < token.exp + configuration.clockSkew, "accepted an expired token")
        if let nbf = jws.payload["nbf"]?.numberValue {
            invariant(nbf <= profile.now + configuration.clockSkew, "accepted a token before nbf")
        }
        if let iat = jws.payload["iat"]?.numberValue {
            invariant(iat <= profile.now + configuration.clockSkew, "accepted a token issued in the future")
        }
        invariant(jws.payload["iss"]?.stringValue == configuration.issuer, "accepted another issuer")
        let audienceOK: Bool = switch jws.payload["aud"] {
        case .string(let audience)?: configuration.audiences.contains(audience)
        case .array(let list)?: list.contains { $0.stringValue.map(configuration.audiences.contains) ?? false }
        default: false
        }
        invariant(audienceOK, "accepted a token for another audience")
        return true

    case .failure(let failure):
        checkVocabulary(failure)
        switch failure.reason {
        case .alg, .unknownKey, .badSignature:
            // Pre-claims failures are exactly verifySignature's.
            invariant(signature.failureValue == failure, "verify and verifySignature disagree before the claims")
        case .malformed:
            // Structure was fine (parse succeeded), so this is a claim of the wrong type.
            invariant(signature.failureValue == nil, "claim type error reported without a verified signature")
        case .expired, .notYetValid, .issuer, .audience, .missingClaim:
            invariant(signature.failureValue == nil, "claims checked before the signature verified")
        }
        return false
    }
}

// MARK: - Entry points

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzToken(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
@main
enum ReplayMain {
    static func main() {
        exit(Replay.run(name: "FuzzTokenParser", arguments: Array(CommandLine.arguments.dropFirst()), fuzzToken))
    }
}
#endif
