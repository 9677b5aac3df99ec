import HTTPTypes

/// Where a request's bearer token may be: `Authorization: Bearer` (RFC 6750 §2.1, scheme
/// case-insensitive), and — opt-in, for browser `EventSource`/WebSocket clients that cannot set
/// headers — one cookie and one query parameter (RFC 6750 §2.3). A token in more than one place
/// (or twice in one) is ambiguous and refused (§2: "MUST NOT use more than one method").
struct TokenSources: Sendable {
    let cookie: String?
    let queryParameter: String?

    enum Found: Equatable {
        case none
        case token(Substring)
        case conflicting
    }

    /// The token, and the request target with the token's query parameter removed (so it is
    /// neither forwarded nor logged).
    func find(in fields: HTTPFields, target: String) -> (token: Found, target: String) {
        var tokens: [Substring] = []
        let authorizations = fields[values: .authorization]
        if authorizations.count > 1 { return (.conflicting, Self.removing(queryParameter, from: target).target) }
        if let value = authorizations.first, let token = Self.bearer(value) { tokens.append(token) }

        if let cookie {
            for header in fields[values: .cookie] {
                for pair in header.split(separator: ";") {
                    let trimmed = pair.drop { $0 == " " }
                    guard let equals = trimmed.firstIndex(of: "="), trimmed[..<equals] == cookie else { continue }
                    tokens.append(trimmed[trimmed.index(after: equals)...])
                }
            }
        }
        let (fromQuery, cleaned) = Self.removing(queryParameter, from: target)
        tokens += fromQuery

        switch tokens.count {
        case 0: return (.none, cleaned)
        case 1: return (tokens[0].isEmpty ? .none : .token(tokens[0]), cleaned)
        default: return (.conflicting, cleaned)
        }
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
            if key == name {
                values.append(pair.count > key.count ? pair.dropFirst(key.count + 1) : "")
            } else {
                kept.append(pair)
            }
        }
        guard !values.isEmpty else { return ([], target) }
        let path = target[..<question]
        return (values, kept.isEmpty ? String(path) : path + "?" + kept.joined(separator: "&"))
    }
}
