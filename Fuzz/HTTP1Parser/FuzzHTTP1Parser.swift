// libFuzzer target for `HTTP1RequestParser`, the request parser of the event-loop core.
//
// Two builds of this one file:
// - `-DFUZZING -sanitize=fuzzer` (scripts/fuzz.sh): exports `LLVMFuzzerTestOneInput`;
//   libFuzzer supplies `main`.
// - plain `swift build --product FuzzHTTP1Parser`: an ordinary executable that replays the
//   files and directories given as arguments through the same `fuzzHTTP1` (scripts/fuzz.sh
//   --replay, run by `make test`). A violated invariant traps in both builds.
//
// An input is the bytes a client sent on one connection. It is parsed as a connection would
// (a buffer of unconsumed bytes, `parse` until it needs more), once whole and once cut into
// pieces at points derived from the data (and byte by byte when short), with the default limits
// and with small ones (so the limit paths are reachable by short inputs). Invariants: no trap;
// `consumed` within the input; body ranges non-empty and inside the input; progress; an error
// sticks; a head never larger than maxHeadBytes and internally consistent; and every way of
// cutting the input gives the same events and the same body bytes.

import FuzzSupport
import HTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What the caller sees; consecutive body events merged (how a body is cut into events depends
/// on how the input was cut, its bytes must not).
enum Outcome: Equatable {
    case head([UInt8])
    case body([UInt8])
    case end
    case error(HTTP1ParseError)
}

struct Transcript: Equatable {
    var outcomes: [Outcome] = []
    /// Bytes left unconsumed at the end (an incomplete head, chunk line, trailer or body); 0 after an error.
    var unconsumed = 0

    var completeMessages: Int { outcomes.count(where: { $0 == .end }) }
    var failed: Bool { if case .error? = outcomes.last { true } else { false } }
}

let smallLimits = HTTP1Limits(maxHeadBytes: 200, maxFields: 6, maxChunkLineBytes: 24, maxTrailerBytes: 40)

func isToken(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
        true
    default:
        Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
    }
}

/// A head the parser returned must hold what its rules promise, checked independently.
func checkHead(_ head: HTTP1RequestHead, consumed: Int, limits: HTTP1Limits) {
    invariant(head.raw.count <= limits.maxHeadBytes && consumed <= limits.maxHeadBytes, "head larger than maxHeadBytes")
    invariant(consumed >= head.raw.count, "head consumed fewer bytes than it holds")
    let raw = head.raw
    invariant(Array(raw.suffix(4)) == Array("\r\n\r\n".utf8), "head does not end with a field line and an empty line")
    invariant(!head.methodRange.isEmpty && raw[head.methodRange].allSatisfy(isToken), "method is not a token")
    invariant(raw[head.methodRange.upperBound] == UInt8(ascii: " "), "method not followed by SP")
    let target = raw[head.targetRange]
    invariant(target.first == UInt8(ascii: "/"), "target not in origin-form")
    invariant(target.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") }, "bad byte in target")
    invariant(head.fieldCount <= limits.maxFields, "more fields than maxFields")
    var hosts = 0, contentLengths = 0, transferEncodings = 0
    for index in 0..<head.fieldCount {
        let name = head.nameRange(at: index), value = head.valueRange(at: index)
        invariant(name.lowerBound >= 0 && name.upperBound < raw.count && value.lowerBound > name.upperBound
                  && value.upperBound <= raw.count && value.lowerBound <= value.upperBound, "field range outside raw")
        invariant(!name.isEmpty && raw[name].allSatisfy(isToken) && raw[name.upperBound] == UInt8(ascii: ":"),
                  "field name is not a token followed by a colon")
        invariant(raw[value].allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }, "control byte in a value")
        if let first = raw[value].first, let last = raw[value].last {
            invariant(first != 0x20 && first != 0x09 && last != 0x20 && last != 0x09, "value not trimmed")
        }
        switch head.name(at: index).lowercased() {
        case "host": hosts += 1
        case "content-length": contentLengths += 1
        case "transfer-encoding": transferEncodings += 1
        default: break
        }
    }
    invariant(hosts == 1, "accepted a head without exactly one Host")
    invariant(contentLengths <= 1 && (contentLengths == 0 || transferEncodings == 0), "ambiguous framing accepted")
    switch head.framing {
    case .chunked:
        invariant(transferEncodings >= 1 && head.version == .http11, "chunked without Transfer-Encoding on 1.1")
    case .contentLength(let length):
        invariant(length >= 0 && contentLengths == 1, "Content-Length framing without one Content-Length")
    case .none:
        invariant(contentLengths == 0 && transferEncodings == 0, "no framing despite framing fields")
    }
}

