/// Why a request was refused. Each case is one rule of the parser; its doc comment names the
/// RFC section and the reason the rule is strict.
///
/// Every error is terminal: after a framing error the parser cannot know where the next
/// request starts, so the only safe answer is `status` followed by closing the connection
/// (RFC 9112 §9.6, §11.2). Refusing instead of repairing is the point: a proxy that "fixes" a
/// message which the upstream reads differently is how request smuggling happens.
public enum HTTP1ParseError: Error, Sendable, Equatable {
    // MARK: Request line (RFC 9112 §3)

    /// The method is not `1*tchar` followed by exactly one SP (RFC 9112 §3, RFC 9110 §9.1).
    case invalidMethod
    /// Not `method SP target SP version` (RFC 9112 §3): a missing part, two spaces in a row, or
    /// the HTTP/0.9 form `GET /`. Lenient splitting on "any whitespace" lets two parsers see
    /// different targets (RFC 9112 §3 "SHOULD respond with 400").
    case invalidRequestLine
    /// Only origin-form is served (RFC 9112 §3.2.1): absolute-form is for forward proxies,
    /// authority-form for CONNECT and asterisk-form for `OPTIONS *`, none of which gatehouse is.
    /// Accepting absolute-form would also create a second source of the host besides `Host`.
    case targetNotAbsolutePath
    /// A target byte outside visible ASCII 0x21–0x7E (RFC 9112 §3.2, RFC 3986 §2): SP would
    /// split the line differently elsewhere, CTLs and raw UTF-8 are decoded differently by
    /// different stacks.
    case invalidTargetCharacter
    /// `#` in the target: a fragment is never sent (RFC 9110 §4.2.1, RFC 3986 §3.5); servers
    /// disagree on whether the path ends there, so routing and auth rules could see different paths.
    case fragmentInTarget
    /// The version is not exactly `HTTP/1.1` or `HTTP/1.0` (RFC 9112 §2.3: case-sensitive, one
    /// digit each). Answered with 400, not 505: anything else on this port is not HTTP/1.x.
    case unsupportedVersion

    // MARK: Lines (RFC 9112 §2.2)

    /// A CR not followed by LF. RFC 9112 §2.2 lets a recipient either reject it or treat it as
    /// SP; proxies that choose differently disagree on where a field ends.
    case bareCarriageReturn
    /// A line ended by LF alone. RFC 9112 §2.2 *allows* a recipient to accept it, which is
    /// exactly the disagreement smuggling exploits (one hop ends the head, the next does not).
    case bareLineFeed

    // MARK: Fields (RFC 9112 §5, RFC 9110 §5)

    /// A field name that is not `1*tchar` followed directly by `:` (RFC 9112 §5.1): whitespace
    /// before the colon MUST be rejected with 400, because some parsers strip it and match the
    /// name (`Transfer-Encoding :`) while others keep it and ignore the field.
    case invalidFieldName
    /// A CTL other than HTAB (or DEL) in a field value (RFC 9110 §5.5: field-vchar is VCHAR /
    /// obs-text). NUL in particular truncates values in C consumers.
    case invalidFieldValue
    /// A line that starts with SP or HTAB: obs-fold (RFC 9112 §5.2, a server MUST reject it or
    /// unfold it), or whitespace between the request line and the first field (RFC 9112 §2.2,
    /// MUST reject or ignore). Rejecting keeps one meaning for every line.
    case obsoleteLineFolding
    /// The head (request line, fields and their CRLFs, plus skipped leading empty lines) is
    /// larger than `HTTP1Limits.maxHeadBytes`: 431 (RFC 6585 §5). Bounds the memory a client can
    /// pin before authenticating.
    case headTooLarge
    /// More field lines than `HTTP1Limits.maxFields`: 431 (RFC 6585 §5). Bounds the index of
    /// field ranges (and the work of every lookup) per request.
    case tooManyFields

    // MARK: Host (RFC 9112 §3.2)

    /// No `Host` field. RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without
    /// one; gatehouse asks it of HTTP/1.0 too, since the upstream routes and builds URLs by it.
    case missingHost
    /// More than one `Host` field: RFC 9112 §3.2 MUST 400 — two hops could pick different ones.
    case multipleHosts
    /// A Host value that is not `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2):
    /// `/`, `@`, `?`, `#`, SP or a CTL in it lets the value be re-read as a path or userinfo
    /// when an upstream rebuilds the URL (host header injection).
    case invalidHost

    // MARK: Framing (RFC 9112 §6)

