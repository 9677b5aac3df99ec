/// Size limits. Each bounds what one client can make the parser (and its caller's buffer) hold.
public struct HTTP1Limits: Sendable, Equatable {
    /// Request line + field lines + all their CRLFs (and skipped leading empty lines); above it 431.
    public var maxHeadBytes: Int
    /// Field lines in one head; above it 431.
    public var maxFields: Int
    /// Chunk size plus extensions, without the CRLF; above it 400.
    public var maxChunkLineBytes: Int
    /// The whole trailer section, including its final empty line; above it 431.
    public var maxTrailerBytes: Int

    public init(maxHeadBytes: Int = 16384, maxFields: Int = 256,
                maxChunkLineBytes: Int = 4096, maxTrailerBytes: Int = 16384) {
        self.maxHeadBytes = maxHeadBytes
        self.maxFields = maxFields
        self.maxChunkLineBytes = maxChunkLineBytes
        self.maxTrailerBytes = maxTrailerBytes
    }

    /// Every limit in 0...Int32.max: field offsets are stored as Int32, and `offset + limit`
    /// must never overflow.
    var clamped: HTTP1Limits {
        func clamp(_ value: Int) -> Int { min(max(value, 0), Int(Int32.max)) }
        return HTTP1Limits(maxHeadBytes: clamp(maxHeadBytes), maxFields: clamp(maxFields),
                           maxChunkLineBytes: clamp(maxChunkLineBytes), maxTrailerBytes: clamp(maxTrailerBytes))
    }
}

public enum HTTP1ParseEvent: Sendable {
    /// Nothing more can be decided without more bytes.
    case needMore
    /// A complete, validated head; `consumed` is its length (plus skipped leading empty lines).
    case head(HTTP1RequestHead)
    /// Body content at these offsets of `input`, chunk framing removed; never empty.
    case body(Range<Int>)
    /// The message is complete; the next call parses the next (pipelined) request.
    case end
    /// Terminal: answer `error.status` and close. Every later call returns the same error.
    case error(HTTP1ParseError)
}

public struct HTTP1ParseStep: Sendable {
    public var event: HTTP1ParseEvent
    /// How many bytes at the start of `input` the caller drops before the next call.
    public var consumed: Int

    public init(event: HTTP1ParseEvent, consumed: Int) {
        self.event = event
        self.consumed = consumed
    }
}

/// A strict, streaming HTTP/1.1 request parser (RFC 9112): an explicit state machine over the
/// caller's bytes. It never copies partial input and never allocates per byte; a head costs
/// one `[UInt8]` copy and one array of field ranges, a body costs nothing (ranges into `input`).
///
/// The caller owns the buffer. Each call gets the bytes not consumed so far (plus anything new)
/// and returns one event and a count of bytes to drop:
///
///     loop: step = parser.parse(unconsumed)
///           drop step.consumed bytes; act on step.event
///           .needMore → read more, then call again; .error → answer and close; else call again
///
/// While a head, a chunk line or a trailer line is incomplete its bytes are not consumed (the
/// caller keeps them); the parser remembers how far it has checked them and resumes there, so
/// a head that arrives a byte at a time is still scanned once (O(n)). During a chunked body
/// `.needMore` may consume framing bytes (a chunk's CRLF, finished trailer lines). `.end` and
/// a bodiless message's completion need no bytes: call again even with empty input.
///
/// Sequence of states:  head → [fixed-length body | chunk line → chunk data → CRLF → … →
/// last chunk → trailer section] → message complete → head …, or → failed from anywhere.
public struct HTTP1RequestParser: Sendable {
    enum State: Sendable {
        case head
        case fixedLengthBody(remaining: Int64)
        case chunkLine
        case chunkData(remaining: Int64)
        case chunkDataCRLF
        case trailerSection
        case messageComplete
        case failed(HTTP1ParseError)
    }

    public let limits: HTTP1Limits
    var state = State.head
    /// Where scanning of the current line resumes, as an offset into the next call's `input`.
    var resumeOffset = 0
    // The head in progress (offsets into `input`, which starts at the head until it is complete).
    var lineStart = 0
    /// The request line's first byte, or -1 while it is incomplete (or only empty lines came).
    var headStart = -1
    var requestLine = RequestLine()
    /// Field spans of the head in progress; reused, so its capacity survives across requests.
    var fieldScratch: [FieldSpan] = []
    var trailerBytes = 0

