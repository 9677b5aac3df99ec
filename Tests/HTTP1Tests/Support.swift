import Testing
@testable import HTTP1

/// What a caller sees, with consecutive body events merged (how a body is cut into events
/// depends on how the input was cut; the bytes must not).
enum Outcome: Equatable, CustomStringConvertible {
    case head([UInt8])
    case body([UInt8])
    case end
    case error(HTTP1ParseError)

    var description: String {
        switch self {
        case .head(let raw): "head(\(String(decoding: raw, as: UTF8.self).debugDescription))"
        case .body(let bytes): "body(\(String(decoding: bytes, as: UTF8.self).debugDescription))"
        case .end: "end"
        case .error(let error): "error(\(error))"
        }
    }
}

struct ParsedMessage {
    var head: HTTP1RequestHead
    var body: [UInt8] = []
    var complete = false
}

struct Run {
    var outcomes: [Outcome] = []
    var messages: [ParsedMessage] = []
    var error: HTTP1ParseError?
    /// Bytes the parser left in the caller's buffer at the end (an incomplete unit).
    var unconsumed = 0

    /// The only message, checked to be complete and error-free.
    var single: ParsedMessage? {
        guard error == nil, messages.count == 1, messages[0].complete else { return nil }
        return messages[0]
    }
}

/// Drives a parser the way a connection does: a buffer of unconsumed bytes, each piece appended
/// as it "arrives", `parse` called until it needs more. Checks the calling contract on the way:
/// consumed within bounds, body ranges non-empty and inside `input`, no endless zero-progress
/// loop, and an error that sticks.
func feed(_ pieces: [[UInt8]], limits: HTTP1Limits = .init()) -> Run {
    var parser = HTTP1RequestParser(limits: limits)
    var buffer: [UInt8] = []
    var run = Run()
    var notYetFed = pieces.reduce(0) { $0 + $1.count }
    for piece in pieces {
        buffer += piece
        notYetFed -= piece.count
        var offset = 0
        var stepsWithoutProgress = 0
        parsing: while true {
            let available = buffer.count - offset
            var bodyBytes: [UInt8] = []
            let step = buffer.withUnsafeBytes { bytes in
                let input = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                let step = parser.parse(input)
                if case .body(let range) = step.event, range.lowerBound >= 0, range.upperBound <= input.count {
                    bodyBytes = Array(input[range])
                }
                return step
            }
            #expect(step.consumed >= 0 && step.consumed <= available, "consumed out of bounds")
            switch step.event {
            case .needMore:
                offset += step.consumed
                break parsing
            case .head(let head):
                #expect(head.raw.count <= limits.maxHeadBytes)
                run.outcomes.append(.head(head.raw))
                run.messages.append(ParsedMessage(head: head))
            case .body(let range):
                #expect(!range.isEmpty && range.lowerBound >= 0 && range.upperBound <= step.consumed,
                        "body range \(range) outside consumed \(step.consumed)")
                if case .body(let previous)? = run.outcomes.last {
                    run.outcomes[run.outcomes.count - 1] = .body(previous + bodyBytes)
                } else {
                    run.outcomes.append(.body(bodyBytes))
                }
                if !run.messages.isEmpty { run.messages[run.messages.count - 1].body += bodyBytes }
            case .end:
                run.outcomes.append(.end)
                if !run.messages.isEmpty { run.messages[run.messages.count - 1].complete = true }
            case .error(let error):
                run.outcomes.append(.error(error))
                run.error = error
                let again = buffer.withUnsafeBytes { parser.parse(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
                if case .error(let repeated) = again.event {
                    #expect(repeated == error && again.consumed == 0, "error did not stick")
                } else {
                    Issue.record("parser left the error state")
                }
                run.unconsumed = buffer.count - offset + notYetFed
                return run
            }
            offset += step.consumed
            stepsWithoutProgress = step.consumed == 0 ? stepsWithoutProgress + 1 : 0
            if stepsWithoutProgress > 2 {
                Issue.record("parser makes no progress")
                return run
            }
        }
        buffer.removeFirst(offset)
    }
    run.unconsumed = buffer.count
    return run
}

func feed(_ bytes: [UInt8], limits: HTTP1Limits = .init()) -> Run { feed([bytes], limits: limits) }
func feed(_ text: String, limits: HTTP1Limits = .init()) -> Run { feed([Array(text.utf8)], limits: limits) }

/// Every way to cut `bytes` in two, and one byte at a time.
func splits(of bytes: [UInt8]) -> [[[UInt8]]] {
    var result = (0...bytes.count).map { [Array(bytes[..<$0]), Array(bytes[$0...])] }
    result.append(bytes.map { [$0] })
    return result
}

/// A minimal valid HTTP/1.1 request head with `fields` after `Host: example.com`.
func request(_ fields: String = "", method: String = "GET", target: String = "/", version: String = "HTTP/1.1",
             host: String? = "Host: example.com\r\n") -> String {
    "\(method) \(target) \(version)\r\n\(host ?? "")\(fields)\r\n"
}

func chunked(_ body: String, fields: String = "") -> String {
    request("Transfer-Encoding: chunked\r\n" + fields, method: "POST") + body
}
