// http1-probe FILE...: parses each file as the bytes a client sent on one connection (whole,
// in one buffer) and prints one JSON line per file with what HTTP1 made of it:
//
//   {"file": "...", "messages": [{"method": "...", "target": "...", "headers": [["name", "value"], ...],
//    "body": "<hex>", "version": "1.1", "keepAlive": true, "upgrade": false, "end": <offset after it>}, ...],
//    "error": null | {"status": 400, "detail": "..."}, "unconsumed": <bytes left, incomplete message>}
//
// JSON strings are Latin-1: every byte is one code point (\u00XX when not printable ASCII), so
// `s.encode("latin-1")` gives back the exact bytes. Only messages that reached `.end` are listed.
// Used by Tests/differential (h11 and httptools against HTTP1). Plain Swift plus libc for files.

import HTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if count > 0 { bytes += chunk[..<count] }
        if count < chunk.count { return ferror(file) == 0 ? bytes : nil }
    }
}

let hexDigits = Array("0123456789abcdef".utf8)

func appendJSONString<Bytes: Sequence<UInt8>>(_ bytes: Bytes, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"):
            out.append(UInt8(ascii: "\\"))
            out.append(byte)
        case 0x20..<0x7F:
            out.append(byte)
        default:
            out.append(contentsOf: Array("\\u00".utf8))
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0x0F)])
        }
    }
    out.append(UInt8(ascii: "\""))
}

func appendHex<Bytes: Sequence<UInt8>>(_ bytes: Bytes, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    for byte in bytes {
        out.append(hexDigits[Int(byte >> 4)])
        out.append(hexDigits[Int(byte & 0x0F)])
    }
    out.append(UInt8(ascii: "\""))
}

/// Feeds `bytes` as one buffer until the parser needs more or fails; returns the JSON line.
func probe(file: String, bytes: [UInt8]) -> [UInt8] {
    var parser = HTTP1RequestParser()
    var out: [UInt8] = []
    out.append(contentsOf: Array("{\"file\":".utf8))
    appendJSONString(file.utf8, to: &out)
    out.append(contentsOf: Array(",\"messages\":[".utf8))

    var offset = 0
    var head: HTTP1RequestHead?
    var body: [UInt8] = []
    var messageCount = 0
    var failure: HTTP1ParseError?
    bytes.withUnsafeBytes { buffer in
        parsing: while true {
            let input = UnsafeRawBufferPointer(rebasing: buffer[offset...])
            let step = parser.parse(input)
            switch step.event {
            case .needMore:
                offset += step.consumed
                break parsing
            case .head(let parsed):
                head = parsed
                body = []
            case .body(let range):
                body += input[range]
            case .end:
                guard let head else { break }
                if messageCount > 0 { out.append(UInt8(ascii: ",")) }
                messageCount += 1
                out.append(contentsOf: Array("{\"method\":".utf8))
                appendJSONString(head.raw[head.methodRange], to: &out)
                out.append(contentsOf: Array(",\"target\":".utf8))
                appendJSONString(head.raw[head.targetRange], to: &out)
                out.append(contentsOf: Array(",\"headers\":[".utf8))
                for index in 0..<head.fieldCount {
                    if index > 0 { out.append(UInt8(ascii: ",")) }
                    out.append(UInt8(ascii: "["))
                    appendJSONString(head.raw[head.nameRange(at: index)], to: &out)
                    out.append(UInt8(ascii: ","))
                    appendJSONString(head.raw[head.valueRange(at: index)], to: &out)
                    out.append(UInt8(ascii: "]"))
                }
                out.append(contentsOf: Array("],\"body\":".utf8))
                appendHex(body, to: &out)
                let version = head.version == .http11 ? "1.1" : "1.0"
                out.append(contentsOf: Array(",\"version\":\"\(version)\",\"keepAlive\":\(head.keepAlive)".utf8))
                out.append(contentsOf: Array(",\"upgrade\":\(head.isUpgrade),\"end\":\(offset + step.consumed)}".utf8))
            case .error(let error):
                failure = error
                break parsing
            }
            offset += step.consumed
        }
    }
    out.append(contentsOf: Array("],\"error\":".utf8))
    if let failure {
        out.append(contentsOf: Array("{\"status\":\(failure.status),\"detail\":".utf8))
        appendJSONString(failure.detail.utf8, to: &out)
        out.append(UInt8(ascii: "}"))
    } else {
        out.append(contentsOf: Array("null".utf8))
    }
    out.append(contentsOf: Array(",\"unconsumed\":\(bytes.count - offset)}\n".utf8))
    return out
}

/// write(2) until every byte is out (stdout/stderr as FILE* are not concurrency-safe globals).
func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written <= 0 { return }
            offset += written
        }
    }
}

var status: Int32 = 0
for path in CommandLine.arguments.dropFirst() {
    guard let bytes = readFile(path) else {
        writeAll(2, Array("http1-probe: cannot read \(path)\n".utf8))
        status = 2
        continue
    }
    writeAll(1, probe(file: path, bytes: bytes))
}
exit(status)