    public init(limits: HTTP1Limits = .init()) {
        self.limits = limits.clamped
    }

    public mutating func parse(_ input: UnsafeRawBufferPointer) -> HTTP1ParseStep {
        switch state {
        case .head:
            return parseHead(input)
        case .fixedLengthBody(let remaining):
            // RFC 9112 §6.2: exactly Content-Length octets; whatever follows is the next request.
            guard !input.isEmpty else { return Self.needMore(consumed: 0) }
            let count = Int(min(Int64(input.count), remaining))
            state = Int64(count) == remaining ? .messageComplete : .fixedLengthBody(remaining: remaining - Int64(count))
            return HTTP1ParseStep(event: .body(0..<count), consumed: count)
        case .chunkLine, .chunkData, .chunkDataCRLF, .trailerSection:
            return parseChunkedBody(input)
        case .messageComplete:
            state = .head
            return HTTP1ParseStep(event: .end, consumed: 0)
        case .failed(let error):
            return HTTP1ParseStep(event: .error(error), consumed: 0)
        }
    }

    static func needMore(consumed: Int) -> HTTP1ParseStep { HTTP1ParseStep(event: .needMore, consumed: consumed) }

    mutating func fail(_ error: HTTP1ParseError) -> HTTP1ParseStep {
        state = .failed(error)
        fieldScratch = []
        return HTTP1ParseStep(event: .error(error), consumed: 0)
    }

    mutating func resetHeadProgress() {
        resumeOffset = 0
        lineStart = 0
        headStart = -1
        fieldScratch.removeAll(keepingCapacity: true)
    }
}

// MARK: - Head (RFC 9112 §2.2, §3, §5)

extension HTTP1RequestParser {
    /// One complete line at a time: the request line, then field lines, up to the empty line.
    /// Nothing is consumed until the head is complete; `lineStart`/`resumeOffset` carry the scan
    /// across calls. `maxHeadBytes` is the scan limit, so an oversized head fails as soon as its
    /// limit is passed rather than when it ends.
    mutating func parseHead(_ input: UnsafeRawBufferPointer) -> HTTP1ParseStep {
        if resumeOffset > input.count {
            // The caller dropped bytes we had scanned (a contract breach): start the head again
            // rather than read out of bounds.
            resetHeadProgress()
        }
        while true {
            switch scanLine(input, from: resumeOffset, limit: limits.maxHeadBytes) {
            case .incomplete(let resumeAt):
                resumeOffset = resumeAt
                return Self.needMore(consumed: 0)
            case .tooLong:
                return fail(.headTooLarge)
            case .invalid(let fault, let position):
                return fail(headLineError(fault, input, lineStart..<position))
            case .complete(let contentEnd):
                let line = lineStart..<contentEnd
                lineStart = contentEnd + 2
                resumeOffset = lineStart
                if headStart < 0 {
                    // RFC 9112 §2.2: a server SHOULD ignore empty lines before the request line
                    // (clients that send CRLF after a POST body); they count towards maxHeadBytes.
                    if line.isEmpty { continue }
                    switch parseRequestLine(input, line) {
                    case .success(let parsed): requestLine = parsed
                    case .failure(let error): return fail(error)
                    }
                    headStart = line.lowerBound
                } else if line.isEmpty {
                    return completeHead(input, end: lineStart)
                } else if let error = addField(input, line) {
                    return fail(error)
                }
            }
        }
    }

    /// Maps a fault found by the line scan to the rule of the part of the head it is in.
    func headLineError(_ fault: LineFault, _ input: UnsafeRawBufferPointer, _ before: Range<Int>) -> HTTP1ParseError {
        switch fault {
        case .bareCarriageReturn: return .bareCarriageReturn
        case .bareLineFeed: return .bareLineFeed
        case .controlCharacter:
            guard headStart < 0 else { return fieldLineControlError(input, before) }
            let spaces = before.reduce(0) { $0 + (input[$1] == ASCII.space ? 1 : 0) }
            return spaces == 0 ? .invalidMethod : spaces == 1 ? .invalidTargetCharacter : .invalidRequestLine
        }
    }

