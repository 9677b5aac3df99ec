public import Foundation
import JOSE

/// Mints tokens of Better Auth 1.4's exact shape (its `jwt` plugin): header `{"alg","kid"}`
/// only, and a payload of `iat`, the user object, `sub`, `exp`, `iss`, `aud`.
public struct TokenMinter: Sendable {
    public var key: DevKey
    public var issuer: String
    public var audience: String

    public init(key: DevKey, issuer: String, audience: String) {
        self.key = key
        self.issuer = issuer
        self.audience = audience
    }

    public struct User: Sendable {
        public var id: String
        public var name: String
        public var email: String
        public var emailVerified = true
        public init(id: String, name: String, email: String) {
            self.id = id
            self.name = name
            self.email = email
        }
    }

    public func mint(user: User, ttlSeconds: Int, now: Date = Date()) -> String {
        let iat = Int(now.timeIntervalSince1970)
        let created = ISO8601DateFormatter.betterAuth.string(from: now.addingTimeInterval(-86_400))
        let updated = ISO8601DateFormatter.betterAuth.string(from: now)
        let q = JSONText.quoted
        let header = #"{"alg":\#(q(key.algorithm)),"kid":\#(q(key.kid))}"#
        let payload = "{\"iat\":\(iat),\"name\":\(q(user.name)),\"email\":\(q(user.email)),"
            + "\"emailVerified\":\(user.emailVerified),\"image\":null,\"createdAt\":\(q(created)),"
            + "\"updatedAt\":\(q(updated)),\"id\":\(q(user.id)),\"sub\":\(q(user.id)),"
            + "\"exp\":\(iat + ttlSeconds),\"iss\":\(q(issuer)),\"aud\":\(q(audience))}"
        let signingInput = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        return signingInput + "." + Base64URL.encode(key.sign(Array(signingInput.utf8)))
    }
}

extension ISO8601DateFormatter {
    /// `2025-12-07T09:00:00.000Z`, as Better Auth serialises dates.
    nonisolated(unsafe) static let betterAuth: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()
}
