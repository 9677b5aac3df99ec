import FoundationEssentials
import JOSE

#if canImport(Glibc)
import Glibc
#endif

/// The development issuer's sessions, Better Auth-shaped: `gatehouse mint --session` creates
/// one, and `gatehouse dev-issuer` answers get-session for it, so the session path of the proxy
/// can be tried without a Better Auth server.
///
/// Stored beside the key file in `<key file>.sessions` (mode 0600): an HMAC secret of its own
/// and the sessions (token, user, expiry), as Better Auth keeps them in its database. The
/// credential has Better Auth 1.4's exact format (`setSessionCookie`, `signCookieValue`): a
/// 32-character `[A-Za-z0-9]` token, `.`, the standard base64 of HMAC-SHA256(secret, token),
/// URL-encoded.
public enum DevSessions {
    public struct Session: Sendable {
        public var token: String
        public var id: String
        public var user: TokenMinter.User
        public var createdAt: Double
        public var expiresAt: Double
    }

    struct Store {
        var secret: [UInt8]
        var sessions: [Session]
    }

    public static func path(keyFile: String) -> String { keyFile + ".sessions" }

    /// Creates a session for `user`; returns the cookie value (the bearer plugin's
    /// `set-auth-token` is the same string).
    public static func create(
        keyFile: String, user: TokenMinter.User, ttlSeconds: Int, now: Double? = nil
    ) throws(DevKeySet.Problem) -> String {
        let now = now ?? TokenMinter.clock()
        let path = path(keyFile: keyFile)
        return try DevKeySet.locked(path) { () throws(DevKeySet.Problem) in
            var store = try load(path: path) ?? Store(secret: randomBytes(32), sessions: [])
            store.sessions.removeAll { $0.expiresAt <= now }
            let session = Session(
                token: randomToken(), id: randomToken(), user: user, createdAt: now, expiresAt: now + Double(ttlSeconds))
            store.sessions.append(session)
            try DevKeySet.replaceFile(path, with: serialize(store))
            return signedValue(session.token, secret: store.secret)
        }
    }

    /// get-session's answer body for a credential (a cookie value or a bearer token, as sent):
    /// the session and its user, or `null` for an unknown, expired or badly signed one.
    public static func answer(keyFile: String, credential: String, now: Double? = nil) -> [UInt8] {
        let now = now ?? TokenMinter.clock()
        let null = Array("null".utf8)
        guard let store = try? load(path: path(keyFile: keyFile)),
            let decodedBytes = PercentEncoding.decode(credential.utf8)
        else { return null }
        let decoded = String(decoding: decodedBytes, as: UTF8.self)
        let parts = decoded.split(separator: ".", omittingEmptySubsequences: false)
        let token = String(parts[0])
        if parts.count == 2 {
            guard let signature = Base64Standard.decode(parts[1]),
                HMACSHA256.equalInConstantTime(signature, HMACSHA256.mac(key: store.secret, data: Array(token.utf8)))
            else { return null }
        } else if parts.count != 1 {
            return null
        }
        guard let session = store.sessions.first(where: { $0.token == token }), session.expiresAt > now else { return null }
        let q = JSONText.quoted
        let date = { TokenMinter.betterAuthDate($0) }
        let user = session.user
        let body = #"{"session":{"id":\#(q(session.id)),"token":\#(q(session.token)),"userId":\#(q(user.id)),"#
            + #""expiresAt":\#(q(date(session.expiresAt))),"createdAt":\#(q(date(session.createdAt))),"#
            + #""updatedAt":\#(q(date(session.createdAt))),"ipAddress":"127.0.0.1","userAgent":"gatehouse mint"},"#
            + #""user":{"id":\#(q(user.id)),"name":\#(q(user.name)),"email":\#(q(user.email)),"#
            + #""emailVerified":\#(user.emailVerified),"image":null,"createdAt":\#(q(date(session.createdAt))),"#
            + #""updatedAt":\#(q(date(session.createdAt)))}}"#
        return Array(body.utf8)
    }

    /// `<token>.<base64 HMAC>`, URL-encoded as `encodeURIComponent` does (`+`, `/`, `=`).
    static func signedValue(_ token: String, secret: [UInt8]) -> String {
        let signature = Base64Standard.encode(HMACSHA256.mac(key: secret, data: Array(token.utf8)))
        return token + "." + PercentEncoding.encodeBase64Characters(signature)
    }

    static func load(path: String) throws(DevKeySet.Problem) -> Store? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard case .success(.object(let document)) = JSONParser.parse(Array(data)),
            let secret = document["secret"]?.stringValue.flatMap(Base64URL.decode), secret.count >= 32,
            let entries = document["sessions"]?.arrayValue
        else { throw .malformed("\(path) is not a sessions file of gatehouse mint --session") }
        let sessions = entries.compactMap { entry -> Session? in
            guard let token = entry["token"]?.stringValue, let id = entry["id"]?.stringValue,
                let userID = entry["userId"]?.stringValue, let name = entry["name"]?.stringValue,
                let email = entry["email"]?.stringValue, let created = entry["createdAt"]?.numberValue,
                let expires = entry["expiresAt"]?.numberValue
            else { return nil }
            return Session(token: token, id: id, user: .init(id: userID, name: name, email: email), createdAt: created, expiresAt: expires)
        }
        return Store(secret: secret, sessions: sessions)
    }

    static func serialize(_ store: Store) -> String {
        let q = JSONText.quoted
        let sessions = store.sessions.map { s in
            #"{"token":\#(q(s.token)),"id":\#(q(s.id)),"userId":\#(q(s.user.id)),"name":\#(q(s.user.name)),"#
                + #""email":\#(q(s.user.email)),"createdAt":\#(Int(s.createdAt)),"expiresAt":\#(Int(s.expiresAt))}"#
        }
        return #"{"secret":\#(q(Base64URL.encode(store.secret))),"sessions":[\#(sessions.joined(separator: ",\n"))]}"# + "\n"
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
        return bytes
    }

    /// 32 characters of `[A-Za-z0-9]`, as Better Auth's `generateId(32)`.
    static func randomToken() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        // 62 * 4 = 248: bytes from 248 up are dropped so every character is equally likely.
        var out: [UInt8] = []
        while out.count < 32 {
            for byte in randomBytes(48) where byte < 248 && out.count < 32 { out.append(alphabet[Int(byte % 62)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