    /// request-line = method SP request-target SP HTTP-version (RFC 9112 §3). The version is
    /// after the *last* SP, so a SP inside the target is reported as a bad target character.
    func parseRequestLine(_ input: UnsafeRawBufferPointer, _ line: Range<Int>) -> Result<RequestLine, HTTP1ParseError> {
        var index = line.lowerBound
        while index < line.upperBound, isTokenByte(input[index]) { index += 1 }
        let methodEnd = index
        guard methodEnd < line.upperBound else { return .failure(.invalidRequestLine) }
        guard methodEnd > line.lowerBound, input[methodEnd] == ASCII.space else { return .failure(.invalidMethod) }
        let targetStart = methodEnd + 1
        var versionStart = line.upperBound
        while versionStart > targetStart, input[versionStart - 1] != ASCII.space { versionStart -= 1 }
        let targetEnd = versionStart - 1
        guard versionStart > targetStart, targetEnd > targetStart, input[targetStart] != ASCII.space else {
            return .failure(.invalidRequestLine)
        }

        // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3).
        let version: HTTP1Version
        if line.upperBound - versionStart == 8, matches(input, at: versionStart, "HTTP/1.") {
            switch input[versionStart + 7] {
            case UInt8(ascii: "1"): version = .http11
            case UInt8(ascii: "0"): version = .http10
            default: return .failure(.unsupportedVersion)
            }
        } else {
            return .failure(.unsupportedVersion)
        }

        // origin-form = absolute-path [ "?" query ] (RFC 9112 §3.2.1).
        guard input[targetStart] == ASCII.slash else { return .failure(.targetNotAbsolutePath) }
        for position in targetStart..<targetEnd {
            let byte = input[position]
            guard byte > ASCII.space, byte < ASCII.delete else { return .failure(.invalidTargetCharacter) }
            guard byte != ASCII.hash else { return .failure(.fragmentInTarget) }
        }
        let base = line.lowerBound
        return .success(RequestLine(methodEnd: Int32(methodEnd - base), targetStart: Int32(targetStart - base),
                                    targetEnd: Int32(targetEnd - base), version: version))
    }

    func matches(_ input: UnsafeRawBufferPointer, at start: Int, _ literal: StaticString) -> Bool {
        let bytes = literal.utf8Start
        for offset in 0..<literal.utf8CodeUnitCount where input[start + offset] != bytes[offset] { return false }
        return true
    }

    /// Checks a field line and records its span (relative to the request line's first byte).
    mutating func addField(_ input: UnsafeRawBufferPointer, _ line: Range<Int>) -> HTTP1ParseError? {
        switch parseFieldLine(input, line) {
        case .failure(let error):
            return error
        case .success(let field):
            guard fieldScratch.count < limits.maxFields else { return .tooManyFields }
            if fieldScratch.capacity == 0 { fieldScratch.reserveCapacity(min(limits.maxFields, 32)) }
            fieldScratch.append(FieldSpan(
                nameStart: Int32(line.lowerBound - headStart), nameEnd: Int32(field.nameEnd - headStart),
                valueStart: Int32(field.value.lowerBound - headStart), valueEnd: Int32(field.value.upperBound - headStart)))
            return nil
        }
    }

    /// The empty line arrived: decide what the fields mean (on `input`, so a refused head costs no
    /// allocation), then copy the head out and move on to its body.
    mutating func completeHead(_ input: UnsafeRawBufferPointer, end: Int) -> HTTP1ParseStep {
        let headBytes = UnsafeRawBufferPointer(rebasing: input[headStart..<end])
        let semantics: HeadSemantics
        switch HTTP1RequestHead.analyze(headBytes, fields: fieldScratch, version: requestLine.version) {
        case .success(let value): semantics = value
        case .failure(let error): return fail(error)
        }
        // The head takes the scratch's storage; the reset below gives the scratch a fresh buffer of
        // the same capacity. With the copy of the bytes, that is all a request allocates.
        let head = HTTP1RequestHead(raw: [UInt8](headBytes), requestLine: requestLine,
                                    fields: fieldScratch, semantics: semantics)
        resetHeadProgress()
        switch semantics.framing {
        case .none, .contentLength(0): state = .messageComplete
        case .contentLength(let length): state = .fixedLengthBody(remaining: length)
        case .chunked: state = .chunkLine
        }
        return HTTP1ParseStep(event: .head(head), consumed: end)
    }
}