    /// `Content-Length` that is not `1*DIGIT`, does not fit Int64, is a list, or appears more
    /// than once (RFC 9112 §6.3 item 5, RFC 9110 §8.6). RFC 9110 allows folding identical
    /// repeats into one; gatehouse refuses every repeat, because llhttp (uvicorn's httptools
    /// parser) refuses them and the two parsers in one chain must not disagree on framing.
    case invalidContentLength
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.1: MAY be treated as an error
    /// and MUST close afterwards; §6.3 item 3). This is the classic CL.TE / TE.CL smuggling
    /// shape, so it is always an error here.
    case contentLengthWithTransferEncoding
    /// `Transfer-Encoding` in an HTTP/1.0 request: RFC 9112 §6.1 says the framing is faulty and
    /// the connection MUST close; a 1.0 hop would ignore the field and read the body differently.
    case transferEncodingInHTTP10
    /// The final transfer coding is not `chunked` (RFC 9112 §6.3 item 4): the length could only
    /// be known by reading to the close, which a request cannot do. MUST answer 400.
    case transferEncodingNotChunkedLast
    /// Any coding besides one single `chunked` (`gzip, chunked`, `chunked, chunked`): 501, RFC
    /// 9112 §6.1 ("SHOULD respond with 501"). Decoding codings in a proxy is a decompression
    /// bomb risk, and double chunking is a known smuggling vector.
    case unsupportedTransferCoding
    /// An empty element (`chunked,` or `, chunked`) in Transfer-Encoding (RFC 9110 §5.6.1), or an
    /// HTAB anywhere in its value. Parsers disagree on both: empty elements are ignored by some and
    /// refused by others, and llhttp (uvicorn's httptools) does not read `chunked<HTAB>` as chunked
    /// although OWS allows HTAB (RFC 9110 §5.6.3). On the field that decides the framing, only the
    /// spelling every parser reads alike is accepted.
    case invalidTransferEncoding

    // MARK: Chunked body (RFC 9112 §7.1)

    /// The chunk size is not `1*HEXDIG`, has more than 16 digits, or does not fit Int64
    /// (RFC 9112 §7.1: a recipient MUST anticipate large sizes and prevent overflow). A
    /// truncated size is the chunked-smuggling primitive.
    case invalidChunkSize
    /// Chunk extensions that are not `*( ";" token [ "=" ( token / quoted-string ) ] )`
    /// (RFC 9112 §7.1.1). The BWS the RFC allows around `;` and `=` is refused: llhttp and h11
    /// refuse it, and any byte two parsers read differently in a chunk line moves the body.
    case invalidChunkExtension
    /// A chunk line (size and extensions) longer than `HTTP1Limits.maxChunkLineBytes`: 400.
    /// Unbounded extensions are a memory and CPU sink (RFC 9112 §7.1.1 lets a server limit them).
    case chunkLineTooLong
    /// Chunk data not followed by exactly CRLF (RFC 9112 §7.1): the size and the data disagree,
    /// so where the next chunk starts is unknown.
    case missingCRLFAfterChunkData
    /// The trailer section is longer than `HTTP1Limits.maxTrailerBytes`: 431, the same answer
    /// as for too large a head, since trailers are fields too (RFC 9112 §7.1.2, RFC 6585 §5).
    case trailersTooLarge

    /// The status code to answer with before closing: 400, or 431 for the size limits of the
    /// fields, or 501 for a transfer coding gatehouse does not implement.
    public var status: Int {
        switch self {
        case .headTooLarge, .tooManyFields, .trailersTooLarge: 431
        case .unsupportedTransferCoding: 501
        default: 400
        }
    }

    /// A short, fixed explanation, safe to send to the client (it never echoes input).
    public var detail: String {
        switch self {
        case .invalidMethod: "Invalid method"
        case .invalidRequestLine: "Malformed request line"
        case .targetNotAbsolutePath: "Request target must be an absolute path"
        case .invalidTargetCharacter: "Invalid character in request target"
        case .fragmentInTarget: "Fragment in request target"
        case .unsupportedVersion: "Unsupported HTTP version"
        case .bareCarriageReturn: "Bare CR in request (lines must end with CRLF)"
        case .bareLineFeed: "Bare LF in request (lines must end with CRLF)"
        case .invalidFieldName: "Invalid header field name"
        case .invalidFieldValue: "Invalid character in header field value"
        case .obsoleteLineFolding: "Obsolete line folding in header"
        case .headTooLarge: "Request header fields too large"
        case .tooManyFields: "Too many header fields"
        case .missingHost: "Missing Host header"
        case .multipleHosts: "Multiple Host headers"
        case .invalidHost: "Invalid Host header"
        case .invalidContentLength: "Invalid Content-Length"
        case .contentLengthWithTransferEncoding: "Both Content-Length and Transfer-Encoding"
        case .transferEncodingInHTTP10: "Transfer-Encoding in an HTTP/1.0 request"
        case .transferEncodingNotChunkedLast: "Transfer-Encoding must end with chunked"
        case .unsupportedTransferCoding: "Transfer-Encoding other than chunked"
        case .invalidTransferEncoding: "Invalid Transfer-Encoding"
        case .invalidChunkSize: "Invalid chunk size"
        case .invalidChunkExtension: "Invalid chunk extension"
        case .chunkLineTooLong: "Chunk line too long"
        case .missingCRLFAfterChunkData: "Chunk data not followed by CRLF"
        case .trailersTooLarge: "Trailer fields too large"
        }
    }
}