/// Feeds `bytes` in pieces ending at `cuts` (sorted offsets), as a connection would.
func transcript(_ bytes: [UInt8], cuts: [Int], limits: HTTP1Limits) -> Transcript {
    var parser = HTTP1RequestParser(limits: limits)
    var result = Transcript()
    var buffer: [UInt8] = []
    var pieceStart = 0
    var currentFraming: HTTP1BodyFraming?
    var bodyBytesInMessage: Int64 = 0
    for pieceEnd in cuts + [bytes.count] where pieceEnd >= pieceStart {
        buffer += bytes[pieceStart..<pieceEnd]
        pieceStart = pieceEnd
        var offset = 0
        var stepsWithoutProgress = 0
        parsing: while true {
            let available = buffer.count - offset
            var body: [UInt8] = []
            let step = buffer.withUnsafeBytes { all in
                let input = UnsafeRawBufferPointer(rebasing: all[offset...])
                let step = parser.parse(input)
                if case .body(let range) = step.event {
                    invariant(!range.isEmpty && range.lowerBound >= 0 && range.upperBound <= input.count,
                              "body range outside the input")
                    invariant(range.upperBound <= step.consumed, "body range beyond consumed")
                    body = Array(input[range])
                }
                return step
            }
            invariant(step.consumed >= 0 && step.consumed <= available, "consumed outside the input")
            switch step.event {
            case .needMore:
                offset += step.consumed
                break parsing
            case .head(let head):
                checkHead(head, consumed: step.consumed, limits: limits)
                result.outcomes.append(.head(head.raw))
                currentFraming = head.framing
                bodyBytesInMessage = 0
            case .body:
                invariant(currentFraming != nil && currentFraming != HTTP1BodyFraming.none, "body without a framed head")
                bodyBytesInMessage += Int64(body.count)
                if case .contentLength(let length)? = currentFraming {
                    invariant(bodyBytesInMessage <= length, "more body than Content-Length")
                }
                if case .body(let previous)? = result.outcomes.last {
                    result.outcomes[result.outcomes.count - 1] = .body(previous + body)
                } else {
                    result.outcomes.append(.body(body))
                }
            case .end:
                invariant(currentFraming != nil, "end without a head")
                if case .contentLength(let length)? = currentFraming {
                    invariant(bodyBytesInMessage == length, "end before Content-Length bytes")
                }
                currentFraming = nil
                result.outcomes.append(.end)
            case .error(let error):
                invariant([400, 431, 501].contains(error.status) && !error.detail.isEmpty, "error without status")
                result.outcomes.append(.error(error))
                let again = buffer.withUnsafeBytes { parser.parse(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
                if case .error(let repeated) = again.event {
                    invariant(repeated == error && again.consumed == 0, "error changed on the next call")
                } else {
                    invariant(false, "parser left the error state")
                }
                // Unconsumed bytes are not compared after an error: the connection closes, and a
                // chunked body may have consumed framing with `.needMore` in one cut and not another.
                return result
            }
            offset += step.consumed
            stepsWithoutProgress = step.consumed == 0 ? stepsWithoutProgress + 1 : 0
            invariant(stepsWithoutProgress <= 2, "parser makes no progress")
        }
        buffer.removeFirst(offset)
    }
    result.unconsumed = buffer.count
    return result
}

/// Cut points derived from the data (FNV-1a), so libFuzzer can steer them.
func cutPoints(_ bytes: [UInt8]) -> [Int] {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
    let span = UInt64(bytes.count + 1)
    return [Int(hash % span), Int((hash >> 21) % span), Int((hash >> 42) % span)].sorted()
}

/// Returns true if the input, parsed with the default limits, is at least one complete message
/// and no error (the `accept-`/`reject-` convention of the corpus).
@discardableResult
func fuzzHTTP1(_ bytes: [UInt8]) -> Bool {
    var accepted = false
    for limits in [HTTP1Limits(), smallLimits] {
        let whole = transcript(bytes, cuts: [], limits: limits)
        let cut = transcript(bytes, cuts: cutPoints(bytes), limits: limits)
        invariant(cut == whole, "cutting the input changed the events")
        if bytes.count <= 300 {
            let byteByByte = transcript(bytes, cuts: Array(bytes.indices), limits: limits)
            invariant(byteByByte == whole, "feeding byte by byte changed the events")
        }
        if limits == HTTP1Limits() { accepted = whole.completeMessages > 0 && !whole.failed }
    }
    return accepted
}

// MARK: - Entry points

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzHTTP1(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
@main
enum ReplayMain {
    static func main() {
        exit(Replay.run(name: "FuzzHTTP1Parser", arguments: Array(CommandLine.arguments.dropFirst()), fuzzHTTP1))
    }
}
#endif