// MARK: - Field lines, shared by the head and the trailer section (RFC 9112 §5)

struct FieldLine {
    /// The colon's offset: the name is `line.lowerBound..<nameEnd`.
    var nameEnd: Int
    var value: Range<Int>
}

/// field-line = field-name ":" OWS field-value OWS (RFC 9112 §5). The line scan already refused
/// CTLs and DEL, so every remaining value byte is field-vchar, SP or HTAB (RFC 9110 §5.5).
func parseFieldLine(_ input: UnsafeRawBufferPointer, _ line: Range<Int>) -> Result<FieldLine, HTTP1ParseError> {
    guard !isOptionalWhitespace(input[line.lowerBound]) else { return .failure(.obsoleteLineFolding) }
    var index = line.lowerBound
    while index < line.upperBound, isTokenByte(input[index]) { index += 1 }
    guard index > line.lowerBound, index < line.upperBound, input[index] == ASCII.colon else {
        return .failure(.invalidFieldName)
    }
    return .success(FieldLine(nameEnd: index, value: trimmingWhitespace(input, (index + 1)..<line.upperBound)))
}

/// A control character in a field line is in the name if no colon came before it.
func fieldLineControlError(_ input: UnsafeRawBufferPointer, _ before: Range<Int>) -> HTTP1ParseError {
    before.contains { input[$0] == ASCII.colon } ? .invalidFieldValue : .invalidFieldName
}

// MARK: - Chunked body (RFC 9112 §7.1)

extension HTTP1RequestParser {
    /// Walks the chunk framing until it has body bytes to hand out, the message ends, or it
    /// needs more. `position` counts the framing bytes consumed in this call; an incomplete chunk
    /// line or trailer line starts at `position` and is left unconsumed.
    mutating func parseChunkedBody(_ input: UnsafeRawBufferPointer) -> HTTP1ParseStep {
        var position = 0
        while true {
            switch state {
            case .chunkLine:
                let limit = position + limits.maxChunkLineBytes + 2
                switch scanLine(input, from: position + resumeOffset, limit: limit) {
                case .incomplete(let resumeAt):
                    resumeOffset = resumeAt - position
                    return Self.needMore(consumed: position)
                case .tooLong:
                    return fail(.chunkLineTooLong)
                case .invalid(let fault, let at):
                    switch fault {
                    case .bareCarriageReturn: return fail(.bareCarriageReturn)
                    case .bareLineFeed: return fail(.bareLineFeed)
                    case .controlCharacter:
                        let inExtension = (position..<at).contains { input[$0] == ASCII.semicolon }
                        return fail(inExtension ? .invalidChunkExtension : .invalidChunkSize)
                    }
                case .complete(let contentEnd):
                    let size: Int64
                    switch parseChunkLine(input, position..<contentEnd) {
                    case .success(let value): size = value
                    case .failure(let error): return fail(error)
                    }
                    position = contentEnd + 2
                    resumeOffset = 0
                    if size == 0 {
                        trailerBytes = 0
                        state = .trailerSection
                    } else {
                        state = .chunkData(remaining: size)
                    }
                }

            case .chunkData(let remaining):
                let available = input.count - position
                guard available > 0 else { return Self.needMore(consumed: position) }
                let count = Int(min(Int64(available), remaining))
                state = Int64(count) == remaining ? .chunkDataCRLF : .chunkData(remaining: remaining - Int64(count))
                return HTTP1ParseStep(event: .body(position..<(position + count)), consumed: position + count)

            case .chunkDataCRLF:
                // chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF: exactly CRLF, checked
                // byte by byte so a wrong byte fails before the next arrives.
                let available = input.count - position
                if available >= 1, input[position] != ASCII.cr { return fail(.missingCRLFAfterChunkData) }
                if available >= 2, input[position + 1] != ASCII.lf { return fail(.missingCRLFAfterChunkData) }
                guard available >= 2 else { return Self.needMore(consumed: position) }
                position += 2
                state = .chunkLine

            case .trailerSection:
                // trailer-section = *( field-line CRLF ), then CRLF (RFC 9112 §7.1.2). Trailer
                // fields are checked like head fields and dropped: gatehouse forwards none, and a
                // recipient may discard them (RFC 9110 §6.5.1).
                let limit = position + (limits.maxTrailerBytes - trailerBytes)
                switch scanLine(input, from: position + resumeOffset, limit: limit) {
                case .incomplete(let resumeAt):
                    resumeOffset = resumeAt - position
                    return Self.needMore(consumed: position)
                case .tooLong:
                    return fail(.trailersTooLarge)
                case .invalid(let fault, let at):
                    switch fault {
                    case .bareCarriageReturn: return fail(.bareCarriageReturn)
                    case .bareLineFeed: return fail(.bareLineFeed)
                    case .controlCharacter: return fail(fieldLineControlError(input, position..<at))
                    }
                case .complete(let contentEnd):
                    let next = contentEnd + 2
                    trailerBytes += next - position
                    resumeOffset = 0
                    if contentEnd == position {
                        state = .head
                        return HTTP1ParseStep(event: .end, consumed: next)
                    }
                    if case .failure(let error) = parseFieldLine(input, position..<contentEnd) { return fail(error) }
                    position = next
                }

            case .head, .fixedLengthBody, .messageComplete, .failed:
                // Not reachable: only the four chunked states loop here, and the trailer
                // section returns `.end` itself.
                return Self.needMore(consumed: position)
            }
        }
    }

