// Shared by the fuzz targets: the invariant check and the corpus replayer used when a
// target is built without the fuzzer (`scripts/fuzz.sh --replay`, run by `make test`).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Stops the process (libFuzzer records the input) when a property every input must keep fails.
public func invariant(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError("fuzz invariant violated: \(message())", file: file, line: line) }
}

extension Result {
    public var successValue: Success? {
        if case .success(let value) = self { return value }
        return nil
    }

    public var failureValue: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}

// MARK: - Replay

/// Replays files, and directories recursively in name order, through `body`. A file whose
/// name starts with `accept-` must be accepted and one starting with `reject-` must not be.
public enum Replay {
    public static func run(name: String, arguments: [String], _ body: ([UInt8]) -> Bool) -> Int32 {
        guard !arguments.isEmpty, !arguments.contains(where: { $0.hasPrefix("-") }) else {
            printError("usage: \(name) FILE_OR_DIR...  (replays inputs; to fuzz, build with scripts/fuzz.sh)")
            return 2
        }
        var files: [String] = []
        for path in arguments {
            guard collect(path, into: &files) else {
                printError("\(name): cannot read \(path)")
                return 2
            }
        }
        var accepted = 0, expectations = 0
        for file in files {
            guard let bytes = readFile(file) else {
                printError("\(name): cannot read \(file)")
                return 2
            }
            let result = body(bytes)
            if result { accepted += 1 }
            let base = file.split(separator: "/").last.map(String.init) ?? file
            if base.hasPrefix("accept-") {
                expectations += 1
                invariant(result, "\(file) should be accepted")
            } else if base.hasPrefix("reject-") {
                expectations += 1
                invariant(!result, "\(file) should be rejected")
            }
        }
        guard !files.isEmpty else {
            printError("\(name): no inputs found")
            return 1
        }
        print("\(name): replayed \(files.count) inputs, \(accepted) accepted, \(expectations) expectations held")
        return 0
    }

    static func printError(_ text: String) {
        let line = Array((text + "\n").utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func isDirectory(_ path: String) -> Bool? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (info.st_mode & S_IFMT) == S_IFDIR
    }

    static func collect(_ path: String, into files: inout [String]) -> Bool {
        guard let directory = isDirectory(path) else { return false }
        guard directory else {
            files.append(path)
            return true
        }
        guard let handle = opendir(path) else { return false }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if !name.hasPrefix(".") { names.append(name) }
        }
        closedir(handle)
        for name in names.sorted() where !collect(path + "/" + name, into: &files) { return false }
        return true
    }

    static func readFile(_ path: String) -> [UInt8]? {
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
}
