import HTTPTypes
import GatehouseUpstream

import GatehouseAuth
import JOSE

/// Where a request's credential may be: `Authorization: Bearer` (RFC 6750 §2.1, scheme
/// case-insensitive), and — opt-in, for browser `EventSource`/WebSocket clients that cannot set
/// headers — one cookie and one query parameter (RFC 6750 §2.3). A token in more than one place
/// (or twice in one) is ambiguous and refused (§2: "MUST NOT use more than one method").
///
/// With Better Auth sessions on (`GATEHOUSE_SESSIONS`), in this order:
/// 1. an `Authorization` header decides alone: a bearer value with exactly two dots is a
///    compact JWS (RFC 7515 §7.1), any other is a session token when sessions include
///    `bearer` (a signed session token has one dot, a bare one none, so the two never look
///    alike);
/// 2. then the JWT cookie and query parameter, as without sessions;
/// 3. the session cookie only when none of the above is present, so a browser's cookie beside
///    a bearer header is never "sent two ways": the header wins.
struct TokenSources: Sendable {
    let cookie: String?
    let queryParameter: String?
    /// The session cookie's name when sessions include `cookie`.
    var sessionCookie: String? = nil
    var sessionBearer = false

    enum Found: Equatable {
        case none
        case token(Substring)
        case session(SessionCredential)
        case conflicting
    }

    /// The credential, and the request target with the token's query parameter removed (so it
    /// is neither forwarded nor logged).
    func find(in fields: HTTPFields, target: String) -> (token: Found, target: String) {
        var tokens: [Substring] = []
        var bearerSession: Substring?
        let authorizations = fields[values: .authorization]
        if authorizations.count > 1 { return (.conflicting, Self.removing(queryParameter, from: target).target) }
        if let value = authorizations.first, let token = Self.bearer(value) {
            if sessionBearer, !Self.isCompactJWS(token) { bearerSession = token } else { tokens.append(token) }
        }

        if let cookie {
            for header in fields[values: .cookie] {
                for pair in header.split(separator: ";") where Self.isCookie(pair, named: cookie) {
                    tokens.append(pair[pair.index(after: pair.firstIndex(of: "=")!)...].droppingSpaces())
                }
            }
        }
        let (fromQuery, cleaned) = Self.removing(queryParameter, from: target)
        tokens += fromQuery

        if let bearerSession {
            return (tokens.isEmpty ? .session(SessionCredential(kind: .bearer, value: bearerSession)) : .conflicting, cleaned)
        }
        switch tokens.count {
        case 0:
            guard authorizations.isEmpty, let sessionCookie else { return (.none, cleaned) }
            return (sessionCookieCredential(named: sessionCookie, in: fields), cleaned)
        case 1: return (tokens[0].isEmpty ? .none : .token(tokens[0]), cleaned)
        default: return (.conflicting, cleaned)
        }
    }

    /// The session cookie, if sent once; a second copy (another path or domain) is ambiguous.
    private func sessionCookieCredential(named name: String, in fields: HTTPFields) -> Found {
        var found: Substring?
        for header in fields[values: .cookie] {
            for pair in header.split(separator: ";") where Self.isCookie(pair, named: name) {
                if found != nil { return .conflicting }
                found = pair[pair.index(after: pair.firstIndex(of: "=")!)...].droppingSpaces()
            }
        }
        guard let found, !found.isEmpty else { return .none }
        return .session(SessionCredential(kind: .cookie, value: found))
    }

    /// A compact JWS has exactly three dot-separated parts (RFC 7515 §7.1).
    static func isCompactJWS(_ value: Substring) -> Bool {
        var dots = 0
        for byte in value.utf8 where byte == UInt8(ascii: ".") { dots += 1 }
        return dots == 2
    }

    /// The name of one `name=value` pair of a `Cookie` header as Starlette reads it: with the
    /// whitespace around it (spaces and tabs, which Python's `str.strip` drops) ignored. nil
    /// for a pair without `=`.
    static func cookieName(of pair: Substring) -> Substring? {
        guard let equals = pair.firstIndex(of: "=") else { return nil }
        return pair[..<equals].droppingSpaces()
    }

    /// Whether one pair of a `Cookie` header is the cookie `name`.
    static func isCookie(_ pair: Substring, named name: String) -> Bool {
        cookieName(of: pair).map { $0 == name } ?? false
    }

    /// `Bearer <token>` → the token; any other scheme → nil (counts as no token).
    static func bearer(_ value: String) -> Substring? {
        guard let space = value.firstIndex(of: " ") else { return nil }
        guard value[..<space].lowercased() == "bearer" else { return nil }
        let token = value[value.index(after: space)...].drop { $0 == " " }
        return token.isEmpty ? nil : token
    }

    /// Splits `name=value` pairs for `name` out of the query; everything else stays byte for byte.
    static func removing(_ name: String?, from target: String) -> (values: [Substring], target: String) {
        guard let name, let question = target.firstIndex(of: "?") else { return ([], target) }
        let query = target[target.index(after: question)...]
        var values: [Substring] = []
        var kept: [Substring] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: false) {
            let key = pair.prefix { $0 != "=" }
            // FastAPI reads names percent-decoded (`%61ccess_token` is `access_token`).
            if key == name || (key.contains { $0 == "%" || $0 == "+" } && Self.formDecoded(key) == name) {
                values.append(pair.count > key.count ? pair.dropFirst(key.count + 1) : "")
            } else {
                kept.append(pair)
            }
        }
        guard !values.isEmpty else { return ([], target) }
        let path = target[..<question]
        return (values, kept.isEmpty ? String(path) : path + "?" + kept.joined(separator: "&"))
    }

    /// A query component decoded as `application/x-www-form-urlencoded` (what Starlette's
    /// `parse_qsl` does): `+` is a space, `%XX` a byte; a `%` not followed by two hex digits
    /// stays as it is.
    static func formDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if utf8[i] == UInt8(ascii: "%"), i + 2 < utf8.count,
                let high = PercentEncoding.hexValue(utf8[i + 1]), let low = PercentEncoding.hexValue(utf8[i + 2])
            {
                bytes.append(high << 4 | low)
                i += 2
            } else {
                bytes.append(utf8[i])
            }
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