    /// chunk-size [ chunk-ext ] (RFC 9112 §7.1, §7.1.1) without BWS:
    /// `1*HEXDIG *( ";" token [ "=" ( token / quoted-string ) ] )`. Returns the size.
    func parseChunkLine(_ input: UnsafeRawBufferPointer, _ line: Range<Int>) -> Result<Int64, HTTP1ParseError> {
        var index = line.lowerBound
        var size: Int64 = 0
        while index < line.upperBound, let digit = hexValue(input[index]) {
            // At most 16 digits, and the value must fit Int64: leading zeros do not get a pass,
            // so no parser can truncate a long size to a different short one.
            guard index - line.lowerBound < 16 else { return .failure(.invalidChunkSize) }
            let (shifted, overflow1) = size.multipliedReportingOverflow(by: 16)
            let (sum, overflow2) = shifted.addingReportingOverflow(Int64(digit))
            guard !overflow1, !overflow2 else { return .failure(.invalidChunkSize) }
            size = sum
            index += 1
        }
        guard index > line.lowerBound else { return .failure(.invalidChunkSize) }
        if index < line.upperBound, input[index] != ASCII.semicolon, !isOptionalWhitespace(input[index]) {
            return .failure(.invalidChunkSize)
        }
        while index < line.upperBound {
            guard input[index] == ASCII.semicolon else { return .failure(.invalidChunkExtension) }
            index += 1
            let nameStart = index
            while index < line.upperBound, isTokenByte(input[index]) { index += 1 }
            guard index > nameStart else { return .failure(.invalidChunkExtension) }
            guard index < line.upperBound, input[index] == ASCII.equals else { continue }
            index += 1
            if index < line.upperBound, input[index] == ASCII.doubleQuote {
                // quoted-string (RFC 9110 §5.6.4); CTLs other than HTAB were refused by the scan.
                index += 1
                var closed = false
                while index < line.upperBound {
                    let byte = input[index]
                    if byte == ASCII.doubleQuote {
                        closed = true
                        index += 1
                        break
                    }
                    index += byte == ASCII.backslash ? 2 : 1
                }
                guard closed else { return .failure(.invalidChunkExtension) }
            } else {
                let valueStart = index
                while index < line.upperBound, isTokenByte(input[index]) { index += 1 }
                guard index > valueStart else { return .failure(.invalidChunkExtension) }
            }
        }
        return .success(size)
    }
}
