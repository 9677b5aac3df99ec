public import JOSE

#if canImport(Glibc)
import Glibc
#endif

/// What FastAPI learns about a live session: the claims built from get-session's answer, and
/// the identity headers made from them, computed once per lookup.
public struct SessionIdentity: Sendable {
    public var identityHeaders: [(name: String, value: String)]
    public var sub: String
    public var claims: JWTClaims
    /// `session.expiresAt`, seconds since the epoch.
    public var expiresAt: Double
}

/// The decision about one session credential.
public enum SessionVerdict: Sendable {
    case live(SessionIdentity)
    /// get-session answered `null`: no such session (or a bad signature).
    case notFound
    /// get-session answered a session whose `expiresAt` has passed.
    case expired
    /// Better Auth down, slow, answering 5xx or something that is not its get-session shape:
    /// 503, never 401 (a client treats 401 as "sign in again").
    case unavailable
    /// `GATEHOUSE_SESSION_MAX_LOOKUPS` are already in flight: 503.
    case overloaded

    /// The `gatehouse_session_lookups_total` result label.
    public var label: String {
        switch self {
        case .live: "found"
        case .notFound: "not_found"
        case .expired: "expired"
        case .unavailable: "unavailable"
        case .overloaded: "overloaded"
        }
    }
}

/// Reads Better Auth's `GET /api/auth/get-session` answer (better-auth 1.4.19,
/// `api/routes/session.ts`): `null` (status 200, or 401 on one branch) when there is no
/// session; otherwise `{"session":{…},"user":{…}}` with dates as ISO 8601 strings.
public enum BetterAuthSession {
    /// The largest answer read: a user object is a few KiB, but `image` may be a data: URL.
    public static let maxAnswerBytes = 1024 * 1024

    /// The verdict for an answer. Claims follow the JWT plugin's payload: every member of
    /// `user`, plus `sub` = `user.id`, `sid` = `session.id`, `exp` = `session.expiresAt` in
    /// epoch seconds. Nothing of `session` but its id and expiry is kept: `session.token` is the
    /// raw credential and must reach no header, claim or log.
    public static func verdict(status: Int, body: [UInt8], now: Double, settings: AuthSettings) -> SessionVerdict {
        guard status == 200 || status == 401 else { return .unavailable }
        guard case .success(let answer) = JSONParser.parse(body) else { return .unavailable }
        if answer == .null { return .notFound }
        guard status == 200, case .object(let user)? = answer["user"], let session = answer["session"],
            let userID = user["id"]?.stringValue, !userID.isEmpty,
            let sessionID = session["id"]?.stringValue, !sessionID.isEmpty,
            let expiresText = session["expiresAt"]?.stringValue, let expiresAt = parseDate(expiresText)
        else { return .unavailable }
        if expiresAt <= now { return .expired }
        var members = user
        members["sub"] = .string(userID)
        members["sid"] = .string(sessionID)
        members["exp"] = .int(Int64(expiresAt.rounded(.down)))
        let claims = JWTClaims(members)
        let headers = settings.identityHeaders(
            claims: claims, payloadBase64URL: Base64URL.encode(Array(JSONText.serialize(members: claims.members).utf8)),
            method: "session")
        return .live(SessionIdentity(identityHeaders: headers, sub: userID, claims: claims, expiresAt: expiresAt))
    }

    /// `2026-12-09T13:00:00.000Z` (JavaScript's `Date.toISOString`, what Better Auth sends):
    /// seconds since the epoch, or nil for any other form.
    public static func parseDate(_ text: String) -> Double? {
        let b = Array(text.utf8)
        guard b.count >= 20, b.last == UInt8(ascii: "Z"), b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
            b[10] == UInt8(ascii: "T"), b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":")
        else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for i in range {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                value = value * 10 + Int(b[i] - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var fraction = 0.0
        if b.count > 20 {
            guard b[19] == UInt8(ascii: "."), b.count <= 30, let digits = number(20..<(b.count - 1)) else { return nil }
            fraction = Double(digits) / pow(10, Double(b.count - 21))
        } else if b[19] != UInt8(ascii: "Z") {
            return nil
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        return Double(timegm(&parts)) + fraction
    }
}

extension AuthSettings {
    /// `GATEHOUSE_CLAIM_HEADERS`, `GATEHOUSE_CLAIMS_HEADER` and `X-Auth-Method` for a verified
    /// identity, JWT or session alike. Only strings, numbers and booleans become headers; a
    /// value with control characters is dropped rather than sanitised (it would smuggle header
    /// syntax or lie about the value; a tab too). Spaces around a value are removed: RFC 9110
    /// §5.5 makes them no part of a field value, HTTP servers strip them, and the identity
    /// signature must cover the value the app reads.
    func identityHeaders(claims: JWTClaims, payloadBase64URL: String, method: String) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(claimHeaders.count + 2)
        for claimHeader in claimHeaders {
            guard let raw = claims.value(at: claimHeader.path).flatMap(Authenticator.headerText),
                !raw.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
            else { continue }
            let text = Self.trimmingSpaces(raw)
            guard !text.isEmpty else { continue }
            headers.append((claimHeader.header, text))
        }
        if let claimsHeader { headers.append((claimsHeader, payloadBase64URL)) }
        headers.append(("X-Auth-Method", method))
        return headers
    }

    static func trimmingSpaces(_ text: String) -> String {
        guard let first = text.firstIndex(where: { $0 != " " }), let last = text.lastIndex(where: { $0 != " " }) else { return "" }
        return first == text.startIndex && last == text.index(before: text.endIndex) ? text : String(text[first...last])
    }
}
