/// A JWK Set (RFC 7517 §5) parsed once into ready-to-use keys.
///
/// A bad key must not take the good ones down with it (RFC 7517 §5: "implementations
/// SHOULD ignore JWKs within a JWK Set that use kty values that are not understood"), so
/// each rejected key is skipped and reported in `rejected` for the caller to log once.
/// Only document-level problems (size, key count, JSON) reject the whole set.
public struct JWKSet: Sendable {
    public static let defaultMaxBytes = 1 << 20
    public static let defaultMaxKeys = 100

    /// Why a whole JWKS document was refused.
    public struct DocumentError: Error, Sendable, Equatable, CustomStringConvertible {
        public enum Reason: String, Sendable {
            case tooLarge = "too_large"
            case tooManyKeys = "too_many_keys"
            case invalidJSON = "invalid_json"
            case notAKeySet = "not_a_key_set"
        }
        public let reason: Reason
        public let detail: String
        public var description: String { "\(reason.rawValue): \(detail)" }
    }

    /// Accepted keys, in document order.
    public let keys: [VerificationKey]
    /// Keys that were skipped, with why (including duplicate kids after the first).
    public let rejected: [KeyRejection]
    private let byKid: [String: VerificationKey]
    private static let linearLookupLimit = 8

    /// Builds a set from already-imported keys. Later keys with an already-seen kid are
    /// reported in `rejected` (first one wins, as with documents).
    public init(keys: [VerificationKey], rejected: [KeyRejection] = []) {
        var accepted: [VerificationKey] = []
        var byKid: [String: VerificationKey] = [:]
        var rejected = rejected
        for key in keys {
            if let kid = key.kid {
                if byKid[kid] != nil {
                    rejected.append(KeyRejection(.duplicateKid, "duplicate kid; the first key with it is kept", kid: kid))
                    continue
                }
                byKid[kid] = key
            }
            accepted.append(key)
        }
        self.keys = accepted
        self.byKid = byKid
        self.rejected = rejected
    }

    /// Parses a JWKS document: ≤ `maxBytes` and ≤ `maxKeys` entries, else the document is
    /// rejected as a whole (resource bounds; RFC 8725 §3.x spirit).
    public static func parse(_ document: [UInt8], maxBytes: Int = defaultMaxBytes, maxKeys: Int = defaultMaxKeys) -> Result<JWKSet, DocumentError> {
        guard document.count <= maxBytes else {
            return .failure(DocumentError(reason: .tooLarge, detail: "JWKS is larger than \(maxBytes) bytes"))
        }
        let json: JSONValue
        switch JSONParser.parse(document) {
        case .success(let value): json = value
        case .failure(let error):
            return .failure(DocumentError(reason: .invalidJSON, detail: "\(error.kind.rawValue) at byte \(error.offset)"))
        }
        guard let entries = json["keys"]?.arrayValue else {
            return .failure(DocumentError(reason: .notAKeySet, detail: "no \"keys\" array"))
        }
        guard entries.count <= maxKeys else {
            return .failure(DocumentError(reason: .tooManyKeys, detail: "\(entries.count) keys, maximum is \(maxKeys)"))
        }
        var keys: [VerificationKey] = []
        var rejected: [KeyRejection] = []
        var seenKids = Set<String>()
        for (index, entry) in entries.enumerated() {
            switch JWK.parse(entry) {
            case .success(let key):
                if let kid = key.kid, !seenKids.insert(kid).inserted {
                    rejected.append(KeyRejection(.duplicateKid, "duplicate kid; the first key with it is kept", kid: kid, index: index))
                } else {
                    keys.append(key)
                }
            case .failure(var rejection):
                rejection.index = index
                rejected.append(rejection)
            }
        }
        return .success(JWKSet(keys: keys, rejected: rejected))
    }

    public static func parse(_ document: String, maxBytes: Int = defaultMaxBytes, maxKeys: Int = defaultMaxKeys) -> Result<JWKSet, DocumentError> {
        parse(Array(document.utf8), maxBytes: maxBytes, maxKeys: maxKeys)
    }

    /// The kids of the accepted keys (e.g. to purge cached verifications after a rotation).
    public var kids: Set<String> { Set(byKid.keys) }

    public func contains(kid: String) -> Bool { byKid[kid] != nil }

    /// RFC 7515 §4.1.4 / RFC 8725 §3.x: with a `kid`, exactly that key or nothing — we never
    /// fall back to trying other keys. Without a `kid`, only an unambiguous single-key set:
    /// one key in the document, accepted. A document of several keys, some skipped, is not
    /// single-key, or a kid-less token would be tried against whichever key happens to be usable.
    public func key(for kid: String?) -> VerificationKey? {
        guard let kid else { return keys.count == 1 && rejected.isEmpty ? keys[0] : nil }
        // A JWKS holds a key or two (a few during rotation): comparing kids costs less than
        // hashing one. Kids are unique (`init`), so the first match is the only one.
        if keys.count <= Self.linearLookupLimit {
            for key in keys where key.kid == kid { return key }
            return nil
        }
        return byKid[kid]
    }
}
