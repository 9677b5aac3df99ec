import JOSE
public import HTTPTypes

/// gatehouse's own responses, in FastAPI's error shape (`{"detail": "..."}`,
/// `application/json`) so clients handle them exactly like FastAPI's own errors.
public struct ErrorResponse: Error, Sendable {
    public var status: HTTPResponse.Status
    public var detail: String
    /// Extra fields such as `WWW-Authenticate` or `Retry-After`.
    public var headers: [HTTPField] = []

    public init(status: HTTPResponse.Status, detail: String, headers: [HTTPField] = []) {
        self.status = status
        self.detail = detail
        self.headers = headers
    }

    public static let badGateway = ErrorResponse(status: .badGateway, detail: "Upstream unavailable")
    public static let gatewayTimeout = ErrorResponse(status: .gatewayTimeout, detail: "Upstream timed out")
    public static let headersTooLarge = ErrorResponse(status: .requestHeaderFieldsTooLarge, detail: "Request header fields too large")
    public static func badRequest(_ detail: String) -> ErrorResponse { ErrorResponse(status: .badRequest, detail: detail) }

    // RFC 6750 §3: the Bearer challenge. Without a token the challenge carries no error code
    // (§3.1: the client may not know it needs one); a bad token gets `invalid_token` and a
    // description from a fixed vocabulary, never token content.
    public static let notAuthenticated = ErrorResponse(
        status: .unauthorized, detail: "Not authenticated",
        headers: [HTTPField(name: .wwwAuthenticate, value: #"Bearer realm="gatehouse""#)])

    public static func invalidToken(_ description: String) -> ErrorResponse {
        ErrorResponse(
            status: .unauthorized, detail: "Invalid token: \(description)",
            headers: [HTTPField(name: .wwwAuthenticate,
                value: #"Bearer realm="gatehouse", error="invalid_token", error_description=""# + description + #"""#)])
    }

    public static let tokenSentTwice = ErrorResponse(
        status: .badRequest, detail: "Token sent more than one way",
        headers: [HTTPField(name: .wwwAuthenticate, value: #"Bearer realm="gatehouse", error="invalid_request""#)])

    public static let keysUnavailable = ErrorResponse(
        status: .serviceUnavailable, detail: "Authentication keys unavailable",
        headers: [HTTPField(name: .retryAfter, value: "5")])

    /// Better Auth could not say whether a session lives (down, slow, 5xx, garbage, or too
    /// many lookups at once). Never 401: a client treats 401 as "sign in again".
    public static let sessionServiceUnavailable = ErrorResponse(
        status: .serviceUnavailable, detail: "Authentication service unavailable",
        headers: [HTTPField(name: .retryAfter, value: "5")])

    /// A session-cookie write whose `Origin` (or `Referer`) is not trusted (`SessionPolicy`).
    public static let crossSiteRefused = ErrorResponse(status: .forbidden, detail: "Cross-site request refused")

    // RFC 6750 §3.1: a valid token whose claims do not meet the route's rule.
    public static let forbidden = ErrorResponse(
        status: .forbidden, detail: "Forbidden",
        headers: [HTTPField(name: .wwwAuthenticate, value: #"Bearer realm="gatehouse", error="insufficient_scope""#)])

    /// `GATEHOUSE_CORS_PREFLIGHT=reject`: sent without any `Access-Control-*` field, so the
    /// browser fails the preflight and never sends the real request.
    public static let preflightRejected = ErrorResponse(status: .forbidden, detail: "CORS preflight not allowed")

    /// A path route rules cannot match unambiguously (see `RoutePath`).
    public static let invalidPath = ErrorResponse(status: .badRequest, detail: "Invalid request path")

    /// The JSON body. `detail` strings are ours (never client input), but are escaped anyway.
    public var body: [UInt8] {
        Array("{\"detail\":\(JSONText.quoted(detail))}".utf8)
    }

    /// `cors`: `CORSPolicy.responseFields` for the request's origin.
    public func head(requestID: String?, closeConnection: Bool, cors: [HTTPField] = []) -> HTTPResponse {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(body.count)
        if let requestID { fields[HTTPField.Name.requestID] = requestID }
        if closeConnection { fields[.connection] = "close" }
        fields.append(contentsOf: headers)
        fields.append(contentsOf: cors)
        return HTTPResponse(status: status, headerFields: fields)
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-Id")!
}
