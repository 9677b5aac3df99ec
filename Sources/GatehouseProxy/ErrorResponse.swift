public import HTTPTypes
public import NIOCore

/// gatehouse's own responses, in FastAPI's error shape (`{"detail": "..."}`,
/// `application/json`) so clients handle them exactly like FastAPI's own errors.
public struct ErrorResponse: Error, Sendable {
    public var status: HTTPResponse.Status
    public var detail: String

    public static let badGateway = ErrorResponse(status: .badGateway, detail: "Upstream unavailable")
    public static let gatewayTimeout = ErrorResponse(status: .gatewayTimeout, detail: "Upstream timed out")
    public static let headersTooLarge = ErrorResponse(status: .requestHeaderFieldsTooLarge, detail: "Request header fields too large")
    public static func badRequest(_ detail: String) -> ErrorResponse { ErrorResponse(status: .badRequest, detail: detail) }

    /// The JSON body. `detail` strings are ours (never client input), but are escaped anyway.
    public var body: ByteBuffer {
        ByteBuffer(string: "{\"detail\":\(JSONText.quoted(detail))}")
    }

    public func head(requestID: String?, closeConnection: Bool) -> HTTPResponse {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(body.readableBytes)
        if let requestID { fields[HTTPField.Name.requestID] = requestID }
        if closeConnection { fields[.connection] = "close" }
        return HTTPResponse(status: status, headerFields: fields)
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-Id")!
}

/// Minimal JSON string encoding (RFC 8259 §7), shared by error bodies and JSON logs.
enum JSONText {
    static func quoted(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
